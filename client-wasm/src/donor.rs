//! A donating client: it holds shards for others on top of the relays' close groups and
//! serves them through a circuit reservation on a relay. The same code runs in a browser
//! tab's worker (shards in the Origin Private File System) and in `kura donate` (shards in
//! a directory); only the [`Shelf`] differs.
//!
//! What it does, in a loop:
//! - keeps a reservation on a relay (the first of its relays that grants one); when the
//!   reservation ends (the relay went away or restarted) it reserves again, on another relay
//!   if need be, and announces everything it holds with the new relay;
//! - while under its quota, asks relays for shards ([`Request::Offer`]): each relay offers
//!   only the shard it holds, by the tab policy in kura-core (data shards first, one tab copy
//!   of each index, never two shards of one stripe to one tab). Every shard taken is checked
//!   against the header's address and kept with its header;
//! - tells the relays of each stripe's close group that it holds its shard
//!   ([`Request::Announce`]), again before the relays' announcements expire;
//! - answers [`Request::Fetch`] for what it holds, after checking the bytes against their
//!   address again: a shard whose bytes changed on disk is dropped, never served.
//!
//! Volatile by nature: its copies are never counted as one of a stripe's `n` durable shards.

use crate::net::{Inbound, NetError, Network};
use crate::transfer::candidates;
use futures::channel::mpsc;
use futures::{FutureExt, StreamExt};
use kura_core::stripe::{StripeHeader, MAX_SHARD_LEN};
use kura_core::wire::{error_within, ErrorCode, Request, Response, MAX_ANNOUNCED};
use kura_core::{ShardId, StripeId};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use web_time::Instant;

/// Where a donating client keeps the shards it holds for others.
#[allow(async_fn_in_trait)]
pub trait Shelf {
    /// Every shard kept: (stripe, index, shard length).
    async fn list(&self) -> Result<Vec<(StripeId, u8, u64)>, String>;
    /// Keeps shard `index` of a stripe with the stripe's header.
    async fn put(&self, stripe: StripeId, index: u8, header: &[u8], shard: &[u8]) -> Result<(), String>;
    /// The header and shard `index` kept for a stripe, as stored (unchecked).
    async fn get(&self, stripe: &StripeId, index: u8) -> Result<Option<(Vec<u8>, Vec<u8>)>, String>;
    /// Forgets a stripe's shard `index`.
    async fn remove(&self, stripe: &StripeId, index: u8) -> Result<(), String>;
}

/// Tunables of a donating client.
#[derive(Debug, Clone)]
pub struct DonorConfig {
    /// Most shard bytes held.
    pub quota: u64,
    /// How often it looks for work (a reservation, offers).
    pub tick: Duration,
    /// How often every announcement is sent again (well within the relays' expiry).
    pub refresh: Duration,
    /// Most shards taken in one tick.
    pub offers_per_tick: usize,
    /// The account relays pay for what it holds ([`kura_core::donation::TabPay`]); none:
    /// it donates for nothing.
    pub payee: Option<kura_core::ledger::Key>,
}

impl Default for DonorConfig {
    fn default() -> Self {
        Self {
            quota: 256 << 20,
            tick: Duration::from_secs(2),
            refresh: Duration::from_secs(120),
            offers_per_tick: 16,
            payee: None,
        }
    }
}

/// What a donating client holds, served and is, for a page or a log line.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct DonorStats {
    /// Its peer id.
    pub peer: String,
    pub quota: u64,
    pub shards: u64,
    pub bytes: u64,
    pub served_requests: u64,
    pub served_bytes: u64,
    /// Shards dropped because their bytes no longer matched their address.
    pub corrupt: u64,
    /// Fetches refused because nothing of the stripe is held.
    pub misses: u64,
    /// Rounds of announcements sent (everything held, to each stripe's group).
    pub announced: u64,
    /// The relay it is reachable through, when it holds a reservation.
    pub via: Option<String>,
    /// Its circuit address then.
    pub address: Option<String>,
    /// Why the last reservation asked for was refused, if it was.
    pub refused: Option<String>,
}

/// A donating client over a network handle and a shelf.
#[derive(Debug)]
pub struct Donor<S> {
    net: Network,
    shelf: S,
    relays: Vec<Multiaddr>,
    cfg: DonorConfig,
    stats: Arc<Mutex<DonorStats>>,
    /// What is held: stripe → (index, length).
    held: Mutex<BTreeMap<StripeId, (u8, u64)>>,
    /// Relays that had nothing to offer: when to ask again, and how long the wait was.
    quiet: Mutex<BTreeMap<PeerId, (Instant, Duration)>>,
    /// The relays to ask for offers, and when a lookup found them.
    known: Mutex<Option<(Instant, Vec<PeerId>)>>,
}

