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
                Member { id, peer, replica: Replica::new(mint), certs: HashMap::new(), lie: None }
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

    fn holds(&self, i: usize, id: &TransferId) -> bool {
        self.members.lock().unwrap()[i].certs.contains_key(id)
    }
}

impl LedgerNet for Fake {
    type Error = String;

    async fn look_up(&self, _key: Key) -> Result<Vec<PeerId>, String> {
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

/// A credit that only half the replicas applied (a wallet stopped half-way) leaves no view
/// most agree on: the wallet hands the certificate to the other half, and reads and spends.
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
    assert!(agreed::<String>(&group, &seen).is_err(), "three hold the credit, one lies, two lack it");

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
