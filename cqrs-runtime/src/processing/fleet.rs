//! A fleet: one handler split into partitions, run by any number of worker processes that
//! share a store, spreading the partitions evenly and taking over those of a worker that died.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::Instrument;

use super::error::{RunError, WaitError};
use super::handler::Handler;
use super::partition::{Partition, PartitionKey, partition_name};
use super::runner::{Runner, Running};
use super::source::Source;
use super::task::Stoppable;
use super::wait::CheckpointWatch;
use crate::store::{CheckpointCommit, CheckpointStore, Cursor, Lease, LeaseStore, StoreError};

/// The fingerprint of the checkpoint row that records a fleet's partition count.
const COUNT_MARK: u64 = cqrs_lock::fnv1a(cqrs_lock::FNV_OFFSET, b"cqrs-fleet-partitions");

/// The name of the checkpoint row that records the partition count of the fleet `name`.
fn count_name(name: &str) -> String {
    format!("{name}#partitions")
}

/// The name of worker slot `slot` of the fleet `name`: the lease a live worker holds.
fn slot_name(name: &str, slot: u32) -> String {
    format!("{name}#worker{slot}")
}

/// Why a fleet stopped or refused to start.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The store records another partition count for this handler: the worker would put
    /// events in other partitions than the running workers do, and handle them twice.
    #[error(
        "`{name}` is split into {stored} partitions in the store, not {requested}: start every worker with {stored} partitions, or stop them all and re-partition (`Fleet::repartition`)"
    )]
    PartitionCount {
        /// The handler's name.
        name: String,
        /// The count in the store.
        stored: u32,
        /// The count this worker was given.
        requested: u32,
    },

    /// A re-partition was refused: a worker or a partition runner still holds this lease.
    #[error(
        "`{name}` is still running (`{lease}` is held): stop every worker before re-partitioning"
    )]
    Running {
        /// The handler's name.
        name: String,
        /// The held lease.
        lease: String,
    },

    /// The factory built a runner whose handler is not the partition's (its checkpoint and
    /// lease would be another's).
    #[error(
        "the runner built for partition `{expected}` runs `{found}`: build it on the partition's view of the handler (e.g. `SqlReadModel::partition`)"
    )]
    Unpartitioned {
        /// The partition's name.
        expected: String,
        /// The name of the handler the factory built.
        found: String,
    },

    /// The runner of a partition stopped with an error other than a lost lease (a poison
    /// event under `ErrorPolicy::Stop`, a checkpoint that asks for a rebuild, a store
    /// failure).
    #[error("partition {partition} of `{name}` stopped: {source}")]
    Partition {
        /// The handler's name.
        name: String,
        /// The partition's index.
        partition: u32,
        /// Why it stopped.
        #[source]
        source: RunError,
    },

    /// The store failed (not a transient failure: those are retried at the next heartbeat).
    #[error("the fleet `{name}`: {source}")]
    Store {
        /// The handler's name.
        name: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
}

/// What a worker of a fleet holds, as of its last heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetStatus {
    /// The worker slot this worker holds (`None`: waiting for one, or stopped).
    pub worker: Option<u32>,
    /// How many workers were live (held a slot) at the last heartbeat, this one included.
    pub live_workers: u32,
    /// The partitions this worker runs, by index.
    pub held: Vec<u32>,
}

/// A cheap, cloneable view of a worker of a fleet.
#[derive(Debug, Clone)]
pub struct FleetHandle {
    status: watch::Receiver<FleetStatus>,
}

impl FleetHandle {
    /// What the worker holds, as of its last heartbeat.
    pub fn status(&self) -> FleetStatus {
        self.status.borrow().clone()
    }

