//! Where a read model and its checkpoint live: the [`ReadModelStore`] contract, and the two
//! in-memory stores (exactly once, and at least once with an idempotency guard).

use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};

use super::{Answers, Projection};
use crate::store::{CheckpointStore, Cursor, StoreError, StoredEvent};

/// A projection's checkpoint: how far it got, and which code wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// The cursor of the last event whose effect is in the read model.
    pub cursor: Cursor,
    /// The projection's `version = N` when the checkpoint was written.
    pub version: u32,
    /// The projection's fingerprint when the checkpoint was written.
    pub fingerprint: u64,
}

impl Checkpoint {
    /// The checkpoint the running code of `P` writes at `cursor`.
    pub fn of<P: Projection>(cursor: Cursor) -> Self {
        Self {
            cursor,
            version: P::VERSION,
            fingerprint: P::FINGERPRINT,
        }
    }

    /// Whether the running code of `P` wrote this checkpoint (else the model needs a rebuild).
    pub fn matches<P: Projection>(&self) -> bool {
        self.version == P::VERSION && self.fingerprint == P::FINGERPRINT
    }
}

/// The delivery guarantee a [`ReadModelStore`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The checkpoint commits atomically with the model's changes: each event's effect is in
    /// the model exactly once, whatever crashes.
    ExactlyOnce,
    /// The checkpoint is written after the model's changes; after a crash between the two,
    /// events are delivered again and the store's idempotency guard drops them.
    AtLeastOnce,
}

/// What the runner decided about one event inside [`ReadModelStore::apply_batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The event is done (applied, foreign, or skipped and recorded): the checkpoint may move
    /// past it.
    Advance,
    /// Stop before this event: commit what came before and return.
    Halt,
}

