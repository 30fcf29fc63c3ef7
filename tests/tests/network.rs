//! Files across the network: the real `kura` binary putting and getting through real
//! `kura-relay` processes on 127.0.0.1, with relays killed, restarted and corrupted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kura_tests::net::{kura, Net};
use kura_tests::relay::{wait_for, RelayProc};
use kura_tests::{pseudo_random, Scratch};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const MIB: usize = 1 << 20;
/// These tests count shards and kill relays to reach exact states; self-repair (tested in
/// tests/repair.rs) would rebuild behind their back, so its rounds are a day apart here.
const NO_REPAIR: &[&str] = &["--repair-interval", "86400"];

fn write_file(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// Every file the relay stores shards in.
fn shard_files(relay_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![relay_dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.parent().and_then(|q| q.parent()).is_some_and(|q| q.ends_with("shards")) {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn put_and_get_sizes_ranges_dedup_and_refusals() {
    let net = Net::start_with("net-sizes", 6, NO_REPAIR);
    let files = net.dir.path();
    let mut caps = Vec::new();
    for (i, size) in [0, 1, MIB - 1, MIB, MIB + 1, 50 * MIB].into_iter().enumerate() {
        let data = pseudo_random(size, 100 + i as u64);
        let f = write_file(files, &format!("in-{size}"), &data);
        let cap = net.put(&f, &[]).unwrap_or_else(|e| panic!("put {size}: {e}"));
        net.get_exact(&cap, &data, &format!("size-{size}"));
        caps.push((cap, data));
    }

    // The same public file again: same capability, no new shard anywhere.
    let held = net.shards_held();
    let again = net.put(&files.join(format!("in-{}", MIB + 1)), &[]).unwrap();
    assert_eq!(again, caps[4].0, "public mode is convergent");
    assert_eq!(net.shards_held(), held, "a second put of the same file stores no new shard");
    // Private mode: a different capability, and it still reads back.
    let private = net.put(&files.join(format!("in-{MIB}")), &["--private"]).unwrap();
    assert_ne!(private, caps[3].0);
    net.get_exact(&private, &caps[3].1, "private");

    // Byte ranges of the 50 MiB file: inside a chunk, across chunk boundaries, to the end,
    // past the end.
    let (cap, data) = &caps[5];
    let len = data.len() as u64;
    for (off, n) in [
        (0, 1),
        (5, 1000),
        (MIB as u64 - 3, 10),
        (3 * MIB as u64 + 17, 2 * MIB as u64),
        (len - 5, 5),
        (len - 5, 100),
        (len, 10),
    ] {
        let out = files.join("range");
        net.get(cap, &out, &["--offset", &off.to_string(), "--length", &n.to_string()]).unwrap();
        let end = (off + n).min(len) as usize;
        assert!(std::fs::read(&out).unwrap() == data[off as usize..end], "range {off}+{n}");
    }

    // Refusals, each with a message that says what is wrong.
    let bad = net.get("kura1notacapability", &files.join("x"), &[]).unwrap_err();
    assert!(bad.contains("invalid capability"), "{bad}");
    assert!(!files.join("x").exists());
    let mut damaged = caps[2].0.clone().into_bytes();
    let last = damaged.len() - 3;
    damaged[last] = if damaged[last] == b'a' { b'b' } else { b'a' };
    let bad = net.get(std::str::from_utf8(&damaged).unwrap(), &files.join("x"), &[]).unwrap_err();
    assert!(bad.contains("checksum"), "{bad}");
    let out = kura(&[
        "get",
        &caps[1].0,
        "-o",
        "x",
        "--bootstrap",
        "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWGGFMuyLXs78fthf9maKSLRJyVE7x1sGaMbc2vse49HEL",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("no relay reachable"), "{err}");
    assert!(err.contains("kura: hint: check the --bootstrap address"), "{err}");
    // n = 8 shards need 8 distinct relays; there are 6.
    let err = net.put(&files.join("in-1"), &["--k", "6", "--m", "2"]).unwrap_err();
    assert!(err.contains("only 6 relay(s) reachable") && err.contains("8 distinct relays"), "{err}");
}

#[test]
fn files_survive_two_dead_relays_and_fail_clearly_without_k() {
    let mut net = Net::start_with("net-loss", 6, NO_REPAIR);
    let files = net.dir.path().to_path_buf();
    let big = pseudo_random(16 * MIB + 7, 1);
    let small = pseudo_random(1, 2);
    let cap_big = net.put(&write_file(&files, "big", &big), &[]).unwrap();
    let cap_small = net.put(&write_file(&files, "small", &small), &[]).unwrap();
    // With six relays and n = 6, every relay holds one shard of every stripe.
    for r in net.live() {
        assert_eq!(r.json("/status").unwrap()["shards"], 20, "big: 17 data stripes + 1 map; small: 1 + 1");
    }

    // A shard corrupted on one relay's disk: that relay refuses it (bad hash), the client
    // reads the others.
    let victim = net.relay(2).dir.clone();
    let corrupt = shard_files(&victim);
    assert_eq!(corrupt.len(), 20);
    for f in &corrupt {
        let mut b = std::fs::read(f).unwrap();
        b[0] ^= 0xff;
        std::fs::write(f, b).unwrap();
    }
    // With relay 0 dead, the client asks 4 of the 5 live relays per stripe, so relay 2 is
    // asked for most of the 18 stripes; each stripe still has 4 good shards.
    net.kill9(0);
    net.get_exact(&cap_big, &big, "corrupt-relay-2");
    net.get_exact(&cap_small, &small, "corrupt-relay-2-small");
    let held: u64 = net.relay(2).json("/status").unwrap()["shards"].as_u64().unwrap();
    assert!(held < 20, "relay 2 found its corrupt shards when asked (holds {held})");
    assert!(net.relay(2).stderr().contains("corrupt"), "relay 2 logged the corruption");

    // Give relay 2 back good shards: restart relay 0 and drop relay 2 entirely; then kill -9
    // any two and every file still reads byte-exact.
    net.restart(0);
    net.kill9(2);
    net.get_exact(&cap_big, &big, "relay-2-dead");
    net.kill9(4);
    // Dead: 2 and 4 (two of six). Relay 0, the bootstrap relay, was restarted on a new port.
    net.get_exact(&cap_big, &big, "two-dead");
    net.get_exact(&cap_small, &small, "two-dead-small");

    // A third dead relay: fewer than k = 4 shards per stripe. The get fails, names the
    // stripe, and leaves no output file.
    let shards_before = net.relay(5).json("/status").unwrap()["shards"].clone();
    net.kill9(5);
    let out = files.join("out-three-dead");
    let err = net.get(&cap_big, &out, &[]).unwrap_err();
    assert!(err.contains("file unavailable") && err.contains("3 of 4 shards"), "{err}");
    assert!(err.contains("kura: hint: too few of the file's relays answer"), "{err}");
    assert!(err.contains("stripe "), "{err}");
    assert!(!out.exists(), "no output file after a failed get");
    let leftovers: Vec<_> = std::fs::read_dir(&files)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "no partial file left");
    // And nothing can be put with three relays for six shards.
    let err = net.put(&write_file(&files, "new", b"fresh"), &[]).unwrap_err();
    assert!(err.contains("only 3 relay(s) reachable"), "{err}");
    // The command line adds its own advice by the error's kind.
    assert!(err.contains("kura: hint: start more relays or lower --k/--m"), "{err}");

    // Relay 5 restarted keeps its shards and serves them: four relays again.
    net.restart(5);
    assert_eq!(net.relay(5).json("/status").unwrap()["shards"], shards_before);
    net.get_exact(&cap_big, &big, "restarted");
}

#[test]
fn devnet_starts_a_network_that_serves_put_and_get_and_stops_cleanly() {
    let dir = Scratch::new("devnet").unwrap();
    // Two wallets; the first is funded by the devnet's test mint as it starts.
    let key = |name: &str| {
        let path = dir.path().join(format!("{name}.key"));
        let out = kura(&["wallet", "new", "--key", path.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        (path, String::from_utf8(out.stdout).unwrap().trim().to_owned())
    };
    let ((alice, alice_account), (bob, bob_account)) = (key("alice"), key("bob"));
    let child = kura_tests::kura_command()
        .args(["devnet", "--relays", "4", "--http", "127.0.0.1:0", "--base-port", "0", "--dir"])
        .arg(dir.path().join("net"))
        .args(["--fund", &format!("{alice_account}=1234")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // If an assertion fails, stop the devnet (and through it the relays) all the same.
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            if self.0.try_wait().ok().flatten().is_none() {
                let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
                let _ = self.0.wait();
            }
        }
    }
    let mut guard = Stop(child);
    let child = &mut guard.0;
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut page, mut boot, mut funded) = (None, None, false);
    while page.is_none() || boot.is_none() {
        let line = rx.recv_timeout(Duration::from_secs(120)).expect("devnet prints its addresses");
        funded |= line.starts_with(&format!("funded {alice_account}: 1234 (certificate "));
        if let Some(p) = line.strip_prefix("page:") {
            page = Some(p.trim().to_owned());
        }
        if let Some(b) = line.strip_prefix("bootstrap address:") {
            boot = Some(b.trim().to_owned());
        }
    }
    let (page, boot) = (page.unwrap(), boot.unwrap());
    assert!(boot.starts_with("/ip4/127.0.0.1/tcp/") && boot.contains("/p2p/"), "{boot}");
    assert!(funded, "the devnet printed no funding line");
    // A wallet round trip between the two keys.
    let wallet = |key: &std::path::Path, args: &[&str]| {
        let mut all = vec!["wallet"];
        all.extend(args);
        all.extend(["--key", key.to_str().unwrap(), "--bootstrap", &boot]);
        let out = kura(&all);
        assert!(out.status.success(), "kura {all:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    assert_eq!(wallet(&alice, &["balance"]), "1234");
    assert_eq!(wallet(&alice, &["send", &bob_account, "234"]).len(), 64);
    assert_eq!((wallet(&alice, &["balance"]), wallet(&bob, &["balance"])), ("1000".into(), "234".into()));
    assert_eq!(wallet(&bob, &["send", &alice_account, "34"]).len(), 64);
    assert_eq!((wallet(&alice, &["balance"]), wallet(&bob, &["balance"])), ("1034".into(), "200".into()));
    let data = pseudo_random(2 * MIB + 5, 9);
    let f = write_file(dir.path(), "f", &data);
    let out = kura(&["put", f.to_str().unwrap(), "--bootstrap", &boot, "--k", "2", "--m", "2"]);
    // On failure, what the relays said: how they found each other is in their logs.
    let logs = || {
        (0..4)
            .map(|i| {
                let log = std::fs::read_to_string(dir.path().join(format!("net/relay-{i}.log")));
                format!("--- relay {i}:\n{}", log.unwrap_or_default())
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), logs());
    let cap = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    // The page's relay also bootstraps clients by URL.
    let url = page;
    let back = dir.path().join("back");
    let out = kura(&["get", &cap, "--bootstrap", &url, "-o", back.to_str().unwrap()]);
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), logs());
    assert!(std::fs::read(&back).unwrap() == data);

    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = wait_for(Duration::from_secs(60), "devnet to stop", || child.try_wait().unwrap()).unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "devnet exit {status}: {err}");
    assert!(err.contains("stopping 4 relays"), "{err}");
    for i in 0..4 {
        let log = std::fs::read_to_string(dir.path().join(format!("net/relay-{i}.log"))).unwrap();
        assert!(log.contains("stopped cleanly"), "relay {i} did not stop cleanly:\n{log}");
    }
}

/// Whether process `pid` is gone (or a zombie waiting to be reaped by whoever adopted it).
fn is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "pid (name) S ...": the state follows the name's closing parenthesis.
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

/// The child processes of `pid`, from every thread's `children` list.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        out.extend(list.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
    }
    out
}

#[test]
fn devnet_relays_die_with_it_when_it_is_killed() {
    let dir = Scratch::new("devnet-kill").unwrap();
    let mut child = kura_tests::kura_command()
        .args(["devnet", "--relays", "3", "--http", "127.0.0.1:0", "--base-port", "0", "--dir"])
        .arg(dir.path().join("net"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx.recv_timeout(Duration::from_secs(120)).expect("devnet prints its addresses");
        if line.starts_with("bootstrap address:") {
            break;
        }
    }
    let relays = children_of(child.id());
    assert_eq!(relays.len(), 3, "three relay processes: {relays:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    let gone = wait_for(Duration::from_secs(30), "the relays to die with the devnet", || {
        relays.iter().all(|&p| is_gone(p)).then_some(())
    });
    if gone.is_err() {
        for p in &relays {
            let _ = Command::new("kill").args(["-KILL", &p.to_string()]).status();
        }
    }
    gone.unwrap();
}

/// A relay whose identity lacks the join work (its id could have been ground next to any
/// stripe for free) is never counted in a close group: the relays do not keep it in their
/// tables, and a client that knows it directly leaves it out of every lookup, so a put
/// stores nothing on it though it is one of seven relays and shards go to six.
#[test]
fn a_relay_without_join_work_is_in_no_close_group() {
    let mut net = Net::start_with("net-joinwork", 6, NO_REPAIR);
    let dir = net.dir.path().join("plain");
    std::fs::create_dir_all(&dir).unwrap();
    let key = kura_p2p::testnet::identity_without_work().to_protobuf_encoding().unwrap();
    kura_p2p::docs::write_private(&dir.join("identity.key"), &key).unwrap();
    let boot = net.relay(0).addr("/tcp/").unwrap();
    let mut args = NO_REPAIR.to_vec();
    args.extend(["--bootstrap", &boot]);
    let plain = RelayProc::spawn(&dir, &args).unwrap();
    assert!(plain.stderr().contains("carries no join work"), "{}", plain.stderr());
    let ids: Vec<String> = net.live().map(|r| r.peer_id.clone()).collect();
    wait_for(Duration::from_secs(60), "the plain relay to know the six others", || {
        let s = plain.json("/status").ok()?;
        let table: Vec<&str> = s["routing_table"].as_array()?.iter().filter_map(|v| v.as_str()).collect();
        ids.iter().all(|id| table.contains(&id.as_str())).then_some(())
    })
    .unwrap();
    // The client is told of it first hand, as of every relay.
    net.addrs.push(plain.addr("/tcp/").unwrap());

    let data = pseudo_random(12 * MIB, 77);
    let f = write_file(net.dir.path(), "in", &data);
    let cap = net.put(&f, &[]).unwrap();
    net.get_exact(&cap, &data, "joinwork");
    let held = net.shards_held();
    eprintln!(
        "{held} shards on the six relays with join work, {} on the one without",
        plain.json("/status").unwrap()["shards"]
    );
    assert!(held >= 6 * 3 && held.is_multiple_of(6), "{held} shards: every stripe's six on the six relays");
    assert_eq!(plain.json("/status").unwrap()["shards"].as_u64(), Some(0));
    for r in net.live() {
        let s = r.json("/status").unwrap();
        let table: Vec<&str> =
            s["routing_table"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
        assert!(!table.contains(&plain.peer_id.as_str()), "{} keeps the plain relay in its table", r.peer_id);
    }
}
