//! The credits ledger with real `kura-relay` processes on 127.0.0.1 as replicas and the
//! real `kura wallet`: accounts funded by a test mint, transfers between them (some at
//! once), balances exact to the unit, an overdraft refused, and every relay killed and
//! started again on its data: balances and the next transfer come from the relays'
//! journals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kura_tests::net::{new_key, Net};
use std::path::Path;

fn wallet(net: &Net, key: &Path, args: &[&str]) -> Result<String, String> {
    net.wallet(key, args)
}

fn balance(net: &Net, key: &Path) -> u64 {
    net.balance(key)
}

#[test]
fn wallets_transfer_between_accounts_and_relays_keep_what_they_signed() {
    let keys = kura_tests::Scratch::new("ledger-keys").unwrap();
    let (mint, mint_account) = new_key(keys.path(), "mint");
    // Any account may spend at most 2,000 a day (the mint is not capped).
    let mut net = Net::start_with("ledger", 6, &["--ledger-mint", &mint_account, "--ledger-cap", "2000"]);
    let (alice, alice_account) = new_key(keys.path(), "alice");
    let (bob, bob_account) = new_key(keys.path(), "bob");
    let (carol, carol_account) = new_key(keys.path(), "carol");
    // The key file is the owner's alone.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&alice).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert_eq!(wallet(&net, &alice, &["address"]).unwrap(), alice_account);
    assert_eq!(balance(&net, &alice), 0);

    // The test mint funds two accounts; each transfer prints its certificate id.
    for (who, amount) in [(&alice_account, "1000"), (&bob_account, "500")] {
        let id = wallet(&net, &mint, &["send", who, amount]).unwrap();
        assert_eq!(id.len(), 64, "{id}");
    }
    assert_eq!((balance(&net, &alice), balance(&net, &bob)), (1000, 500));

    // Alice and Bob pay at the same time, each several times in a row.
    let plan: [(&Path, &str, u64, usize); 2] =
        [(&alice, &carol_account, 70, 4), (&bob, &carol_account, 45, 3)];
    std::thread::scope(|s| {
        for (key, to, amount, times) in plan {
            let net = &net;
            s.spawn(move || {
                for _ in 0..times {
                    wallet(net, key, &["send", to, &amount.to_string(), "--memo", "rent"]).unwrap();
                }
            });
        }
    });
    assert_eq!(balance(&net, &alice), 1000 - 4 * 70);
    assert_eq!(balance(&net, &bob), 500 - 3 * 45);
    assert_eq!(balance(&net, &carol), 4 * 70 + 3 * 45);

    // More than the balance is refused, and nothing moves.
    let refused = wallet(&net, &carol, &["send", &alice_account, "1000"]).unwrap_err();
    assert!(refused.contains("does not cover"), "{refused}");
    assert_eq!(balance(&net, &carol), 415);
    // An account without the account work: nothing is sent to it (refused by the wallet in
    // words), and the relays acknowledge nothing it signs (code 14 from every replica).
    let workless = keys.path().join("workless");
    let seed = (0u8..).map(|b| [b; 32]).find(|s| {
        let k = kura_core::ledger::SigningKey::from_bytes(s).verifying_key().to_bytes();
        kura_core::ledger::account_work(&k) < kura_core::ledger::ACCOUNT_BITS
    });
    std::fs::write(&workless, format!("{}\n", kura_core::hex::encode(&seed.unwrap()))).unwrap();
    let workless_account = wallet(&net, &workless, &["address"]).unwrap();
    let to_it = wallet(&net, &carol, &["send", &workless_account, "5"]).unwrap_err();
    assert!(to_it.contains("bits of account work, 16 needed"), "{to_it}");
    let from_it = wallet(&net, &workless, &["send", &carol_account, "0"]).unwrap_err();
    assert!(
        from_it.contains("0 of 5 acknowledgements: 6 × account") && from_it.contains("account work"),
        "{from_it}"
    );
    assert_eq!(balance(&net, &carol), 415);
    // (Carol's balance grows below, by Dave's transfer.)
    // Beyond the spending cap is refused too, with the balance to cover it.
    let (dave, _) = new_key(keys.path(), "dave");
    let dave_account = wallet(&net, &dave, &["address"]).unwrap();
    wallet(&net, &mint, &["send", &dave_account, "5000"]).unwrap();
    wallet(&net, &dave, &["send", &carol_account, "1500"]).unwrap();
    let capped = wallet(&net, &dave, &["send", &carol_account, "600"]).unwrap_err();
    assert!(capped.contains("spending cap"), "{capped}");
    assert_eq!((balance(&net, &dave), balance(&net, &carol)), (3500, 1915));
    let history = wallet(&net, &alice, &["history"]).unwrap();
    assert!(history.contains("sent #4: 70 to"), "{history}");

    // Every relay killed and started again on its data: what they signed is still there.
    for i in 1..6 {
        net.kill9(i);
    }
    for i in 1..6 {
        net.restart(i);
    }
    net.kill9(0);
    net.restart(0);
    assert_eq!((balance(&net, &alice), balance(&net, &bob), balance(&net, &carol)), (720, 365, 1915));
    wallet(&net, &carol, &["send", &bob_account, "15"]).unwrap();
    let all = [balance(&net, &alice), balance(&net, &bob), balance(&net, &carol), balance(&net, &dave)];
    assert_eq!(all, [720, 380, 1900, 3500]);
    // Value is conserved: the mint's balance stays 0 and what it minted is in the accounts.
    assert_eq!(balance(&net, &mint), 0);
    assert_eq!(all.iter().sum::<u64>(), 1000 + 500 + 5000, "value is conserved");
    eprintln!("ledger: {}", wallet(&net, &carol, &["history"]).unwrap());
}

/// Two spenders of one key at the same moment (an operator spending a relay's rewards
/// while the relay pays tabs from them; two uploads of one wallet) must not sign two
/// transfers for one slot: replicas take that as the owner cheating and refuse the account
/// for good. Each round starts two `kura wallet send`s with one key at once; every one
/// lands, in turn, and the account keeps working.
#[test]
fn two_spenders_of_one_key_at_once_take_turns() {
    let keys = kura_tests::Scratch::new("ledger-turns").unwrap();
    let (mint, mint_account) = new_key(keys.path(), "mint");
    let net = Net::start_with("ledger-turns", 6, &["--ledger-mint", &mint_account]);
    let (alice, alice_account) = new_key(keys.path(), "alice");
    let (_, bob_account) = new_key(keys.path(), "bob");
    wallet(&net, &mint, &["send", &alice_account, "1000"]).unwrap();
    const ROUNDS: u64 = 3;
    for round in 0..ROUNDS {
        let barrier = std::sync::Barrier::new(2);
        let sent: Vec<Result<String, String>> = std::thread::scope(|s| {
            let sends: Vec<_> = [1, 2]
                .map(|amount| {
                    let (net, alice, bob, barrier) = (&net, &alice, &bob_account, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        wallet(net, alice, &["send", bob, &amount.to_string()])
                    })
                })
                .into();
            sends.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for r in &sent {
            assert!(r.as_ref().is_ok_and(|id| id.len() == 64), "round {round}: {r:?}");
        }
    }
    assert_eq!(balance(&net, &alice), 1000 - 3 * ROUNDS);
    wallet(&net, &alice, &["send", &bob_account, "10"]).unwrap();
    assert_eq!(balance(&net, &alice), 1000 - 3 * ROUNDS - 10);
}
