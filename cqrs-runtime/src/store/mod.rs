//! Event stores: the append-only log behind every aggregate and projection.
//!
//! An [`EventStore`] keeps one global, totally ordered log of [`StoredEvent`]s, each also
//! belonging to one stream `(stream_type, stream_id)` at a 1-based stream version. Appends are
//! optimistic: the caller says which [`ExpectedVersion`] the stream must be at, and the store
//! refuses with [`StoreError::Conflict`] otherwise. Event ids are idempotency keys: re-appending
//! a batch that already landed returns the original [`AppendOutcome`] and stores nothing.

mod checkpoint;
pub use checkpoint::{
    CheckpointStore, Cursor, InMemoryCheckpoints, InMemoryLease, InMemoryLeases, InMemorySnapshots,
    LeaseStore, Snapshot, SnapshotStore,
};

use std::borrow::Cow;
use std::fmt;
use std::future::Future;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::envelope::Metadata;
use crate::event::EncodedEvent;

mod forward;
mod idempotency;
mod memory;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod names;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub mod sql_model;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod transaction;

pub use memory::InMemoryEventStore;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use names::{InvalidIdentifier, TableNames};
#[cfg(feature = "postgres")]
pub use postgres::{PostgresConfig, PostgresEventStore, PostgresLease, PostgresReadModel};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use sql_model::{
    SqlDialect, SqlModelError, SqlModelStore, SqlProjection, SqlStatement, SqlValue, SqlWrites,
};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteConfig, SqliteEventStore, SqliteLease, SqliteReadModel, Synchronous};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use transaction::{TransactionError, TransactionOutcome};

/// The current time at the precision every store keeps: whole microseconds.
///
/// PostgreSQL's `timestamptz` holds microseconds; truncating when the event is created makes
/// the `recorded_at` a command reports equal to the one read back from any store.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// The version a stream must be at for an append to succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpectedVersion {
    /// The stream must be empty (the same as `Exact(0)`).
    NoStream,
    /// The stream's head version must be exactly this (0 for an empty stream).
    Exact(u64),
    /// No check.
    Any,
}

impl ExpectedVersion {
    /// `NoStream` for 0, else `Exact(version)`.
    pub fn from_version(version: u64) -> Self {
        if version == 0 {
            Self::NoStream
        } else {
            Self::Exact(version)
        }
    }

    /// Whether a stream whose head version is `actual` satisfies this expectation.
    pub fn matches(self, actual: u64) -> bool {
        match self {
            Self::NoStream => actual == 0,
            Self::Exact(version) => actual == version,
            Self::Any => true,
        }
    }

    /// [`ExpectedVersion::matches`] as a result: the typed [`StoreError::Conflict`] of the
    /// stream when the head version `actual` does not satisfy this expectation.
    pub fn check(self, stream_type: &str, stream_id: &str, actual: u64) -> Result<(), StoreError> {
        if self.matches(actual) {
            return Ok(());
        }
        Err(StoreError::Conflict {
            stream_type: stream_type.to_owned(),
            stream_id: stream_id.to_owned(),
            expected: self,
            actual,
        })
    }

    /// The exact version expected, if any (`NoStream` is `Some(0)`).
    pub fn exact(self) -> Option<u64> {
        match self {
            Self::NoStream => Some(0),
            Self::Exact(version) => Some(version),
            Self::Any => None,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoStream => f.write_str("no stream"),
            Self::Exact(version) => write!(f, "version {version}"),
            Self::Any => f.write_str("any version"),
        }
    }
}

/// An event to append: its encoded form plus id, metadata and time.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The event's unique id (UUIDv7), also the idempotency key of the append.
    pub event_id: Uuid,
    /// The wire name.
    pub event_type: Cow<'static, str>,
    /// The version of the payload's shape.
    pub event_version: u32,
    /// The JSON payload.
    pub payload: Vec<u8>,
    /// Correlation, causation and user metadata.
    pub metadata: Metadata,
    /// When the event was recorded.
    pub recorded_at: DateTime<Utc>,
}

