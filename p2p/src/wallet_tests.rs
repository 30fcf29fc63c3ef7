#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The wallet against six in-memory replicas running kura-core's rules (the bytes between
//! them are what `/kura/ledger/1` carries; end-to-end tests run real relays).
use super::*;
use kura_core::ledger::Replica;
use std::sync::Mutex;

/// A replica's ed25519 key, as a relay's identity holds it.
struct Id(libp2p::identity::ed25519::Keypair);

impl Signer for Id {
    fn key(&self) -> Key {
        self.0.public().to_bytes()
    }
    fn sign(&self, msg: &[u8]) -> kura_core::ledger::Sig {
        self.0.sign(msg).try_into().unwrap()
    }
}

fn id(n: u8) -> Id {
    Id(libp2p::identity::ed25519::Keypair::from(
        libp2p::identity::ed25519::SecretKey::try_from_bytes([n; 32]).unwrap(),
    ))
}

/// A wallet with the account work (the test pool's `i`-th).
fn wallet(i: usize) -> Id {
    let seed = kura_core::testdata::account_key(i).to_bytes();
    Id(libp2p::identity::ed25519::Keypair::from(
        libp2p::identity::ed25519::SecretKey::try_from_bytes(seed).unwrap(),
    ))
}

struct Member {
    id: Id,
    peer: PeerId,
    replica: Replica,
    certs: HashMap<TransferId, Certificate>,
    /// Lists this credit as well as what it holds, and hands out its certificate.
    lie: Option<Certificate>,
    /// Rewards minted here, handed out by id.
    rewards: HashMap<TransferId, kura_core::farming::RewardCertificate>,
}

struct Fake {
    members: Mutex<Vec<Member>>,
}

impl Fake {
    fn new(mint: Key) -> Self {
        let members = (1..=6u8)
            .map(|n| {
                let id = id(n);
                let peer = crate::ledger::peer_of(&id.key()).unwrap();
                Member {
                    id,
                    peer,
                    replica: Replica::new(mint),
                    certs: HashMap::new(),
                    lie: None,
                    rewards: HashMap::new(),
                }
            })
            .collect();
        Self { members: Mutex::new(members) }
    }

    fn group(&self) -> Group {
        let m = self.members.lock().unwrap();
        crate::ledger::group_of(&[0; 32], m.iter().map(|m| m.peer)).unwrap().0
    }

    /// `signed` acknowledged by every member, applied by those `to` picks.
    fn certify_and_apply(&self, signed: &Signed, to: impl Fn(usize) -> bool) -> Certificate {
        let group = self.group();
        let mut m = self.members.lock().unwrap();
        let acks = m.iter_mut().map(|m| m.replica.acknowledge(signed, &m.id, &Ed25519).unwrap()).collect();
        let cert = Certificate { signed: signed.clone(), acks };
        for (_, m) in m.iter_mut().enumerate().filter(|(i, _)| to(*i)) {
            m.replica.apply_debit(&cert, &group, &Ed25519).unwrap();
            m.replica.apply_credit(&cert, &group, &Ed25519).unwrap();
            m.certs.insert(cert.signed.transfer.id(), cert.clone());
        }
        cert
    }

    /// A reward of `amount` to `account` for `epoch` minted by the members `at` picks (the others' views
    /// of its audit group do not verify it: they refuse it when handed it); its id.
    fn mint_reward(&self, epoch: u64, account: Key, amount: u64, at: impl Fn(usize) -> bool) -> TransferId {
        let page = kura_core::farming::ClaimPage { level: 0, prefix: 0 };
        let cert = kura_core::farming::RewardCertificate {
            epoch,
            relay: id(20).key(),
            account,
            amount,
            page,
            shares: vec![],
            draws: vec![],
        };
        let rid = kura_core::farming::reward_id(cert.epoch, &cert.relay, &page);
        let mut m = self.members.lock().unwrap();
        for (_, m) in m.iter_mut().enumerate().filter(|(i, _)| at(*i)) {
            m.replica.credit_reward(&cert);
            m.rewards.insert(rid, cert.clone());
        }
        rid
    }

