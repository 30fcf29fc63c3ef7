//! Kura at scale, simulated: a population of relays in the key space Kura places stripes
//! and ledger accounts in ([`kura_core::placement::DhtKey`], XOR distance), Kademlia routing
//! tables and iterative lookups as discrete events over a network with per-link latency
//! and dead peers ([`kad`]), and close groups under an adversary whose ids are random or
//! ground towards a target ([`capture`]). Deterministic: the same seed gives the same
//! result. `scripts/sim.sh` runs every scenario and writes `docs/scale/`.

pub mod audits;
pub mod capture;
pub mod durability;
pub mod economy;
pub mod groups;
pub mod kad;
pub mod ledger;
pub mod load;
pub mod population;

/// Peak resident memory of this process so far, in MiB (Linux; 0 elsewhere).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The `q`-quantile of `v` (sorted here).
pub fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// The mean of `v`.
pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}
