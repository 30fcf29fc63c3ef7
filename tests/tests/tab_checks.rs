//! Relays spot-check donating tabs: a real `kura-relay` holds a stripe, and three peers that
//! play tabs announce shards of it through the client library — an honest one that serves its
//! shard, a liar that serves other bytes under the stripe's header, and one that answers every
//! request busy. The relay fetches an announced shard from each on the connection the
//! announcement came by, at most once per tab per interval, and believes what verifies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::StreamExt;
use kura_client::net::{Inbound, NetConfig, Network};
use kura_core::encoder::encode_single_chunk;
use kura_core::wire::{ErrorCode, Request, Response};
use kura_core::{EncodeOptions, Params, Stripe};
use kura_tests::relay::{wait_for, RelayProc};
use kura_tests::Scratch;
use libp2p_identity::PeerId;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Tab {
    Honest,
    Liar,
    Busy,
}

/// What a playing tab shares with the test.
#[derive(Default)]
struct Seen {
    /// The relay's answers to its announcements.
    answers: Mutex<Vec<Response>>,
    /// Set once it announces no more.
    stopped: AtomicBool,
}

/// A peer that announces shard `index` of `stripe` to the relay every 200 ms and answers what
/// it is asked as `kind` does. The busy tab stops announcing before it answers its third
/// request, so that nothing it sends can follow the relay's third unanswered check.
async fn play(kind: Tab, net: Network, relay: PeerId, stripe: Stripe, index: u8, seen: Arc<Seen>) {
    let mut inbound = net.serve().await.unwrap();
    let answering = net.clone();
    let (s, state) = (stripe.clone(), seen.clone());
    tokio::spawn(async move {
        let mut asked = 0;
        while let Some(Inbound::Request { id, request, .. }) = inbound.next().await {
            asked += 1;
            let answer = match (kind, request) {
                (Tab::Busy, _) => {
                    if asked >= 3 {
                        state.stopped.store(true, Ordering::SeqCst);
                        // The announcing loop sees it within one round.
                        tokio::time::sleep(Duration::from_millis(600)).await;
                    }
                    Response::Error { code: ErrorCode::Busy, detail: "busy".into() }
                }
                (_, Request::Fetch { stripe }) if stripe == s.id() => {
                    let mut shard = s.shard(usize::from(index)).to_vec();
                    if kind == Tab::Liar {
                        shard[7] ^= 0x40;
                    }
                    Response::Shards { header: s.header_bytes().to_vec(), shards: vec![shard.into()] }
                }
                _ => Response::Error { code: ErrorCode::NotFound, detail: "not here".into() },
            };
            answering.respond(id, answer).await.unwrap();
        }
    });
    let req = Request::Announce { via: relay.to_bytes(), shards: vec![(stripe.id(), index)], payee: None };
    while !seen.stopped.load(Ordering::SeqCst) {
        let answer = net.request(relay, req.clone()).await.unwrap();
        seen.answers.lock().unwrap().push(answer);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn holders(r: &RelayProc, stripe: &Stripe) -> Vec<(String, u8)> {
    // Holders over the relay's storage protocol, from a fresh client each time.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let addrs = kura_client::bootstrap::resolve(&[r.addr("/tcp/").unwrap()]).await.unwrap();
        let c = Network::connect(&addrs, NetConfig::default()).await.unwrap();
        let id: PeerId = r.peer_id.parse().unwrap();
        match c.request(id, Request::Holders { stripe: stripe.id() }).await.unwrap() {
            Response::Holders { holders } => holders
                .into_iter()
                .map(|h| (PeerId::from_bytes(&h.tab).unwrap().to_string(), h.index))
                .collect(),
            other => panic!("holders: {other:?}"),
        }
    })
}

fn checks(r: &RelayProc, outcome: &str) -> f64 {
    r.metric(&format!("kura_tab_checks_total{{kind=\"{outcome}\"}}")).unwrap_or(0.0)
}