    fn holds(&self, i: usize, id: &TransferId) -> bool {
        self.members.lock().unwrap()[i].certs.contains_key(id)
    }
}

impl LedgerNet for Fake {
    type Error = String;

    async fn look_up(&self, _key: Key) -> Result<Vec<PeerId>, String> {
        Ok(self.members.lock().unwrap().iter().map(|m| m.peer).collect())
    }

    async fn look_up_bytes(&self, _bytes: Vec<u8>) -> Result<Vec<PeerId>, String> {
        Ok(self.members.lock().unwrap().iter().map(|m| m.peer).collect())
    }

    async fn ledger(&self, peer: PeerId, req: LedgerRequest) -> Result<LedgerResponse, String> {
        let group = self.group();
        let mut all = self.members.lock().unwrap();
        let m = all.iter_mut().find(|m| m.peer == peer).ok_or("no such peer")?;
        Ok(match req {
            LedgerRequest::Account(a) => {
                let mut v = m.replica.view(&a);
                if let Some(lie) = &m.lie {
                    v.credits.push((lie.signed.transfer.id(), lie.signed.transfer.amount));
                }
                LedgerResponse::Account(v)
            }
            LedgerRequest::Certificate(id) => match (m.certs.get(&id), &m.lie) {
                (Some(c), _) => LedgerResponse::Certificate(Box::new(c.clone())),
                (None, _) if m.rewards.contains_key(&id) => {
                    LedgerResponse::Reward(Box::new(m.rewards[&id].clone()))
                }
                (None, Some(lie)) if lie.signed.transfer.id() == id => {
                    LedgerResponse::Certificate(Box::new(lie.clone()))
                }
                _ => LedgerResponse::refused(&LedgerError::Unknown),
            },
            LedgerRequest::Acknowledge(s) => match m.replica.acknowledge(&s, &m.id, &Ed25519) {
                Ok(ack) => LedgerResponse::Acked(ack),
                Err(e) => LedgerResponse::refused(&e),
            },
            LedgerRequest::Apply(cert) => {
                if let Err(e) = cert.verify(&group, &Ed25519) {
                    return Ok(LedgerResponse::refused(&e));
                }
                let debit = m.replica.apply_debit(&cert, &group, &Ed25519).is_ok();
                let credit = m.replica.apply_credit(&cert, &group, &Ed25519).is_ok();
                m.certs.insert(cert.signed.transfer.id(), (*cert).clone());
                LedgerResponse::Applied { debit: Some(debit), credit: Some(credit) }
            }
            _ => LedgerResponse::refused(&LedgerError::Unknown),
        })
    }

    async fn pause(&self, _d: Duration) {}
}

