//! Operator configuration: command-line flags, each also settable in a TOML file.

use anyhow::{Context, Result};
use clap::Parser;
use libp2p::Multiaddr;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// `kura-relay`: bootstrap, NAT traversal and long-term storage for the Kura network.
/// `kura-relay status --data-dir DIR` tells what a running relay stores and earns.
#[derive(Debug, Parser)]
#[command(name = "kura-relay", version)]
pub struct Flags {
    /// Directory for the identity key, the WebRTC certificate, metadata and shards.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on (repeatable). Default: TCP 4001, QUIC 4001, WebRTC-direct 4002,
    /// WebSocket 4003 on all interfaces.
    #[arg(long)]
    pub listen: Vec<Multiaddr>,
    /// Address of a relay to join the network through, with /p2p/PEER (repeatable).
    #[arg(long)]
    pub bootstrap: Vec<Multiaddr>,
    /// Address others reach this relay at, when it differs from the listen addresses.
    #[arg(long)]
    pub external: Vec<Multiaddr>,
    /// HTTP address for the page, /bootstrap, /metrics and /health. Default 0.0.0.0:8080.
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// Storage quota in bytes (suffixes K, M, G, T allowed). Default 10G.
    #[arg(long)]
    pub quota: Option<String>,
    /// Directory of the web page to serve. Default: the www/ beside the binary's sources.
    #[arg(long)]
    pub www: Option<PathBuf>,
    /// Most open connections. Default 4096.
    #[arg(long)]
    pub max_connections: Option<u32>,
    /// Most established incoming connections from one IP address. Default 128.
    #[arg(long)]
    pub max_connections_per_ip: Option<u32>,
    /// Most incoming connections from one IP address still in their handshake. Default 32.
    #[arg(long)]
    pub max_pending_per_ip: Option<u32>,
    /// Bytes per second one peer may store here, on average (suffixes allowed). Default 64M.
    #[arg(long)]
    pub peer_store_rate: Option<String>,
    /// Bytes one peer may store here in a burst, before the rate applies. Default 1G.
    #[arg(long)]
    pub peer_store_burst: Option<String>,
    /// Seconds between repair rounds (each checks every stripe held against its close
    /// group). Default 30.
    #[arg(long)]
    pub repair_interval: Option<f64>,
    /// Seconds a group waits for a member that became unreachable before repairing around
    /// it, as long as more than `k` of a stripe's shards are live (at `k` or fewer it
    /// repairs at once). Default 7200: most absences of relays end within that, and
    /// repairing around each costs five times the traffic (docs/scale/durability.md).
    #[arg(long)]
    pub repair_grace: Option<f64>,
    /// Seconds a group waits instead for a member it has known for a week and found
    /// reachable nine tenths of that time (never less than `--repair-grace`). Default 86400:
    /// relays that keep coming back then cost half to a fifth of the repair traffic, and
    /// volatile ones are still rebuilt around after `--repair-grace` (docs/scale/grace.md).
    #[arg(long)]
    pub repair_grace_long: Option<f64>,
    /// Bytes per second repair may fetch to rebuild lost shards (suffixes allowed).
    /// Default 32M.
    #[arg(long)]
    pub repair_rate: Option<String>,
    /// When a replica looks up the group of the account that sent a certificate instead of
    /// taking it from its view of the live relays: `thin` (default: where its view lacks
    /// that account's neighbourhood, as a routing table does far from its owner) or
    /// `always`.
    #[arg(long)]
    pub group_lookups: Option<String>,
    /// Bytes repair may fetch at once before the rate holds it back (suffixes allowed).
    /// Default the larger of the rate and 16M.
    #[arg(long)]
    pub repair_burst: Option<String>,
    /// Seconds between audits: each samples a few claims of every relay this one shares
    /// stripes with and asks for proofs of possession. Default 300.
    #[arg(long)]
    pub audit_interval: Option<f64>,
    /// Bytes per second of its own shards this relay re-reads and re-hashes, to find disk
    /// loss by itself (suffixes allowed). Default 1M.
    #[arg(long)]
    pub scrub_rate: Option<String>,
    /// The ledger's minting account (64 hex digits): transfers it signs are not
    /// balance-checked. For local networks and tests; without it nothing can be minted.
    #[arg(long)]
    pub ledger_mint: Option<String>,
    /// Most any account may spend per `--ledger-cap-window` (0: no cap). It bounds what an
    /// owner could spend twice through a captured group. Default 1000000000.
    #[arg(long)]
    pub ledger_cap: Option<u64>,
    /// The spending cap's window in seconds. Default 86400.
    #[arg(long)]
    pub ledger_cap_window: Option<u64>,
    /// Epoch length in seconds: storage is paid and rewarded by the epoch. Default 3600.
    #[arg(long)]
    pub epoch: Option<u64>,
    /// Shard bytes one peer may store unpaid per hour (suffixes allowed). Default 256M.
    #[arg(long)]
    pub free_bytes: Option<String>,
    /// Shard bytes all peers together may store unpaid here per hour. Default 4G.
    #[arg(long)]
    pub free_bytes_total: Option<String>,
    /// What storage costs: ledger units per GiB of shard bytes per epoch. Default 1000.
    #[arg(long)]
    pub price: Option<u64>,
    /// Seconds a donating tab's announcement stands unless the tab refreshes it. Default 600.
    #[arg(long)]
    pub tab_ttl: Option<f64>,
    /// Epochs a paid stripe is kept after its batch ended (its owner's time to renew);
    /// then its shards are dropped. Default 24.
    #[arg(long)]
    pub expiry_grace: Option<u64>,
    /// Epochs a stripe stored free is kept, from the epoch this relay's group first took
    /// it; then its shards are dropped (paying for it, `kura renew`, keeps it). Default 168.
    #[arg(long)]
    pub free_epochs: Option<u64>,
    /// Percent of the quota that free (unpaid) stripes may hold; the rest stays for paid
    /// stores. Default 50.
    #[arg(long)]
    pub free_share: Option<u64>,
    /// Paid shards this relay aims to list in one page of its epoch claims (it claims in as
    /// many pages as its shards need). Default 512; small values are for tests.
    #[arg(long)]
    pub claim_page_shards: Option<usize>,
    /// Seconds between two spot-checks of one donating tab by this relay (a shard it
    /// announced, fetched and verified). Default 300.
    #[arg(long)]
    pub tab_check: Option<f64>,
    /// Reads of a stripe's shard served here (fading by half every ten minutes) that earn
    /// it one more tab copy of that shard, up to three. Default 16.
    #[arg(long)]
    pub tab_popular: Option<f64>,
    /// The key file of the account this relay's rewards are paid into (64 hex digits, as
    /// `kura wallet new` makes). Default DATA_DIR/rewards.key, made on first start.
    #[arg(long)]
    pub rewards_key: Option<PathBuf>,
    /// TOML file with any of the settings above (flags win).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// The same settings, from a file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub listen: Vec<Multiaddr>,
    #[serde(default)]
    pub bootstrap: Vec<Multiaddr>,
    #[serde(default)]
    pub external: Vec<Multiaddr>,
    pub http: Option<SocketAddr>,
    pub quota: Option<String>,
    pub www: Option<PathBuf>,
    pub max_connections: Option<u32>,
    pub max_connections_per_ip: Option<u32>,
    pub max_pending_per_ip: Option<u32>,
    pub peer_store_rate: Option<String>,
    pub peer_store_burst: Option<String>,
    pub repair_interval: Option<f64>,
    pub repair_grace: Option<f64>,
    pub repair_grace_long: Option<f64>,
    pub repair_rate: Option<String>,
    pub repair_burst: Option<String>,
    pub group_lookups: Option<String>,
    pub audit_interval: Option<f64>,
    pub scrub_rate: Option<String>,
    pub ledger_mint: Option<String>,
    pub ledger_cap: Option<u64>,
    pub ledger_cap_window: Option<u64>,
    pub epoch: Option<u64>,
    pub free_bytes: Option<String>,
    pub free_bytes_total: Option<String>,
    pub price: Option<u64>,
    pub rewards_key: Option<PathBuf>,
    pub tab_ttl: Option<f64>,
    pub tab_check: Option<f64>,
    pub tab_popular: Option<f64>,
    pub expiry_grace: Option<u64>,
    pub free_epochs: Option<u64>,
    pub free_share: Option<u64>,
    pub claim_page_shards: Option<usize>,
}