/// How long the relays a lookup found are asked for offers before looking again (a lookup
/// every tick would cost the network more than the offers).
const KNOWN_FOR: Duration = Duration::from_secs(60);

/// The first wait before asking again a relay that had nothing to offer; it doubles with
/// each refusal, up to [`QUIET_MAX`] (an offer costs a relay a scan of what it holds).
const QUIET_FIRST: Duration = Duration::from_secs(4);
const QUIET_MAX: Duration = Duration::from_secs(60);
/// How long a donor waits before asking a relay for a reservation a second time.
const RESERVE_AGAIN: Duration = Duration::from_millis(500);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<S: Shelf> Donor<S> {
    /// A donor that reserves on one of `relays` (each `…/p2p/RELAY`, tried in order).
    pub fn new(net: Network, shelf: S, relays: Vec<Multiaddr>, cfg: DonorConfig) -> Self {
        let stats =
            DonorStats { peer: net.local_peer_id().to_string(), quota: cfg.quota, ..DonorStats::default() };
        Self {
            net,
            shelf,
            relays,
            cfg,
            stats: Arc::new(Mutex::new(stats)),
            held: Mutex::default(),
            quiet: Mutex::default(),
            known: Mutex::default(),
        }
    }

    /// Its figures, updated as it runs.
    pub fn stats(&self) -> Arc<Mutex<DonorStats>> {
        self.stats.clone()
    }

    /// Donates until the network handle closes: serves requests and keeps its reservation,
    /// its shards and its announcements.
    pub async fn run(&self) -> Result<(), NetError> {
        let kept = self.shelf.list().await.map_err(NetError::Unreachable)?;
        {
            let mut held = lock(&self.held);
            for (stripe, index, len) in kept {
                held.insert(stripe, (index, len));
            }
        }
        self.count();
        let inbox = self.net.serve().await?;
        let via: Mutex<Option<PeerId>> = Mutex::new(None);
        let serving = self.serve(inbox, &via).fuse();
        let keeping = self.keep(&via).fuse();
        futures::pin_mut!(serving, keeping);
        futures::select! {
            r = serving => r,
            r = keeping => r,
        }
    }

    fn count(&self) {
        let held = lock(&self.held);
        let mut s = lock(&self.stats);
        s.shards = held.len() as u64;
        s.bytes = held.values().map(|(_, len)| len).sum();
    }

    /// Answers what peers ask of it; notes a lost reservation.
    async fn serve(
        &self,
        mut inbox: mpsc::Receiver<Inbound>,
        via: &Mutex<Option<PeerId>>,
    ) -> Result<(), NetError> {
        while let Some(msg) = inbox.next().await {
            match msg {
                Inbound::Unreachable => {
                    *lock(via) = None;
                    let mut s = lock(&self.stats);
                    s.via = None;
                    s.address = None;
                }
                Inbound::Request { id, request, .. } => {
                    let response = self.answer(request).await;
                    self.net.respond(id, response).await?;
                }
            }
        }
        Err(NetError::Closed)
    }

    async fn answer(&self, request: Request) -> Response {
        let Request::Fetch { stripe } = request else {
            return error_within(ErrorCode::UnsupportedVersion, "a donating client answers Fetch only", 100);
        };
        let Some((index, _)) = lock(&self.held).get(&stripe).copied() else {
            lock(&self.stats).misses += 1;
            return error_within(ErrorCode::NotFound, "no shard of this stripe is held here", 100);
        };
        let kept = match self.shelf.get(&stripe, index).await {
            Ok(Some(k)) => k,
            Ok(None) => {
                lock(&self.held).remove(&stripe);
                self.count();
                return error_within(ErrorCode::NotFound, "no shard of this stripe is held here", 100);
            }
            Err(e) => return error_within(ErrorCode::Internal, e, 200),
        };
        let (header, shard) = kept;
        // The check a relay's spot-check makes: the shard at the index this donor announced.
        if StripeHeader::check_shard(&stripe, &header, index, &shard).is_err() {
            // Changed on disk: never served, and forgotten.
            let _ = self.shelf.remove(&stripe, index).await;
            lock(&self.held).remove(&stripe);
            lock(&self.stats).corrupt += 1;
            self.count();
            return error_within(ErrorCode::NotFound, "the shard kept here failed its check", 100);
        }
        {
            let mut s = lock(&self.stats);
            s.served_requests += 1;
            s.served_bytes += shard.len() as u64;
        }
        Response::Shards { header, shards: vec![shard.into()] }
    }

    /// Keeps a reservation, takes offers while under quota, refreshes announcements.
    async fn keep(&self, via: &Mutex<Option<PeerId>>) -> Result<(), NetError> {
        let mut announced_at: Option<Instant> = None;
        loop {
            let current = *lock(via);
            let current = match current {
                Some(v) => Some(v),
                None => {
                    let got = self.reserve().await;
                    if let Some((relay, addr)) = &got {
                        *lock(via) = Some(*relay);
                        let mut s = lock(&self.stats);
                        s.via = Some(relay.to_string());
                        s.address = Some(addr.to_string());
                        // The relays must learn where it is now, and may have offers again.
                        announced_at = None;
                        lock(&self.quiet).clear();
                        *lock(&self.known) = None;
                    }
                    got.map(|(r, _)| r)
                }
            };
            if let Some(relay) = current {
                // What it holds first: a relay that does not know it holds a stripe could
                // offer it another shard of it.
                if announced_at.is_none_or(|t| t.elapsed() >= self.cfg.refresh) {
                    let held: Vec<(StripeId, u8)> =
                        lock(&self.held).iter().map(|(s, (i, _))| (*s, *i)).collect();
                    self.announce(relay, &held).await;
                    announced_at = Some(Instant::now());
                    lock(&self.stats).announced += 1;
                }
                self.take_offers(relay).await;
            }
            futures_timer::Delay::new(self.cfg.tick).await;
        }
    }

    /// A reservation on the first of its relays that grants one. Each is asked twice: a
    /// reservation asked for while a connection to the relay is being replaced ends at once
    /// (the listener closes with its connection), and the second asking finds the new one.
    async fn reserve(&self) -> Option<(PeerId, Multiaddr)> {
        for addr in &self.relays {
            let Some(Protocol::P2p(relay)) = addr.iter().last() else { continue };
            for attempt in 0..2 {
                if attempt > 0 {
                    futures_timer::Delay::new(RESERVE_AGAIN).await;
                }
                match self.net.reserve(addr.clone()).await {
                    Ok(circuit) => {
                        lock(&self.stats).refused = None;
                        return Some((relay, circuit));
                    }
                    Err(e) => lock(&self.stats).refused = Some(format!("{relay}: {e}")),
                }
            }
        }
        None
    }

    /// The relays to ask for offers: its own relays and the ones a lookup finds.
    async fn relays_known(&self) -> Vec<PeerId> {
        if let Some((at, known)) = lock(&self.known).as_ref() {
            if at.elapsed() < KNOWN_FOR {
                return known.clone();
            }
        }
        let mut out: BTreeSet<PeerId> = self
            .relays
            .iter()
            .filter_map(|a| match a.iter().last() {
                Some(Protocol::P2p(p)) => Some(p),
                _ => None,
            })
            .collect();
        let random = StripeId::from_bytes(rand_bytes());
        if let Ok(found) = self.net.closest(random).await {
            out.extend(found);
        }
        let out: Vec<PeerId> = out.into_iter().collect();
        *lock(&self.known) = Some((Instant::now(), out.clone()));
        out
    }

    /// Asks relays for shards while there is room, keeps each after checking it and
    /// announces it.
    async fn take_offers(&self, via: PeerId) {
        let mut taken = 0;
        if self.room() == 0 {
            return;
        }
        for relay in self.relays_known().await {
            if lock(&self.quiet).get(&relay).is_some_and(|(until, _)| Instant::now() < *until) {
                continue;
            }
            let before = taken;
            self.ask(relay, via, &mut taken).await;
            let mut quiet = lock(&self.quiet);
            if taken > before {
                quiet.remove(&relay);
            } else {
                let wait = quiet.get(&relay).map_or(QUIET_FIRST, |(_, w)| (*w * 2).min(QUIET_MAX));
                quiet.insert(relay, (Instant::now() + wait, wait));
            }
        }
    }

    /// Takes what `relay` offers, while there is room and this tick's count allows.
    async fn ask(&self, relay: PeerId, via: PeerId, taken: &mut usize) {
        while *taken < self.cfg.offers_per_tick {
            let room = self.room();
            if room == 0 {
                return;
            }
            let req = Request::Offer { via: via.to_bytes(), room: room as u32 };
            let Ok(Response::Shards { header, shards }) = self.net.request(relay, req).await else { return };
            let Some(shard) = shards.into_iter().next() else { return };
            let stripe = StripeId::of(&header);
            let Ok(index) = check(&stripe, &header, &shard) else { return };
            if shard.len() as u64 > room || lock(&self.held).contains_key(&stripe) {
                // Not what it asked for: ask this relay no more this tick.
                return;
            }
            if let Err(e) = self.shelf.put(stripe, index, &header, &shard).await {
                tracing::warn!("cannot keep a shard: {e}");
                return;
            }
            lock(&self.held).insert(stripe, (index, shard.len() as u64));
            self.count();
            *taken += 1;
            self.announce(via, &[(stripe, index)]).await;
        }
    }

    /// Shard bytes it may still take (at most one shard's worth).
    fn room(&self) -> u64 {
        self.cfg.quota.saturating_sub(lock(&self.stats).bytes).min(MAX_SHARD_LEN as u64)
    }

    /// Tells each stripe's close group that it holds its shard, reachable through `via`.
    async fn announce(&self, via: PeerId, shards: &[(StripeId, u8)]) {
        let mut by_relay: BTreeMap<PeerId, Vec<(StripeId, u8)>> = BTreeMap::new();
        for &(stripe, index) in shards {
            let Ok(group) = candidates(&self.net, stripe, false, kura_core::placement::LOOKUP_FINDS).await
            else {
                continue;
            };
            // The close group is among the lookup's answer; a relay that holds nothing of the
            // stripe keeps no announcement of it.
            for relay in group {
                by_relay.entry(relay).or_default().push((stripe, index));
            }
        }
        let sends = by_relay.into_iter().flat_map(|(relay, list)| {
            list.chunks(MAX_ANNOUNCED)
                .map(|c| {
                    let req =
                        Request::Announce { via: via.to_bytes(), shards: c.to_vec(), payee: self.cfg.payee };
                    self.net.request(relay, req)
                })
                .collect::<Vec<_>>()
        });
        futures::future::join_all(sends).await;
    }
}

