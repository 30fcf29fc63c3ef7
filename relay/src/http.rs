//! The relay's HTTP side: the web page, `GET /bootstrap`, `GET /metrics`, `GET /health`,
//! `GET /status`, `GET /repair` (under-replicated stripes and the repair queue),
//! `GET /inventory` (every stripe held and its shard indices).

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
        .route("/repair", get(repair))
        .route("/inventory", get(inventory))
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

/// What the last repair round saw: stripes by live shards, the under-replicated ones
/// (fewest live first), the repair queue and repair traffic.
async fn repair(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    let report = s.repair.report.read().unwrap_or_else(|p| p.into_inner()).clone();
    let (waiting, running, oldest) = {
        let q = s.repair.queue.lock().unwrap_or_else(|p| p.into_inner());
        (q.waiting(), q.running(), q.oldest_wait(s.repair.now()).as_secs_f64())
    };
    Json(serde_json::json!({
        "report": report,
        "queue": { "waiting": waiting, "running": running, "oldest_wait_secs": oldest },
        "bytes_in": s.metrics.repair_bytes_in.get(),
        "bytes_out": s.metrics.repair_bytes_out.get(),
    }))
}

/// Every stripe held here with its shard indices, from the store itself.
async fn inventory(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    let store = s.store.clone();
    match tokio::task::spawn_blocking(move || store.inventory()).await {
        Ok(Ok(inv)) => {
            let stripes: serde_json::Map<String, serde_json::Value> =
                inv.into_iter().map(|(id, idx)| (id.to_string(), serde_json::json!(idx))).collect();
            let peer_id = s.info.read().unwrap_or_else(|p| p.into_inner()).peer_id.clone();
            Json(serde_json::json!({ "peer_id": peer_id, "stripes": stripes })).into_response()
        }
        Ok(Err(e)) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        Err(_) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "inventory task failed").into_response(),
    }
}