/// How long a group waits for an unreachable member by default: two hours. The simulator's
/// relay operators (up for weeks, back within the hour) read 73 shards per shard stored per
/// year repairing around every absence at once, 14 waiting two hours, with nothing lost.
pub const DEFAULT_REPAIR_GRACE_SECS: f64 = 7200.0;

/// The settings in effect.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: Vec<Multiaddr>,
    pub bootstrap: Vec<Multiaddr>,
    pub external: Vec<Multiaddr>,
    pub http: SocketAddr,
    pub quota: u64,
    pub www: PathBuf,
    pub max_connections: u32,
    pub max_connections_per_ip: u32,
    pub max_pending_per_ip: u32,
    /// Bytes per second one peer may store, and its burst.
    pub peer_store_rate: u64,
    pub peer_store_burst: u64,
    pub repair_interval: std::time::Duration,
    pub repair_grace: std::time::Duration,
    pub repair_grace_long: std::time::Duration,
    pub repair_rate: u64,
    pub repair_burst: u64,
    /// Whether a replica looks up every certificate sender's group (`--group-lookups
    /// always`), not only where its view is thin.
    pub group_lookups_always: bool,
    pub audit_interval: std::time::Duration,
    pub scrub_rate: u64,
    pub ledger_mint: Option<[u8; 32]>,
    pub ledger_cap: Option<kura_core::ledger::SpendCap>,
    pub farming: crate::farming::FarmingConfig,
    /// The rewards account's key file.
    pub rewards_key: PathBuf,
    /// Limits of donating tabs' announcements.
    pub tabs: kura_core::donation::Limits,
    /// How this relay spot-checks donating tabs.
    pub tab_checks: kura_core::donation::CheckLimits,
    /// When a stripe is popular enough for more tab copies.
    pub tab_popular: kura_core::donation::PopularLimits,
}

