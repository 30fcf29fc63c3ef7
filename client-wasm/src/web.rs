//! The JavaScript API of the browser client (wasm-bindgen). Every method returns a Promise;
//! errors reject it with an `Error` whose `message` says what went wrong, with `kind` (one of
//! kura-core's [`ErrorKind`] names: `too-few-relays`, `unavailable`, `damaged-link`,
//! `unreachable`, `quota-full`, `busy`, `unpaid`, `refused`, `corrupt`, `bad-request`, `internal`) and
//! `details` (`found`, `needed`, `stripes`, `relayCode`, where they apply) for the page to
//! choose its own words.
//!
//! ```js
//! const kura = await KuraClient.connect(["/ip4/127.0.0.1/tcp/4102/ws/p2p/12D3…"]);
//! const cap = await kura.put(file, file.name, file.type, false, 4, 2, p => show(p));
//! const info = await kura.open(cap);            // { name, size, type }
//! await kura.read(cap, 0, info.size, bytes => sink(bytes), p => show(p));
//! const account = walletAccount(seed);          // seed: 32 bytes kept by the tab
//! const balance = await kura.balance(account);  // "1234", the smallest unit
//! const id = await kura.send(seed, to, "25", "rent");
//! ```

use crate::net::{NetConfig, Network};
use crate::transfer::{self, Progress, TransferConfig};
use js_sys::{Function, Object, Promise, Reflect, Uint8Array};
use kura_core::{
    Capability, EncodeOptions, Encoder, ErrorDetails, ErrorKind, FileMeta, Params, Secret, UserError,
};
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, JsFuture};

/// Runs when the module loads: panics go to the console with their message (instead of a
/// bare "unreachable").
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| web_sys::console::error_1(&format!("kura: {info}").into())));
}

/// A rejection: an `Error` with `kind` and `details`.
fn rejection(kind: ErrorKind, message: &str, details: &ErrorDetails) -> JsValue {
    let err: JsValue = js_sys::Error::new(message).into();
    let d = Object::new();
    if let Some(n) = details.found {
        set(&d, "found", n as f64);
    }
    if let Some(n) = details.needed {
        set(&d, "needed", n as f64);
    }
    let stripes = js_sys::Array::new();
    for s in &details.stripes {
        stripes.push(&JsValue::from_str(&s.to_string()));
    }
    set(&d, "stripes", stripes);
    if let Some(c) = details.relay_code {
        set(&d, "relayCode", c.as_u16());
    }
    let _ = Reflect::set(&err, &JsValue::from_str("kind"), &JsValue::from_str(kind.as_str()));
    let _ = Reflect::set(&err, &JsValue::from_str("details"), &d);
    err
}

/// A rejection of a kind with no details.
fn js_err(kind: ErrorKind, e: impl std::fmt::Display) -> JsValue {
    rejection(kind, &e.to_string(), &ErrorDetails::default())
}

/// A rejection for an error that knows its kind, its message with its causes.
fn describe<E: UserError + std::error::Error>(e: E) -> JsValue {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg = format!("{msg}: {s}");
        source = s.source();
    }
    rejection(e.kind(), &msg, &e.details())
}

fn set(o: &Object, k: &str, v: impl Into<JsValue>) {
    let _ = Reflect::set(o, &JsValue::from_str(k), &v.into());
}

