//! The network commands: `kura put`, `kura get`, `kura devnet`.

use anyhow::{anyhow, bail, Context, Result};
use kura_client::devnet::{Devnet, DevnetConfig};
use kura_client::net::{NetConfig, Network};
use kura_client::transfer::{self, Progress, TransferConfig, TransferError};
use kura_core::{Capability, Encoder};
use std::fs::{self, File};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

pub async fn connect(bootstrap: &[String]) -> Result<Network> {
    let addrs = kura_client::bootstrap::resolve(bootstrap).await?;
    Ok(Network::connect(&addrs, NetConfig::default()).await?)
}

/// Prints a progress line on stderr every `PROGRESS_EVERY` while a transfer runs, when stderr is a
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
                    std::thread::sleep(transfer::PROGRESS_EVERY);
                    let now = p.snapshot();
                    let done = if put { now.encoded } else { now.delivered };
                    let secs = start.elapsed().as_secs_f64().max(1e-3);
                    let mut line = format!("\r{what} {:>8.1} MiB", mib(done));
                    if let Some(t) = total.filter(|t| *t > 0) {
                        let pct = (done as f64 / t as f64 * 100.0).min(100.0);
                        let bar = (pct / 5.0) as usize;
                        line += &format!(" [{}{}] {pct:5.1}%", "#".repeat(bar), " ".repeat(20 - bar.min(20)));
                    }
                    line += &format!("  {:7.1} MB/s", done as f64 / secs / 1e6);
                    if put {
                        line +=
                            &format!("  sent {:.1} MiB, stored {:.1} MiB", mib(now.sent), mib(now.confirmed));
                    }
                    eprint!("{line}  ");
                }
                eprintln!();
            })
        });
        Self { stop, thread }
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub async fn put(file: &Path, bootstrap: &[String], coding: super::Coding, pay: super::Pay) -> Result<()> {
    let asked = coding.asked()?;
    let input = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let total = input.metadata().ok().map(|m| m.len());
    let meta = super::file_meta(file);
    let net = connect(bootstrap).await?;
    let params = match asked {
        Some(params) => params,
        None => {
            let (params, relays) = transfer::stripe_width(&net).await?;
            eprintln!("stripes {}+{} (a network of about {relays:.0} relays)", params.k(), params.m());
            params
        }
    };
    let opts = coding.options(params)?;
    let mut cfg = TransferConfig::default();
    if let Some(key) = &pay.key {
        cfg.purse = Some(Arc::new(buy(&net, key, &pay, &opts, total.unwrap_or(0)).await?));
    }
    let progress = Arc::new(Progress::default());
    let enc = Encoder::new(opts)?;
    let line = ProgressLine::start(progress.clone(), total, "put", true);
    // The encoder runs on a thread of its own, so that encoding and sending use two cores.
    let cap = transfer::put(&net, &cfg, &progress, |stripes| {
        let (done, result) = futures::channel::oneshot::channel();
        let p = progress.clone();
        std::thread::spawn(move || {
            let encoded = transfer::encode_into(enc, transfer::Blocking(input), meta, &p, stripes);
            let _ = done.send(futures::executor::block_on(encoded));
        });
        async move { result.await.unwrap_or(Err(TransferError::Internal("the encoder thread panicked"))) }
    })
    .await;
    drop(line);
    let cap = cap?;
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    list(&entry(name, total.unwrap_or(0), &cap, cfg.purse.as_deref(), &pay), &pay);
    println!("{cap}");
    if std::env::var_os("KURA_LOOKUP_STATS").is_some() {
        // For tests that hold the simulator's lookups against a real network.
        let (lookups, requests) = net.lookup_stats();
        eprintln!("lookups {lookups} requests {requests}");
    }
    Ok(())
}

