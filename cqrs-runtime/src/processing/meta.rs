//! What a handler learns about an event besides its payload.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::envelope::Metadata;
use crate::store::{Cursor, StoredEvent};

/// What a handler learns about the event besides its payload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventMeta<'a> {
    /// The event's unique id (UUIDv7).
    pub event_id: Uuid,
    /// The stream type (the aggregate's name).
    pub stream_type: &'a str,
    /// The stream id (the aggregate id's `Display` form).
    pub stream_id: &'a str,
    /// The event's version within its stream, starting at 1.
    pub stream_version: u64,
    /// The event's global position.
    pub position: u64,
    /// The event's cursor in commit order (what checkpoints store).
    pub cursor: Cursor,
    /// When the event was recorded.
    pub recorded_at: DateTime<Utc>,
    /// Correlation, causation and user metadata.
    pub metadata: &'a Metadata,
}

impl<'a> EventMeta<'a> {
    /// The metadata of `stored`, read at `cursor`.
    pub fn new(stored: &'a StoredEvent, cursor: Cursor) -> Self {
        Self {
            event_id: stored.event_id,
            stream_type: &stored.stream_type,
            stream_id: &stored.stream_id,
            stream_version: stored.stream_version,
            position: stored.global_position,
            cursor,
            recorded_at: stored.recorded_at,
            metadata: &stored.metadata,
        }
    }

    /// The id shared by every command and event of one logical operation.
    pub fn correlation_id(&self) -> Uuid {
        self.metadata.correlation_id
    }

    /// The id of the message that caused this event, if known.
    pub fn causation_id(&self) -> Option<Uuid> {
        self.metadata.causation_id
    }
}
