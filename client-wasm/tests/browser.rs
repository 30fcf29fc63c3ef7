//! The browser client's JavaScript API, in headless Chromium, against a real local network
//! that `scripts/test.sh` starts (`kura devnet`) and names at build time:
//! `KURA_TEST_BOOTSTRAP` = the relay's addresses, comma-separated. Without it (a plain
//! `cargo test` for wasm32) the tests fail and say why.
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use js_sys::{Array, Function, Promise, Reflect, Uint8Array};
use kura_client::web::KuraClient;
use kura_core::testdata::pseudo_random;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn bootstrap(filter: &str) -> Vec<String> {
    let Some(all) = option_env!("KURA_TEST_BOOTSTRAP") else {
        panic!("KURA_TEST_BOOTSTRAP is not set: run these tests through scripts/test.sh");
    };
    let v: Vec<String> = all.split(',').filter(|a| a.contains(filter)).map(str::to_owned).collect();
    assert!(!v.is_empty(), "no {filter} address in {all}");
    v
}

async fn connect(filter: &str) -> KuraClient {
    let c = JsFuture::from(KuraClient::connect(bootstrap(filter))).await.unwrap();
    // The promise resolves to the exported class's JS object; hand it back to Rust.
    as_client(c)
}

#[wasm_bindgen(inline_js = "export function as_client(x) { return x; }")]
extern "C" {
    fn as_client(v: JsValue) -> KuraClient;
}

fn blob(bytes: &[u8]) -> web_sys::Blob {
    let parts = Array::of1(&Uint8Array::from(bytes));
    web_sys::Blob::new_with_u8_array_sequence(&parts).unwrap()
}

async fn read(c: &KuraClient, cap: &str, off: u64, len: u64) -> Vec<u8> {
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let cb = Closure::<dyn FnMut(Uint8Array)>::new(move |b: Uint8Array| g.borrow_mut().extend(b.to_vec()));
    let f: &Function = cb.as_ref().unchecked_ref();
    JsFuture::from(c.read(cap.into(), off as f64, len as f64, f.clone(), None)).await.unwrap();
    let v = got.borrow().clone();
    v
}

/// A rejection's `kind`, `message` and `details`.
async fn error_of(p: Promise) -> (String, String, JsValue) {
    let e = JsFuture::from(p).await.expect_err("the promise must reject");
    let field = |k: &str| Reflect::get(&e, &k.into()).unwrap();
    (field("kind").as_string().unwrap(), field("message").as_string().unwrap(), field("details"))
}

fn number(details: &JsValue, k: &str) -> Option<f64> {
    Reflect::get(details, &k.into()).unwrap().as_f64()
}

async fn put(c: &KuraClient, data: &[u8], name: &str, ty: &str, progress: Option<Function>) -> String {
    match JsFuture::from(c.put(blob(data), name.into(), ty.into(), false, 4, 2, progress)).await {
        Ok(cap) => cap.as_string().unwrap(),
        Err(e) => panic!("put of {name} failed: {:?}", Reflect::get(&e, &"message".into()).unwrap()),
    }
}

/// WebRTC-direct, as a page given only WebRTC-direct addresses uses it (for every relay,
/// not only the bootstrap one): uploads of any size, and reads, which take shards in
/// `FetchPart` pieces (a browser WebRTC stream buffers one 16 KiB message, see
/// `Network::small_answers`).
#[wasm_bindgen_test]
async fn webrtc_direct_puts_and_reads_back_small_and_large_files() {
    let rtc = connect("/webrtc-direct").await;
    let small = pseudo_random(20_000, 5);
    let cap = put(&rtc, &small, "note.txt", "text/plain", None).await;
    assert!(read(&rtc, &cap, 0, small.len() as u64).await == small, "small file over WebRTC-direct");
    let big = pseudo_random(3 * (1 << 20) + 11, 77);
    let cap_big = put(&rtc, &big, "song.ogg", "audio/ogg", None).await;
    assert!(
        read(&rtc, &cap_big, 0, big.len() as u64).await == big,
        "3 MiB file read back over WebRTC-direct"
    );
    let (off, len) = (1_500_000u64, 700_000u64);
    assert!(
        read(&rtc, &cap_big, off, len).await == big[off as usize..(off + len) as usize],
        "a range over WebRTC-direct"
    );
    // And over WebSocket, from another client.
    let ws = connect("/ws").await;
    assert!(
        read(&ws, &cap_big, 0, big.len() as u64).await == big,
        "uploaded over WebRTC, read over WebSocket"
    );
}

/// WebSocket: put with progress, open, read whole and by ranges.
#[wasm_bindgen_test]
async fn websocket_put_open_read_whole_and_ranges() {
    let data = pseudo_random(3 * (1 << 20) + 11, 78);
    let ws = connect("/ws").await;
    let progress_calls = Rc::new(RefCell::new(0u32));
    let pc = progress_calls.clone();
    let cb = Closure::<dyn FnMut(JsValue)>::new(move |p: JsValue| {
        assert_eq!(Reflect::get(&p, &"phase".into()).unwrap().as_string().unwrap(), "uploading");
        *pc.borrow_mut() += 1;
    });
    let cap =
        put(&ws, &data, "song.ogg", "audio/ogg", Some(cb.as_ref().unchecked_ref::<Function>().clone())).await;
    assert!(cap.starts_with("kura1"));
    let info = JsFuture::from(ws.open(cap.clone())).await.unwrap();
    assert_eq!(Reflect::get(&info, &"name".into()).unwrap().as_string().unwrap(), "song.ogg");
    assert_eq!(Reflect::get(&info, &"type".into()).unwrap().as_string().unwrap(), "audio/ogg");
    assert_eq!(Reflect::get(&info, &"size".into()).unwrap().as_f64().unwrap() as usize, data.len());
    assert!(read(&ws, &cap, 0, data.len() as u64).await == data, "whole file over WebSocket");
    for (off, len) in
        [(0u64, 1u64), ((1 << 20) - 2, 5), (2 * (1 << 20) + 3, 1 << 20), (data.len() as u64 - 4, 100)]
    {
        let end = (off + len).min(data.len() as u64) as usize;
        assert!(read(&ws, &cap, off, len).await == data[off as usize..end], "range {off}+{len}");
    }
}

#[wasm_bindgen_test]
async fn errors_reach_javascript_with_their_kind() {
    let ws = connect("/ws").await;
    let (kind, msg, _) = error_of(ws.open("kura1notalink".into())).await;
    assert_eq!(kind, "damaged-link", "{msg}");
    let (kind, msg, details) = error_of(ws.put(blob(b"x"), "x".into(), "".into(), false, 6, 3, None)).await;
    assert_eq!(kind, "too-few-relays", "{msg}");
    assert_eq!((number(&details, "found"), number(&details, "needed")), (Some(6.0), Some(9.0)), "{msg}");
    let (kind, msg, _) = error_of(KuraClient::connect(vec!["not an address".into()])).await;
    assert_eq!(kind, "unreachable", "{msg}");
    assert!(msg.contains("bad address"), "{msg}");
}