impl NewEvent {
    /// A new event with a fresh UUIDv7 id, recorded now (see [`now`]).
    pub fn new(
        event_type: impl Into<Cow<'static, str>>,
        event_version: u32,
        payload: Vec<u8>,
        metadata: Metadata,
    ) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            event_type: event_type.into(),
            event_version,
            payload,
            metadata,
            recorded_at: now(),
        }
    }

    /// A new event from an [`EncodedEvent`], with a fresh UUIDv7 id, recorded now.
    pub fn from_encoded(encoded: EncodedEvent, metadata: Metadata) -> Self {
        Self::encoded_at(encoded, metadata, now())
    }

    /// A new event from an [`EncodedEvent`], with a fresh UUIDv7 id, recorded at
    /// `recorded_at` (the repository stamps every event of a command with one reading).
    pub(crate) fn encoded_at(
        encoded: EncodedEvent,
        metadata: Metadata,
        recorded_at: DateTime<Utc>,
    ) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            event_type: encoded.name.into(),
            event_version: encoded.version,
            payload: encoded.payload,
            metadata,
            recorded_at,
        }
    }
}

/// An event as the store holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// The position in the global log, starting at 1.
    pub global_position: u64,
    /// The stream type (aggregate type).
    pub stream_type: String,
    /// The stream id (aggregate id).
    pub stream_id: String,
    /// The version within the stream, starting at 1.
    pub stream_version: u64,
    /// The event's unique id.
    pub event_id: Uuid,
    /// The wire name.
    pub event_type: String,
    /// The version of the payload's shape.
    pub event_version: u32,
    /// The JSON payload.
    pub payload: Vec<u8>,
    /// Correlation, causation and user metadata.
    pub metadata: Metadata,
    /// When the event was recorded.
    pub recorded_at: DateTime<Utc>,
}

/// What loading an aggregate needs of a stored event: no metadata, id or time.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEvent {
    /// The position in the global log.
    pub global_position: u64,
    /// The version within the stream, starting at 1.
    pub stream_version: u64,
    /// The wire name.
    pub event_type: String,
    /// The version of the payload's shape.
    pub event_version: u32,
    /// The JSON payload.
    pub payload: Vec<u8>,
}

impl From<StoredEvent> for StreamEvent {
    fn from(e: StoredEvent) -> Self {
        Self {
            global_position: e.global_position,
            stream_version: e.stream_version,
            event_type: e.event_type,
            event_version: e.event_version,
            payload: e.payload,
        }
    }
}

impl StreamEvent {
    /// This event, borrowed.
    #[inline]
    pub fn as_ref(&self) -> StreamEventRef<'_> {
        StreamEventRef {
            global_position: self.global_position,
            stream_version: self.stream_version,
            event_type: &self.event_type,
            event_version: self.event_version,
            payload: &self.payload,
        }
    }
}

/// A [`StreamEvent`] borrowed from the store: what [`EventStore::replay_stream`] visits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamEventRef<'a> {
    /// The position in the global log.
    pub global_position: u64,
    /// The version within the stream, starting at 1.
    pub stream_version: u64,
    /// The wire name.
    pub event_type: &'a str,
    /// The version of the payload's shape.
    pub event_version: u32,
    /// The JSON payload.
    pub payload: &'a [u8],
}

/// The result of a successful append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The stream's head version after the append.
    pub stream_version: u64,
    /// The global position of each appended event, in order (empty for an empty batch).
    pub positions: Vec<u64>,
}

