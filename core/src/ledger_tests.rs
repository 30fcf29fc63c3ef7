#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;

use crate::testdata::{SimKey, SimVerifier};

/// The `n`-th stand-in key: a hash carrying the account work (the first of `n`'s hashes
/// that does), so that every account here passes the network's rule; made once per `n`.
fn key(n: u64) -> Key {
    static MADE: std::sync::Mutex<BTreeMap<u64, Key>> = std::sync::Mutex::new(BTreeMap::new());
    let mut made = MADE.lock().unwrap();
    *made.entry(n).or_insert_with(|| crate::testdata::sim_account(n))
}

/// A stand-in key without the account work.
fn key_without_work(n: u64) -> Key {
    (0u64..)
        .map(|c| *blake3::hash(&[n.to_le_bytes(), c.to_le_bytes(), [1; 8]].concat()).as_bytes())
        .find(|k| account_work(k) < ACCOUNT_BITS)
        .unwrap()
}

use crate::testdata::XorShift as Rng;

/// The acknowledgements of `who` for `s`, signed directly (replicas outside the test's
/// state machines).
fn acks_by(who: &[SimKey], s: &Signed) -> Vec<Ack> {
    let t = &s.transfer;
    let msg = ack_message(&t.from, t.seq, &t.id());
    who.iter().map(|k| Ack { replica: k.0, sig: k.sign(&msg) }).collect()
}

fn transfer(from: Key, seq: u64, to: Key, amount: u64, deps: Vec<TransferId>) -> Transfer {
    Transfer { from, seq, to, amount, deps, memo: Vec::new() }
}

/// Real ed25519: a transfer acknowledged by three of four replicas is certified, applied
/// once as a debit and once as a credit; the certificate fails with a key changed.
#[test]
fn an_ed25519_transfer_is_certified_and_applied_once() {
    // The mint and the replicas need no account work; the owners do.
    let mut keys: Vec<ed25519_dalek::SigningKey> =
        (0..6u8).map(|i| ed25519_dalek::SigningKey::from_bytes(&[i + 1; 32])).collect();
    keys[1] = crate::testdata::account_key(0);
    keys[2] = crate::testdata::account_key(1);
    let (mint, alice, bob) = (&keys[0], &keys[1], &keys[2]);
    let replicas: Vec<&ed25519_dalek::SigningKey> = keys[2..].iter().collect();
    let group = Group::new(replicas.iter().map(|k| Signer::key(*k)).collect(), 3).unwrap();
    let mut states: Vec<Replica> = replicas.iter().map(|_| Replica::new(Signer::key(mint))).collect();
    let certify = |states: &mut Vec<Replica>, s: &Signed| {
        let acks: Vec<Ack> = states
            .iter_mut()
            .zip(&replicas)
            .filter_map(|(r, k)| r.acknowledge(s, *k, &Ed25519).ok())
            .collect();
        Certificate { signed: s.clone(), acks }
    };
    let fund = transfer(Signer::key(mint), 1, Signer::key(alice), 100, vec![]).sign(mint);
    let c1 = certify(&mut states, &fund);
    assert_eq!(c1.acks.len(), 4);
    for r in &mut states {
        assert_eq!(r.apply_debit(&c1, &group, &Ed25519), Ok(Applied::Done));
        assert_eq!(r.apply_credit(&c1, &group, &Ed25519), Ok(Applied::Done));
        assert_eq!(r.apply_credit(&c1, &group, &Ed25519), Ok(Applied::Already), "a replay changes nothing");
    }
    let pay = transfer(Signer::key(alice), 1, Signer::key(bob), 30, vec![fund.transfer.id()]).sign(alice);
    let c2 = certify(&mut states, &pay);
    for r in &mut states {
        r.apply_debit(&c2, &group, &Ed25519).unwrap();
        r.apply_credit(&c2, &group, &Ed25519).unwrap();
        assert_eq!(r.account(&Signer::key(alice)).spendable(), 70);
        assert_eq!(r.account(&Signer::key(bob)).spendable(), 30);
        r.check_conservation().unwrap();
    }
    let mut forged = c2.clone();
    forged.signed.transfer.amount = 31;
    assert_eq!(forged.verify(&group, &Ed25519), Err(LedgerError::BadSignature));
    let mut short = c2;
    short.acks.truncate(2);
    assert_eq!(short.verify(&group, &Ed25519), Err(LedgerError::NoQuorum { have: 2, need: 3 }));
}

/// A certificate at every limit encodes within the bound and decodes back; over a limit,
/// or garbage, is refused.
#[test]
fn certificates_decode_within_their_limits() {
    let owner = SimKey(key(5));
    let t = Transfer {
        from: owner.key(),
        seq: u64::MAX,
        to: key(6),
        amount: u64::MAX,
        deps: (0..MAX_DEPS as u64).map(key).collect(),
        memo: vec![7; MAX_MEMO],
    };
    let signed = t.sign(&owner);
    let acks = (0..MAX_ACKS as u64).map(|i| Ack { replica: key(i), sig: [9; 64] }).collect();
    let c = Certificate { signed, acks };
    let bytes = postcard::to_allocvec(&c).unwrap();
    assert!(bytes.len() <= MAX_CERTIFICATE_BYTES, "{}", bytes.len());
    assert_eq!(decode_certificate(&bytes), Ok(c.clone()));
    let mut over = c;
    over.acks.push(Ack { replica: key(99), sig: [0; 64] });
    assert_eq!(decode_certificate(&postcard::to_allocvec(&over).unwrap()), Err(LedgerError::Limits));
    assert_eq!(decode_certificate(&[0xff; 40]), Err(LedgerError::Limits));
    assert_eq!(decode_certificate(&vec![0; MAX_CERTIFICATE_BYTES + 1]), Err(LedgerError::Limits));
}

/// Each rule of acknowledging: the next seq only, named credits applied and unspent, the
/// balance covering the amount, one transfer per slot (a second one is evidence and bans
/// the owner), limits.
#[test]
fn a_replica_acknowledges_by_the_rules() {
    let v = SimVerifier;
    let (mint, alice, bob, me) = (SimKey(key(0)), SimKey(key(1)), SimKey(key(2)), SimKey(key(3)));
    let group = Group::new(vec![me.key()], 1).unwrap();
    let mut r = Replica::new(mint.key());
    let fund = transfer(mint.key(), 1, alice.key(), 50, vec![]).sign(&mint);
    let ack = r.acknowledge(&fund, &me, &v).unwrap();
    let c = Certificate { signed: fund.clone(), acks: vec![ack] };
    let credit = fund.transfer.id();

    let spend = transfer(alice.key(), 1, bob.key(), 20, vec![credit]).sign(&alice);
    assert_eq!(r.acknowledge(&spend, &me, &v), Err(LedgerError::MissingDeps(vec![credit])));
    r.apply_debit(&c, &group, &v).unwrap();
    r.apply_credit(&c, &group, &v).unwrap();
    let late = transfer(alice.key(), 2, bob.key(), 20, vec![credit]).sign(&alice);
    assert_eq!(r.acknowledge(&late, &me, &v), Err(LedgerError::WrongSeq { expected: 1, got: 2 }));
    let greedy = transfer(alice.key(), 1, bob.key(), 51, vec![credit]).sign(&alice);
    assert_eq!(r.acknowledge(&greedy, &me, &v), Err(LedgerError::Overdraft { balance: 50, amount: 51 }));
    let unnamed = transfer(alice.key(), 1, bob.key(), 1, vec![]).sign(&alice);
    assert_eq!(r.acknowledge(&unnamed, &me, &v), Err(LedgerError::Overdraft { balance: 0, amount: 1 }));
    let mut bad = spend.clone();
    bad.sig[0] ^= 1;
    assert_eq!(r.acknowledge(&bad, &me, &v), Err(LedgerError::BadSignature));
    let mut long = spend.transfer.clone();
    long.memo = vec![0; MAX_MEMO + 1];
    assert_eq!(r.acknowledge(&long.sign(&alice), &me, &v), Err(LedgerError::Limits));

    let first = r.acknowledge(&spend, &me, &v).unwrap();
    assert_eq!(r.acknowledge(&spend, &me, &v).unwrap(), first, "the same transfer, the same answer");
    let other = transfer(alice.key(), 1, mint.key(), 20, vec![credit]).sign(&alice);
    assert!(matches!(r.acknowledge(&other, &me, &v), Err(LedgerError::Conflict(_))));
    assert!(r.is_banned(&alice.key()));
    assert_eq!(r.evidence()[0].guilty(&v), Some(vec![alice.key()]));

    // The certified transfer is applied; the credit it named cannot be named again.
    let c = Certificate { signed: spend, acks: vec![first] };
    r.apply_debit(&c, &group, &v).unwrap();
    r.apply_credit(&c, &group, &v).unwrap();
    assert_eq!(r.apply_debit(&c, &group, &v), Ok(Applied::Already));
    assert_eq!(r.account(&alice.key()).spendable(), 30);
    let again = transfer(alice.key(), 2, bob.key(), 5, vec![credit]).sign(&alice);
    let mut r2 = r.clone();
    r2.banned.clear();
    assert_eq!(r2.acknowledge(&again, &me, &v), Err(LedgerError::MissingDeps(vec![credit])));
    r.check_conservation().unwrap();
}

