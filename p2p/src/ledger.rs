//! The ledger protocol (`/kura/ledger/1`): an owner asks an account's replicas to
//! acknowledge a transfer, anyone hands them a certificate to apply, anyone asks what they
//! know of an account ([`kura_core::ledger`] has the messages and the rules).
//!
//! Frames are a 4-byte big-endian length and a postcard body of at most
//! [`MAX_LEDGER_MESSAGE`] bytes, refused from the prefix when larger; a request that does
//! not decode (or breaks a limit) still gets an answer, with its code.

use crate::audit::read_small;
use futures::{AsyncRead, AsyncWrite, AsyncWriteExt};
use kura_core::ledger::{Group, Key, LedgerError, LedgerRequest, LedgerResponse, MAX_LEDGER_MESSAGE};
use kura_core::placement::{by_distance, DhtKey};
use libp2p::{PeerId, StreamProtocol};
use std::io;

/// The ed25519 key inside a peer id (relays' ids are ed25519 keys), as the ledger names it.
pub fn key_of(peer: &PeerId) -> Option<Key> {
    let public = libp2p::identity::PublicKey::try_decode_protobuf(peer.as_ref().digest()).ok()?;
    Some(public.try_into_ed25519().ok()?.to_bytes())
}

/// The group of `account` among `relays`: its closest (by the Kademlia distance of the
/// account key, as lookups find them), as [`Group::of_closest`] takes them. Relays whose id
/// is not an ed25519 key are left out.
pub fn group_of(account: &Key, relays: impl IntoIterator<Item = PeerId>) -> Option<(Group, Vec<PeerId>)> {
    let ordered =
        by_distance(&DhtKey::of(account), relays.into_iter().map(|p| (p, DhtKey::of(&p.to_bytes()))));
    let members: Vec<(PeerId, Key)> = ordered
        .into_iter()
        .filter_map(|p| key_of(&p).map(|k| (p, k)))
        .take(kura_core::ledger::REPLICAS)
        .collect();
    let group = Group::of_closest(members.iter().map(|(_, k)| *k).collect()).ok()?;
    Some((group, members.into_iter().map(|(p, _)| p).collect()))
}

/// The peer id of a relay whose ed25519 key is `key`.
pub fn peer_of(key: &Key) -> Option<PeerId> {
    let public = libp2p::identity::ed25519::PublicKey::try_from_bytes(key).ok()?;
    Some(libp2p::identity::PublicKey::from(public).to_peer_id())
}

/// The audit group of `relay` for `epoch` among `relays` (the relay itself left out): the
/// [`kura_core::farming::AUDIT_GROUP`] closest to
/// [`kura_core::farming::audit_point`]`(relay's id bytes, epoch)`, with their keys. The
/// relay, its auditors and the replicas of its rewards account each find it in their own
/// view.
pub fn audit_group(
    relay: &PeerId,
    epoch: u64,
    beacon: &[u8; 32],
    relays: impl IntoIterator<Item = PeerId>,
) -> Vec<(PeerId, Key)> {
    closest_with_keys(relay, &kura_core::farming::audit_point(&relay.to_bytes(), epoch, beacon), relays)
}

/// The draw group of `relay` among `relays` (the relay itself left out): its own
/// [`kura_core::farming::AUDIT_GROUP`] closest neighbours, whose draws
/// ([`kura_core::farming::beacon`]) place its audit group each epoch. Its neighbours change
/// only as relays come and go, and no epoch's draws are known before the epoch ends.
pub fn draw_group(relay: &PeerId, relays: impl IntoIterator<Item = PeerId>) -> Vec<(PeerId, Key)> {
    closest_with_keys(relay, &DhtKey::of(&relay.to_bytes()), relays)
}

/// The beacon of `relay`'s `epoch` from `draws`, checked against the draw group in the
/// view `relays`.
pub fn beacon_of(
    relay: &PeerId,
    epoch: u64,
    draws: &[kura_core::farming::Draw],
    relays: &[PeerId],
) -> Result<[u8; 32], kura_core::farming::FarmError> {
    let group: Vec<Key> = draw_group(relay, relays.iter().copied()).into_iter().map(|(_, k)| k).collect();
    kura_core::farming::beacon(&relay.to_bytes(), epoch, &group, draws)
}

/// The [`kura_core::farming::AUDIT_GROUP`] relays closest to `point` other than `relay`,
/// with their keys.
fn closest_with_keys(
    relay: &PeerId,
    point: &DhtKey,
    relays: impl IntoIterator<Item = PeerId>,
) -> Vec<(PeerId, Key)> {
    let others = relays.into_iter().filter(|p| p != relay).map(|p| (p, DhtKey::of(&p.to_bytes())));
    let mut seen = std::collections::HashSet::new();
    by_distance(point, others)
        .into_iter()
        .filter(|p| seen.insert(*p))
        .filter_map(|p| key_of(&p).map(|k| (p, k)))
        .take(kura_core::farming::AUDIT_GROUP)
        .collect()
}

/// Signs as a relay: its libp2p ed25519 identity.
#[derive(Debug, Clone)]
pub struct IdentitySigner(pub libp2p::identity::Keypair);

