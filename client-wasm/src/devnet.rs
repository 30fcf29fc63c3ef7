//! `kura devnet`: a local network of `kura-relay` processes on 127.0.0.1 that find each other
//! through the first one. Each relay keeps its data under `DIR/relay-I` and logs to
//! `DIR/relay-I.log`.

use crate::bootstrap::http_get;
use anyhow::{bail, Context, Result};
use kura_p2p::process::{spawn_relay, Lifetime};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// What to start.
#[derive(Debug, Clone)]
pub struct DevnetConfig {
    /// Number of relays.
    pub relays: usize,
    /// Data directory (one sub-directory per relay).
    pub dir: PathBuf,
    /// HTTP address of relay 0 (the page, `/bootstrap`); relay `i` takes port + `i`, or an
    /// ephemeral port when the port is 0.
    pub http: SocketAddr,
    /// First libp2p port: relay `i` listens on TCP `base + 10i`, QUIC `base + 10i`,
    /// WebRTC-direct `base + 10i + 1`, WebSocket `base + 10i + 2`. 0: ephemeral ports.
    pub base_port: u16,
    /// The `kura-relay` binary.
    pub relay_bin: PathBuf,
    /// Extra arguments for every relay (e.g. `--repair-interval 2`).
    pub relay_args: Vec<String>,
    /// Seeds of identities that carry the join work (64 hex digits a line, as `kura-sim
    /// join-keys` writes them; other lines are skipped): relay `i`, if it has no identity
    /// yet, takes the `i`-th of them instead of making one. For tests, which start many
    /// networks; without it each new relay makes its own.
    pub identities: Option<PathBuf>,
}

impl DevnetConfig {
    /// `relays` relays of `relay_bin` under `dir`, on ephemeral loopback ports (HTTP too).
    pub fn ephemeral(relays: usize, dir: PathBuf, relay_bin: PathBuf, relay_args: Vec<String>) -> Self {
        Self {
            relays,
            dir,
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            base_port: 0,
            relay_bin,
            relay_args,
            identities: None,
        }
    }
}

/// The test suite's pool of worked identities in this checkout (`p2p/src/join_keys.txt`), for
/// [`DevnetConfig::identities`] in tests and benchmarks run from the source tree.
pub const TEST_IDENTITIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../p2p/src/join_keys.txt");

/// One running relay of the devnet.
#[derive(Debug)]
pub struct DevRelay {
    child: Child,
    /// Its peer id.
    pub peer_id: String,
    /// Its HTTP address.
    pub http: String,
    /// Its listen addresses, with `/p2p/`.
    pub listen: Vec<String>,
    /// Its data directory (which holds `operator.token`, the key to its operator's routes).
    pub dir: PathBuf,
}

/// A running local network.
#[derive(Debug)]
pub struct Devnet {
    /// The relays, relay 0 first.
    pub relays: Vec<DevRelay>,
}

/// The `kura-relay` binary next to the running executable, or on `PATH`.
pub fn default_relay_bin() -> PathBuf {
    let sibling = std::env::current_exe().ok().and_then(|e| e.parent().map(|d| d.join("kura-relay")));
    match sibling {
        Some(p) if p.is_file() => p,
        _ => PathBuf::from("kura-relay"),
    }
}

fn listen_args(base: u16, i: usize) -> Vec<String> {
    let port = |off: usize| if base == 0 { 0 } else { base as usize + 10 * i + off };
    vec![
        format!("/ip4/127.0.0.1/tcp/{}", port(0)),
        format!("/ip4/127.0.0.1/udp/{}/quic-v1", port(0)),
        format!("/ip4/127.0.0.1/udp/{}/webrtc-direct", port(1)),
        format!("/ip4/127.0.0.1/tcp/{}/ws", port(2)),
    ]
}