    /// Waits until the worker's status satisfies `until`, or `timeout` passes (`false`).
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut until: impl FnMut(&FleetStatus) -> bool,
    ) -> bool {
        let mut status = self.status.clone();
        tokio::time::timeout(timeout, status.wait_for(|s| until(s)))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// One worker of a partitioned handler: runs the partitions it claims, as many as its share.
///
/// A handler (a projection's read model, a reaction) split into `N` [`Partition`]s by a
/// [`PartitionKey`] (the stream id by default) runs as one [`Runner`] per partition, each with
/// its own checkpoint and lease (named `{name}#p{i}/{N}`), reading only its partition's
/// events ([`Partition::source`]) in the log's order. Start a `Fleet` in every worker
/// process, with the same name, the same `N` and a store they share (PostgreSQL; SQLite for
/// processes on one machine): each worker
///
/// - holds a worker slot (a lease named `{name}#worker{k}`, `k < N`; a worker beyond `N`
///   waits for a slot), so that the others count it;
/// - every heartbeat, counts the live workers and runs at most `ceil(N / live)` partitions:
///   it stops the extras (highest indexes first) when a worker joins, and claims free
///   partitions (through their leases) while it has fewer;
/// - takes over the partitions of a worker that died without an operator: its leases go
///   with its process or database session, and the next heartbeat of a worker with room
///   claims them, resuming from their checkpoints.
///
/// A partition's runner is an ordinary [`Runner`], built by the factory for the partition,
/// with the fleet's store as its leases: a runner that lost its lease stops before its next
/// batch, and its commits are fenced out as soon as the next holder claims the checkpoint,
/// so no partition is committed by two workers. With a read model that commits its
/// checkpoint with its effects ([`SqlReadModel::partition`](crate::projection::SqlReadModel::partition)),
/// each event's effect is in the model exactly once.
///
/// The partition count is recorded in the store at the first start: a worker started with
/// another count refuses with [`FleetError::PartitionCount`]. Changing it is a procedure
/// with every worker stopped: [`Fleet::repartition`].
///
/// ```no_run
/// # async fn demo(store: cqrs_runtime::postgres::PostgresEventStore) -> Result<(), Box<dyn std::error::Error>> {
/// # use cqrs_runtime::prelude::*;
/// # use cqrs_runtime::projection::{EventMeta, SqlProjection};
/// # use cqrs_runtime::store::SqlBatch;
/// # #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, Event)]
/// # #[event(name = "item_added", version = 1)]
/// # pub struct ItemAdded { pub sku: String }
/// # #[derive(Debug, Clone, PartialEq, EventEnum)]
/// # pub enum CartEvent { Added(ItemAdded) }
/// # #[derive(Default)]
/// # pub struct Demand;
/// # #[projection(name = "demand", events = CartEvent, transaction = SqlBatch)]
/// # impl Demand { #[on] fn added(&mut self, _: &ItemAdded, _: &EventMeta, _: &mut SqlBatch) {} }
/// # impl SqlProjection for Demand {
/// #     fn create_tables(_: &mut SqlBatch) {}
/// #     fn clear_tables(_: &mut SqlBatch) {}
/// # }
/// use cqrs_runtime::processing::Fleet;
/// use cqrs_runtime::projection::{ProjectionRunner, SqlReadModel};
///
/// let model = SqlReadModel::<Demand, _>::open(store.clone()).await?;
/// let events = store.clone();
/// let fleet = Fleet::new("demand", 8, store.clone(), move |partition| {
///     ProjectionRunner::new(partition.source(events.clone()), model.partition(&partition))
/// });
/// // Runs until the future completes (a shutdown signal) or a partition fails.
/// fleet.run(std::future::pending::<()>()).await?;
/// # Ok(()) }
/// ```
pub struct Fleet<St, F> {
    name: Arc<str>,
    count: u32,
    key: PartitionKey,
    store: St,
    factory: F,
    heartbeat: Duration,
    status: Arc<watch::Sender<FleetStatus>>,
}

/// The partitions a worker runs, by index.
type Held = BTreeMap<u32, Running>;

impl<St, F, H, S> Fleet<St, F>
where
    St: LeaseStore + CheckpointStore + Clone,
    F: Fn(Partition) -> Runner<H, S> + Send + Sync + 'static,
    H: Handler,
    S: Source,
{
    /// A worker of the handler `name` split into `partitions` (at least 1), whose leases and
    /// checkpoints live in `store` (for a SQL read model: its backend), building each
    /// partition's runner with `factory` (on the partition's source and the partition's view
    /// of the handler). Heartbeat: every second.
    pub fn new(name: &str, partitions: u32, store: St, factory: F) -> Self {
        let (status, _) = watch::channel(FleetStatus::default());
        Self {
            name: Arc::from(name),
            count: partitions.max(1),
            key: PartitionKey::default(),
            store,
            factory,
            heartbeat: Duration::from_secs(1),
            status: Arc::new(status),
        }
    }

    /// Partitions by `key` instead of the stream id. Every worker must use the same key.
    pub fn key(mut self, key: PartitionKey) -> Self {
        self.key = key;
        self
    }

    /// How often the worker counts the live workers and rebalances (how soon it takes over
    /// a dead worker's partitions, once their leases are gone).
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every.max(Duration::from_millis(10));
        self
    }

    /// The handler's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The partition count.
    pub fn partitions(&self) -> u32 {
        self.count
    }

    /// Partition `index` (modulo the count), with the fleet's key.
    pub fn partition(&self, index: u32) -> Partition {
        Partition::new(&self.name, index, self.count, self.key.clone())
    }

    /// A view of this worker: its slot and the partitions it runs.
    pub fn handle(&self) -> FleetHandle {
        FleetHandle {
            status: self.status.subscribe(),
        }
    }

    /// Runs the worker until `shutdown` completes (then stops its partitions' runners after
    /// their current batch) or a partition fails ([`FleetError::Partition`]).
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send) -> Result<(), FleetError> {
        let span = tracing::info_span!("cqrs.fleet", name = %self.name, partitions = self.count);
        async {
            let mut held = Held::new();
            let result = self.run_holding(&mut held, shutdown).await;
            self.release(&mut held, 0).await;
            self.status.send_replace(FleetStatus::default());
            result
        }
        .instrument(span)
        .await
    }

    /// Runs the worker on a new Tokio task until [`RunningFleet::stop`]; dropping the
    /// returned [`RunningFleet`] stops it too.
    pub fn spawn(self) -> RunningFleet
    where
        St: 'static,
    {
        let handle = self.handle();
        let task = Stoppable::spawn(|shutdown| async move { self.run(shutdown).await });
        RunningFleet { handle, task }
    }

    async fn run_holding(
        &self,
        held: &mut Held,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), FleetError> {
        let mut shutdown = std::pin::pin!(shutdown);
        check_count(&self.store, &self.name, self.count).await?;
        loop {
            let Some((slot, lease)) = self.take_slot(shutdown.as_mut()).await? else {
                return Ok(());
            };
            tracing::info!(slot, "joined the fleet");
            loop {
                if !lease.is_held() {
                    tracing::warn!(slot, "lost the worker slot: stopping every partition");
                    self.release(held, 0).await;
                    break;
                }
                self.reap(held).await?;
                match self.balance(slot, held).await {
                    Ok(()) => {}
                    Err(FleetError::Store { source, .. }) if source.is_transient() => {
                        tracing::warn!(error = %source, "rebalancing failed: retrying at the next heartbeat");
                    }
                    Err(error) => return Err(error),
                }
                tokio::select! {
                    () = &mut shutdown => return Ok(()),
                    () = tokio::time::sleep(self.heartbeat) => {}
                }
            }
        }
    }

    /// A free worker slot and its lease; waits for one while all are held; `None` on
    /// shutdown.
    async fn take_slot(
        &self,
        mut shutdown: std::pin::Pin<&mut (impl Future<Output = ()> + Send)>,
    ) -> Result<Option<(u32, St::Lease)>, FleetError> {
        loop {
            for slot in 0..self.count {
                match self.store.try_acquire(&slot_name(&self.name, slot)).await {
                    Ok(Some(lease)) => return Ok(Some((slot, lease))),
                    Ok(None) => {}
                    Err(error) if error.is_transient() => {
                        tracing::warn!(%error, "taking a worker slot failed: retrying");
                        break;
                    }
                    Err(source) => {
                        return Err(FleetError::Store {
                            name: self.name.to_string(),
                            source,
                        });
                    }
                }
            }
            self.status.send_modify(|s| s.worker = None);
            tokio::select! {
                () = &mut shutdown => return Ok(None),
                () = tokio::time::sleep(self.heartbeat) => {}
            }
        }
    }

    /// Forgets the runners that ended: a lost lease lets the partition go (another worker,
    /// or this one, claims it again); any other error stops the fleet.
    async fn reap(&self, held: &mut Held) -> Result<(), FleetError> {
        let ended: Vec<u32> = held
            .iter()
            .filter(|(_, running)| running.is_finished())
            .map(|(index, _)| *index)
            .collect();
        for index in ended {
            let Some(running) = held.remove(&index) else {
                continue;
            };
            match running.join().await {
                Ok(()) => {}
                Err(error @ (RunError::Superseded { .. } | RunError::AlreadyRunning { .. })) => {
                    tracing::warn!(partition = index, %error, "lost the partition");
                }
                Err(source) => {
                    return Err(FleetError::Partition {
                        name: self.name.to_string(),
                        partition: index,
                        source,
                    });
                }
            }
        }
        self.publish(None, held);
        Ok(())
    }

    /// Counts the live workers, stops the partitions beyond this worker's share, claims
    /// free ones up to it.
    async fn balance(&self, slot: u32, held: &mut Held) -> Result<(), FleetError> {
        self.balance_in(slot, held)
            .await
            .map_err(|source| FleetError::Store {
                name: self.name.to_string(),
                source,
            })?
    }

    /// [`Fleet::balance`]: the store's errors outside, the fleet's inside.
    async fn balance_in(
        &self,
        slot: u32,
        held: &mut Held,
    ) -> Result<Result<(), FleetError>, StoreError> {
        let mut live = 1;
        for other in (0..self.count).filter(|k| *k != slot) {
            if self.store.is_taken(&slot_name(&self.name, other)).await? {
                live += 1;
            }
        }
        let share = self.count.div_ceil(live) as usize;
        if held.len() > share {
            self.release(held, share).await;
        }
        // Start looking where this worker's share would begin, so that workers starting
        // together contend less.
        let start = slot.saturating_mul(share as u32) % self.count;
        for offset in 0..self.count {
            if held.len() >= share {
                break;
            }
            let index = (start + offset) % self.count;
            if held.contains_key(&index) {
                continue;
            }
            let partition = self.partition(index);
            let name = partition.name();
            if self.store.is_taken(&name).await? {
                continue;
            }
            let Some(lease) = self.store.try_acquire(&name).await? else {
                continue;
            };
            let runner = (self.factory)(partition.clone());
            let found = Handler::name(runner.handler());
            if found != name {
                tracing::error!(
                    partition = %name,
                    %found,
                    "the factory built a runner for another name: not running it"
                );
                return Ok(Err(FleetError::Unpartitioned {
                    expected: name,
                    found: found.to_owned(),
                }));
            }
            tracing::info!(partition = index, "claimed the partition");
            let running = runner
                .in_fleet()
                .with_leases(self.store.clone())
                .holding(lease)
                .spawn();
            held.insert(index, running);
        }
        self.publish(Some((slot, live)), held);
        Ok(Ok(()))
    }

    /// Stops the runners of the partitions beyond the first `keep` (highest indexes first),
    /// each after its current batch; their leases go with them.
    async fn release(&self, held: &mut Held, keep: usize) {
        while held.len() > keep {
            let Some((index, running)) = held.pop_last() else {
                break;
            };
            tracing::info!(partition = index, "releasing the partition");
            if let Err(error) = running.stop().await {
                tracing::warn!(partition = index, %error, "the partition's runner stopped with an error");
            }
        }
        self.publish(None, held);
    }

    fn publish(&self, worker: Option<(u32, u32)>, held: &Held) {
        self.status.send_if_modified(|s| {
            let before = s.clone();
            if let Some((slot, live)) = worker {
                s.worker = Some(slot);
                s.live_workers = live;
            }
            s.held = held.keys().copied().collect();
            *s != before
        });
    }
}

