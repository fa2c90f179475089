//! Reading positions, checkpoints and snapshots: the contracts that projection runners and
//! snapshotting repositories build on. Each store backend implements them.

use std::future::Future;

use serde::{Deserialize, Serialize};

use super::StoreError;

/// How far a reader of the global log has got, ordered by `(tx, position)`.
///
/// `position` is the event's global position. `tx` orders commits for stores whose positions
/// can become visible out of order under concurrent writers (PostgreSQL: the writing
/// transaction's id); stores that commit in position order (in-memory, SQLite) use `tx = 0`.
/// A reader that resumes after a cursor sees every event committed after it exactly once.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Cursor {
    /// The commit-order key (0 for stores that commit in position order).
    pub tx: u64,
    /// The global position of the last event read.
    pub position: u64,
}

impl Cursor {
    /// The cursor before the first event.
    pub const START: Cursor = Cursor { tx: 0, position: 0 };
}

/// Durable "how far has projection X got" records, keyed by projection name.
pub trait CheckpointStore: Send + Sync + 'static {
    /// The stored cursor of `projection`, if it has one.
    fn load_checkpoint(
        &self,
        projection: &str,
    ) -> impl Future<Output = Result<Option<Cursor>, StoreError>> + Send;

    /// Stores `cursor` as the checkpoint of `projection` (replacing the previous one).
    fn save_checkpoint(
        &self,
        projection: &str,
        cursor: Cursor,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forgets the checkpoint of `projection` (for a rebuild from zero).
    fn reset_checkpoint(
        &self,
        projection: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A serialized aggregate state at a stream version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The stream type (the aggregate's name).
    pub stream_type: String,
    /// The stream id.
    pub stream_id: String,
    /// The stream version the state includes (events `1..=version` are applied).
    pub version: u64,
    /// The fingerprint of the state's shape when the snapshot was written; a snapshot whose
    /// fingerprint differs from the running code's is ignored and the state is rebuilt.
    pub state_fingerprint: u64,
    /// The serialized state (JSON).
    pub payload: Vec<u8>,
}

/// Durable snapshots, at most one (the newest) per stream.
pub trait SnapshotStore: Send + Sync + 'static {
    /// The stored snapshot of the stream, if any.
    fn load_snapshot(
        &self,
        stream_type: &str,
        stream_id: &str,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send;

    /// Stores `snapshot` unless the stored one is at the same or a newer version.
    fn save_snapshot(
        &self,
        snapshot: Snapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// In-memory checkpoints (tests, demos, and read models that live in the same process).
#[derive(Debug, Clone, Default)]
pub struct InMemoryCheckpoints {
    inner: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Cursor>>>,
}

impl InMemoryCheckpoints {
    /// An empty checkpoint table.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut std::collections::HashMap<String, Cursor>) -> T,
    ) -> Result<T, StoreError> {
        let mut map = self
            .inner
            .lock()
            .map_err(|_| StoreError::backend("the in-memory checkpoint table is poisoned"))?;
        Ok(f(&mut map))
    }
}

impl CheckpointStore for InMemoryCheckpoints {
    async fn load_checkpoint(&self, projection: &str) -> Result<Option<Cursor>, StoreError> {
        self.with(|m| m.get(projection).copied())
    }

    async fn save_checkpoint(&self, projection: &str, cursor: Cursor) -> Result<(), StoreError> {
        self.with(|m| {
            m.insert(projection.to_owned(), cursor);
        })
    }

    async fn reset_checkpoint(&self, projection: &str) -> Result<(), StoreError> {
        self.with(|m| {
            m.remove(projection);
        })
    }
}

/// In-memory snapshots, keyed by stream.
#[derive(Debug, Clone, Default)]
pub struct InMemorySnapshots {
    inner: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<(String, String), Snapshot>>>,
}

impl InMemorySnapshots {
    /// An empty snapshot table.
    pub fn new() -> Self {
        Self::default()
    }
}

impl SnapshotStore for InMemorySnapshots {
    async fn load_snapshot(
        &self,
        stream_type: &str,
        stream_id: &str,
    ) -> Result<Option<Snapshot>, StoreError> {
        let map = self
            .inner
            .lock()
            .map_err(|_| StoreError::backend("the in-memory snapshot table is poisoned"))?;
        Ok(map
            .get(&(stream_type.to_owned(), stream_id.to_owned()))
            .cloned())
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let mut map = self
            .inner
            .lock()
            .map_err(|_| StoreError::backend("the in-memory snapshot table is poisoned"))?;
        let key = (snapshot.stream_type.clone(), snapshot.stream_id.clone());
        match map.get(&key) {
            Some(stored) if stored.version >= snapshot.version => {}
            _ => {
                map.insert(key, snapshot);
            }
        }
        Ok(())
    }
}

/// Exclusive, named leases: at most one holder of a name at a time, across every process that
/// shares the store (one active runner per projection). A lease is released when dropped.
pub trait LeaseStore: Send + Sync + 'static {
    /// The held lease; dropping it releases the name.
    type Lease: Send + 'static;

    /// Takes the lease on `name` if nobody holds it; `None` if somebody does.
    fn try_acquire(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Self::Lease>, StoreError>> + Send;
}

/// In-memory leases (one process).
#[derive(Debug, Clone, Default)]
pub struct InMemoryLeases {
    held: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl InMemoryLeases {
    /// No lease held.
    pub fn new() -> Self {
        Self::default()
    }
}

/// A lease of [`InMemoryLeases`]; dropping it releases the name.
#[derive(Debug)]
pub struct InMemoryLease {
    name: String,
    held: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl Drop for InMemoryLease {
    fn drop(&mut self) {
        if let Ok(mut held) = self.held.lock() {
            held.remove(&self.name);
        }
    }
}

impl LeaseStore for InMemoryLeases {
    type Lease = InMemoryLease;

    async fn try_acquire(&self, name: &str) -> Result<Option<InMemoryLease>, StoreError> {
        let mut held = self
            .held
            .lock()
            .map_err(|_| StoreError::backend("the in-memory lease table is poisoned"))?;
        if !held.insert(name.to_owned()) {
            return Ok(None);
        }
        Ok(Some(InMemoryLease {
            name: name.to_owned(),
            held: self.held.clone(),
        }))
    }
}