/// Proofs of possession timed in this browser: `runs` challenges (distinct nonces) of one
/// shard of about 256 KiB (a 1 MiB chunk at k = 4, m = 2), each proven and then verified,
/// as a relay and an auditor would. Returns `{ runs, verified, proofBytes, proveMicros,
/// verifyMicros }` (the means; the browser's clock is too coarse for one proof at a time).
#[wasm_bindgen(js_name = proofBench)]
pub fn proof_bench(runs: u32) -> Result<Object, JsValue> {
    use kura_core::proof::{challenged_chunk, prove, verify};
    let params = kura_core::Params::new(4, 2).map_err(|e| JsValue::from_str(&e.to_string()))?;
    let opts = kura_core::EncodeOptions { params, ..Default::default() };
    let (stripe, _) =
        kura_core::encoder::encode_single_chunk(&opts, &kura_core::testdata::pseudo_random(1 << 20, 1))
            .map_err(describe)?;
    let (shard, address) = (stripe.shard(0), stripe.header().shards()[0]);
    let chunks: Vec<usize> = (0..runs)
        .map(|i| {
            let mut nonce = [0u8; kura_core::proof::NONCE_LEN];
            nonce[..4].copy_from_slice(&i.to_le_bytes());
            challenged_chunk(&nonce, b"a-holder", &address, shard.len())
        })
        .collect();
    let t = web_time::Instant::now();
    let proofs: Vec<_> = chunks.iter().map(|c| prove(shard, *c)).collect();
    let proving = t.elapsed();
    let t = web_time::Instant::now();
    let verified =
        chunks.iter().zip(&proofs).filter(|(c, p)| verify(&address, shard.len(), **c, p).is_ok()).count();
    let verifying = t.elapsed();
    let proof_bytes = proofs.first().map_or(0, |p| p.chunk.len() + 32 * p.siblings.len());
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / f64::from(runs.max(1));
    let o = Object::new();
    set(&o, "runs", f64::from(runs));
    set(&o, "verified", verified as f64);
    set(&o, "proofBytes", proof_bytes as f64);
    set(&o, "proveMicros", per(proving));
    set(&o, "verifyMicros", per(verifying));
    Ok(o)
}

/// The donating tab's store timed in this browser (a worker only): `shards` shards of
/// `len` bytes written to the Origin Private File System through [`crate::opfs::OpfsShelf`]
/// (header and shard, as a donated shard is kept), then read back, then removed. Returns
/// `{ shards, bytes, writeMBs, readMBs }` (MB = 10^6 bytes, shard bytes only).
#[wasm_bindgen(js_name = opfsBench)]
pub fn opfs_bench(shards: u32, len: u32) -> Promise {
    use crate::donor::Shelf;
    future_to_promise(async move {
        let shelf = crate::opfs::OpfsShelf::open().await.map_err(|e| js_err(ErrorKind::Internal, e))?;
        let fail = |e: String| js_err(ErrorKind::Internal, e);
        let header = vec![7u8; 200];
        let ids: Vec<kura_core::StripeId> = (0..shards)
            .map(|i| {
                let mut b = [0xbeu8; 32];
                b[..4].copy_from_slice(&i.to_le_bytes());
                kura_core::StripeId::from_bytes(b)
            })
            .collect();
        let shard = kura_core::testdata::pseudo_random(len as usize, 3);
        let t = web_time::Instant::now();
        for id in &ids {
            shelf.put(*id, 0, &header, &shard).await.map_err(fail)?;
        }
        let writing = t.elapsed().as_secs_f64();
        let t = web_time::Instant::now();
        let mut read = 0usize;
        for id in &ids {
            read += shelf.get(id, 0).await.map_err(fail)?.map_or(0, |(_, s)| s.len());
        }
        let reading = t.elapsed().as_secs_f64();
        for id in &ids {
            shelf.remove(id, 0).await.map_err(fail)?;
        }
        let bytes = f64::from(shards) * f64::from(len);
        if read as f64 != bytes {
            return Err(js_err(ErrorKind::Internal, "read back fewer bytes than written"));
        }
        let o = Object::new();
        set(&o, "shards", f64::from(shards));
        set(&o, "bytes", bytes);
        set(&o, "writeMBs", bytes / writing.max(1e-9) / 1e6);
        set(&o, "readMBs", bytes / reading.max(1e-9) / 1e6);
        Ok(o.into())
    })
}

