//! The ledger on a network wider than one Kademlia lookup: forty real `kura-relay`
//! processes, where an account's group (32 replicas, quorum 22) holds more relays than the
//! 20 a lookup returns. A wallet must find the whole group, or its certificates carry too
//! few acknowledgements for the replicas of the recipient.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kura_client::net::{NetConfig, Network};
use kura_client::wallet;
use kura_core::ledger::{Signer, SigningKey};
use kura_tests::net::Net;

const RELAYS: usize = 40;

#[test]
fn transfers_are_certified_where_a_group_is_wider_than_a_lookup() {
    let mint = kura_core::testdata::account_key(10_000);
    let mint_hex: String = mint.key().iter().map(|b| format!("{b:02x}")).collect();
    let net = Net::start_with("wide40", RELAYS, &["--ledger-mint", &mint_hex]);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (alice, bob): (SigningKey, SigningKey) =
        (kura_core::testdata::account_key(1), kura_core::testdata::account_key(2));
    rt.block_on(async {
        let addrs = kura_client::bootstrap::resolve(&net.addrs).await.unwrap();
        let client = Network::connect(&addrs, NetConfig::default()).await.unwrap();
        let before = client.lookup_stats();
        let (group, members) = wallet::group(&client, &alice.key()).await.unwrap();
        let after = client.lookup_stats();
        println!(
            "alice's group as the wallet finds it: {} members, quorum {}, in {} lookups of {} requests",
            members.len(),
            group.quorum,
            after.0 - before.0,
            after.1 - before.1
        );
        // The group every relay computes from its view: the 32 nearest of all forty.
        let all: Vec<libp2p_identity::PeerId> = net.live().map(|r| r.peer_id.parse().unwrap()).collect();
        let (_, truth) = kura_p2p::ledger::group_of(&alice.key(), all).unwrap();
        assert_eq!(members, truth, "the wallet finds the group the replicas are");
        wallet::send(&client, &mint, alice.key(), 100, b"fund".to_vec()).await.unwrap();
        wallet::send(&client, &alice, bob.key(), 30, b"pay".to_vec()).await.unwrap();
        let a = wallet::view(&client, &alice.key()).await.unwrap();
        let b = wallet::view(&client, &bob.key()).await.unwrap();
        assert_eq!(a.balance + a.credits.iter().map(|c| c.1).sum::<u64>(), 70);
        assert_eq!(b.credits.iter().map(|c| c.1).sum::<u64>(), 30);
    });
}
