//! A `kura donate` process, for tests of donating clients.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};

/// A `kura donate` process and the last figures it printed.
#[derive(Debug)]
pub struct Donor {
    child: Child,
    pub dir: PathBuf,
    stats: Arc<Mutex<serde_json::Value>>,
}

impl Donor {
    /// A donor that reserves on the first of `relays` that grants one.
    pub fn start(dir: &Path, relays: &[String]) -> Self {
        Self::start_paid(dir, relays, None)
    }

    /// A donor the relays pay into `pay_to` (an account), if any.
    pub fn start_paid(dir: &Path, relays: &[String], pay_to: Option<&str>) -> Self {
        let mut args = vec![
            "donate".to_owned(),
            "--dir".into(),
            dir.to_str().unwrap().into(),
            "--refresh".into(),
            "2".into(),
        ];
        for r in relays {
            args.extend(["--bootstrap".to_owned(), r.clone()]);
        }
        if let Some(account) = pay_to {
            args.extend(["--pay-to".to_owned(), account.to_owned()]);
        }
        let mut child = crate::kura_command()
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting kura donate");
        let stats = Arc::new(Mutex::new(serde_json::Value::Null));
        let out = child.stdout.take().expect("its stdout");
        let s = stats.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str(&line) {
                    *s.lock().unwrap_or_else(|p| p.into_inner()) = v;
                }
            }
        });
        Self { child, dir: dir.to_owned(), stats }
    }

    pub fn stat(&self, key: &str) -> serde_json::Value {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())[key].clone()
    }

    pub fn num(&self, key: &str) -> u64 {
        self.stat(key).as_u64().unwrap_or(0)
    }

    /// stripe (hex) → index, from the files it keeps.
    pub fn held(&self) -> BTreeMap<String, u8> {
        let mut out = BTreeMap::new();
        for e in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some((stripe, index)) = name.strip_suffix(".shard").and_then(|b| b.split_once('.')) {
                if let Ok(i) = index.parse() {
                    out.insert(stripe.to_owned(), i);
                }
            }
        }
        out
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Donor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