/// A wallet key's 32-byte seed from JavaScript.
fn seed_key(seed: &[u8]) -> Result<kura_core::ledger::SigningKey, JsValue> {
    let seed: [u8; 32] =
        seed.try_into().map_err(|_| js_err(ErrorKind::BadRequest, "a wallet seed is 32 bytes"))?;
    Ok(kura_core::ledger::SigningKey::from_bytes(&seed))
}

/// A new wallet's seed (32 bytes) whose account carries the account work the ledger asks
/// ([`kura_core::ledger::ACCOUNT_BITS`]): a few seconds, once per wallet.
#[wasm_bindgen(js_name = makeWalletSeed)]
pub fn make_wallet_seed() -> Result<Vec<u8>, JsValue> {
    let key = kura_core::ledger::make_account(kura_core::ledger::ACCOUNT_BITS, |seed| getrandom::fill(seed))
        .map_err(|e| js_err(ErrorKind::Internal, e))?;
    Ok(key.to_bytes().to_vec())
}

/// Whether the wallet whose key's seed is `seed` carries the account work (a seed kept by
/// a page from before the rule does not: replicas credit nothing to it).
#[wasm_bindgen(js_name = walletHasWork)]
pub fn wallet_has_work(seed: &[u8]) -> Result<bool, JsValue> {
    use kura_core::ledger::Signer;
    Ok(kura_core::ledger::account_work(&seed_key(seed)?.key()) >= kura_core::ledger::ACCOUNT_BITS)
}

/// The account id (64 hex digits) of the wallet whose key's seed is `seed` (32 bytes).
#[wasm_bindgen(js_name = walletAccount)]
pub fn wallet_account(seed: &[u8]) -> Result<String, JsValue> {
    use kura_core::ledger::Signer;
    Ok(crate::wallet::hex(&seed_key(seed)?.key()))
}

/// A connected client. Cheap to clone; every operation runs on the page's (or worker's)
/// event loop.
#[wasm_bindgen]
#[derive(Debug, Clone)]
pub struct KuraClient {
    net: Network,
    /// The relays it connected through (a donating tab reserves on one of them).
    bootstrap: Vec<libp2p::Multiaddr>,
    /// Stops the donating loop, while one runs.
    donating: Rc<std::cell::RefCell<Option<futures::future::AbortHandle>>>,
}

/// Calls `cb({phase, total, encoded, sent, confirmed, received, delivered, retries})` every
/// `PROGRESS_EVERY`, forever (run it beside the work with [`alongside`]).
async fn report(cb: Option<Function>, phase: &'static str, total: f64, p: Rc<Progress>) {
    let Some(cb) = cb else { return futures::future::pending().await };
    loop {
        futures_timer::Delay::new(transfer::PROGRESS_EVERY).await;
        let now = p.snapshot();
        let o = Object::new();
        set(&o, "phase", phase);
        set(&o, "total", total);
        set(&o, "encoded", now.encoded as f64);
        set(&o, "sent", now.sent as f64);
        set(&o, "confirmed", now.confirmed as f64);
        set(&o, "received", now.received as f64);
        set(&o, "delivered", now.delivered as f64);
        set(&o, "retries", now.retries as f64);
        let _ = cb.call1(&JsValue::NULL, &o);
    }
}

/// A `Blob` read a slice at a time.
struct BlobInput {
    blob: web_sys::Blob,
    offset: f64,
}

impl transfer::Plaintext for BlobInput {
    async fn read(&mut self, max: usize) -> Result<Vec<u8>, String> {
        let end = (self.offset + max as f64).min(self.blob.size());
        if end <= self.offset {
            return Ok(Vec::new());
        }
        let slice = self.blob.slice_with_f64_and_f64(self.offset, end).map_err(|e| format!("{e:?}"))?;
        let buf = JsFuture::from(slice.array_buffer()).await.map_err(|e| format!("{e:?}"))?;
        self.offset = end;
        Ok(Uint8Array::new(&buf).to_vec())
    }
}

