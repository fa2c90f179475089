//! Reactors and process managers as handlers of a runner.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};

use super::context::{Timer, firing_id};
use super::store::InstanceChange;
use super::{
    Cause, Clock, ProcessContext, ProcessManager, ReactionContext, ReactionError, ReactionStore,
    Reactor, Role, Route, SystemClock,
};
use crate::processing::{ErrorPolicy, Handled, Handler, Partition, PartitionKey, RunError, Tick};
use crate::store::{
    Checkpoint, CheckpointCommit, CheckpointStore, Cursor, DeadLetter, StoreError, StoredEvent,
};

/// How many due deadlines one tick fires at most.
const DEADLINES_PER_TICK: usize = 100;

/// The reactor `R` as a runner's handler: sends through the bus `B`, keeps its checkpoint and
/// dead letters in `St`. Made by [`reactor`].
pub struct ReactorHandler<R, B, St> {
    reactor: R,
    bus: B,
    checkpoints: St,
    /// The checkpoint's name when the handler is one partition's (else the reactor's name).
    partition: Option<String>,
}

/// The reactor `reactor`, sending through `bus`, with its checkpoint in `checkpoints` (any
/// [`CheckpointStore`]: the event store itself, or an in-memory one), ready for
/// [`Runner::new`](crate::processing::Runner::new).
pub fn reactor<R, B, St>(reactor: R, bus: B, checkpoints: St) -> ReactorHandler<R, B, St>
where
    R: Reactor<B>,
    B: Send + Sync + 'static,
    St: CheckpointStore,
{
    ReactorHandler {
        reactor,
        bus,
        checkpoints,
        partition: None,
    }
}

impl<R, B, St> ReactorHandler<R, B, St> {
    /// Makes the handler the one of `partition` of the reactor: its checkpoint, lease and
    /// dead letters under the partition's name ([`Partition::name`]). The commands it sends
    /// keep the reactor's name (their ids, and so their deduplication, do not depend on the
    /// partition). Run it on the partition's source ([`Partition::source`]), e.g. in a
    /// [`Fleet`](crate::processing::Fleet).
    pub fn partition(mut self, partition: &Partition) -> Self {
        self.partition = Some(partition.name());
        self
    }

    /// The reactor.
    pub fn reactor(&self) -> &R {
        &self.reactor
    }

    /// The command bus.
    pub fn bus(&self) -> &B {
        &self.bus
    }
}

/// Puts a handler's failure on an event through the error policy: set aside as a dead letter
/// (counted in `handled`, recorded with the checkpoint), or the end of the batch (`true`, the
/// error in `handled.stopped`). A transient failure is `Err`: the batch runs again.
fn settle(
    name: &str,
    (cursor, event): (Cursor, &StoredEvent),
    error: ReactionError,
    policy: ErrorPolicy,
    handled: &mut Handled,
    record: &mut Vec<DeadLetter>,
) -> Result<bool, StoreError> {
    if error.is_transient() {
        // The whole batch runs again: its commands are idempotent, nothing else was written.
        return match error {
            ReactionError::Store(store) => Err(store),
            other => Err(StoreError::unavailable(other.to_string())),
        };
    }
    match policy {
        ErrorPolicy::Stop => {
            handled.stopped = Some(RunError::handler(name, event, error));
            Ok(true)
        }
        ErrorPolicy::SkipAndRecord => {
            tracing::warn!(
                position = event.global_position,
                event_type = %event.event_type,
                %error,
                "a reaction failed on an event: set aside"
            );
            record.push(DeadLetter::of(cursor, event, &error));
            handled.dead_lettered += 1;
            Ok(false)
        }
    }
}

