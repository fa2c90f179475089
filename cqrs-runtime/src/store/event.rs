//! The data an event store takes and gives: new and stored events, expected versions, the
//! outcome of an append.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Claim, StoreError};
use crate::envelope::Metadata;
use crate::event::EncodedEvent;

/// The current time at the precision every store keeps: whole microseconds.
///
/// PostgreSQL's `timestamptz` holds microseconds; truncating when the event is created makes
/// the `recorded_at` a command reports equal to the one read back from any store.
pub(crate) fn now() -> DateTime<Utc> {
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
    /// The values the event claims or releases, applied in the append's transaction.
    pub claims: Vec<Claim>,
    /// The payload was written by [`json::to_vec`](super::json::to_vec) (the store need not
    /// check it again).
    pub(crate) checked: bool,
}

impl NewEvent {
    /// A new event with a fresh UUIDv7 id, recorded now (microsecond precision, what every store keeps).
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
            claims: Vec::new(),
            checked: false,
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
            claims: Vec::new(),
            checked: false,
        }
    }

    /// This event with another id (an id derived from its cause, for idempotent re-appends).
    pub fn with_id(mut self, event_id: Uuid) -> Self {
        self.event_id = event_id;
        self
    }

    /// This event with `claims` (what a typed event declares; see [`Claim`]).
    pub fn with_claims(mut self, claims: Vec<Claim>) -> Self {
        self.claims = claims;
        self
    }

    /// This event recorded at another time (imports, copies between stores).
    pub fn with_recorded_at(mut self, recorded_at: DateTime<Utc>) -> Self {
        self.recorded_at = recorded_at;
        self
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

/// One event of a stream, borrowed from the store: what [`EventStore::replay_stream`](super::EventStore::replay_stream)
/// visits (what an aggregate load needs: no metadata, id or time).
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

/// One stream's part of a multi-stream append (`append_batch` of the SQL stores): what
/// [`EventStore::append`](super::EventStore::append) takes, as a value.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamAppend {
    /// The stream type.
    pub stream_type: String,
    /// The stream id.
    pub stream_id: String,
    /// The version the stream must be at, after the batch's earlier appends to it.
    pub expected: ExpectedVersion,
    /// The events, in order.
    pub events: Vec<NewEvent>,
}

impl StreamAppend {
    /// `events` for the stream `stream_type`/`stream_id`, expected at `expected`.
    pub fn new(
        stream_type: impl Into<String>,
        stream_id: impl Into<String>,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Self {
        Self {
            stream_type: stream_type.into(),
            stream_id: stream_id.into(),
            expected,
            events,
        }
    }
}

/// Checks an append against the rule every backend applies (see [`json`](super::json)): the
/// stream type, stream id and wire names hold no NUL character, each payload is a storable JSON
/// document, and metadata nests no deeper than the payload may. Nothing is stored when this
/// fails: [`StoreError::InvalidEvent`].
pub(crate) fn check_append(
    stream_type: &str,
    stream_id: &str,
    events: &[NewEvent],
) -> Result<(), StoreError> {
    for event in events {
        check_event(stream_type, stream_id, event).map_err(|reason| StoreError::InvalidEvent {
            event_type: event.event_type.to_string(),
            reason,
        })?;
    }
    Ok(())
}

fn check_event(stream_type: &str, stream_id: &str, event: &NewEvent) -> Result<(), String> {
    for (text, what) in [
        (stream_type, "the stream type"),
        (stream_id, "the stream id"),
        (event.event_type.as_ref(), "the event type"),
    ] {
        if text.contains('\0') {
            return Err(format!("{what} holds a NUL character"));
        }
    }
    if !event.checked {
        super::json::check(&event.payload)?;
    }
    for claim in &event.claims {
        if claim.scope.is_empty() || claim.scope.contains('\0') || claim.value.contains('\0') {
            return Err(format!(
                "a claim's scope must be a non-empty name and its value hold no NUL character (scope {:?})",
                claim.scope
            ));
        }
    }
    for (key, value) in &event.metadata.user {
        if key.contains('\0') {
            return Err("a metadata key holds a NUL character".to_owned());
        }
        super::json::check_value(value, 1).map_err(|e| format!("metadata `{key}`: {e}"))?;
    }
    Ok(())
}
