//! Where a read model and its checkpoint live: the [`ReadModel`] contract, the in-memory model
//! (exactly once), and a model whose checkpoint lives in a separate checkpoint store (at least
//! once, made effectively once by a cursor guard).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};

use super::{Answers, Projection};
use crate::store::{
    Checkpoint, CheckpointChange, CheckpointCommit, CheckpointStore, Cursor, DeadLetter,
    StoreError, StoredEvent, apply_change, commit_in_memory, fenced,
};

/// The delivery guarantee a [`ReadModel`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The checkpoint commits atomically with the model's changes: each event's effect is in
    /// the model exactly once, whatever crashes.
    ExactlyOnce,
    /// The checkpoint is written after the model's changes; after a crash between the two,
    /// events are delivered again and the model's guard drops them.
    AtLeastOnce,
}

/// What the runner decided about one event inside [`ReadModel::apply_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The event is done (applied, or foreign to the projection): the checkpoint may move
    /// past it.
    Advance,
    /// The event could not be taken and is set aside: record this dead letter with the
    /// commit, and move past it.
    Skip(DeadLetter),
    /// Stop before this event: commit what came before and return.
    Halt,
}

/// One batch handed to a read model.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// The fence of the runner's claim: the commit is refused if it is no longer current.
    pub fence: u64,
    /// The events, in order.
    pub events: &'a [(Cursor, StoredEvent)],
    /// A retry of dead letters: leave the checkpoint where it is, and remove the dead letter
    /// of each event that advances.
    pub retry: bool,
}

/// What [`ReadModel::apply_batch`] committed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// The cursor of the last event committed past, if any.
    pub reached: Option<Cursor>,
    /// How many events were committed past (applied, foreign or set aside).
    pub count: u64,
    /// How many of them were set aside as dead letters.
    pub skipped: u64,
}

/// Where a projection's read model and checkpoint live.
///
/// The runner hands each batch to [`ReadModel::apply_batch`], which runs `step` on every
/// event, in order, with the model and the store's transaction ([`Projection::Transaction`]),
/// and commits the model's changes, the dead letters and the checkpoint of the last event it
/// got past, under the batch's fence. A model whose checkpoint commits with its changes is
/// [`Delivery::ExactlyOnce`]; otherwise it must drop events at or before the last cursor
/// already in the model, and is [`Delivery::AtLeastOnce`].
///
/// Every read model is a [`Handler`](crate::processing::Handler), so a
/// [`ProjectionRunner`](super::ProjectionRunner) drives it.
pub trait ReadModel: Send + Sync + 'static {
    /// The projection whose model this is.
    type Projection: Projection;

    /// The guarantee this model gives.
    fn delivery(&self) -> Delivery;

    /// The name of the model's checkpoint, lease and dead letters (its runner's name): the
    /// projection's name, or a partition's (see
    /// [`SqlReadModel::partition`](super::SqlReadModel::partition)).
    fn checkpoint_name(&self) -> &str {
        <Self::Projection as Projection>::NAME
    }

    /// The stored checkpoint (read only).
    fn checkpoint(&self) -> impl Future<Output = Result<Option<Checkpoint>, StoreError>> + Send;

    /// Claims the checkpoint: a new fence.
    fn claim(&self) -> impl Future<Output = Result<Checkpoint, StoreError>> + Send;

    /// Runs `step` on each event of the batch in order until it halts, and commits the
    /// model's changes with the dead letters and the checkpoint of the last event it got
    /// past, under `batch.fence` ([`StoreError::Fenced`] if that is no longer current).
    fn apply_batch<F>(
        &self,
        batch: Batch<'_>,
        step: F,
    ) -> impl Future<Output = Result<Applied, StoreError>> + Send
    where
        F: FnMut(
                &mut Self::Projection,
                &mut <Self::Projection as Projection>::Transaction,
                Cursor,
                &StoredEvent,
            ) -> Step
            + Send;

    /// Commits a checkpoint change with no model change (an unreadable event set aside, a
    /// discarded dead letter).
    fn commit(
        &self,
        commit: CheckpointCommit,
    ) -> impl Future<Output = Result<Checkpoint, StoreError>> + Send;

    /// Clears the model through [`Projection::reset`] (and its tables) and resets the
    /// checkpoint to the start, in one commit under `fence` (a rebuild's first step).
    fn reset(&self, fence: u64) -> impl Future<Output = Result<Checkpoint, StoreError>> + Send;

    /// The dead letters, oldest first.
    fn dead_letters(&self) -> impl Future<Output = Result<Vec<DeadLetter>, StoreError>> + Send;
}

