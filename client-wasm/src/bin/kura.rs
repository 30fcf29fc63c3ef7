//! `kura`: Kura's command-line client.
//!
//! Offline, against a directory (the network commands build on the same pipeline):
//! ```text
//! kura encode FILE --store DIR [--k K --m M] [--private]   prints the capability
//! kura decode CAP  --store DIR -o OUT                      writes the file back
//! ```

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use kura_client::dirstore::DirStore;
use kura_client::media;
use kura_core::{
    decode_from, Capability, DecodeError, Decoder, EncodeOptions, Encoder, FileMeta, Params, Secret,
};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

#[derive(Parser, Debug)]
#[command(name = "kura", version, about = "Kura: encrypted, erasure-coded storage")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Encode FILE into shards in a directory and print its capability.
    Encode {
        file: PathBuf,
        /// Directory holding one file per shard.
        #[arg(long)]
        store: PathBuf,
        /// Data shards per stripe.
        #[arg(long, default_value_t = 4)]
        k: usize,
        /// Parity shards per stripe (any m may be lost).
        #[arg(long, default_value_t = 2)]
        m: usize,
        /// Encrypt with a fresh random secret: nobody can tell that this file is stored by
        /// encoding a copy of it (and it does not dedupe).
        #[arg(long)]
        private: bool,
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

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Encode { file, store, k, m, private } => encode(&file, &store, k, m, private),
        Command::Decode { capability, store, output } => decode(&capability, &store, &output),
    };
    if let Err(e) = result {
        eprintln!("kura: error: {e:#}");
        std::process::exit(1);
    }
}

fn encode(file: &Path, store: &Path, k: usize, m: usize, private: bool) -> Result<()> {
    let params = Params::new(k, m).context("invalid --k/--m")?;
    let secret = if private {
        let mut s = [0u8; 32];
        getrandom::fill(&mut s).map_err(|e| anyhow::anyhow!("no randomness for the private secret: {e}"))?;
        Secret::private(s)
    } else {
        Secret::public()
    };
    let store = DirStore::open(store).with_context(|| format!("opening store {}", store.display()))?;
    let mut input = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let media_type = media::guess(&name).to_owned();
    let mut enc = Encoder::new(EncodeOptions { params, secret, ..EncodeOptions::default() })?;
    let mut buf = vec![0u8; 1 << 20];
    let put = |s: kura_core::Stripe| store.put_stripe(&s).map(drop);
    loop {
        let n = input.read(&mut buf).with_context(|| format!("reading {}", file.display()))?;
        if n == 0 {
            break;
        }
        enc.push(&buf[..n], put).context("writing shards")?;
    }
    let cap = enc.finish(FileMeta { name, media_type })?.drain(put).context("writing shards")?;
    println!("{cap}");
    Ok(())
}

fn decode(capability: &str, store: &Path, output: &Path) -> Result<()> {
    let cap = Capability::parse(capability).context("invalid capability")?;
    if !store.is_dir() {
        bail!("store {} is not a directory", store.display());
    }
    let mut store = DirStore::open(store)?;
    // Write beside OUT under a temporary name; rename only once every byte is verified.
    let dir = output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let fname = output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{fname}.kura-partial-{}", std::process::id()));
    let result = (|| -> Result<()> {
        let mut out =
            BufWriter::new(File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?);
        decode_from(Decoder::new(cap), &mut store, |pt: &[u8]| -> Result<(), Failure> {
            out.write_all(pt).map_err(Failure::Io)
        })
        .map_err(|f| match f {
            Failure::Decode(e) => anyhow::Error::new(e),
            Failure::Io(e) => anyhow::Error::new(e).context("writing output"),
        })?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        fs::rename(&tmp, output).with_context(|| format!("renaming into {}", output.display()))?;
        Ok(())
    })();
    for (stripe, shard, why) in &store.corrupt {
        eprintln!("kura: warning: shard {shard} of stripe {stripe} is corrupt and was skipped ({why})");
    }
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
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