/// Gives each relay directory without an identity one that carries the join work, before
/// any relay starts: taken from `cfg.identities`, else made on every core at once (each is
/// seconds of one core; a relay that made its own at start would make them one at a time).
fn prepare_identities(cfg: &DevnetConfig) -> Result<()> {
    let pool: Vec<libp2p::identity::Keypair> = match &cfg.identities {
        None => Vec::new(),
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading {}", path.display()))?
            .lines()
            .filter_map(|l| kura_core::hex::decode_array::<32>(l.trim()))
            .filter_map(|seed| libp2p::identity::Keypair::ed25519_from_bytes(seed).ok())
            .filter(|k| kura_p2p::admitted(&k.public().to_peer_id()))
            .collect(),
    };
    let mut to_make = Vec::new();
    for i in 0..cfg.relays {
        let dir = relay_dir(&cfg.dir, i);
        if has_worked_identity(&dir.join(IDENTITY_FILE)) {
            continue;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        match pool.get(i) {
            Some(key) => write_identity(&dir, key)?,
            None => to_make.push(dir),
        }
    }
    if !to_make.is_empty() {
        eprintln!(
            "making {} relay identities with the join work (about 16 s of one core each, on every core)",
            to_make.len()
        );
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from).min(to_make.len()).max(1);
    std::thread::scope(|s| {
        let workers: Vec<_> = to_make
            .chunks(to_make.len().div_ceil(cores).max(1))
            .map(|dirs| {
                s.spawn(move || dirs.iter().try_for_each(|d| write_identity(d, &kura_p2p::relay_identity())))
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().unwrap_or_else(|_| bail!("making an identity panicked")))
    })
}

/// Whether `path` holds an identity that carries the join work. One made under a lower bar
/// (an earlier `JOIN_BITS`) is replaced: its relay would count in no close group, and on a
/// devnet nothing else depends on the peer id staying.
fn has_worked_identity(path: &Path) -> bool {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| libp2p::identity::Keypair::from_protobuf_encoding(&bytes).ok())
        .is_some_and(|k| kura_p2p::admitted(&k.public().to_peer_id()))
}

/// The file a relay keeps its identity in, in its data directory (`kura-relay`'s own name).
const IDENTITY_FILE: &str = "identity.key";

fn write_identity(dir: &Path, key: &libp2p::identity::Keypair) -> Result<()> {
    let path = dir.join(IDENTITY_FILE);
    kura_p2p::docs::write_private(&path, &key.to_protobuf_encoding()?)
        .with_context(|| format!("writing {}", path.display()))
}

fn start_relay(cfg: &DevnetConfig, i: usize, bootstrap: Option<&str>) -> Result<DevRelay> {
    let dir = relay_dir(&cfg.dir, i);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let log = cfg.dir.join(format!("relay-{i}.log"));
    let http_port = if cfg.http.port() == 0 { 0 } else { cfg.http.port() as usize + i };
    let mut cmd = Command::new(&cfg.relay_bin);
    cmd.arg("--data-dir").arg(&dir).arg("--http").arg(format!("{}:{http_port}", cfg.http.ip()));
    for l in listen_args(cfg.base_port, i) {
        cmd.args(["--listen", &l]);
    }
    if let Some(b) = bootstrap {
        cmd.args(["--bootstrap", b]);
    }
    cmd.args(&cfg.relay_args);
    cmd.stderr(std::fs::File::create(&log)?);
    // Relays die with the devnet, even one killed with SIGKILL: none keeps its ports and
    // directory. (The devnet starts them from its main thread.)
    let (child, ready) = match spawn_relay(cmd, Lifetime::DiesWithParent, Duration::from_secs(60)) {
        Ok(started) => started,
        Err(e) => {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(15).collect();
            bail!(
                "relay {i} did not start ({e}); the end of {}:\n{}",
                log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    };
    Ok(DevRelay { child, peer_id: ready.peer_id, http: ready.http, listen: ready.listen, dir })
}

impl DevRelay {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills it with SIGKILL (no chance to clean up) and reaps it.
    pub fn kill9(&mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Its TCP address (what native clients and other relays dial).
    pub fn tcp_addr(&self) -> Option<&str> {
        self.listen.iter().map(String::as_str).find(|a| a.contains("/tcp/") && !a.contains("/ws"))
    }
}

impl Devnet {
    /// Starts the relays one after the other (each bootstrapping from relay 0) and waits
    /// until every relay's routing table holds all the others.
    pub async fn start(cfg: &DevnetConfig) -> Result<Self> {
        if cfg.relays == 0 {
            bail!("--relays must be at least 1");
        }
        prepare_identities(cfg)?;
        let mut net = Devnet { relays: Vec::with_capacity(cfg.relays) };
        for i in 0..cfg.relays {
            let boot = net.relays.first().and_then(DevRelay::tcp_addr).map(str::to_owned);
            net.relays.push(start_relay(cfg, i, boot.as_deref())?);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut waiting: Vec<usize> = (0..net.relays.len()).collect();
        while let Some(&i) = waiting.first() {
            let me = &net.relays[i];
            let body = http_get(&format!("http://{}/status", me.http)).await.unwrap_or_default().1;
            let status: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let table: Vec<&str> = status["routing_table"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            let knows_all = net
                .relays
                .iter()
                .filter(|r| r.peer_id != me.peer_id)
                .all(|r| table.contains(&r.peer_id.as_str()));
            if knows_all {
                waiting.remove(0);
                continue;
            }
            if Instant::now() > deadline {
                bail!("relays did not find each other within 60 s (relay {i} knows {table:?})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(net)
    }

    /// Relay 0's TCP address, for `--bootstrap`.
    pub fn bootstrap(&self) -> Option<&str> {
        self.relays.first().and_then(DevRelay::tcp_addr)
    }

    /// Asks every relay to stop (SIGTERM) and waits for them (up to 30 s each, then SIGKILL).
    pub fn stop(mut self) -> Result<()> {
        for r in &self.relays {
            terminate(r.child.id());
        }
        let mut failed = Vec::new();
        for (i, r) in self.relays.iter_mut().enumerate() {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match r.child.try_wait()? {
                    Some(s) if s.success() => break,
                    Some(s) => {
                        failed.push(format!("relay {i} exited with {s}"));
                        break;
                    }
                    None if Instant::now() > deadline => {
                        let _ = r.child.kill();
                        let _ = r.child.wait();
                        failed.push(format!("relay {i} did not stop within 30 s and was killed"));
                        break;
                    }
                    None => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        self.relays.clear();
        if failed.is_empty() {
            Ok(())
        } else {
            bail!("{}", failed.join("; "))
        }
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        for r in &mut self.relays {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }
}

fn terminate(pid: u32) {
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
}

/// Where relay `i` of a devnet rooted at `dir` keeps its data.
pub fn relay_dir(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("relay-{i}"))
}