#[wasm_bindgen]
impl KuraClient {
    /// Connects to the network through any of `addrs` (multiaddr strings ending in
    /// `/p2p/PEER`, as a relay's `/bootstrap` lists them; WebSocket and WebRTC-direct ones
    /// are used).
    pub fn connect(addrs: Vec<String>) -> Promise {
        Self::connect_as(addrs, None)
    }

    /// [`KuraClient::connect`] with this client's key made from a 32-byte `seed` the tab
    /// keeps (a donating tab keeps its peer id across reloads), or a fresh key without one.
    #[wasm_bindgen(js_name = connectAs)]
    pub fn connect_as(addrs: Vec<String>, seed: Option<Vec<u8>>) -> Promise {
        future_to_promise(async move {
            let parsed = addrs
                .iter()
                .map(|a| {
                    a.parse().map_err(|e| js_err(ErrorKind::Unreachable, format!("bad address {a}: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let identity = match seed {
                Some(mut s) => Some(
                    libp2p::identity::Keypair::ed25519_from_bytes(&mut s)
                        .map_err(|e| js_err(ErrorKind::BadRequest, format!("bad key seed: {e}")))?,
                ),
                None => None,
            };
            let net = Network::connect(&parsed, NetConfig { identity, ..NetConfig::default() })
                .await
                .map_err(describe)?;
            Ok(KuraClient { net, bootstrap: parsed, donating: Rc::default() }.into())
        })
    }

    /// Donates storage until [`KuraClient::stop_donating`]: holds up to `quota` bytes of
    /// shards for others in this origin's private file system (a worker only) and serves
    /// them through a reservation on one of the relays it connected through, announcing
    /// everything again every `refresh_secs` (within the relays' expiry, which their
    /// `/bootstrap` tells as `tab_ttl_secs`; 0: the default, two minutes). Calls
    /// `on_stats({peer, quota, shards, bytes, served_requests, served_bytes, corrupt,
    /// misses, via, address})` every second. Relays pay for what it holds into `payee` (an
    /// account's 64 hex digits: the tab's wallet; empty: nothing is paid). The Promise
    /// settles when donating stops (`undefined`) or cannot start (an error).
    pub fn donate(&self, quota: f64, refresh_secs: f64, payee: String, on_stats: Function) -> Promise {
        let this = self.clone();
        future_to_promise(async move {
            let payee = match payee.trim() {
                "" => None,
                a => Some(crate::wallet::parse_account(a).map_err(describe)?),
            };
            let shelf = crate::opfs::OpfsShelf::open().await.map_err(|e| js_err(ErrorKind::Internal, e))?;
            let mut cfg =
                crate::donor::DonorConfig { quota: quota.max(0.0) as u64, payee, ..Default::default() };
            if refresh_secs >= 1.0 {
                cfg.refresh = std::time::Duration::from_secs_f64(refresh_secs);
            }
            let donor = crate::donor::Donor::new(this.net.clone(), shelf, this.bootstrap.clone(), cfg);
            let stats = donor.stats();
            let report = async {
                loop {
                    let now = stats.lock().map(|s| s.clone()).unwrap_or_default();
                    let v = serde_json::to_string(&now).unwrap_or_default();
                    let _ = on_stats.call1(&JsValue::NULL, &js_sys::JSON::parse(&v).unwrap_or(JsValue::NULL));
                    futures_timer::Delay::new(std::time::Duration::from_secs(1)).await;
                }
            };
            let (run, stop) = futures::future::abortable(async {
                futures::select! {
                    r = futures::FutureExt::fuse(donor.run()) => r,
                    () = futures::FutureExt::fuse(report) => Ok(()),
                }
            });
            if let Some(old) = this.donating.borrow_mut().replace(stop) {
                old.abort();
            }
            let ended = run.await;
            this.net.stop_serving().await.map_err(describe)?;
            match ended {
                Ok(Err(e)) => Err(describe(e)),
                _ => Ok(JsValue::UNDEFINED),
            }
        })
    }

    /// Stops donating: the reservation is dropped and peers' requests are refused; what is
    /// held stays in the file system for the next time.
    #[wasm_bindgen(js_name = stopDonating)]
    pub fn stop_donating(&self) {
        if let Some(stop) = self.donating.borrow_mut().take() {
            stop.abort();
        }
    }

    /// This client's peer id.
    #[wasm_bindgen(js_name = peerId)]
    pub fn peer_id(&self) -> String {
        self.net.local_peer_id().to_string()
    }

    /// The stripe width an upload on this network takes, and the network's size it rests on
    /// (`transfer::stripe_width`: three lookups for random keys, or the relays counted on a
    /// network found whole): resolves to `{ k, m, relays }`.
    #[wasm_bindgen(js_name = stripeWidth)]
    pub fn stripe_width(&self) -> Promise {
        let net = self.net.clone();
        future_to_promise(async move {
            let (params, relays) = transfer::stripe_width(&net).await.map_err(describe)?;
            let o = Object::new();
            set(&o, "k", params.k() as f64);
            set(&o, "m", params.m() as f64);
            set(&o, "relays", relays);
            Ok(o.into())
        })
    }

    /// Encrypts, erasure-codes and uploads `blob`, reading it one chunk at a time; resolves
    /// to the capability text. `k` + `m` relays must be reachable. Unpaid: within the
    /// relays' free allowance.
    #[allow(clippy::too_many_arguments)]
    pub fn put(
        &self,
        blob: web_sys::Blob,
        name: String,
        media_type: String,
        private: bool,
        k: usize,
        m: usize,
        on_progress: Option<Function>,
    ) -> Promise {
        let net = self.net.clone();
        future_to_promise(async move {
            let cap =
                put_blob(&net, blob, FileMeta { name, media_type }, private, k, m, on_progress, None).await?;
            Ok(JsValue::from_str(&cap.to_string()))
        })
    }

    /// [`put`](Self::put), paid from the wallet of `seed` (32 bytes, used here and not
    /// kept): a batch for the file for `epochs` epochs of `epoch_secs` seconds at `price`
    /// (credits per GiB of shard bytes per epoch, the relays' `/status` says both) is bought
    /// first, then every stripe is stamped with it. Resolves to `{ cap, cost, batch,
    /// paidUntil }` (cost a decimal string; paidUntil in Unix seconds). A wallet that cannot
    /// cover the batch is refused before anything is sent.
    #[wasm_bindgen(js_name = putPaid)]
    #[allow(clippy::too_many_arguments)]
    pub fn put_paid(
        &self,
        blob: web_sys::Blob,
        name: String,
        media_type: String,
        private: bool,
        k: usize,
        m: usize,
        on_progress: Option<Function>,
        seed: Vec<u8>,
        epochs: u32,
        price: f64,
        epoch_secs: u32,
    ) -> Promise {
        let net = self.net.clone();
        future_to_promise(async move {
            let params = Params::new(k, m).map_err(|e| js_err(ErrorKind::BadRequest, e))?;
            let (terms, prices) = pay_terms(blob.size() as u64, params, epochs, price, epoch_secs);
            let (purse, _) =
                crate::wallet::Purse::buy(&net, seed_key(&seed)?, terms, &prices).await.map_err(describe)?;
            let purse = std::sync::Arc::new(purse);
            let meta = FileMeta { name, media_type };
            let cap = put_blob(&net, blob, meta, private, k, m, on_progress, Some(purse.clone())).await?;
            Ok(paid(Some(&cap), purse.cost(), &purse, epoch_secs).into())
        })
    }

    /// Pays again for the file behind `cap` (same link) from the wallet of `seed`, for
    /// `epochs` more epochs: every stripe is read back and stored under a new batch.
    /// Resolves to `{ cost, batch, paidUntil }`.
    pub fn renew(&self, cap: String, seed: Vec<u8>, epochs: u32, price: f64, epoch_secs: u32) -> Promise {
        let net = self.net.clone();
        future_to_promise(async move {
            let cap = Capability::parse(&cap).map_err(describe)?;
            let owner = seed_key(&seed)?;
            let mut cfg = TransferConfig::default();
            let progress = Progress::default();
            transfer::renew(&net, cap, &mut cfg, &progress, |len, root| {
                let net = &net;
                async move {
                    let (terms, prices) = pay_terms(len, root.params(), epochs, price, epoch_secs);
                    let (purse, _) = crate::wallet::Purse::buy(net, owner, terms, &prices)
                        .await
                        .map_err(|e| transfer::TransferError::Payment(e.to_string()))?;
                    Ok(std::sync::Arc::new(purse))
                }
            })
            .await
            .map_err(describe)?;
            let purse = cfg.purse.ok_or_else(|| js_err(ErrorKind::Internal, "no batch was bought"))?;
            Ok(paid(None, purse.cost(), &purse, epoch_secs).into())
        })
    }

    /// Resolves to `{ name, size, type }` of the file behind `cap` (reads its data map only).
    pub fn open(&self, cap: String) -> Promise {
        let net = self.net.clone();
        future_to_promise(async move {
            let cap = Capability::parse(&cap).map_err(describe)?;
            let progress = Progress::default();
            let map =
                transfer::get(&net, cap, Some((0, 0)), &TransferConfig::default(), &progress, |_| Ok(()))
                    .await
                    .map_err(describe)?;
            let o = Object::new();
            set(&o, "name", map.meta.name.as_str());
            set(&o, "type", map.meta.media_type.as_str());
            set(&o, "size", map.size as f64);
            Ok(o.into())
        })
    }

    /// Proves, by challenge, how many shards of each stripe of the file behind `cap` the
    /// network holds now (downloads the data map, headers and proofs only), and reports the
    /// claims that could not be proven to the stripes' other holders. Resolves to
    /// `{ stripes, notWhole, weakest: { stripe, proven, n, k } | null, proofBytes, unproven,
    /// reported }`.
    pub fn check(&self, cap: String) -> Promise {
        let net = self.net.clone();
        future_to_promise(async move {
            let cap = Capability::parse(&cap).map_err(describe)?;
            let health =
                crate::check::check(&net, cap, &TransferConfig::default()).await.map_err(describe)?;
            let o = Object::new();
            set(&o, "stripes", health.stripes.len() as f64);
            set(&o, "notWhole", health.stripes.iter().filter(|s| s.proven < s.n).count() as f64);
            set(&o, "proofBytes", health.proof_bytes as f64);
            set(&o, "unproven", health.unproven as f64);
            set(&o, "reported", health.reported as f64);
            let weakest = match health.weakest() {
                Some(w) => {
                    let wo = Object::new();
                    set(&wo, "stripe", w.stripe.to_string());
                    set(&wo, "proven", w.proven as f64);
                    set(&wo, "n", w.n as f64);
                    set(&wo, "k", w.k as f64);
                    JsValue::from(wo)
                }
                None => JsValue::NULL,
            };
            set(&o, "weakest", weakest);
            Ok(o.into())
        })
    }

    /// Resolves to what `account` (64 hex digits) can spend, as its group's replicas agree,
    /// in the smallest unit, as a decimal string (amounts are 64-bit).
    pub fn balance(&self, account: String) -> Promise {
        let net = self.net.clone();
        future_to_promise(async move {
            let account = crate::wallet::parse_account(&account).map_err(describe)?;
            let view = crate::wallet::view(&net, &account).await.map_err(describe)?;
            Ok(JsValue::from_str(&view.spendable().to_string()))
        })
    }

    /// Resolves to `{ listed, fresh }`: the ids (64 hex digits) of every unspent credit of
    /// `account` its replicas agree on, and for those not in `known`, `{ id, amount (a decimal
    /// string), reward }`, `reward` true when the transfer that made it is a relay's payment
    /// to a donating tab (its memo, bound to the id). What a page counts as "earned by this
    /// tab": it remembers the ids it has counted, and forgets those no longer listed (spent).
    pub fn credits(&self, account: String, known: Vec<String>) -> Promise {
        let net = self.net.clone();
        future_to_promise(async move {
            let account = crate::wallet::parse_account(&account).map_err(describe)?;
            let known: std::collections::HashSet<String> = known.into_iter().collect();
            let (listed, fresh) =
                crate::wallet::credits(&net, &account, |id| known.contains(&crate::wallet::hex(id)))
                    .await
                    .map_err(describe)?;
            let ids = js_sys::Array::new();
            for id in &listed {
                ids.push(&JsValue::from_str(&crate::wallet::hex(id)));
            }
            let news = js_sys::Array::new();
            for c in fresh {
                let o = Object::new();
                set(&o, "id", crate::wallet::hex(&c.id));
                set(&o, "amount", c.amount.to_string());
                let reward = c.transfer.is_some_and(|t| kura_core::donation::is_tab_reward(&t.memo));
                set(&o, "reward", reward);
                news.push(&o);
            }
            let o = Object::new();
            set(&o, "listed", ids);
            set(&o, "fresh", news);
            Ok(o.into())
        })
    }

    /// Sends `amount` (a decimal string, the smallest unit) from the wallet of `seed` (32
    /// bytes) to `to` (64 hex digits); resolves to the certificate's id (64 hex digits). The
    /// seed signs here, in this tab, and is not kept.
    pub fn send(&self, seed: Vec<u8>, to: String, amount: String, memo: String) -> Promise {
        let net = self.net.clone();
        future_to_promise(async move {
            let owner = seed_key(&seed)?;
            let to = crate::wallet::parse_account(&to).map_err(describe)?;
            let amount: u64 = amount
                .trim()
                .parse()
                .map_err(|_| js_err(ErrorKind::BadRequest, format!("{amount:?} is not a whole amount")))?;
            let cert =
                crate::wallet::send(&net, &owner, to, amount, memo.into_bytes()).await.map_err(describe)?;
            Ok(JsValue::from_str(&crate::wallet::hex(&cert.signed.transfer.id())))
        })
    }

    /// Streams `length` bytes from `offset` of the file behind `cap` to `on_data(Uint8Array)`
    /// in order; resolves when done.
    pub fn read(
        &self,
        cap: String,
        offset: f64,
        length: f64,
        on_data: Function,
        on_progress: Option<Function>,
    ) -> Promise {
        let net = self.net.clone();
        future_to_promise(async move {
            let cap = Capability::parse(&cap).map_err(describe)?;
            let progress = Rc::new(Progress::default());
            let cfg = TransferConfig::default();
            let out = |pt: &[u8]| {
                on_data.call1(&JsValue::NULL, &Uint8Array::from(pt)).map(drop).map_err(|e| format!("{e:?}"))
            };
            let work = transfer::get(&net, cap, Some((offset as u64, length as u64)), &cfg, &progress, out);
            alongside(work, report(on_progress, "downloading", length, progress.clone()))
                .await
                .map_err(describe)?;
            Ok(JsValue::UNDEFINED)
        })
    }
}

/// Runs `work` with `side` (a progress reporter) beside it; `side` ending early is fine.
async fn alongside<T>(
    work: impl std::future::Future<Output = T>,
    side: impl std::future::Future<Output = ()>,
) -> T {
    futures::pin_mut!(work, side);
    match futures::future::select(work, side).await {
        futures::future::Either::Left((t, _)) => t,
        futures::future::Either::Right(((), work)) => work.await,
    }
}

/// Uploads `blob` as a file (one chunk read at a time), paid by `purse` if given.
#[allow(clippy::too_many_arguments)]
async fn put_blob(
    net: &Network,
    blob: web_sys::Blob,
    meta: FileMeta,
    private: bool,
    k: usize,
    m: usize,
    on_progress: Option<Function>,
    purse: Option<std::sync::Arc<crate::wallet::Purse>>,
) -> Result<Capability, JsValue> {
    let params = Params::new(k, m).map_err(|e| js_err(ErrorKind::BadRequest, e))?;
    let secret = if private {
        let mut s = [0u8; 32];
        getrandom::fill(&mut s).map_err(|e| js_err(ErrorKind::Internal, e))?;
        Secret::private(s)
    } else {
        Secret::public()
    };
    let enc = Encoder::new(EncodeOptions { params, secret, ..EncodeOptions::default() }).map_err(describe)?;
    let cfg = TransferConfig { purse, ..TransferConfig::default() };
    let progress = Rc::new(Progress::default());
    let size = blob.size();
    let input = BlobInput { blob, offset: 0.0 };
    let work = transfer::put(net, &cfg, &progress, |stripes| {
        transfer::encode_into(enc, input, meta, &progress, stripes)
    });
    alongside(work, report(on_progress, "uploading", size, progress.clone())).await.map_err(describe)
}

/// The batch terms for a file of `len` bytes encoded with `params`, from this epoch for
/// `epochs`, and the prices they are bought at.
fn pay_terms(
    len: u64,
    params: Params,
    epochs: u32,
    price: f64,
    epoch_secs: u32,
) -> (kura_core::farming::BatchTerms, kura_core::farming::Prices) {
    let now = (js_sys::Date::now() / 1000.0) as u64;
    let first = kura_core::farming::epoch_of(now, u64::from(epoch_secs.max(1)));
    let terms =
        kura_core::farming::terms_for(len, kura_core::CHUNK_SIZE, params, first, u64::from(epochs.max(1)));
    let prices =
        kura_core::farming::Prices { price: price.max(0.0) as u64, ..kura_core::farming::DEFAULT_PRICES };
    (terms, prices)
}

/// `{ cap?, cost, batch, paidUntil }` of a paid upload or renewal.
fn paid(cap: Option<&Capability>, cost: u64, purse: &crate::wallet::Purse, epoch_secs: u32) -> Object {
    let o = Object::new();
    if let Some(cap) = cap {
        set(&o, "cap", cap.to_string());
    }
    set(&o, "cost", cost.to_string());
    set(&o, "batch", crate::wallet::hex(&purse.batch()));
    set(&o, "paidUntil", (purse.terms().end_epoch() * u64::from(epoch_secs)) as f64);
    o
}

/// What storing `size` bytes with `k` + `m` costs for `epochs` epochs of `epoch_secs`
/// seconds at `price` credits per GiB of shard bytes per epoch, from now: `{ cost,
/// shardBytes, paidUntil }` (cost a decimal string, shardBytes what the batch pays for,
/// paidUntil in Unix seconds). What `putPaid` will charge, computed before anything is sent.
#[wasm_bindgen(js_name = uploadCost)]
pub fn upload_cost(
    size: f64,
    k: usize,
    m: usize,
    epochs: u32,
    price: f64,
    epoch_secs: u32,
) -> Result<Object, JsValue> {
    let params = Params::new(k, m).map_err(|e| js_err(ErrorKind::BadRequest, e))?;
    let (terms, prices) = pay_terms(size.max(0.0) as u64, params, epochs, price, epoch_secs);
    let o = Object::new();
    set(&o, "cost", prices.cost(&terms).to_string());
    set(&o, "shardBytes", (u64::from(terms.slots) * terms.slot_bytes) as f64);
    set(&o, "paidUntil", (terms.end_epoch() * u64::from(epoch_secs)) as f64);
    Ok(o)
}
