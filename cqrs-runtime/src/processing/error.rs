//! Why a runner stopped, and why a wait for it ended.

use std::time::Duration;

use uuid::Uuid;

use super::reaction::ReactionError;
use crate::event::DecodeError;
use crate::store::{StoreError, StoredEvent, clip};

/// Why a runner stopped or refused to start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// An event could not be taken (error policy `Stop`, or during a rebuild): the checkpoint
    /// stays before it.
    #[error(
        "`{name}` stopped at event `{}` v{event_version} (position {position}, {} {} version {stream_version}, event id {event_id}): {source}",
        clip(event_type),
        clip(stream_type),
        clip(stream_id)
    )]
    Event {
        /// The runner's name.
        name: String,
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

    /// A reaction's handler failed on an event (error policy `Stop`, or during a rebuild):
    /// the checkpoint stays before it.
    #[error(
        "`{name}` failed on event `{}` (position {position}, {} {} version {stream_version}, event id {event_id}): {source}",
        clip(event_type),
        clip(stream_type),
        clip(stream_id)
    )]
    Handler {
        /// The runner's name.
        name: String,
        /// The event's global position.
        position: u64,
        /// The event's wire name.
        event_type: String,
        /// The event's stream type.
        stream_type: String,
        /// The event's stream id.
        stream_id: String,
        /// The event's version within its stream.
        stream_version: u64,
        /// The event's id.
        event_id: Uuid,
        /// Why the handler failed.
        #[source]
        source: ReactionError,
    },

    /// A process manager's deadline handler failed (error policy `Stop`): the deadline stays
    /// pending.
    #[error(
        "`{name}` failed on deadline `{deadline}` of instance `{}`: {source}",
        clip(key)
    )]
    Deadline {
        /// The runner's name.
        name: String,
        /// The instance's key.
        key: String,
        /// The deadline's name.
        deadline: String,
        /// Why the handler failed.
        #[source]
        source: ReactionError,
    },

    /// The checkpoint was written by other code (its `version = N`, or the set of handled
    /// events, changed): the handler's effects must be rebuilt.
    #[error(
        "`{name}` needs a rebuild: its checkpoint was written by version {stored_version} (fingerprint {stored_fingerprint:016x}), the running code is version {version} (fingerprint {fingerprint:016x}); call `rebuild()`, or opt into `rebuild_on_change()`"
    )]
    RebuildRequired {
        /// The runner's name.
        name: String,
        /// The version in the checkpoint.
        stored_version: u32,
        /// The fingerprint in the checkpoint.
        stored_fingerprint: u64,
        /// The running code's version.
        version: u32,
        /// The running code's fingerprint.
        fingerprint: u64,
    },

    /// Another runner holds the lease (and this one was not asked to stand by).
    #[error(
        "`{name}` is already running (another runner holds its lease); use `standby()` to wait for it"
    )]
    AlreadyRunning {
        /// The runner's name.
        name: String,
    },

    /// Another runner claimed the checkpoint (or a rebuild reset it) while this one worked:
    /// its last commit was refused, and nothing of it was written. Or the runner lost its
    /// lease, and stopped before its next batch.
    #[error("`{name}` was taken over by another runner: {source}")]
    Superseded {
        /// The runner's name.
        name: String,
        /// The refusal ([`StoreError::Fenced`]), or the lost lease.
        #[source]
        source: StoreError,
    },

    /// A store failed (after retries, for a transient failure).
    #[error("`{name}`: {source}")]
    Store {
        /// The runner's name.
        name: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },

    /// The runner's task ended abnormally (a handler panicked, or the task was cancelled).
    #[error("`{name}` crashed: {reason}")]
    Crashed {
        /// The runner's name.
        name: String,
        /// What the task reported.
        reason: String,
    },
}

impl RunError {
    /// The error of `event` refused with `source`.
    pub fn event(name: &str, event: &StoredEvent, source: DecodeError) -> Self {
        Self::Event {
            name: name.to_owned(),
            position: event.global_position,
            event_type: event.event_type.clone(),
            event_version: event.event_version,
            stream_type: event.stream_type.clone(),
            stream_id: event.stream_id.clone(),
            stream_version: event.stream_version,
            event_id: event.event_id,
            source,
        }
    }

    /// The error of a reaction's handler that failed on `event`.
    pub fn handler(name: &str, event: &StoredEvent, source: ReactionError) -> Self {
        Self::Handler {
            name: name.to_owned(),
            position: event.global_position,
            event_type: event.event_type.clone(),
            stream_type: event.stream_type.clone(),
            stream_id: event.stream_id.clone(),
            stream_version: event.stream_version,
            event_id: event.event_id,
            source,
        }
    }

    /// A store's error, as the runner `name` reports it ([`RunError::Superseded`] for a
    /// fenced commit).
    pub fn store(name: &str, source: StoreError) -> Self {
        match source {
            fenced @ StoreError::Fenced { .. } => Self::Superseded {
                name: name.to_owned(),
                source: fenced,
            },
            source => Self::Store {
                name: name.to_owned(),
                source,
            },
        }
    }
}

/// Why [`RunnerHandle::wait_for`](super::RunnerHandle::wait_for) or
/// [`CheckpointWatch::wait_for`](super::CheckpointWatch::wait_for) returned without the
/// reader reaching the position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    /// The timeout passed first.
    #[error("`{name}` did not reach position {wanted} within {timeout:?} (it is at {reached})")]
    Timeout {
        /// The runner's name.
        name: String,
        /// The position waited for.
        wanted: u64,
        /// The position it had reached.
        reached: u64,
        /// The timeout.
        timeout: Duration,
    },
    /// The runner stopped (or failed) before reaching the position.
    #[error("`{name}` stopped at position {reached} before reaching {wanted}: {reason}")]
    Stopped {
        /// The runner's name.
        name: String,
        /// The position waited for.
        wanted: u64,
        /// The position it had reached.
        reached: u64,
        /// Why it stopped.
        reason: String,
    },
    /// The reader's checkpoint could not be read (a failure that is not transient).
    #[error(
        "the checkpoint of `{name}` cannot be read while waiting for position {wanted}: {reason}"
    )]
    Unreadable {
        /// The reader's name.
        name: String,
        /// The position waited for.
        wanted: u64,
        /// The store's error.
        reason: String,
    },
}
