//! A wallet over the client's network: [`kura_p2p::wallet`] has the protocol (views,
//! transfers certified by the account's replicas); this adds the client's way of reaching
//! relays and [`Purse`], what pays for a put.

use crate::net::{NetError, Network};
use kura_core::ledger::{Certificate, Key, LedgerRequest, LedgerResponse, TransferId};
use kura_core::StripeId;
use libp2p::PeerId;
use std::time::Duration;

pub use kura_p2p::wallet::{apply, credits, group, hex, send, view, Credit};

/// Why a wallet operation failed.
pub type WalletError = kura_p2p::wallet::WalletError<NetError>;

/// An account id (or a key's seed) in hex: 64 digits.
pub fn parse_account(text: &str) -> Result<Key, WalletError> {
    kura_p2p::wallet::parse_account(text)
}

impl kura_p2p::wallet::LedgerNet for Network {
    type Error = NetError;

    async fn look_up(&self, key: Key) -> Result<Vec<PeerId>, NetError> {
        // The account key is the lookup key, as relays find an account's group.
        Network::look_up(self, StripeId::from_bytes(key)).await
    }

    async fn look_up_bytes(&self, bytes: Vec<u8>) -> Result<Vec<PeerId>, NetError> {
        Network::look_up_bytes(self, bytes).await
    }

    async fn ledger(&self, peer: PeerId, req: LedgerRequest) -> Result<LedgerResponse, NetError> {
        Network::ledger(self, peer, req).await
    }

    async fn pause(&self, d: Duration) {
        futures_timer::Delay::new(d).await
    }
}

/// What pays for a put: a batch bought by burning credits, and its owner's key to stamp
/// each stripe with a slot of it ([`kura_core::farming`]).
pub struct Purse {
    owner: kura_core::ledger::SigningKey,
    burn: Certificate,
    terms: kura_core::farming::BatchTerms,
    cost: u64,
    next: std::sync::atomic::AtomicU32,
}

impl std::fmt::Debug for Purse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Purse")
            .field("batch", &hex(&self.burn.signed.transfer.id()))
            .field("terms", &self.terms)
            .finish()
    }
}

impl Purse {
    /// Buys a batch of `terms` at `prices` from `owner`'s account: a burn its group
    /// certifies. Returns the purse and what it cost.
    pub async fn buy(
        net: &Network,
        owner: kura_core::ledger::SigningKey,
        terms: kura_core::farming::BatchTerms,
        prices: &kura_core::farming::Prices,
    ) -> Result<(Self, u64), WalletError> {
        let cost = prices.cost(&terms);
        let burn = send(net, &owner, kura_core::ledger::BURN, cost, terms.memo()).await?;
        Ok((Self { owner, burn, terms, cost, next: 0.into() }, cost))
    }

    /// The batch's id (the burn's transfer id).
    pub fn batch(&self) -> TransferId {
        self.burn.signed.transfer.id()
    }

    /// Postage for `stripe` (its shards `bytes` in all): a stamp on the next free slot, or
    /// `None` when every slot is used.
    pub fn postage(&self, stripe: StripeId, bytes: u64) -> Option<kura_core::farming::Postage> {
        use std::sync::atomic::Ordering::Relaxed;
        let slot = self.next.fetch_add(1, Relaxed);
        (slot < self.terms.slots).then(|| kura_core::farming::Postage {
            stamp: kura_core::farming::Stamp::sign(&self.owner, &self.batch(), stripe, slot, bytes),
            burn: self.burn.clone(),
        })
    }

    /// What the batch buys, and what it cost.
    pub fn terms(&self) -> &kura_core::farming::BatchTerms {
        &self.terms
    }

    pub fn cost(&self) -> u64 {
        self.cost
    }
}
