//! The relay's HTTP side: the web page, `GET /bootstrap`, `GET /metrics`, `GET /health`,
//! `GET /status`, `GET /repair` (under-replicated stripes and the repair queue), and for the
//! operator only `GET /inventory` (every stripe held and its shard indices).
//!
//! The server is open to anyone, so it is bounded ([`HttpLimits`]): connections in total and
//! per IP address, a deadline for a request's headers, and a lifetime per connection. A
//! stranger holding idle or trickling connections gets only its own share of them, and
//! loses them within seconds.

use crate::node::Shared;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the HTTP server allows.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Connections from one IP address at once.
    pub per_ip: usize,
    /// A request's headers must have arrived this long after the connection (or the
    /// previous request) started, or the connection is closed.
    pub header_timeout: Duration,
    /// A connection is closed (after the request in hand) once it is this old.
    pub lifetime: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            per_ip: 32,
            header_timeout: Duration::from_secs(10),
            lifetime: Duration::from_secs(120),
        }
    }
}

/// State of the routes: the node's, and the operator's token.
#[derive(Debug, Clone)]
struct App {
    shared: Arc<Shared>,
    operator: Arc<blake3::Hash>,
}

/// The router, serving static files from `www` for every other path. `operator_token`
/// opens the operator's routes (sent as `Authorization: Bearer TOKEN`).
pub fn router(shared: Arc<Shared>, www: PathBuf, operator_token: &str) -> Router {
    let operator = Arc::new(blake3::hash(operator_token.as_bytes()));
    Router::new()
        .route("/bootstrap", get(bootstrap))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/status", get(status))
        .route("/repair", get(repair))
        .route("/audits", get(audits))
        .route("/inventory", get(inventory))
        .route("/operator", get(operator_page))
        .route("/operator.json", get(operator_json))
        .fallback_service(tower_http::services::ServeDir::new(www))
        .with_state(App { shared, operator })
}

impl axum::extract::FromRef<App> for Arc<Shared> {
    fn from_ref(app: &App) -> Self {
        app.shared.clone()
    }
}

/// Whether a request carries the operator's token (compared in constant time, as hashes).
fn is_operator(app: &App, headers: &HeaderMap) -> bool {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    blake3::hash(token.trim().as_bytes()) == *app.operator
}

/// Loads the operator's token from `dir`, creating it (random, readable by the owner only) on
/// first start.
pub fn operator_token(dir: &std::path::Path) -> anyhow::Result<String> {
    let path = dir.join("operator.token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        if !t.trim().is_empty() {
            return Ok(t.trim().to_owned());
        }
    }
    let token: String = rand::random::<[u8; 32]>().iter().map(|b| format!("{b:02x}")).collect();
    crate::node::write_private(&path, token.as_bytes())?;
    Ok(token)
}

/// Connections open, in total and per address.
#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// A connection's place in [`Open`], given back when the connection ends.
struct Slot {
    open: Arc<Mutex<Open>>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut o = self.open.lock().unwrap_or_else(|p| p.into_inner());
        o.total -= 1;
        if let Some(n) = o.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                o.by_ip.remove(&self.ip);
            }
        }
    }
}

/// Takes a slot for a connection from `ip`, if the limits allow one.
fn admit(open: &Arc<Mutex<Open>>, ip: IpAddr, limits: &HttpLimits) -> Option<Slot> {
    let mut o = open.lock().unwrap_or_else(|p| p.into_inner());
    let mine = o.by_ip.get(&ip).copied().unwrap_or(0);
    if o.total >= limits.max_connections || mine >= limits.per_ip {
        return None;
    }
    o.total += 1;
    *o.by_ip.entry(ip).or_default() += 1;
    Some(Slot { open: open.clone(), ip })
}

/// Serves `app` on `listener` within `limits` until `stop` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: HttpLimits,
    stop: impl std::future::Future<Output = ()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    tokio::pin!(stop);
    let open = Arc::new(Mutex::new(Open::default()));
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => break,
            a = listener.accept() => a,
        };
        let (socket, from) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors, most likely: let connections end before the next.
                tracing::debug!("HTTP accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = admit(&open, from.ip().to_canonical(), &limits) else {
            tracing::debug!(%from, "HTTP connection refused: over the connection limits");
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(socket), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                () = tokio::time::sleep(limits.lifetime) => conn.as_mut().graceful_shutdown(),
            }
            // The request in hand gets the header deadline again to finish.
            let _ = tokio::time::timeout(limits.header_timeout, conn).await;
        });
    }
}