impl<St: LeaseStore + CheckpointStore> Fleet<St, ()> {
    /// The partition count recorded in `store` for the handler `name` (`None`: no worker
    /// started yet).
    pub async fn stored_partitions(store: &St, name: &str) -> Result<Option<u32>, StoreError> {
        Ok(store
            .checkpoint(&count_name(name))
            .await?
            .filter(|c| c.fingerprint == COUNT_MARK)
            .map(|c| c.version))
    }

    /// Changes the partition count of the handler `name` to `partitions`, and resets the
    /// checkpoints of the new partitions to the start of the log. Returns the previous
    /// count (`None`: there was none).
    ///
    /// Refused ([`FleetError::Running`]) while a worker or a partition's runner of the
    /// current count holds its lease. The procedure, for a projection:
    ///
    /// 1. stop every worker (deploy with zero workers, or stop their processes);
    /// 2. clear the model ([`SqlReadModel::clear`](crate::projection::SqlReadModel::clear));
    /// 3. `Fleet::repartition(&store, name, new_count)`;
    /// 4. start the workers with the new count: each partition replays the log from the
    ///    start into the cleared model (a rebuild, spread over the workers).
    ///
    /// Workers still running with the old count are refused by step 3; workers started
    /// with the old count after it refuse to start ([`FleetError::PartitionCount`]). A
    /// reaction must not be re-partitioned this way: its partitions would start from the
    /// start of the log and act again on events they acted on.
    pub async fn repartition(
        store: &St,
        name: &str,
        partitions: u32,
    ) -> Result<Option<u32>, FleetError> {
        let partitions = partitions.max(1);
        let failed = |source| FleetError::Store {
            name: name.to_owned(),
            source,
        };
        let previous = Self::stored_partitions(store, name).await.map_err(failed)?;
        if let Some(old) = previous {
            let leases = (0..old)
                .map(|k| slot_name(name, k))
                .chain((0..old).map(|i| partition_name(name, i, old)));
            for lease in leases {
                if store.is_taken(&lease).await.map_err(failed)? {
                    return Err(FleetError::Running {
                        name: name.to_owned(),
                        lease,
                    });
                }
            }
        }
        for index in 0..partitions {
            let partition = partition_name(name, index, partitions);
            let claim = store.claim(&partition).await.map_err(failed)?;
            let reset = CheckpointCommit::reset(claim.fence, Cursor::START, 0, 0);
            store.commit(&partition, reset).await.map_err(failed)?;
        }
        record_count(store, name, partitions, true)
            .await
            .map_err(failed)?;
        Ok(previous)
    }