/// The index of `shard` in the stripe `header` describes, when the header is the stripe's
/// and the shard's bytes are one of its shards.
pub fn check(stripe: &StripeId, header: &[u8], shard: &[u8]) -> Result<u8, String> {
    let h = StripeHeader::parse_verified(stripe, header).map_err(|e| e.to_string())?;
    let index = h.index_of(&ShardId::of(shard)).ok_or("the shard is none of the stripe's")?;
    u8::try_from(index).map_err(|_| "index out of range".into())
}

fn rand_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    let _ = getrandom::fill(&mut b);
    b
}

/// A [`Shelf`] in a directory (`kura donate`): `STRIPE.INDEX.shard` and `STRIPE.header`,
/// each written to a temporary name and renamed, so that a crash leaves whole files.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Clone)]
pub struct DirShelf {
    dir: std::path::PathBuf,
}

#[cfg(not(target_arch = "wasm32"))]
impl DirShelf {
    pub fn open(dir: impl Into<std::path::PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    /// The donor's key, kept in the directory (made on first use), so that it keeps its
    /// peer id across restarts.
    pub fn identity(&self) -> std::io::Result<libp2p::identity::Keypair> {
        let path = self.dir.join("identity.key");
        match std::fs::read(&path) {
            Ok(bytes) => libp2p::identity::Keypair::from_protobuf_encoding(&bytes)
                .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = libp2p::identity::Keypair::generate_ed25519();
                let bytes = key.to_protobuf_encoding().map_err(std::io::Error::other)?;
                self.write("identity.key", &bytes)?;
                Ok(key)
            }
            Err(e) => Err(e),
        }
    }

