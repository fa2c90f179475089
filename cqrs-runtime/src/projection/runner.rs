//! The projection runner: catch-up from the checkpoint in batches, then live; rebuild; lag;
//! read-your-writes; one active runner per projection.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tracing::Instrument;
use uuid::Uuid;

use super::error::{ProjectionError, WaitError};
use super::model::{ReadModelStore, Step};
use super::{EventMeta, Projection};
use crate::store::{Cursor, EventStore, InMemoryLeases, LeaseStore, StoreError, StoredEvent};

/// What the runner does with an event it cannot decode while following the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorPolicy {
    /// Halt with [`ProjectionError::Event`], naming the event; the checkpoint stays before it.
    /// The default.
    #[default]
    Stop,
    /// Record it ([`ProjectionHandle::skipped`], and a `tracing` warning) and go on.
    /// A rebuild never skips: during a rebuild an undecodable event always stops the runner.
    SkipAndRecord,
}

/// An event the runner skipped under [`ErrorPolicy::SkipAndRecord`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedEvent {
    /// Where it is in the log.
    pub cursor: Cursor,
    /// The event's id.
    pub event_id: Uuid,
    /// The event's wire name.
    pub event_type: String,
    /// The event's stream type.
    pub stream_type: String,
    /// The event's stream id.
    pub stream_id: String,
    /// Why it could not be projected.
    pub error: String,
}

/// How far a projection is behind the head of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lag {
    /// The global position of the last event the projection processed (0: none yet).
    pub position: u64,
    /// The head of the log when the runner last looked.
    pub head: u64,
    /// `head - position`.
    pub behind: u64,
}

/// What a runner is doing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RunState {
    /// Not started.
    #[default]
    Idle,
    /// Reading history in batches (catch-up or rebuild).
    CatchingUp,
    /// At the head, following new events.
    Live,
    /// Stopped on request.
    Stopped,
    /// Stopped by an error (its text).
    Failed(String),
}

#[derive(Debug, Clone, Default)]
struct Status {
    lag: Lag,
    state: RunState,
}

/// A cheap, cloneable view of a runner: lag, state, skipped events, read-your-writes.
#[derive(Clone)]
pub struct ProjectionHandle {
    projection: &'static str,
    status: watch::Receiver<Status>,
    skipped: Arc<Mutex<Vec<SkippedEvent>>>,
}

impl ProjectionHandle {
    /// The projection's name.
    pub fn projection(&self) -> &'static str {
        self.projection
    }

    /// The last processed position, the head, and the distance between them.
    pub fn lag(&self) -> Lag {
        self.status.borrow().lag
    }

    /// What the runner is doing.
    pub fn state(&self) -> RunState {
        self.status.borrow().state.clone()
    }

    /// The events skipped under [`ErrorPolicy::SkipAndRecord`], oldest first.
    pub fn skipped(&self) -> Vec<SkippedEvent> {
        self.skipped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Read-your-writes: waits until the projection has processed `position` (a command's
    /// [`Committed::position`](crate::repository::Committed::position)), or `timeout` passes.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> Result<(), WaitError> {
        let mut status = self.status.clone();
        let wanted = position;
        let outcome = tokio::time::timeout(timeout, async {
            loop {
                let (reached, state) = {
                    let now = status.borrow_and_update();
                    (now.lag.position, now.state.clone())
                };
                if reached >= wanted {
                    return Ok(());
                }
                match state {
                    RunState::Stopped => return Err(("stopped".to_owned(), reached)),
                    RunState::Failed(reason) => return Err((reason, reached)),
                    _ => {}
                }
                if status.changed().await.is_err() {
                    return Err(("the runner is gone".to_owned(), reached));
                }
            }
        })
        .await;
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err((reason, reached))) => Err(WaitError::Stopped {
                projection: self.projection,
                wanted,
                reached,
                reason,
            }),
            Err(_) => Err(WaitError::Timeout {
                projection: self.projection,
                wanted,
                reached: self.lag().position,
                timeout,
            }),
        }
    }
}

/// The in-memory lease table shared by every runner of this process that is given no other.
fn process_leases() -> InMemoryLeases {
    static LEASES: OnceLock<InMemoryLeases> = OnceLock::new();
    LEASES.get_or_init(InMemoryLeases::new).clone()
}

