//! Real `kura-relay` processes on 127.0.0.1 for end-to-end tests.

use anyhow::{anyhow, bail, Context, Result};
use kura_p2p::process::{spawn_relay, Lifetime};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// Listen addresses for a test relay: every transport, port 0, loopback only.
pub const LOOPBACK_LISTEN: [&str; 4] = [
    "/ip4/127.0.0.1/tcp/0",
    "/ip4/127.0.0.1/udp/0/quic-v1",
    "/ip4/127.0.0.1/tcp/0/ws",
    "/ip4/127.0.0.1/udp/0/webrtc-direct",
];

/// A running relay process. Killed (SIGKILL) on drop if still running.
#[derive(Debug)]
pub struct RelayProc {
    child: Child,
    pub dir: PathBuf,
    pub peer_id: String,
    pub http: String,
    pub listen: Vec<String>,
    stderr: PathBuf,
}

impl RelayProc {
    /// Starts a relay on `dir` with loopback listeners and `extra` arguments, and waits (up
    /// to 60 s) for its ready line.
    pub fn spawn(dir: &Path, extra: &[&str]) -> Result<Self> {
        Self::spawn_bin(&crate::binary("kura-relay", "kura-relay")?, dir, extra)
    }

    /// [`spawn`](Self::spawn) with a given binary (tests of the relay's own package pass
    /// `env!("CARGO_BIN_EXE_kura-relay")`, which cargo built for them).
    pub fn spawn_bin(bin: &Path, dir: &Path, extra: &[&str]) -> Result<Self> {
        Self::start(Command::new(bin), dir, extra)
    }

    /// [`spawn_bin`](Self::spawn_bin) with the open-file limit (`ulimit -n`) set to `nofile`
    /// for the relay. A shell sets the limit and then `exec`s the relay, so [`pid`](Self::pid)
    /// is still the relay's.
    pub fn spawn_bin_limited(bin: &Path, dir: &Path, extra: &[&str], nofile: u64) -> Result<Self> {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\"")).arg(bin);
        Self::start(cmd, dir, extra)
    }

    /// Starts `cmd` (the relay, or what `exec`s it) with the relay's arguments appended.
    fn start(mut cmd: Command, dir: &Path, extra: &[&str]) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        // An identity with the join work from the test pool, so that twenty relays do not
        // each spend a second making one (a relay started again keeps the one it has).
        let key = dir.join("identity.key");
        if !key.exists() {
            kura_p2p::docs::write_private(&key, &kura_p2p::testnet::identity().to_protobuf_encoding()?)?;
        }
        // Its rewards account too (with the account work), unless the test names one.
        let rewards = dir.join("rewards.key");
        if !rewards.exists() && !extra.contains(&"--rewards-key") {
            let seed = kura_p2p::testnet::account().to_bytes();
            kura_p2p::docs::write_private(
                &rewards,
                format!("{}\n", kura_core::hex::encode(&seed)).as_bytes(),
            )?;
        }
        let stderr = dir.with_extension("stderr.log");
        cmd.arg("--data-dir").arg(dir).args(["--http", "127.0.0.1:0"]);
        for l in LOOPBACK_LISTEN {
            cmd.args(["--listen", l]);
        }
        cmd.args(extra)
            .env("KURA_LOG", std::env::var("KURA_LOG").unwrap_or_else(|_| "info".into()))
            .stderr(std::fs::File::create(&stderr)?);
        let (child, ready) = spawn_relay(cmd, Lifetime::Own, Duration::from_secs(60)).map_err(|e| {
            let log = std::fs::read_to_string(&stderr).unwrap_or_default();
            anyhow!("relay did not become ready ({e}); stderr:\n{log}")
        })?;
        Ok(Self {
            child,
            dir: dir.to_path_buf(),
            peer_id: ready.peer_id,
            http: ready.http,
            listen: ready.listen,
            stderr,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The first listen address containing `needle` (e.g. "/tcp/", "/quic-v1", "/ws",
    /// "/webrtc-direct"), with `/p2p/…`.
    pub fn addr(&self, needle: &str) -> Result<String> {
        self.listen
            .iter()
            .find(|a| a.contains(needle) && (needle != "/tcp/" || !a.contains("/ws")))
            .cloned()
            .ok_or_else(|| anyhow!("no {needle} address in {:?}", self.listen))
    }

    /// `GET path` on the relay's HTTP port as its operator (with the bearer token the relay
    /// wrote to `operator.token` in its data directory): (status code, body).
    pub fn get(&self, path: &str) -> Result<(u16, String)> {
        let token = std::fs::read_to_string(self.dir.join("operator.token")).unwrap_or_default();
        http_get_as(&self.http, path, token.trim())
    }

    /// `GET path` parsed as JSON.
    pub fn json(&self, path: &str) -> Result<serde_json::Value> {
        let (code, body) = self.get(path)?;
        if code != 200 {
            bail!("GET {path}: HTTP {code}");
        }
        Ok(serde_json::from_str(&body)?)
    }

    /// The value of the first line of `/metrics` that starts with `series` (a name, with
    /// its labels if it has any), or 0 if there is none.
    pub fn metric(&self, series: &str) -> Result<f64> {
        let (code, m) = self.get("/metrics")?;
        if code != 200 {
            bail!("GET /metrics: HTTP {code}");
        }
        Ok(m.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0))
    }

    /// Sends SIGTERM and waits (up to 30 s) for the process to exit.
    pub fn terminate(mut self) -> Result<ExitStatus> {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait()? {
                return Ok(s);
            }
            if Instant::now() > deadline {
                bail!("relay did not exit within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// The process's CPU time (user + system, seconds) and its peak and current resident
    /// memory (MiB), from /proc: `(cpu, peak, now)`.
    pub fn usage(&self) -> (f64, f64, f64) {
        usage_of(self.child.id())
    }

    /// One line for a test's output: what this relay has cost so far.
    pub fn usage_line(&self, what: &str) -> String {
        let (cpu, peak, now) = self.usage();
        format!(
            "relay under {what}: {cpu:.2} s CPU since start, peak RSS {peak:.1} MiB, RSS now {now:.1} MiB"
        )
    }

    /// What the relay wrote on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for RelayProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.0 GET (no client library needed for loopback tests), as a stranger.
pub fn http_get(host: &str, path: &str) -> Result<(u16, String)> {
    http_get_as(host, path, "")
}

/// [`http_get`] with a bearer token (none if empty).
pub fn http_get_as(host: &str, path: &str, token: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(host).with_context(|| format!("connecting to {host}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let auth = if token.is_empty() { String::new() } else { format!("Authorization: Bearer {token}\r\n") };
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n{auth}\r\n")?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let (head, body) = resp.split_once("\r\n\r\n").ok_or_else(|| anyhow!("no HTTP header in {resp:?}"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("bad status line"))?;
    Ok((code, body.to_owned()))
}

/// Polls `check` every 50 ms until it returns `Some`, or fails after `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `(cpu seconds, peak RSS MiB, RSS MiB)` of process `pid`, from /proc (zeros if unreadable).
pub fn usage_of(pid: u32) -> (f64, f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest.split_whitespace().map(|v| v.parse().unwrap_or(0.0)).collect();
    // Fields 14 and 15 of stat (utime, stime), in clock ticks of 1/100 s on Linux.
    let cpu = (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |field: &str| {
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (cpu, kib("VmHWM:") / 1024.0, kib("VmRSS:") / 1024.0)
}