/// Certificates formed so far, by id and by slot.
type Known<'a> = (&'a HashMap<TransferId, Certificate>, &'a HashMap<(Key, u64), Vec<Certificate>>);

/// A node of the simulated group.
#[derive(Debug, Clone)]
enum Node {
    Honest(Box<Replica>),
    /// Acknowledges anything well signed by its owner, for any slot, any number of times.
    Equivocator,
    /// Never answers.
    Silent,
}

/// An owner's own record: its next seq, its credits not yet named, the transfer it waits to
/// see certified (sent again as is until it is: sending another for the same slot would be
/// equivocating).
#[derive(Debug, Clone, Default)]
struct Wallet {
    seq: u64,
    credits: Vec<(TransferId, u64)>,
    balance: u64,
    pending: Option<Signed>,
    /// Its latest certificate, sent along with its next transfer.
    last: Option<Certificate>,
    equivocates: bool,
}

struct Sim {
    rng: Rng,
    v: SimVerifier,
    group: Group,
    keys: Vec<SimKey>,
    nodes: Vec<Node>,
    mint: SimKey,
    owners: Vec<SimKey>,
    wallets: Vec<Wallet>,
    /// Every certificate formed, by slot and by id.
    certified: HashMap<(Key, u64), Vec<Certificate>>,
    all: Vec<Certificate>,
    by_id: HashMap<TransferId, Certificate>,
    /// Certificates gossiped so far, and the mint's next seq.
    gossiped: usize,
    mint_seq: u64,
    attempts: u64,
    conflicts: u64,
    evidence_checked: u64,
    /// Whether honest replicas must agree after gossip (not once a group is captured).
    agree: bool,
    /// Honest replicas' refusals, by kind.
    refusals: BTreeMap<String, u64>,
    /// Churn of the group: every so many steps an honest member leaves and a new one joins.
    churn: Option<Churn>,
}

/// How the group churns, and what a new member does before it acknowledges anything.
#[derive(Debug, Clone, Copy)]
struct Churn {
    every: u64,
    joined: u64,
}

/// How a run went.
#[derive(Debug, Default)]
struct Outcome {
    attempts: u64,
    certificates: usize,
    conflicts: u64,
    evidence_checked: u64,
    /// Members replaced by churn.
    joined: u64,
}

impl Sim {
    fn new(seed: u64, byzantine: usize, silent: usize, owners: usize) -> Self {
        let r = 16;
        let keys: Vec<SimKey> = (0..r as u64).map(|i| SimKey(key(1000 + i))).collect();
        let group = Group::new(keys.iter().map(|k| k.0).collect(), 11).unwrap();
        let mint = SimKey(key(1));
        let nodes = (0..r)
            .map(|i| {
                if i < byzantine {
                    Node::Equivocator
                } else if i < byzantine + silent {
                    Node::Silent
                } else {
                    Node::Honest(Box::new(Replica::new(mint.0)))
                }
            })
            .collect();
        let owners: Vec<SimKey> = (0..owners as u64).map(|i| SimKey(key(10 + i))).collect();
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let wallets = owners
            .iter()
            .map(|_| Wallet { seq: 1, equivocates: rng.chance(0.3), ..Wallet::default() })
            .collect();
        Self {
            rng,
            v: SimVerifier,
            group,
            keys,
            nodes,
            mint,
            owners,
            wallets,
            certified: HashMap::new(),
            all: Vec::new(),
            by_id: HashMap::new(),
            gossiped: 0,
            mint_seq: 1,
            attempts: 0,
            conflicts: 0,
            evidence_checked: 0,
            agree: byzantine <= 5,
            refusals: BTreeMap::new(),
            churn: None,
        }
    }

    /// An honest member leaves (its key leaves the group) and a new one joins. The new one
    /// adopts each account's state as `f + 1` members give it alike (the Byzantine give an
    /// inflated one, all alike), takes the credits members list that it lacks (by their
    /// certificates, as a relay fetches them), and holds the transfer members report
    /// acknowledged for an open slot by acknowledging it itself (the vote of the member that
    /// left, kept: `a_new_member_holds_the_open_slot_its_group_acknowledged` shows why).
    fn churn(&mut self) {
        let Some(mut churn) = self.churn else { return };
        let honest: Vec<usize> =
            (0..self.nodes.len()).filter(|&i| matches!(self.nodes[i], Node::Honest(_))).collect();
        let i = honest[self.rng.below(honest.len())];
        churn.joined += 1;
        self.churn = Some(churn);
        let me = SimKey(key(5000 + churn.joined));
        self.keys[i] = me;
        self.group = Group::new(self.keys.iter().map(|k| k.0).collect(), self.group.quorum).unwrap();
        let mut fresh = Replica::new(self.mint.0);
        let accounts: Vec<Key> = self.owners.iter().map(|o| o.0).chain([self.mint.0]).collect();
        for a in accounts {
            let (mut states, mut pending) = (Vec::new(), Vec::new());
            let mut credits: Vec<TransferId> = Vec::new();
            for (j, n) in self.nodes.iter().enumerate() {
                let Node::Honest(r) = n else { continue };
                if j == i {
                    continue;
                }
                states.push(r.state(&a));
                credits.extend(r.state(&a).credits.iter().map(|c| c.0));
                pending.extend(r.view(&a).pending.map(|p| *p));
            }
            let mut liar = states[0].clone();
            liar.balance += 1_000_000;
            let byzantine = self.nodes.iter().filter(|n| matches!(n, Node::Equivocator)).count();
            states.extend(std::iter::repeat_n(liar, byzantine));
            fresh.adopt(&states, self.group.tolerates() + 1);
            for id in credits {
                if let Some(c) = self.by_id.get(&id) {
                    fresh.apply_verified_credit(c);
                }
            }
            for p in pending {
                let _ = fresh.acknowledge(&p, &me, &self.v);
            }
            assert_eq!(fresh.view(&a).balance, states[0].balance, "the liars' state was adopted");
        }
        fresh.check_conservation().unwrap();
        self.nodes[i] = Node::Honest(Box::new(fresh));
    }