/// The commit of a batch that advanced to `last` (or, for a retry, removed the dead letters
/// of the events it took), with `record`ed dead letters.
pub(crate) fn batch_commit<P: Projection>(
    batch: &Batch<'_>,
    last: Cursor,
    advanced: &[Cursor],
    record: Vec<DeadLetter>,
) -> CheckpointCommit {
    if batch.retry {
        return CheckpointCommit::keep(batch.fence, advanced.iter().map(|c| c.position).collect());
    }
    let mut commit = CheckpointCommit::advance(batch.fence, last, P::VERSION, P::FINGERPRINT);
    commit.record = record;
    commit
}

/// A model in memory with its checkpoint and dead letters.
struct Slot<P> {
    model: P,
    checkpoint: Checkpoint,
    dead: BTreeMap<u64, DeadLetter>,
}

/// A read model in memory with its checkpoint behind the same lock: exactly once.
///
/// Each event's effect and the checkpoint move together, under one write lock, so a runner
/// that dies in the middle of a batch leaves a model that matches its checkpoint, and the next
/// runner resumes right after it. Cloning is cheap; clones share the model. Readers take a
/// short read lock ([`InMemoryReadModel::read`], [`InMemoryReadModel::query`]).
pub struct InMemoryReadModel<P> {
    inner: Arc<RwLock<Slot<P>>>,
}

impl<P> Clone for InMemoryReadModel<P> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<P: Projection + Default> Default for InMemoryReadModel<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Projection + Default> InMemoryReadModel<P> {
    /// An empty model (`P::default()`) with no checkpoint.
    pub fn new() -> Self {
        Self::with_model(P::default())
    }
}

impl<P: Projection> InMemoryReadModel<P> {
    /// Starts from `model`, with no checkpoint.
    pub fn with_model(model: P) -> Self {
        Self {
            inner: Arc::new(RwLock::new(Slot {
                model,
                checkpoint: Checkpoint::default(),
                dead: BTreeMap::new(),
            })),
        }
    }

    /// Reads the model under the read lock.
    ///
    /// A handler that panicked leaves the lock poisoned; the model is still consistent with
    /// its checkpoint (they move per event), so reads go on.
    pub fn read<T>(&self, f: impl FnOnce(&P) -> T) -> T {
        let slot = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        f(&slot.model)
    }

    /// Answers a typed query from the model (see [`Answers`]).
    pub fn query<Q>(&self, query: Q) -> P::Output
    where
        P: Answers<Q>,
    {
        self.read(|model| model.answer(query))
    }

    /// A copy of the model.
    pub fn snapshot(&self) -> P
    where
        P: Clone,
    {
        self.read(Clone::clone)
    }

    /// The checkpoint stored with the model (`None` before any runner claimed it).
    pub fn stored_checkpoint(&self) -> Option<Checkpoint> {
        let slot = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        (slot.checkpoint.fence > 0).then_some(slot.checkpoint)
    }
}

impl<P: Projection<Transaction = ()>> ReadModel for InMemoryReadModel<P> {
    type Projection = P;

    fn delivery(&self) -> Delivery {
        Delivery::ExactlyOnce
    }