impl AppendOutcome {
    /// The global position of the last appended event, if any.
    pub fn last_position(&self) -> Option<u64> {
        self.positions.last().copied()
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The stream was not at the expected version.
    #[error(
        "version conflict on stream {stream_type}/{stream_id}: expected {expected}, found version {actual}"
    )]
    Conflict {
        /// The stream type.
        stream_type: String,
        /// The stream id.
        stream_id: String,
        /// What the append expected.
        expected: ExpectedVersion,
        /// The stream's actual head version.
        actual: u64,
    },
    /// An event id of the batch is already stored, and the batch is not an exact retry of
    /// the append that stored it (or the batch holds the id twice).
    #[error("event id {event_id} is already stored")]
    DuplicateEventId {
        /// The clashing id.
        event_id: Uuid,
    },
    /// The backend failed (I/O, connection, poisoned lock, ...).
    #[error("event store backend failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl StoreError {
    /// Wraps any backend error.
    pub fn backend(error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Self::Backend(error.into())
    }
}

/// An append-only event log with per-stream optimistic concurrency.
///
/// Implementations must:
/// - assign stream versions `actual + 1 ..` and global positions in append order, gap-free per
///   stream;
/// - refuse an append whose [`ExpectedVersion`] does not match with [`StoreError::Conflict`]
///   (an empty batch is a no-op that still checks it);
/// - treat event ids as idempotency keys: a batch whose ids are all stored, in that stream, at
///   exactly the versions the batch would occupy, returns the original outcome and stores
///   nothing; any other clash is [`StoreError::DuplicateEventId`] (checked before the
///   expected version, so a clashing id is reported even when the version is also wrong);
/// - keep `recorded_at` to at least microsecond precision, and return the payload as
///   equivalent JSON (PostgreSQL's `jsonb` normalizes whitespace and key order).
///
/// Every backend of this crate passes one conformance suite (`cqrs-runtime/tests/conformance`).
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` to the stream, atomically, if it is at the `expected` version.
    fn append(
        &self,
        stream_type: &str,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<AppendOutcome, StoreError>> + Send;

    /// Reads one stream in version order, starting at `from_version` (inclusive; 0 and 1 both
    /// mean the whole stream).
    fn read_stream(
        &self,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// [`EventStore::read_stream`] without metadata, ids and times: what an aggregate load
    /// needs. SQL stores override it to read and decode fewer columns.
    fn read_stream_events(
        &self,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
    ) -> impl Future<Output = Result<Vec<StreamEvent>, StoreError>> + Send {
        async move {
            let events = self
                .read_stream(stream_type, stream_id, from_version)
                .await?;
            Ok(events.into_iter().map(StreamEvent::from).collect())
        }
    }

    /// Visits one stream's events from `from_version` in version order, lending each one
    /// (`visit` returns `false` to stop). Aggregate loads use it: a store that holds its
    /// events (the in-memory store) lends them without copying; the default reads them with
    /// [`EventStore::read_stream_events`] first.
    fn replay_stream<F>(
        &self,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
        mut visit: F,
    ) -> impl Future<Output = Result<(), StoreError>> + Send
    where
        F: FnMut(StreamEventRef<'_>) -> bool + Send,
    {
        async move {
            let events = self
                .read_stream_events(stream_type, stream_id, from_version)
                .await?;
            for event in &events {
                if !visit(event.as_ref()) {
                    break;
                }
            }
            Ok(())
        }
    }

    /// Reads at most `limit` events of the global log after `after_position` (exclusive), in
    /// global order. Positions increase but may skip numbers (PostgreSQL consumes identity
    /// values in refused appends). On a store whose positions can commit out of order
    /// (PostgreSQL), a reader that follows the log must use [`EventStore::read_after`].
    fn read_all(
        &self,
        after_position: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// The global position of the last stored event (0 when the store is empty).
    fn head_position(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Reads at most `limit` events committed after `cursor`, in commit order, each with its own
    /// cursor. The default serves stores that commit in position order (`tx = 0`); stores whose
    /// positions can become visible out of order override it.
    fn read_after(
        &self,
        cursor: Cursor,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(Cursor, StoredEvent)>, StoreError>> + Send {
        async move {
            let events = self.read_all(cursor.position, limit).await?;
            Ok(events
                .into_iter()
                .map(|e| {
                    (
                        Cursor {
                            tx: 0,
                            position: e.global_position,
                        },
                        e,
                    )
                })
                .collect())
        }
    }
}