    /// Sends `s` to each node with probability `reach`; the acknowledgements that came back.
    fn ask(&mut self, s: &Signed, reach: f64) -> Vec<Ack> {
        let to: Vec<usize> = (0..self.nodes.len()).filter(|_| self.rng.chance(reach)).collect();
        self.ask_some(s, &to)
    }

    /// Sends `s` to nodes `to`; the acknowledgements that came back.
    fn ask_some(&mut self, s: &Signed, to: &[usize]) -> Vec<Ack> {
        self.attempts += 1;
        let mut acks = Vec::new();
        for &i in to {
            let me = self.keys[i];
            match &mut self.nodes[i] {
                Node::Honest(r) => match r.acknowledge(s, &me, &self.v) {
                    // The owner hands over the credits the replica says it lacks, and asks again.
                    Err(LedgerError::MissingDeps(ids)) => {
                        for id in ids {
                            if let Some(c) = self.by_id.get(&id) {
                                // Fetched (verified when it was formed: the group churns).
                                r.apply_verified_credit(c);
                            }
                        }
                        match r.acknowledge(s, &me, &self.v) {
                            Ok(a) => acks.push(a),
                            Err(e) => {
                                let kind =
                                    format!("{e:?}").chars().take_while(|c| c.is_alphanumeric()).collect();
                                *self.refusals.entry(kind).or_default() += 1;
                            }
                        }
                    }
                    Ok(a) => acks.push(a),
                    Err(e) => {
                        let kind = format!("{e:?}").chars().take_while(|c| c.is_alphanumeric()).collect();
                        *self.refusals.entry(kind).or_default() += 1;
                    }
                },
                Node::Equivocator => {
                    if s.verify(&self.v) {
                        let t = &s.transfer;
                        acks.push(Ack { replica: me.0, sig: me.sign(&ack_message(&t.from, t.seq, &t.id())) });
                    }
                }
                Node::Silent => {}
            }
        }
        acks
    }

    /// Records a certificate formed; checks it against any other for its slot.
    fn certified(&mut self, c: Certificate) {
        self.record(c, true);
    }

    /// Records a certificate formed (checked against any other for its slot); a withheld one
    /// (`publish` false) is kept by its owner: not delivered, not gossiped.
    fn record(&mut self, c: Certificate, publish: bool) {
        let t = &c.signed.transfer;
        let slot = (t.from, t.seq);
        let id = t.id();
        let known = self.certified.entry(slot).or_default();
        if known.iter().any(|k| k.signed.transfer.id() == id) {
            return;
        }
        if let Some(first) = known.first() {
            self.conflicts += 1;
            // Evidence: the owner and only replicas that signed both, at least f + 1 of them.
            let guilty = Evidence::of(first.clone(), c.clone())
                .guilty(&self.v)
                .expect("conflicting certificates are evidence");
            assert_eq!(guilty[0], t.from);
            let replicas = &guilty[1..];
            assert!(replicas.len() > self.group.tolerates(), "evidence names {} replicas", replicas.len());
            for g in replicas {
                let i = self.keys.iter().position(|k| k.0 == *g).unwrap();
                assert!(matches!(self.nodes[i], Node::Equivocator), "evidence names an honest replica");
            }
            self.evidence_checked += 1;
        }
        known.push(c.clone());
        if publish {
            self.by_id.insert(id, c.clone());
            self.all.push(c);
        }
    }

    /// Delivers `c` to each honest replica with probability `reach`, debit and credit, with
    /// the credits it names first when a replica lacks them (as a sender would).
    fn deliver(&mut self, c: &Certificate, reach: f64) {
        for i in 0..self.nodes.len() {
            if !self.rng.chance(reach) {
                continue;
            }
            let Node::Honest(r) = &mut self.nodes[i] else { continue };
            Self::apply(r, c, &self.group, &self.v, (&self.by_id, &self.certified), 0);
            r.check_conservation().unwrap_or_else(|e| panic!("replica {i}: {e}"));
        }
    }

    /// Applies `c` at `r` as a credit and a debit, first applying the credits it names and
    /// the sender's earlier certificates that `r` lacks (as a sender hands them along).
    fn apply(r: &mut Replica, c: &Certificate, group: &Group, v: &SimVerifier, known: Known<'_>, depth: u32) {
        let _ = r.apply_credit(c, group, v);
        match r.apply_debit(c, group, v) {
            Err(LedgerError::MissingDeps(ids)) if depth < 64 => {
                for id in ids {
                    if let Some(dep) = known.0.get(&id) {
                        Self::apply(r, dep, group, v, known, depth + 1);
                    }
                }
                let _ = r.apply_debit(c, group, v);
            }
            Err(LedgerError::WrongSeq { expected, got }) if got > expected && depth < 64 => {
                let from = c.signed.transfer.from;
                for seq in expected..got {
                    for d in known.1.get(&(from, seq)).into_iter().flatten() {
                        Self::apply(r, d, group, v, known, depth + 1);
                    }
                }
                let _ = r.apply_debit(c, group, v);
            }
            _ => {}
        }
    }

    /// One owner's step: fund it, pay someone, overdraw, or (an equivocating owner) sign two
    /// transfers for one slot and send each to part of the group.
    fn step(&mut self) {
        let o = self.rng.below(self.owners.len());
        let owner = self.owners[o];
        if self.rng.chance(0.05) {
            // A replayed certificate, to anyone.
            if !self.all.is_empty() {
                let c = self.all[self.rng.below(self.all.len())].clone();
                self.deliver(&c, 0.5);
            }
            return;
        }
        if self.wallets[o].balance + self.wallets[o].credits.iter().map(|c| c.1).sum::<u64>() < 10 {
            self.fund(o, 100);
            return;
        }
        let signed = match self.wallets[o].pending.clone() {
            Some(s) => s,
            None => {
                let w = &self.wallets[o];
                let spendable = w.balance + w.credits.iter().take(MAX_DEPS).map(|c| c.1).sum::<u64>();
                let to = self.owners[self.rng.below(self.owners.len())].0;
                let to = if to == owner.0 { BURN } else { to };
                // One in ten tries to spend more than it has (once: honest replicas refuse
                // it and keep nothing, so the slot stays free).
                let overdraw = self.rng.chance(0.1);
                let amount = if overdraw {
                    spendable + 1 + self.rng.below(50) as u64
                } else {
                    1 + self.rng.below(spendable as usize) as u64
                };
                let deps = w.credits.iter().take(MAX_DEPS).map(|c| c.0).collect();
                let s = transfer(owner.0, w.seq, to, amount, deps).sign(&owner);
                if self.wallets[o].equivocates && self.rng.chance(0.5) {
                    let mut twin = s.transfer.clone();
                    twin.amount = 1 + self.rng.below(spendable as usize) as u64;
                    twin.to = self.owners[self.rng.below(self.owners.len())].0;
                    if twin.to == owner.0 {
                        twin.to = BURN;
                    }
                    let twin = twin.sign(&owner);
                    // The honest replicas split at random, each part sees one; the
                    // Byzantine see both.
                    let mut honest: Vec<usize> =
                        (0..self.nodes.len()).filter(|&i| matches!(self.nodes[i], Node::Honest(_))).collect();
                    for i in (1..honest.len()).rev() {
                        honest.swap(i, self.rng.below(i + 1));
                    }
                    let cut = self.rng.below(honest.len() + 1);
                    let byz: Vec<usize> = (0..self.nodes.len())
                        .filter(|&i| matches!(self.nodes[i], Node::Equivocator))
                        .collect();
                    let first: Vec<usize> = honest[..cut].iter().chain(&byz).copied().collect();
                    let second: Vec<usize> = honest[cut..].iter().chain(&byz).copied().collect();
                    self.send_along(o);
                    let a = self.ask_some(&s, &first);
                    let b = self.ask_some(&twin, &second);
                    for (signed, acks) in [(s.clone(), a), (twin, b)] {
                        if acks.len() >= self.group.quorum {
                            let c = Certificate { signed, acks };
                            // Where the group churns, the owner may keep a certificate to
                            // itself and sign another for the slot later, hoping the
                            // members that acknowledged the first have left by then.
                            if self.churn.is_some() && self.rng.chance(0.5) {
                                self.record(c, false);
                            } else {
                                self.certified(c.clone());
                                self.settle(o, &c);
                            }
                        }
                    }
                    return;
                }
                if overdraw {
                    self.send_along(o);
                    let acks = self.ask(&s, 0.9);
                    assert!(acks.len() < self.group.quorum, "an overdraft was certified");
                    return;
                }
                self.wallets[o].pending = Some(s.clone());
                s
            }
        };
        self.send_along(o);
        let acks = self.ask(&signed, 0.9);
        if acks.len() >= self.group.quorum {
            let c = Certificate { signed, acks };
            self.certified(c.clone());
            self.settle(o, &c);
        }
    }

