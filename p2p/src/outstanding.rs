//! Requests sent and waiting for their answers: the one place a request-response request
//! id is matched to whoever asked. Every swarm task that sends requests (see
//! [`task`](crate::task)) keeps one.

use futures::channel::oneshot;
use libp2p::request_response::{self, OutboundFailure, OutboundRequestId};
use libp2p::PeerId;
use std::collections::HashMap;

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("request to {peer} failed: {reason}")]
pub struct Failure {
    pub peer: PeerId,
    pub reason: String,
    /// The peer could not be dialled at all.
    pub unreachable: bool,
    /// No answer within the request timeout.
    pub timed_out: bool,
    /// The peer does not speak the protocol.
    pub unsupported: bool,
}

/// Where the answer to one request goes.
pub type Reply<T> = oneshot::Sender<Result<T, Failure>>;

/// What [`Outstanding::settle`] did with an event.
#[derive(Debug)]
pub enum Settled<Req, T> {
    /// A request's answer went to whoever asked.
    Answered,
    /// A request failed; whoever asked was told.
    Failed(Failure),
    /// Not the answer or failure of a request sent here (an inbound request, say): yours.
    Other(request_response::Event<Req, T>),
}

/// Requests sent on a swarm's request-response behaviours, by request id.
#[derive(Debug)]
pub struct Outstanding<T> {
    waiting: HashMap<OutboundRequestId, (PeerId, Reply<T>)>,
}

impl<T> Default for Outstanding<T> {
    fn default() -> Self {
        Self { waiting: HashMap::new() }
    }
}

impl<T> Outstanding<T> {
    /// Request `id` went to `peer`; its answer goes to `reply`.
    pub fn sent(&mut self, id: OutboundRequestId, peer: PeerId, reply: Reply<T>) {
        self.waiting.insert(id, (peer, reply));
    }

    /// Hands the answer or failure `ev` carries to whoever asked; gives back other events.
    /// A requester that stopped waiting is skipped.
    pub fn settle<Req>(&mut self, ev: request_response::Event<Req, T>) -> Settled<Req, T> {
        match ev {
            request_response::Event::Message {
                message: request_response::Message::Response { request_id, response },
                ..
            } if self.waiting.contains_key(&request_id) => {
                if let Some((_, reply)) = self.waiting.remove(&request_id) {
                    let _ = reply.send(Ok(response));
                }
                Settled::Answered
            }
            request_response::Event::OutboundFailure { peer, request_id, error, .. } => {
                let failure = Failure {
                    peer,
                    reason: error.to_string(),
                    unreachable: matches!(error, OutboundFailure::DialFailure),
                    timed_out: matches!(error, OutboundFailure::Timeout),
                    unsupported: matches!(error, OutboundFailure::UnsupportedProtocols),
                };
                if let Some((_, reply)) = self.waiting.remove(&request_id) {
                    let _ = reply.send(Err(failure.clone()));
                }
                Settled::Failed(failure)
            }
            other => Settled::Other(other),
        }
    }

    /// Requests still waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}