/// The honest tab is checked about once a second (the relay's `--tab-check 1`) and stays a
/// holder; the liar is caught at its first check, loses its announcement and is not heard
/// again; the busy tab loses its announcement after three unanswered checks running. The
/// relay keeps serving its own shard all along.
#[test]
fn relays_believe_only_tabs_whose_shards_verify() {
    let dir = Scratch::new("tab-checks").unwrap();
    let r = RelayProc::spawn(&dir.path().join("r0"), &["--tab-check", "1"]).unwrap();
    let opts = EncodeOptions { params: Params::new(4, 2).unwrap(), ..EncodeOptions::default() };
    let stripe: Stripe = encode_single_chunk(&opts, &kura_tests::pseudo_random(200_000, 5)).unwrap().0;
    let relay: PeerId = r.peer_id.parse().unwrap();
    let addr = r.addr("/tcp/").unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let start = Instant::now();
    let mut tabs = Vec::new();
    rt.block_on(async {
        let addrs = kura_client::bootstrap::resolve(std::slice::from_ref(&addr)).await.unwrap();
        let owner = Network::connect(&addrs, NetConfig::default()).await.unwrap();
        let stored = owner
            .request(
                relay,
                Request::Store { header: stripe.header_bytes().to_vec(), shard: stripe.shard(0).to_vec() },
            )
            .await
            .unwrap();
        assert_eq!(stored, Response::Stored { index: 0 });
        for (kind, index) in [(Tab::Honest, 1), (Tab::Liar, 2), (Tab::Busy, 3)] {
            let net = Network::connect(&addrs, NetConfig::default()).await.unwrap();
            let peer = net.local_peer_id().to_string();
            let seen = Arc::new(Seen::default());
            rt.spawn(play(kind, net, relay, stripe.clone(), index, seen.clone()));
            tabs.push((kind, peer, seen));
        }
    });
    let peer = |k: Tab| tabs.iter().find(|t| t.0 == k).unwrap().1.clone();

    // The liar is caught at its first check and named no more.
    wait_for(Duration::from_secs(30), "the liar to be caught", || (checks(&r, "wrong") >= 1.0).then_some(()))
        .unwrap();
    let liar = tabs.iter().find(|t| t.0 == Tab::Liar).unwrap();
    let announced = liar.2.answers.lock().unwrap().len();
    wait_for(Duration::from_secs(10), "the liar to announce again", || {
        (liar.2.answers.lock().unwrap().len() >= announced + 3).then_some(())
    })
    .unwrap();
    // Refused: what the relay kept of its last announcement is nothing.
    let last = liar.2.answers.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last, Response::Held { held: vec![] }, "a caught tab is not heard");

    // The busy tab: three unanswered checks running and its announcement is dropped. It
    // announces no more by then, so only the check can have dropped it (announcements stand
    // ten minutes here).
    wait_for(Duration::from_secs(30), "three checks of the busy tab", || {
        (checks(&r, "unreachable") >= 3.0).then_some(())
    })
    .unwrap();
    let honest = peer(Tab::Honest);
    wait_for(Duration::from_secs(30), "the busy tab to be forgotten", || {
        let h = holders(&r, &stripe);
        (!h.iter().any(|(p, _)| *p == peer(Tab::Busy))).then_some(h)
    })
    .map(|h| {
        assert!(!h.iter().any(|(p, _)| *p == peer(Tab::Liar)), "the liar is no holder: {h:?}");
        assert!(h.contains(&(honest.clone(), 1)), "the honest tab is a holder: {h:?}");
    })
    .unwrap();

    // The honest tab: checked again and again, every check verified, at most one a second.
    wait_for(Duration::from_secs(30), "three checks of the honest tab", || {
        (checks(&r, "verified") >= 3.0).then_some(())
    })
    .unwrap();
    let verified = checks(&r, "verified");
    let elapsed = start.elapsed().as_secs_f64();
    assert!(verified <= elapsed + 2.0, "{verified} checks in {elapsed:.1} s: more than one a second");
    assert_eq!(checks(&r, "wrong"), 1.0, "the liar was fetched from once");
    let fetched = r.metric("kura_tab_check_bytes_total").unwrap();
    let shard = stripe.shard(1).len() as f64;
    assert!(fetched >= shard * 4.0, "{fetched} bytes fetched by checks");
    let h = holders(&r, &stripe);
    assert!(h.contains(&(honest, 1)), "{h:?}");
    eprintln!("after {elapsed:.1} s: {verified} checks verified, {fetched} bytes fetched; holders {h:?}");

    // The relay still serves its own shard.
    rt.block_on(async {
        let addrs = kura_client::bootstrap::resolve(&[addr]).await.unwrap();
        let c = Network::connect(&addrs, NetConfig::default()).await.unwrap();
        let got = c.request(relay, Request::Fetch { stripe: stripe.id() }).await.unwrap();
        assert!(
            matches!(&got, Response::Shards { shards, .. } if shards[0].as_ref() == stripe.shard(0)),
            "{got:?}"
        );
    });
    drop(tabs);
    rt.shutdown_timeout(Duration::from_secs(1));
}