    /// What an owner sends along with a transfer: its latest certificate, so that a replica
    /// that missed it can take the next seq (credits a replica lacks are handed over when it
    /// says which, in `ask_some`).
    fn send_along(&mut self, o: usize) {
        if let Some(last) = self.wallets[o].last.clone() {
            self.deliver(&last, 1.0);
        }
    }

    /// The owner's wallet after its certificate `c`; the certificate delivered to part of
    /// the group (the rest get it by gossip).
    fn settle(&mut self, o: usize, c: &Certificate) {
        let t = c.signed.transfer.clone();
        let w = &mut self.wallets[o];
        if t.seq == w.seq {
            let named: u64 = w.credits.iter().filter(|(id, _)| t.deps.contains(id)).map(|c| c.1).sum();
            w.credits.retain(|(id, _)| !t.deps.contains(id));
            w.balance = (w.balance + named).saturating_sub(t.amount);
            w.seq += 1;
            w.pending = None;
            w.last = Some(c.clone());
        }
        if let Some(r) = self.owners.iter().position(|k| k.0 == t.to) {
            self.wallets[r].credits.push((t.id(), t.amount));
        }
        self.deliver(c, 0.7);
    }

    fn fund(&mut self, o: usize, amount: u64) {
        let s = transfer(self.mint.0, self.mint_seq, self.owners[o].0, amount, vec![]).sign(&self.mint);
        let acks = self.ask(&s, 1.0);
        if acks.len() >= self.group.quorum {
            self.mint_seq += 1;
            let c = Certificate { signed: s, acks };
            self.certified(c.clone());
            self.wallets[o].credits.push((c.signed.transfer.id(), amount));
            self.deliver(&c, 1.0);
        }
    }

    /// Every certificate not gossiped yet to every honest replica (those before were):
    /// afterwards they agree on every account.
    fn gossip(&mut self) {
        let new: Vec<Certificate> = self.all[self.gossiped..].to_vec();
        self.gossiped = self.all.len();
        for c in &new {
            self.deliver(c, 1.0);
        }
        let honest: Vec<&Replica> = self
            .nodes
            .iter()
            .filter_map(|n| if let Node::Honest(r) = n { Some(&**r) } else { None })
            .collect();
        for a in self.owners.iter().map(|o| o.0).filter(|_| self.agree) {
            let views: HashSet<(u64, u64)> =
                honest.iter().map(|r| (r.account(&a).next_seq, r.account(&a).spendable())).collect();
            assert!(views.len() <= 1, "honest replicas disagree on an account: {views:?}");
        }
    }

    fn run(mut self, attempts: u64) -> Outcome {
        let mut steps = 0u64;
        while self.attempts < attempts {
            self.step();
            steps += 1;
            if steps.is_multiple_of(2000) {
                self.gossip();
            }
            if let Some(c) = self.churn {
                if steps.is_multiple_of(c.every) {
                    // After gossip honest members agree, so a new member can adopt; slots
                    // acknowledged and not certified stay open across the churn.
                    self.gossip();
                    self.churn();
                }
            }
        }
        self.gossip();
        eprintln!("refusals: {:?}", self.refusals);
        Outcome {
            attempts: self.attempts,
            certificates: self.all.len(),
            conflicts: self.conflicts,
            evidence_checked: self.evidence_checked,
            joined: self.churn.map_or(0, |c| c.joined),
        }
    }
}