    async fn checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        Ok(self.stored_checkpoint())
    }

    async fn claim(&self) -> Result<Checkpoint, StoreError> {
        let mut slot = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        slot.checkpoint.fence += 1;
        Ok(slot.checkpoint)
    }

    async fn apply_batch<F>(&self, batch: Batch<'_>, mut step: F) -> Result<Applied, StoreError>
    where
        F: FnMut(&mut P, &mut (), Cursor, &StoredEvent) -> Step + Send,
    {
        let mut slot = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let slot = &mut *slot;
        if slot.checkpoint.fence != batch.fence {
            return Err(fenced(P::NAME, batch.fence, slot.checkpoint.fence));
        }
        let mut applied = Applied::default();
        for (cursor, event) in batch.events {
            if !batch.retry && *cursor <= slot.checkpoint.cursor {
                continue; // committed by an earlier attempt of this batch
            }
            match step(&mut slot.model, &mut (), *cursor, event) {
                // The common case, committed in place: the fence was checked above under
                // this lock, and the cursor is past the checkpoint.
                Step::Advance if !batch.retry => {
                    slot.checkpoint = apply_change(
                        slot.checkpoint,
                        CheckpointChange::Advance {
                            cursor: *cursor,
                            version: P::VERSION,
                            fingerprint: P::FINGERPRINT,
                        },
                    );
                }
                Step::Advance => {
                    let commit = batch_commit::<P>(&batch, *cursor, &[*cursor], Vec::new());
                    commit_in_memory(P::NAME, &mut slot.checkpoint, &mut slot.dead, commit)?;
                }
                Step::Skip(letter) => {
                    applied.skipped += 1;
                    let commit = batch_commit::<P>(&batch, *cursor, &[*cursor], vec![letter]);
                    commit_in_memory(P::NAME, &mut slot.checkpoint, &mut slot.dead, commit)?;
                }
                Step::Halt => break,
            }
            applied.reached = Some(*cursor);
            applied.count += 1;
        }
        Ok(applied)
    }

    async fn commit(&self, commit: CheckpointCommit) -> Result<Checkpoint, StoreError> {
        let mut slot = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let slot = &mut *slot;
        commit_in_memory(P::NAME, &mut slot.checkpoint, &mut slot.dead, commit)
    }

    async fn reset(&self, fence: u64) -> Result<Checkpoint, StoreError> {
        let mut slot = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let slot = &mut *slot;
        let commit = CheckpointCommit::reset(fence, Cursor::START, P::VERSION, P::FINGERPRINT);
        let reset = commit_in_memory(P::NAME, &mut slot.checkpoint, &mut slot.dead, commit)?;
        slot.model.reset();
        Ok(reset)
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        let slot = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        Ok(slot.dead.values().cloned().collect())
    }
}

impl<P: Answers<Q> + Projection, Q> Answers<Q> for InMemoryReadModel<P> {
    type Output = P::Output;

    fn answer(&self, query: Q) -> P::Output {
        self.query(query)
    }
}

struct Guarded<P> {
    model: P,
    /// The guard: the cursor of the last event whose effect is in the model.
    applied: Option<Cursor>,
}

/// A read model kept in memory whose checkpoint lives in a separate [`CheckpointStore`]: at
/// least once, made effectively once by a guard on the event's cursor.
///
/// The model's changes land first, the checkpoint after them; a crash in between makes the
/// next runner deliver those events again, and the model drops every event at or before the
/// last cursor it applied. This is the pattern for a model kept where the checkpoint cannot
/// commit with it (a search index, a cache): keep the guard with the model.
pub struct CheckpointedReadModel<P, C> {
    model: Arc<RwLock<Guarded<P>>>,
    checkpoints: C,
}

impl<P, C: Clone> Clone for CheckpointedReadModel<P, C> {
    fn clone(&self) -> Self {
        Self {
            model: Arc::clone(&self.model),
            checkpoints: self.checkpoints.clone(),
        }
    }
}

impl<P: Projection + Default, C: CheckpointStore> CheckpointedReadModel<P, C> {
    /// An empty model (`P::default()`) whose checkpoint is kept in `checkpoints`.
    pub fn new(checkpoints: C) -> Self {
        Self {
            model: Arc::new(RwLock::new(Guarded {
                model: P::default(),
                applied: None,
            })),
            checkpoints,
        }
    }
}

