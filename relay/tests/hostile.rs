//! End-to-end tests that play the attacker against a real `kura-relay` process: stalled
//! storage streams, idle sockets on the libp2p and HTTP ports, slow HTTP headers, and a
//! relay run out of file descriptors. Every connection is on loopback; an "attacker IP" is
//! another address of 127.0.0.0/8, which Linux routes to `lo`, bound as the source address
//! before connecting.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kura_core::encoder::encode_single_chunk;
use kura_core::stripe::MAX_SHARD_LEN;
use kura_core::wire::{push_varint, ErrorCode, Request, Response, MAX_FRAME_BODY};
use kura_core::{EncodeOptions, Params, Stripe};
use kura_p2p::client::StoreClient;
use kura_tests::relay::{http_get, wait_for, RelayProc};
use kura_tests::{pseudo_random, Scratch};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// The relay binary cargo built for these tests.
const RELAY: &str = env!("CARGO_BIN_EXE_kura-relay");

const MIB: f64 = (1 << 20) as f64;

fn spawn(dir: &Path, extra: &[&str]) -> RelayProc {
    RelayProc::spawn_bin(Path::new(RELAY), dir, extra).unwrap()
}

fn stripe(len: usize, seed: u64) -> Stripe {
    let opts = EncodeOptions { params: Params::new(4, 2).unwrap(), ..EncodeOptions::default() };
    encode_single_chunk(&opts, &pseudo_random(len, seed)).unwrap().0
}

/// An honest client over TCP (from 127.0.0.1).
async fn client(relay: &RelayProc) -> StoreClient {
    StoreClient::connect(relay.addr("/tcp/").unwrap().parse().unwrap()).await.unwrap()
}

/// Stores shard 0 of `s` (a relay keeps one index of a stripe) and returns its answer.
async fn store0(c: &StoreClient, s: &Stripe) -> Response {
    let req = Request::Store { header: s.header_bytes().to_vec(), shard: s.shard(0).to_vec() };
    c.request(req).await.unwrap()
}

/// Whether `r` is exactly shard 0 of `s` with its header.
fn is_shard0(r: &Response, s: &Stripe) -> bool {
    matches!(r, Response::Shards { header, shards }
        if header.as_slice() == s.header_bytes() && shards.len() == 1 && shards[0].as_ref() == s.shard(0))
}

/// Stores shard 0 of `s` and fetches it back, checking both answers.
async fn store_and_fetch(c: &StoreClient, s: &Stripe) {
    assert_eq!(store0(c, s).await, Response::Stored { index: 0 });
    let got = c.request(Request::Fetch { stripe: s.id() }).await.unwrap();
    assert!(is_shard0(&got, s), "fetch of {}: {got:?}", s.id());
}

/// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmData`, …).
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// The process's open file descriptors: (all, sockets).
fn fds(pid: u32) -> (usize, usize) {
    let (mut all, mut sockets) = (0, 0);
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().flatten() {
        all += 1;
        if std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:")) {
            sockets += 1;
        }
    }
    (all, sockets)
}

/// `127.0.0.N`.
fn lo(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, n)
}

/// A TCP connection from `src` (any port) to `to`, as a non-blocking std socket. Fails after
/// 3 s if the handshake does not complete (a full listen backlog).
async fn connect_from(src: Ipv4Addr, to: SocketAddr) -> io::Result<TcpStream> {
    let s = tokio::net::TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(src.into(), 0))?;
    let s = tokio::time::timeout(Duration::from_secs(3), s.connect(to))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    s.into_std()
}

/// A connection the test holds open; `closed` once the other side closed or reset it.
struct Idle {
    s: TcpStream,
    closed: bool,
}

impl Idle {
    fn new(s: TcpStream) -> Self {
        s.set_nonblocking(true).unwrap();
        Self { s, closed: false }
    }

    /// Whether the relay has closed (or reset) the connection: a read sees the end of the
    /// stream or an error. Whatever the relay sent before is read and dropped.
    fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        while !self.closed {
            match self.s.read(&mut buf) {
                Ok(0) => self.closed = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.closed = true,
            }
        }
        self.closed
    }
}

fn count_closed(conns: &mut [Idle]) -> usize {
    conns.iter_mut().map(Idle::is_closed).filter(|&c| c).count()
}