/// Feeds the projection `P` from an event store into a read-model store `M`.
///
/// - [`catch_up`](Self::catch_up): from the checkpoint to the head, in batches, then return;
/// - [`run`](Self::run) / [`spawn`](Self::spawn): catch up, then follow live: poll with
///   exponential back-off while idle, and wake at once on [`wake_on`](Self::wake_on) (for
///   example [`InMemoryEventStore::subscribe`](crate::store::InMemoryEventStore::subscribe));
/// - [`rebuild`](Self::rebuild): reset the checkpoint and the model (the reset hook), replay
///   the whole log in commit order.
///
/// Each of them holds the projection's lease ([`LeaseStore`], keyed by the projection's name)
/// while it works, so at most one runner per projection is active; another gets
/// [`ProjectionError::AlreadyRunning`]. Without [`with_leases`](Self::with_leases), runners use
/// one in-memory lease table per process.
///
/// A checkpoint written by another version of the projection (its `version`, or the set of
/// handled events, changed) is [`ProjectionError::RebuildRequired`], unless
/// [`rebuild_on_change`](Self::rebuild_on_change) is set, in which case the runner rebuilds.
pub struct ProjectionRunner<P, S, M, L = InMemoryLeases> {
    events: S,
    model: M,
    leases: L,
    batch_size: usize,
    policy: ErrorPolicy,
    poll_min: Duration,
    poll_max: Duration,
    rebuild_on_change: bool,
    wake: Option<watch::Receiver<u64>>,
    status: Arc<watch::Sender<Status>>,
    skipped: Arc<Mutex<Vec<SkippedEvent>>>,
    _projection: PhantomData<fn() -> P>,
}

impl<P, S, M> ProjectionRunner<P, S, M, InMemoryLeases>
where
    P: Projection,
    S: EventStore,
    M: ReadModelStore<P>,
{
    /// A runner reading `events` into `model`, with batches of 500, [`ErrorPolicy::Stop`], and
    /// polling between 10 ms and 1 s.
    pub fn new(events: S, model: M) -> Self {
        let (status, _) = watch::channel(Status::default());
        Self {
            events,
            model,
            leases: process_leases(),
            batch_size: 500,
            policy: ErrorPolicy::Stop,
            poll_min: Duration::from_millis(10),
            poll_max: Duration::from_secs(1),
            rebuild_on_change: false,
            wake: None,
            status: Arc::new(status),
            skipped: Arc::new(Mutex::new(Vec::new())),
            _projection: PhantomData,
        }
    }
}