/// Peer id and every listen address (with `/p2p/…`; WebRTC-direct ones carry the certhash).
async fn bootstrap(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    let info = s.info.read().unwrap_or_else(|p| p.into_inner()).clone();
    let tab_ttl_secs = Some(s.tabs.ttl().as_secs());
    Json(kura_p2p::docs::Bootstrap { peer_id: info.peer_id, addrs: info.listen, tab_ttl_secs })
}

async fn metrics(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    let u = s.store.usage();
    s.metrics.shards_held.set(u.shards as i64);
    s.metrics.bytes_held.set(u.bytes as i64);
    s.metrics.quota_bytes.set(u.quota.min(i64::MAX as u64) as i64);
    tabs(&s);
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
        "farming": s.farming.status(),
        "tabs": tabs(&s),
    }))
}

/// Donating tabs known here (and the gauges set to match).
fn tabs(s: &Shared) -> serde_json::Value {
    let (tabs, announcements, reserved) = s.tabs.counts();
    s.metrics.tabs_known.set(tabs as i64);
    s.metrics.reservations.set(reserved as i64);
    s.metrics.tab_announcements.set(announcements as i64);
    serde_json::json!({
        "known": tabs,
        "announcements": announcements,
        "reserved": reserved,
        "circuits": s.metrics.circuits.get(),
        "offered": s.metrics.tab_offers.get(),
        "offered_bytes": s.metrics.tab_offer_bytes.get(),
        "served_bytes": s.metrics.circuit_bytes.from_destinations.get(),
        "asked_bytes": s.metrics.circuit_bytes.to_destinations.get(),
    })
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
        "records": {
            "held": s.repair.liveness.lock().unwrap_or_else(|p| p.into_inner()).records(),
            "restored": s.repair.records_restored.load(std::sync::atomic::Ordering::Relaxed),
        },
        "bytes_in": s.metrics.repair_bytes_in.get(),
        "bytes_out": s.metrics.repair_bytes_out.get(),
    }))
}

/// What this relay's audits found: verdicts by kind, the latest verdicts (newest last), every
/// audited peer's score and those below the threshold (treated as absent until they
/// recover).
async fn audits(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    use kura_core::audit::Verdict;
    let now = s.repair.now();
    let a = s.repair.audits.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let recent: Vec<serde_json::Value> = a
        .recent()
        .map(|r| {
            serde_json::json!({
                "secs_ago": now.saturating_sub(r.at).as_secs_f64(),
                "peer": r.claim.peer.to_string(),
                "stripe": r.claim.stripe.to_string(),
                "index": r.claim.index,
                "verdict": r.verdict.as_str(),
            })
        })
        .collect();
    let peers = |v: Vec<(libp2p::PeerId, f64)>| -> Vec<serde_json::Value> {
        v.into_iter().map(|(p, score)| serde_json::json!({ "peer": p.to_string(), "score": score })).collect()
    };
    let counts: serde_json::Map<String, serde_json::Value> =
        [Verdict::Pass, Verdict::Lost, Verdict::Withdrawn, Verdict::Timeout, Verdict::False]
            .into_iter()
            .map(|v| (v.as_str().to_owned(), serde_json::json!(a.count(v))))
            .collect();
    Json(serde_json::json!({
        "interval_secs": s.repair.cfg.audit_interval.as_secs_f64(),
        "threshold": a.config().threshold,
        "verdicts": counts,
        "recent": recent,
        "scores": peers(a.scores(now)),
        "distrusted": peers(a.distrusted(now)),
    }))
}

/// The operator's page (it asks `/operator.json` with the token it is given).
async fn operator_page() -> impl IntoResponse {
    axum::response::Html(crate::operator::PAGE)
}

/// What the operator's page draws: the relay now and its samples of the last day.
async fn operator_json(State(app): State<App>, headers: HeaderMap) -> impl IntoResponse {
    if !is_operator(&app, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            "for the relay's operator (Authorization: Bearer, operator.token in the data directory)\n",
        )
            .into_response();
    }
    let s = &app.shared;
    let peer_id = s.info.read().unwrap_or_else(|p| p.into_inner()).peer_id.clone();
    Json(serde_json::json!({
        "peer_id": peer_id,
        "now": crate::operator::sample(s),
        "samples": s.history.samples(),
        "farming": s.farming.status(),
    }))
    .into_response()
}

/// Every stripe held here with its shard indices, from the store itself: for the operator
/// only (it lists what to attack, and costs the relay a scan of its index).
async fn inventory(State(app): State<App>, headers: HeaderMap) -> impl IntoResponse {
    if !is_operator(&app, &headers) {
        return (StatusCode::UNAUTHORIZED, "the inventory is for the relay's operator (Authorization: Bearer, operator.token in the data directory)\n").into_response();
    }
    let s = app.shared;
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
