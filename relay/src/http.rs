//! The relay's HTTP side: the web page, `GET /bootstrap`, `GET /metrics`, `GET /health`,
//! `GET /status`.

use crate::node::Shared;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use std::path::PathBuf;
use std::sync::Arc;

/// The router, serving static files from `www` for every other path.
pub fn router(shared: Arc<Shared>, www: PathBuf) -> Router {
    Router::new()
        .route("/bootstrap", get(bootstrap))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/status", get(status))
        .fallback_service(tower_http::services::ServeDir::new(www))
        .with_state(shared)
}

/// Peer id and every listen address (with `/p2p/…`; WebRTC-direct ones carry the certhash).
async fn bootstrap(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    let info = s.info.read().unwrap_or_else(|p| p.into_inner()).clone();
    Json(serde_json::json!({ "peer_id": info.peer_id, "addrs": info.listen }))
}

async fn metrics(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    let u = s.store.usage();
    s.metrics.shards_held.set(u.shards as i64);
    s.metrics.bytes_held.set(u.bytes as i64);
    s.metrics.quota_bytes.set(u.quota.min(i64::MAX as u64) as i64);
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        s.metrics.encode(),
    )
}

async fn health() -> impl IntoResponse {
    "ok\n"
}

/// Everything an operator or a test wants to see at a glance.
async fn status(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    let info = s.info.read().unwrap_or_else(|p| p.into_inner()).clone();
    let u = s.store.usage();
    Json(serde_json::json!({
        "peer_id": info.peer_id,
        "listen": info.listen,
        "routing_table": info.routing_table,
        "connected": info.connected,
        "shards": u.shards,
        "bytes": u.bytes,
        "quota": u.quota,
    }))
}