/// A 32-byte key in 64 hex digits.
fn parse_key(hex: &str) -> Result<[u8; 32]> {
    let hex = hex.trim();
    anyhow::ensure!(hex.len() == 64 && hex.is_ascii(), "not 64 hex digits");
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)?;
    }
    Ok(key)
}

/// An interval of `secs` seconds given as `flag`: between 0.1 s and a day.
fn seconds(flag: &str, secs: f64) -> Result<std::time::Duration> {
    anyhow::ensure!(
        secs.is_finite() && (0.1..=86_400.0).contains(&secs),
        "{flag} must be between 0.1 and 86400 seconds, not {secs}"
    );
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// Parses `10G`, `512M`, `1000` into bytes.
pub fn parse_bytes(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => anyhow::bail!("unknown size suffix in {s:?} (use K, M, G or T)"),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    let n: u64 = num.trim().parse().with_context(|| format!("{s:?} is not a size in bytes"))?;
    n.checked_mul(mult).with_context(|| format!("{s:?} is too large"))
}

/// The longest a relay should need to read as many bytes as its quota for repair: the
/// simulator finds that a relay needing a week loses stripes among churning relays, one
/// needing a day does not (`docs/scale/bandwidth.md`).
pub const REBUILD_HOLDING_WITHIN: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

impl Config {
    /// How long this relay, full, would take to read as much as it holds at its repair
    /// rate, when that is longer than [`REBUILD_HOLDING_WITHIN`]: its operator is told at
    /// start (a relay holding more than its link can rebuild in about a day makes the
    /// network lose data under churn).
    pub fn slow_rebuild(&self) -> Option<std::time::Duration> {
        let secs = self.quota / self.repair_rate.max(1);
        (secs > REBUILD_HOLDING_WITHIN.as_secs()).then(|| std::time::Duration::from_secs(secs))
    }

    /// Merges flags over the file (if any) over the defaults.
    pub fn load(flags: Flags) -> Result<Self> {
        let file = match &flags.config {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
                toml::from_str::<FileConfig>(&text).with_context(|| format!("in {}", p.display()))?
            }
            None => FileConfig::default(),
        };
        let pick = |a: Vec<Multiaddr>, b: Vec<Multiaddr>| if a.is_empty() { b } else { a };
        let listen = pick(flags.listen, file.listen);
        let listen = if listen.is_empty() {
            [
                "/ip4/0.0.0.0/tcp/4001",
                "/ip4/0.0.0.0/udp/4001/quic-v1",
                "/ip4/0.0.0.0/udp/4002/webrtc-direct",
                "/ip4/0.0.0.0/tcp/4003/ws",
            ]
            .iter()
            .map(|a| a.parse().context("default address"))
            .collect::<Result<_>>()?
        } else {
            listen
        };
        let data_dir = flags
            .data_dir
            .or(file.data_dir)
            .context("--data-dir is required (or data_dir in the config file)")?;
        let www = flags
            .www
            .or(file.www)
            .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../www")));
        let repair_rate =
            parse_bytes(flags.repair_rate.or(file.repair_rate).as_deref().unwrap_or("32M"))?.max(1);
        let rewards_key =
            flags.rewards_key.or(file.rewards_key).unwrap_or_else(|| data_dir.join("rewards.key"));
        let tabs = kura_core::donation::Limits {
            ttl: seconds("--tab-ttl", flags.tab_ttl.or(file.tab_ttl).unwrap_or(600.0))?,
            ..Default::default()
        };
        let tab_checks = kura_core::donation::CheckLimits {
            every: seconds("--tab-check", flags.tab_check.or(file.tab_check).unwrap_or(300.0))?,
            ..Default::default()
        };
        let reads_per_copy = flags.tab_popular.or(file.tab_popular).unwrap_or(16.0);
        anyhow::ensure!(
            reads_per_copy.is_finite() && reads_per_copy >= 1.0,
            "--tab-popular must be at least one read"
        );
        let tab_popular = kura_core::donation::PopularLimits { reads_per_copy, ..Default::default() };
        let quota = parse_bytes(flags.quota.or(file.quota).as_deref().unwrap_or("10G"))?;
        Ok(Self {
            tabs,
            tab_checks,
            tab_popular,
            rewards_key,
            data_dir,
            listen,
            bootstrap: pick(flags.bootstrap, file.bootstrap),
            external: pick(flags.external, file.external),
            http: flags.http.or(file.http).unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8080))),
            quota,
            www,
            max_connections: flags.max_connections.or(file.max_connections).unwrap_or(4096),
            max_connections_per_ip: flags
                .max_connections_per_ip
                .or(file.max_connections_per_ip)
                .unwrap_or(128),
            max_pending_per_ip: flags.max_pending_per_ip.or(file.max_pending_per_ip).unwrap_or(32),
            peer_store_rate: parse_bytes(
                flags.peer_store_rate.or(file.peer_store_rate).as_deref().unwrap_or("64M"),
            )?
            .max(1),
            peer_store_burst: parse_bytes(
                flags.peer_store_burst.or(file.peer_store_burst).as_deref().unwrap_or("1G"),
            )?
            .max(1),
            repair_interval: seconds(
                "--repair-interval",
                flags.repair_interval.or(file.repair_interval).unwrap_or(30.0),
            )?,
            repair_grace: seconds(
                "--repair-grace",
                flags.repair_grace.or(file.repair_grace).unwrap_or(DEFAULT_REPAIR_GRACE_SECS),
            )?,
            repair_grace_long: seconds(
                "--repair-grace-long",
                flags
                    .repair_grace_long
                    .or(file.repair_grace_long)
                    .unwrap_or(kura_core::repair::LONG_GRACE.as_secs_f64()),
            )?,
            repair_rate,
            group_lookups_always: match flags.group_lookups.or(file.group_lookups).as_deref() {
                None | Some("thin") => false,
                Some("always") => true,
                Some(other) => anyhow::bail!("--group-lookups: `{other}` is neither `thin` nor `always`"),
            },
            repair_burst: match flags.repair_burst.or(file.repair_burst) {
                Some(b) => parse_bytes(&b)?.max(1),
                None => repair_rate.max(16 << 20),
            },
            audit_interval: seconds(
                "--audit-interval",
                flags.audit_interval.or(file.audit_interval).unwrap_or(300.0),
            )?,
            scrub_rate: parse_bytes(flags.scrub_rate.or(file.scrub_rate).as_deref().unwrap_or("1M"))?.max(1),
            ledger_mint: match flags.ledger_mint.or(file.ledger_mint) {
                None => None,
                Some(hex) => Some(parse_key(&hex).with_context(|| format!("--ledger-mint {hex}"))?),
            },
            ledger_cap: {
                let d = kura_core::ledger::DEFAULT_SPEND_CAP;
                match flags.ledger_cap.or(file.ledger_cap).unwrap_or(d.amount) {
                    0 => None,
                    amount => Some(kura_core::ledger::SpendCap {
                        amount,
                        window: flags.ledger_cap_window.or(file.ledger_cap_window).unwrap_or(d.window).max(1),
                    }),
                }
            },
            farming: {
                use kura_core::farming::{Allowance, DEFAULT_ALLOWANCE, DEFAULT_EPOCH_SECS, DEFAULT_PRICES};
                let bytes = |flag: Option<String>, default: u64| -> Result<u64> {
                    flag.map_or(Ok(default), |b| parse_bytes(&b))
                };
                crate::farming::FarmingConfig {
                    prices: kura_core::farming::Prices {
                        price: flags.price.or(file.price).unwrap_or(DEFAULT_PRICES.price),
                        ..DEFAULT_PRICES
                    },
                    allowance: Allowance {
                        per_account: bytes(
                            flags.free_bytes.or(file.free_bytes),
                            DEFAULT_ALLOWANCE.per_account,
                        )?,
                        per_relay: bytes(
                            flags.free_bytes_total.or(file.free_bytes_total),
                            DEFAULT_ALLOWANCE.per_relay,
                        )?,
                        ..DEFAULT_ALLOWANCE
                    },
                    epoch_secs: flags.epoch.or(file.epoch).unwrap_or(DEFAULT_EPOCH_SECS).max(1),
                    expiry_grace: flags
                        .expiry_grace
                        .or(file.expiry_grace)
                        .unwrap_or(crate::farming::DEFAULT_EXPIRY_GRACE),
                    free_room: match flags.free_share.or(file.free_share).unwrap_or(50) {
                        // All of it: the quota is the only bound.
                        100.. => u64::MAX,
                        share => (u128::from(quota) * u128::from(share) / 100) as u64,
                    },
                    free_life: kura_core::farming::FreeLife {
                        epochs: flags
                            .free_epochs
                            .or(file.free_epochs)
                            .unwrap_or(kura_core::farming::DEFAULT_FREE_LIFE.epochs)
                            .max(1),
                    },
                    page_target: flags
                        .claim_page_shards
                        .or(file.claim_page_shards)
                        .unwrap_or(kura_core::farming::PAGE_TARGET)
                        .clamp(1, kura_core::farming::MAX_CLAIM_ENTRIES),
                }
            },
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_bytes("1000").unwrap(), 1000);
        assert_eq!(parse_bytes("10G").unwrap(), 10 << 30);
        assert_eq!(parse_bytes("512m").unwrap(), 512 << 20);
        assert!(parse_bytes("12X").is_err());
        assert!(parse_bytes("G").is_err());
        assert!(parse_bytes("99999999999T").is_err());
    }

    #[test]
    fn the_sample_config_file_loads() {
        let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/dist/relay.toml");
        let flags = Flags::parse_from(["kura-relay", "--config", sample, "--data-dir", "/tmp/x"]);
        let c = Config::load(flags).unwrap();
        assert_eq!(c.repair_interval, std::time::Duration::from_secs(30));
        assert_eq!((c.repair_rate, c.repair_burst), (32 << 20, 32 << 20));
        assert_eq!(c.slow_rebuild(), None, "the sample's quota is rebuilt within a day");
        let flags =
            Flags::parse_from(["kura-relay", "--data-dir", "/x", "--quota", "10T", "--repair-rate", "12M"]);
        let slow = Config::load(flags).unwrap().slow_rebuild().unwrap();
        assert!(slow.as_secs() / 3600 == 242, "10 TiB at 12 MiB/s: {slow:?}");
        assert_eq!(c.repair_grace, std::time::Duration::from_secs(7200));
        assert_eq!(c.repair_grace_long, std::time::Duration::from_secs(86_400));
        let flags = Flags::parse_from(["kura-relay", "--data-dir", "/x", "--repair-grace", "5"]);
        assert_eq!(Config::load(flags).unwrap().repair_grace, std::time::Duration::from_secs(5));
        let flags = Flags::parse_from(["kura-relay", "--data-dir", "/x", "--repair-interval", "0"]);
        assert!(format!("{:#}", Config::load(flags).unwrap_err()).contains("--repair-interval"));
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = kura_tests::Scratch::new("config").unwrap();
        let path = dir.path().join("relay.toml");
        let text = r#"
data_dir = "/var/lib/kura"
quota = "1G"
http = "127.0.0.1:9000"
listen = ["/ip4/127.0.0.1/tcp/5000"]
"#;
        std::fs::write(&path, text).unwrap();
        let flags = Flags::parse_from(["kura-relay", "--config", path.to_str().unwrap(), "--quota", "2G"]);
        let c = Config::load(flags).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/kura"));
        assert_eq!(c.quota, 2 << 30);
        assert_eq!(c.farming.free_room, 1 << 30, "half the quota is room for free stripes");
        let all = Flags::parse_from(["kura-relay", "--data-dir", "/x", "--free-share", "100"]);
        assert_eq!(Config::load(all).unwrap().farming.free_room, u64::MAX, "the quota alone bounds them");
        assert_eq!(c.http.port(), 9000);
        assert_eq!(c.listen.len(), 1);
        assert_eq!(
            c.ledger_cap,
            Some(kura_core::ledger::DEFAULT_SPEND_CAP),
            "the spending cap is on by default"
        );
        let off = Flags::parse_from(["kura-relay", "--data-dir", "/x", "--ledger-cap", "0"]);
        assert_eq!(Config::load(off).unwrap().ledger_cap, None);
        std::fs::write(&path, "data_dir = \"/x\"\nbogus = 1\n").unwrap();
        let flags = Flags::parse_from(["kura-relay", "--config", path.to_str().unwrap()]);
        assert!(format!("{:#}", Config::load(flags).unwrap_err()).contains("bogus"));
    }
}