/// A tab that serves its shard of `stripe` (index `index`) through a reservation on `relay`
/// and announces it there every 200 ms: truly to the relay, and, when `sly`, with one byte
/// changed to everyone else (a tab that knows who checks it). Returns how many false
/// answers it gave.
async fn serve_through(
    net: Network,
    relay: PeerId,
    relay_addr: String,
    stripe: Stripe,
    index: u8,
    sly: bool,
) -> Arc<std::sync::atomic::AtomicU64> {
    let lies = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut inbound = net.serve().await.unwrap();
    let at = kura_client::bootstrap::resolve(&[relay_addr]).await.unwrap();
    net.reserve(at[0].clone()).await.unwrap();
    let answering = net.clone();
    let told = lies.clone();
    let s = stripe.clone();
    tokio::spawn(async move {
        while let Some(Inbound::Request { id, peer, request }) = inbound.next().await {
            let answer = match request {
                Request::Fetch { stripe } if stripe == s.id() => {
                    let mut shard = s.shard(usize::from(index)).to_vec();
                    if sly && peer != relay {
                        shard[7] ^= 0x40;
                        told.fetch_add(1, Ordering::SeqCst);
                    }
                    Response::Shards { header: s.header_bytes().to_vec(), shards: vec![shard.into()] }
                }
                _ => Response::Error { code: ErrorCode::NotFound, detail: "not here".into() },
            };
            let _ = answering.respond(id, answer).await;
        }
    });
    let req = Request::Announce { via: relay.to_bytes(), shards: vec![(stripe.id(), index)], payee: None };
    tokio::spawn(async move {
        loop {
            let _ = net.request(relay, req.clone()).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    lies
}

/// A reader whose stripe's close group is short turns to the tabs the relay names. One of
/// them passes the relay's checks but serves readers other bytes: the reader checks every
/// tab's shard against its address, skips that tab, reads the stripe from the relay and the
/// honest tabs, and gets the true ciphertext.
#[test]
fn a_tab_lying_to_readers_is_caught_by_their_verification() {
    let dir = Scratch::new("tab-sly").unwrap();
    let r = RelayProc::spawn(&dir.path().join("r0"), &["--tab-check", "1"]).unwrap();
    let opts = EncodeOptions { params: Params::new(4, 2).unwrap(), ..EncodeOptions::default() };
    let stripe: Stripe = encode_single_chunk(&opts, &kura_tests::pseudo_random(200_000, 6)).unwrap().0;
    let relay: PeerId = r.peer_id.parse().unwrap();
    let addr = r.addr("/tcp/").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let lies = rt.block_on(async {
        let addrs = kura_client::bootstrap::resolve(std::slice::from_ref(&addr)).await.unwrap();
        let owner = Network::connect(&addrs, NetConfig::default()).await.unwrap();
        let req = Request::Store { header: stripe.header_bytes().to_vec(), shard: stripe.shard(0).to_vec() };
        assert_eq!(owner.request(relay, req).await.unwrap(), Response::Stored { index: 0 });
        // The sly tab holds data shard 1; honest tabs hold 2, 3 and the parity shard 4.
        let mut lies = None;
        for (index, sly) in [(1u8, true), (2, false), (3, false), (4, false)] {
            let net = Network::connect(&addrs, NetConfig::default()).await.unwrap();
            let told = serve_through(net, relay, addr.clone(), stripe.clone(), index, sly).await;
            if sly {
                lies = Some(told);
            }
        }
        lies.unwrap()
    });
    // Every tab announced, and the relay's first check of each verified (the sly one too).
    wait_for(Duration::from_secs(30), "the relay to name four tabs, each checked", || {
        (holders(&r, &stripe).len() == 4 && checks(&r, "verified") >= 4.0).then_some(())
    })
    .unwrap();
    assert_eq!(checks(&r, "wrong"), 0.0, "the sly tab tells the relay the truth");

    let got = rt.block_on(async {
        let addrs = kura_client::bootstrap::resolve(std::slice::from_ref(&addr)).await.unwrap();
        let reader = Network::connect(&addrs, NetConfig::default()).await.unwrap();
        let progress = kura_client::transfer::Progress::default();
        let cfg = kura_client::transfer::TransferConfig::default();
        kura_client::transfer::fetch_stripe(&reader, stripe.id(), &cfg, &progress)
            .await
            .map(|asm| (asm, progress.from_tabs.load(Ordering::SeqCst)))
    });
    let (asm, from_tabs) = got.expect("the stripe is read from the relay and the honest tabs");
    assert!(lies.load(Ordering::SeqCst) >= 1, "the reader asked the sly tab");
    let mut want = kura_core::stripe::StripeAssembler::new(stripe.id(), stripe.header_bytes()).unwrap();
    for i in 0..4 {
        want.add_shard(stripe.shard(i).to_vec()).unwrap();
    }
    assert_eq!(asm.ciphertext().unwrap(), want.ciphertext().unwrap(), "the true ciphertext");
    let shard = stripe.shard(2).len() as u64;
    assert_eq!(from_tabs, 3 * shard, "three honest tabs' shards; the false one not counted");
    eprintln!(
        "the sly tab lied {} times; the read took {from_tabs} bytes from tabs",
        lies.load(Ordering::SeqCst)
    );
    rt.shutdown_timeout(Duration::from_secs(1));
}
