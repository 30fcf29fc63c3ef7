//! `kura-relay status`: what a running relay stores and earns, in words, from its own
//! `/status` (the operator's view on a terminal; `/operator` draws the same in a browser).
//!
//! The relay writes the HTTP address it bound to `DATA_DIR/http.addr` at start, so
//! `kura-relay status --data-dir DIR` (or `--config FILE`) finds it; `--http ADDR` names it.

use anyhow::{Context, Result};
use clap::Parser;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `kura-relay status`: what a running relay stores and earns.
#[derive(Debug, Parser)]
#[command(name = "kura-relay status")]
pub struct StatusFlags {
    /// The relay's data directory (its HTTP address is read from `http.addr` there).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The relay's HTTP address.
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// The relay's TOML file (for its data directory and HTTP address).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Where a relay's HTTP address is kept in its data directory.
pub fn addr_file(data_dir: &Path) -> PathBuf {
    data_dir.join("http.addr")
}

/// The relay's HTTP address from the flags, its data directory or its TOML file.
fn address(flags: &StatusFlags) -> Result<SocketAddr> {
    let file: crate::config::FileConfig = match &flags.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("in {}", p.display()))?
        }
        None => Default::default(),
    };
    let addr = match (flags.http, flags.data_dir.as_ref().or(file.data_dir.as_ref())) {
        (Some(a), _) => a,
        (None, Some(dir)) => {
            let path = addr_file(dir);
            std::fs::read_to_string(&path)
                .with_context(|| format!("reading {} (is the relay running?)", path.display()))?
                .trim()
                .parse()
                .with_context(|| format!("{} holds no address", path.display()))?
        }
        (None, None) => file.http.context("give --data-dir, --config or --http")?,
    };
    // A relay listening on every interface is asked on loopback.
    Ok(if addr.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr })
}

/// Fetches `path` over plain HTTP/1.0 (a few KiB of JSON, at most 1 MiB read).
fn get(addr: SocketAddr, path: &str) -> Result<serde_json::Value> {
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("connecting to the relay at {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut reply = Vec::new();
    s.take(1 << 20).read_to_end(&mut reply)?;
    let text = String::from_utf8_lossy(&reply);
    let (head, body) = text.split_once("\r\n\r\n").context("the relay's answer has no body")?;
    anyhow::ensure!(head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"), "{path}: {head}");
    serde_json::from_str(body).with_context(|| format!("{path} is not JSON"))
}

fn size(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b => format!("{:.0} KiB", b as f64 / 1024.0),
    }
}

/// The relay's status in words.
pub fn describe(s: &serde_json::Value) -> String {
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    let f = &s["farming"];
    let e = &f["earnings"];
    let mut out = format!(
        "relay {}\nstored: {} shards, {} of {}\npaid stripes held: {}; epoch {} ({} s each), {} credits per GiB of shards per epoch\n",
        s["peer_id"].as_str().unwrap_or("?"),
        n(&s["shards"]),
        size(n(&s["bytes"])),
        size(n(&s["quota"])),
        n(&f["stamps"]),
        n(&f["epoch"]),
        n(&f["epoch_secs"]),
        n(&f["price"]),
    );
    out += &format!(
        "earned: {} credits; epochs rewarded {}, forfeited {}\n",
        n(&e["earned"]),
        n(&e["epochs_rewarded"]),
        n(&e["epochs_forfeited"])
    );
    let last = &e["last"];
    if last.is_object() {
        out += &format!(
            "last claim: epoch {}, {} paid shards ({}), {}\n",
            n(&last["epoch"]),
            n(&last["shards"]),
            size(n(&last["bytes"])),
            match n(&last["credits"]) {
                0 => "forfeited".to_owned(),
                c => format!("{c} credits"),
            }
        );
    } else {
        out += "last claim: none yet (a relay claims for its paid shards once an epoch ends)\n";
    }
    out += &format!(
        "rewards account: {} (spend with `kura wallet --key` and the relay's rewards key)\nas auditor: {} shares signed, {} claims refused\n",
        f["rewards_account"].as_str().unwrap_or("none"),
        n(&e["shares_signed"]),
        n(&e["claims_refused"]),
    );
    out
}

/// Runs `kura-relay status` with `args` (after the word `status`).
pub fn run(args: impl IntoIterator<Item = String>) -> Result<()> {
    let flags = StatusFlags::parse_from(std::iter::once("kura-relay status".to_owned()).chain(args));
    let addr = address(&flags)?;
    print!("{}", describe(&get(addr, "/status")?));
    Ok(())
}