impl<P, S, M, L> ProjectionRunner<P, S, M, L>
where
    P: Projection,
    S: EventStore,
    M: ReadModelStore<P>,
    L: LeaseStore,
{
    /// Takes the projection's lease from `leases` (shared across processes for durable stores).
    pub fn with_leases<L2: LeaseStore>(self, leases: L2) -> ProjectionRunner<P, S, M, L2> {
        ProjectionRunner {
            events: self.events,
            model: self.model,
            leases,
            batch_size: self.batch_size,
            policy: self.policy,
            poll_min: self.poll_min,
            poll_max: self.poll_max,
            rebuild_on_change: self.rebuild_on_change,
            wake: self.wake,
            status: self.status,
            skipped: self.skipped,
            _projection: PhantomData,
        }
    }

    /// Reads at most `size` events per batch (at least 1).
    pub fn batch_size(mut self, size: usize) -> Self {
        self.batch_size = size.max(1);
        self
    }

    /// What to do with an event that cannot be decoded while following the log.
    pub fn error_policy(mut self, policy: ErrorPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Idle polling: first after `min`, doubling up to `max`, back to `min` after progress.
    pub fn poll_interval(mut self, min: Duration, max: Duration) -> Self {
        self.poll_min = min;
        self.poll_max = max.max(min);
        self
    }

    /// Wakes the live loop at once when `head` changes (a local commit).
    pub fn wake_on(mut self, head: watch::Receiver<u64>) -> Self {
        self.wake = Some(head);
        self
    }

    /// Rebuild instead of failing when the checkpoint was written by another version.
    pub fn rebuild_on_change(mut self) -> Self {
        self.rebuild_on_change = true;
        self
    }

    /// A view of this runner's progress, usable while it runs.
    pub fn handle(&self) -> ProjectionHandle {
        ProjectionHandle {
            projection: P::NAME,
            status: self.status.subscribe(),
            skipped: Arc::clone(&self.skipped),
        }
    }

    /// The read-model store.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// Processes every event after the checkpoint up to the head, then returns the number of
    /// events processed.
    pub async fn catch_up(&self) -> Result<u64, ProjectionError> {
        let span = tracing::info_span!("cqrs.projection.catch_up", projection = P::NAME);
        async {
            let _lease = self.lease().await?;
            let result = self.resume().await;
            self.finish(&result, RunState::Idle);
            result
        }
        .instrument(span)
        .await
    }

    /// Rebuilds from zero: resets the checkpoint, clears the model through its reset hook, and
    /// replays the whole log in commit order. An undecodable event stops a rebuild, whatever
    /// the error policy. Returns the number of events processed.
    pub async fn rebuild(&self) -> Result<u64, ProjectionError> {
        let span = tracing::info_span!("cqrs.projection.rebuild", projection = P::NAME);
        async {
            let _lease = self.lease().await?;
            let result = self.rebuild_locked().await;
            self.finish(&result, RunState::Idle);
            result
        }
        .instrument(span)
        .await
    }

    /// Catches up, then follows the log live until `shutdown` completes (or an error).
    pub async fn run(
        &self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ProjectionError> {
        let span = tracing::info_span!("cqrs.projection.run", projection = P::NAME);
        async {
            let _lease = self.lease().await?;
            let result = self.live(shutdown).await;
            self.finish(&result, RunState::Stopped);
            result
        }
        .instrument(span)
        .await
    }

    /// Runs the projection on a new Tokio task until [`RunningProjection::stop`].
    ///
    /// Dropping the returned [`RunningProjection`] stops the runner too.
    pub fn spawn(self) -> RunningProjection {
        let handle = self.handle();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            self.run(async {
                let _ = stopped.await;
            })
            .await
        });
        RunningProjection {
            handle,
            stop: Some(stop),
            task,
        }
    }

    async fn lease(&self) -> Result<L::Lease, ProjectionError> {
        match self.leases.try_acquire(P::NAME).await {
            Ok(Some(lease)) => Ok(lease),
            Ok(None) => Err(ProjectionError::AlreadyRunning {
                projection: P::NAME,
            }),
            Err(source) => Err(store_error::<P>(source)),
        }
    }

    fn finish<T>(&self, result: &Result<T, ProjectionError>, done: RunState) {
        let state = match result {
            Ok(_) => done,
            Err(error) => RunState::Failed(error.to_string()),
        };
        self.status.send_modify(|s| s.state = state);
    }

    async fn rebuild_locked(&self) -> Result<u64, ProjectionError> {
        tracing::info!("rebuilding from the start of the log");
        self.model.reset().await.map_err(store_error::<P>)?;
        self.status.send_modify(|s| s.lag.position = 0);
        self.pump(Cursor::START, ErrorPolicy::Stop)
            .await
            .map(|(n, _)| n)
    }

    /// Checks the checkpoint's identity, then catches up from it (or rebuilds).
    async fn resume(&self) -> Result<u64, ProjectionError> {
        let checkpoint = self
            .model
            .load_checkpoint()
            .await
            .map_err(store_error::<P>)?;
        match checkpoint {
            Some(c) if !c.matches::<P>() => {
                if self.rebuild_on_change {
                    tracing::warn!(
                        stored_version = c.version,
                        version = P::VERSION,
                        "checkpoint written by another version: rebuilding"
                    );
                    return self.rebuild_locked().await;
                }
                Err(ProjectionError::RebuildRequired {
                    projection: P::NAME,
                    stored_version: c.version,
                    stored_fingerprint: c.fingerprint,
                    version: P::VERSION,
                    fingerprint: P::FINGERPRINT,
                })
            }
            Some(c) => {
                self.status
                    .send_modify(|s| s.lag.position = c.cursor.position);
                self.pump(c.cursor, self.policy).await.map(|(n, _)| n)
            }
            None => self.pump(Cursor::START, self.policy).await.map(|(n, _)| n),
        }
    }

    async fn live(&self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ProjectionError> {
        self.resume().await?;
        let mut cursor = self
            .model
            .load_checkpoint()
            .await
            .map_err(store_error::<P>)?
            .map_or(Cursor::START, |c| c.cursor);
        let mut wake = self.wake.clone();
        let mut idle = self.poll_min;
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            self.status.send_modify(|s| s.state = RunState::Live);
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = changed(&mut wake) => {}
                () = tokio::time::sleep(idle) => idle = (idle * 2).min(self.poll_max),
            }
            let (processed, reached) = self.pump(cursor, self.policy).await?;
            cursor = reached;
            if processed > 0 {
                idle = self.poll_min;
            }
        }
    }

    /// Reads and applies batches from `cursor` until a short batch; returns the number of
    /// events processed and the cursor reached.
    async fn pump(
        &self,
        mut cursor: Cursor,
        policy: ErrorPolicy,
    ) -> Result<(u64, Cursor), ProjectionError> {
        let mut processed = 0;
        loop {
            let batch = self
                .events
                .read_after(cursor, self.batch_size)
                .await
                .map_err(store_error::<P>)?;
            let head = self
                .events
                .head_position()
                .await
                .map_err(store_error::<P>)?;
            if batch.is_empty() {
                self.publish(cursor.position, head, RunState::Live);
                return Ok((processed, cursor));
            }
            self.status.send_modify(|s| {
                s.state = RunState::CatchingUp;
                s.lag = lag(s.lag.position, head);
            });
            let span = tracing::debug_span!(
                "cqrs.projection.batch",
                events = batch.len(),
                after = cursor.position
            );
            let mut failure = None;
            let skipped = &self.skipped;
            let reached = self
                .model
                .apply_batch(&batch, |model, tx, at, stored| {
                    project_one(model, tx, at, stored, policy, &mut failure, skipped)
                })
                .instrument(span)
                .await
                .map_err(store_error::<P>)?;
            if let Some(reached) = reached {
                processed += batch.iter().take_while(|(c, _)| *c <= reached).count() as u64;
                cursor = reached;
            }
            self.publish(cursor.position, head, RunState::CatchingUp);
            if let Some(error) = failure {
                return Err(error);
            }
            if batch.len() < self.batch_size {
                return Ok((processed, cursor));
            }
        }
    }

    fn publish(&self, position: u64, head: u64, state: RunState) {
        self.status.send_modify(|s| {
            s.lag = lag(position, head.max(position));
            s.state = state;
        });
    }
}