impl kura_core::ledger::Signer for IdentitySigner {
    fn key(&self) -> Key {
        self.0.public().try_into_ed25519().map(|k| k.to_bytes()).unwrap_or([0; 32])
    }
    fn sign(&self, msg: &[u8]) -> kura_core::ledger::Sig {
        let mut sig = [0u8; 64];
        if let Ok(s) = self.0.sign(msg) {
            if s.len() == 64 {
                sig.copy_from_slice(&s);
            }
        }
        sig
    }
}

impl IdentitySigner {
    /// This relay's draw for `relay`'s `epoch` ([`kura_core::farming::Draw`]): `None` when
    /// its identity is not an ed25519 key.
    pub fn draw(&self, relay: &PeerId, epoch: u64) -> Option<kura_core::farming::Draw> {
        let secret = self.0.clone().try_into_ed25519().ok()?.secret();
        let seed: [u8; 32] = secret.as_ref().try_into().ok()?;
        Some(kura_core::farming::Draw::make(&seed, &relay.to_bytes(), epoch))
    }
}

/// The protocol id.
pub const LEDGER_PROTOCOL: StreamProtocol = StreamProtocol::new("/kura/ledger/1");

/// The ledger protocol's request-response codec, the same on both sides. Inbound requests
/// decode to `Result<LedgerRequest, LedgerError>`, so that garbage gets an answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct LedgerCodec;

fn invalid(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, body: &[u8]) -> io::Result<()> {
    if body.len() > MAX_LEDGER_MESSAGE {
        return Err(invalid(LedgerError::Limits));
    }
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    io.write_all(&frame).await?;
    io.close().await
}

impl libp2p::request_response::Codec for LedgerCodec {
    type Protocol = StreamProtocol;
    type Request = Result<LedgerRequest, LedgerError>;
    type Response = LedgerResponse;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Self::Request> {
        Ok(match read_small(io, MAX_LEDGER_MESSAGE).await? {
            Ok(body) => LedgerRequest::decode(&body),
            Err(_) => Err(LedgerError::Limits),
        })
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<LedgerResponse> {
        let body = read_small(io, MAX_LEDGER_MESSAGE).await?.map_err(invalid)?;
        LedgerResponse::decode(&body).map_err(invalid)
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Self::Request,
    ) -> io::Result<()> {
        let body = req.map_err(invalid)?.encode();
        write_frame(io, &body).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: LedgerResponse,
    ) -> io::Result<()> {
        let body = res.encode();
        write_frame(io, &body).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use futures::io::Cursor;
    use kura_core::ledger::{Key, Signed, Transfer};
    use libp2p::request_response::Codec;

    #[test]
    fn requests_round_trip_and_garbage_is_answered_with_a_code() {
        futures::executor::block_on(async {
            let t = Transfer { from: [1; 32], seq: 1, to: [2; 32], amount: 5, deps: vec![], memo: vec![] };
            let req = LedgerRequest::Acknowledge(Signed { transfer: t, sig: [3; 64] });
            let mut out = Cursor::new(Vec::new());
            LedgerCodec.write_request(&LEDGER_PROTOCOL, &mut out, Ok(req.clone())).await.unwrap();
            let got =
                LedgerCodec.read_request(&LEDGER_PROTOCOL, &mut Cursor::new(out.into_inner())).await.unwrap();
            assert_eq!(got, Ok(req));
            // Garbage of a legal length, and a length over the limit (its body unread).
            let mut bad = 5u32.to_be_bytes().to_vec();
            bad.extend([0xff; 5]);
            let got = LedgerCodec.read_request(&LEDGER_PROTOCOL, &mut Cursor::new(bad)).await.unwrap();
            assert_eq!(got, Err(LedgerError::Limits));
            let mut big = (MAX_LEDGER_MESSAGE as u32 + 1).to_be_bytes().to_vec();
            big.extend([0u8; 64]);
            let mut io = Cursor::new(big);
            assert_eq!(
                LedgerCodec.read_request(&LEDGER_PROTOCOL, &mut io).await.unwrap(),
                Err(LedgerError::Limits)
            );
            assert_eq!(io.position(), 4);
            let account: Key = [9; 32];
            let mut out = Cursor::new(Vec::new());
            LedgerCodec
                .write_request(&LEDGER_PROTOCOL, &mut out, Ok(LedgerRequest::Account(account)))
                .await
                .unwrap();
            assert!(out.into_inner().len() < 64);
        });
    }

    #[test]
    fn a_relay_signs_acknowledgements_the_ledger_verifies() {
        use kura_core::ledger::{Ed25519, Signer, Verifier};
        let kp = libp2p::identity::Keypair::generate_ed25519();
        let peer = kp.public().to_peer_id();
        let signer = IdentitySigner(kp);
        assert_eq!(key_of(&peer), Some(signer.key()));
        let sig = signer.sign(b"message");
        assert!(Ed25519.verify(&signer.key(), b"message", &sig));
        assert!(!Ed25519.verify(&signer.key(), b"messagE", &sig));
        let relays: Vec<PeerId> = (0..20).map(|_| PeerId::random()).chain([peer]).collect();
        // Random peer ids are not ed25519 keys: only the one real relay is a member.
        let (group, members) = group_of(&[1; 32], relays).unwrap();
        assert_eq!((group.quorum, members), (1, vec![peer]));
    }
}