impl<R, B, St> Handler for ReactorHandler<R, B, St>
where
    R: Reactor<B>,
    B: Send + Sync + 'static,
    St: CheckpointStore,
{
    fn name(&self) -> &str {
        self.partition.as_deref().unwrap_or(R::NAME)
    }

    fn identity(&self) -> (u32, u64) {
        (R::VERSION, R::FINGERPRINT)
    }

    async fn checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        self.checkpoints.checkpoint(self.name()).await
    }

    async fn claim(&self) -> Result<Checkpoint, StoreError> {
        self.checkpoints.claim(self.name()).await
    }

    async fn handle(
        &self,
        fence: u64,
        batch: &[(Cursor, StoredEvent)],
        policy: ErrorPolicy,
    ) -> Result<Handled, StoreError> {
        let mut handled = Handled::default();
        let mut record = Vec::new();
        for (cursor, event) in batch {
            let mut ctx = ReactionContext::new(&self.bus, R::NAME, Cause::of_event(event));
            if let Err(error) = self.reactor.react(event, &mut ctx).await
                && settle(
                    R::NAME,
                    (*cursor, event),
                    error,
                    policy,
                    &mut handled,
                    &mut record,
                )?
            {
                break;
            }
            handled.reached = Some(*cursor);
            handled.processed += 1;
        }
        if let Some(last) = handled.reached {
            let mut commit = CheckpointCommit::advance(fence, last, R::VERSION, R::FINGERPRINT);
            commit.record = record;
            self.checkpoints.commit(self.name(), commit).await?;
        }
        Ok(handled)
    }

    async fn retry(
        &self,
        fence: u64,
        event: &(Cursor, StoredEvent),
    ) -> Result<Handled, StoreError> {
        let (cursor, stored) = event;
        let mut ctx = ReactionContext::new(&self.bus, R::NAME, Cause::of_event(stored));
        if let Err(error) = self.reactor.react(stored, &mut ctx).await {
            let mut handled = Handled::default();
            settle(
                R::NAME,
                (*cursor, stored),
                error,
                ErrorPolicy::Stop,
                &mut handled,
                &mut Vec::new(),
            )?;
            return Ok(handled);
        }
        let remove = CheckpointCommit::keep(fence, vec![cursor.position]);
        self.checkpoints.commit(self.name(), remove).await?;
        Ok(Handled {
            reached: Some(*cursor),
            processed: 1,
            ..Handled::default()
        })
    }

    async fn commit(&self, commit: CheckpointCommit) -> Result<Checkpoint, StoreError> {
        self.checkpoints.commit(self.name(), commit).await
    }

    /// A reactor's past commands are in the log: it starts afresh at `head`.
    async fn reset(&self, fence: u64, head: Cursor) -> Result<Checkpoint, StoreError> {
        let commit = CheckpointCommit::reset(fence, head, R::VERSION, R::FINGERPRINT);
        self.checkpoints.commit(self.name(), commit).await
    }

    async fn tick(&self, _fence: u64, _policy: ErrorPolicy) -> Result<Tick, StoreError> {
        Ok(Tick::default())
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.checkpoints.dead_letters(self.name()).await
    }
}

/// The process manager `P` as a runner's handler: sends through the bus `B`, keeps its
/// checkpoint, instances and deadlines in `St`, reads the time for deadlines from `C`. Made
/// by [`process_manager`].
pub struct ProcessManagerHandler<P, B, St, C = SystemClock> {
    bus: B,
    store: St,
    clock: C,
    /// The fence whose runner has ticked once: no deadline firing interrupted before its
    /// claim is left (see [`ProcessManagerHandler::interrupted`]).
    ticked: AtomicU64,
    /// The partition's name, under which the checkpoint, instances and deadlines are kept
    /// (`None`: the manager's own name).
    partition: Option<String>,
    _manager: PhantomData<fn() -> P>,
}

/// The process manager `P`, sending through `bus`, with its checkpoint, instances and
/// deadlines in `store` (the SQL event store itself, or [`InMemoryReactions`](super::InMemoryReactions)),
/// ready for [`Runner::new`](crate::processing::Runner::new). Deadlines fire by the system
/// clock; see [`ProcessManagerHandler::clock`].
pub fn process_manager<P, B, St>(bus: B, store: St) -> ProcessManagerHandler<P, B, St>
where
    P: ProcessManager<B>,
    B: Send + Sync + 'static,
    St: ReactionStore,
{
    ProcessManagerHandler {
        bus,
        store,
        clock: SystemClock,
        ticked: AtomicU64::new(0),
        partition: None,
        _manager: PhantomData,
    }
}

