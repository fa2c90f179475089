//! Why a store operation failed: one variant per kind of failure a caller reacts to.

use std::fmt;

use uuid::Uuid;

use super::{ClaimHolder, Cursor, ExpectedVersion};

/// Why a store operation failed.
///
/// The variants are the cases a caller handles differently: a lost race ([`Conflict`]), a
/// clashing id ([`DuplicateEventId`]), a commit of a reader that was taken over ([`Fenced`]),
/// an event the store refuses to take ([`InvalidEvent`]), a stored row that cannot be read
/// ([`Corrupt`]), a failure worth retrying ([`Unavailable`]), and any other backend failure
/// ([`Backend`]). User data in messages (stream ids, SQL text) is cut to a bounded length.
///
/// [`Conflict`]: StoreError::Conflict
/// [`DuplicateEventId`]: StoreError::DuplicateEventId
/// [`Fenced`]: StoreError::Fenced
/// [`InvalidEvent`]: StoreError::InvalidEvent
/// [`Corrupt`]: StoreError::Corrupt
/// [`Unavailable`]: StoreError::Unavailable
/// [`Backend`]: StoreError::Backend
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The stream was not at the expected version.
    #[error(
        "version conflict on stream {}/{}: expected {expected}, found version {actual}",
        clip(stream_type),
        clip(stream_id)
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
    /// A claimed value is held by another stream: the whole append was refused, nothing
    /// stored.
    #[error(
        "`{}` in `{}` is already claimed by {}/{} (since position {})",
        clip(value),
        clip(scope),
        clip(&holder.stream_type),
        clip(&holder.stream_id),
        holder.position
    )]
    Claimed {
        /// The scope.
        scope: String,
        /// The value.
        value: String,
        /// Who holds it.
        holder: ClaimHolder,
    },
    /// A checkpoint commit was refused: another runner claimed the checkpoint (or a rebuild
    /// reset it) since this runner claimed it. Nothing of the commit was written.
    #[error(
        "checkpoint `{}` was taken over: this runner holds fence {fence}, the checkpoint is at fence {current}; nothing was committed",
        clip(name)
    )]
    Fenced {
        /// The checkpoint's name.
        name: String,
        /// The fence the refused commit carried.
        fence: u64,
        /// The fence stored now.
        current: u64,
    },
    /// The store refuses to take this event, because it could not give it back as written
    /// (a payload that is not a JSON document, JSON the decoder would refuse to read, a NUL
    /// character, metadata nested too deeply). Nothing of the append was stored.
    #[error("event `{}` refused: {reason}", clip(event_type))]
    InvalidEvent {
        /// The event's wire name.
        event_type: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A stored event cannot be read (a damaged or tampered row): where it is and why.
    #[error(transparent)]
    Corrupt(Box<CorruptEvent>),
    /// The backend is unavailable for now (connection lost, timeout, a serialization failure
    /// or deadlock, a busy database): the operation may succeed if retried.
    #[error("event store unavailable: {}", chain(.0.as_ref()))]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The backend failed for a reason that retrying will not fix.
    #[error("event store backend failed: {}", chain(.0.as_ref()))]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl StoreError {
    /// Wraps any backend error that retrying will not fix.
    pub fn backend(error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Self::Backend(error.into())
    }

    /// Wraps a backend error that may go away when retried.
    pub fn unavailable(
        error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self::Unavailable(error.into())
    }

    /// Whether retrying the operation may succeed ([`StoreError::Unavailable`]).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// A stored event that cannot be read: where it is, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "stored event at global position {global_position} ({}/{} version {}) cannot be read: {reason}",
    clip(stream_type.as_deref().unwrap_or("?")),
    clip(stream_id.as_deref().unwrap_or("?")),
    stream_version.map_or_else(|| "?".to_owned(), |v| v.to_string())
)]
pub struct CorruptEvent {
    /// The event's global position.
    pub global_position: u64,
    /// The event's cursor in commit order, when it was read from the log.
    pub cursor: Option<Cursor>,
    /// The stream type, if it could be read.
    pub stream_type: Option<String>,
    /// The stream id, if it could be read.
    pub stream_id: Option<String>,
    /// The version within the stream, if it could be read.
    pub stream_version: Option<u64>,
    /// What is wrong with the row.
    pub reason: String,
}

impl CorruptEvent {
    /// `event`, read from its stream, found wrong for `reason`.
    pub(crate) fn of(event: &super::StoredEvent, reason: String) -> Self {
        Self {
            global_position: event.global_position,
            cursor: None,
            stream_type: Some(event.stream_type.clone()),
            stream_id: Some(event.stream_id.clone()),
            stream_version: Some(event.stream_version),
            reason,
        }
    }
}

impl From<CorruptEvent> for StoreError {
    fn from(corrupt: CorruptEvent) -> Self {
        Self::Corrupt(Box::new(corrupt))
    }
}

/// The most characters of user data an error message shows.
const CLIP: usize = 200;

/// `text` for an error message: whole if short, else its first [`CLIP`] characters and the
/// total length.
pub(crate) fn clip(text: &str) -> Clipped<'_> {
    Clipped(text)
}

/// See [`clip`].
pub(crate) struct Clipped<'a>(&'a str);

impl fmt::Display for Clipped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(CLIP) {
            None => f.write_str(self.0),
            Some((end, _)) => write!(
                f,
                "{}… ({} bytes in all)",
                self.0.get(..end).unwrap_or_default(),
                self.0.len()
            ),
        }
    }
}

/// An error and its sources, joined by `: ` (drivers keep the useful part in the source).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = clip(&error.to_string()).to_string();
    let mut source = error.source();
    while let Some(next) = source {
        let text = next.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&clip(&text).to_string());
        }
        source = next.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_user_data_is_cut_in_messages() {
        let error = StoreError::Conflict {
            stream_type: "account".into(),
            stream_id: "x".repeat(10_000_000),
            expected: ExpectedVersion::NoStream,
            actual: 1,
        };
        let text = error.to_string();
        assert!(text.len() < 400, "{} bytes", text.len());
        assert!(text.contains("10000000 bytes in all"));
    }

    #[test]
    fn backend_errors_show_their_sources() {
        #[derive(Debug, thiserror::Error)]
        #[error("db error")]
        struct Outer(#[source] Inner);
        #[derive(Debug, thiserror::Error)]
        #[error("ERROR: relation \"x\" does not exist (SQLSTATE 42P01)")]
        struct Inner;
        let text = StoreError::backend(Outer(Inner)).to_string();
        assert!(text.contains("db error: ERROR: relation"), "{text}");
    }
}
