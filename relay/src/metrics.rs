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
}

impl Metrics {
    /// Registers everything in `registry` (which may already hold libp2p's own metrics).
    pub fn new(mut registry: Registry) -> Self {
        let m = Self {
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
        *m.registry.lock().unwrap_or_else(|p| p.into_inner()) = registry;
        m
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let reg = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
        out
    }

    pub fn request(&self, kind: &str) {
        self.requests.get_or_create(&Kind { kind: kind.into() }).inc();
    }

    pub fn error(&self, kind: &str, code: kura_core::wire::ErrorCode) {
        let label = KindCode { kind: kind.into(), code: format!("{}", code.as_u16()) };
        self.errors.get_or_create(&label).inc();
    }
}