/// Opens `n` connections from `src` to `to`, holding them open without sending anything.
async fn idle_from(src: Ipv4Addr, to: SocketAddr, n: usize) -> Vec<Idle> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(Idle::new(connect_from(src, to).await.unwrap()));
    }
    out
}

/// Waits (up to 10 s, without failing) until the relay has dealt with each of `conns`
/// opened since it held `sockets_before` sockets: taken in (its socket count went up by
/// one) or closed. A relay that neither accepts nor closes a connection leaves it in the
/// listen backlog; then this just gives up.
fn settle(pid: u32, sockets_before: usize, conns: &mut [Idle]) {
    let n = conns.len();
    let _ = wait_for(Duration::from_secs(10), "the relay to take in or close every connection", || {
        (fds(pid).1.saturating_sub(sockets_before) + count_closed(conns) >= n).then_some(())
    });
}

/// The relay's port in a multiaddr `/ip4/127.0.0.1/tcp/PORT/…`.
fn tcp_port(addr: &str) -> u16 {
    let mut parts = addr.split('/');
    parts.find(|p| *p == "tcp").expect("a /tcp/ address");
    parts.next().unwrap().parse().unwrap()
}

/// The start of a Store message of the largest size (a frame body of `MAX_FRAME_BODY`, the
/// header, a shard length of `MAX_SHARD_LEN`), before any of the shard.
fn stalled_store(header: &[u8]) -> Vec<u8> {
    let mut stall = (MAX_FRAME_BODY as u32).to_be_bytes().to_vec();
    push_varint(&mut stall, u64::from(Request::STORE_KIND));
    push_varint(&mut stall, header.len() as u64);
    stall.extend_from_slice(header);
    push_varint(&mut stall, MAX_SHARD_LEN as u64);
    stall
}

