//! Why a projection stopped, and why a wait for it ended.

use std::time::Duration;

use uuid::Uuid;

use crate::event::DecodeError;
use crate::store::StoreError;

/// Why a projection runner stopped or refused to start.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// An event could not be decoded (error policy `Stop`, or during a rebuild).
    #[error(
        "projection `{projection}` stopped at event `{event_type}` v{event_version} (position {position}, {stream_type} {stream_id} version {stream_version}, event id {event_id}): {source}"
    )]
    Event {
        /// The projection's name.
        projection: &'static str,
        /// The event's global position.
        position: u64,
        /// The event's wire name.
        event_type: String,
        /// The stored version of the event's shape.
        event_version: u32,
        /// The event's stream type.
        stream_type: String,
        /// The event's stream id.
        stream_id: String,
        /// The event's version within its stream.
        stream_version: u64,
        /// The event's id.
        event_id: Uuid,
        /// What was wrong with it.
        #[source]
        source: DecodeError,
    },

    /// The checkpoint was written by another version of the projection (its `version = N`, or
    /// the set of handled events, changed): the read model must be rebuilt.
    #[error(
        "projection `{projection}` needs a rebuild: its checkpoint was written by version {stored_version} (fingerprint {stored_fingerprint:016x}), the running code is version {version} (fingerprint {fingerprint:016x}); call `ProjectionRunner::rebuild`, or opt into `rebuild_on_change()`"
    )]
    RebuildRequired {
        /// The projection's name.
        projection: &'static str,
        /// The version in the checkpoint.
        stored_version: u32,
        /// The fingerprint in the checkpoint.
        stored_fingerprint: u64,
        /// The running code's version.
        version: u32,
        /// The running code's fingerprint.
        fingerprint: u64,
    },

    /// Another runner holds the projection's lease.
    #[error("projection `{projection}` is already running (another runner holds its lease)")]
    AlreadyRunning {
        /// The projection's name.
        projection: &'static str,
    },

    /// The event store, the checkpoint store or the read model's store failed.
    #[error("projection `{projection}`: {source}")]
    Store {
        /// The projection's name.
        projection: &'static str,
        /// The store's error.
        #[source]
        source: StoreError,
    },

    /// The runner's task ended abnormally (a handler panicked, or the task was cancelled).
    #[error("projection `{projection}` crashed: {reason}")]
    Crashed {
        /// The projection's name.
        projection: &'static str,
        /// What the task reported.
        reason: String,
    },
}

/// Why [`ProjectionHandle::wait_for`](super::ProjectionHandle::wait_for) returned without the
/// projection reaching the position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    /// The timeout passed first.
    #[error(
        "projection `{projection}` did not reach position {wanted} within {timeout:?} (it is at {reached})"
    )]
    Timeout {
        /// The projection's name.
        projection: &'static str,
        /// The position waited for.
        wanted: u64,
        /// The position it had reached.
        reached: u64,
        /// The timeout.
        timeout: Duration,
    },
    /// The runner stopped (or failed) before reaching the position.
    #[error(
        "projection `{projection}` stopped at position {reached} before reaching {wanted}: {reason}"
    )]
    Stopped {
        /// The projection's name.
        projection: &'static str,
        /// The position waited for.
        wanted: u64,
        /// The position it had reached.
        reached: u64,
        /// Why it stopped.
        reason: String,
    },
}