fn attempts_per_seed(default: u64) -> u64 {
    std::env::var("KURA_LEDGER_ATTEMPTS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Up to f Byzantine replicas (acknowledging everything, twice over) and silent ones,
/// owners that equivocate, overdraw and replay, messages lost: never two certificates for
/// one slot, value conserved at every honest replica after every delivery, and honest
/// replicas agree on every account after gossip. `KURA_LEDGER_ATTEMPTS` per seed (CI runs
/// 8 seeds of 1,500; `KURA_LEDGER_ATTEMPTS=125000 cargo test --release -p kura-core --lib
/// ledger -- --nocapture` runs 10^6).
#[test]
fn at_most_f_byzantine_never_certify_two_transfers_for_one_slot() {
    let mut total = Outcome::default();
    for seed in 0..8 {
        let sim = Sim::new(seed, 5, (seed % 2) as usize, 8);
        let o = sim.run(attempts_per_seed(1_500));
        assert_eq!(o.conflicts, 0, "seed {seed}: {o:?}");
        eprintln!("seed {seed}: {} attempts, {} certificates, 0 conflicting", o.attempts, o.certificates);
        total.attempts += o.attempts;
        total.certificates += o.certificates;
    }
    assert!(total.certificates > 1000, "{total:?}");
    eprintln!("{} transfer attempts, {} certificates, 0 conflicting", total.attempts, total.certificates);
}

/// The group churns: every 100 steps an honest member leaves and a new one joins, which
/// adopts each account's state from `f + 1` alike members (refusing the Byzantine members'
/// inflated one) and holds what members report acknowledged for an open slot. With f
/// Byzantine, equivocating owners that also withhold certificates to try the slot again
/// after churn: never two certificates for one slot, value conserved at every honest
/// member after every delivery, honest members (new ones too) agree after gossip.
#[test]
fn a_churning_group_never_certifies_two_transfers_for_one_slot() {
    let mut total = Outcome::default();
    for seed in 0..6 {
        let mut sim = Sim::new(100 + seed, 5, (seed % 2) as usize, 8);
        sim.churn = Some(Churn { every: 100, joined: 0 });
        let o = sim.run(attempts_per_seed(1_500));
        assert_eq!(o.conflicts, 0, "seed {seed}: {o:?}");
        eprintln!(
            "seed {seed}: {} attempts, {} members replaced, {} certificates, 0 conflicting",
            o.attempts, o.joined, o.certificates
        );
        total.attempts += o.attempts;
        total.certificates += o.certificates;
    }
    assert!(total.certificates > 1000, "{total:?}");
    eprintln!(
        "{} transfer attempts with churn, {} certificates, 0 conflicting",
        total.attempts, total.certificates
    );
}

/// Why a new member holds the open slot. Sixteen members, five Byzantine (signing anything);
/// an owner gets a certificate for `T1` from the five and six honest, and keeps it. One of
/// those six leaves; a new member joins and adopts the account's state (the slot is open
/// there: `T1` was never applied). The owner then asks everyone to acknowledge a twin `T2`.
/// A new member that did not hold `T1` gives the eleventh acknowledgement: two certificates
/// for one slot, each valid in the group it was formed in. One that holds `T1` refuses and
/// takes the owner's two signatures as evidence: `T2` gets ten.
#[test]
fn a_new_member_holds_the_open_slot_its_group_acknowledged() {
    let v = SimVerifier;
    let mint = SimKey(key(1));
    let owner = SimKey(key(2));
    let byz: Vec<SimKey> = (0..5).map(|n| SimKey(key(100 + n))).collect();
    let honest: Vec<SimKey> = (0..11).map(|n| SimKey(key(200 + n))).collect();
    let newcomer = SimKey(key(300));
    let group_of = |keys: &[SimKey]| Group::new(keys.iter().map(|k| k.0).collect(), 11).unwrap();
    let old: Vec<SimKey> = byz.iter().chain(&honest).copied().collect();
    let new: Vec<SimKey> = byz.iter().chain(&honest[1..]).chain([&newcomer]).copied().collect();
    let (old_group, new_group) = (group_of(&old), group_of(&new));
    let mut replicas: Vec<Replica> = (0..11).map(|_| Replica::new(mint.0)).collect();
    let fund = transfer(mint.0, 1, owner.0, 100, vec![]).sign(&mint);
    let fund = Certificate { acks: acks_by(&old, &fund), signed: fund };
    for r in &mut replicas {
        r.apply_credit(&fund, &old_group, &v).unwrap();
    }
    let fund_id = fund.signed.transfer.id();
    let t1 = transfer(owner.0, 1, key(3), 60, vec![fund_id]).sign(&owner);
    let t2 = transfer(owner.0, 1, key(4), 60, vec![fund_id]).sign(&owner);
    let mut acks1 = acks_by(&byz, &t1);
    for (r, k) in replicas.iter_mut().zip(&honest).take(6) {
        acks1.push(r.acknowledge(&t1, k, &v).unwrap());
    }
    let c1 = Certificate { signed: t1.clone(), acks: acks1 };
    assert!(c1.verify(&old_group, &v).is_ok());

    for holds in [false, true] {
        let mut members: Vec<Replica> = replicas[1..].to_vec();
        let mut fresh = Replica::new(mint.0);
        let states: Vec<AccountState> = members.iter().map(|r| r.state(&owner.0)).collect();
        // Not further along (the slot is open everywhere): the credit comes by certificate.
        assert!(!fresh.adopt(&states, 6));
        fresh.apply_credit(&fund, &new_group, &v).unwrap();
        if holds {
            for p in members.iter().filter_map(|r| r.view(&owner.0).pending) {
                let _ = fresh.acknowledge(&p, &newcomer, &v);
            }
        }
        members.push(fresh);
        let keys: Vec<SimKey> = honest[1..].iter().chain([&newcomer]).copied().collect();
        let mut acks2 = acks_by(&byz, &t2);
        for (r, k) in members.iter_mut().zip(&keys) {
            if let Ok(a) = r.acknowledge(&t2, k, &v) {
                acks2.push(a);
            }
        }
        let c2 = Certificate { signed: t2.clone(), acks: acks2 };
        let certified = c2.verify(&new_group, &v).is_ok();
        assert_eq!(certified, !holds, "holding the open slot: {holds}");
        if holds {
            assert!(members.last().unwrap().is_banned(&owner.0), "the new member took no evidence");
        }
    }
}

/// With f + 1 Byzantine replicas an equivocating owner gets two certificates for one slot;
/// each such conflict is evidence naming the owner and only Byzantine replicas, at least
/// f + 1 of them.
#[test]
fn beyond_f_byzantine_every_conflict_is_evidence() {
    let mut conflicts = 0;
    for seed in 0..4 {
        let mut sim = Sim::new(seed, 6, 0, 6);
        for w in &mut sim.wallets {
            w.equivocates = true;
        }
        let o = sim.run(attempts_per_seed(1_500));
        assert_eq!(o.conflicts, o.evidence_checked);
        conflicts += o.conflicts;
    }
    assert!(conflicts > 0, "no conflict arose: the adversary was not exercised");
}

/// A replica that missed certificates is brought level by what `missing` lists, fetched
/// from one that has them; the views then agree. `agreed` needs `need` alike views.
#[test]
fn a_lagging_replica_is_brought_level_by_the_certificates_it_lacks() {
    let v = SimVerifier;
    let mint = SimKey(key(1000));
    let (alice, bob) = (SimKey(key(1)), SimKey(key(2)));
    let replicas: Vec<SimKey> = (10..14).map(|n| SimKey(key(n))).collect();
    let group = Group::new(replicas.iter().map(|r| r.0).collect(), 3).unwrap();
    let mut up = Replica::new(mint.0);
    let mut behind = Replica::new(mint.0);
    let certify = |r: &mut Replica, s: &Signed| {
        let ack = r.acknowledge(s, &replicas[0], &v).unwrap();
        Certificate { signed: s.clone(), acks: [vec![ack], acks_by(&replicas[1..3], s)].concat() }
    };
    let mut by_id: HashMap<TransferId, Certificate> = HashMap::new();
    let apply = |r: &mut Replica, c: &Certificate| {
        r.apply_credit(c, &group, &v).unwrap();
        r.apply_debit(c, &group, &v).unwrap();
    };
    // Both see Alice funded; only `up` sees her next three transfers and a new credit.
    let fund = certify(&mut up, &transfer(mint.0, 1, alice.0, 100, vec![]).sign(&mint));
    apply(&mut up, &fund);
    apply(&mut behind, &fund);
    by_id.insert(fund.signed.transfer.id(), fund.clone());
    let mut deps = vec![fund.signed.transfer.id()];
    for seq in 1..=3 {
        let c = certify(&mut up, &transfer(alice.0, seq, bob.0, 10, std::mem::take(&mut deps)).sign(&alice));
        apply(&mut up, &c);
        by_id.insert(c.signed.transfer.id(), c);
        // The mint sends her more: a credit she names in her next transfer.
        let back = certify(&mut up, &transfer(mint.0, seq + 1, alice.0, 1, vec![]).sign(&mint));
        by_id.insert(back.signed.transfer.id(), back.clone());
        up.apply_credit(&back, &group, &v).unwrap();
        up.apply_debit(&back, &group, &v).unwrap();
        deps.push(back.signed.transfer.id());
    }
    let (good, lag) = (up.view(&alice.0), behind.view(&alice.0));
    assert_eq!(AccountView::agreed([&good, &good, &lag], 2), Ok(good.clone()));
    assert_eq!(AccountView::agreed([&good, &lag], 2), Err(1));
    let wanted = lag.missing(&good);
    // Those are the refusals a replica can be helped out of by handing it certificates.
    assert!(LedgerError::lacks_state(LedgerError::WrongSeq { expected: 1, got: 2 }.code()));
    assert!(LedgerError::lacks_state(LedgerError::MissingDeps(vec![]).code()));
    assert!(!LedgerError::lacks_state(LedgerError::Overdraft { balance: 1, amount: 2 }.code()));
    // Three debits, the two credits named by the later two, and the one not yet named.
    assert_eq!(wanted.len(), 6, "{wanted:?}");
    for id in &wanted {
        let c = &by_id[id];
        if c.signed.transfer.to == alice.0 {
            behind.apply_credit(c, &group, &v).unwrap();
        } else {
            behind.apply_debit(c, &group, &v).unwrap();
        }
    }
    assert!(behind.view(&alice.0).agrees(&good));
    up.check_conservation().unwrap();
    assert!(behind.view(&alice.0).missing(&good).is_empty());
    // Missing more than the view lists: no debits to apply out of order.
    let mut far = good.clone();
    far.next_seq += 20;
    assert!(lag.missing(&far).iter().all(|id| good.credits.iter().any(|(c, _)| c == id)));
}

/// A spending cap: within a window an account is acknowledged no more than the cap, the
/// next window allows more, and where a group is captured (two Byzantine replicas of four)
/// what the owner spends twice is no more than the cap.
#[test]
fn the_spending_cap_bounds_what_a_captured_group_lets_an_owner_spend_twice() {
    let v = SimVerifier;
    let mint = SimKey(key(1000));
    let (alice, bob, carol) = (SimKey(key(1)), SimKey(key(2)), SimKey(key(3)));
    let cap = SpendCap { amount: 100, window: 3600 };
    let keys: Vec<SimKey> = (20..24).map(|n| SimKey(key(n))).collect();
    let group = Group::new(keys.iter().map(|k| k.0).collect(), 3).unwrap();
    let mut honest: Vec<Replica> = (0..2).map(|_| Replica::new(mint.0).with_cap(cap)).collect();
    let fund = transfer(mint.0, 1, alice.0, 1000, vec![]).sign(&mint);
    let fund_cert = Certificate { signed: fund.clone(), acks: acks_by(&keys[..3], &fund) };
    for r in &mut honest {
        r.set_now(7200);
        r.apply_credit(&fund_cert, &group, &v).unwrap();
        r.apply_debit(&fund_cert, &group, &v).unwrap();
    }
    let dep = vec![fund.transfer.id()];
    // Within the cap, then over it.
    let t1 = transfer(alice.0, 1, bob.0, 60, dep.clone()).sign(&alice);
    let a = honest[0].acknowledge(&t1, &keys[0], &v).unwrap();
    let c1 = Certificate { signed: t1.clone(), acks: [vec![a], acks_by(&keys[2..], &t1)].concat() };
    honest[0].apply_debit(&c1, &group, &v).unwrap();
    honest[0].apply_credit(&c1, &group, &v).unwrap();
    let t2 = transfer(alice.0, 2, bob.0, 50, vec![]).sign(&alice);
    assert_eq!(
        honest[0].acknowledge(&t2, &keys[0], &v),
        Err(LedgerError::CapReached { spent: 60, cap: 100 })
    );
    honest[0].set_now(7200 + 3600);
    assert!(honest[0].acknowledge(&t2, &keys[0], &v).is_ok(), "the next window allows more");

    // The group captured: replicas 2 and 3 acknowledge anything. Alice signs two transfers
    // for one slot, one for each honest replica: the amount over the cap gets no honest
    // acknowledgement, so no certificate; within the cap both are certified.
    let fresh = || Replica::new(mint.0).with_cap(cap);
    let mut pair = [fresh(), fresh()];
    for r in &mut pair {
        r.set_now(7200);
        r.apply_credit(&fund_cert, &group, &v).unwrap();
    }
    let big =
        [transfer(alice.0, 1, bob.0, 500, dep.clone()), transfer(alice.0, 1, carol.0, 500, dep.clone())];
    for (r, t) in pair.iter_mut().zip(&big) {
        assert!(matches!(
            r.acknowledge(&t.clone().sign(&alice), &keys[0], &v),
            Err(LedgerError::CapReached { .. })
        ));
    }
    let small = [transfer(alice.0, 1, bob.0, 100, dep.clone()), transfer(alice.0, 1, carol.0, 100, dep)];
    let mut twice = 0;
    for ((r, t), k) in pair.iter_mut().zip(&small).zip([&keys[0], &keys[1]]) {
        let s = t.clone().sign(&alice);
        let a = r.acknowledge(&s, k, &v).unwrap();
        let c = Certificate { signed: s.clone(), acks: [vec![a], acks_by(&keys[2..], &s)].concat() };
        assert!(c.verify(&group, &v).is_ok());
        twice += t.amount;
    }
    assert!(twice - 100 <= cap.amount, "spent twice beyond the cap");
}

/// A replica new to an account's group adopts its state from `f + 1` alike members: it then
/// agrees with them, acknowledges the account's next transfer, and refuses (as a replay) a
/// certificate of a credit the account spent before it joined; states that fewer than
/// `f + 1` give (a Byzantine member's inflated one) are not adopted.
#[test]
fn a_new_member_adopts_an_accounts_state_from_f_plus_one_and_refuses_spent_credits() {
    let v = SimVerifier;
    let mint = SimKey(key(1000));
    let (alice, bob) = (SimKey(key(1)), SimKey(key(2)));
    let keys: Vec<SimKey> = (30..34).map(|n| SimKey(key(n))).collect();
    let group = Group::new(keys.iter().map(|k| k.0).collect(), 3).unwrap();
    let sign_all = |s: &Signed| Certificate { signed: s.clone(), acks: acks_by(&keys[..3], s) };
    let mut members: Vec<Replica> = (0..3).map(|_| Replica::new(mint.0)).collect();
    let apply = |r: &mut Replica, c: &Certificate| {
        r.apply_credit(c, &group, &v).unwrap();
        r.apply_debit(c, &group, &v).unwrap();
    };
    // Alice is funded twice, spends the first credit, and has the second unspent; twenty
    // transfers in all, more than a view lists.
    let fund = sign_all(&transfer(mint.0, 1, alice.0, 1000, vec![]).sign(&mint));
    let more = sign_all(&transfer(mint.0, 2, alice.0, 50, vec![]).sign(&mint));
    let mut deps = vec![fund.signed.transfer.id()];
    let mut history = vec![fund.clone(), more.clone()];
    for seq in 1..=20 {
        history.push(sign_all(&transfer(alice.0, seq, bob.0, 10, std::mem::take(&mut deps)).sign(&alice)));
    }
    for r in &mut members {
        for c in &history {
            apply(r, c);
        }
        r.check_conservation().unwrap();
    }
    let good = members[0].state(&alice.0);
    assert_eq!((good.next_seq, good.balance, good.credits.len()), (21, 800, 1));
    assert_eq!(good.spent, vec![fund.signed.transfer.id()]);

    // A new member: a Byzantine member's inflated state alone is not enough.
    let mut fresh = Replica::new(mint.0);
    let mut liar = good.clone();
    liar.balance = 1_000_000;
    assert!(!fresh.adopt(&[liar.clone(), good.clone()], 2));
    assert!(fresh.adopt(&[liar, good.clone(), members[1].state(&alice.0)], 2));
    let (mine, theirs) = (fresh.view(&alice.0), members[0].view(&alice.0));
    assert_eq!(
        (mine.next_seq, mine.balance, &mine.credits),
        (theirs.next_seq, theirs.balance, &theirs.credits)
    );
    assert_eq!(fresh.state(&alice.0), members[0].state(&alice.0));
    fresh.check_conservation().unwrap();
    // The spent credit replayed is refused as applied; nothing changes.
    assert_eq!(fresh.apply_credit(&fund, &group, &v), Ok(Applied::Already));
    assert_eq!(fresh.account(&alice.0).spendable(), 850);
    // Alice's next transfer is acknowledged as the old members acknowledge it.
    let next = transfer(alice.0, 21, bob.0, 830, vec![more.signed.transfer.id()]).sign(&alice);
    assert!(fresh.acknowledge(&next, &keys[3], &v).is_ok());
    // More than the adopted balance and credit is an overdraft there too.
    let mut other = Replica::new(mint.0);
    assert!(other.adopt(&[good.clone(), good], 2));
    let too_much = transfer(alice.0, 21, bob.0, 851, vec![more.signed.transfer.id()]).sign(&alice);
    assert_eq!(
        other.acknowledge(&too_much, &keys[3], &v),
        Err(LedgerError::Overdraft { balance: 850, amount: 851 })
    );
}

/// A state too large for one message goes over in pages: put together from one member's
/// pages it must match the summary `f + 1` gave (a page out of place, a page with an item
/// changed, or a page of another summary is refused; a state whose items were changed
/// fails the digest), and the encoding of a page stays under the message limit. A view
/// that missed more debits than the agreed view lists needs the state; one that missed
/// fewer does not; views that differ only in the transfers they list agree.
#[test]
fn an_accounts_state_goes_over_in_checked_pages() {
    let id = |n: u64| *blake3::hash(&[b"credit".as_slice(), &n.to_le_bytes()].concat()).as_bytes();
    let state = AccountState {
        account: key(1),
        next_seq: 700,
        balance: 12_345,
        credits: (0..300).map(|n| (id(n), u64::MAX - n)).collect(),
        spent: (300..1000).map(id).collect(),
    };
    let mut sorted = state.clone();
    sorted.credits.sort();
    sorted.spent.sort();
    let state = sorted;
    let first = state.page(0).unwrap();
    assert_eq!(first.summary.pages(), 4);
    assert!(state.page(4).is_none());
    for n in 0..4 {
        let p = state.page(n).unwrap();
        let wire = LedgerResponse::State(Box::new(p.clone())).encode();
        assert!(wire.len() <= MAX_LEDGER_MESSAGE, "page {n}: {} bytes", wire.len());
        assert_eq!(LedgerResponse::decode(&wire), Ok(LedgerResponse::State(Box::new(p))));
    }
    // Five members: four honest, one giving another balance; two needed.
    let mut liar = state.clone();
    liar.balance += 1;
    let summaries = [first.summary.clone(), liar.summary(), first.summary.clone(), first.summary.clone()];
    let agreed = StateSummary::agreed(&summaries, 2).unwrap();
    assert_eq!(agreed, first.summary);
    assert!(StateSummary::agreed(&[liar.summary()], 2).is_none());

    let assemble = |pages: &dyn Fn(u32) -> StatePage| -> Result<AccountState, LedgerError> {
        let mut a = StateAssembly::new(agreed.clone());
        while let Some(n) = a.next_page() {
            a.add(pages(n))?;
        }
        a.finish()
    };
    assert_eq!(assemble(&|n| state.page(n).unwrap()), Ok(state.clone()));
    // Out of place, of another summary, an item dropped.
    assert_eq!(assemble(&|n| state.page(n.saturating_sub(1)).unwrap()), Err(LedgerError::Limits));
    assert_eq!(assemble(&|n| liar.page(n).unwrap()), Err(LedgerError::Limits));
    assert_eq!(
        assemble(&|n| {
            let mut p = state.page(n).unwrap();
            p.spent.pop();
            p
        }),
        Err(LedgerError::Limits)
    );
    // Items changed under the agreed summary: the digest does not hold.
    assert_eq!(
        assemble(&|n| {
            let mut p = state.page(n).unwrap();
            if let Some(c) = p.credits.first_mut() {
                c.1 = 1;
            }
            p
        }),
        Err(LedgerError::BadSignature)
    );
    // A member that also holds a reward the others did not mint gives other credits, so
    // another digest, but the same debits: it counts among the alike, and its pages are
    // checked against its own summary; the adopter keeps the credits vouched for.
    let mut minted = state.clone();
    minted.credits.push(([0xee; 32], 9));
    minted.credits.sort();
    let summaries = [minted.summary(), liar.summary(), first.summary.clone()];
    let agreed = StateSummary::agreed(&summaries, 2).unwrap();
    assert!(agreed.same_debits(&minted.summary()) && !liar.summary().same_debits(&agreed));
    let mut from_minted = StateAssembly::new(minted.summary());
    while let Some(n) = from_minted.next_page() {
        from_minted.add(minted.page(n).unwrap()).unwrap();
    }
    let got = from_minted.finish().unwrap().vouched(&state.credits);
    assert_eq!(got, state, "the credit only one member holds is not adopted");
    // A member whose summary claims the agreed debits over pages of other ones (a spent
    // credit dropped) is found out at the end.
    let mut lie = minted.clone();
    lie.spent.pop();
    let claimed = StateSummary { debits: first.summary.debits, ..lie.summary() };
    let mut lying = StateAssembly::new(claimed.clone());
    while let Some(n) = lying.next_page() {
        lying.add(StatePage { summary: claimed.clone(), ..lie.page(n).unwrap() }).unwrap();
    }
    assert_eq!(lying.finish(), Err(LedgerError::BadSignature));

    // Adopted once, not again (not further along).
    let mut fresh = Replica::new(key(1000));
    assert!(fresh.adopt_agreed(state.clone()));
    assert_eq!(fresh.state(&key(1)), state);
    assert!(!fresh.adopt_agreed(state.clone()));

    // Views: listed debits are caught up by certificates, more need the state.
    let t = |seq: u64| transfer(key(1), seq, key(2), 1, vec![]);
    let agreed_view = AccountView {
        next_seq: 40,
        balance: 5,
        recent: (24..40).rev().map(t).collect(),
        ..AccountView::default()
    };
    let behind = |next_seq: u64| AccountView { next_seq, ..AccountView::default() };
    assert!(!behind(24).needs_state(&agreed_view));
    assert_eq!(behind(24).missing(&agreed_view).len(), 16);
    assert!(behind(23).needs_state(&agreed_view));
    assert!(behind(23).missing(&agreed_view).is_empty());
    let adopted = AccountView { recent: Vec::new(), ..agreed_view.clone() };
    assert!(adopted.agrees(&agreed_view));
    assert!(!adopted.needs_state(&agreed_view));
    // Among views alike, the one listing most is taken.
    let got = AccountView::agreed([&adopted, &agreed_view, &adopted], 3).unwrap();
    assert_eq!(got.recent.len(), 16);
}

/// Credits are vouched for one by one: a credit only some replicas hold (a reward the
/// others' views of its audit group did not verify) does not split the replicas' word on
/// the account's debits, and is listed only when `need` list it; an id listed with two
/// amounts is left out; a replica lacking a listed credit does not agree until it holds it,
/// and lacks it as a credit, not as a debit.
#[test]
fn credits_are_vouched_for_one_by_one() {
    let (a, b, c) = ([1; 32], [2; 32], [3; 32]);
    let with = |credits: &[(TransferId, u64)]| AccountView {
        next_seq: 4,
        balance: 10,
        credits: credits.to_vec(),
        ..AccountView::default()
    };
    let views = [with(&[(a, 5), (b, 7)]), with(&[(a, 5), (b, 7)]), with(&[(a, 5)]), with(&[(a, 5), (c, 1)])];
    let got = AccountView::agreed(&views, 3).unwrap();
    assert_eq!((got.next_seq, got.balance, got.credits.clone()), (4, 10, vec![(a, 5)]));
    assert_eq!(AccountView::agreed(&views, 2).unwrap().credits, vec![(a, 5), (b, 7)]);
    assert!(views.iter().all(|v| v.agrees(&got)));
    assert!(!views[2].agrees(&AccountView::agreed(&views, 2).unwrap()));
    let two = AccountView::agreed(&views, 2).unwrap();
    assert_eq!((views[2].missing(&two), views[2].missing_debits(&two)), (vec![b], vec![]));
    // Two amounts for one id, each vouched for: neither is listed.
    let split = [with(&[(a, 5)]), with(&[(a, 5)]), with(&[(a, 6)]), with(&[(a, 6)])];
    assert!(AccountView::agreed(&split, 2).unwrap().credits.is_empty());
    // The debits still need `need` alike: two and two is no agreement.
    let behind = AccountView { next_seq: 3, ..with(&[]) };
    assert_eq!(AccountView::agreed([&views[0], &views[1], &behind, &behind], 3), Err(2));
}

// proptest is a native-only dev-dependency.
#[cfg(not(target_arch = "wasm32"))]
mod overdraft {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any sequence of transfers between three funded accounts — any amount, naming any
        /// subset of the credits the sender ever received (spent ones too), now and then at
        /// a wrong seq — at a replica whose acknowledgement is a certificate: every account's
        /// spendable stays what it received less what it sent (never below zero), a refused
        /// transfer changes nothing, and value is conserved.
        #[test]
        fn no_sequence_of_transfers_overdraws(
            ops in proptest::collection::vec((0usize..3, 1u64..250, any::<u8>(), 0u8..8), 1..80)
        ) {
            let v = SimVerifier;
            let me = SimKey(key(77));
            let group = Group::new(vec![me.0], 1).unwrap();
            let mint = SimKey(key(1));
            let owners: Vec<SimKey> = (0..3).map(|i| SimKey(key(10 + i))).collect();
            let mut r = Replica::new(mint.0);
            let mut received: Vec<Vec<TransferId>> = vec![Vec::new(); 3];
            let mut model = [0u64; 3];
            let certify = |r: &mut Replica, s: &Signed| -> Result<Certificate, LedgerError> {
                let ack = r.acknowledge(s, &me, &v)?;
                let c = Certificate { signed: s.clone(), acks: vec![ack] };
                r.apply_credit(&c, &group, &v)?;
                r.apply_debit(&c, &group, &v)?;
                Ok(c)
            };
            for (i, o) in owners.iter().enumerate() {
                let s = transfer(mint.0, i as u64 + 1, o.0, 100, vec![]).sign(&mint);
                let c = certify(&mut r, &s).unwrap();
                received[i].push(c.signed.transfer.id());
                model[i] = 100;
            }
            for (from, amount, mask, wrong) in ops {
                let to = (from + 1) % 3;
                let deps: Vec<TransferId> = received[from]
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| mask & (1 << (j % 8)) != 0)
                    .map(|(_, id)| *id)
                    .take(MAX_DEPS)
                    .collect();
                let mut seq = r.account(&owners[from].0).next_seq;
                if wrong == 0 {
                    seq += 1;
                }
                let before = (r.account(&owners[from].0), r.account(&owners[to].0));
                let s = transfer(owners[from].0, seq, owners[to].0, amount, deps).sign(&owners[from]);
                match certify(&mut r, &s) {
                    Ok(c) => {
                        prop_assert!(model[from] >= amount, "overdraft certified: {} of {}", amount, model[from]);
                        model[from] -= amount;
                        model[to] += amount;
                        received[to].push(c.signed.transfer.id());
                    }
                    Err(_) => {
                        prop_assert_eq!(&before, &(r.account(&owners[from].0), r.account(&owners[to].0)));
                    }
                }
                for (i, o) in owners.iter().enumerate() {
                    prop_assert_eq!(r.account(&o.0).spendable(), model[i]);
                }
                r.check_conservation().map_err(TestCaseError::fail)?;
            }
        }
    }
}