/// Bytes the relay's libp2p streams read, in all (`libp2p_bandwidth_bytes_total`, inbound).
fn inbound_bytes(r: &RelayProc) -> u64 {
    let (code, m) = r.get("/metrics").unwrap();
    assert_eq!(code, 200);
    m.lines()
        .filter(|l| l.starts_with("libp2p_bandwidth_bytes_total") && l.contains("direction=\"Inbound\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// 1,000 streams each announce a Store message of the largest size (a frame body of
/// `MAX_FRAME_BODY`, a real header, a shard length of `MAX_SHARD_LEN`, about 1 MiB) and
/// then send nothing more, and do not close. A relay that allocates a message's buffers
/// when their lengths are announced commits about 1 GiB for them (1,000 × 1 MiB); one that
/// allocates as the bytes arrive, tens of KiB per stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn half_written_streams_cost_the_relay_little_memory() {
    /// Streams, over five connections: yamux takes at most 512 streams on one, the relay
    /// serves 256 at once on one.
    const STREAMS: usize = 1000;
    const CONNECTIONS: usize = 5;
    const BATCH: usize = 50;
    /// Bounds on what the relay may gain while the streams are open. The honest client's
    /// traffic (a few 1 MiB stripes) and the streams' own state (yamux, multistream,
    /// request-response, a first 64 KiB of buffer: about 65 KiB each) stay well under them;
    /// 1,000 buffers of 1 MiB do not.
    const MAX_RSS_GROWTH_MIB: f64 = 200.0;
    const MAX_DATA_GROWTH_MIB: f64 = 400.0;

    let dir = Scratch::new("hostile-half").unwrap();
    let r = spawn(&dir.path().join("r"), &[]);
    let pid = r.pid();
    let honest = client(&r).await;
    // Warm up: the relay's store and allocator arenas have served shards before the baseline.
    for n in 0..3 {
        store_and_fetch(&honest, &stripe(1 << 20, n)).await;
    }
    let mut attackers = Vec::new();
    for _ in 0..CONNECTIONS {
        attackers.push(client(&r).await);
    }

    let stall = stalled_store(stripe(100_000, 99).header_bytes());

    let (rss0, data0) = (proc_kib(pid, "VmRSS"), proc_kib(pid, "VmData"));
    let bytes0 = inbound_bytes(&r);
    let t0 = Instant::now();
    let mut written = 0;
    for a in &attackers {
        for _ in 0..STREAMS / CONNECTIONS / BATCH {
            written += a.half_written(stall.clone(), BATCH).await.unwrap();
        }
    }
    eprintln!("{written} streams half written ({} bytes each) in {:?}", stall.len(), t0.elapsed());
    assert!(written >= STREAMS * 9 / 10, "only {written} of {STREAMS} streams could be written");
    // The relay has read what the streams sent (the bandwidth metrics count the bytes its
    // streams read, protocol negotiation included).
    let want = (written * stall.len()) as u64;
    wait_for(Duration::from_secs(20), "the relay to read the half-written streams", || {
        (inbound_bytes(&r).saturating_sub(bytes0) >= want).then_some(())
    })
    .unwrap();
    eprintln!("the relay read them by {:?}", t0.elapsed());

    // An honest client is served while the streams are open; meanwhile the relay's memory
    // is sampled for 3 s.
    let worker = tokio::spawn(async move {
        let t = Instant::now();
        for n in 0..3 {
            store_and_fetch(&honest, &stripe(1 << 20, 10 + n)).await;
        }
        t.elapsed()
    });
    let (mut rss, mut data) = (rss0, data0);
    let sampling = Instant::now();
    while sampling.elapsed() < Duration::from_secs(3) {
        rss = rss.max(proc_kib(pid, "VmRSS"));
        data = data.max(proc_kib(pid, "VmData"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let served = tokio::time::timeout(Duration::from_secs(60), worker)
        .await
        .expect("the honest client was served within 60 s")
        .expect("the honest client's stores and fetches succeeded");
    let rss_growth = (rss.saturating_sub(rss0) * 1024) as f64 / MIB;
    let data_growth = (data.saturating_sub(data0) * 1024) as f64 / MIB;
    eprintln!(
        "relay memory with {written} half-written streams open: VmRSS {:.1} -> {:.1} MiB (+{rss_growth:.1}), \
         VmData {:.1} -> {:.1} MiB (+{data_growth:.1}); honest client served 3 stores + fetches in {served:?}",
        (rss0 * 1024) as f64 / MIB,
        (rss * 1024) as f64 / MIB,
        (data0 * 1024) as f64 / MIB,
        (data * 1024) as f64 / MIB,
    );
    // Resident memory, and memory committed (VmData: glibc hands out zeroed memory fresh
    // from the kernel without touching it, so buffers allocated and never written may not
    // show in VmRSS, but they are committed all the same).
    assert!(rss_growth < MAX_RSS_GROWTH_MIB, "VmRSS grew by {rss_growth:.1} MiB");
    assert!(data_growth < MAX_DATA_GROWTH_MIB, "VmData grew by {data_growth:.1} MiB");
    eprintln!("{}", r.usage_line("1,000 half-written streams"));
    drop(attackers);
}

/// One connection sends 100 Store messages of nearly the largest shard (1,000,000 bytes of
/// an announced 1 MiB) and stalls each. The relay holds at most
/// `MAX_READING_PER_CONNECTION` (64 MiB) of messages being read for one connection, so at
/// least 36 of the streams are refused `Busy` (counted as refused "reading") and what it
/// holds stays under that bound, while another connection's stores are read and served.
/// Before that bound, one connection's streams could take the process's whole allowance
/// (512 MiB) and none of these was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_connection_holds_at_most_its_share_of_reads() {
    const STREAMS: usize = 100;
    const SENT: usize = 1_000_000;
    const PER_CONNECTION: usize = kura_p2p::protocol::MAX_READING_PER_CONNECTION;
    let dir = Scratch::new("hostile-share").unwrap();
    let r = spawn(&dir.path().join("r"), &[]);
    let honest = client(&r).await;
    let attacker = client(&r).await;

    let mut stall = stalled_store(stripe(100_000, 98).header_bytes());
    stall.extend_from_slice(&pseudo_random(SENT, 5));
    let t0 = Instant::now();
    // Streams the relay refuses stop being read, so their writes may never finish: the
    // attacker runs on its own and is judged by what the relay says.
    let attack = tokio::spawn(async move {
        let written = attacker.half_written(stall, STREAMS).await;
        (attacker, written)
    });
    let refused = "kura_refused_requests_total{kind=\"reading\"}";
    let want = (STREAMS - PER_CONNECTION / (1 << 20)) as f64;
    let got = wait_for(Duration::from_secs(60), "streams past the connection's share refused", || {
        let n = r.metric(refused).unwrap();
        (n >= want).then_some(n)
    })
    .unwrap();
    let reading = r.metric("kura_reading_bytes").unwrap();
    eprintln!(
        "{got} of {STREAMS} stalled streams refused in {:?}; {:.1} MiB held being read",
        t0.elapsed(),
        reading / MIB
    );
    assert!(reading <= PER_CONNECTION as f64, "{reading} bytes held for one connection's reads");
    // Another connection is read and served meanwhile.
    for n in 0..2 {
        store_and_fetch(&honest, &stripe(1 << 20, 20 + n)).await;
    }
    eprintln!("{}", r.usage_line("one connection's 100 stalled 1 MB stores"));
    attack.abort();
}

/// 80 identities from 127.0.0.3, each with its own libp2p connection (noise handshake done,
/// yamux up), against a relay that takes 64 connections in all and 32 per IP: the relay
/// keeps at most 32 of them, and four honest clients from 127.0.0.1 still connect and are
/// served. Without a per-IP bound on established connections, one address with enough
/// identities takes every slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_identities_from_one_ip_do_not_take_every_connection() {
    const IDENTITIES: usize = 80;
    let dir = Scratch::new("hostile-identities").unwrap();
    let r = spawn(&dir.path().join("r"), &["--max-connections", "64", "--max-connections-per-ip", "32"]);
    let addr: libp2p::Multiaddr = r.addr("/tcp/").unwrap().parse().unwrap();
    let t0 = Instant::now();
    let tries = (0..IDENTITIES).map(|_| StoreClient::connect_from(lo(3).into(), addr.clone()));
    let results = futures::future::join_all(tries).await;
    let mut sybils: Vec<StoreClient> = results.into_iter().filter_map(Result::ok).collect();
    // A connection the relay refuses may be closed just after it was reported established
    // on this side: a store on each tells which are really kept.
    let mut kept = Vec::new();
    for (n, c) in sybils.drain(..).enumerate() {
        let s = stripe(10_000, 500 + n as u64);
        let req = Request::Store { header: s.header_bytes().to_vec(), shard: s.shard(0).to_vec() };
        if matches!(c.request(req).await, Ok(Response::Stored { .. })) {
            kept.push(c);
        }
    }
    eprintln!(
        "{} of {IDENTITIES} identities from 127.0.0.3 kept by the relay ({:?})",
        kept.len(),
        t0.elapsed()
    );
    assert!(!kept.is_empty(), "no identity got through: the attack was not exercised");
    assert!(kept.len() <= 32, "{} connections kept from one IP", kept.len());
    for n in 0..4 {
        let honest = client(&r).await;
        store_and_fetch(&honest, &stripe(100_000, 600 + n)).await;
    }
    eprintln!("{}", r.usage_line("80 identities from one IP"));
    drop(kept);
}

/// 300 TCP connections to the libp2p port from 127.0.0.2 that never start a handshake. The
/// relay takes at most 16 unfinished handshakes per IP (`--max-pending-per-ip 16`; the rest
/// are closed at once) and gives a handshake 10 s; an honest client from 127.0.0.1 is served
/// meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_ip_with_idle_sockets_does_not_lock_out_others() {
    const IDLE: usize = 300;
    const PENDING_PER_IP: usize = 16;
    let dir = Scratch::new("hostile-idle-p2p").unwrap();
    let r = spawn(&dir.path().join("r"), &["--max-pending-per-ip", &PENDING_PER_IP.to_string()]);
    let pid = r.pid();
    let port = tcp_port(&r.addr("/tcp/").unwrap());
    let sockets0 = fds(pid).1;

    let t0 = Instant::now();
    let mut idle = idle_from(lo(2), SocketAddr::from(([127, 0, 0, 1], port)), IDLE).await;
    // Beyond the pending limit, connections are refused at once: well before the handshake
    // deadline (10 s) closes the others.
    let refused = wait_for(Duration::from_secs(5), "connections over the pending limit to be closed", || {
        (count_closed(&mut idle) >= IDLE - PENDING_PER_IP).then(|| t0.elapsed())
    });
    eprintln!(
        "{IDLE} idle sockets from 127.0.0.2: {} closed by the relay after {:?} (wanted {} within 5 s); \
         the relay holds {} more sockets than before",
        count_closed(&mut idle),
        t0.elapsed(),
        IDLE - PENDING_PER_IP,
        fds(pid).1.saturating_sub(sockets0)
    );

    let honest = tokio::time::timeout(Duration::from_secs(45), async {
        let t = Instant::now();
        let c = client(&r).await;
        store_and_fetch(&c, &stripe(300_000, 1)).await;
        t.elapsed()
    })
    .await
    .expect("an honest client connected, stored and fetched within 45 s");
    eprintln!("honest client connected, stored and fetched in {honest:?}");
    refused.unwrap();

    // Those left are closed when their handshake times out (10 s).
    let all = wait_for(Duration::from_secs(25), "every idle socket to be closed", || {
        (count_closed(&mut idle) == IDLE).then(|| t0.elapsed())
    });
    let left = IDLE - count_closed(&mut idle);
    eprintln!("all idle sockets closed: {all:?} ({left} still open)");
    eprintln!("{}", r.usage_line("300 idle sockets from one address"));
    all.unwrap();
}

/// Slow HTTP clients: 100 connections from 127.0.0.2 that send nothing, one from 127.0.0.3
/// that sends its header a byte a second. The relay serves 127.0.0.1 at once, serves no more
/// than 32 connections of one IP, and closes those that have not sent their header in 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_http_clients_are_cut() {
    const SILENT: usize = 100;
    const PER_IP: usize = 32;
    let dir = Scratch::new("hostile-slow-http").unwrap();
    let r = spawn(&dir.path().join("r"), &[]);
    let pid = r.pid();
    let http: SocketAddr = r.http.parse().unwrap();
    let sockets0 = fds(pid).1;

    let t0 = Instant::now();
    // The trickler: a header that never ends, one byte a second. Returns when the relay
    // closed the connection (how long after it was opened), or None after 40 s.
    let trickle = connect_from(lo(3), http).await.unwrap();
    let trickler = std::thread::spawn(move || {
        let start = Instant::now();
        let mut conn = Idle::new(trickle);
        let head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
        let mut sent = 0usize;
        let mut next = Instant::now();
        while start.elapsed() < Duration::from_secs(40) {
            if conn.is_closed() {
                return Some(start.elapsed());
            }
            if Instant::now() >= next {
                let byte = head.get(sent).copied().unwrap_or(b'a');
                match conn.s.write(&[byte]) {
                    Ok(_) => sent += 1,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => return Some(start.elapsed()),
                }
                next += Duration::from_secs(1);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    });
    let mut silent = idle_from(lo(2), http, SILENT).await;
    settle(pid, sockets0 + 1, &mut silent);
    let closed_early = count_closed(&mut silent);
    eprintln!(
        "{SILENT} silent connections from 127.0.0.2: {closed_early} closed by the relay after {:?}",
        t0.elapsed()
    );

    // 127.0.0.1 is served at once.
    let t = Instant::now();
    let health = http_get(&r.http, "/health").unwrap();
    let took = t.elapsed();
    eprintln!("GET /health from 127.0.0.1: {} in {took:?}", health.0);
    assert_eq!(health, (200, "ok\n".to_owned()));

    // One more connection from 127.0.0.2 with a complete request gets no answer: it is
    // closed, or nothing comes back.
    let open_silent = SILENT - count_closed(&mut silent);
    let extra = connect_from(lo(2), http).await;
    let answer = match extra {
        Err(e) => format!("(connection failed: {e})"),
        Ok(s) => tokio::task::spawn_blocking(move || {
            let mut s = s;
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let _ = s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out);
            String::from_utf8_lossy(&out).into_owned()
        })
        .await
        .unwrap(),
    };
    eprintln!(
        "connection {} from 127.0.0.2 ({open_silent} of its connections still open) got {answer:?}",
        SILENT + 1
    );
    assert!(
        !answer.starts_with("HTTP/1.1 200") && !answer.starts_with("HTTP/1.0 200"),
        "with {open_silent} connections of 127.0.0.2 open, one more was served: {answer:?}"
    );
    assert!(open_silent <= PER_IP, "{open_silent} connections of one IP are held open");

    // The silent ones are closed when their header time (10 s) is up.
    let all = wait_for(Duration::from_secs(25), "most silent connections to be closed", || {
        (count_closed(&mut silent) >= SILENT * 9 / 10).then(|| t0.elapsed())
    });
    eprintln!("{} of {SILENT} silent connections closed after {:?}", count_closed(&mut silent), t0.elapsed());
    all.unwrap();
    let cut = trickler.join().unwrap();
    eprintln!("the trickling connection was closed after {cut:?}");
    let cut = cut.expect("the relay closed the trickling connection within 40 s");
    assert!(cut < Duration::from_secs(25), "the trickling connection lived {cut:?}");
    assert_eq!(http_get(&r.http, "/health").unwrap().0, 200);
    eprintln!("{}", r.usage_line("slow and idle HTTP clients"));
}

/// A relay run out of file descriptors (idle HTTP connections from many IPs) cannot open
/// its shard files: it answers fetches with an error and deletes nothing. Once the
/// connections are gone, every shard is served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exhausted_file_descriptors_delete_nothing() {
    const STRIPES: u64 = 40;
    /// Descriptors the relay gets beyond what a fresh one holds.
    const SPARE_FDS: usize = 60;
    let dir = Scratch::new("hostile-fds").unwrap();

    // What a fresh relay holds, from one started for that alone.
    let fresh = {
        let probe = spawn(&dir.path().join("probe"), &[]);
        let n = fds(probe.pid()).0;
        probe.kill9().unwrap();
        n
    };
    let nofile = fresh + SPARE_FDS;
    let r =
        RelayProc::spawn_bin_limited(Path::new(RELAY), &dir.path().join("r"), &[], nofile as u64).unwrap();
    let pid = r.pid();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap().to_owned();
    assert_eq!(line.split_whitespace().nth(3), Some(nofile.to_string().as_str()), "{line}");
    eprintln!("a fresh relay holds {fresh} descriptors; this one may open {nofile}");

    let c = client(&r).await;
    let stripes: Vec<Stripe> = (0..STRIPES).map(|n| stripe(100_000, 500 + n)).collect();
    for s in &stripes {
        assert_eq!(store0(&c, s).await, Response::Stored { index: 0 });
    }

    // Idle HTTP connections, at most 30 per IP (under the relay's per-IP limit), until the
    // relay holds every descriptor it may, and 30 more waiting in the listen backlog to take
    // the place of any it closes.
    let http: SocketAddr = r.http.parse().unwrap();
    let mut idle = Vec::new();
    let mut extra = None;
    'fill: for ip in 2..=30 {
        for _ in 0..30 {
            match connect_from(lo(ip), http).await {
                Ok(s) => idle.push(s),
                Err(e) => {
                    eprintln!("connection {} refused: {e}", idle.len() + 1);
                    break 'fill;
                }
            }
            if fds(pid).0 >= nofile && extra.is_none() {
                extra = Some(idle.len() + 30);
            }
            if extra.is_some_and(|n| idle.len() >= n) {
                break 'fill;
            }
        }
    }
    let exhausted = wait_for(Duration::from_secs(5), "the relay to hold every descriptor", || {
        let n = fds(pid).0;
        (n >= nofile).then_some(n)
    });
    eprintln!("{} idle HTTP connections; the relay holds {:?} descriptors", idle.len(), exhausted);
    exhausted.unwrap();

    // Fetch every stripe while the relay cannot open a file: shards or errors, never
    // taken for corruption.
    let (mut served, mut errors) = (0, 0);
    tokio::time::timeout(Duration::from_secs(60), async {
        for s in &stripes {
            match c.request(Request::Fetch { stripe: s.id() }).await.unwrap() {
                Response::Error { code: ErrorCode::Internal, .. } => errors += 1,
                r if is_shard0(&r, s) => served += 1,
                other => panic!("fetch of {} while out of descriptors: {other:?}", s.id()),
            }
        }
    })
    .await
    .expect("the fetches were answered within 60 s");
    eprintln!(
        "fetches while out of descriptors: {errors} internal errors, {served} served; the relay holds {} \
         descriptors",
        fds(pid).0
    );
    assert!(errors > 0, "no fetch met the exhausted descriptors: the test proves nothing");

    drop(idle);
    wait_for(Duration::from_secs(30), "the relay to answer HTTP again", || {
        http_get(&r.http, "/health").ok().filter(|h| h.0 == 200)
    })
    .unwrap();
    tokio::time::timeout(Duration::from_secs(60), async {
        for s in &stripes {
            let got = c.request(Request::Fetch { stripe: s.id() }).await.unwrap();
            assert!(is_shard0(&got, s), "stripe {} after the descriptors came back: {got:?}", s.id());
        }
    })
    .await
    .expect("the fetches were answered within 60 s");
    let inv = r.json("/inventory").unwrap();
    let held = inv["stripes"].as_object().unwrap();
    for s in &stripes {
        assert_eq!(held.get(&s.id().to_string()), Some(&serde_json::json!([0])), "{} in {inv}", s.id());
    }
    assert_eq!(held.len(), stripes.len());
    eprintln!("{}", r.usage_line("file descriptors exhausted"));
}

