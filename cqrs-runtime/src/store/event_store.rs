//! The [`EventStore`] trait: the append-only log behind every aggregate and reader.

use std::future::Future;
use std::sync::Arc;

use uuid::Uuid;

use super::{
    AppendOutcome, Cursor, EventFilter, ExpectedVersion, NewEvent, ReadBatch, StoreError,
    StoredEvent, StreamEventRef,
};

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
/// - take only what they can give back: a payload that is not one JSON document, or that
///   holds a NUL character, is [`StoreError::InvalidEvent`] on every backend;
/// - keep `recorded_at` to at least microsecond precision, and return the payload as
///   equivalent JSON (PostgreSQL's `jsonb` normalizes whitespace and key order);
/// - report a stored row they cannot read as [`StoreError::Corrupt`], naming where it is; a
///   log read returns the readable events before such a row and reports the row when it is
///   the first one of a read.
///
/// Every method is required: see the [module docs](super) for why there are no defaults.
/// `Arc<S>` and `&'static S` forward every method to `S`.
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
    /// mean the whole stream), with ids, metadata and times: what tools and tests read.
    fn read_stream(
        &self,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// Visits one stream's events from `from_version` in version order, lending each one
    /// (`visit` returns `false` to stop): what an aggregate load reads. A store that holds its
    /// events lends them without copying; a SQL store decodes straight from its rows.
    fn replay_stream<F>(
        &self,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
        visit: F,
    ) -> impl Future<Output = Result<(), StoreError>> + Send
    where
        F: FnMut(StreamEventRef<'_>) -> bool + Send;

    /// Reads at most `limit` events committed after `after`, in commit order, each with its
    /// own cursor. A reader that resumes after the last cursor it processed sees every event
    /// committed after it exactly once, even when concurrent writers commit positions out of
    /// order (PostgreSQL).
    fn read_after(
        &self,
        after: Cursor,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(Cursor, StoredEvent)>, StoreError>> + Send;

    /// [`read_after`](EventStore::read_after) through `filter`: at most `limit` events
    /// committed after `after` that match it, in commit order, and
    /// [`through`](ReadBatch::through), the end of what the read examined. The events that
    /// do not match are skipped in the store's query, not fetched.
    ///
    /// Implementations must keep every guarantee of `read_after` (a reader resuming after
    /// `through` sees every later matching event exactly once, concurrent writers included),
    /// and must return a `through` that moves past the examined range even when no event
    /// matched: at the last returned event when `limit` events matched, else at the end of
    /// the log as far as it is safe to read (on PostgreSQL, behind the oldest transaction
    /// still open), never before `after`. An unreadable matching row is reported as by
    /// `read_after`, and ends the batch (with `through` at the last returned event) when it
    /// is not the first.
    fn read_filtered(
        &self,
        after: Cursor,
        limit: usize,
        filter: &EventFilter,
    ) -> impl Future<Output = Result<ReadBatch, StoreError>> + Send;

    /// The head of the log: a cursor at or after every event a read could return at the
    /// call, and before every event committed later. Its `position` is the global position
    /// of the last stored event (0 when the store is empty): what lag is measured against. A
    /// reader that resumes after it skips everything a read returned before the call. On
    /// PostgreSQL, events committed while an older transaction of another session was still
    /// open are not readable yet (the gap-safe reader holds them back): they are after the
    /// head, and a reader resuming there gets them once that transaction ends.
    fn head(&self) -> impl Future<Output = Result<Cursor, StoreError>> + Send;

    /// The stored event with this id, if any (an indexed lookup: commands issued by reactions
    /// check whether they already took effect).
    fn read_event(
        &self,
        event_id: Uuid,
    ) -> impl Future<Output = Result<Option<StoredEvent>, StoreError>> + Send;
}

/// Implements `EventStore` for a pointer type by forwarding every method to `S`.
macro_rules! forward_event_store {
    ($($pointer:ty),* $(,)?) => {$(
        impl<S: EventStore> EventStore for $pointer {
            fn append(
                &self,
                stream_type: &str,
                stream_id: &str,
                expected: ExpectedVersion,
                events: Vec<NewEvent>,
            ) -> impl Future<Output = Result<AppendOutcome, StoreError>> + Send {
                S::append(self, stream_type, stream_id, expected, events)
            }

            fn read_stream(
                &self,
                stream_type: &str,
                stream_id: &str,
                from_version: u64,
            ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send {
                S::read_stream(self, stream_type, stream_id, from_version)
            }

            fn replay_stream<F>(
                &self,
                stream_type: &str,
                stream_id: &str,
                from_version: u64,
                visit: F,
            ) -> impl Future<Output = Result<(), StoreError>> + Send
            where
                F: FnMut(StreamEventRef<'_>) -> bool + Send,
            {
                S::replay_stream(self, stream_type, stream_id, from_version, visit)
            }

            fn read_after(
                &self,
                after: Cursor,
                limit: usize,
            ) -> impl Future<Output = Result<Vec<(Cursor, StoredEvent)>, StoreError>> + Send {
                S::read_after(self, after, limit)
            }

            fn read_filtered(
                &self,
                after: Cursor,
                limit: usize,
                filter: &EventFilter,
            ) -> impl Future<Output = Result<ReadBatch, StoreError>> + Send {
                S::read_filtered(self, after, limit, filter)
            }

            fn head(&self) -> impl Future<Output = Result<Cursor, StoreError>> + Send {
                S::head(self)
            }

            fn read_event(
                &self,
                event_id: Uuid,
            ) -> impl Future<Output = Result<Option<StoredEvent>, StoreError>> + Send {
                S::read_event(self, event_id)
            }
        }
    )*};
}

forward_event_store!(Arc<S>, &'static S);
