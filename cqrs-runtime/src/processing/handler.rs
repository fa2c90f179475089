//! What a runner drives: a handler of batches that commits its effects with its checkpoint.

use std::future::Future;

use super::{ErrorPolicy, RunError};
use crate::store::{
    Checkpoint, CheckpointCommit, Cursor, DeadLetter, EventFilter, StoreError, StoredEvent,
};

/// What a [`Runner`](super::Runner) drives: a named consumer of events that commits its
/// effects together with its fenced [`Checkpoint`].
///
/// A projection's read model is one (through [`ProjectionRunner`](crate::projection::ProjectionRunner));
/// reactions and relays are others. Every commit carries the fence of the runner's claim
/// and is refused ([`StoreError::Fenced`]) once another runner claimed the name.
pub trait Handler: Send + Sync + 'static {
    /// The name: the key of the checkpoint, the lease and the dead letters.
    fn name(&self) -> &str;

    /// The identity of the running code, `(version, fingerprint)`: a checkpoint written by
    /// other code asks for a rebuild.
    fn identity(&self) -> (u32, u64);

    /// The events the handler takes: the runner reads only those
    /// ([`Source::read`](super::Source::read)), and moves the checkpoint past the others
    /// without fetching them. `None` (the default): every event.
    ///
    /// A handler given an event outside its filter must still decide about it as it would
    /// without one: the filter is a read optimization, and a source that cannot filter
    /// delivers everything.
    fn filter(&self) -> Option<EventFilter> {
        None
    }

    /// The stored checkpoint (read only).
    fn checkpoint(&self) -> impl Future<Output = Result<Option<Checkpoint>, StoreError>> + Send;

    /// Claims the checkpoint for a runner: a new fence (see [`Checkpoint`]).
    fn claim(&self) -> impl Future<Output = Result<Checkpoint, StoreError>> + Send;

    /// Takes `batch` (events after the checkpoint, in order) and commits the effects of those
    /// it got through with the checkpoint, under `fence`. An event it cannot take goes
    /// through `policy`: under [`ErrorPolicy::Stop`] the batch is committed up to the event
    /// before it and [`Handled::stopped`] says why; under [`ErrorPolicy::SkipAndRecord`] it
    /// becomes a [`DeadLetter`] committed with the batch.
    fn handle(
        &self,
        fence: u64,
        batch: &[(Cursor, StoredEvent)],
        policy: ErrorPolicy,
    ) -> impl Future<Output = Result<Handled, StoreError>> + Send;

    /// Takes one dead-lettered event again: commits its effects and removes its dead letter,
    /// leaving the checkpoint where it is. `Handled::stopped` says why if it failed again.
    fn retry(
        &self,
        fence: u64,
        event: &(Cursor, StoredEvent),
    ) -> impl Future<Output = Result<Handled, StoreError>> + Send;

    /// Commits a checkpoint change with no effects (a dead letter for a row that could not be
    /// read, a discarded dead letter).
    fn commit(
        &self,
        commit: CheckpointCommit,
    ) -> impl Future<Output = Result<Checkpoint, StoreError>> + Send;

    /// Starts the handler again, in one commit under `fence` (a rebuild's first step): a
    /// projection clears its model and goes back to the start of the source; a reaction,
    /// whose effects are already in the log, clears its instances and starts at `head`.
    /// Returns the checkpoint to resume after.
    fn reset(
        &self,
        fence: u64,
        head: Cursor,
    ) -> impl Future<Output = Result<Checkpoint, StoreError>> + Send;

    /// Work that is due besides the source's events, run by the runner between reads under
    /// the same fence (a process manager's deadlines). Returns how many units of work it
    /// committed and when it next has work due, if it knows.
    fn tick(
        &self,
        fence: u64,
        policy: ErrorPolicy,
    ) -> impl Future<Output = Result<Tick, StoreError>> + Send;

    /// The dead letters, oldest first.
    fn dead_letters(&self) -> impl Future<Output = Result<Vec<DeadLetter>, StoreError>> + Send;
}

/// What [`Handler::tick`] did.
#[derive(Debug, Default)]
pub struct Tick {
    /// How many units of work it committed.
    pub done: u64,
    /// When it next has work due (`None`: nothing scheduled).
    pub next: Option<chrono::DateTime<chrono::Utc>>,
    /// The work it stopped at under [`ErrorPolicy::Stop`], and why.
    pub stopped: Option<RunError>,
}

/// What [`Handler::handle`] got through.
#[derive(Debug, Default)]
pub struct Handled {
    /// The cursor of the last event committed past (taken or dead-lettered), if any.
    pub reached: Option<Cursor>,
    /// How many events were committed past.
    pub processed: u64,
    /// How many of them were set aside as dead letters.
    pub dead_lettered: u64,
    /// How many events concerned an instance that does not exist (process managers).
    pub orphans: u64,
    /// The event the handler stopped at under [`ErrorPolicy::Stop`], and why.
    pub stopped: Option<RunError>,
}