/// Where a projection's read model and checkpoint live.
///
/// The runner hands each batch to [`ReadModelStore::apply_batch`], which runs `step` on every
/// event, in order, with the model and the store's transaction ([`Projection::Transaction`]),
/// and writes the checkpoint of the last advanced event. A store that writes the checkpoint in
/// the same transaction as the model (an in-memory model behind one lock, a SQL model in one
/// database transaction) is [`Delivery::ExactlyOnce`]; otherwise it must skip events at or
/// before the last cursor already in the model (its idempotency guard) and is
/// [`Delivery::AtLeastOnce`].
///
/// A SQL store implements this with `Transaction` = its transaction type (or a statement
/// buffer it executes inside the transaction), so that handlers write through the very
/// transaction the checkpoint is written in.
pub trait ReadModelStore<P: Projection>: Send + Sync + 'static {
    /// The guarantee this store gives.
    fn delivery(&self) -> Delivery;

    /// The stored checkpoint, if the projection has one.
    fn load_checkpoint(
        &self,
    ) -> impl Future<Output = Result<Option<Checkpoint>, StoreError>> + Send;

    /// Runs `step` on each event of `batch` in order until it halts, and commits the model's
    /// changes with the checkpoint of the last advanced event. Returns that cursor (`None` when
    /// no event advanced).
    fn apply_batch<F>(
        &self,
        batch: &[(Cursor, StoredEvent)],
        step: F,
    ) -> impl Future<Output = Result<Option<Cursor>, StoreError>> + Send
    where
        F: FnMut(&mut P, &mut P::Transaction, Cursor, &StoredEvent) -> Step + Send;

    /// Forgets the checkpoint and clears the model through [`Projection::reset`] (a rebuild's
    /// first step).
    fn reset(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

struct Slot<P> {
    model: P,
    checkpoint: Option<Checkpoint>,
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
                checkpoint: None,
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

    /// The checkpoint stored with the model.
    pub fn checkpoint(&self) -> Option<Checkpoint> {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .checkpoint
    }
}

impl<P: Projection<Transaction = ()>> ReadModelStore<P> for InMemoryReadModel<P> {
    fn delivery(&self) -> Delivery {
        Delivery::ExactlyOnce
    }

    async fn load_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        Ok(self.checkpoint())
    }

    async fn apply_batch<F>(
        &self,
        batch: &[(Cursor, StoredEvent)],
        mut step: F,
    ) -> Result<Option<Cursor>, StoreError>
    where
        F: FnMut(&mut P, &mut (), Cursor, &StoredEvent) -> Step + Send,
    {
        let mut slot = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let mut last = None;
        for (cursor, event) in batch {
            match step(&mut slot.model, &mut (), *cursor, event) {
                Step::Advance => {
                    slot.checkpoint = Some(Checkpoint::of::<P>(*cursor));
                    last = Some(*cursor);
                }
                Step::Halt => break,
            }
        }
        Ok(last)
    }

    async fn reset(&self) -> Result<(), StoreError> {
        let mut slot = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        slot.model.reset();
        slot.checkpoint = None;
        Ok(())
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
    /// The idempotency guard: the cursor of the last event whose effect is in the model.
    applied: Option<Cursor>,
    /// The (version, fingerprint) of the code that wrote the model.
    identity: Option<(u32, u64)>,
}

/// A read model whose checkpoint lives in a separate [`CheckpointStore`]: at least once.
///
/// The model's changes land first, the checkpoint after them; a crash in between makes the next
/// runner deliver those events again. The model keeps the cursor of the last event it applied
/// and drops every re-delivered event at or before it, so the result is the same as exactly
/// once (the idempotency guard by position).
pub struct AtLeastOnce<P, C> {
    model: Arc<RwLock<Guarded<P>>>,
    checkpoints: C,
}

impl<P, C: Clone> Clone for AtLeastOnce<P, C> {
    fn clone(&self) -> Self {
        Self {
            model: Arc::clone(&self.model),
            checkpoints: self.checkpoints.clone(),
        }
    }
}

impl<P: Projection + Default, C: CheckpointStore> AtLeastOnce<P, C> {
    /// An empty model (`P::default()`) whose checkpoint is kept in `checkpoints`.
    pub fn new(checkpoints: C) -> Self {
        Self {
            model: Arc::new(RwLock::new(Guarded {
                model: P::default(),
                applied: None,
                identity: None,
            })),
            checkpoints,
        }
    }
}

impl<P: Projection, C> AtLeastOnce<P, C> {
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

    /// The cursor of the last event whose effect is in the model (the idempotency guard).
    pub fn applied(&self) -> Option<Cursor> {
        self.model
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .applied
    }
}

impl<P, C> ReadModelStore<P> for AtLeastOnce<P, C>
where
    P: Projection<Transaction = ()>,
    C: CheckpointStore,
{
    fn delivery(&self) -> Delivery {
        Delivery::AtLeastOnce
    }

    async fn load_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        let Some(cursor) = self.checkpoints.load_checkpoint(P::NAME).await? else {
            return Ok(None);
        };
        // A checkpoint without a model that says which code built it: the model was lost (or
        // written by unknown code), so it must be rebuilt.
        let (version, fingerprint) = self
            .model
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .identity
            .unwrap_or((0, 0));
        Ok(Some(Checkpoint {
            cursor,
            version,
            fingerprint,
        }))
    }

    async fn apply_batch<F>(
        &self,
        batch: &[(Cursor, StoredEvent)],
        mut step: F,
    ) -> Result<Option<Cursor>, StoreError>
    where
        F: FnMut(&mut P, &mut (), Cursor, &StoredEvent) -> Step + Send,
    {
        let last = {
            let mut guarded = self.model.write().unwrap_or_else(PoisonError::into_inner);
            let mut last = None;
            for (cursor, event) in batch {
                if guarded.applied.is_some_and(|applied| *cursor <= applied) {
                    // Delivered again after a crash before the checkpoint: already applied.
                    last = Some(*cursor);
                    continue;
                }
                match step(&mut guarded.model, &mut (), *cursor, event) {
                    Step::Advance => {
                        guarded.applied = Some(*cursor);
                        guarded.identity = Some((P::VERSION, P::FINGERPRINT));
                        last = Some(*cursor);
                    }
                    Step::Halt => break,
                }
            }
            last
        };
        if let Some(cursor) = last {
            self.checkpoints.save_checkpoint(P::NAME, cursor).await?;
        }
        Ok(last)
    }

    async fn reset(&self) -> Result<(), StoreError> {
        {
            let mut guarded = self.model.write().unwrap_or_else(PoisonError::into_inner);
            guarded.model.reset();
            guarded.applied = None;
            guarded.identity = None;
        }
        self.checkpoints.reset_checkpoint(P::NAME).await
    }
}
