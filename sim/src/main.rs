//! `kura-sim`: Kura's scale scenarios, deterministic by seed. `kura-sim all --out DIR` runs
//! them all and writes Markdown tables and CSV there (`scripts/sim.sh` adds the plots).

use anyhow::Result;
use clap::{Parser, Subcommand};
use kura_core::testdata::XorShift;
use kura_sim::audits::{self, Holder};
use kura_sim::capture::{self, GROUPS};
use kura_sim::durability::{self, PROFILES};
use kura_sim::economy;
use kura_sim::kad::{self, Tables, K};
use kura_sim::ledger;
use kura_sim::load;
use kura_sim::population::{random_key, Population};
use kura_sim::{mean, peak_rss_mib, quantile};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
#[command(about = "Kura at scale: deterministic simulations over kura-core's rules")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// The size of a churn run: relays, stripes of 4+2, days, seed.
#[derive(clap::Args, Debug)]
struct ChurnRun {
    #[arg(long, default_value_t = 1000)]
    relays: usize,
    #[arg(long, default_value_t = 2000)]
    stripes: usize,
    #[arg(long, default_value_t = 90.0)]
    days: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Subcommand)]
enum Cmd {
    /// Lookup hops, messages and time versus the number of relays.
    Lookups {
        #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
        nodes: Vec<usize>,
        #[arg(long, default_value_t = 500)]
        lookups: usize,
        /// Share of relays down (their table entries stay, and time out when asked).
        #[arg(long, default_value_t = 0.0)]
        dead: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Close groups captured by an adversary with random ids, and the work to grind ids.
    Capture {
        #[arg(long, default_value_t = 10_000)]
        nodes: usize,
        #[arg(long, default_value_t = 20_000)]
        targets: usize,
        #[arg(long, default_value_t = 3)]
        grinds: usize,
        /// Honest identities made to time the join work.
        #[arg(long, default_value_t = 2)]
        identities: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write `capture.md` and `capture.csv` here (as `all` does) instead of printing.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Seeds of ed25519 keys whose peer ids carry the join work, one per line in hex (a pool
    /// for tests that start many relays).
    JoinKeys {
        #[arg(long, default_value_t = 64)]
        count: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Seeds of ed25519 keys whose accounts carry the account work
    /// (`kura_core::ledger::ACCOUNT_BITS`), one per line in hex: the wallets tests fund.
    AccountKeys {
        #[arg(long, default_value_t = 32)]
        count: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Durability and repair traffic under churn, decided by kura-core's repair rule.
    Durability(ChurnRun),
    /// Wide stripes' repair: lost shards rebuilt one by one, together, or together once a
    /// third of the parity is lost (Kura's rule).
    Rebuilds(ChurnRun),
    /// A grace that follows each relay's record, against fixed graces.
    Grace(ChurnRun),
    /// Durability and repair reads when messages are lost.
    Loss(ChurnRun),
    /// Durability when each relay's repair bandwidth is limited (the hours it takes to read
    /// as much as it holds).
    Bandwidth(ChurnRun),
    /// Time and memory of a whole churn run at a given size (relay operators, 4+2, repair at
    /// once, the rule every relay runs for every stripe), in a process of its own so that
    /// its peak memory is its own: one Markdown row, appended to `--append` if given.
    Size {
        #[arg(long)]
        relays: usize,
        #[arg(long)]
        stripes: usize,
        #[arg(long, default_value_t = 30.0)]
        days: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        append: Option<PathBuf>,
    },
    /// Silent loss and dishonest holders found by the relays' audits and scrub.
    Audits {
        #[arg(long, default_value_t = 300)]
        relays: usize,
        #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
        shards: Vec<usize>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write audits.md and audits.csv there instead of printing the table.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The farming economy over epochs: burns, rewards, droppers, a self-dealer.
    Economy {
        #[arg(long, default_value_t = 1000)]
        relays: usize,
        #[arg(long, default_value_t = 365)]
        epochs: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write economy.md and economy.csv there instead of printing the table.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The credits ledger under an adversary: double spends and frozen accounts.
    Ledger {
        #[arg(long, default_value_t = 10_000)]
        relays: usize,
        #[arg(long, default_value_t = 5_000)]
        accounts: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// What browsers cost the relays per day: shard bytes, lookups, reservations.
    Load {
        /// Sizes, paired with `--per-relay` in order.
        #[arg(long, value_delimiter = ',', default_value = "1000")]
        relays: Vec<usize>,
        #[arg(long, value_delimiter = ',', default_value = "10")]
        per_relay: Vec<usize>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Audit groups at scale: what a claimant's lookup, an auditor's table and a far
    /// replica's table can tell of a group, and the reach rule.
    Groups {
        #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
        nodes: Vec<usize>,
        #[arg(long, default_value_t = 300)]
        points: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Every scenario; tables to `--out`.
    All {
        #[arg(long)]
        out: PathBuf,
        /// Sizes for the lookup scenarios.
        #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
        nodes: Vec<usize>,
        /// Small sizes, for a quick check.
        #[arg(long)]
        quick: bool,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

/// One row of the lookup table.
struct LookupRow {
    nodes: usize,
    dead: f64,
    build_s: f64,
    run_s: f64,
    entries: usize,
    rss_mib: f64,
    hops_mean: f64,
    hops_p99: f64,
    msgs_mean: f64,
    msgs_p99: f64,
    ms_p50: f64,
    ms_p99: f64,
    found: f64,
    timeouts: f64,
}

fn lookups(nodes: usize, count: usize, dead: f64, seed: u64) -> LookupRow {
    let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let start = Instant::now();
    let mut p = Population::random(nodes, &mut rng);
    let t = Tables::build(&p, &mut rng);
    let build_s = start.elapsed().as_secs_f64();
    p.kill(dead, &mut rng);
    let start = Instant::now();
    let (mut hops, mut msgs, mut ms, mut found, mut timeouts) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..count {
        let from = loop {
            let f = rng.below(p.len());
            if p.up[f] {
                break f;
            }
        };
        let l = kad::lookup(&p, &t, from, &random_key(&mut rng));
        hops.push(l.hops as f64);
        msgs.push(l.messages as f64);
        ms.push(l.ms);
        found.push(l.found_of_k as f64);
        timeouts.push(l.timeouts as f64);
    }
    LookupRow {
        nodes: p.len(),
        dead,
        build_s,
        run_s: start.elapsed().as_secs_f64(),
        entries: t.len(),
        rss_mib: peak_rss_mib(),
        hops_mean: mean(&hops),
        hops_p99: quantile(&mut hops, 0.99),
        msgs_mean: mean(&msgs),
        msgs_p99: quantile(&mut msgs, 0.99),
        ms_p50: quantile(&mut ms.clone(), 0.5),
        ms_p99: quantile(&mut ms, 0.99),
        found: mean(&found),
        timeouts: mean(&timeouts),
    }
}

fn lookup_table(rows: &[LookupRow], count: usize) -> (String, String) {
    let mut md = format!(
        "| relays | down | hops mean | hops p99 | messages mean | messages p99 | time p50 | time p99 | found of {K} closest | timeouts | tables (entries) | build | {count} lookups | peak RSS |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    );
    let mut csv = String::from("relays,down,hops_mean,hops_p99,messages_mean,messages_p99,ms_p50,ms_p99,found_of_k,timeouts,entries,build_s,run_s,rss_mib\n");
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {:.0}% | {:.2} | {:.0} | {:.1} | {:.0} | {:.0} ms | {:.0} ms | {:.2} | {:.2} | {} | {:.1} s | {:.1} s | {:.0} MiB |",
            r.nodes, r.dead * 100.0, r.hops_mean, r.hops_p99, r.msgs_mean, r.msgs_p99, r.ms_p50, r.ms_p99, r.found, r.timeouts, r.entries, r.build_s, r.run_s, r.rss_mib
        );
        let _ = writeln!(
            csv,
            "{},{},{:.3},{},{:.2},{},{:.1},{:.1},{:.3},{:.3},{},{:.2},{:.2},{:.0}",
            r.nodes,
            r.dead,
            r.hops_mean,
            r.hops_p99,
            r.msgs_mean,
            r.msgs_p99,
            r.ms_p50,
            r.ms_p99,
            r.found,
            r.timeouts,
            r.entries,
            r.build_s,
            r.run_s,
            r.rss_mib
        );
    }
    (md, csv)
}

const FRACTIONS: [f64; 6] = [0.01, 0.05, 0.10, 0.20, 0.25, 0.33];

fn capture_tables(
    nodes: usize,
    targets: usize,
    grinds: usize,
    identities: usize,
    seed: u64,
) -> (String, String) {
    let mut rng = XorShift(seed.wrapping_mul(0xC2B2_AE3D_27D4_EB4F) | 1);
    let mut p = Population::random(nodes, &mut rng);
    let mut md = format!(
        "Random ids: share of {targets} random keys whose group the adversary captures, with a share of the {} relays (simulated / binomial law).\n\n| group | {} |\n|---|{}\n",
        p.len(),
        FRACTIONS.iter().map(|f| format!("{:.0}%", f * 100.0)).collect::<Vec<_>>().join(" | "),
        "---|".repeat(FRACTIONS.len())
    );
    let mut csv = String::from("group,fraction,simulated,binomial,with_join_work_s\n");
    for g in GROUPS {
        let mut cells = Vec::new();
        for f in FRACTIONS {
            let got = capture::random_ids(&mut p, f, g, targets, &mut rng);
            let law = capture::binomial_tail(g.size, g.seats, f);
            cells.push(format!("{} / {}", fmt_p(got), fmt_p(law)));
            let _ = writeln!(csv, "\"{}\",{f},{got},{law},", g.name);
        }
        let _ = writeln!(md, "| {} | {} |", g.name, cells.join(" | "));
    }
    for a in &mut p.adversary {
        *a = false;
    }
    // An honest relay's identity with the join work, made as `kura-relay` makes it.
    let bits = kura_core::placement::JOIN_BITS;
    let (mut id_keys, mut id_secs) = (0u64, 0.0);
    for _ in 0..identities {
        let (_, g) = capture::join_key(bits, &mut rng);
        id_keys += g.keys_made;
        id_secs += g.seconds;
    }
    let per_identity = id_secs / identities.max(1) as f64;
    let _ = writeln!(
        md,
        "\nGround ids: to take a chosen key's group the adversary needs only as many relays as seats; the work is making ed25519 keys until each relay's id lands close enough (real keys, this machine, one core; mean of {grinds} targets). With the join work ({bits} bits, `kura_core::placement::JOIN_BITS`) every key it tries must first carry the work: each costs what an honest relay pays once for its identity, {} keys and {:.2} s here (mean of {identities}), so the time is the keys made times that (the unit test `join_work_multiplies_the_keys_a_grinder_makes_by_two_to_the_bits` checks the law at 4 bits).\n\n| group | relays needed | keys made | time, ids free | time, with join work |\n|---|---|---|---|---|",
        id_keys / identities.max(1) as u64,
        per_identity
    );
    for g in GROUPS {
        let (mut made, mut secs) = (0u64, 0.0);
        for _ in 0..grinds {
            let r = capture::grind(&p, &random_key(&mut rng), g, 0, &mut rng);
            made += r.keys_made;
            secs += r.seconds;
        }
        let n = grinds.max(1) as f64;
        let with_work = made as f64 / n * per_identity;
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {:.2} s | {} |",
            g.name,
            g.seats,
            made as f64 / n,
            secs / n,
            fmt_duration(with_work)
        );
        let _ = writeln!(csv, "\"{} (ground)\",keys,{},{},{with_work}", g.name, made as f64 / n, secs / n);
    }
    chosen_table(&mut p, &mut md, &mut csv, per_identity, &mut rng);
    (md, csv)
}

/// What an adversary can **choose** rather than grind: account keys are free, and audit
/// points of future epochs are known in advance.
fn chosen_table(
    p: &mut Population,
    md: &mut String,
    csv: &mut String,
    per_identity: f64,
    rng: &mut XorShift,
) {
    // What an account key costs: an ed25519 key and the hash that places it.
    let per_key = key_cost(20_000, |public| kura_core::placement::DhtKey::of(public), rng);
    // With the account work every key tried costs `2^ACCOUNT_BITS` keys.
    let per_worked_key = per_key * f64::from(1u32 << kura_core::ledger::ACCOUNT_BITS);
    let r = kura_core::ledger::REPLICAS;
    let q = r - (r - 1) / 3;
    let quorum = capture::Group { name: "", size: r, seats: q };
    let beyond_f = capture::Group { name: "", size: r, seats: 2 * q - r };
    let (old_quorum, old_beyond_f) =
        (capture::Group { name: "", size: 16, seats: 11 }, capture::Group { name: "", size: 16, seats: 6 });
    let spend_twice = format!(
        "an account whose ledger group it holds more than f of ({} of {r}): it spends its own credits twice, at most the spending cap a day",
        2 * q - r
    );
    let mint = format!(
        "an account whose ledger group it holds a quorum of ({q} of {r}): its replicas certify spending credits it never had"
    );
    let audit_row = format!(
        "before draws (audit points known in advance): a relay identity whose audit group it holds a quorum of ({} of {}) in one of the next 8,760 epochs (a year of hours): its auditors sign up to the cap times 17 page levels",
        kura_core::farming::AUDIT_QUORUM,
        kura_core::farming::AUDIT_GROUP
    );
    /// A row: what is picked, the keys (identities) made for it at a share, and the time each costs.
    type Row<'a> = (&'a str, Box<dyn Fn(f64) -> f64 + 'a>, f64);
    let rows: [Row; 5] = [
        (&spend_twice, Box::new(|f| capture::keys_to_choose(beyond_f, f)), per_worked_key),
        (&mint, Box::new(|f| capture::keys_to_choose(quorum, f)), per_worked_key),
        (&audit_row, Box::new(|f| capture::identities_for_audit_quorum(f, 8760.0)), per_identity),
        (
            "before the account work and groups of 32: more than f of 16 (6), keys free",
            Box::new(|f| capture::keys_to_choose(old_beyond_f, f)),
            per_key,
        ),
        (
            "before the account work and groups of 32: a quorum of 16 (11), keys free",
            Box::new(|f| capture::keys_to_choose(old_quorum, f)),
            per_key,
        ),
    ];
    let _ = writeln!(
        md,
        "\nChosen, not ground: an adversary whose relays are a share of the network makes account keys until one's ledger group holds enough of them, and uses that account. A key costs {:.0} µs here (an ed25519 key and the hash that places it); replicas serve only keys with {} bits of account work, so each key tried costs {} of those ({per_worked_key:.2} s). Before draws, audit points were known for every future epoch, so it made relay identities (each with the join work, {per_identity:.2} s) until one met an audit group it held in some epoch, and ran it then (the table after this one is the rule now). Mean keys (identities) with the work made, and one core's time, by the binomial law of the random-id table above; the last two rows are the rule before (groups of 16, keys free):\n\n| what the adversary picks | {} |\n|---|{}",
        per_key * 1e6,
        kura_core::ledger::ACCOUNT_BITS,
        1u64 << kura_core::ledger::ACCOUNT_BITS,
        FRACTIONS.iter().map(|f| format!("{:.0}%", f * 100.0)).collect::<Vec<_>>().join(" | "),
        "---|".repeat(FRACTIONS.len())
    );
    for (name, keys, unit) in &rows {
        let cells: Vec<String> = FRACTIONS
            .iter()
            .map(|&f| {
                let k = keys(f);
                let _ = writeln!(csv, "\"{name}\",{f},{k},{}", k * unit);
                format!("{} ({})", fmt_count(k), fmt_duration(k * unit))
            })
            .collect();
        let _ = writeln!(md, "| {name} | {} |", cells.join(" | "));
    }
    draws_table(p, md, csv, rng);
    widths_table(p, md, csv, rng);
    // Played on the simulated network where it is quick (a few dozen keys a trial, so that
    // the test suite's small debug run stays short): more than f at a fifth of the relays,
    // a quorum at a half.
    let trials = 20;
    for (share, g) in [(0.2, beyond_f), (0.5, quorum)] {
        for a in &mut p.adversary {
            *a = rng.chance(share);
        }
        let made: u64 = (0..trials).map(|_| capture::choose_account(p, g, rng).keys_made).sum();
        let law = capture::keys_to_choose(g, share);
        let _ = writeln!(
            md,
            "\nPlayed on the {} simulated relays with a random {:.0}% the adversary's: {:.0} account keys made, on average over {trials}, until one's group of {} held {} of its relays (the law: {law:.0}; with the work each is {} keys). Where the law is about {:.0} keys, one network has about {:.0} captured groups in all, so its figure varies around the law with how they fall.",
            p.len(),
            share * 100.0,
            made as f64 / trials as f64,
            g.size,
            g.seats,
            1u64 << kura_core::ledger::ACCOUNT_BITS,
            law,
            p.len() as f64 / law,
        );
    }
}

/// Stripes as wide as the network: the width puts take on networks of several sizes (their
/// own estimate of the size, as the client makes it), and what it buys against random ids.
fn widths_table(p: &Population, md: &mut String, csv: &mut String, rng: &mut XorShift) {
    let puts = 300;
    let gib_stripes = |w: kura_core::Params| {
        f64::from(kura_core::farming::terms_for(1 << 30, kura_core::CHUNK_SIZE, w, 0, 1).slots)
    };
    let _ = writeln!(
        md,
        "\nAfter: stripes as wide as the network (`kura_core::Params::for_network`: 4+2, 6+6 from 36 relays, 10+10 from 60, a stripe's group at most a third of the network). Each put sizes the network from three lookups for random keys (`kura_core::placement::network_size`, the median; a network a lookup finds whole is counted) and takes the width that size calls for; {puts} puts on each network. An adversary with random ids holding a share of the relays can lose a stripe of which it holds `m + 1` shards (binomial law, over the widths the puts took), and a file of 1 GiB (1,025 stripes at 4+2) if it can lose any one of them:\n\n| relays | widths the puts took | size estimated (5% / median / 95%) | stripes it can lose, 10% / 20% | 1 GiB files it can lose, 10% / 20% | bytes stored per byte | shards read per shard rebuilt |\n|---|---|---|---|---|---|---|"
    );
    let mut sizes: Vec<usize> =
        [10, 30, 50, 100, 1_000, 10_000].into_iter().filter(|&n| n < p.len()).collect();
    sizes.push(p.len());
    for n in sizes {
        let own;
        let net = if n == p.len() {
            p
        } else {
            own = Population::random(n, rng);
            &own
        };
        let mut estimates = Vec::with_capacity(puts);
        let mut took: Vec<(usize, usize, usize)> = Vec::new();
        let (mut stripe, mut file, mut stored, mut reads) = ([0.0; 2], [0.0; 2], 0.0, 0.0);
        for _ in 0..puts {
            let (relays, w) = capture::width_chosen(net, rng);
            estimates.push(relays);
            match took.iter_mut().find(|t| (t.0, t.1) == (w.k(), w.m())) {
                Some(t) => t.2 += 1,
                None => took.push((w.k(), w.m(), 1)),
            }
            for (i, share) in [0.1, 0.2].into_iter().enumerate() {
                let q = capture::binomial_tail(w.n(), w.m() + 1, share);
                stripe[i] += q / puts as f64;
                file[i] += (1.0 - (1.0 - q).powf(gib_stripes(w))) / puts as f64;
            }
            stored += w.n() as f64 / w.k() as f64 / puts as f64;
            reads += w.k() as f64 / puts as f64;
        }
        took.sort_unstable();
        let widths: Vec<String> = took.iter().map(|(k, m, c)| format!("{k}+{m}: {c}")).collect();
        let _ = writeln!(
            md,
            "| {n} | {} | {:.0} / {:.0} / {:.0} | {} / {} | {} / {} | {stored:.2} | {reads:.1} |",
            widths.join(", "),
            quantile(&mut estimates, 0.05),
            quantile(&mut estimates, 0.5),
            quantile(&mut estimates, 0.95),
            fmt_p(stripe[0]),
            fmt_p(stripe[1]),
            fmt_p(file[0]),
            fmt_p(file[1]),
        );
        let _ = writeln!(csv, "\"widths on {n} relays: stripes lost\",0.1,{},{}", stripe[0], stripe[0]);
        let _ = writeln!(csv, "\"widths on {n} relays: stripes lost\",0.2,{},{}", stripe[1], stripe[1]);
    }
}

/// Audit groups placed by draws: what one identity-epoch's capture chance is, what a whole
/// adversary running every relay every hourly epoch gets a year, and the law played.
fn draws_table(p: &mut Population, md: &mut String, csv: &mut String, rng: &mut XorShift) {
    let (g, q) = (kura_core::farming::AUDIT_GROUP, kura_core::farming::AUDIT_QUORUM);
    let _ = writeln!(
        md,
        "\nAfter: audit groups placed by draws (`kura_core::farming::beacon`): the point of a relay's epoch is fixed by the least of a quorum of its neighbours' draws, shown only once the epoch has ended, so no identity is made for it in advance; the relay chooses among at most {} beacons ({g} − {q} + 1). Chance that one epoch of one of the adversary's relays meets an audit group it holds {q} of {g} of (at most {} times the random-id law), and captured relay-epochs a year if every relay it has (that share of {}) claims every epoch of an hour:\n\n| with draws | {} |\n|---|{}",
        capture::BEACON_CHOICES,
        capture::BEACON_CHOICES,
        p.len(),
        FRACTIONS.iter().map(|f| format!("{:.0}%", f * 100.0)).collect::<Vec<_>>().join(" | "),
        "---|".repeat(FRACTIONS.len())
    );
    let per_epoch: Vec<f64> = FRACTIONS.iter().map(|&f| capture::capture_per_epoch_with_draws(f)).collect();
    let year: Vec<f64> =
        FRACTIONS.iter().zip(&per_epoch).map(|(&f, &c)| c * f * p.len() as f64 * 8760.0).collect();
    for (name, values) in
        [("an identity-epoch captured", &per_epoch), ("captured relay-epochs a year", &year)]
    {
        let cells: Vec<String> = values
            .iter()
            .map(|&v| match v {
                v if v < 0.01 => format!("{v:.1e}"),
                v if v < 1000.0 => format!("{v:.2}"),
                v => fmt_count(v),
            })
            .collect();
        let _ = writeln!(md, "| {name} | {} |", cells.join(" | "));
        for (f, v) in FRACTIONS.iter().zip(values) {
            let _ = writeln!(csv, "\"with draws: {name}\",{f},{v},{v}");
        }
    }
    let (share, trials) = (0.5, 200);
    let played = capture::draws_played(p, share, trials, rng);
    let law = 1.0 - (1.0 - capture::binomial_tail(g, q, share)).powi(capture::BEACON_CHOICES as i32);
    let _ = writeln!(
        md,
        "\nPlayed on the {} simulated relays with a random {:.0}% the adversary's (where it is common enough to count): in a share {played:.3} of {trials} epochs one of the {} beacons it could choose placed an audit group holding {q} of its relays (the law, as if the points were independent: {law:.3}).",
        p.len(),
        share * 100.0,
        capture::BEACON_CHOICES,
    );
}

/// A count in a cell: whole below a million, else in powers of ten.
fn fmt_count(x: f64) -> String {
    if x < 1e6 {
        format!("{x:.0}")
    } else {
        format!("{x:.1e}")
    }
}

/// Seconds in the largest unit that keeps the number above one.
fn fmt_duration(secs: f64) -> String {
    let units = [
        (365.25 * 86400.0, "core-years"),
        (86400.0, "core-days"),
        (3600.0, "core-hours"),
        (60.0, "core-minutes"),
    ];
    for (size, name) in units {
        if secs >= size * 1e6 {
            return format!("{:.1e} {name}", secs / size);
        }
        if secs >= size {
            return format!("{:.1} {name}", secs / size);
        }
    }
    if secs >= 1.0 {
        format!("{secs:.1} core-seconds")
    } else if secs >= 1e-3 {
        format!("{:.0} ms", secs * 1e3)
    } else {
        format!("{:.0} µs", secs * 1e6)
    }
}

/// How long a member may be down before the group repairs around it: Kura's relays today
/// (seconds: one tick here), two hours, a day.
const GRACES: [f64; 3] = [0.0, 2.0, 24.0];

fn grace_label(h: f64) -> String {
    if h == 0.0 {
        "seconds (as relays did before their grace)".into()
    } else {
        format!("{h} h")
    }
}

/// Durability against each relay's repair bandwidth: the mixed population with a grace of
/// two hours and of a day, the volatile one with two hours; 4+2; repair at once and with a
/// relay reading its holding in a day, a week, a month.
fn bandwidth_table(relays: usize, stripes: usize, days: f64, tick_min: f64, seed: u64) -> String {
    let mut md = format!(
        "{relays} relays, {stripes} stripes of 4+2, {days} days in ticks of {tick_min} minutes. A relay's repair bandwidth is the time it takes to read as many shard bytes as it holds (10 TB on 100 Mbit/s: about 220 h); each tick it may read its share of the stored shards times the tick over that time, paced as kura-core's `RepairQueue` paces rebuilds (a move starts while the budget is above zero and may leave it in debt; a rebuild costs its relay `k` shards, a handover one), and moves beyond it wait for a later tick (counted once per tick they wait).\n\n| relays | a member down counts as gone after | a relay reads its holding in | moves put off per stripe per year | stripes unavailable (share of time) | stripes lost per year | a 100-stripe file lost per year | shards read per shard stored per year |\n|---|---|---|---|---|---|---|---|\n"
    );
    for (p, grace_h) in [(PROFILES[1], 2.0), (PROFILES[1], 24.0), (PROFILES[2], 2.0)] {
        for hours in [None, Some(24.0), Some(168.0), Some(720.0)] {
            let c = durability::Config {
                grace_h,
                repair_hours: hours,
                ..durability::Config::new(relays, stripes, (4, 2), days, tick_min, p, seed)
            };
            let o = durability::run(&c);
            let lost = o.lost_per_year(&c).min(1.0);
            eprintln!(
                "bandwidth: {}, grace {grace_h} h, {hours:?} h: {} put off, unavailable {:.4}, lost/year {lost:.4}",
                p.name, o.deferred, o.unavailable
            );
            let _ = writeln!(
                md,
                "| {} | {grace_h} h | {} | {:.1} | {} | {} | {} | {:.1} |",
                p.name,
                hours.map_or("no limit".into(), |h| format!("{h} h")),
                o.deferred as f64 / stripes as f64 / (days / 365.0),
                fmt_p(o.unavailable),
                fmt_p(lost),
                fmt_p(1.0 - (1.0 - lost).powi(100)),
                o.moved_per_stored_year(&c),
            );
        }
    }
    md
}

/// Durability and repair reads under message loss: a lost request or answer fails a shard
/// read; a rebuild asks another holder, a move that cannot complete is planned again the
/// next tick.
fn loss_table(relays: usize, stripes: usize, days: f64, tick_min: f64, seed: u64) -> String {
    let mut md = format!(
        "{relays} relays, {stripes} stripes of 4+2, {days} days in ticks of {tick_min} minutes, a member down counts as gone after 2 h. Each message of a repair read (the request, the answer) is lost with the share given; a rebuild then asks another holder (as `FetchPlan` asks one more per failure) and fails when fewer than `k` reads came back, a handover fails with its one read; a failed move's reads are spent and its stripe is planned again the next tick.\n\n| relays | a relay reads its holding in | messages lost | moves failed per stripe per year | shards read per shard stored per year | stripes unavailable (share of time) | stripes lost per year | a 100-stripe file lost per year |\n|---|---|---|---|---|---|---|---|\n"
    );
    for (p, hours) in [(PROFILES[1], None), (PROFILES[1], Some(24.0)), (PROFILES[2], None)] {
        for loss in [0.0, 0.01, 0.05, 0.2] {
            let c = durability::Config {
                grace_h: 2.0,
                repair_hours: hours,
                loss,
                ..durability::Config::new(relays, stripes, (4, 2), days, tick_min, p, seed)
            };
            let o = durability::run(&c);
            let lost = o.lost_per_year(&c).min(1.0);
            eprintln!(
                "loss: {}, {hours:?} h, {loss}: {} failed, read {:.1}, unavailable {:.4}, lost/year {lost:.4}",
                p.name,
                o.failed_moves,
                o.moved_per_stored_year(&c),
                o.unavailable
            );
            let _ = writeln!(
                md,
                "| {} | {} | {}% | {:.1} | {:.1} | {} | {} | {} |",
                p.name,
                hours.map_or("no limit".into(), |h| format!("{h} h")),
                loss * 100.0,
                o.failed_moves as f64 / stripes as f64 / (days / 365.0),
                o.moved_per_stored_year(&c),
                fmt_p(o.unavailable),
                fmt_p(lost),
                fmt_p(1.0 - (1.0 - lost).powi(100)),
            );
        }
    }
    md
}

/// What the loss table shows, below it.
const LOSS_NOTES: &str = "\nAt 0% the rows are the bandwidth table's (same seed, same runs: losses draw from a stream of their own). Loss costs reads before it costs data: a read fails when its request or its answer is lost (one time in ten at 5%), and a rebuild reading four of five holders then fails about one time in thirteen and is tried again; with no limit on bandwidth that is more reads and nothing more lost. Where bandwidth is the limit, the reads that failed are reads not spent on repair, and stripes start to be lost that were not.\n";

/// Codes compared for durability: Kura's default and two wider ones.
const CODES: [(usize, usize); 3] = [(4, 2), (8, 4), (10, 10)];

fn durability_tables(relays: usize, stripes: usize, days: f64, tick_min: f64, seed: u64) -> (String, String) {
    let mut md = format!(
        "{relays} relays, {stripes} stripes of each code, {days} days in ticks of {tick_min} minutes; repairs decided by `kura_core::repair::plan_group` each tick for every stripe whose relays changed.\n\n| relays | up (share of time) | code | a member down counts as gone after | rebuilds | handovers | copies dropped | shards read per shard stored per year | stripes unavailable (share of time) | stripes lost per year | a 100-stripe file lost per year | plans | run |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    );
    let mut csv = String::from("profile,k,m,grace_h,rebuilds,handovers,drops,moved_per_stored_year,unavailable,lost_per_year,up_share,departures\n");
    for p in PROFILES {
        for (k, m) in CODES {
            for grace_h in GRACES {
                let c = durability::Config {
                    grace_h,
                    ..durability::Config::new(relays, stripes, (k, m), days, tick_min, p, seed)
                };
                let start = Instant::now();
                let o = durability::run(&c);
                let secs = start.elapsed().as_secs_f64();
                let lost = o.lost_per_year(&c);
                let file = 1.0 - (1.0 - lost.min(1.0)).powi(100);
                eprintln!("durability: {} {k}+{m}, grace {grace_h} h: {} rebuilds, {:.1} shards read per stored per year, {} lost ({secs:.1} s)", p.name, o.rebuilds, o.moved_per_stored_year(&c), o.lost);
                let _ = writeln!(
                md,
                "| {} (up: Weibull {}, scale {} h; down {} h; lifetime {} d) | {:.1}% | {k}+{m} | {} | {} | {} | {} | {:.1} | {} | {} | {} | {} | {secs:.1} s |",
                p.name, p.shape, p.up_scale_h, p.down_mean_h, p.lifetime_days, o.up_share * 100.0, grace_label(grace_h), o.rebuilds, o.handovers, o.drops,
                o.moved_per_stored_year(&c), fmt_p(o.unavailable), fmt_p(lost), fmt_p(file), o.plans
            );
                let _ = writeln!(
                    csv,
                    "{},{k},{m},{grace_h},{},{},{},{:.3},{:.6},{:.6},{:.4},{}",
                    p.name,
                    o.rebuilds,
                    o.handovers,
                    o.drops,
                    o.moved_per_stored_year(&c),
                    o.unavailable,
                    lost,
                    o.up_share,
                    o.departures
                );
            }
        }
    }
    // A correlated failure: one region or provider (a fifth of the relays) down together for
    // six hours, among relay operators.
    let outage = durability::Outage { share: 0.2, at_day: (days / 3.0).floor().max(1.0), hours: 6.0 };
    let _ = writeln!(
        md,
        "\nA correlated failure: a fifth of the relays (one region or provider) down together for {} h on day {}, among relay operators ({} otherwise).\n\n| code | a member down counts as gone after | stripes unavailable at the worst moment | binomial law (≥ m + 1 of n in the fifth) | shards read for repair, from the outage to two days after, per stripe | stripes lost |\n|---|---|---|---|---|---|",
        outage.hours, outage.at_day, PROFILES[0].name
    );
    for (k, m) in CODES {
        for grace_h in GRACES {
            let c = durability::Config {
                grace_h,
                outage: Some(outage),
                ..durability::Config::new(relays, stripes, (k, m), days, tick_min, PROFILES[0], seed)
            };
            let o = durability::run(&c);
            let law = kura_sim::capture::binomial_tail(k + m, m + 1, outage.share);
            eprintln!(
                "outage: {k}+{m}, grace {grace_h} h: peak unavailable {:.4}, {} shards read",
                o.outage_peak_unavailable, o.outage_reads
            );
            let _ = writeln!(
                md,
                "| {k}+{m} | {} | {} | {} | {:.2} | {} |",
                grace_label(grace_h),
                fmt_p(o.outage_peak_unavailable),
                fmt_p(law),
                o.outage_reads as f64 / stripes as f64,
                o.lost
            );
            let _ = writeln!(
                csv,
                "outage,{k},{m},{grace_h},,,,{},{},{},,",
                o.outage_reads, o.outage_peak_unavailable, o.lost
            );
        }
    }
    // The tab tier: donating tabs' copies on top of the relays, among relays that churn.
    let _ = writeln!(
        md,
        "\nWith donating tabs: each stripe also has copies in tabs (distinct indices, data shards first), each tab open some hours a day at an hour of its own and keeping its copies across closes, gone for good after 30 days on average (a relay then offers the copy to another tab, read from the stripe: `k` shards). Tabs are never group members and never counted by the repair rule; readers and rebuilding groups read their copies as from any holder outside the group. 4+2, a member down counts as gone after 2 h.\n\n| relays | tab copies per stripe | tab open per day | stripes unavailable (share of time) | stripes lost per year | a 100-stripe file lost per year | shards read per shard stored per year (relays' repair and tab copies) | of which read from tabs | copies made for tabs per stripe per year |\n|---|---|---|---|---|---|---|---|---|"
    );
    for p in &PROFILES[1..] {
        for (copies, hours) in [(0, 0.0), (2, 8.0), (4, 8.0), (4, 16.0)] {
            let tabs = (copies > 0).then_some(durability::Tabs {
                copies,
                hours_per_day: hours,
                lifetime_days: 30.0,
            });
            let c = durability::Config {
                grace_h: 2.0,
                tabs,
                ..durability::Config::new(relays, stripes, (4, 2), days, tick_min, *p, seed)
            };
            let o = durability::run(&c);
            let lost = o.lost_per_year(&c).min(1.0);
            eprintln!(
                "tabs: {}, {copies} copies {hours} h/day: unavailable {:.4}, lost/year {lost:.4}, {} tab reads",
                p.name, o.unavailable, o.tab_reads
            );
            let _ = writeln!(
                md,
                "| {} | {copies} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} |",
                p.name,
                if copies == 0 { "—".into() } else { format!("{hours} h") },
                fmt_p(o.unavailable),
                fmt_p(lost),
                fmt_p(1.0 - (1.0 - lost).powi(100)),
                o.moved_per_stored_year(&c),
                o.tab_reads as f64 / (stripes * 6) as f64 / (days / 365.0),
                o.tab_fills as f64 / stripes as f64 / (days / 365.0),
            );
            let _ = writeln!(
                csv,
                "tabs {} {copies}x{hours}h,4,2,2,{},{},,{},{},{lost},{},",
                p.name,
                o.rebuilds,
                o.handovers,
                o.moved_per_stored_year(&c),
                o.unavailable,
                o.up_share
            );
        }
    }
    (md, csv)
}

/// Lost shards rebuilt one by one (each at its member, reading `k`), together (one member
/// reads `k` and hands the others over), and together once `rebuild_after` are lost (Kura's
/// rule), for the widths a client picks, with a member down counting as gone after 2 h.
fn rebuilds_table(relays: usize, stripes: usize, days: f64, tick_min: f64, seed: u64) -> String {
    use durability::Rebuilds;
    let mut md = format!(
        "{relays} relays, {stripes} stripes of each code, {days} days in ticks of {tick_min} minutes, a member down counts as gone after 2 h. \"Shards read\" counts every shard moved for repair: `k` per rebuild that reads, one per shard rebuilt with another and handed over, one per handover.\n\n| relays | code | rebuilt | waits for (lost slots) | shards rebuilt | of them decoded with another | shards read per shard rebuilt | shards read per shard stored per year | against one by one | stripes unavailable (share of time) | stripes lost per year | run |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    );
    for p in PROFILES {
        for w in kura_core::erasure::WIDTHS {
            let (k, m) = (w.k(), w.m());
            let mut each_reads = None;
            for (rule, name) in [
                (Rebuilds::Each, "one by one"),
                (Rebuilds::Together, "together"),
                (Rebuilds::Kura, "together, later (Kura)"),
            ] {
                let wait =
                    if rule == Rebuilds::Kura { kura_core::repair::rebuild_after(k, k + m) } else { 1 };
                if rule == Rebuilds::Kura && wait == 1 {
                    // Kura's rule is "together" when it waits for nothing more.
                    continue;
                }
                let name = if rule == Rebuilds::Together && kura_core::repair::rebuild_after(k, k + m) == 1 {
                    "together (Kura)"
                } else {
                    name
                };
                let c = durability::Config {
                    grace_h: 2.0,
                    rebuilds: rule,
                    ..durability::Config::new(relays, stripes, (k, m), days, tick_min, p, seed)
                };
                let (o, secs, per_year) = timed_run(&c);
                let base = *each_reads.get_or_insert(per_year);
                eprintln!("rebuilds: {} {k}+{m} {name}: {} rebuilt, {per_year:.1} read per stored per year, {} lost ({secs:.1} s)", p.name, o.rebuilds, o.lost);
                let _ = writeln!(
                    md,
                    "| {} | {k}+{m} | {name} | {wait} | {} | {} | {:.2} | {per_year:.1} | {:.2} | {} | {} | {secs:.1} s |",
                    p.name,
                    o.rebuilds,
                    o.joint,
                    (o.shards_moved - o.handovers) as f64 / o.rebuilds.max(1) as f64,
                    per_year / base.max(1e-12),
                    fmt_p(o.unavailable),
                    fmt_p(o.lost_per_year(&c)),
                );
            }
        }
    }
    md
}

/// Seconds one key costs here: an ed25519 key made and the hash that places it (`place`),
/// timed over `sample` keys.
fn key_cost(
    sample: u32,
    place: impl Fn(&[u8; 32]) -> kura_core::placement::DhtKey,
    rng: &mut XorShift,
) -> f64 {
    let start = Instant::now();
    for _ in 0..sample {
        let mut secret = [0u8; 32];
        secret[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
        let public = kura_core::ledger::SigningKey::from_bytes(&secret).verifying_key().to_bytes();
        std::hint::black_box(place(&public));
    }
    start.elapsed().as_secs_f64() / f64::from(sample)
}

/// One churn run: its outcome, its time in seconds, and its shards read per shard stored
/// per year.
fn timed_run(c: &durability::Config) -> (durability::Outcome, f64, f64) {
    let start = Instant::now();
    let o = durability::run(c);
    let secs = start.elapsed().as_secs_f64();
    let per_year = o.moved_per_stored_year(c);
    (o, secs, per_year)
}

/// A grace that follows a relay's record ([`kura_core::repair::grace_for`]) against fixed
/// graces of two hours and a day, for each profile, at 4+2 and 10+10.
fn grace_table(relays: usize, stripes: usize, days: f64, tick_min: f64, seed: u64) -> String {
    use kura_core::repair::{LONG_GRACE, LONG_GRACE_AFTER, LONG_GRACE_UP};
    let mut md = format!(
        "{relays} relays, {stripes} stripes of each code, {days} days in ticks of {tick_min} minutes, rebuilt as the relays rebuild (together, 10+10 after its third loss). *By record*: a relay is waited for 2 h, or {} h once it has been known for {} days and up at least {:.0}% of that time (`kura_core::repair::grace_for`; every relay is new when the run starts, and a relay that leaves is replaced by a new one).\n\n| relays | code | a member down counts as gone after | shards read per shard stored per year | stripes unavailable (share of time) | stripes lost per year | run |\n|---|---|---|---|---|---|---|\n",
        LONG_GRACE.as_secs() / 3600,
        LONG_GRACE_AFTER.as_secs() / 86400,
        LONG_GRACE_UP * 100.0
    );
    for p in PROFILES {
        for (k, m) in [(4, 2), (10, 10)] {
            for (grace_h, by_record, name) in
                [(2.0, false, "2 h"), (24.0, false, "24 h"), (2.0, true, "by record")]
            {
                let c = durability::Config {
                    grace_h,
                    grace_by_record: by_record,
                    ..durability::Config::new(relays, stripes, (k, m), days, tick_min, p, seed)
                };
                let (o, secs, per_year) = timed_run(&c);
                eprintln!(
                    "grace: {} {k}+{m} {name}: {per_year:.1} read per stored per year, {} lost ({secs:.1} s)",
                    p.name, o.lost
                );
                let _ = writeln!(
                    md,
                    "| {} | {k}+{m} | {name} | {per_year:.1} | {} | {} | {secs:.1} s |",
                    p.name,
                    fmt_p(o.unavailable),
                    fmt_p(o.lost_per_year(&c)),
                );
            }
        }
    }
    md
}

const GRACE_NOTES: &str = "\nA relay's record is the repairing relay's own (`kura_core::repair::Liveness`: from when it first saw the relay connected, the time it was connected since), judged as it stood when the relay went away, so an absence does not shorten its own grace. Among relay operators and the mixed population most relays earn the day within their first week and most absences end within it; among volatile relays none does, and they are rebuilt around after two hours as before, where a day's grace for every relay loses more stripes (4+2: 35.5% a year against 19.9%).\n";

const REBUILDS_NOTES: &str = "\nA rebuild decodes the whole stripe from the `k` shards it reads, so the stripe's other lost shards cost one transfer each when the member that rebuilt hands them over, instead of `k` reads each at their own members. Waiting until a third of the parity is lost (`kura_core::repair::rebuild_after`: 4+2 at its first loss, 6+6 at its second, 10+10 at its third) rebuilds more shards per read of `k`, and keeps two thirds of the parity in hand meanwhile. Handovers (a member that fell out of a group passing its shard on) are not rebuilds and are counted in the reads per stored shard, not per rebuilt one.\n";

/// The audit-group study ([`kura_sim::groups`]) on networks of each of `nodes` relays.
fn groups_table(nodes: &[usize], points: usize, seed: u64) -> String {
    use kura_core::farming::{AUDIT_GROUP, AUDIT_QUORUM};
    use kura_sim::groups::REACHES;
    let fractions = [0.1, 0.2, 0.33];
    // What an identity with the join work costs here: ed25519 keys and the hash that places
    // them, times the keys the work takes on average.
    let mut rng = XorShift(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
    let per_identity = key_cost(5000, kura_sim::population::key_of_public, &mut rng)
        * f64::from(1u32 << kura_core::placement::JOIN_BITS);
    let mut rows = Vec::new();
    for &n in nodes {
        let started = Instant::now();
        let g = kura_sim::groups::study(n, points, &fractions, &mut rng);
        eprintln!(
            "groups: {n} relays, {points} points: {:.1} s, {:.0} MiB",
            started.elapsed().as_secs_f64(),
            peak_rss_mib()
        );
        rows.push(g);
    }
    let q = AUDIT_QUORUM;
    let mut md = format!(
        "Relays know their routing tables (iterative Kademlia, K = {K}: every relay near themselves, up to {K} of each distance further out); {points} random audit points per network, a group being the {AUDIT_GROUP} relays nearest one. The claimant finds the group as Kura's clients find any group wider than a lookup (a ledger group, a wide stripe's candidates): lookups as libp2p-kad runs them, each answer and each result at most {K}, the first of the point and then of its sides until the nearest {AUDIT_GROUP} are known (`kura_core::placement::WideLookup`); an auditor takes itself for a member when its own table holds fewer than {AUDIT_GROUP} relays closer to the point; a replica of the claimant's account (a random relay) places the group from its own table when its {AUDIT_GROUP} closest to the point hold a quorum ({q}) of the group; by the relays' rule it takes its table where its view is not thin at the point (`kura_core::placement::view_is_thin`) and looks the group up where it is, or where the group from its table fails to verify (the signers being the true group, when the table's closest lack a quorum of it), placing it when what it finds holds a quorum. Its estimate of the network is the relays' own, from its table (`kura_core::placement::estimate_from_view`: `network_size` over the {K} nearest itself).\n\n| relays | table entries (mean) | lookups for the group find / lookups / messages | members sure they are | of the next {AUDIT_GROUP}, sure they are members | replicas that place the group from their tables | replicas whose view is thin there / that place it by the relays' rule / messages per deposit | replica's estimate / size (5% / median / 95%) |\n|---|---|---|---|---|---|---|---|\n"
    );
    for g in &rows {
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.1}% / {:.1} / {:.0} | {:.1}% | {:.1}% | {:.1}% | {:.1}% / {:.1}% / {:.0} | {:.2} / {:.2} / {:.2} |",
            g.nodes,
            g.table_mean,
            100.0 * g.lookup_found,
            g.lookups,
            g.lookup_messages,
            100.0 * g.members_sure,
            100.0 * g.outsiders_sure,
            100.0 * g.replicas_place,
            100.0 * g.replicas_thin,
            100.0 * g.rule_places,
            g.rule_messages,
            g.estimate[0],
            g.estimate[1],
            g.estimate[2],
        );
    }
    let _ = write!(
        md,
        "\nA replica that cannot place the group could take as members the signers within a *reach* of the point: the distance where a multiple of {AUDIT_GROUP} relays are expected by its own estimate (`kura_sim::groups::within_reach`). Share of points where an honest group has a quorum ({q}) of its members within reach (so its claim, every member signing, passes), relays within reach, and share of points where an adversary with random ids holding a share of the relays has a quorum of its own within reach (simulated / binomial law over the relays expected within reach); the last rows, for comparison, a quorum of the group itself:\n\n| relays | reach | honest quorums within | relays within (mean) | {} |\n|---|---|---|---|{}\n",
        fractions.iter().map(|f| format!("adversary {:.0}%", f * 100.0)).collect::<Vec<_>>().join(" | "),
        "---|".repeat(fractions.len())
    );
    for g in &rows {
        for r in &g.reaches {
            let expected = (r.times * AUDIT_GROUP as f64).round() as usize;
            let cells: Vec<String> = r
                .held
                .iter()
                .zip(&fractions)
                .map(|(h, &f)| format!("{} / {}", fmt_p(*h), fmt_p(capture::binomial_tail(expected, q, f))))
                .collect();
            let _ = writeln!(
                md,
                "| {} | {} × {AUDIT_GROUP} | {:.1}% | {:.1} | {} |",
                g.nodes,
                r.times,
                100.0 * r.honest,
                r.within_mean,
                cells.join(" | ")
            );
        }
    }
    for g in &rows {
        let cells: Vec<String> =
            g.held.iter().map(|h| format!("{} / {}", fmt_p(h.of_group), fmt_p(h.of_group_law))).collect();
        let _ =
            writeln!(md, "| {} | the group itself | 100% | {AUDIT_GROUP} | {} |", g.nodes, cells.join(" | "));
    }
    let _ = write!(
        md,
        "\nAnd ids ground into reach: a replica that never met a signer cannot tell when it joined, so it would take {q} identities made after the point was shown, each landing within reach with probability (reach × {AUDIT_GROUP}) / N. Each identity carries the join work ({} bits, {per_identity:.1} s of one core here); ground within the two epochs a claim may come in (two hours of hourly epochs):\n\n| relays | reach | identities made (mean) | one core's time | cores to do it in two hours |\n|---|---|---|---|---|\n",
        kura_core::placement::JOIN_BITS
    );
    for g in &rows {
        for times in [REACHES[0], REACHES[REACHES.len() - 1]] {
            let ids = kura_sim::groups::identities_into_reach(g.nodes, times);
            let secs = ids * per_identity;
            let _ = writeln!(
                md,
                "| {} | {times} × {AUDIT_GROUP} | {ids:.0} | {} | {:.0} |",
                g.nodes,
                fmt_secs(secs),
                (secs / 7200.0).ceil()
            );
        }
    }
    md.push_str(GROUPS_NOTES);
    md
}

const GROUPS_NOTES: &str = "\nWhat it says. A claimant finds its audit group by lookups (about three, 60 to 70 messages; a libp2p lookup returns 20, so a group of 32 takes the lookups of its sides), and the group's members know they are members from their own tables; but so do nearly half of the 32 relays just outside it (an auditor's own table is a lenient judge), and a replica of the claimant's account, far from the point, almost never places the group from its table beyond a few thousand relays. By the relays' rule (look the group up where the view is thin, or where the group it gives fails to verify) every replica places it, at 57 to 68 messages a deposit: that is how a ledger replica now places the group of a certificate's sender. A reach in its place is a poor trade: one narrow enough to keep an adversary's odds near the group's (1 × a group) fails a large share of honest claims because replicas' estimates of the network vary by a third either way, and one wide enough for honest claims (2 ×) gives an adversary with a fifth of the relays a quorum at a few percent of the points, against none of the group itself; and with no age a far replica can check, ids ground into reach after a point is shown take a hundred cores for two hours at 100,000 relays. So a replica must place an audit group as the claimant does, by its own lookups of the point (about 60 messages a deposit, each replica: built for the ledger's certificates, not for rewards), with the age of each signer shown in a form it can check (not built): a relay it found by a lookup it met after the epoch began, so the age rule counts it in no group, and a far replica refuses every reward.\n";

/// Lookups on links that lose messages, every relay up: what a lost exchange costs.
fn lossy_table(nodes: &[usize], count: usize, seed: u64) -> String {
    let mut md = String::from("With lost messages (every relay up; each request and each answer lost with the probability given; a lost exchange costs the 1 s timeout and libp2p-kad does not ask that relay again within the lookup):\n\n| relays | messages lost | messages (mean) | lost exchanges (mean) | time p50 | time p99 | found of the 20 closest (mean) |\n|---|---|---|---|---|---|---|\n");
    for &n in nodes {
        let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let p = Population::random(n, &mut rng);
        let t = Tables::build(&p, &mut rng);
        for loss in [0.01, 0.05] {
            let (mut msgs, mut lost, mut ms, mut found) = (vec![], vec![], vec![], vec![]);
            for _ in 0..count {
                let from = rng.below(p.len());
                let target = random_key(&mut rng);
                let l = kad::lookup_lossy(&p, &t, from, &target, loss, &mut rng);
                msgs.push(l.messages as f64);
                lost.push(l.lost as f64);
                ms.push(l.ms);
                found.push(l.found_of_k as f64);
            }
            let _ = writeln!(
                md,
                "| {} | {:.0}% | {:.1} | {:.2} | {:.0} ms | {:.0} ms | {:.2} |",
                p.len(),
                loss * 100.0,
                mean(&msgs),
                mean(&lost),
                quantile(&mut ms.clone(), 0.5),
                quantile(&mut ms, 0.99),
                mean(&found)
            );
        }
    }
    md.push_str("\nA lost exchange with one of the 20 closest drops it from what the lookup returns: at 5% loss each way a lookup misses about two of the 20, so a put may place a shard one relay further out than the group's true member (repair then hands it over).\n");
    md
}

/// Seconds as the largest unit that fits.
fn fmt_secs(s: f64) -> String {
    if !s.is_finite() {
        "—".into()
    } else if s >= 86400.0 {
        format!("{:.1} d", s / 86400.0)
    } else if s >= 3600.0 {
        format!("{:.1} h", s / 3600.0)
    } else if s >= 60.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{s:.0} s")
    }
}

/// Time to find silent loss and dishonest holders, per holding size: each row a run of
/// `kura_sim::audits` with the relays' defaults.
fn audit_tables(relays: usize, sizes: &[usize], seed: u64) -> (String, String) {
    let targets = 5;
    let mut md = format!(
        "{relays} relays at random points, 4+2 stripes, {targets} of the relays behave as the row says; every member of a group audits the others with `kura_core::audit::Audits` (four claims per peer every 300 s, the relays' defaults), and an honest relay's scrub re-reads its shards at 1 MiB/s (256 KiB shards). A lost shard is *found* when one of its five auditors stops hearing its claim (a failed verdict, or its holder distrusted) or its holder's scrub reaches it; the group then rebuilds it. At most 30 simulated days.\n\n| holder | scrub | shards per relay | lost shards | found p50 | p99 | last | within 1 h | within 24 h | not found in 30 d | found by audits | auditors distrusting it | first distrust p50 | challenges per relay per hour | audit traffic per relay per hour | run |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    );
    let mut csv = String::from("holder,scrub,shards_per_relay,lost,found_p50_s,found_p99_s,found_max_s,within_1h,within_24h,unfound,by_audits,distrusting,pairs,challenges_per_hour,bytes_per_hour\n");
    let mut rows: Vec<(Holder, bool)> = vec![(Holder::Rot(0.01), false), (Holder::Rot(0.01), true)];
    rows.extend(
        [Holder::Drop(0.05), Holder::Drop(1.0), Holder::Withdraws, Holder::Silent].map(|h| (h, false)),
    );
    for &size in sizes {
        for &(holder, scrub) in &rows {
            let mut c = audits::Config::new(relays, size, targets, holder, seed);
            if !scrub {
                c.scrub_rate = 0.0;
            }
            let start = Instant::now();
            let o = audits::run(&c);
            let secs = start.elapsed().as_secs_f64();
            let mut found = o.found.clone();
            let (p50, p99) = (quantile(&mut found, 0.5), quantile(&mut found, 0.99));
            let last = found.last().copied().unwrap_or(f64::NAN);
            let share =
                |limit: f64| o.found.iter().filter(|&&t| t <= limit).count() as f64 / o.lost.max(1) as f64;
            let first = quantile(&mut o.distrusted.clone(), 0.5);
            let scrub_label =
                if scrub { format!("pass {}", fmt_secs(c.scrub_pass_s())) } else { "off".into() };
            let bytes_h = o.challenges_per_hour * o.bytes_per_challenge as f64;
            eprintln!(
                "audits: {}, {size} shards per relay, scrub {scrub_label}: {} lost, p50 {}, p99 {}, {} unfound ({secs:.1} s)",
                holder.label(),
                o.lost,
                fmt_secs(p50),
                fmt_secs(p99),
                o.unfound
            );
            let _ = writeln!(
                md,
                "| {} | {scrub_label} | {size} | {} | {} | {} | {} | {:.1}% | {:.1}% | {} | {} | {} of {} | {} | {:.0} | {:.0} KiB | {secs:.1} s |",
                holder.label(),
                o.lost,
                fmt_secs(p50),
                fmt_secs(p99),
                fmt_secs(last),
                share(3600.0) * 100.0,
                share(86400.0) * 100.0,
                o.unfound,
                o.by_audits,
                o.distrusted.len(),
                o.pairs,
                if o.distrusted.is_empty() { "—".into() } else { fmt_secs(first) },
                o.challenges_per_hour,
                bytes_h / 1024.0,
            );
            let _ = writeln!(
                csv,
                "{},{scrub},{size},{},{p50},{p99},{last},{},{},{},{},{},{},{},{}",
                holder.label().replace(',', ";"),
                o.lost,
                share(3600.0),
                share(86400.0),
                o.unfound,
                o.by_audits,
                o.distrusted.len(),
                o.pairs,
                o.challenges_per_hour,
                bytes_h
            );
        }
    }
    (md, csv)
}

/// audits.md and audits.csv in `out`, made by `cmd`.
fn write_audits(out: &std::path::Path, cmd: &str, relays: usize, sizes: &[usize], seed: u64) -> Result<()> {
    let (md, csv) = audit_tables(relays, sizes, seed);
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join("audits.md"),
        format!("# Silent loss and dishonest holders: time to find them\n\n`{cmd}`\n\n{md}\n{AUDIT_NOTES}"),
    )?;
    std::fs::write(out.join("audits.csv"), csv)?;
    Ok(())
}

/// How to read the audit table.
const AUDIT_NOTES: &str = "\
*Auditors distrusting it* counts the pairs (auditor, holder) in which the auditor distrusted the holder by the time the last lost shard was found, of all such pairs; *first distrust* is the median time of those. A shard found is rebuilt (an honest holder's on the same relay, after which its challenges pass; a dishonest holder's elsewhere, after which no one challenges that claim). Traffic counts a challenge and its proof on the wire (`Request::Prove` and `Response::Proof` frames for a 256 KiB shard); every relay sends about as many challenges as it answers.

An honest relay that lost a shard without knowing is found by its own scrub within one pass, and by audits alone only at the rate they sample its claims, which falls as it holds more: four claims per peer per interval, whatever the holding. A relay that admits each loss when asked (\"lost\"), dropping a share of its shards on purpose, is found at that slow rate too: what it saves is that share of its disk, and each shard found is rebuilt. A relay that forges a proof loses all trust at the first challenge on a shard it dropped, and with it every claim it makes to that auditor; answering nothing or \"not found\" costs a little score per challenge until it is distrusted.
";

/// The economy's table (Markdown) and its supply over time (CSV).
fn economy_tables(relays: usize, epochs: u64, seed: u64) -> (String, String) {
    use kura_core::farming::{AUDIT_GROUP, AUDIT_QUORUM, EPOCH_SAMPLES};
    let c = economy::Config { epochs, ..economy::Config::year(relays, seed) };
    let start = Instant::now();
    let o = economy::run(&c);
    let secs = start.elapsed().as_secs_f64();
    let last = o.history.last().copied().unwrap_or_default();
    let p = c.prices;
    let mut md = format!(
        "{relays} relays, {epochs} epochs; each epoch {} paid stripes (one batch, 30 to 180 epochs) and {} free ones, {} MiB of shard bytes each over {} relays (its close group); price {} per GiB of shard bytes per epoch, fee {}% burnt for good, so a relay earns {} per GiB-epoch proven. {} relays drop {:.0}% of the shards they take; one operator runs {} relays together and uploads {} stripes of its own per epoch onto them. Each relay's audit group is the {AUDIT_GROUP} relays nearest a point that moves each epoch, each auditor asks {EPOCH_SAMPLES} proofs, {AUDIT_QUORUM} all-pass shares make the reward (`kura_core::farming`). The free allowance earns nothing.\n\n",
        c.uploads_per_epoch,
        c.free_per_epoch,
        c.stripe_bytes >> 20,
        c.n,
        p.price,
        p.fee_percent,
        p.rate(),
        c.droppers,
        c.drop_share * 100.0,
        c.n,
        c.self_dealt_per_epoch,
    );
    let _ = writeln!(md, "| measure | value |\n|---|---|");
    let rows: Vec<(String, String)> = vec![
        ("burnt by batches".into(), last.burnt.to_string()),
        (
            "minted as rewards".into(),
            format!(
                "{} ({:.1}% of burnt; at most {}%)",
                last.minted,
                100.0 * last.minted as f64 / last.burnt.max(1) as f64,
                100 - p.fee_percent
            ),
        ),
        (
            "invariants *minted ≤ burnt less the fee* and the ledger's conservation (rewards minted by `Replica::deposit_reward`) checked".into(),
            format!(
                "after each of {} epochs ({} relay-epochs audited): held",
                o.invariant_checks, o.relay_epochs
            ),
        ),
        ("honest relays' epochs rewarded".into(), format!("{} of {}", o.honest_rewarded, o.honest_epochs)),
        (
            "honest relays' earnings against the formula (rate · bytes proven, per epoch)".into(),
            format!("worst relay {:.3}% off", o.honest_worst_gap * 100.0),
        ),
        (
            format!(
                "relays dropping {:.0}%: epochs rewarded of those with a dropped shard",
                c.drop_share * 100.0
            ),
            format!(
                "{} of {} ({:.1}%)",
                o.dropper_rewarded,
                o.dropper_epochs,
                100.0 * o.dropper_rewarded as f64 / o.dropper_epochs.max(1) as f64
            ),
        ),
        (
            "self-dealer: burnt for its own uploads, earned holding them".into(),
            format!(
                "{} / {} (net {:.1}% of what it paid)",
                o.self_burnt,
                o.self_earned,
                100.0 * (o.self_earned as f64 - o.self_burnt as f64) / o.self_burnt.max(1) as f64
            ),
        ),
        ("certificates refused when deposited".into(), o.refused.to_string()),
        ("run".into(), format!("{secs:.1} s")),
    ];
    for (k, v) in rows {
        let _ = writeln!(md, "| {k} | {v} |");
    }
    // Traffic per relay per epoch: it answers AUDIT_GROUP auditors' samples and asks as many.
    let challenge = kura_sim::audits::challenge_bytes((c.stripe_bytes / c.n as u64) as usize);
    let share = 32 + 64 + 2;
    let cert = 8 + 32 + 32 + 8 + AUDIT_QUORUM * share;
    let _ = writeln!(
        md,
        "\nTraffic per relay per epoch: it answers {AUDIT_GROUP} × {EPOCH_SAMPLES} challenges and asks as many ({} KiB each way: a challenge and its proof are {challenge} bytes for a {} KiB shard); it collects {AUDIT_QUORUM} or more shares of about {share} bytes and deposits one certificate of about {cert} bytes with the {} replicas of its account ({} KiB). The relays' own neighbour audits (audits.md) come on top.",
        AUDIT_GROUP * EPOCH_SAMPLES * challenge / 1024,
        c.stripe_bytes / c.n as u64 / 1024,
        kura_core::ledger::REPLICAS,
        cert * kura_core::ledger::REPLICAS / 1024,
    );
    let mut csv = String::from("epoch,burnt,minted,paid_shard_bytes,free_shard_bytes\n");
    for t in &o.history {
        let _ = writeln!(csv, "{},{},{},{},{}", t.epoch, t.burnt, t.minted, t.paid_bytes, t.free_bytes);
    }
    eprintln!("economy: {relays} relays, {epochs} epochs: burnt {}, minted {}, droppers rewarded {}/{}, self-dealer {}/{} ({secs:.1} s)", last.burnt, last.minted, o.dropper_rewarded, o.dropper_epochs, o.self_earned, o.self_burnt);
    (md, csv)
}

/// economy.md and economy.csv in `out`, made by `cmd`.
fn write_economy(out: &std::path::Path, cmd: &str, relays: usize, epochs: u64, seed: u64) -> Result<()> {
    let (md, csv) = economy_tables(relays, epochs, seed);
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("economy.md"), format!("# The farming economy\n\n`{cmd}`\n\n{md}"))?;
    std::fs::write(out.join("economy.csv"), csv)?;
    Ok(())
}

/// Double spends and frozen accounts by the adversary's share, with kura-core's replicas.
fn ledger_table(relays: usize, accounts: usize, seed: u64) -> String {
    let r = kura_core::ledger::REPLICAS;
    let q = r - (r - 1) / 3;
    let f = 2 * q - r - 1;
    let mut md = format!(
        "{relays} relays, {accounts} accounts per row; each account's group is its {r} closest relays (quorum {q}, `f` = {f}), the adversary's relays have random ids. Every account's owner colludes with the adversary and signs two transfers for one slot, each sent to half the honest replicas (which run `kura_core::ledger::Replica`) and both to the adversary's (which acknowledge anything); each honest replica is then handed both. Separately, an honest owner's transfer is refused by the adversary's replicas in its group.\n\n| adversary's share | groups with more than f (simulated) | binomial law | double spends (two certificates for one slot) | honest replicas keeping evidence | honest replicas named by evidence | honest owners' transfers refused (frozen) / their groups with more than R − q | run |\n|---|---|---|---|---|---|---|---|\n"
    );
    for share in [0.05, 0.1, 0.2, 0.3] {
        let start = Instant::now();
        let o = ledger::run(&ledger::Config { relays, accounts, share, seed });
        let secs = start.elapsed().as_secs_f64();
        let law = capture::binomial_tail(r, f + 1, share);
        eprintln!(
            "ledger: {:.0}%: {} over f, {} double spends, {} frozen ({secs:.1} s)",
            share * 100.0,
            o.over_f,
            o.double_spent,
            o.frozen
        );
        let _ = writeln!(
            md,
            "| {:.0}% | {} ({}) | {} | {} | {} | {} | {} / {} of {} | {secs:.1} s |",
            share * 100.0,
            o.over_f,
            fmt_p(o.over_f as f64 / accounts as f64),
            fmt_p(law),
            o.double_spent,
            o.evidence_kept,
            o.honest_named,
            o.frozen,
            o.over_f_withholding,
            accounts,
        );
    }
    let _ = write!(md, "\nA double spend needs {} of the adversary's replicas in the group (two quorums of {q} out of {r} share {}): it happens exactly where the group has more than `f`, as often as the binomial law says, and every honest replica that is handed both transfers keeps evidence (the owner's two signatures; where both certified, the replicas on both), which names the owner and never an honest replica, and bans the owner. The spending cap (`--ledger-cap`) bounds what such a group lets an owner spend twice per window (`core/src/ledger_tests.rs`). Withholding freezes an account's transfers exactly where the adversary holds more than `R − q` = {} of its {r} replicas. The join work prices ground ids, the account work chosen accounts (`capture.md`).\n", f + 1, f + 1, r - q);
    md
}

/// Relay load per browser for each (relays, browsers per relay).
fn load_table(sizes: &[(usize, usize)], seed: u64) -> String {
    let mut md = String::from(
        "One day: every browser puts one file and reads five, each of 16 stripes (4+2, 1 MiB shards: a 64 MiB file); each stripe costs a lookup (about 23 messages, 20 of them to the 20 relays closest to the stripe, `lookups.md`) and a shard to each of 6 members (put) or from 4 of them (get). A tenth of the browsers donate and hold a reservation on a relay picked at random. Per relay, over the relays: mean / p99 / max.\n\n| relays | browsers | shard MiB taken from browsers | shard MiB sent to browsers | lookup messages answered | distinct browsers served | tabs' reservations held | run |\n|---|---|---|---|---|---|---|---|\n",
    );
    for &(relays, per_relay) in sizes {
        let c = load::Config {
            relays,
            browsers: relays * per_relay,
            puts: 1,
            gets: 5,
            stripes: 16,
            shard_bytes: 1 << 20,
            k: 4,
            n: 6,
            donating: 0.1,
            seed,
        };
        let start = Instant::now();
        let o = load::run(&c);
        let secs = start.elapsed().as_secs_f64();
        let mib = |s: load::Spread| {
            format!("{:.0} / {:.0} / {:.0}", s.mean / 1048576.0, s.p99 / 1048576.0, s.max / 1048576.0)
        };
        let n = |s: load::Spread| format!("{:.0} / {:.0} / {:.0}", s.mean, s.p99, s.max);
        eprintln!(
            "load: {relays} relays, {} browsers: {} MiB in, {} MiB out per relay ({secs:.1} s)",
            c.browsers,
            mib(o.bytes_in),
            mib(o.bytes_out)
        );
        let _ = writeln!(
            md,
            "| {relays} | {} | {} | {} | {} | {} | {:.1} / {:.0} / {:.0} | {secs:.1} s |",
            c.browsers,
            mib(o.bytes_in),
            mib(o.bytes_out),
            n(o.lookups),
            n(o.browsers),
            o.reservations.mean,
            o.reservations.p99,
            o.reservations.max,
        );
    }
    md.push_str("\nThe load per relay is the browsers' traffic divided by the relays, spread by XOR placement so that the busiest relay takes a few times the mean (the max against the mean above; a relay's share is the stretch of key space it is closest to, which random ids make uneven); it grows with browsers per relay, not with the network's size. A browser costs a relay nothing between its requests (no routing-table entry, no periodic messages): lookups and shards only.\n");
    md
}

fn fmt_p(p: f64) -> String {
    if p == 0.0 {
        "0".into()
    } else if p >= 0.01 {
        format!("{:.1}%", p * 100.0)
    } else {
        format!("{p:.1e}")
    }
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Lookups { nodes, lookups: count, dead, seed } => {
            let rows: Vec<LookupRow> = nodes.iter().map(|&n| lookups(n, count, dead, seed)).collect();
            print!("{}\n{}", lookup_table(&rows, count).0, lossy_table(&nodes, count, seed));
        }
        Cmd::Capture { nodes, targets, grinds, identities, seed, out } => {
            let (md, csv) = capture_tables(nodes, targets, grinds, identities, seed);
            match out {
                None => print!("{md}"),
                Some(out) => {
                    let cmd = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
                    std::fs::write(
                        out.join("capture.md"),
                        format!("# Close groups under an adversary\n\n`kura-sim {cmd}`\n\n{md}"),
                    )?;
                    std::fs::write(out.join("capture.csv"), csv)?;
                }
            }
        }
        Cmd::JoinKeys { count, seed } => {
            let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            for _ in 0..count {
                let (seed, _) = capture::join_key(kura_core::placement::JOIN_BITS, &mut rng);
                println!("{}", kura_core::hex::encode(&seed));
            }
        }
        Cmd::AccountKeys { count, seed } => {
            let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            for _ in 0..count {
                let key = kura_core::testdata::account_from(&mut rng);
                println!("{}", kura_core::hex::encode(&key.to_bytes()));
            }
        }
        Cmd::Size { relays, stripes, days, seed, append } => {
            let c = durability::Config::new(relays, stripes, (4, 2), days, 30.0, PROFILES[0], seed);
            let start = Instant::now();
            let o = durability::run(&c);
            let secs = start.elapsed().as_secs_f64();
            let row = format!(
                "| {relays} | {stripes} | {days} | {} | {} | {} | {secs:.1} s | {:.0} MiB |\n",
                o.plans,
                o.rebuilds,
                o.lost,
                peak_rss_mib()
            );
            print!("{row}");
            if let Some(path) = append {
                use std::io::Write as _;
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?
                    .write_all(row.as_bytes())?;
            }
        }
        Cmd::Audits { relays, shards, seed, out } => match out {
            Some(out) => {
                let sizes = shards.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
                write_audits(
                    &out,
                    &format!("kura-sim audits --relays {relays} --shards {sizes} --seed {seed}"),
                    relays,
                    &shards,
                    seed,
                )?;
            }
            None => print!("{}", audit_tables(relays, &shards, seed).0),
        },
        Cmd::Economy { relays, epochs, seed, out } => match out {
            Some(out) => write_economy(
                &out,
                &format!("kura-sim economy --relays {relays} --epochs {epochs} --seed {seed}"),
                relays,
                epochs,
                seed,
            )?,
            None => print!("{}", economy_tables(relays, epochs, seed).0),
        },
        Cmd::Load { relays, per_relay, seed } => {
            let sizes: Vec<(usize, usize)> = relays.into_iter().zip(per_relay).collect();
            print!("{}", load_table(&sizes, seed));
        }
        Cmd::Ledger { relays, accounts, seed } => print!("{}", ledger_table(relays, accounts, seed)),
        Cmd::Durability(ChurnRun { relays, stripes, days, seed }) => {
            print!("{}", durability_tables(relays, stripes, days, 30.0, seed).0);
        }
        Cmd::Rebuilds(ChurnRun { relays, stripes, days, seed }) => {
            print!("{}", rebuilds_table(relays, stripes, days, 30.0, seed));
        }
        Cmd::Grace(ChurnRun { relays, stripes, days, seed }) => {
            print!("{}", grace_table(relays, stripes, days, 30.0, seed));
        }
        Cmd::Bandwidth(ChurnRun { relays, stripes, days, seed }) => {
            print!("{}", bandwidth_table(relays, stripes, days, 30.0, seed));
        }
        Cmd::Loss(ChurnRun { relays, stripes, days, seed }) => {
            print!("{}", loss_table(relays, stripes, days, 30.0, seed));
        }
        Cmd::Groups { nodes, points, seed } => {
            print!("{}", groups_table(&nodes, points, seed));
        }
        Cmd::All { out, nodes, quick, seed } => {
            std::fs::create_dir_all(&out)?;
            let nodes = if quick { vec![500, 2000] } else { nodes };
            let count = if quick { 100 } else { 1000 };
            let mut rows = Vec::new();
            for &n in &nodes {
                for dead in [0.0, 0.2] {
                    let r = lookups(n, count, dead, seed);
                    eprintln!("lookups: {} relays, {:.0}% down: hops {:.2}, {:.1} messages, p50 {:.0} ms, found {:.2} of {K} ({:.1} s + {:.1} s, {:.0} MiB)", r.nodes, dead * 100.0, r.hops_mean, r.msgs_mean, r.ms_p50, r.found, r.build_s, r.run_s, r.rss_mib);
                    rows.push(r);
                }
            }
            let (md, csv) = lookup_table(&rows, count);
            let cmd = format!(
                "kura-sim all --out {} --seed {seed}{}",
                out.display(),
                if quick { " --quick" } else { "" }
            );
            let lossy = lossy_table(&nodes, count, seed);
            std::fs::write(
                out.join("lookups.md"),
                format!("# Lookups versus relays\n\n`{cmd}` (iterative Kademlia, K = {K}, α = {}, one-way latency 5–140 ms between five regions, 1 s timeout for a relay that is down; peak RSS is the whole process so far).\n\n{md}\n{lossy}", kad::ALPHA),
            )?;
            std::fs::write(out.join("lookups.csv"), csv)?;
            let (cn, targets) = if quick { (2000, 2000) } else { (100_000, 20_000) };
            let (md, csv) =
                capture_tables(cn, targets, if quick { 1 } else { 3 }, if quick { 1 } else { 8 }, seed);
            std::fs::write(
                out.join("capture.md"),
                format!("# Close groups under an adversary\n\n`{cmd}`\n\n{md}"),
            )?;
            std::fs::write(out.join("capture.csv"), csv)?;
            let (relays, stripes, days) = if quick { (300, 200, 10.0) } else { (1000, 2000, 90.0) };
            let (md, csv) = durability_tables(relays, stripes, days, 30.0, seed);
            std::fs::write(
                out.join("durability.md"),
                format!("# Durability and repair traffic under churn\n\n`{cmd}`\n\n{md}\nA rebuild reads `k` shards, a handover one. Stripes start whole; a relay that leaves for good takes its disk and is replaced by an empty one at a random point (candidate lists are recomputed daily).\n"),
            )?;
            std::fs::write(out.join("durability.csv"), csv)?;
            type Table = fn(usize, usize, f64, f64, u64) -> String;
            let churn: [(&str, &str, &str, Table, &str); 4] = [
                ("bandwidth", "Durability against repair bandwidth", "bandwidth", bandwidth_table, ""),
                ("loss", "Repair under message loss", "loss", loss_table, LOSS_NOTES),
                (
                    "rebuilds",
                    "Wide stripes: when and how lost shards are rebuilt",
                    "rebuilds",
                    rebuilds_table,
                    REBUILDS_NOTES,
                ),
                ("grace", "A grace that follows each relay's record", "grace", grace_table, GRACE_NOTES),
            ];
            for (file, title, sub, table, notes) in churn {
                std::fs::write(
                    out.join(format!("{file}.md")),
                    format!(
                        "# {title}\n\n`{cmd}` (alone: `kura-sim {sub} --relays {relays} --stripes {stripes} --days {days} --seed {seed}`)\n\n{}{notes}",
                        table(relays, stripes, days, 30.0, seed)
                    ),
                )?;
            }
            let (relays, sizes) =
                if quick { (100, vec![100, 1000]) } else { (300, vec![100, 1000, 10_000, 100_000]) };
            write_audits(&out, &cmd, relays, &sizes, seed)?;
            let (relays, accounts) = if quick { (1000, 300) } else { (10_000, 5_000) };
            std::fs::write(
                out.join("ledger.md"),
                format!("# The credits ledger under an adversary\n\n`{cmd}` (one run: `kura-sim ledger --relays {relays} --accounts {accounts}`)\n\n{}", ledger_table(relays, accounts, seed)),
            )?;
            let sizes: Vec<(usize, usize)> =
                if quick { vec![(200, 10)] } else { vec![(1000, 10), (1000, 100), (10_000, 10)] };
            std::fs::write(
                out.join("load.md"),
                format!("# Relay load per browser\n\n`{cmd}` (one size: `kura-sim load --relays N --per-relay B`)\n\n{}", load_table(&sizes, seed)),
            )?;
            let (sizes, points) =
                if quick { (vec![500, 2000], 60) } else { (vec![1000, 10_000, 100_000], 300) };
            std::fs::write(
                out.join("groups.md"),
                format!(
                    "# Audit groups at scale\n\n`{cmd}` (alone: `kura-sim groups --nodes {} --points {points} --seed {seed}`)\n\n{}",
                    sizes.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(","),
                    groups_table(&sizes, points, seed)
                ),
            )?;
            let (relays, epochs) = if quick { (100, 60) } else { (1000, 365) };
            write_economy(&out, &cmd, relays, epochs, seed)?;
            eprintln!("tables written to {}", out.display());
        }
    }
    Ok(())
}