/// A credit that only half the replicas applied (a wallet stopped half-way) is not vouched
/// for by `f + 1`: the wallet hands the certificate to the other half, and reads and spends.
/// A replica that lists a credit it made up, with a certificate nobody acknowledged, moves
/// nothing: the others refuse the certificate and the lie stays its own.
#[test]
fn a_credit_half_the_replicas_applied_is_spread_and_a_made_up_one_is_not() {
    let (mint, alice, bob) = (id(10), wallet(0), wallet(1));
    let net = Fake::new(mint.key());
    let fund =
        Transfer { from: mint.key(), seq: 1, to: alice.key(), amount: 100, deps: vec![], memo: vec![] };
    let fund = fund.sign(&mint);
    let fund_id = fund.transfer.id();
    net.certify_and_apply(&fund, |i| i < 3);
    let forged =
        Transfer { from: mint.key(), seq: 2, to: alice.key(), amount: 1_000_000, deps: vec![], memo: vec![] };
    let forged = Certificate { signed: forged.sign(&mint), acks: vec![] };
    let forged_id = forged.signed.transfer.id();
    net.members.lock().unwrap()[3].lie = Some(forged);
    let group = net.group();
    let members = futures::executor::block_on(net.look_up(alice.key())).unwrap();
    let seen = futures::executor::block_on(views(&net, &alice.key(), &members));
    // Three hold the credit, one lies, two lack it: all six agree on the debits, and no
    // credit is listed by the f + 1 = 4 that vouch for it.
    let first = agreed::<String>(&group, &seen).unwrap();
    assert_eq!((group.tolerates(), first.next_seq, first.credits.len()), (3, 1, 0), "{first:?}");

    let v = futures::executor::block_on(view(&net, &alice.key())).unwrap();
    assert_eq!((v.spendable(), v.credits.len()), (100, 1), "{v:?}");
    for i in 0..6 {
        assert!(net.holds(i, &fund_id), "member {i} was handed the credit");
        assert!(i == 3 || !net.holds(i, &forged_id), "member {i} took the made-up credit");
    }
    // Not to an account without the account work: refused in words, nothing signed.
    let refused = futures::executor::block_on(send(&net, &alice, id(12).key(), 30, vec![])).unwrap_err();
    assert!(refused.to_string().contains("bits of account work"), "{refused}");
    assert_eq!(futures::executor::block_on(view(&net, &alice.key())).unwrap().next_seq, 1);
    futures::executor::block_on(send(&net, &alice, bob.key(), 30, vec![])).unwrap();
    let v = futures::executor::block_on(view(&net, &bob.key())).unwrap();
    assert_eq!(v.spendable(), 30);
    assert_eq!(futures::executor::block_on(view(&net, &alice.key())).unwrap().spendable(), 70);
}

/// A reward that only some replicas minted (the others' views of its audit group did not
/// verify it, and they refuse it when a wallet hands it over) neither splits the replicas'
/// word on the account nor stops it spending: held by 4 of 6 (f + 1, short of the quorum
/// of 5), it is listed but not named while the other credits cover the transfer; held by
/// 2, it is not listed at all.
#[test]
fn a_reward_some_replicas_did_not_mint_does_not_stop_the_account() {
    let (mint, alice, bob) = (id(10), wallet(0), wallet(1));
    let net = Fake::new(mint.key());
    let fund =
        Transfer { from: mint.key(), seq: 1, to: alice.key(), amount: 100, deps: vec![], memo: vec![] };
    net.certify_and_apply(&fund.sign(&mint), |_| true);
    let four = net.mint_reward(7, alice.key(), 50, |i| i < 4);
    let v = futures::executor::block_on(view(&net, &alice.key())).unwrap();
    assert_eq!((v.spendable(), v.credits.len()), (150, 2), "{v:?}");
    assert!((4..6).all(|i| !net.members.lock().unwrap()[i].rewards.contains_key(&four)));
    let cert = futures::executor::block_on(send(&net, &alice, bob.key(), 30, vec![])).unwrap();
    assert!(!cert.signed.transfer.deps.contains(&four), "the reward held by 4 of 6 is not named");
    let after = futures::executor::block_on(view(&net, &alice.key())).unwrap();
    assert_eq!(after.spendable(), 120, "{after:?}");
    assert_eq!(futures::executor::block_on(view(&net, &bob.key())).unwrap().spendable(), 30);

    // Held by two only: not vouched for, not listed; the account still agrees and spends.
    let two = net.mint_reward(8, alice.key(), 9, |i| i >= 4);
    let v = futures::executor::block_on(view(&net, &alice.key())).unwrap();
    assert!(!v.credits.iter().any(|(id, _)| *id == two), "{v:?}");
    futures::executor::block_on(send(&net, &alice, bob.key(), 20, vec![])).unwrap();
    assert_eq!(futures::executor::block_on(view(&net, &bob.key())).unwrap().spendable(), 50);
}
