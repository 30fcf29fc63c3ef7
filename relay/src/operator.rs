//! What the relay's operator sees of it over time: a sample of what it stores, the audits it
//! answered, the stores it took paid and unpaid and the credits its epochs earned, every
//! minute for the last day, kept in memory (`GET /operator.json`, for the operator only;
//! `GET /operator` draws it).

use crate::node::Shared;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// Samples kept: a day of minutes.
pub const KEPT: usize = 1440;
/// Time between samples.
pub const EVERY: Duration = Duration::from_secs(60);

/// The relay at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// Unix seconds.
    pub t: u64,
    pub shards: u64,
    pub bytes: u64,
    /// Challenges to prove a shard this relay answered with a proof, and could not.
    pub audits_passed: u64,
    pub audits_failed: u64,
    /// Client stores taken within the free allowance, and paid by postage.
    pub stores_free: u64,
    pub stores_paid: u64,
    /// Paid stripes held (stamps kept).
    pub stamps: u64,
    /// Credits this relay's epochs earned since it started.
    pub earned: u64,
}

/// The samples of the last day.
#[derive(Debug, Default)]
pub struct History {
    samples: Mutex<VecDeque<Sample>>,
}

impl History {
    /// Adds a sample, dropping the oldest beyond [`KEPT`].
    pub fn push(&self, s: Sample) {
        let mut v = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if v.len() == KEPT {
            v.pop_front();
        }
        v.push_back(s);
    }

    /// Every sample, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap_or_else(|p| p.into_inner()).iter().copied().collect()
    }
}

/// The relay now.
pub fn sample(shared: &Shared) -> Sample {
    let u = shared.store.usage();
    let m = &shared.metrics;
    let audits = |verdict: &str| {
        m.audits
            .get_or_create(&crate::metrics::AuditLabels { role: "auditee".into(), verdict: verdict.into() })
            .get()
    };
    Sample {
        t: crate::unix_now(),
        shards: u.shards,
        bytes: u.bytes,
        audits_passed: audits("pass"),
        audits_failed: audits("fail"),
        stores_free: m.stores_free.get(),
        stores_paid: m.stores_paid.get(),
        stamps: shared.farming.stamps() as u64,
        earned: shared.farming.earnings().earned,
    }
}

/// Samples the relay every [`EVERY`], for ever.
pub async fn run(shared: std::sync::Arc<Shared>) {
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tick.tick().await;
        shared.history.push(sample(&shared));
    }
}

/// The operator's page: numbers and a chart of stored bytes and audits over the day, from
/// `/operator.json` with the token given after `#token=` (it never leaves the browser but
/// as the request's `Authorization`).
pub const PAGE: &str = include_str!("operator.html");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_the_last_day() {
        let h = History::default();
        let s = |t| Sample {
            t,
            shards: 0,
            bytes: t,
            audits_passed: 0,
            audits_failed: 0,
            stores_free: 0,
            stores_paid: 0,
            stamps: 0,
            earned: 0,
        };
        for t in 0..(KEPT as u64 + 10) {
            h.push(s(t));
        }
        let all = h.samples();
        assert_eq!((all.len(), all[0].t, all[KEPT - 1].t), (KEPT, 10, KEPT as u64 + 9));
    }
}
