//! `kura-relay`: the relay node operators run. See `kura-relay --help`.

use anyhow::{Context, Result};
use clap::Parser;
use kura_relay::config::{Config, Flags};
use kura_relay::node::{self, Node, NodeConfig, Shared};
use kura_relay::store::{FsStore, ShardStore};
use std::io::Write;
use std::sync::{Arc, RwLock};
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    kura_p2p::alloc::tune();
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("status") {
        return match kura_relay::status::run(args) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kura-relay status: error: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let flags = Flags::parse();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("KURA_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .try_init();
    let result = Config::load(flags).and_then(|cfg| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?
            .block_on(run(cfg))
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kura-relay: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Takes the data directory's lock, so a second relay on it refuses to start.
fn lock(dir: &std::path::Path) -> Result<std::fs::File> {
    let path = dir.join("LOCK");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    if f.try_lock().is_err() {
        let pid = std::fs::read_to_string(&path).unwrap_or_default();
        anyhow::bail!(
            "data directory {} is in use by another kura-relay (pid {}); stop it or use another --data-dir",
            dir.display(),
            pid.trim()
        );
    }
    f.set_len(0)?;
    write!(f, "{}", std::process::id())?;
    Ok(f)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("signal received");
}

async fn run(cfg: Config) -> Result<()> {
    std::fs::create_dir_all(&cfg.data_dir).with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let _lock = lock(&cfg.data_dir)?;
    // WebRTC (ring) and QUIC (aws-lc-rs) both bring a rustls provider; pick one explicitly.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let store: Arc<dyn ShardStore> = Arc::new(FsStore::open(cfg.data_dir.join("store"), cfg.quota)?);
    let key = node::load_identity(&cfg.data_dir)?;
    let cert = node::load_certificate(&cfg.data_dir)?;
    let node_cfg = NodeConfig {
        listen: cfg.listen.clone(),
        bootstrap: cfg.bootstrap.clone(),
        external: cfg.external.clone(),
        max_connections: cfg.max_connections,
        per_ip: kura_relay::ip_limits::PerIp {
            pending: cfg.max_pending_per_ip as usize,
            established: cfg.max_connections_per_ip as usize,
        },
        max_inflight: 256,
        store_rate: cfg.peer_store_rate,
        store_burst: cfg.peer_store_burst,
        group_lookups_always: cfg.group_lookups_always,
    };
    let mut registry = prometheus_client::registry::Registry::default();
    let ledger = kura_relay::ledger::Ledger::open(
        Some(&cfg.data_dir),
        kura_p2p::ledger::IdentitySigner(key.clone()),
        cfg.ledger_mint.unwrap_or(kura_relay::ledger::NO_MINT),
        cfg.ledger_cap,
    )?;
    let circuits = kura_relay::circuit_bytes::Tally::default();
    let swarm = node::build_swarm(key, cert, &node_cfg, &mut registry, &circuits).await?;
    let shared = Arc::new(Shared {
        info: RwLock::new(Default::default()),
        metrics: kura_relay::metrics::Metrics::with_circuit_bytes(registry, circuits),
        store,
        repair: Arc::new(kura_relay::repair::Repair::new(kura_relay::repair::RepairConfig {
            audit_interval: cfg.audit_interval,
            scrub_rate: cfg.scrub_rate,
            grace: cfg.repair_grace,
            long_grace: cfg.repair_grace_long,
            burst: cfg.repair_burst,
            ..kura_relay::repair::RepairConfig::new(cfg.repair_interval, cfg.repair_rate)
        })),
        ledger: Arc::new(ledger),
        farming: kura_relay::farming::Farming::open(&cfg.data_dir, cfg.farming)?
            .with_rewards(kura_relay::farming::rewards_key(&cfg.rewards_key)?, &cfg.rewards_key),
        history: Default::default(),
        tabs: kura_relay::donation::Tabs::new(cfg.tabs, cfg.tab_checks, cfg.tab_popular),
    });
    // What this relay knew of the others' comings and goings before it stopped.
    match shared.repair.restore_records(&cfg.data_dir) {
        Ok(0) => {}
        Ok(n) => tracing::info!(relays = n, "liveness records taken back from the last run"),
        Err(e) => tracing::warn!("liveness records of the last run not taken back: {e:#}"),
    }
    // This relay counts in its own view of audit groups from the first start on.
    shared.farming.met(&swarm.local_peer_id().to_owned())?;

    let listener = tokio::net::TcpListener::bind(cfg.http)
        .await
        .with_context(|| format!("binding HTTP on {}", cfg.http))?;
    let http_addr = listener.local_addr()?;
    // Where `kura-relay status --data-dir` finds it.
    let addr_file = kura_relay::status::addr_file(&cfg.data_dir);
    std::fs::write(&addr_file, format!("{http_addr}\n"))
        .with_context(|| format!("writing {}", addr_file.display()))?;
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let token = kura_relay::http::operator_token(&cfg.data_dir)?;
    let app = kura_relay::http::router(shared.clone(), cfg.www.clone(), &token);
    let http = tokio::spawn(kura_relay::http::serve(
        listener,
        app,
        kura_relay::http::HttpLimits::default(),
        async {
            let _ = http_stopped.await;
        },
    ));
    tracing::info!(%http_addr, "HTTP listening");

    let node = Node::start(swarm, shared.clone(), node_cfg)?;
    let peer_id = *node.swarm.local_peer_id();
    let ctx = kura_relay::repair::Ctx { me: peer_id, shared: shared.clone(), net: node.sender() };
    let rounds = tokio::spawn(kura_relay::repair::run_rounds(ctx.clone()));
    let audits = tokio::spawn(kura_relay::repair::run_audits(ctx.clone()));
    let scrub = tokio::spawn(kura_relay::repair::run_scrub(ctx.clone()));
    let epochs = tokio::spawn(kura_relay::epochs::run_epochs(ctx.clone()));
    let worker = tokio::spawn(kura_relay::repair::run_worker(ctx));
    let sampler = tokio::spawn(kura_relay::operator::run(shared.clone()));
    let keeper =
        tokio::spawn(kura_relay::repair::run_keep_records(shared.repair.clone(), cfg.data_dir.clone()));
    tracing::info!(%peer_id, data_dir = %cfg.data_dir.display(), "relay starting");
    if let Some(t) = cfg.slow_rebuild() {
        tracing::warn!(
            hours = t.as_secs() / 3600,
            "full, this relay would need this long to read as much as its --quota at its --repair-rate; \
             among churning relays one that needs over a day to rebuild its holding makes the network \
             lose data (docs/scale/bandwidth.md): lower the quota or raise the rate"
        );
    }
    node.run(shutdown_signal(), |_| {
        let info = shared.info.read().unwrap_or_else(|p| p.into_inner()).clone();
        // One JSON line on stdout tells scripts and tests the relay is up and where.
        let ready = kura_p2p::docs::Ready::new(peer_id.to_string(), http_addr.to_string(), info.listen);
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", ready.to_line());
        let _ = out.flush();
    })
    .await;
    rounds.abort();
    audits.abort();
    scrub.abort();
    worker.abort();
    epochs.abort();
    sampler.abort();
    keeper.abort();
    if let Err(e) = shared.repair.keep_records(&cfg.data_dir) {
        tracing::warn!("liveness records not kept: {e:#}");
    }
    let _ = stop_http.send(());
    let _ = http.await;
    tracing::info!("stopped cleanly");
    Ok(())
}
