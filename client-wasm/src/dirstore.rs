//! A shard store in a plain directory, for the offline `kura encode` / `kura decode`.
//!
//! Layout:
//! ```text
//! DIR/shards/ab/abcdef…   one file per shard, named by its BLAKE3 address (lowercase hex)
//! DIR/headers/0123…       one file per stripe header, named by the stripe id
//! ```
//! Files are written to a temporary name and renamed, so a crash never leaves a file that
//! looks complete but is not; an existing file with the same name is the same content
//! (content addressing) and is left alone. Everything read is verified by the decoder.

use kura_core::{DecodeError, ShardId, ShardSource, Stripe, StripeId};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A directory of shards and headers.
#[derive(Debug)]
pub struct DirStore {
    root: PathBuf,
    /// Shards that failed verification while decoding: (stripe, shard, why).
    pub corrupt: Vec<(StripeId, ShardId, String)>,
}

impl DirStore {
    /// Opens (creating if needed) a store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(root.join("shards"))?;
        fs::create_dir_all(root.join("headers"))?;
        Ok(Self { root, corrupt: Vec::new() })
    }

    /// Where shard `id` lives.
    pub fn shard_path(&self, id: &ShardId) -> PathBuf {
        let hex = id.to_hex();
        self.root.join("shards").join(&hex[..2]).join(hex)
    }

    /// Where the header of stripe `id` lives.
    pub fn header_path(&self, id: &StripeId) -> PathBuf {
        self.root.join("headers").join(id.to_hex())
    }

    /// Stores a stripe's header and all its shards. Returns how many new shard files were
    /// written (0 when everything was already there).
    pub fn put_stripe(&self, stripe: &Stripe) -> io::Result<usize> {
        write_once(&self.header_path(&stripe.id()), stripe.header_bytes())?;
        let mut written = 0;
        for (id, bytes) in stripe.shards() {
            let path = self.shard_path(&id);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)?;
            }
            if write_once(&path, bytes)? {
                written += 1;
            }
        }
        Ok(written)
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, unless `path` exists.
fn write_once(path: &Path, bytes: &[u8]) -> io::Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_data()?;
    drop(f);
    fs::rename(&tmp, path)?;
    Ok(true)
}

fn read_opt(path: &Path) -> Option<Vec<u8>> {
    fs::read(path).ok()
}

impl ShardSource for DirStore {
    fn header(&mut self, stripe: &StripeId) -> Option<Vec<u8>> {
        read_opt(&self.header_path(stripe))
    }
    fn shard(&mut self, shard: &ShardId) -> Option<Vec<u8>> {
        read_opt(&self.shard_path(shard))
    }
    fn corrupt(&mut self, stripe: &StripeId, shard: &ShardId, error: &DecodeError) {
        self.corrupt.push((*stripe, *shard, error.to_string()));
    }
}
