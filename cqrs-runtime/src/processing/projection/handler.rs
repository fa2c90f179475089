//! Every read model is a handler: the projection's decision about each event, through the
//! error policy, committed by the model with its checkpoint.

use super::read_model::{Applied, Batch, ReadModel, Step};
use super::{EventMeta, Projection};
use crate::processing::{ErrorPolicy, Handled, Handler, RunError, Tick};
use crate::store::{
    Checkpoint, CheckpointCommit, Cursor, DeadLetter, EventFilter, StoreError, StoredEvent,
};

impl<M: ReadModel> Handler for M {
    fn name(&self) -> &str {
        ReadModel::checkpoint_name(self)
    }

    fn identity(&self) -> (u32, u64) {
        (M::Projection::VERSION, M::Projection::FINGERPRINT)
    }

    fn filter(&self) -> Option<EventFilter> {
        M::Projection::filter()
    }

    async fn checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        ReadModel::checkpoint(self).await
    }

    async fn claim(&self) -> Result<Checkpoint, StoreError> {
        ReadModel::claim(self).await
    }

    async fn handle(
        &self,
        fence: u64,
        batch: &[(Cursor, StoredEvent)],
        policy: ErrorPolicy,
    ) -> Result<Handled, StoreError> {
        let batch = Batch {
            fence,
            events: batch,
            retry: false,
        };
        project_batch(self, batch, policy).await
    }

    async fn retry(
        &self,
        fence: u64,
        event: &(Cursor, StoredEvent),
    ) -> Result<Handled, StoreError> {
        let batch = Batch {
            fence,
            events: std::slice::from_ref(event),
            retry: true,
        };
        project_batch(self, batch, ErrorPolicy::Stop).await
    }

    async fn commit(&self, commit: CheckpointCommit) -> Result<Checkpoint, StoreError> {
        ReadModel::commit(self, commit).await
    }

    /// A read model replays the whole source: it ignores `head`.
    async fn reset(&self, fence: u64, _head: Cursor) -> Result<Checkpoint, StoreError> {
        ReadModel::reset(self, fence).await
    }

    async fn tick(&self, _fence: u64, _policy: ErrorPolicy) -> Result<Tick, StoreError> {
        Ok(Tick::default())
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        ReadModel::dead_letters(self).await
    }
}

/// Runs the projection over `batch` in the model, under `policy`.
async fn project_batch<M: ReadModel>(
    model: &M,
    batch: Batch<'_>,
    policy: ErrorPolicy,
) -> Result<Handled, StoreError> {
    let mut stopped = None;
    let Applied {
        reached,
        count,
        skipped,
    } = model
        .apply_batch(batch, |projection, tx, cursor, stored| {
            project_one(projection, tx, cursor, stored, policy, &mut stopped)
        })
        .await?;
    Ok(Handled {
        reached,
        processed: count,
        dead_lettered: skipped,
        orphans: 0,
        stopped,
    })
}

/// One event through the projection and the error policy.
#[inline]
fn project_one<P: Projection>(
    projection: &mut P,
    tx: &mut P::Transaction,
    cursor: Cursor,
    stored: &StoredEvent,
    policy: ErrorPolicy,
    stopped: &mut Option<RunError>,
) -> Step {
    let meta = EventMeta::new(stored, cursor);
    match projection.project(stored, &meta, tx) {
        Ok(_) => Step::Advance,
        Err(source) => refused::<P>(cursor, stored, source, policy, stopped),
    }
}

/// An event the projection could not take, through the error policy (out of the hot loop).
#[cold]
#[inline(never)]
fn refused<P: Projection>(
    cursor: Cursor,
    stored: &StoredEvent,
    source: crate::event::DecodeError,
    policy: ErrorPolicy,
    stopped: &mut Option<RunError>,
) -> Step {
    match policy {
        ErrorPolicy::Stop => {
            *stopped = Some(RunError::event(P::NAME, stored, source));
            Step::Halt
        }
        ErrorPolicy::SkipAndRecord => {
            tracing::warn!(
                position = stored.global_position,
                event_type = %stored.event_type,
                error = %source,
                "skipping an event that cannot be projected"
            );
            Step::Skip(DeadLetter::of(cursor, stored, &source))
        }
    }
}
