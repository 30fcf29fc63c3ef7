//! The network commands: `kura put`, `kura get`, `kura devnet`.

use anyhow::{anyhow, Context, Result};
use futures::SinkExt;
use kura_client::devnet::{Devnet, DevnetConfig};
use kura_client::net::{NetConfig, Network};
use kura_client::transfer::{self, Progress, TransferConfig};
use kura_core::{Capability, Encoder};
use std::fs::{self, File};
use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn connect(bootstrap: &[String]) -> Result<Network> {
    let addrs = kura_client::bootstrap::resolve(bootstrap).await?;
    Ok(Network::connect(&addrs, NetConfig::default()).await?)
}

/// Prints a progress line on stderr every 200 ms while a transfer runs, when stderr is a
/// terminal.
struct ProgressLine {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProgressLine {
    fn start(p: Arc<Progress>, total: Option<u64>, what: &'static str, put: bool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::io::stderr().is_terminal().then(|| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                while !stop.load(Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    let done = if put { p.encoded.load(Relaxed) } else { p.delivered.load(Relaxed) };
                    let secs = start.elapsed().as_secs_f64().max(1e-3);
                    let mut line = format!("\r{what} {:>8.1} MiB", done as f64 / 1048576.0);
                    if let Some(t) = total.filter(|t| *t > 0) {
                        let pct = (done as f64 / t as f64 * 100.0).min(100.0);
                        let bar = (pct / 5.0) as usize;
                        line += &format!(" [{}{}] {pct:5.1}%", "#".repeat(bar), " ".repeat(20 - bar.min(20)));
                    }
                    line += &format!("  {:7.1} MB/s", done as f64 / secs / 1e6);
                    if put {
                        line +=
                            &format!("  sent {:.1} MiB, stored {:.1} MiB", mib(&p.sent), mib(&p.confirmed));
                    }
                    eprint!("{line}  ");
                }
                eprintln!();
            })
        });
        Self { stop, thread }
    }
}

fn mib(a: &std::sync::atomic::AtomicU64) -> f64 {
    a.load(Relaxed) as f64 / 1048576.0
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub async fn put(file: &Path, bootstrap: &[String], coding: super::Coding) -> Result<()> {
    let opts = coding.options()?;
    let mut input = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let total = input.metadata().ok().map(|m| m.len());
    let meta = super::file_meta(file);
    let net = connect(bootstrap).await?;
    let cfg = TransferConfig::default();
    let progress = Arc::new(Progress::default());

    // The encoder runs on its own thread, a bounded queue ahead of the uploads, so that
    // encoding and sending overlap and memory stays at a few stripes.
    let (mut tx, rx) = futures::channel::mpsc::channel(cfg.stripes_in_flight);
    let p = progress.clone();
    let encoder = std::thread::spawn(move || -> Result<Capability> {
        let mut enc = Encoder::new(opts)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut send = |s| futures::executor::block_on(tx.send(s)).map_err(|_| anyhow!("upload stopped"));
        loop {
            let n = input.read(&mut buf).context("reading the file")?;
            if n == 0 {
                break;
            }
            enc.push(&buf[..n], &mut send)?;
            p.encoded.store(enc.bytes_written(), Relaxed);
        }
        enc.finish(meta)?.drain(send)
    });
    let line = ProgressLine::start(progress.clone(), total, "put", true);
    let uploaded = transfer::put_stripes(&net, rx, &cfg, &progress).await;
    drop(line);
    let encoded = encoder.join().map_err(|_| anyhow!("the encoder thread panicked"))?;
    uploaded?;
    let cap = encoded?;
    println!("{cap}");
    Ok(())
}

pub async fn get(
    capability: &str,
    bootstrap: &[String],
    output: &Path,
    range: Option<(u64, u64)>,
) -> Result<()> {
    let cap = Capability::parse(capability).context("invalid capability")?;
    let net = connect(bootstrap).await?;
    let progress = Arc::new(Progress::default());
    let mut out = super::Output::create(output)?;
    let line = ProgressLine::start(progress.clone(), None, "get", false);
    let cfg = TransferConfig::default();
    let got =
        transfer::get(&net, cap, range, &cfg, &progress, |pt| out.write(pt).map_err(|e| e.to_string())).await;
    drop(line);
    got?;
    out.finish()
}

pub async fn devnet(cfg: DevnetConfig) -> Result<()> {
    fs::create_dir_all(&cfg.dir).with_context(|| format!("creating {}", cfg.dir.display()))?;
    let net = Devnet::start(&cfg).await?;
    for (i, r) in net.relays.iter().enumerate() {
        println!(
            "relay {i}: peer {}  http://{}/  pid {}  log {}",
            r.peer_id,
            r.http,
            r.pid(),
            cfg.dir.join(format!("relay-{i}.log")).display()
        );
    }
    let boot = net.bootstrap().ok_or_else(|| anyhow!("relay 0 has no TCP address"))?.to_owned();
    println!();
    println!("bootstrap address: {boot}");
    println!("page:              http://{}/", net.relays[0].http);
    println!("try:               kura put FILE --bootstrap {boot}");
    println!("Ctrl-C stops the network.");
    std::io::stdout().flush()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    eprintln!("stopping {} relays", net.relays.len());
    net.stop()
}
