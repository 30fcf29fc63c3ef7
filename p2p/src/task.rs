//! A swarm on a task of its own, driven through cloneable handles: commands go in over a
//! bounded channel, answers come back on oneshots, and the task ends when the last handle is
//! dropped. The client's network and the native `StoreClient` are each a [`Task`] run by
//! [`run`]; the relay's event loop, which also serves and shuts down on a signal, has a loop
//! of its own but takes its commands (requests to other relays) through the same
//! [`Handle`]. Requests sent are matched to their askers by
//! [`Outstanding`](crate::outstanding::Outstanding).
//!
//! Written against `futures` only, so that the same code runs on tokio natively and on the
//! browser's event loop in wasm32.

use futures::channel::{mpsc, oneshot};
use futures::{SinkExt, StreamExt};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::Swarm;

/// The task is gone (its swarm stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the network task stopped")]
pub struct Closed;

/// A cloneable way to send commands `C` to a task.
pub struct Handle<C> {
    tx: mpsc::Sender<C>,
}

impl<C> std::fmt::Debug for Handle<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").field("closed", &self.tx.is_closed()).finish()
    }
}

impl<C> Clone for Handle<C> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone() }
    }
}

/// A handle and the task's end of its channel, `depth` commands deep.
pub fn channel<C>(depth: usize) -> (Handle<C>, mpsc::Receiver<C>) {
    let (tx, rx) = mpsc::channel(depth);
    (Handle { tx }, rx)
}

impl<C> Handle<C> {
    /// Sends a command and waits for what the task puts on its oneshot.
    pub async fn call<T>(&self, cmd: impl FnOnce(oneshot::Sender<T>) -> C) -> Result<T, Closed> {
        let (reply, rx) = oneshot::channel();
        self.send(cmd(reply)).await?;
        rx.await.map_err(|_| Closed)
    }

    /// Sends a command that has no answer.
    pub async fn send(&self, cmd: C) -> Result<(), Closed> {
        self.tx.clone().send(cmd).await.map_err(|_| Closed)
    }
}

/// What a task does with its commands and its swarm's events.
pub trait Task {
    type Behaviour: NetworkBehaviour;
    type Command;

    /// A command from a handle.
    fn command(&mut self, swarm: &mut Swarm<Self::Behaviour>, cmd: Self::Command);

    /// An event of the swarm.
    fn event(
        &mut self,
        swarm: &mut Swarm<Self::Behaviour>,
        event: SwarmEvent<<Self::Behaviour as NetworkBehaviour>::ToSwarm>,
    );
}

/// Runs `task` over `swarm` until every handle of `commands` is dropped.
pub async fn run<T: Task>(
    mut swarm: Swarm<T::Behaviour>,
    mut commands: mpsc::Receiver<T::Command>,
    mut task: T,
) {
    loop {
        futures::select! {
            cmd = commands.next() => match cmd {
                Some(cmd) => task.command(&mut swarm, cmd),
                None => return,
            },
            event = swarm.select_next_some() => task.event(&mut swarm, event),
        }
    }
}