/// Buys a batch that covers a file of `len` bytes from the wallet `key`, and says what it
/// cost (on stderr: stdout is the capability's).
async fn buy(
    net: &Network,
    key: &Path,
    pay: &super::Pay,
    opts: &kura_core::EncodeOptions,
    len: u64,
) -> Result<kura_client::wallet::Purse> {
    use kura_core::farming::{epoch_of, terms_for, Prices, DEFAULT_PRICES};
    let owner = super::wallet_cmd::load(key)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let first = epoch_of(now, pay.epoch);
    let terms = terms_for(len, opts.chunk_size, opts.params, first, pay.epochs.max(1));
    let prices = Prices { price: pay.price, ..DEFAULT_PRICES };
    let one_spender = kura_p2p::wallet::SpendLock::take_async(key).await?;
    let (purse, cost) =
        kura_client::wallet::Purse::buy(net, owner, terms, &prices).await.with_context(|| {
            format!("paying {} for {} stripes for {} epochs", prices.cost(&terms), terms.slots, terms.epochs)
        })?;
    drop(one_spender);
    eprintln!(
        "paid {cost} credits: batch {} ({} stripes of up to {} shard bytes, epochs {}..{})",
        kura_client::wallet::hex(&purse.batch()),
        terms.slots,
        terms.slot_bytes,
        terms.first_epoch,
        terms.first_epoch + terms.epochs
    );
    Ok(purse)
}

/// The list's entry for an upload of `cap` paid by `purse` (if any).
fn entry(
    name: String,
    size: u64,
    cap: &Capability,
    purse: Option<&kura_client::wallet::Purse>,
    pay: &super::Pay,
) -> super::files_cmd::Entry {
    super::files_cmd::Entry {
        name,
        size,
        capability: cap.to_string(),
        batch: purse.map(|p| kura_client::wallet::hex(&p.batch())),
        cost: purse.map_or(0, |p| p.cost()),
        paid_until: purse.map(|p| p.terms().end_epoch().saturating_mul(pay.epoch)),
    }
}

/// Adds an upload to the list of files (a list that cannot be written is said, not made
/// a failure: the upload is done).
fn list(entry: &super::files_cmd::Entry, pay: &super::Pay) {
    let list = pay.files.clone().unwrap_or_else(super::files_cmd::default_list);
    if let Err(e) = super::files_cmd::record(&list, entry) {
        eprintln!("kura: warning: the upload is not in the list of files: {e:#}");
    }
}

pub async fn renew(capability: &str, bootstrap: &[String], pay: super::Pay) -> Result<()> {
    let cap = Capability::parse(capability).context("invalid capability")?;
    let Some(key) = pay.key.clone() else { bail!("renewing is paying: give the wallet with --key") };
    let net = connect(bootstrap).await?;
    let mut cfg = TransferConfig::default();
    let progress = Progress::default();
    let renewed = transfer::renew(&net, cap, &mut cfg, &progress, |len, root| {
        let (net, pay, key) = (&net, &pay, &key);
        async move {
            let opts = kura_core::EncodeOptions { params: root.params(), ..Default::default() };
            buy(net, key, pay, &opts, len)
                .await
                .map(Arc::new)
                .map_err(|e| TransferError::Payment(format!("{e:#}")))
        }
    })
    .await?;
    let name = list_name(&pay, &cap).unwrap_or_default();
    let e = entry(name, renewed.size, &cap, cfg.purse.as_deref(), &pay);
    list(&e, &pay);
    eprintln!(
        "renewed {} stripes ({} by stamp alone, the rest stored again)",
        renewed.stripes, renewed.by_stamp
    );
    Ok(())
}