/// A stranger with no credits: unpaid stores beyond its free allowance are refused
/// `Unpaid` (in words that say what to do) and nothing is kept; postage it made up (a burn
/// it "certified" with keys of its own, for a batch no group saw) is refused the same way,
/// 300 times in a row, each costing the relay a few signature checks at most; an honest
/// client is served throughout, and another peer still has its own allowance.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strangers_store_nothing_beyond_the_free_allowance() {
    use kura_core::farming::{BatchTerms, Postage, Stamp, DEFAULT_PRICES};
    use kura_core::ledger::{ack_message, Ack, Certificate, Signer, SigningKey, Transfer, BURN};
    let dir = Scratch::new("hostile-unpaid").unwrap();
    let r = spawn(&dir.path().join("r"), &["--free-bytes", "600K"]);
    let stranger = client(&r).await;
    // Shards of 250,004 bytes: two fit in 600 KiB, a third does not.
    let stripes: Vec<Stripe> = (0..4).map(|n| stripe(1_000_000, 900 + n)).collect();
    store_and_fetch(&stranger, &stripes[0]).await;
    store_and_fetch(&stranger, &stripes[1]).await;
    let refused = store0(&stranger, &stripes[2]).await;
    let Response::Error { code: ErrorCode::Unpaid, detail } = &refused else { panic!("{refused:?}") };
    assert!(detail.contains("free allowance is used") && detail.contains("--key"), "{detail}");
    let got = stranger.request(Request::Fetch { stripe: stripes[2].id() }).await.unwrap();
    assert!(matches!(got, Response::Error { code: ErrorCode::NotFound, .. }), "{got:?}");

    // Made-up postage: a burn signed by the stranger and acknowledged by keys it made.
    let owner = kura_core::testdata::account_key(5);
    let terms = BatchTerms { slots: 1000, slot_bytes: 2_000_000, first_epoch: 0, epochs: u64::MAX / 2 };
    let transfer = Transfer {
        from: owner.key(),
        seq: 1,
        to: BURN,
        amount: DEFAULT_PRICES.cost(&terms),
        deps: vec![],
        memo: terms.memo(),
    };
    let signed = transfer.sign(&owner);
    let t = &signed.transfer;
    let msg = ack_message(&t.from, t.seq, &t.id());
    let acks = (0..16u8)
        .map(|i| {
            let k = SigningKey::from_bytes(&[100 + i; 32]);
            Ack { replica: k.key(), sig: k.sign(&msg) }
        })
        .collect();
    let burn = Certificate { signed, acks };
    let batch = burn.signed.transfer.id();
    let honest = client(&r).await;
    for i in 0..300u32 {
        let s = if i == 0 { stripes[3].clone() } else { stripe(4000, 2000 + u64::from(i)) };
        let bytes = (s.shard_count() * s.shard(0).len()) as u64;
        let postage = Postage { stamp: Stamp::sign(&owner, &batch, s.id(), i, bytes), burn: burn.clone() };
        let req = Request::PaidStore {
            postage: Box::new(postage),
            header: s.header_bytes().to_vec(),
            shard: s.shard(0).to_vec(),
        };
        let answer = stranger.request(req).await.unwrap();
        let Response::Error { code: ErrorCode::Unpaid, detail } = &answer else { panic!("{answer:?}") };
        assert!(detail.contains("not certified"), "{detail}");
    }
    let got = stranger.request(Request::Fetch { stripe: stripes[3].id() }).await.unwrap();
    assert!(matches!(got, Response::Error { code: ErrorCode::NotFound, .. }), "{got:?}");
    // The same made-up postage as a renewal of a stripe the relay holds (no shard sent), and
    // of one it does not: refused, and nothing is kept.
    for (s, slot, code) in [(&stripes[0], 900, ErrorCode::Unpaid), (&stripes[3], 901, ErrorCode::NotFound)] {
        let bytes = (s.shard_count() * s.shard(0).len()) as u64;
        let postage = Postage { stamp: Stamp::sign(&owner, &batch, s.id(), slot, bytes), burn: burn.clone() };
        let answer = stranger.request(Request::Restamp { postage: Box::new(postage) }).await.unwrap();
        assert!(matches!(&answer, Response::Error { code: c, .. } if *c == code), "{answer:?}");
    }
    assert_eq!(r.json("/status").unwrap()["farming"]["stamps"].as_u64(), Some(0));
    // The relay serves everyone else: a fetch of what was kept, and another peer's store
    // within its own allowance.
    let kept = honest.request(Request::Fetch { stripe: stripes[0].id() }).await.unwrap();
    assert!(is_shard0(&kept, &stripes[0]), "{kept:?}");
    store_and_fetch(&honest, &stripes[2]).await;
    assert_eq!(r.metric("kura_stores_free_total").unwrap(), 3.0);
    assert_eq!(r.metric("kura_stores_paid_total").unwrap(), 0.0);
    assert!(r.metric("kura_refused_requests_total{kind=\"paid_store\"}").unwrap() >= 300.0);
}