impl<P: Projection, C> CheckpointedReadModel<P, C> {
    /// Reads the model under the read lock.
    pub fn read<T>(&self, f: impl FnOnce(&P) -> T) -> T {
        let guarded = self.model.read().unwrap_or_else(PoisonError::into_inner);
        f(&guarded.model)
    }

    /// Answers a typed query from the model (see [`Answers`]).
    pub fn query<Q>(&self, query: Q) -> P::Output
    where
        P: Answers<Q>,
    {
        self.read(|model| model.answer(query))
    }

    /// The cursor of the last event whose effect is in the model (the guard).
    pub fn applied(&self) -> Option<Cursor> {
        self.model
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .applied
    }
}

impl<P, C> ReadModel for CheckpointedReadModel<P, C>
where
    P: Projection<Transaction = ()>,
    C: CheckpointStore,
{
    type Projection = P;

    fn delivery(&self) -> Delivery {
        Delivery::AtLeastOnce
    }

    async fn checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        self.checkpoints.checkpoint(P::NAME).await
    }

    /// A checkpoint ahead of the model (the model was lost with its process) keeps the
    /// identity only while the model holds what the checkpoint says: otherwise the identity
    /// is cleared, so that the runner asks for a rebuild.
    async fn claim(&self) -> Result<Checkpoint, StoreError> {
        let mut claim = self.checkpoints.claim(P::NAME).await?;
        let applied = self.applied();
        if claim.cursor > Cursor::START && applied.is_none_or(|a| a < claim.cursor) {
            claim.version = 0;
            claim.fingerprint = 0;
        }
        Ok(claim)
    }

    async fn apply_batch<F>(&self, batch: Batch<'_>, mut step: F) -> Result<Applied, StoreError>
    where
        F: FnMut(&mut P, &mut (), Cursor, &StoredEvent) -> Step + Send,
    {
        let (applied, advanced, record) = {
            let mut guarded = self.model.write().unwrap_or_else(PoisonError::into_inner);
            let mut applied = Applied::default();
            let (mut advanced, mut record) = (Vec::new(), Vec::new());
            for (cursor, event) in batch.events {
                if !batch.retry && guarded.applied.is_some_and(|a| *cursor <= a) {
                    // Delivered again after a crash before the checkpoint: already applied.
                    applied.reached = Some(*cursor);
                    applied.count += 1;
                    continue;
                }
                match step(&mut guarded.model, &mut (), *cursor, event) {
                    Step::Advance => {}
                    Step::Skip(letter) => {
                        applied.skipped += 1;
                        record.push(letter);
                    }
                    Step::Halt => break,
                }
                if !batch.retry {
                    guarded.applied = Some(*cursor);
                }
                advanced.push(*cursor);
                applied.reached = Some(*cursor);
                applied.count += 1;
            }
            (applied, advanced, record)
        };
        if let Some(last) = applied.reached {
            let commit = batch_commit::<P>(&batch, last, &advanced, record);
            self.checkpoints.commit(P::NAME, commit).await?;
        }
        Ok(applied)
    }

    async fn commit(&self, commit: CheckpointCommit) -> Result<Checkpoint, StoreError> {
        if let CheckpointChange::Advance { cursor, .. } = commit.change {
            let mut guarded = self.model.write().unwrap_or_else(PoisonError::into_inner);
            guarded.applied = Some(guarded.applied.map_or(cursor, |a| a.max(cursor)));
        }
        self.checkpoints.commit(P::NAME, commit).await
    }

    async fn reset(&self, fence: u64) -> Result<Checkpoint, StoreError> {
        let reset = self
            .checkpoints
            .commit(
                P::NAME,
                CheckpointCommit::reset(fence, Cursor::START, P::VERSION, P::FINGERPRINT),
            )
            .await?;
        let mut guarded = self.model.write().unwrap_or_else(PoisonError::into_inner);
        guarded.model.reset();
        guarded.applied = None;
        Ok(reset)
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.checkpoints.dead_letters(P::NAME).await
    }
}