fn lag(position: u64, head: u64) -> Lag {
    Lag {
        position,
        head,
        behind: head.saturating_sub(position),
    }
}

/// One event through the projection and the error policy.
#[inline]
fn project_one<P: Projection>(
    model: &mut P,
    tx: &mut P::Transaction,
    cursor: Cursor,
    stored: &StoredEvent,
    policy: ErrorPolicy,
    failure: &mut Option<ProjectionError>,
    skipped: &Mutex<Vec<SkippedEvent>>,
) -> Step {
    let meta = EventMeta::new(stored, cursor);
    match model.project(stored, &meta, tx) {
        Ok(_) => Step::Advance,
        Err(source) => refused::<P>(cursor, stored, source, policy, failure, skipped),
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
    failure: &mut Option<ProjectionError>,
    skipped: &Mutex<Vec<SkippedEvent>>,
) -> Step {
    match policy {
        ErrorPolicy::Stop => {
            *failure = Some(ProjectionError::Event {
                projection: P::NAME,
                position: stored.global_position,
                event_type: stored.event_type.clone(),
                event_version: stored.event_version,
                stream_type: stored.stream_type.clone(),
                stream_id: stored.stream_id.clone(),
                stream_version: stored.stream_version,
                event_id: stored.event_id,
                source,
            });
            Step::Halt
        }
        ErrorPolicy::SkipAndRecord => {
            tracing::warn!(
                position = stored.global_position,
                event_type = %stored.event_type,
                error = %source,
                "skipping an event that cannot be projected"
            );
            skipped
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(SkippedEvent {
                    cursor,
                    event_id: stored.event_id,
                    event_type: stored.event_type.clone(),
                    stream_type: stored.stream_type.clone(),
                    stream_id: stored.stream_id.clone(),
                    error: source.to_string(),
                });
            Step::Advance
        }
    }
}

/// Completes when the head changes; never, when there is no wake-up source (or it is gone).
async fn changed(wake: &mut Option<watch::Receiver<u64>>) {
    if let Some(rx) = wake {
        if rx.changed().await.is_ok() {
            return;
        }
        *wake = None;
    }
    std::future::pending::<()>().await;
}

fn store_error<P: Projection>(source: StoreError) -> ProjectionError {
    ProjectionError::Store {
        projection: P::NAME,
        source,
    }
}

/// A projection running on its own task.
pub struct RunningProjection {
    handle: ProjectionHandle,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ProjectionError>>,
}

impl RunningProjection {
    /// A view of the runner's progress (lag, read-your-writes, skipped events).
    pub fn handle(&self) -> &ProjectionHandle {
        &self.handle
    }

    /// Read-your-writes; see [`ProjectionHandle::wait_for`].
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> Result<(), WaitError> {
        self.handle.wait_for(position, timeout).await
    }

    /// Asks the runner to stop after its current batch and waits for it; returns how it ended.
    pub async fn stop(mut self) -> Result<(), ProjectionError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.join().await
    }

    /// Waits for the runner to end on its own (an error, since it runs until stopped).
    pub async fn join(mut self) -> Result<(), ProjectionError> {
        let projection = self.handle.projection;
        // Keep the stop signal alive while waiting: dropping it is a stop request.
        let _stop = self.stop.take();
        match (&mut self.task).await {
            Ok(result) => result,
            Err(error) => Err(ProjectionError::Crashed {
                projection,
                reason: error.to_string(),
            }),
        }
    }
}