/// The partition key of the process manager `P`: the correlation key its
/// [`route`](ProcessManager::route) gives an event (the stream id for an event it does not
/// handle), so that every event of an instance lands in one partition. Give it to the fleet
/// that runs the partitions: `Fleet::new(..).key(process_key::<P, B>())`.
pub fn process_key<P, B>() -> PartitionKey
where
    P: ProcessManager<B>,
    B: Send + Sync + 'static,
{
    PartitionKey::by(|event| match P::route(event) {
        Ok(Route::Handle { key, .. }) => Cow::Owned(key),
        _ => Cow::Borrowed(event.stream_id.as_str()),
    })
}

impl<P, B, St, C> ProcessManagerHandler<P, B, St, C> {
    /// Reads the time for deadlines from `clock` (a [`ManualClock`](super::ManualClock) in
    /// tests).
    pub fn clock<C2: Clock>(self, clock: C2) -> ProcessManagerHandler<P, B, St, C2> {
        ProcessManagerHandler {
            bus: self.bus,
            store: self.store,
            clock,
            ticked: self.ticked,
            partition: self.partition,
            _manager: PhantomData,
        }
    }

    /// Makes the handler the one of `partition` of the process manager: its checkpoint,
    /// lease, dead letters, instances and deadlines are kept under the partition's name
    /// ([`Partition::name`]). Partition by the manager's correlation key, so that every event
    /// of an instance reaches the partition that holds it: give the fleet (or
    /// [`Partition::new`]) the key [`process_key`]. The commands it sends and the ids of its
    /// deadline firings keep the manager's name (their deduplication does not depend on the
    /// partition).
    ///
    /// An instance lives in the partition of its key for the partition count it was started
    /// under: re-partitioning a process manager starts it afresh, as a rebuild does (its
    /// instances and deadlines under the old count are left behind, not carried over).
    pub fn partition(mut self, partition: &Partition) -> Self {
        self.partition = Some(partition.name());
        self
    }

    /// The command bus.
    pub fn bus(&self) -> &B {
        &self.bus
    }

    /// The store of instances and deadlines.
    pub fn store(&self) -> &St {
        &self.store
    }
}

impl<P, B, St, C> ProcessManagerHandler<P, B, St, C>
where
    P: ProcessManager<B>,
    B: Send + Sync + 'static,
    St: ReactionStore,
    C: Clock,
{
    /// Where the checkpoint, instances and deadlines are kept: the partition's name, or the
    /// manager's.
    fn space(&self) -> &str {
        self.partition.as_deref().unwrap_or(P::NAME)
    }

    /// The stored state of the instance `key`, if it exists (in this handler's partition,
    /// for a partitioned one).
    pub async fn instance(&self, key: &str) -> Result<Option<P>, StoreError> {
        let stored = self.store.instance(self.space(), key).await?;
        stored
            .map(|bytes| serde_json::from_slice(&bytes).map_err(StoreError::backend))
            .transpose()
    }

    /// The state of `key`: from the batch's own changes first, then from the store.
    async fn load(
        &self,
        cache: &HashMap<String, Option<Vec<u8>>>,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match cache.get(key) {
            Some(state) => Ok(state.clone()),
            None => self.store.instance(self.space(), key).await,
        }
    }

    /// Runs the handler of `event` for the instance `key`; the changes it asks for, or why
    /// it failed.
    async fn run(
        &self,
        event: &StoredEvent,
        key: &str,
        state: Option<Vec<u8>>,
        role: Role,
    ) -> Result<(Option<Vec<u8>>, Vec<InstanceChange>), ReactionError> {
        let mut instance: P = match state {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(ReactionError::failed)?,
            None => P::default(),
        };
        let mut ctx = ProcessContext::new(&self.bus, P::NAME, key, Cause::of_event(event));
        instance.handle(event, &mut ctx).await?;
        let ended = role == Role::End || ctx.ended;
        finish(key, instance, ctx.timers, ended)
    }
}

