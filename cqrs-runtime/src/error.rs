//! The error of executing a command.

use crate::event::DecodeError;
use crate::store::{ClaimHolder, ExpectedVersion, StoreError, clip};

/// Why a command was not committed. `E` is the aggregate's own error type.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E> {
    /// The handler rejected the command (displays as the handler's error).
    #[error(transparent)]
    Rejected(E),

    /// The command needs an existing aggregate (creation policy `existing`, the default), but
    /// its stream is empty.
    #[error(
        "{} {} not found: the handler of `{command}` needs an existing {} (creation policy `existing`, the default); write `#[command(create)]` on a handler that creates it, or `#[command(any)]` to accept both",
        clip(stream_type),
        clip(stream_id),
        clip(stream_type)
    )]
    NotFound {
        /// The stream type.
        stream_type: String,
        /// The stream id.
        stream_id: String,
        /// The command's name.
        command: &'static str,
    },

    /// The command creates its aggregate (creation policy `create`), but the stream already
    /// has events.
    #[error(
        "{} {} already exists (at version {version}): the handler of `{command}` creates it (`#[command(create)]`); write `#[command(any)]` to accept an existing one",
        clip(stream_type),
        clip(stream_id)
    )]
    AlreadyExists {
        /// The stream type.
        stream_type: String,
        /// The stream id.
        stream_id: String,
        /// The stream's current version.
        version: u64,
        /// The command's name.
        command: &'static str,
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

    /// An event of the command claims a value another stream holds (see
    /// [`claims`](crate::claims)), on every attempt: nothing was stored. A handler that asks a
    /// [`ClaimView`](crate::claims::ClaimView) first answers with its own error instead.
    #[error(transparent)]
    Claimed(Box<Clash>),

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

    /// A command executed with [`Repository::execute_once`](crate::repository::Repository::execute_once)
    /// was decided before without effect (rejected, refused by its creation policy, or no
    /// event), and deciding it again against the same state now produces events: its handler
    /// depends on something besides the state, the command and its services (the wall clock, a
    /// random number). Nothing was stored.
    #[error(
        "command {command_id} on {} {} was decided without effect at version {version}, and deciding it again at that version produces events: a handler run with `execute_once` must decide from the state and the command only",
        clip(stream_type),
        clip(stream_id)
    )]
    NotReproducible {
        /// The command's id.
        command_id: uuid::Uuid,
        /// The stream type.
        stream_type: String,
        /// The stream id.
        stream_id: String,
        /// The aggregate version the first decision was taken at.
        version: u64,
    },
}

/// A command's claim refused: the value, and who holds it ([`CommandError::Claimed`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} {}: `{}` is already claimed in `{}` by {} {} (after {attempts} attempt(s)); check it in the handler with a `ClaimView` to reject the command with a business error",
    clip(stream_type),
    clip(stream_id),
    clip(value),
    clip(scope),
    clip(&holder.stream_type),
    clip(&holder.stream_id)
)]
pub struct Clash {
    /// The stream type of the command's aggregate.
    pub stream_type: String,
    /// Its stream id.
    pub stream_id: String,
    /// The scope.
    pub scope: String,
    /// The value, normalized.
    pub value: String,
    /// Who holds it.
    pub holder: ClaimHolder,
    /// How many attempts were made.
    pub attempts: u32,
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

    /// Whether an event of the command claimed a value another stream holds.
    pub fn is_claimed(&self) -> bool {
        matches!(self, Self::Claimed(_))
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
