//! A network of real `kura-relay` processes on 127.0.0.1 and the real `kura` client binary,
//! for end-to-end tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::relay::{wait_for, RelayProc};
use crate::Scratch;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

/// Runs the `kura` client binary.
pub fn kura(args: &[&str]) -> Output {
    crate::kura_command().args(args).output().unwrap()
}

/// A network of relays in one scratch directory, all bootstrapped from relay 0.
#[derive(Debug)]
pub struct Net {
    pub dir: Scratch,
    pub relays: Vec<Option<RelayProc>>,
    /// Every relay's TCP address, live or not (clients get all of them).
    pub addrs: Vec<String>,
    /// Arguments every relay of this network starts with.
    pub relay_args: Vec<String>,
}

impl Net {
    pub fn start(tag: &str, n: usize) -> Self {
        Self::start_with(tag, n, &[])
    }

    /// [`start`](Self::start) with extra arguments for every relay.
    pub fn start_with(tag: &str, n: usize, relay_args: &[&str]) -> Self {
        let dir = Scratch::new(tag).unwrap();
        let relay_args: Vec<String> = relay_args.iter().map(|s| (*s).to_owned()).collect();
        let args: Vec<&str> = relay_args.iter().map(String::as_str).collect();
        let first = RelayProc::spawn(&dir.path().join("r0"), &args).unwrap();
        let boot = first.addr("/tcp/").unwrap();
        let mut relays = vec![Some(first)];
        let mut with_boot = args.clone();
        with_boot.extend(["--bootstrap", &boot]);
        for i in 1..n {
            relays.push(Some(RelayProc::spawn(&dir.path().join(format!("r{i}")), &with_boot).unwrap()));
        }
        let addrs = relays.iter().map(|r| r.as_ref().unwrap().addr("/tcp/").unwrap()).collect();
        let net = Self { dir, relays, addrs, relay_args };
        let ids: Vec<String> = net.live().map(|r| r.peer_id.clone()).collect();
        let table = |r: &RelayProc| -> Option<Vec<String>> {
            let s = r.json("/status").ok()?;
            Some(s["routing_table"].as_array()?.iter().filter_map(|v| Some(v.as_str()?.to_owned())).collect())
        };
        if n <= kura_core::placement::LOOKUP_FINDS {
            wait_for(Duration::from_secs(60), "relay 0 to know every relay", || {
                let table = table(net.relay(0))?;
                ids[1..].iter().all(|id| table.contains(id)).then_some(())
            })
            .unwrap();
        } else {
            // More relays than a bucket holds: no table need hold them all, so every relay
            // is known to some relay, and every table holds a lookup's worth.
            wait_for(Duration::from_secs(120), "every relay to be known, every table full", || {
                let tables: Vec<Vec<String>> = net.live().map(table).collect::<Option<_>>()?;
                let known = ids.iter().all(|id| tables.iter().any(|t| t.contains(id)));
                let full = tables.iter().all(|t| t.len() >= kura_core::placement::LOOKUP_FINDS);
                (known && full).then_some(())
            })
            .unwrap();
        }
        net
    }

    pub fn relay(&self, i: usize) -> &RelayProc {
        self.relays[i].as_ref().expect("relay is running")
    }

    pub fn live(&self) -> impl Iterator<Item = &RelayProc> {
        self.relays.iter().flatten()
    }

    pub fn kill9(&mut self, i: usize) {
        self.relays[i].take().expect("relay is running").kill9().unwrap();
    }

    /// Restarts relay `i` on its data directory, on a new port (other relays and clients
    /// learn it again; tests give clients every address).
    pub fn restart(&mut self, i: usize) {
        let r = self.spawn(i);
        self.addrs[i] = r.addr("/tcp/").unwrap();
        self.relays[i] = Some(r);
    }

    /// Starts one more relay (number `relays.len()`), bootstrapped from a live one.
    pub fn add(&mut self) -> usize {
        self.add_with(&[])
    }

    /// [`add`](Self::add), this relay with `extra` arguments too.
    pub fn add_with(&mut self, extra: &[&str]) -> usize {
        let i = self.relays.len();
        let r = self.spawn_with(i, extra);
        self.addrs.push(r.addr("/tcp/").unwrap());
        self.relays.push(Some(r));
        i
    }

    fn spawn(&self, i: usize) -> RelayProc {
        self.spawn_with(i, &[])
    }

    fn spawn_with(&self, i: usize, extra: &[&str]) -> RelayProc {
        let boot = self.live().next().unwrap().addr("/tcp/").unwrap();
        let mut args: Vec<&str> = self.relay_args.iter().map(String::as_str).collect();
        args.extend(extra);
        args.extend(["--bootstrap", &boot]);
        RelayProc::spawn(&self.dir.path().join(format!("r{i}")), &args).unwrap()
    }

    pub fn bootstrap_args(&self) -> Vec<String> {
        self.addrs.iter().flat_map(|a| ["--bootstrap".to_owned(), a.clone()]).collect()
    }

    pub fn shards_held(&self) -> u64 {
        self.live().map(|r| r.json("/status").unwrap()["shards"].as_u64().unwrap()).sum()
    }

    pub fn put(&self, file: &Path, extra: &[&str]) -> Result<String, String> {
        let mut args = vec!["put".to_owned(), file.to_str().unwrap().to_owned()];
        args.extend(self.bootstrap_args());
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let out = kura(&args.iter().map(String::as_str).collect::<Vec<_>>());
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_eq!(stdout.lines().count(), 1, "stdout is the capability alone: {stdout:?}");
        Ok(stdout.trim().to_owned())
    }

    pub fn get(&self, cap: &str, out: &Path, extra: &[&str]) -> Result<(), String> {
        let mut args = vec!["get".to_owned(), cap.to_owned(), "-o".into(), out.to_str().unwrap().to_owned()];
        args.extend(self.bootstrap_args());
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let o = kura(&args.iter().map(String::as_str).collect::<Vec<_>>());
        if o.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&o.stderr).into_owned())
        }
    }

    /// Gets `cap` and checks the result is exactly `want`.
    pub fn get_exact(&self, cap: &str, want: &[u8], tag: &str) {
        let out = self.dir.path().join(format!("out-{tag}"));
        self.get(cap, &out, &[]).unwrap_or_else(|e| panic!("get {tag}: {e}"));
        let got = std::fs::read(&out).unwrap();
        assert!(got == want, "{tag}: {} bytes back, {} put, contents differ", got.len(), want.len());
        std::fs::remove_file(&out).unwrap();
    }
}

impl Net {
    /// Runs `kura wallet ARGS --key KEY` with the network's bootstrap addresses; stdout, or
    /// the failure's words.
    pub fn wallet(&self, key: &Path, args: &[&str]) -> Result<String, String> {
        let mut all: Vec<String> = vec!["wallet".into()];
        all.extend(args.iter().map(|s| (*s).to_owned()));
        all.extend(["--key".into(), key.display().to_string()]);
        all.extend(self.bootstrap_args());
        let out = kura(&all.iter().map(String::as_str).collect::<Vec<_>>());
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
        }
    }

    /// What the wallet `key` can spend.
    pub fn balance(&self, key: &Path) -> u64 {
        self.wallet(key, &["balance"]).unwrap().parse().unwrap()
    }
}

/// Makes a wallet key `dir/NAME.key` with `kura wallet new`; its path and account.
pub fn new_key(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(format!("{name}.key"));
    let out = kura(&["wallet", "new", "--key", &path.display().to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let account = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(account.len(), 64, "{account}");
    (path, account)
}
