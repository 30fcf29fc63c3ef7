//! Group commit: writers commit metadata without a sync, then wait until one durable
//! commit made after theirs; one sync covers every writer waiting at the time.
//!
//! A writer records its commit ([`GroupSync::committed`]) right after making it, and calls
//! [`GroupSync::wait`] before it answers. If no sync is running, it runs one itself; a sync
//! makes every commit recorded before it started durable. So under load a relay pays one
//! sync for a batch of shards instead of one each, and no write is acknowledged before its
//! metadata is on disk.

use super::StoreError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

#[derive(Debug, Default)]
struct State {
    /// Every commit numbered up to this is durable.
    durable: u64,
    /// A writer is running a sync.
    syncing: bool,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(super) struct GroupSync {
    committed: AtomicU64,
    state: Mutex<State>,
    synced: Condvar,
}

impl GroupSync {
    /// Records a commit just made without a sync; returns its number. Commits must be
    /// recorded in the order they were made (under the writers' lock).
    pub(super) fn committed(&self) -> u64 {
        self.committed.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// The number of the last commit recorded: a writer that found its work already done
    /// by another waits for this before answering.
    pub(super) fn last(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Returns once commit `seq` is durable, running `sync` (which must make every commit
    /// made so far durable) unless another writer's sync will cover it. A failed sync is
    /// returned to the writer that ran it; writers still waiting try again themselves.
    pub(super) fn wait(&self, seq: u64, sync: impl Fn() -> Result<(), StoreError>) -> Result<(), StoreError> {
        let mut st = self.lock();
        loop {
            if st.durable >= seq {
                return Ok(());
            }
            if st.syncing {
                st = self.synced.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            st.syncing = true;
            drop(st);
            let upto = self.last();
            let result = sync();
            st = self.lock();
            st.syncing = false;
            if result.is_ok() {
                st.durable = st.durable.max(upto);
            }
            self.synced.notify_all();
            result?;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;

    #[test]
    fn one_sync_covers_every_writer_waiting() {
        let g = GroupSync::default();
        let syncs = AtomicUsize::new(0);
        let (started_tx, started) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        // The first sync blocks until released; later ones return at once.
        let sync = || {
            if syncs.fetch_add(1, Ordering::SeqCst) == 0 {
                started_tx.send(()).unwrap();
                release_rx.lock().unwrap().recv().unwrap();
            }
            Ok(())
        };
        assert!(g.wait(0, sync).is_ok(), "nothing committed: nothing to wait for");
        assert_eq!(syncs.load(Ordering::SeqCst), 0);
        let (g, sync) = (&g, &sync);
        std::thread::scope(|s| {
            let first = g.committed();
            let a = s.spawn(move || g.wait(first, sync));
            started.recv().unwrap();
            // Commits made while the first sync runs need a second one, which covers all.
            let later: Vec<u64> = (0..5).map(|_| g.committed()).collect();
            let waiting: Vec<_> = later.iter().map(|&n| s.spawn(move || g.wait(n, sync))).collect();
            release.send(()).unwrap();
            assert!(a.join().unwrap().is_ok());
            for w in waiting {
                assert!(w.join().unwrap().is_ok());
            }
        });
        assert_eq!(syncs.load(Ordering::SeqCst), 2, "six commits, two syncs");
        assert!(g.wait(6, sync).is_ok());
        assert_eq!(syncs.load(Ordering::SeqCst), 2, "already durable");
    }

    #[test]
    fn a_failed_sync_is_reported_and_tried_again() {
        let g = GroupSync::default();
        let calls = AtomicUsize::new(0);
        let flaky = || {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(StoreError::Db("disk gone".into()))
            } else {
                Ok(())
            }
        };
        let n = g.committed();
        assert!(matches!(g.wait(n, flaky), Err(StoreError::Db(_))), "the failure reaches the writer");
        assert!(g.wait(n, flaky).is_ok(), "the next wait syncs again");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
