//! What browsers cost the relays: the shard bytes they send and fetch, the lookup messages
//! they set off, the tabs' reservations, spread over relays by Kura's placement.
//!
//! A browser is a full client but no DHT server: each stripe it stores or reads costs one
//! lookup, answered by relays (the 20 closest to the stripe answer most of its ~23
//! messages, [`crate::kad`]), then a shard to each of the `n` members of the close group
//! (a put) or from `k` of them (a get). Donating tabs each hold one reservation on a relay
//! they picked at random among those they know. One day of activity: every browser puts
//! `puts` files and reads `gets` files of `stripes` stripes each.

use crate::population::{random_key, Population};
use kura_core::testdata::XorShift;

/// One run.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub relays: usize,
    /// Browsers active in the day.
    pub browsers: usize,
    pub puts: usize,
    pub gets: usize,
    /// Stripes per file, shard bytes per shard, and the code.
    pub stripes: usize,
    pub shard_bytes: u64,
    pub k: usize,
    pub n: usize,
    /// Share of the browsers that donate (hold a reservation).
    pub donating: f64,
    pub seed: u64,
}

/// One relay's day, as a distribution over relays.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spread {
    pub mean: f64,
    pub p99: f64,
    pub max: f64,
}

fn spread(mut v: Vec<f64>) -> Spread {
    let mean = crate::mean(&v);
    let p99 = crate::quantile(&mut v, 0.99);
    let max = v.last().copied().unwrap_or(0.0);
    Spread { mean, p99, max }
}

/// What happened.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome {
    /// Shard bytes a relay takes from browsers and sends to them, per day.
    pub bytes_in: Spread,
    pub bytes_out: Spread,
    /// Lookup messages a relay answers for browsers, per day.
    pub lookups: Spread,
    /// Distinct browsers a relay serves in the day.
    pub browsers: Spread,
    /// Donating tabs' reservations a relay holds.
    pub reservations: Spread,
}

/// Lookup messages per lookup that go to the closest relays (the rest to relays on the
/// way): the simulator's lookups take 21.5–24.4 messages at 1,000–100,000 relays, 20 of
/// them to the 20 closest.
const LOOKUP_CLOSEST: usize = 20;
const LOOKUP_PATH: usize = 3;

/// Runs `c`.
pub fn run(c: &Config) -> Outcome {
    let mut rng = XorShift(c.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 9);
    let pop = Population::random(c.relays, &mut rng);
    let r = pop.len();
    let (mut bytes_in, mut bytes_out, mut lookups) = (vec![0f64; r], vec![0f64; r], vec![0f64; r]);
    let mut browsers = vec![0f64; r];
    let mut reservations = vec![0f64; r];
    let mut seen: Vec<u32> = vec![u32::MAX; r];
    for b in 0..c.browsers {
        if rng.chance(c.donating) {
            reservations[rng.below(r)] += 1.0;
        }
        for file in 0..c.puts + c.gets {
            let put = file < c.puts;
            for _ in 0..c.stripes {
                let key = random_key(&mut rng);
                let closest = pop.closest(&key, LOOKUP_CLOSEST.max(c.n), |_| true);
                for &i in closest.iter().take(LOOKUP_CLOSEST) {
                    lookups[i] += 1.0;
                }
                for _ in 0..LOOKUP_PATH {
                    lookups[rng.below(r)] += 1.0;
                }
                let group = &closest[..c.n];
                let mut touch = |i: usize, seen: &mut Vec<u32>| {
                    if seen[i] != b as u32 {
                        seen[i] = b as u32;
                        browsers[i] += 1.0;
                    }
                };
                if put {
                    for &i in group {
                        bytes_in[i] += c.shard_bytes as f64;
                        touch(i, &mut seen);
                    }
                } else {
                    // Any `k` of the group: the reader asks those that answer first.
                    let mut members: Vec<usize> = group.to_vec();
                    for _ in 0..c.k {
                        let i = members.swap_remove(rng.below(members.len()));
                        bytes_out[i] += c.shard_bytes as f64;
                        touch(i, &mut seen);
                    }
                }
            }
        }
    }
    Outcome {
        bytes_in: spread(bytes_in),
        bytes_out: spread(bytes_out),
        lookups: spread(lookups),
        browsers: spread(browsers),
        reservations: spread(reservations),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_follows_the_arithmetic_and_is_spread_within_a_few_times_the_mean() {
        let c = Config {
            relays: 200,
            browsers: 400,
            puts: 1,
            gets: 2,
            stripes: 5,
            shard_bytes: 1 << 20,
            k: 4,
            n: 6,
            donating: 0.5,
            seed: 4,
        };
        let o = run(&c);
        // Means are exact: every shard lands on some relay.
        let puts = (c.browsers * c.puts * c.stripes * c.n) as f64 * (1 << 20) as f64 / c.relays as f64;
        assert!((o.bytes_in.mean - puts).abs() < 1.0, "{} vs {puts}", o.bytes_in.mean);
        let gets = (c.browsers * c.gets * c.stripes * c.k) as f64 * (1 << 20) as f64 / c.relays as f64;
        assert!((o.bytes_out.mean - gets).abs() < 1.0);
        let msgs = (c.browsers * 3 * c.stripes * (LOOKUP_CLOSEST + LOOKUP_PATH)) as f64 / c.relays as f64;
        assert!((o.lookups.mean - msgs).abs() < 1e-6);
        // XOR placement spreads load: the busiest relay within a few times the mean.
        assert!(o.bytes_in.max < 4.0 * o.bytes_in.mean, "{:?}", o.bytes_in);
        assert!(o.reservations.mean > 0.0 && o.reservations.max >= o.reservations.mean);
    }
}
