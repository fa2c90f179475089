//! Snapshots: the newest serialized state of a stream, so that a load applies only the
//! events after it.

use std::future::Future;

use super::StoreError;

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