    /// Read-your-writes across a fleet: waits until every partition's checkpoint has
    /// reached `position` (see [`CheckpointWatch`]), or `timeout` passes.
    pub async fn wait_for(
        store: &St,
        name: &str,
        partitions: u32,
        position: u64,
        timeout: Duration,
    ) -> Result<(), WaitError> {
        let deadline = Instant::now() + timeout;
        for index in 0..partitions.max(1) {
            let left = deadline.saturating_duration_since(Instant::now());
            CheckpointWatch::new(store, &partition_name(name, index, partitions))
                .wait_for(position, left)
                .await?;
        }
        Ok(())
    }
}

/// Records `count` as the partition count of `name` if none is recorded (or `overwrite`),
/// and returns the recorded count.
///
/// The record is a checkpoint row: a claim (a new fence) shows what is recorded, and the
/// commit writes the count only while no other claim came in between, so two workers
/// started together with different counts cannot both see their own.
async fn record_count<St: CheckpointStore>(
    store: &St,
    name: &str,
    count: u32,
    overwrite: bool,
) -> Result<u32, StoreError> {
    let row = count_name(name);
    let mut attempt: u64 = 0;
    loop {
        let claim = store.claim(&row).await?;
        if claim.fingerprint == COUNT_MARK && !overwrite {
            return Ok(claim.version);
        }
        let commit = CheckpointCommit::reset(claim.fence, Cursor::START, count, COUNT_MARK);
        match store.commit(&row, commit).await {
            Ok(_) => return Ok(count),
            Err(StoreError::Fenced { .. }) if attempt < 20 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(5 * attempt)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Refuses to run `name` with `count` partitions when the store records another count.
async fn check_count<St: CheckpointStore>(
    store: &St,
    name: &str,
    count: u32,
) -> Result<(), FleetError> {
    let stored = record_count(store, name, count, false)
        .await
        .map_err(|source| FleetError::Store {
            name: name.to_owned(),
            source,
        })?;
    if stored != count {
        return Err(FleetError::PartitionCount {
            name: name.to_owned(),
            stored,
            requested: count,
        });
    }
    Ok(())
}

/// A worker of a fleet on its own task.
pub struct RunningFleet {
    handle: FleetHandle,
    task: Stoppable<FleetError>,
}

impl RunningFleet {
    /// A view of the worker: its slot and the partitions it runs.
    pub fn handle(&self) -> &FleetHandle {
        &self.handle
    }

    /// Asks the worker to stop (each partition after its current batch) and waits for it.
    pub async fn stop(self) -> Result<(), FleetError> {
        self.task.stop(crashed).await
    }

    /// Waits for the worker to end on its own (an error, since it runs until stopped).
    pub async fn join(self) -> Result<(), FleetError> {
        self.task.join(crashed).await
    }
}

/// A worker task that panicked or was cancelled.
fn crashed(error: tokio::task::JoinError) -> FleetError {
    FleetError::Store {
        name: String::new(),
        source: StoreError::backend(format!("the fleet's task ended: {error}")),
    }
}
