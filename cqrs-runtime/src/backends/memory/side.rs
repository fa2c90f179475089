//! The in-memory side tables: checkpoints (with dead letters) and snapshots.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::store::{
    Checkpoint, CheckpointCommit, CheckpointStore, DeadLetter, Snapshot, SnapshotStore, StoreError,
    commit_in_memory, fenced,
};

fn lock<'a, T>(mutex: &'a Mutex<T>, what: &str) -> Result<MutexGuard<'a, T>, StoreError> {
    mutex
        .lock()
        .map_err(|_| StoreError::backend(format!("the in-memory {what} table is poisoned")))
}

#[derive(Debug, Default)]
struct Named {
    checkpoint: Checkpoint,
    /// Dead letters by position.
    dead: BTreeMap<u64, DeadLetter>,
}

/// In-memory checkpoints and dead letters (tests, demos, and readers whose effects live in
/// the same process). Cloning is cheap; clones share the table.
#[derive(Debug, Clone, Default)]
pub struct InMemoryCheckpoints {
    inner: Arc<Mutex<HashMap<String, Named>>>,
}

impl InMemoryCheckpoints {
    /// An empty checkpoint table.
    pub fn new() -> Self {
        Self::default()
    }
}

impl CheckpointStore for InMemoryCheckpoints {
    async fn checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, StoreError> {
        Ok(lock(&self.inner, "checkpoint")?
            .get(name)
            .map(|n| n.checkpoint))
    }

    async fn claim(&self, name: &str) -> Result<Checkpoint, StoreError> {
        let mut table = lock(&self.inner, "checkpoint")?;
        let named = table.entry(name.to_owned()).or_default();
        named.checkpoint.fence += 1;
        Ok(named.checkpoint)
    }

    async fn commit(&self, name: &str, commit: CheckpointCommit) -> Result<Checkpoint, StoreError> {
        let mut table = lock(&self.inner, "checkpoint")?;
        let Some(named) = table.get_mut(name) else {
            return Err(fenced(name, commit.fence, 0));
        };
        commit_in_memory(name, &mut named.checkpoint, &mut named.dead, commit)
    }

    async fn dead_letters(&self, name: &str) -> Result<Vec<DeadLetter>, StoreError> {
        Ok(lock(&self.inner, "checkpoint")?
            .get(name)
            .map(|n| n.dead.values().cloned().collect())
            .unwrap_or_default())
    }
}

/// In-memory snapshots, keyed by stream. Cloning is cheap; clones share the table.
#[derive(Debug, Clone, Default)]
pub struct InMemorySnapshots {
    inner: Arc<Mutex<HashMap<(String, String), Snapshot>>>,
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
        let map = lock(&self.inner, "snapshot")?;
        Ok(map
            .get(&(stream_type.to_owned(), stream_id.to_owned()))
            .cloned())
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let mut map = lock(&self.inner, "snapshot")?;
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
