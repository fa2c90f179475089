//! Opt-in snapshots for the repository: load = snapshot + tail, written after the append.

use std::fmt;
use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::aggregate::Aggregate;
use crate::schema::Shape;
use crate::store::{Snapshot, SnapshotStore};

/// Whether and how a [`Repository`](super::Repository) uses snapshots: [`NoSnapshots`] (the
/// default) or [`Snapshotting`] (from [`Repository::with_snapshots`](super::Repository::with_snapshots)).
pub trait SnapshotPolicy<A: Aggregate>: Send + Sync + 'static {
    /// A usable snapshot of the stream: the state and the stream version it includes.
    fn load(&self, stream_id: &str) -> impl Future<Output = Option<(A, u64)>> + Send;

    /// Called after a committed append moved the stream from `base` (the version of the
    /// snapshot the state was loaded from, 0 for none) to `version`.
    fn committed(
        &self,
        stream_id: &str,
        state: &A,
        base: u64,
        version: u64,
    ) -> impl Future<Output = ()> + Send;
}

/// No snapshots: every load applies the whole stream.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSnapshots;

impl<A: Aggregate> SnapshotPolicy<A> for NoSnapshots {
    async fn load(&self, _: &str) -> Option<(A, u64)> {
        None
    }

    async fn committed(&self, _: &str, _: &A, _: u64, _: u64) {}
}

/// Snapshots in a [`SnapshotStore`], taken once at least `every` events were applied on top
/// of the snapshot a command's state was loaded from.
///
/// - A snapshot is written after the append has committed, never inside it; by default on a
///   background Tokio task, so the command does not wait for it
///   ([`Snapshotting::inline`] waits instead). A failed write is only traced: snapshots are a
///   cache of the stream, never the truth.
/// - The store keeps a snapshot only when it is newer than the stored one.
/// - A snapshot is ignored, and the state rebuilt from the events, when its
///   `state_fingerprint` is not the running code's [`Shape::FINGERPRINT`] or its payload
///   does not deserialize (or the snapshot store fails).
pub struct Snapshotting<T> {
    store: T,
    every: u64,
    inline: bool,
}

impl<T> fmt::Debug for Snapshotting<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshotting")
            .field("every", &self.every)
            .field("inline", &self.inline)
            .finish_non_exhaustive()
    }
}

impl<T: Clone> Clone for Snapshotting<T> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            every: self.every,
            inline: self.inline,
        }
    }
}

impl<T> Snapshotting<T> {
    /// Snapshots in `store` every `every` events (0 counts as 1).
    pub fn new(store: T, every: u64) -> Self {
        Self {
            store,
            every: every.max(1),
            inline: false,
        }
    }

    /// Writes snapshots before the command returns (still after the append): deterministic,
    /// for tests and for callers that want the write's cost on the command.
    pub fn inline(mut self) -> Self {
        self.inline = true;
        self
    }

    /// The snapshot store.
    pub fn store(&self) -> &T {
        &self.store
    }

    /// Events between snapshots.
    pub fn every(&self) -> u64 {
        self.every
    }
}

impl<A, T> SnapshotPolicy<A> for Snapshotting<T>
where
    A: Aggregate + Serialize + DeserializeOwned + Shape,
    T: SnapshotStore + Clone,
{
    async fn load(&self, stream_id: &str) -> Option<(A, u64)> {
        let snapshot = match self.store.load_snapshot(A::TYPE, stream_id).await {
            Ok(snapshot) => snapshot?,
            Err(error) => {
                tracing::warn!(%error, "snapshot load failed; rebuilding from events");
                return None;
            }
        };
        if snapshot.state_fingerprint != A::FINGERPRINT {
            tracing::debug!(
                version = snapshot.version,
                "snapshot of another state shape ignored"
            );
            return None;
        }
        match serde_json::from_slice::<A>(&snapshot.payload) {
            Ok(state) => Some((state, snapshot.version)),
            Err(error) => {
                tracing::warn!(%error, "snapshot does not deserialize; rebuilding from events");
                None
            }
        }
    }

    async fn committed(&self, stream_id: &str, state: &A, base: u64, version: u64) {
        if version.saturating_sub(base) < self.every {
            return;
        }
        let payload = match serde_json::to_vec(state) {
            Ok(payload) => payload,
            Err(error) => {
                tracing::warn!(%error, "state does not serialize; no snapshot taken");
                return;
            }
        };
        let snapshot = Snapshot {
            stream_type: A::TYPE.to_owned(),
            stream_id: stream_id.to_owned(),
            version,
            state_fingerprint: A::FINGERPRINT,
            payload,
        };
        let store = self.store.clone();
        let save = async move {
            if let Err(error) = store.save_snapshot(snapshot).await {
                tracing::warn!(%error, "snapshot write failed");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if !self.inline => {
                runtime.spawn(save);
            }
            _ => save.await,
        }
    }
}