/// The changes after a handler ran: its timers, then the state saved or the instance removed.
fn finish<P: serde::Serialize>(
    key: &str,
    instance: P,
    timers: Vec<Timer>,
    ended: bool,
) -> Result<(Option<Vec<u8>>, Vec<InstanceChange>), ReactionError> {
    let mut changes: Vec<InstanceChange> = timers
        .into_iter()
        .map(|timer| match timer {
            Timer::Schedule { name, due, payload } => InstanceChange::Schedule {
                key: key.to_owned(),
                name: name.to_owned(),
                due,
                payload,
            },
            Timer::Cancel { name } => InstanceChange::Cancel {
                key: key.to_owned(),
                name: name.to_owned(),
            },
        })
        .collect();
    if ended {
        changes.push(InstanceChange::Remove {
            key: key.to_owned(),
        });
        return Ok((None, changes));
    }
    let state = crate::store::json::to_vec(&instance).map_err(ReactionError::failed)?;
    changes.push(InstanceChange::Save {
        key: key.to_owned(),
        state: state.clone(),
    });
    Ok((Some(state), changes))
}

impl<P, B, St, C> Handler for ProcessManagerHandler<P, B, St, C>
where
    P: ProcessManager<B>,
    B: Send + Sync + 'static,
    St: ReactionStore,
    C: Clock,
{
    fn name(&self) -> &str {
        self.space()
    }

    fn identity(&self) -> (u32, u64) {
        (P::VERSION, P::FINGERPRINT)
    }

    async fn checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        self.store.checkpoint(self.space()).await
    }

    /// Creates the instance and deadline tables if they are missing, then claims.
    async fn claim(&self) -> Result<Checkpoint, StoreError> {
        self.store.prepare().await?;
        self.store.claim(self.space()).await
    }

    async fn handle(
        &self,
        fence: u64,
        batch: &[(Cursor, StoredEvent)],
        policy: ErrorPolicy,
    ) -> Result<Handled, StoreError> {
        let mut handled = Handled::default();
        let mut record = Vec::new();
        let mut changes = Vec::new();
        let mut cache: HashMap<String, Option<Vec<u8>>> = HashMap::new();
        // A deadline whose firing a crash interrupted fires again before the events that
        // follow the checkpoint, as it did before them the first time (see `interrupted`).
        if self.ticked.load(Ordering::Acquire) != fence {
            for deadline in self.interrupted(batch).await? {
                let fired = InstanceChange::Cancel {
                    key: deadline.key.clone(),
                    name: deadline.name.clone(),
                };
                let Some(state) = self.load(&cache, &deadline.key).await? else {
                    changes.push(fired);
                    continue;
                };
                // Boxed: the handler's future would otherwise nest the deadline handler's one
                // level deeper than the tick does, past the compiler's layout depth in deep
                // callers (only the first batches after a claim come here).
                match Box::pin(self.fire(&deadline, state)).await {
                    Ok((state, done)) => {
                        changes.push(fired);
                        changes.extend(done);
                        cache.insert(deadline.key, state);
                    }
                    Err(error) if error.is_transient() => return Err(transient(error)),
                    Err(error) => match policy {
                        ErrorPolicy::Stop => {
                            handled.stopped = Some(RunError::Deadline {
                                name: P::NAME.to_owned(),
                                key: deadline.key.clone(),
                                deadline: deadline.name.clone(),
                                source: error,
                            });
                            return Ok(handled);
                        }
                        ErrorPolicy::SkipAndRecord => changes.push(fired),
                    },
                }
            }
        }
        for (cursor, event) in batch {
            let outcome = match P::route(event) {
                Ok(Route::Foreign | Route::Ignored) => Ok(()),
                Ok(Route::Handle { key, role }) => {
                    let state = self.load(&cache, &key).await?;
                    if state.is_none() && role != Role::Start {
                        tracing::warn!(
                            %key,
                            position = event.global_position,
                            event_type = %event.event_type,
                            "an event for an instance that does not exist: passed over"
                        );
                        handled.orphans += 1;
                        Ok(())
                    } else {
                        match self.run(event, &key, state, role).await {
                            Ok((state, done)) => {
                                cache.insert(key, state);
                                changes.extend(done);
                                Ok(())
                            }
                            Err(error) => Err(error),
                        }
                    }
                }
                Err(decode) => Err(ReactionError::Decode(decode)),
            };
            if let Err(error) = outcome
                && settle(
                    P::NAME,
                    (*cursor, event),
                    error,
                    policy,
                    &mut handled,
                    &mut record,
                )?
            {
                break;
            }
            handled.reached = Some(*cursor);
            handled.processed += 1;
        }
        if let Some(last) = handled.reached {
            let mut commit = CheckpointCommit::advance(fence, last, P::VERSION, P::FINGERPRINT);
            commit.record = record;
            self.store
                .commit_changes(self.space(), commit, changes)
                .await?;
        }
        Ok(handled)
    }

    async fn retry(
        &self,
        fence: u64,
        event: &(Cursor, StoredEvent),
    ) -> Result<Handled, StoreError> {
        let (cursor, stored) = event;
        let mut changes = Vec::new();
        let outcome = match P::route(stored) {
            Ok(Route::Handle { key, role }) => {
                let state = self.store.instance(self.space(), &key).await?;
                if state.is_none() && role != Role::Start {
                    Ok(())
                } else {
                    self.run(stored, &key, state, role)
                        .await
                        .map(|(_, done)| changes.extend(done))
                }
            }
            Ok(_) => Ok(()),
            Err(decode) => Err(ReactionError::Decode(decode)),
        };
        if let Err(error) = outcome {
            let mut handled = Handled::default();
            settle(
                P::NAME,
                (*cursor, stored),
                error,
                ErrorPolicy::Stop,
                &mut handled,
                &mut Vec::new(),
            )?;
            return Ok(handled);
        }
        let commit = CheckpointCommit::keep(fence, vec![cursor.position]);
        self.store
            .commit_changes(self.space(), commit, changes)
            .await?;
        Ok(Handled {
            reached: Some(*cursor),
            processed: 1,
            ..Handled::default()
        })
    }

    async fn commit(&self, commit: CheckpointCommit) -> Result<Checkpoint, StoreError> {
        self.store.commit(self.space(), commit).await
    }

    /// A process manager's past commands are in the log: its instances and deadlines are
    /// cleared and it starts afresh at `head`.
    async fn reset(&self, fence: u64, head: Cursor) -> Result<Checkpoint, StoreError> {
        let commit = CheckpointCommit::reset(fence, head, P::VERSION, P::FINGERPRINT);
        self.store
            .commit_changes(self.space(), commit, vec![InstanceChange::ClearAll])
            .await
    }

    /// Fires the due deadlines, each in a commit of its own with the state it changed.
    async fn tick(&self, fence: u64, policy: ErrorPolicy) -> Result<Tick, StoreError> {
        let mut tick = Tick::default();
        let now = self.clock.now();
        for deadline in self
            .store
            .due(self.space(), now, DEADLINES_PER_TICK)
            .await?
        {
            let fired = InstanceChange::Cancel {
                key: deadline.key.clone(),
                name: deadline.name.clone(),
            };
            let keep = CheckpointCommit::keep(fence, Vec::new());
            let Some(state) = self.store.instance(self.space(), &deadline.key).await? else {
                // The instance ended after scheduling it: nothing to fire.
                self.store
                    .commit_changes(self.space(), keep, vec![fired])
                    .await?;
                continue;
            };
            match self.fire(&deadline, state).await {
                Ok((_, mut changes)) => {
                    changes.insert(0, fired);
                    self.store
                        .commit_changes(self.space(), keep, changes)
                        .await?;
                    tick.done += 1;
                }
                Err(error) if error.is_transient() => return Err(transient(error)),
                Err(error) => match policy {
                    ErrorPolicy::Stop => {
                        tick.stopped = Some(RunError::Deadline {
                            name: P::NAME.to_owned(),
                            key: deadline.key.clone(),
                            deadline: deadline.name.clone(),
                            source: error,
                        });
                        return Ok(tick);
                    }
                    ErrorPolicy::SkipAndRecord => {
                        tracing::error!(
                            key = %deadline.key,
                            deadline = %deadline.name,
                            %error,
                            "a deadline handler failed: the deadline is dropped"
                        );
                        self.store
                            .commit_changes(self.space(), keep, vec![fired])
                            .await?;
                    }
                },
            }
        }
        tick.next = self.store.next_due(self.space()).await?;
        // Every deadline due when the fence was claimed has fired and committed by now.
        self.ticked.store(fence, Ordering::Release);
        Ok(tick)
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.store.dead_letters(self.space()).await
    }
}