/// The adversary that chose its account: it holds a quorum of the group of a key it made for
/// that (three of four replicas here), and its replicas certify a transfer of credits the
/// account never had. Without the account work the key costs it nothing, and that is what
/// is refused: by the sender's honest replica, and by every replica of the recipient, which
/// checks only the certificate. With the work the same attack goes through (a quorum is a
/// quorum): what the work buys is the price of each key tried, `2^ACCOUNT_BITS` times more,
/// priced against the group size in `docs/scale/capture.md`. The mint and the burn need no
/// work; a reward or a transfer into an account without it is refused too.
#[test]
fn an_account_ground_for_a_captured_group_moves_nothing_without_the_work() {
    let v = SimVerifier;
    let mint = SimKey(key_without_work(1));
    let byz: Vec<SimKey> = (0..3).map(|n| SimKey(key(400 + n))).collect();
    let honest = SimKey(key(410));
    let group = Group::new(byz.iter().map(|k| k.0).chain([honest.0]).collect(), 3).unwrap();
    let bob = key(2);
    let mut sender_side = Replica::new(mint.0);
    let mut recipient_side = Replica::new(mint.0);

    let chosen = SimKey(key_without_work(7));
    assert!(account_work(&chosen.0) < ACCOUNT_BITS);
    let forged = transfer(chosen.0, 1, bob, 1_000_000, vec![]).sign(&chosen);
    fn refused<T>(e: &Result<T, LedgerError>) -> bool {
        matches!(e, Err(LedgerError::NoAccountWork { need: ACCOUNT_BITS, .. }))
    }
    assert!(refused(&sender_side.acknowledge(&forged, &honest, &v)), "no honest acknowledgement");
    let cert = Certificate { acks: acks_by(&byz, &forged), signed: forged };
    assert!(cert.verify(&group, &v).is_ok(), "the captured quorum's certificate is well formed");
    assert!(refused(&recipient_side.apply_credit(&cert, &group, &v)));
    assert!(refused(&sender_side.apply_debit(&cert, &group, &v)));
    assert_eq!(recipient_side.account(&bob).spendable(), 0);
    assert_eq!(LedgerError::NoAccountWork { account: chosen.0, bits: 0, need: ACCOUNT_BITS }.code(), 14);

    // Nothing sent to an account without the work, even by the mint.
    let stranded = transfer(mint.0, 1, chosen.0, 5, vec![]).sign(&mint);
    assert!(refused(&sender_side.acknowledge(&stranded, &honest, &v)));

    // With the work, a captured quorum is a quorum: the price is what stops it.
    let paid = SimKey(key(8));
    let forged = transfer(paid.0, 1, bob, 1_000_000, vec![]).sign(&paid);
    let cert = Certificate { acks: acks_by(&byz, &forged), signed: forged };
    assert_eq!(recipient_side.apply_credit(&cert, &group, &v), Ok(Applied::Done));
    assert_eq!(recipient_side.account(&bob).spendable(), 1_000_000);

    // The mint without the work still mints, and the burn takes credits.
    let fund = transfer(mint.0, 1, paid.0, 10, vec![]).sign(&mint);
    assert!(sender_side.acknowledge(&fund, &honest, &v).is_ok());
    let burn = transfer(paid.0, 1, BURN, 0, vec![]).sign(&paid);
    assert!(!refused(&sender_side.acknowledge(&burn, &honest, &v)));
}

/// A wallet made by `make_account` carries the work; about one key in `2^bits` does.
#[test]
fn accounts_are_made_with_the_work() {
    let mut rng = Rng(5);
    let mut fill = |s: &mut [u8; 32]| {
        for c in s.chunks_mut(8) {
            c.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        Ok::<(), ()>(())
    };
    let k = make_account(8, &mut fill).unwrap();
    assert!(account_work(&k.verifying_key().to_bytes()) >= 8);
    let pooled = crate::testdata::account_key(3);
    assert!(account_work(&pooled.verifying_key().to_bytes()) >= ACCOUNT_BITS);
    let with = (0..4096u64).filter(|n| account_work(blake3::hash(&n.to_le_bytes()).as_bytes()) >= 4).count();
    assert!((180..340).contains(&with), "{with} of 4096 show 4 bits (256 expected)");
}
