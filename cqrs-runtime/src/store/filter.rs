//! Filtered reads of the log: which events a reader wants, and how far a read looked.

use super::{Cursor, StoredEvent};

/// The events a reader of the log wants: every event of the listed stream types, plus every
/// event with one of the listed wire names, in any stream.
///
/// A projection's runner reads through the filter of its sources (see
/// [`Projection::filter`](crate::projection::Projection::filter)): an aggregate source names
/// its stream type (its streams stay strict: an unknown event there still reaches the
/// projection, which refuses it) and its event names, an event enum source its event names
/// (every name it decodes: current, renamed, split and retired ones). A store pushes the filter
/// into its query ([`EventStore::read_filtered`](super::EventStore::read_filtered)), so the
/// events nobody asked for are never fetched.
///
/// A filter that lists nothing matches nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct EventFilter {
    stream_types: Vec<String>,
    event_types: Vec<String>,
}

impl EventFilter {
    /// A filter that matches nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also matches every event of streams of this type.
    pub fn with_stream_type(mut self, stream_type: impl Into<String>) -> Self {
        insert(&mut self.stream_types, stream_type.into());
        self
    }

    /// Also matches every event with this wire name, in any stream.
    pub fn with_event_type(mut self, event_type: impl Into<String>) -> Self {
        insert(&mut self.event_types, event_type.into());
        self
    }

    /// Also matches every event with one of these wire names.
    pub fn with_event_types<I, T>(mut self, event_types: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        for name in event_types {
            insert(&mut self.event_types, name.into());
        }
        self
    }

    /// Matches what either filter matches.
    pub fn union(mut self, other: &EventFilter) -> Self {
        for t in &other.stream_types {
            insert(&mut self.stream_types, t.clone());
        }
        for t in &other.event_types {
            insert(&mut self.event_types, t.clone());
        }
        self
    }

    /// The stream types whose every event matches, sorted.
    pub fn stream_types(&self) -> &[String] {
        &self.stream_types
    }

    /// The wire names that match in any stream, sorted.
    pub fn event_types(&self) -> &[String] {
        &self.event_types
    }

    /// Whether the filter matches nothing.
    pub fn is_empty(&self) -> bool {
        self.stream_types.is_empty() && self.event_types.is_empty()
    }

    /// Whether an event of `stream_type` named `event_type` matches.
    pub fn matches(&self, stream_type: &str, event_type: &str) -> bool {
        self.matches_stream_type(stream_type) || self.matches_event_type(event_type)
    }

    /// Whether every event of streams of `stream_type` matches.
    pub fn matches_stream_type(&self, stream_type: &str) -> bool {
        self.stream_types
            .binary_search_by(|t| t.as_str().cmp(stream_type))
            .is_ok()
    }

    /// Whether events named `event_type` match in any stream.
    pub fn matches_event_type(&self, event_type: &str) -> bool {
        self.event_types
            .binary_search_by(|t| t.as_str().cmp(event_type))
            .is_ok()
    }

    /// Whether `event` matches.
    pub fn matches_event(&self, event: &StoredEvent) -> bool {
        self.matches(&event.stream_type, &event.event_type)
    }
}

fn insert(sorted: &mut Vec<String>, value: String) {
    if let Err(at) = sorted.binary_search(&value) {
        sorted.insert(at, value);
    }
}

/// What one read of the log returned: the events, and how far the read looked.
///
/// `through` is at or after the cursor of every returned event, and the reader that resumes
/// after it sees every later event that matches exactly once: a filtered read that examined a
/// range holding no matching event still moves `through` past it, so a reader whose events
/// are rare does not examine that range again. An unfiltered read's `through` is its last
/// event's cursor (or the cursor it read after, when it returned nothing).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadBatch {
    /// The events, in commit order, each with its cursor.
    pub events: Vec<(Cursor, StoredEvent)>,
    /// The end of what the read examined.
    pub through: Cursor,
}

impl ReadBatch {
    /// The batch of an unfiltered read after `after`: `through` is its last event's cursor.
    pub fn unfiltered(after: Cursor, events: Vec<(Cursor, StoredEvent)>) -> Self {
        let through = events
            .last()
            .map_or(after, |(cursor, _)| (*cursor).max(after));
        Self { events, through }
    }
}
