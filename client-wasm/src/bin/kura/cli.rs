//! `kura`: Kura's command-line client.
//!
//! ```text
//! kura put FILE --bootstrap ADDR [--k K --m M] [--private] [--key WALLET --epochs N]
//!                                                                prints the capability
//! kura renew CAP --bootstrap ADDR --key WALLET [--epochs N]      pays again for a file
//! kura ls [--files LIST]                                         the files put from here
//! kura get CAP  --bootstrap ADDR -o OUT [--offset N --length N]  writes the file (or range)
//! kura devnet [--relays N] [--dir DIR] [--http ADDR]            a local network of relays
//! kura encode FILE --store DIR [--k K --m M] [--private]        offline, into a directory
//! kura decode CAP  --store DIR -o OUT                           offline, from a directory
//! kura check CAP --bootstrap ADDR                               proves each stripe's shards
//! kura wallet new|address|balance|send TO AMOUNT|history [--key FILE] [--bootstrap ADDR]
//! ```
//! `ADDR` is a relay multiaddr ending in `/p2p/PEER`, or the `http://` URL of a relay.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use kura_client::dirstore::DirStore;
use kura_client::media;
use kura_core::{
    decode_from, Capability, DecodeError, Decoder, EncodeOptions, Encoder, ErrorKind, FileMeta, Params,
    Secret, UserError,
};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

mod files_cmd;
mod net_cmd;
mod wallet_cmd;

#[derive(Parser, Debug)]
#[command(name = "kura", version, about = "Kura: encrypted, erasure-coded storage")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How a file is encoded (`put` and `encode`).
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct Coding {
    /// Data shards per stripe. Without --k and --m a put takes the width the network's size
    /// calls for (4+2 on a few dozen relays, wider on more), and encode takes 4+2.
    #[arg(long)]
    pub k: Option<usize>,
    /// Parity shards per stripe (any m may be lost).
    #[arg(long)]
    pub m: Option<usize>,
    /// Encrypt with a fresh random secret: nobody can tell that this file is stored by
    /// encoding a copy of it (and it does not dedupe).
    #[arg(long)]
    pub private: bool,
}

impl Coding {
    /// The width asked for, if any: one of --k and --m alone takes 4+2's other half.
    pub fn asked(self) -> Result<Option<Params>> {
        if self.k.is_none() && self.m.is_none() {
            return Ok(None);
        }
        let (k, m) = (self.k.unwrap_or(Params::DEFAULT.k()), self.m.unwrap_or(Params::DEFAULT.m()));
        Params::new(k, m).map(Some).context("invalid --k/--m")
    }

    /// The encoder's options, stripes `params` wide.
    pub fn options(self, params: Params) -> Result<EncodeOptions> {
        Ok(EncodeOptions { params, secret: secret(self.private)?, ..EncodeOptions::default() })
    }
}

