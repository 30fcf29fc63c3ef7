//! `kura ls`: the files this machine put, from the list `kura put` keeps (`--files`, by
//! default `~/.kura/files.jsonl`; mode 0600, since a capability is read access to its file):
//! each file's name, size, capability, and until when its storage is paid.

use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The default list.
pub fn default_list() -> PathBuf {
    super::wallet_cmd::default_key().with_file_name("files.jsonl")
}

/// One upload as the list keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub size: u64,
    pub capability: String,
    /// The batch that paid for it (hex) and what it cost; none for an unpaid upload.
    pub batch: Option<String>,
    pub cost: u64,
    /// Unix second its storage stops being paid.
    pub paid_until: Option<u64>,
}

impl Entry {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name, "size": self.size, "capability": self.capability,
            "batch": self.batch, "cost": self.cost, "paid_until": self.paid_until,
        })
    }

    fn from_json(v: &Value) -> Option<Self> {
        Some(Self {
            name: v["name"].as_str()?.to_owned(),
            size: v["size"].as_u64()?,
            capability: v["capability"].as_str()?.to_owned(),
            batch: v["batch"].as_str().map(str::to_owned),
            cost: v["cost"].as_u64().unwrap_or(0),
            paid_until: v["paid_until"].as_u64(),
        })
    }
}

/// The entries of the list at `path` (none if it does not exist; lines that do not parse
/// are skipped).
pub fn read(path: &Path) -> Result<Vec<Entry>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter_map(|v| Entry::from_json(&v))
        .collect())
}

/// Adds `entry` to the list at `path`, in place of an entry of the same capability (a
/// renewal); written whole and renamed into place, mode 0600.
pub fn record(path: &Path, entry: &Entry) -> Result<()> {
    let mut all = read(path)?;
    all.retain(|e| e.capability != entry.capability);
    all.push(entry.clone());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text: String = all.iter().map(|e| format!("{}\n", e.to_json())).collect();
    kura_p2p::docs::write_private(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// How long until `until` from `now`, in words: "29 d 23 h", "5 min", "expired".
fn remaining(until: u64, now: u64) -> String {
    let left = until.saturating_sub(now);
    match left {
        0 => "expired".into(),
        s if s >= 86_400 => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s => format!("{} min", s.div_ceil(60)),
    }
}

/// Prints the list: one line per file, the newest last.
pub fn ls(path: &Path) -> Result<()> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    for e in read(path)? {
        let paid = match e.paid_until {
            Some(until) => format!(
                "paid {} ({} credits), {} left",
                e.batch.as_deref().map_or("", |b| &b[..12.min(b.len())]),
                e.cost,
                remaining(until, now)
            ),
            None => "unpaid (free allowance)".into(),
        };
        println!("{}\t{} bytes\t{paid}\t{}", e.name, e.size, e.capability);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_list_keeps_every_upload_and_is_the_owners_alone() {
        let dir = std::env::temp_dir().join(format!("kura-files-{}", std::process::id()));
        let path = dir.join("files.jsonl");
        assert_eq!(read(&path).unwrap(), vec![]);
        let paid = Entry {
            name: "a b.txt".into(),
            size: 12,
            capability: "kura:x".into(),
            batch: Some("ab".repeat(32)),
            cost: 458,
            paid_until: Some(1_000),
        };
        let free = Entry {
            name: "c".into(),
            capability: "kura:y".into(),
            batch: None,
            cost: 0,
            paid_until: None,
            ..paid.clone()
        };
        record(&path, &paid).unwrap();
        record(&path, &free).unwrap();
        assert_eq!(read(&path).unwrap(), vec![paid.clone(), free.clone()]);
        // Renewed: the entry of that capability is replaced.
        let renewed = Entry { paid_until: Some(5_000), cost: 900, ..paid };
        record(&path, &renewed).unwrap();
        assert_eq!(read(&path).unwrap(), vec![free, renewed]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(remaining(1_000, 999), "1 min");
        assert_eq!(remaining(1_000, 1_000), "expired");
        assert_eq!(remaining(86_400 + 3 * 3600 + 59, 0), "1 d 3 h");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