impl<P, B, St, C> ProcessManagerHandler<P, B, St, C>
where
    P: ProcessManager<B>,
    B: Send + Sync + 'static,
    St: ReactionStore,
    C: Clock,
{
    /// The due deadlines whose firing was interrupted after some of its commands took effect
    /// (a process killed before the firing's commit): those an event of `batch` follows from.
    ///
    /// The runner fires deadlines after it caught up, so the events such a firing's commands
    /// appended follow the checkpoint; a restarted runner reads them before it ticks. Handled
    /// first, they would meet the instance as it was before the firing (the firing's state
    /// was not committed) and decide again what the firing decided (a second release of the
    /// stock of an order the deadline cancelled, under other command ids). So the firing is
    /// redone first, and its commands are found applied. Looked for until the runner's first
    /// tick under a fence: that tick fires whatever else was left.
    async fn interrupted(
        &self,
        batch: &[(Cursor, StoredEvent)],
    ) -> Result<Vec<super::DueDeadline>, StoreError> {
        // A firing's commands carry its id as their correlation id (see `fire`), and so do
        // their events and whatever follows from them.
        let correlations: HashSet<uuid::Uuid> = batch
            .iter()
            .map(|(_, event)| event.metadata.correlation_id)
            .collect();
        // The interrupted firing was among the first of those due then; none was scheduled
        // since (nothing committed under this fence yet).
        let due = self
            .store
            .due(self.space(), self.clock.now(), DEADLINES_PER_TICK)
            .await?;
        Ok(due
            .into_iter()
            .filter(|d| correlations.contains(&firing_id(P::NAME, &d.key, &d.name, d.due)))
            .collect())
    }

    /// Runs the handler of a due deadline on its instance; the instance's state after it
    /// (`None`: ended) and the changes it asks for.
    async fn fire(
        &self,
        deadline: &super::DueDeadline,
        state: Vec<u8>,
    ) -> Result<(Option<Vec<u8>>, Vec<InstanceChange>), ReactionError> {
        let mut instance: P = serde_json::from_slice(&state).map_err(ReactionError::failed)?;
        let id = firing_id(P::NAME, &deadline.key, &deadline.name, deadline.due);
        let cause = Cause {
            id,
            correlation_id: id,
            user: Default::default(),
            now: deadline.due,
            trace: None,
        };
        let mut ctx = ProcessContext::new(&self.bus, P::NAME, &deadline.key, cause);
        instance.on_deadline(deadline, &mut ctx).await?;
        let ended = ctx.ended;
        finish(&deadline.key, instance, ctx.timers, ended)
    }
}

/// A transient failure of a handler, as the store error the runner retries.
fn transient(error: ReactionError) -> StoreError {
    match error {
        ReactionError::Store(store) => store,
        other => StoreError::unavailable(other.to_string()),
    }
}
