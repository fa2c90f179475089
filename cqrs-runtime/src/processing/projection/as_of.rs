//! A projection's answer as of a global position: a rebuild into a scratch model that stops
//! there.

use super::{InMemoryReadModel, Projection};
use crate::processing::{RunError, Runner, Source};
use crate::store::{Cursor, EventFilter, InMemoryLeases, ReadBatch, StoreError};

/// A [`Source`] that ends at a global position: it shows only the events of `source` whose
/// global position is at most `position`.
///
/// On a store whose log is in position order (SQLite, in memory: cursors with `tx = 0`) the
/// reads stop at the first later event. On PostgreSQL, where a later commit can hold an
/// earlier position, the log is read to its head and the later positions are left out.
///
/// [`as_of`] runs a rebuild of a scratch in-memory model through it; a runner of any other
/// read model can read through it too (a rebuild that stops at `position`).
#[derive(Debug, Clone)]
pub struct UpTo<S> {
    source: S,
    position: u64,
}

impl<S> UpTo<S> {
    /// The events of `source` up to and including the global position `position`.
    pub fn new(source: S, position: u64) -> Self {
        Self { source, position }
    }

    /// The last global position shown.
    pub fn position(&self) -> u64 {
        self.position
    }
}

impl<S: Source> Source for UpTo<S> {
    async fn read(
        &self,
        mut after: Cursor,
        limit: usize,
        filter: Option<&EventFilter>,
    ) -> Result<ReadBatch, StoreError> {
        // In a log in position order, a filtered read's `through` is kept at `position`, so
        // that a reader's checkpoint does not pass it.
        let end = Cursor {
            tx: 0,
            position: self.position,
        };
        let clamp = |through: Cursor, after: Cursor| {
            if through.tx == 0 {
                through.min(end.max(after))
            } else {
                through
            }
        };
        loop {
            let batch = self.source.read(after, limit, filter).await?;
            if batch.events.is_empty() {
                return Ok(ReadBatch {
                    events: batch.events,
                    through: clamp(batch.through, after),
                });
            }
            let in_order = batch.events.iter().all(|(cursor, _)| cursor.tx == 0);
            let beyond = batch
                .events
                .iter()
                .any(|(_, e)| e.global_position > self.position);
            let events: Vec<_> = batch
                .events
                .into_iter()
                .filter(|(_, e)| e.global_position <= self.position)
                .collect();
            if in_order && beyond {
                // Nothing after this point is at or before `position`: the read ends here.
                let through = events.last().map_or(after, |(cursor, _)| *cursor);
                return Ok(ReadBatch { events, through });
            }
            if !events.is_empty() {
                let through = if in_order {
                    clamp(batch.through, after)
                } else {
                    batch.through
                };
                return Ok(ReadBatch { events, through });
            }
            // Every event of the batch is later: read on (an empty batch ends a runner's
            // catch-up).
            after = batch.through;
        }
    }

    async fn head(&self) -> Result<Cursor, StoreError> {
        let head = self.source.head().await?;
        Ok(Cursor {
            tx: head.tx,
            position: head.position.min(self.position),
        })
    }

    async fn committed(&self, through: Cursor) -> Result<(), StoreError> {
        self.source.committed(through).await
    }
}

/// The read model of the projection `P` as it was when the log ended at the global position
/// `position`: a rebuild of a scratch [`InMemoryReadModel`] from `source` (an event store)
/// through [`UpTo`]. It holds its own lease table, so a live runner of `P` in this process
/// is not disturbed, and writes no checkpoint to the store.
///
/// An event `P` cannot take stops it with [`RunError::Event`], as a rebuild does.
///
/// ```
/// # use cqrs_runtime::prelude::*;
/// # use cqrs_runtime::projection::{as_of, EventMeta};
/// # use cqrs_runtime::store::NewEvent;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
/// # #[event(name = "deposited", version = 1)]
/// # pub struct Deposited { pub amount: u64 }
/// # #[derive(Debug, Clone, PartialEq, EventEnum)]
/// # pub enum AccountEvent { Deposited(Deposited) }
/// #[derive(Debug, Default)]
/// pub struct Total { pub sum: u64 }
///
/// #[projection(name = "total", events = AccountEvent)]
/// impl Total {
///     #[on]
///     fn deposited(&mut self, e: &Deposited, _: &EventMeta) { self.sum += e.amount; }
/// }
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let store = InMemoryEventStore::new();
/// for amount in [1, 10, 100] {
///     let e = AccountEvent::Deposited(Deposited { amount }).encode()?;
///     store.append("account", "a-1", ExpectedVersion::Any, vec![NewEvent::from_encoded(e, Metadata::new())]).await?;
/// }
/// let then = as_of::<Total, _>(store.clone(), 2).await?;
/// assert_eq!(then.read(|t| t.sum), 11);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub async fn as_of<P, S>(source: S, position: u64) -> Result<InMemoryReadModel<P>, RunError>
where
    P: Projection<Transaction = ()> + Default,
    S: Source,
{
    let model = InMemoryReadModel::<P>::new();
    Runner::new(UpTo::new(source, position), model.clone())
        .with_leases(InMemoryLeases::new())
        .rebuild()
        .await?;
    Ok(model)
}
