//! Where a runner reads events from.

use std::future::Future;

use crate::store::{Cursor, EventFilter, EventStore, ReadBatch, StoreError};

/// Where a runner reads events: in an order the source guarantees, each with a [`Cursor`], so
/// that a reader resuming after the last cursor it committed sees every later event once.
///
/// Every [`EventStore`] is a source: its log in commit order
/// ([`EventStore::read_after`]), filtered in the store's query when the handler has a
/// filter ([`EventStore::read_filtered`]). A source fed by a broker implements [`Source::committed`] to
/// acknowledge what the handler committed.
pub trait Source: Send + Sync + 'static {
    /// Reads at most `limit` events after `after`, in the source's order, that match
    /// `filter` (`None`: every event), and how far the read looked
    /// ([`ReadBatch::through`]: the runner's checkpoint moves there even when no event
    /// matched). Like [`EventStore::read_after`], an unreadable event is
    /// [`StoreError::Corrupt`] when it comes first, and ends the batch otherwise.
    ///
    /// A source that cannot filter returns every event: the handler still decides about each
    /// one (a projection skips the events of no source by its own rule).
    fn read(
        &self,
        after: Cursor,
        limit: usize,
        filter: Option<&EventFilter>,
    ) -> impl Future<Output = Result<ReadBatch, StoreError>> + Send;

    /// The head of the source: at or after every event it has shown; its `position` is what
    /// lag is measured against.
    fn head(&self) -> impl Future<Output = Result<Cursor, StoreError>> + Send;

    /// The handler committed everything up to and including `through` (a broker source
    /// acknowledges here; the store's log has nothing to do).
    fn committed(&self, through: Cursor) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl<S: EventStore> Source for S {
    /// [`EventStore::read_filtered`] with a filter, [`EventStore::read_after`] without.
    async fn read(
        &self,
        after: Cursor,
        limit: usize,
        filter: Option<&EventFilter>,
    ) -> Result<ReadBatch, StoreError> {
        match filter {
            Some(filter) => self.read_filtered(after, limit, filter).await,
            None => Ok(ReadBatch::unfiltered(
                after,
                self.read_after(after, limit).await?,
            )),
        }
    }

    fn head(&self) -> impl Future<Output = Result<Cursor, StoreError>> + Send {
        EventStore::head(self)
    }

    async fn committed(&self, _through: Cursor) -> Result<(), StoreError> {
        Ok(())
    }
}
