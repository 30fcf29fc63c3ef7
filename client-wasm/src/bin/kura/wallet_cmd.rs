//! `kura wallet`: an account's key in a file, its balance and history, transfers.
//!
//! The key is a 32-byte ed25519 seed, written as 64 hex digits in a file of mode 0600
//! (`--key`, default `~/.kura/wallet.key`). The account id is its public key, in hex.

use anyhow::{bail, Context, Result};
use kura_client::wallet;
use kura_core::ledger::{Key, Signer, SigningKey};
use std::path::{Path, PathBuf};

/// The default key file.
pub fn default_key() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".kura").join("wallet.key")
}

pub use wallet::hex;

/// 32 bytes from 64 hex digits.
pub fn parse_key(text: &str) -> Result<Key> {
    Ok(wallet::parse_account(text)?)
}

pub fn load(path: &Path) -> Result<SigningKey> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!("reading the wallet key {} (make one with `kura wallet new`)", path.display())
    })?;
    Ok(SigningKey::from_bytes(
        &parse_key(&text).with_context(|| format!("{} is not a wallet key", path.display()))?,
    ))
}

/// Makes a key file of mode 0600 (never over an existing one).
pub fn create(path: &Path) -> Result<SigningKey> {
    if path.exists() {
        bail!("{} exists; not overwritten", path.display());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // The account work: about a second of one core, once per wallet.
    let key = kura_core::ledger::make_account(kura_core::ledger::ACCOUNT_BITS, |seed| getrandom::fill(seed))
        .map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    kura_p2p::docs::write_private(path, format!("{}\n", hex(&key.to_bytes())).as_bytes())?;
    Ok(key)
}

/// Makes a key file; prints the account.
pub fn new(path: &Path) -> Result<()> {
    println!("{}", hex(&create(path)?.key()));
    Ok(())
}

pub fn address(path: &Path) -> Result<()> {
    println!("{}", hex(&load(path)?.key()));
    Ok(())
}

pub async fn balance(path: &Path, bootstrap: &[String]) -> Result<()> {
    let key = load(path)?.key();
    let net = super::net_cmd::connect(bootstrap).await?;
    println!("{}", wallet::view(&net, &key).await?.spendable());
    Ok(())
}

pub async fn send(path: &Path, to: &str, amount: u64, memo: &str, bootstrap: &[String]) -> Result<()> {
    let owner = load(path)?;
    let to = parse_key(to)?;
    let net = super::net_cmd::connect(bootstrap).await?;
    let _one_spender = kura_p2p::wallet::SpendLock::take_async(path).await?;
    let cert = wallet::send(&net, &owner, to, amount, memo.as_bytes().to_vec()).await?;
    println!("{}", hex(&cert.signed.transfer.id()));
    Ok(())
}

pub async fn history(path: &Path, bootstrap: &[String]) -> Result<()> {
    let key = load(path)?.key();
    let net = super::net_cmd::connect(bootstrap).await?;
    let v = wallet::view(&net, &key).await?;
    println!("account {}: {} spendable, next transfer #{}", hex(&key), v.spendable(), v.next_seq);
    for t in &v.recent {
        println!("sent #{}: {} to {} ({})", t.seq, t.amount, hex(&t.to), hex(&t.id()));
    }
    for (id, amount) in &v.credits {
        println!("received: {amount} ({}), not yet spent", hex(id));
    }
    Ok(())
}
