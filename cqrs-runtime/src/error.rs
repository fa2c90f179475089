//! The error of executing a command.

use crate::event::DecodeError;
use crate::store::{ExpectedVersion, StoreError};

/// Why a command was not committed. `E` is the aggregate's own error type.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E> {
    /// The handler rejected the command (displays as the handler's error).
    #[error(transparent)]
    Rejected(E),

    /// The command needs an existing aggregate, but its stream is empty.
    #[error("{stream_type} {stream_id} not found")]
    NotFound {
        /// The stream type.
        stream_type: String,
        /// The stream id.
        stream_id: String,
    },

    /// The command creates its aggregate, but the stream already has events.
    #[error("{stream_type} {stream_id} already exists (at version {version})")]
    AlreadyExists {
        /// The stream type.
        stream_type: String,
        /// The stream id.
        stream_id: String,
        /// The stream's current version.
        version: u64,
    },

    /// Another writer appended to the stream first, on every attempt.
    #[error(
        "version conflict on {stream_type} {stream_id}: expected {expected}, found version {actual} (after {attempts} attempt(s))"
    )]
    Conflict {
        /// The stream type.
        stream_type: String,
        /// The stream id.
        stream_id: String,
        /// The version the last attempt expected.
        expected: ExpectedVersion,
        /// The version the store reported.
        actual: u64,
        /// How many attempts were made.
        attempts: u32,
    },

    /// A stored event could not be decoded into the aggregate's event enum.
    #[error(
        "cannot decode event at version {stream_version} of {stream_type} {stream_id} (global position {global_position}): {source}"
    )]
    Decode {
        /// The stream type.
        stream_type: String,
        /// The stream id.
        stream_id: String,
        /// The stored event's stream version.
        stream_version: u64,
        /// The stored event's global position.
        global_position: u64,
        /// What was wrong: unknown type, unknown version or corrupt payload.
        #[source]
        source: DecodeError,
    },

    /// A produced event could not be serialized.
    #[error("cannot encode event `{event_type}`: {source}")]
    Encode {
        /// The event's wire name.
        event_type: &'static str,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },

    /// The event store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl<E> CommandError<E> {
    /// The handler's error, if the command was rejected.
    pub fn rejection(&self) -> Option<&E> {
        match self {
            Self::Rejected(error) => Some(error),
            _ => None,
        }
    }

    /// The handler's error, if the command was rejected; otherwise `Err(self)`.
    pub fn into_rejection(self) -> Result<E, Self> {
        match self {
            Self::Rejected(error) => Ok(error),
            other => Err(other),
        }
    }

    /// Whether the command lost an optimistic-concurrency race (after any retries).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }

    /// Whether the command needed an existing aggregate and found none.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// Whether the command would create an aggregate that already exists.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, Self::AlreadyExists { .. })
    }
}

/// Store errors convert as they are, except [`StoreError::Conflict`], which becomes
/// [`CommandError::Conflict`] with one attempt.
impl<E> From<StoreError> for CommandError<E> {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict {
                stream_type,
                stream_id,
                expected,
                actual,
            } => Self::Conflict {
                stream_type,
                stream_id,
                expected,
                actual,
                attempts: 1,
            },
            other => Self::Store(other),
        }
    }
}