/// The name the list gives `cap`, if it lists it.
fn list_name(pay: &super::Pay, cap: &Capability) -> Option<String> {
    let list = pay.files.clone().unwrap_or_else(super::files_cmd::default_list);
    let cap = cap.to_string();
    super::files_cmd::read(&list).ok()?.into_iter().find(|e| e.capability == cap).map(|e| e.name)
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

/// `kura donate`: a donating client over a directory, printing its figures as JSON lines.
pub async fn donate(
    bootstrap: &[String],
    dir: &Path,
    quota: u64,
    refresh: u64,
    pay_to: Option<&str>,
) -> Result<()> {
    let payee = pay_to.map(kura_client::wallet::parse_account).transpose()?;
    if let Some(bits) = payee.map(|a| kura_core::ledger::account_work(&a)) {
        if bits < kura_core::ledger::ACCOUNT_BITS {
            bail!(
                "--pay-to {}: the account carries {bits} bits of account work, {} needed; relays \
                 pay nothing into it (make a wallet with `kura wallet new`)",
                pay_to.unwrap_or_default(),
                kura_core::ledger::ACCOUNT_BITS
            );
        }
    }
    use kura_client::donor::{DirShelf, Donor, DonorConfig};
    let addrs = kura_client::bootstrap::resolve(bootstrap).await?;
    let shelf = DirShelf::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    let identity = Some(shelf.identity().context("the donor's key")?);
    let net = Network::connect(&addrs, NetConfig { identity, ..NetConfig::default() }).await?;
    let cfg = DonorConfig {
        quota,
        refresh: std::time::Duration::from_secs(refresh.max(1)),
        payee,
        ..DonorConfig::default()
    };
    let donor = Donor::new(net, shelf, addrs, cfg);
    let stats = donor.stats();
    let report = async {
        let mut last = None;
        loop {
            let now = stats.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if last.as_ref() != Some(&now) {
                println!("{}", serde_json::to_string(&now).unwrap_or_default());
                let _ = std::io::stdout().flush();
                last = Some(now);
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    };
    tokio::select! {
        r = donor.run() => r.map_err(Into::into),
        () = report => Ok(()),
    }
}

pub async fn check(capability: &str, bootstrap: &[String]) -> Result<()> {
    let cap = Capability::parse(capability).context("invalid capability")?;
    let net = connect(bootstrap).await?;
    let health = kura_client::check::check(&net, cap, &TransferConfig::default()).await?;
    for s in &health.stripes {
        let state = if s.proven >= s.n {
            "whole"
        } else if s.proven >= s.k {
            "readable, not whole"
        } else {
            "NOT READABLE"
        };
        println!(
            "stripe {}: {} of {} shards proven (k = {}, {} claimed): {state}",
            s.stripe, s.proven, s.n, s.k, s.claimed
        );
    }
    let short = health.stripes.iter().filter(|s| s.proven < s.n).count();
    if let Some(w) = health.weakest() {
        println!(
            "{} stripes, {short} not whole; weakest {} of {} (k = {}); {} bytes of proofs",
            health.stripes.len(),
            w.proven,
            w.n,
            w.k,
            health.proof_bytes
        );
    }
    if health.unproven > 0 {
        println!(
            "{} claims could not be proven; {} reports of them taken by the stripes' other holders",
            health.unproven, health.reported
        );
    }
    if !health.is_whole() {
        bail!("{short} of {} stripes are not proven whole", health.stripes.len());
    }
    Ok(())
}

/// `ACCOUNT=AMOUNT` of `--fund`.
fn parse_fund(text: &str) -> Result<(kura_core::ledger::Key, u64)> {
    let (account, amount) =
        text.split_once('=').ok_or_else(|| anyhow!("--fund {text}: expected ACCOUNT=AMOUNT"))?;
    let account = super::wallet_cmd::parse_key(account).with_context(|| format!("--fund {text}"))?;
    let amount = amount.trim().parse().with_context(|| format!("--fund {text}: the amount"))?;
    Ok((account, amount))
}

/// The devnet's test mint: `DIR/mint.key`, made on first start and kept with the relays'
/// data (their journals name it).
fn devnet_mint(dir: &Path) -> Result<kura_core::ledger::SigningKey> {
    let path = dir.join("mint.key");
    if path.exists() {
        super::wallet_cmd::load(&path)
    } else {
        super::wallet_cmd::create(&path)
    }
}

pub async fn devnet(mut cfg: DevnetConfig, fund: &[String]) -> Result<()> {
    use super::wallet_cmd::hex;
    use kura_core::ledger::Signer;
    let fund = fund.iter().map(|f| parse_fund(f)).collect::<Result<Vec<_>>>()?;
    fs::create_dir_all(&cfg.dir).with_context(|| format!("creating {}", cfg.dir.display()))?;
    let mint = devnet_mint(&cfg.dir)?;
    cfg.relay_args.extend(["--ledger-mint".to_owned(), hex(&mint.key())]);
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
    if !fund.is_empty() {
        let client = connect(std::slice::from_ref(&boot)).await?;
        for (account, amount) in fund {
            let cert = kura_client::wallet::send(&client, &mint, account, amount, b"devnet".to_vec())
                .await
                .with_context(|| "funding through the test mint")?;
            println!("funded {}: {amount} (certificate {})", hex(&account), hex(&cert.signed.transfer.id()));
        }
    }
    println!("test mint key:     {}", cfg.dir.join("mint.key").display());
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
