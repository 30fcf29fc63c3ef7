//! Prometheus metrics of a relay (served at `GET /metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::Mutex;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindCode {
    pub kind: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Transport {
    pub transport: String,
}

/// Every metric the relay exports.
#[derive(Debug)]
pub struct Metrics {
    pub registry: Mutex<Registry>,
    pub requests: Family<Kind, Counter>,
    pub errors: Family<KindCode, Counter>,
    pub shards_held: Gauge,
    pub bytes_held: Gauge,
    pub quota_bytes: Gauge,
    pub peers: Family<Transport, Gauge>,
    pub routing_table_peers: Gauge,
    pub request_bytes_in: Counter,
    pub response_bytes_out: Counter,
    pub stripes_by_live: Family<Live, Gauge>,
    pub under_replicated: Gauge,
    pub repair_bytes_in: Counter,
    pub repair_bytes_out: Counter,
    pub repair_queue_length: Gauge,
    pub repair_queue_oldest_seconds: Gauge,
    pub repair_events: Family<Kind, Counter>,
    /// Requests refused by a rule about their sender (allowance spent, not in the group).
    pub refusals: Family<Kind, Counter>,
    /// Audits, as auditor (verdicts given) and as auditee (challenges answered).
    pub audits: Family<AuditLabels, Counter>,
    /// Bytes of audit messages, in and out.
    pub audit_bytes: Family<Direction, Counter>,
    /// Each audited peer's score (1: never failed; below the threshold: distrusted).
    pub reputation: Family<Peer, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Own shards re-read and re-hashed, by result.
    pub scrubbed: Family<Kind, Counter>,
    /// Clients' reports of claims they could not prove, by what became of them.
    pub reports: Family<Kind, Counter>,
    /// Ledger requests answered, by outcome.
    pub ledger: Family<Kind, Counter>,
    pub ledger_catch_ups: Family<Kind, Counter>,
    /// Groups looked up where the view was thin (or lookups are always on), by whose:
    /// `certificate` (a sender's), `burn` (a batch owner's), `own` (this relay's rewards
    /// account's).
    pub group_lookups: Family<Kind, Counter>,
    /// Batches revoked for a slot stamped twice: `found` here, or `told` by another relay.
    pub batches_revoked: Family<Kind, Counter>,
    /// Stripes whose rebuild failed too often here and was given up.
    pub given_up: Gauge,
    /// Bytes of inbound messages being read (set when the metrics are read).
    pub reading_bytes: Gauge,
    /// Stores admitted within the free allowance, and paid by postage.
    pub stores_free: Counter,
    pub stores_paid: Counter,
    /// Shards dropped because their stripe's batch ended (and its grace).
    pub shards_expired: Counter,
    /// What this relay's epoch claims earned (credits deposited), and its epochs rewarded
    /// and forfeited (a claim of paid shards that got no certificate).
    pub credits_earned: Counter,
    pub epochs_rewarded: Counter,
    pub epochs_forfeited: Counter,
    /// Epochs with something to claim that were not claimed: too few of the draw group
    /// answered with a draw to place the audit group ([`crate::epochs::claim`]).
    pub epochs_unplaced: Counter,
    /// Claim pages sent again without batches the auditors named revoked.
    pub claims_resent: Counter,
    /// Credits this relay paid donating tabs, and the transfers that did, and those that
    /// failed ([`crate::epochs::pay_tabs`]).
    pub tab_credits_paid: Counter,
    pub tab_payments: Counter,
    pub tab_payments_failed: Counter,
    /// Other relays' epoch claims judged here, by outcome (signed, failed, refused, and
    /// revoked: naming a batch revoked here, refused before any judgement).
    pub epoch_audits: Family<Kind, Counter>,
    /// Donating tabs with announcements kept here, and the announcements (set when read).
    pub tabs_known: Gauge,
    pub tab_announcements: Gauge,
    /// Peers holding a circuit reservation here now (donating tabs are reachable so).
    pub reservations: Gauge,
    /// Circuits opened through this relay (a reader to a tab), and shards offered to tabs.
    pub circuits: Counter,
    pub tab_offers: Counter,
    pub tab_offer_bytes: Counter,
    /// Bytes that circuits' destinations (donating tabs) sent through this relay, and that
    /// were sent to them (see [`crate::circuit_bytes`]).
    pub circuit_bytes: crate::circuit_bytes::Tally,
    /// Spot-checks of tabs by outcome, and the bytes they fetched.
    pub tab_checks: Family<Kind, Counter>,
    pub tab_check_bytes: Counter,
    /// Kademlia requests answered (each step of someone's lookup that reached this relay).
    pub kad_requests: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuditLabels {
    pub role: String,
    pub verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Direction {
    pub direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Peer {
    pub peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Live {
    pub live: String,
}

impl Metrics {
    /// Registers everything in `registry` (which may already hold libp2p's own metrics).
    pub fn new(registry: Registry) -> Self {
        Self::with_circuit_bytes(registry, Default::default())
    }

    /// The same, with the circuit byte counts the swarm's connections add to.
    pub fn with_circuit_bytes(mut registry: Registry, circuit_bytes: crate::circuit_bytes::Tally) -> Self {
        let m = Self {
            circuit_bytes,
            tab_checks: Family::default(),
            tab_check_bytes: Counter::default(),
            registry: Mutex::new(Registry::default()),
            requests: Family::default(),
            errors: Family::default(),
            shards_held: Gauge::default(),
            bytes_held: Gauge::default(),
            quota_bytes: Gauge::default(),
            peers: Family::default(),
            routing_table_peers: Gauge::default(),
            request_bytes_in: Counter::default(),
            response_bytes_out: Counter::default(),
            stripes_by_live: Family::default(),
            under_replicated: Gauge::default(),
            repair_bytes_in: Counter::default(),
            repair_bytes_out: Counter::default(),
            repair_queue_length: Gauge::default(),
            repair_queue_oldest_seconds: Gauge::default(),
            repair_events: Family::default(),
            refusals: Family::default(),
            audits: Family::default(),
            audit_bytes: Family::default(),
            reputation: Family::default(),
            scrubbed: Family::default(),
            reports: Family::default(),
            ledger: Family::default(),
            ledger_catch_ups: Family::default(),
            group_lookups: Family::default(),
            batches_revoked: Family::default(),
            given_up: Gauge::default(),
            reading_bytes: Gauge::default(),
            stores_free: Counter::default(),
            stores_paid: Counter::default(),
            shards_expired: Counter::default(),
            credits_earned: Counter::default(),
            epochs_rewarded: Counter::default(),
            epochs_forfeited: Counter::default(),
            epochs_unplaced: Counter::default(),
            claims_resent: Counter::default(),
            tab_credits_paid: Counter::default(),
            tab_payments: Counter::default(),
            tab_payments_failed: Counter::default(),
            epoch_audits: Family::default(),
            tabs_known: Gauge::default(),
            tab_announcements: Gauge::default(),
            reservations: Gauge::default(),
            circuits: Counter::default(),
            tab_offers: Counter::default(),
            tab_offer_bytes: Counter::default(),
            kad_requests: Counter::default(),
        };
        let r = registry.sub_registry_with_prefix("kura");
        r.register("requests", "Storage protocol requests by kind", m.requests.clone());
        r.register("request_errors", "Refused storage requests by kind and error code", m.errors.clone());
        r.register("shards_held", "Shards held on disk", m.shards_held.clone());
        r.register("bytes_held", "Bytes of shards and headers held", m.bytes_held.clone());
        r.register("quota_bytes", "Storage quota in bytes", m.quota_bytes.clone());
        r.register("connected_peers", "Open connections by transport", m.peers.clone());
        r.register(
            "routing_table_peers",
            "Peers in the Kademlia routing table",
            m.routing_table_peers.clone(),
        );
        r.register("storage_bytes_in", "Bytes of storage requests received", m.request_bytes_in.clone());
        r.register("storage_bytes_out", "Bytes of storage responses sent", m.response_bytes_out.clone());
        r.register(
            "stripes_by_live_shards",
            "Stripes held here, by live shards in the network (last repair round)",
            m.stripes_by_live.clone(),
        );
        r.register(
            "under_replicated_stripes",
            "Stripes held here whose close group lacks shards (last repair round)",
            m.under_replicated.clone(),
        );
        r.register(
            "repair_bytes_in",
            "Bytes received for repair: shards fetched to rebuild, and handovers",
            m.repair_bytes_in.clone(),
        );
        r.register(
            "repair_bytes_out",
            "Bytes sent for repair: handovers, and shards served to rebuilding relays",
            m.repair_bytes_out.clone(),
        );
        r.register("repair_queue_length", "Rebuilds waiting", m.repair_queue_length.clone());
        r.register(
            "repair_queue_oldest_seconds",
            "Age of the oldest waiting rebuild",
            m.repair_queue_oldest_seconds.clone(),
        );
        r.register("repair_events", "Repair actions by outcome", m.repair_events.clone());
        r.register(
            "refused_requests",
            "Requests refused by a rule about their sender (allowance, close group), by kind",
            m.refusals.clone(),
        );
        r.register(
            "audits",
            "Audits: verdicts given as auditor, challenges answered as auditee",
            m.audits.clone(),
        );
        r.register("audit_bytes", "Bytes of audit messages by direction", m.audit_bytes.clone());
        r.register("peer_reputation", "Audit score of each audited peer", m.reputation.clone());
        r.register("scrubbed_shards", "Own shards re-read and re-hashed, by result", m.scrubbed.clone());
        r.register(
            "audit_reports",
            "Clients' reports of claims they could not prove, by outcome",
            m.reports.clone(),
        );
        r.register("ledger_requests", "Ledger requests answered, by outcome", m.ledger.clone());
        r.register(
            "ledger_catch_ups",
            "Catch-ups of an account this replica was behind on, by outcome",
            m.ledger_catch_ups.clone(),
        );
        r.register(
            "group_lookups",
            "Ledger groups this relay looked up, its view lacking them, by whose (certificate, burn, own)",
            m.group_lookups.clone(),
        );
        r.register(
            "batches_revoked",
            "Batches revoked for a slot stamped twice: found here, or told by another relay",
            m.batches_revoked.clone(),
        );
        r.register(
            "repair_given_up_stripes",
            "Stripes whose rebuild failed too often here and was given up",
            m.given_up.clone(),
        );
        r.register(
            "reading_bytes",
            "Bytes of inbound messages being read, over every connection",
            m.reading_bytes.clone(),
        );
        r.register("stores_free", "Client stores admitted within the free allowance", m.stores_free.clone());
        r.register("stores_paid", "Client stores admitted paid by postage", m.stores_paid.clone());
        r.register(
            "shards_expired",
            "Shards dropped because their stripe's batch ended and its grace passed",
            m.shards_expired.clone(),
        );
        r.register(
            "tab_credits_paid",
            "Credits this relay paid donating tabs out of its rewards",
            m.tab_credits_paid.clone(),
        );
        r.register("tab_payments", "Transfers that paid a donating tab", m.tab_payments.clone());
        r.register(
            "tab_payments_failed",
            "Transfers to donating tabs that were not certified",
            m.tab_payments_failed.clone(),
        );
        r.register(
            "credits_earned",
            "Credits this relay's epoch rewards deposited",
            m.credits_earned.clone(),
        );
        r.register(
            "epochs_rewarded",
            "Epochs whose reward certificate was deposited",
            m.epochs_rewarded.clone(),
        );
        r.register(
            "epochs_forfeited",
            "Epochs claimed for paid shards that got no certificate",
            m.epochs_forfeited.clone(),
        );
        r.register(
            "epochs_unplaced",
            "Epochs not claimed because too few neighbours gave a draw to place the audit group",
            m.epochs_unplaced.clone(),
        );
        r.register(
            "claims_resent",
            "Claim pages sent again without batches the auditors named revoked",
            m.claims_resent.clone(),
        );
        r.register(
            "epoch_audits",
            "Other relays' epoch claims judged here, by outcome",
            m.epoch_audits.clone(),
        );
        r.register("tabs_known", "Donating tabs with announcements kept here", m.tabs_known.clone());
        r.register("tab_announcements", "Shards donating tabs announced here", m.tab_announcements.clone());
        r.register("reservations", "Peers holding a circuit reservation here", m.reservations.clone());
        r.register("circuits", "Circuits opened through this relay", m.circuits.clone());
        r.register("tab_offers", "Shards offered to donating tabs", m.tab_offers.clone());
        r.register("tab_offer_bytes", "Shard bytes offered to donating tabs", m.tab_offer_bytes.clone());
        r.register("tab_checks", "Spot-checks of donating tabs by outcome", m.tab_checks.clone());
        r.register(
            "tab_check_bytes",
            "Bytes fetched from donating tabs by spot-checks",
            m.tab_check_bytes.clone(),
        );
        r.register(
            "tab_served_bytes",
            "Bytes circuits' destinations (donating tabs) sent through this relay",
            m.circuit_bytes.from_destinations.clone(),
        );
        r.register(
            "tab_asked_bytes",
            "Bytes sent through this relay to circuits' destinations (donating tabs)",
            m.circuit_bytes.to_destinations.clone(),
        );
        r.register("kad_requests", "Kademlia requests answered", m.kad_requests.clone());
        *m.registry.lock().unwrap_or_else(|p| p.into_inner()) = registry;
        m
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        self.reading_bytes.set(kura_p2p::protocol::READING.used() as i64);
        let mut out = String::new();
        let reg = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
        out
    }

    pub fn request(&self, kind: &str) {
        self.requests.get_or_create(&Kind { kind: kind.into() }).inc();
    }

    pub fn refused(&self, kind: &str) {
        self.refusals.get_or_create(&Kind { kind: kind.into() }).inc();
    }

    /// An audit: `role` "auditor" or "auditee", `verdict` "pass", "fail", "timeout", "false".
    pub fn audit(&self, role: &str, verdict: &str, bytes_in: usize, bytes_out: usize) {
        self.audits.get_or_create(&AuditLabels { role: role.into(), verdict: verdict.into() }).inc();
        self.audit_bytes.get_or_create(&Direction { direction: "in".into() }).inc_by(bytes_in as u64);
        self.audit_bytes.get_or_create(&Direction { direction: "out".into() }).inc_by(bytes_out as u64);
    }

    /// A client's report, and what became of it.
    pub fn report(&self, outcome: kura_core::audit::Reported) {
        use kura_core::audit::Reported;
        let kind = match outcome {
            Reported::Accepted => "accepted",
            Reported::NotReliedOn => "not_relied_on",
            Reported::TooSoon => "too_soon",
            Reported::Full => "full",
        };
        self.reports.get_or_create(&Kind { kind: kind.into() }).inc();
    }

    pub fn ledger(&self, outcome: &str) {
        self.ledger.get_or_create(&Kind { kind: outcome.into() }).inc();
    }

    pub fn ledger_catch_up(&self, outcome: &str) {
        self.ledger_catch_ups.get_or_create(&Kind { kind: outcome.into() }).inc();
    }

    /// A group looked up (`kind`: whose, as [`Metrics::group_lookups`] says).
    pub fn group_lookup(&self, kind: &str) {
        self.group_lookups.get_or_create(&Kind { kind: kind.into() }).inc();
    }

    /// A batch revoked here: `how` is `found` or `told`.
    pub fn batch_revoked(&self, how: &str) {
        self.batches_revoked.get_or_create(&Kind { kind: how.into() }).inc();
    }

    pub fn repair_event(&self, kind: &str) {
        self.repair_events.get_or_create(&Kind { kind: kind.into() }).inc();
    }

    /// Replaces the stripes-by-live-shards gauges with one round's counts.
    pub fn set_stripes_by_live(&self, by_live: &std::collections::BTreeMap<usize, usize>) {
        self.stripes_by_live.clear();
        for (live, n) in by_live {
            self.stripes_by_live.get_or_create(&Live { live: live.to_string() }).set(*n as i64);
        }
    }

    pub fn error(&self, kind: &str, code: kura_core::wire::ErrorCode) {
        let label = KindCode { kind: kind.into(), code: format!("{}", code.as_u16()) };
        self.errors.get_or_create(&label).inc();
    }
}