/// How a put is paid for (`put`).
#[derive(clap::Args, Debug, Clone)]
pub struct Pay {
    /// Pay from this wallet (a key file of `kura wallet`): a batch for the file is bought by
    /// burning credits before the upload, and each stripe is stamped with it. Without it, the
    /// upload is unpaid: relays take it within their free allowance.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Epochs the storage is paid for.
    #[arg(long, default_value_t = 720)]
    pub epochs: u64,
    /// The network's epoch length in seconds (as its relays' --epoch).
    #[arg(long, default_value_t = kura_core::farming::DEFAULT_EPOCH_SECS)]
    pub epoch: u64,
    /// The network's price per GiB of shard bytes per epoch (as its relays' --price).
    #[arg(long, default_value_t = kura_core::farming::DEFAULT_PRICES.price)]
    pub price: u64,
    /// The list of uploads `kura ls` prints, where this one is added. Default
    /// ~/.kura/files.jsonl.
    #[arg(long)]
    pub files: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum WalletAction {
    /// Make a new key file and print the account.
    New,
    /// Print the account (64 hex digits).
    Address,
    /// Print what the account can spend, as an integer of the smallest unit.
    Balance,
    /// Send AMOUNT to the account TO; prints the transfer's certificate id.
    Send {
        to: String,
        amount: u64,
        #[arg(long, default_value = "")]
        memo: String,
    },
    /// The account's latest transfers and unspent credits.
    History,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Store FILE on the network and print its capability.
    Put {
        file: PathBuf,
        /// A relay: a multiaddr ending in /p2p/PEER, or its http:// URL. Repeatable.
        #[arg(long, required = true)]
        bootstrap: Vec<String>,
        #[command(flatten)]
        coding: Coding,
        #[command(flatten)]
        pay: Pay,
    },
    /// The files this machine put: name, size, until when their storage is paid, and
    /// capability.
    Ls {
        /// The list `kura put` keeps. Default ~/.kura/files.jsonl.
        #[arg(long)]
        files: Option<PathBuf>,
    },
    /// Pay for a file's storage again: every stripe is read back and stored anew with its
    /// close group under a new batch bought from WALLET (the capability stays the same).
    Renew {
        capability: String,
        /// A relay: a multiaddr ending in /p2p/PEER, or its http:// URL. Repeatable.
        #[arg(long, required = true)]
        bootstrap: Vec<String>,
        #[command(flatten)]
        pay: Pay,
    },
    /// Read a capability's file from the network into OUT.
    Get {
        capability: String,
        /// A relay: a multiaddr ending in /p2p/PEER, or its http:// URL. Repeatable.
        #[arg(long, required = true)]
        bootstrap: Vec<String>,
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
        /// Read from this byte offset.
        #[arg(long)]
        offset: Option<u64>,
        /// Read at most this many bytes.
        #[arg(long)]
        length: Option<u64>,
    },
    /// Donate storage: hold shards for others in DIR (up to QUOTA bytes) and serve them
    /// through a circuit reservation on a relay, on top of the relays' close groups, until
    /// stopped. Prints what it holds and served as a JSON line whenever that changes.
    Donate {
        /// Relays: multiaddrs ending in /p2p/PEER, or http:// URLs; the reservation is taken
        /// on the first that grants one. Repeatable.
        #[arg(long, required = true)]
        bootstrap: Vec<String>,
        /// Where the shards are kept (kept across restarts).
        #[arg(long)]
        dir: PathBuf,
        /// Most shard bytes held.
        #[arg(long, default_value_t = 256 << 20)]
        quota: u64,
        /// Seconds between announcements of everything held (within the relays' expiry).
        #[arg(long, default_value_t = 120)]
        refresh: u64,
        /// The account (64 hex digits, as `kura wallet address` prints) the relays pay for
        /// what it holds; without it, it donates for nothing.
        #[arg(long)]
        pay_to: Option<String>,
    },
    /// Prove how many shards of each stripe of a capability's file the network holds now
    /// (by challenge, not by asking); exits non-zero when a stripe is not whole. Downloads
    /// only the data map, stripe headers and proofs.
    Check {
        capability: String,
        /// A relay: a multiaddr ending in /p2p/PEER, or its http:// URL. Repeatable.
        #[arg(long, required = true)]
        bootstrap: Vec<String>,
    },
    /// Credits: an account's key, balance, history and transfers.
    Wallet {
        #[command(subcommand)]
        action: WalletAction,
        /// The account's key file (64 hex digits, mode 0600). Default ~/.kura/wallet.key.
        #[arg(long, global = true)]
        key: Option<PathBuf>,
        /// A relay: a multiaddr ending in /p2p/PEER, or its http:// URL. Repeatable.
        #[arg(long, global = true)]
        bootstrap: Vec<String>,
    },
    /// Start a local network of kura-relay processes on 127.0.0.1; Ctrl-C stops them.
    Devnet {
        /// Number of relays.
        #[arg(long, default_value_t = 6)]
        relays: usize,
        /// Where the relays keep their data and logs.
        #[arg(long, default_value = "devnet")]
        dir: PathBuf,
        /// HTTP address of relay 0 (page, /bootstrap); relay i uses port + i (0: any port).
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: std::net::SocketAddr,
        /// First libp2p port (relay i uses base + 10i ...); 0 picks free ports.
        #[arg(long, default_value_t = 4100)]
        base_port: u16,
        /// The kura-relay binary (default: next to this one, else on PATH).
        #[arg(long)]
        relay_bin: Option<PathBuf>,
        /// Credit ACCOUNT (64 hex digits) with AMOUNT at start, through the devnet's test
        /// mint (its key is DIR/mint.key). Repeatable.
        #[arg(long, value_name = "ACCOUNT=AMOUNT")]
        fund: Vec<String>,
        /// Epoch length in seconds, passed to every relay (short for trying out farming).
        #[arg(long)]
        epoch: Option<u64>,
        /// Seconds each relay keeps a donating tab's announcements (`kura-relay --tab-ttl`).
        #[arg(long)]
        tab_ttl: Option<u64>,
        /// Seconds between two spot-checks of a donating tab by a relay (`kura-relay
        /// --tab-check`; a tab is paid for an epoch only if a check of it passed).
        #[arg(long)]
        tab_check: Option<u64>,
        /// What storage costs, passed to every relay (`kura-relay --price`: credits per GiB
        /// of shards per epoch).
        #[arg(long)]
        price: Option<u64>,
        /// Identities for the relays instead of making them (a file of seeds, as `kura-sim
        /// join-keys` writes; the test suite's pool is p2p/src/join_keys.txt): each new
        /// relay's identity costs seconds of join work.
        #[arg(long)]
        identities: Option<PathBuf>,
    },
    /// Encode FILE into shards in a directory and print its capability.
    Encode {
        file: PathBuf,
        /// Directory holding one file per shard.
        #[arg(long)]
        store: PathBuf,
        #[command(flatten)]
        coding: Coding,
    },
    /// Decode a capability from shards in a directory into OUT.
    Decode {
        capability: String,
        #[arg(long)]
        store: PathBuf,
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
}

/// What the user of this command can do about an error of a kind.
fn hint(e: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let kind = match e.downcast_ref::<kura_client::transfer::TransferError>() {
        Some(t) => t.kind(),
        None => e.downcast_ref::<kura_client::net::NetError>()?.kind(),
    };
    Some(match kind {
        ErrorKind::TooFewRelays => "start more relays or lower --k/--m",
        ErrorKind::Unavailable => "too few of the file's relays answer; try again when more are up",
        ErrorKind::Unreachable => "check the --bootstrap address and that a relay runs there",
        ErrorKind::QuotaFull => "the relays are full: start more relays, or give them a larger --quota",
        ErrorKind::Busy => "the relays are busy or this client's allowance is spent; try again shortly",
        ErrorKind::Unpaid => {
            "the relays' free allowance is used: pay for the upload from a funded wallet with --key WALLET"
        }
        _ => return None,
    })
}

pub fn main() {
    kura_p2p::alloc::tune();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Put { file, bootstrap, coding, pay } => {
            on_runtime(async move { net_cmd::put(&file, &bootstrap, coding, pay).await })
        }
        Command::Get { capability, bootstrap, output, offset, length } => {
            let range = (offset.is_some() || length.is_some())
                .then(|| (offset.unwrap_or(0), length.unwrap_or(u64::MAX)));
            on_runtime(async move { net_cmd::get(&capability, &bootstrap, &output, range).await })
        }
        Command::Donate { bootstrap, dir, quota, refresh, pay_to } => {
            on_runtime(
                async move { net_cmd::donate(&bootstrap, &dir, quota, refresh, pay_to.as_deref()).await },
            )
        }
        Command::Renew { capability, bootstrap, pay } => {
            on_runtime(async move { net_cmd::renew(&capability, &bootstrap, pay).await })
        }
        Command::Ls { files } => files_cmd::ls(&files.unwrap_or_else(files_cmd::default_list)),
        Command::Check { capability, bootstrap } => {
            on_runtime(async move { net_cmd::check(&capability, &bootstrap).await })
        }
        Command::Wallet { action, key, bootstrap } => {
            let key = key.unwrap_or_else(wallet_cmd::default_key);
            let need = |b: &[String]| {
                if b.is_empty() {
                    bail!("--bootstrap ADDR is needed");
                }
                Ok(())
            };
            match action {
                WalletAction::New => wallet_cmd::new(&key),
                WalletAction::Address => wallet_cmd::address(&key),
                WalletAction::Balance => need(&bootstrap)
                    .and_then(|()| on_runtime(async move { wallet_cmd::balance(&key, &bootstrap).await })),
                WalletAction::Send { to, amount, memo } => need(&bootstrap).and_then(|()| {
                    on_runtime(async move { wallet_cmd::send(&key, &to, amount, &memo, &bootstrap).await })
                }),
                WalletAction::History => need(&bootstrap)
                    .and_then(|()| on_runtime(async move { wallet_cmd::history(&key, &bootstrap).await })),
            }
        }
        Command::Devnet {
            relays,
            dir,
            http,
            base_port,
            relay_bin,
            fund,
            epoch,
            tab_ttl,
            tab_check,
            price,
            identities,
        } => runtime().and_then(|rt| {
            let relay_bin = relay_bin.unwrap_or_else(kura_client::devnet::default_relay_bin);
            let cfg = kura_client::devnet::DevnetConfig {
                relays,
                dir,
                http,
                base_port,
                relay_bin,
                relay_args: [
                    ("--epoch", epoch),
                    ("--tab-ttl", tab_ttl),
                    ("--tab-check", tab_check),
                    ("--price", price),
                ]
                .into_iter()
                .filter_map(|(flag, v)| Some([flag.to_owned(), v?.to_string()]))
                .flatten()
                .collect(),
                identities,
            };
            rt.block_on(net_cmd::devnet(cfg, &fund))
        }),
        Command::Encode { file, store, coding } => encode(&file, &store, coding),
        Command::Decode { capability, store, output } => decode(&capability, &store, &output),
    };
    if let Err(e) = result {
        eprintln!("kura: error: {e:#}");
        if let Some(hint) = e.chain().find_map(hint) {
            eprintln!("kura: hint: {hint}");
        }
        std::process::exit(1);
    }
}

/// Runs `task` as a task of the runtime's worker threads rather than on this thread: the
/// swarm's tasks and the transfer then hand work to each other on the same workers.
fn on_runtime(task: impl std::future::Future<Output = Result<()>> + Send + 'static) -> Result<()> {
    runtime()?.block_on(async {
        tokio::spawn(task).await.map_err(|e| anyhow::anyhow!("the transfer task failed: {e}"))?
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

/// Public (convergent, deduplicating) or private (fresh random secret) encryption.
fn secret(private: bool) -> Result<Secret> {
    if private {
        let mut s = [0u8; 32];
        getrandom::fill(&mut s).map_err(|e| anyhow::anyhow!("no randomness for the private secret: {e}"))?;
        Ok(Secret::private(s))
    } else {
        Ok(Secret::public())
    }
}

/// The file's name and guessed media type, as recorded in its data map.
fn file_meta(file: &Path) -> FileMeta {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let media_type = media::guess(&name).to_owned();
    FileMeta { name, media_type }
}

/// The file `kura decode` and `kura get` write: under a temporary name beside its destination,
/// renamed into place only once every byte is written and on disk (dropped unfinished, it is
/// removed). Write-back runs behind the writing: every [`SYNC_EVERY`] bytes a background
/// thread syncs what has been written so far, so the final sync waits for the last stretch
/// only, not for the whole file.
struct Output {
    dest: PathBuf,
    tmp: PathBuf,
    out: BufWriter<File>,
    unsynced: u64,
    syncer: Option<std::thread::JoinHandle<io::Result<()>>>,
    done: bool,
}

/// Bytes written between background syncs of an [`Output`].
const SYNC_EVERY: u64 = 32 << 20;

impl Output {
    fn create(dest: &Path) -> Result<Self> {
        let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let fname = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = dir.join(format!(".{fname}.kura-partial-{}", std::process::id()));
        let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        Ok(Self {
            dest: dest.to_owned(),
            tmp,
            out: BufWriter::with_capacity(1 << 20, file),
            unsynced: 0,
            syncer: None,
            done: false,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.unsynced += bytes.len() as u64;
        // One background sync at a time; while one runs, the next waits for it to end.
        if self.unsynced >= SYNC_EVERY && self.syncer.as_ref().is_none_or(|t| t.is_finished()) {
            self.reap()?;
            let file = self.out.get_ref().try_clone()?;
            self.syncer = Some(std::thread::spawn(move || file.sync_data()));
            self.unsynced = 0;
        }
        Ok(())
    }

    /// Waits for the background sync, if any, and returns its error.
    fn reap(&mut self) -> io::Result<()> {
        match self.syncer.take() {
            Some(t) => t.join().unwrap_or_else(|_| Err(io::Error::other("the sync thread panicked"))),
            None => Ok(()),
        }
    }

    /// Puts the complete file on disk and renames it into place.
    fn finish(mut self) -> Result<()> {
        self.out.flush().context("writing output")?;
        self.reap().context("syncing output")?;
        self.out.get_ref().sync_all().context("syncing output")?;
        fs::rename(&self.tmp, &self.dest)
            .with_context(|| format!("renaming into {}", self.dest.display()))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

fn encode(file: &Path, store: &Path, coding: Coding) -> Result<()> {
    let opts = coding.options(coding.asked()?.unwrap_or_default())?;
    let store = DirStore::open(store).with_context(|| format!("opening store {}", store.display()))?;
    let mut input = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let meta = file_meta(file);
    let mut enc = Encoder::new(opts)?;
    let mut buf = vec![0u8; 1 << 20];
    let put = |s: kura_core::Stripe| store.put_stripe(&s).map(drop);
    loop {
        let n = input.read(&mut buf).with_context(|| format!("reading {}", file.display()))?;
        if n == 0 {
            break;
        }
        enc.push(&buf[..n], put).context("writing shards")?;
    }
    let cap = enc.finish(meta)?.drain(put).context("writing shards")?;
    println!("{cap}");
    Ok(())
}

fn decode(capability: &str, store: &Path, output: &Path) -> Result<()> {
    let cap = Capability::parse(capability).context("invalid capability")?;
    if !store.is_dir() {
        bail!("store {} is not a directory", store.display());
    }
    let mut store = DirStore::open(store)?;
    let mut out = Output::create(output)?;
    let result = decode_from(Decoder::new(cap), &mut store, |pt: &[u8]| -> Result<(), Failure> {
        out.write(pt).map_err(Failure::Io)
    })
    .map_err(|f| match f {
        Failure::Decode(e) => anyhow::Error::new(e),
        Failure::Io(e) => anyhow::Error::new(e).context("writing output"),
    })
    .and_then(|()| out.finish());
    for (stripe, shard, why) in &store.corrupt {
        eprintln!("kura: warning: shard {shard} of stripe {stripe} is corrupt and was skipped ({why})");
    }
    result
}

#[derive(Debug)]
enum Failure {
    Decode(DecodeError),
    Io(io::Error),
}

impl From<DecodeError> for Failure {
    fn from(e: DecodeError) -> Self {
        Failure::Decode(e)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kura-cli-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn output_appears_whole_and_only_once_finished() {
        let dir = scratch("output");
        let dest = dir.join("file.bin");
        let piece: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
        let mut out = Output::create(&dest).unwrap();
        // Past two background syncs and into a third stretch.
        let pieces = (2 * SYNC_EVERY as usize) / piece.len() + 5;
        for i in 0..pieces {
            out.write(&piece[i % 7..]).unwrap();
        }
        assert!(!dest.exists(), "the destination appeared before the output was finished");
        assert_eq!(entries(&dir).len(), 1);
        out.finish().unwrap();
        assert_eq!(entries(&dir), vec!["file.bin".to_owned()], "the temporary file was left behind");
        let back = fs::read(&dest).unwrap();
        let mut at = 0;
        for i in 0..pieces {
            let p = &piece[i % 7..];
            assert_eq!(&back[at..at + p.len()], p, "piece {i} differs");
            at += p.len();
        }
        assert_eq!(at, back.len());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unfinished_output_leaves_nothing() {
        let dir = scratch("unfinished");
        let dest = dir.join("file.bin");
        let mut out = Output::create(&dest).unwrap();
        out.write(&vec![7u8; (SYNC_EVERY as usize) + 1]).unwrap();
        out.write(b"more").unwrap();
        drop(out);
        assert!(entries(&dir).is_empty(), "left {:?}", entries(&dir));
        fs::remove_dir_all(&dir).unwrap();
    }
}