/// A stranger asks for shards to hold as a donating tab without being one: it names this
/// relay as the relay it is reachable through (it holds no reservation here), or a relay
/// that does not exist. Every offer is refused, no shard leaves the relay, each request
/// costs the stranger sixteen proofs of its allowance (so a flood is soon answered busy),
/// and the relay keeps serving everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offers_go_only_to_tabs_reachable_through_a_reservation() {
    let dir = Scratch::new("hostile-offers").unwrap();
    let r = spawn(&dir.path().join("r0"), &[]);
    let honest = client(&r).await;
    let kept = stripe(40_000, 77);
    store_and_fetch(&honest, &kept).await;
    let me: libp2p::PeerId = r.peer_id.parse().unwrap();
    let nobody = libp2p::PeerId::random();
    let stranger = client(&r).await;
    let (mut refused, mut busy) = (0, 0);
    for i in 0..200 {
        let via = if i % 2 == 0 { me } else { nobody };
        let answer = stranger
            .request(Request::Offer { via: via.to_bytes(), room: MAX_SHARD_LEN as u32 })
            .await
            .unwrap();
        match answer {
            Response::Error { code: ErrorCode::NotFound, .. } => refused += 1,
            Response::Error { code: ErrorCode::Busy, .. } => busy += 1,
            other => panic!("an offer to a stranger: {other:?}"),
        }
    }
    let garbled = stranger.request(Request::Offer { via: vec![1, 2, 3], room: 1 }).await.unwrap();
    assert!(
        matches!(garbled, Response::Error { code: ErrorCode::Malformed | ErrorCode::Busy, .. }),
        "{garbled:?}"
    );
    eprintln!("offers refused {refused}, answered busy {busy}");
    assert!(refused >= 1 && busy >= 100, "the allowance runs out: refused {refused}, busy {busy}");
    assert_eq!(r.metric("kura_tab_offers_total").unwrap(), 0.0);
    assert_eq!(r.json("/status").unwrap()["tabs"]["reserved"].as_u64(), Some(0));
    let got = honest.request(Request::Fetch { stripe: kept.id() }).await.unwrap();
    assert!(is_shard0(&got, &kept), "{got:?}");
}
