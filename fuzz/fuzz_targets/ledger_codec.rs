//! The ledger protocol's readers, facing the network: a request read by a relay and an
//! answer read by a wallet, from any bytes. They never panic, never read a body over the
//! protocol's limits, agree with decoding the whole body, and what decodes encodes back to
//! itself; a replica given what decodes (a transfer to acknowledge, a certificate to apply,
//! a reward to mint) refuses or answers, and never breaks its conservation of value; a page of an account's
//! state is put together only as its summary says.
#![no_main]
use futures::io::Cursor;
use kura_core::ledger::{
    Ed25519, Group, LedgerRequest, LedgerResponse, Replica, SigningKey, StateAssembly, MAX_LEDGER_MESSAGE,
};
use kura_p2p::ledger::{LedgerCodec, LEDGER_PROTOCOL};
use libfuzzer_sys::fuzz_target;
use libp2p::request_response::Codec;

fuzz_target!(|frame: &[u8]| {
    let len = frame.get(..4).map(|p| u32::from_be_bytes(p.try_into().unwrap()) as usize);
    let body = len.and_then(|l| frame.get(4..4 + l));
    futures::executor::block_on(async {
        let mut io = Cursor::new(frame);
        match LedgerCodec.read_request(&LEDGER_PROTOCOL, &mut io).await {
            Ok(Ok(req)) => {
                assert!(len.unwrap() <= MAX_LEDGER_MESSAGE);
                assert_eq!(LedgerRequest::decode(body.unwrap()), Ok(req.clone()));
                assert_eq!(LedgerRequest::decode(&req.encode()), Ok(req.clone()));
                let me = SigningKey::from_bytes(&[7; 32]);
                // Any key: the rules past the account work are what is fuzzed here.
                let mut replica = Replica::new([1; 32]).with_account_bits(0);
                let group = Group::new(vec![me.verifying_key().to_bytes()], 1).unwrap();
                match &req {
                    LedgerRequest::Acknowledge(s) => {
                        let _ = replica.acknowledge(s, &me, &Ed25519);
                    }
                    LedgerRequest::Apply(c) => {
                        let _ = replica.apply_credit(c, &group, &Ed25519);
                        let _ = replica.apply_debit(c, &group, &Ed25519);
                    }
                    LedgerRequest::Account(a) => assert_eq!(replica.view(a).next_seq, 1),
                    LedgerRequest::Certificate(_) => {}
                    // Shares the fuzzer cannot have signed (the group is this replica alone):
                    // refused, or, were one to verify, minted once and counted as minted.
                    LedgerRequest::Reward(c) => {
                        let auditors = [me.verifying_key().to_bytes()];
                        let prices = kura_core::farming::DEFAULT_PRICES;
                        let _ = replica.deposit_reward(c, &auditors, &prices, &Ed25519);
                    }
                    LedgerRequest::State { account, page } => {
                        assert_eq!(replica.state(account).page(*page).is_some(), *page == 0);
                    }
                }
                replica.check_conservation().unwrap();
            }
            Ok(Err(_)) => {}
            // Only a stream that ends inside the 4-byte length fails as a stream.
            Err(e) => assert!(frame.len() < 4, "{e}"),
        }
        assert!(io.position() as usize <= 4 + MAX_LEDGER_MESSAGE);
        let mut io = Cursor::new(frame);
        if let Ok(res) = LedgerCodec.read_response(&LEDGER_PROTOCOL, &mut io).await {
            assert!(len.unwrap() <= MAX_LEDGER_MESSAGE);
            assert_eq!(LedgerResponse::decode(body.unwrap()), Ok(res.clone()));
            assert_eq!(LedgerResponse::decode(&res.encode()), Ok(res.clone()));
            // A state page taken as the agreed summary's: it is put together only if it holds
            // every item and hashes to the summary's digest, and then adopting it conserves.
            if let LedgerResponse::State(page) = res {
                let mut assembly = StateAssembly::new(page.summary.clone());
                if assembly.add(*page).is_ok() {
                    if let Ok(state) = assembly.finish() {
                        let mut replica = Replica::new([1; 32]);
                        replica.adopt_agreed(state);
                        replica.check_conservation().unwrap();
                    }
                }
            }
        }
        assert!(io.position() as usize <= 4 + MAX_LEDGER_MESSAGE);
    });
});