    fn write(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let tmp = self.dir.join(format!("{name}.tmp"));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(tmp, self.dir.join(name))
    }

    fn shard_path(&self, stripe: &StripeId, index: u8) -> std::path::PathBuf {
        self.dir.join(format!("{stripe}.{index}.shard"))
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Shelf for DirShelf {
    async fn list(&self) -> Result<Vec<(StripeId, u8, u64)>, String> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir).map_err(|e| e.to_string())? {
            let e = e.map_err(|e| e.to_string())?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(base) = name.strip_suffix(".shard") else { continue };
            let Some((stripe, index)) = base.split_once('.') else { continue };
            let (Ok(stripe), Ok(index)) = (StripeId::from_hex(stripe).ok_or(()), index.parse::<u8>()) else {
                continue;
            };
            let len = e.metadata().map_err(|e| e.to_string())?.len();
            out.push((stripe, index, len));
        }
        Ok(out)
    }

    async fn put(&self, stripe: StripeId, index: u8, header: &[u8], shard: &[u8]) -> Result<(), String> {
        self.write(&format!("{stripe}.header"), header).map_err(|e| e.to_string())?;
        self.write(&format!("{stripe}.{index}.shard"), shard).map_err(|e| e.to_string())
    }

    async fn get(&self, stripe: &StripeId, index: u8) -> Result<Option<(Vec<u8>, Vec<u8>)>, String> {
        let read = |path: std::path::PathBuf| match std::fs::read(path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        };
        let Some(shard) = read(self.shard_path(stripe, index))? else { return Ok(None) };
        Ok(read(self.dir.join(format!("{stripe}.header")))?.map(|header| (header, shard)))
    }

    async fn remove(&self, stripe: &StripeId, index: u8) -> Result<(), String> {
        match std::fs::remove_file(self.shard_path(stripe, index)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.to_string()),
        }
        let _ = std::fs::remove_file(self.dir.join(format!("{stripe}.header")));
        Ok(())
    }
}
