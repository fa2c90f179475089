//! The runner: catch-up from the checkpoint in batches, then live; rebuild; standby; retries
//! of transient failures; lag and read-your-writes.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::watch;
use tracing::Instrument;

use super::error::{RunError, WaitError};
use super::handler::{Handled, Handler, Tick};
use super::source::Source;
use super::task::Stoppable;
use crate::store::{
    Checkpoint, CheckpointCommit, CorruptEvent, Cursor, DeadLetter, EventFilter, InMemoryLeases,
    Lease, LeaseStore, ReadBatch, StoreError, now,
};
use crate::telemetry::{RunnerFailure, RunnerMetrics};

/// What the runner does with an event its handler cannot take while following the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorPolicy {
    /// Halt with [`RunError::Event`] (or the store's [`StoreError::Corrupt`]), naming the
    /// event; the checkpoint stays before it. The default.
    #[default]
    Stop,
    /// Record it as a [`DeadLetter`], committed with the checkpoint that moves past it (so it
    /// survives restarts), and go on. A rebuild never skips: during a rebuild an event the
    /// handler cannot take always stops the runner.
    SkipAndRecord,
}

/// Capped exponential back-off with jitter, for transient failures
/// ([`StoreError::Unavailable`]: a lost connection, a busy database, a serialization failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first pause.
    pub initial: Duration,
    /// The longest pause.
    pub max: Duration,
    /// How many retries in a row before the failure is reported (`None`: keep retrying).
    pub attempts: Option<u32>,
}

impl Default for Backoff {
    /// 50 ms doubling up to 5 s, retrying for as long as the failure lasts.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(5),
            attempts: None,
        }
    }
}

impl Backoff {
    /// No retries: the first transient failure is reported.
    pub fn none() -> Self {
        Self {
            attempts: Some(0),
            ..Self::default()
        }
    }

    /// Whether retry number `attempt` (0-based) is allowed.
    pub fn allows(&self, attempt: u32) -> bool {
        self.attempts.is_none_or(|max| attempt < max)
    }

    /// The pause before retry number `attempt`: `initial × 2^attempt`, at most `max`, of which
    /// a random half is taken off (so that runners that failed together do not retry
    /// together).
    pub fn delay(&self, attempt: u32) -> Duration {
        let full = self
            .initial
            .saturating_mul(1 << attempt.min(20))
            .min(self.max);
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let keep = 0.5 + (random % 1000) as f64 / 2000.0;
        full.mul_f64(keep)
    }
}

/// How far a runner is behind the head of its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lag {
    /// The global position of the last event the runner committed past (0: none yet).
    pub position: u64,
    /// The head of the source when the runner last looked.
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
    /// Waiting for the lease that another runner holds (see [`Runner::standby`]).
    StandingBy,
    /// Reading history in batches (catch-up or rebuild).
    CatchingUp,
    /// At the head, following new events.
    Live,
    /// Waiting out a transient failure before retrying (its text).
    Retrying(String),
    /// Stopped on request.
    Stopped,
    /// Stopped by an error (its text).
    Failed(String),
}

#[derive(Debug, Clone, Default)]
struct Status {
    lag: Lag,
    state: RunState,
    dead_letters: u64,
    orphans: u64,
}

/// A cheap, cloneable view of a runner: lag, state, read-your-writes.
#[derive(Clone)]
pub struct RunnerHandle {
    name: Arc<str>,
    status: watch::Receiver<Status>,
}

impl RunnerHandle {
    /// The runner's name (its handler's).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The last committed position, the head, and the distance between them.
    pub fn lag(&self) -> Lag {
        self.status.borrow().lag
    }

    /// What the runner is doing.
    pub fn state(&self) -> RunState {
        self.status.borrow().state.clone()
    }

    /// How many events this runner set aside as dead letters since it started.
    pub fn dead_letters(&self) -> u64 {
        self.status.borrow().dead_letters
    }

    /// How many events this runner passed over because they concerned an instance that does
    /// not exist (a process manager's event that continues an instance nobody started).
    pub fn orphans(&self) -> u64 {
        self.status.borrow().orphans
    }

    /// Read-your-writes: waits until the runner has committed past `position` (a command's
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
                name: self.name.to_string(),
                wanted,
                reached,
                reason,
            }),
            Err(_) => Err(WaitError::Timeout {
                name: self.name.to_string(),
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

/// How many times in a row a runner holding its lease claims again after being fenced.
const MAX_RECLAIMS: u32 = 5;

/// How long a fenced runner waits for its lease's store to confirm the lease
/// ([`Lease::check`]) before it takes the lease for lost.
pub const LEASE_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Why [`Runner::follow`] returned without an error.
enum Exit {
    Shutdown,
    LostLease,
}

/// Drives the handler `H` from the source `S`, holding leases from `L`.
///
/// - [`catch_up`](Self::catch_up): from the checkpoint to the head, in batches, then return;
/// - [`run`](Self::run) / [`spawn`](Self::spawn): catch up, then follow live: poll with
///   exponential back-off while idle, and wake at once on [`wake_on`](Self::wake_on) (for
///   example [`InMemoryEventStore::subscribe`](crate::memory::InMemoryEventStore::subscribe));
/// - [`rebuild`](Self::rebuild): reset the handler's effects and checkpoint in one commit, then
///   replay the whole source.
///
/// Each of them holds the handler's lease while it works; another runner gets
/// [`RunError::AlreadyRunning`], or waits for the lease with [`standby`](Self::standby).
/// Without [`with_leases`](Self::with_leases), runners use one in-memory lease table per
/// process. Each of them also claims the checkpoint (a new fence), so a runner that was taken
/// over cannot commit any more, leases or not.
///
/// A runner whose commit is fenced stops with [`RunError::Superseded`] (standing by, it drops
/// its lease and waits for it again). It claims the checkpoint again only when it proves that
/// it still holds a lease that spans processes ([`LeaseStore::spans_processes`],
/// [`Lease::check`] within [`LEASE_CHECK_TIMEOUT`]): a runner that lost its lease without
/// noticing writes nothing more, and in-memory leases (the default) never justify a new
/// claim.
///
/// A transient failure ([`StoreError::Unavailable`]) is retried per the [`Backoff`]
/// ([`retry`](Self::retry)); other failures stop the runner.
pub struct Runner<H, S, L = InMemoryLeases> {
    handler: H,
    source: S,
    leases: L,
    batch_size: usize,
    filter: Option<EventFilter>,
    policy: ErrorPolicy,
    poll_min: Duration,
    poll_max: Duration,
    rebuild_on_change: bool,
    standby: bool,
    retry: Backoff,
    wake: Option<watch::Receiver<u64>>,
    name: Arc<str>,
    status: Arc<watch::Sender<Status>>,
    metrics: Arc<RunnerMetrics>,
    /// A lease taken for the runner before it starts (a fleet's claim), used by its first
    /// acquisition.
    /// (A `L::Lease`, boxed: the struct does not bound `L`.)
    preset: std::sync::Mutex<Option<Box<dyn std::any::Any + Send>>>,
}

impl<H: Handler, S: Source> Runner<H, S, InMemoryLeases> {
    /// A runner reading `source` into `handler`, with batches of 500, [`ErrorPolicy::Stop`],
    /// polling between 10 ms and 1 s, and the default [`Backoff`].
    pub fn new(source: S, handler: H) -> Self {
        let (status, _) = watch::channel(Status::default());
        let name: Arc<str> = Arc::from(handler.name());
        let filter = handler.filter();
        Self {
            handler,
            source,
            leases: process_leases(),
            batch_size: 500,
            filter,
            policy: ErrorPolicy::Stop,
            poll_min: Duration::from_millis(10),
            poll_max: Duration::from_secs(1),
            rebuild_on_change: false,
            standby: false,
            retry: Backoff::default(),
            wake: None,
            metrics: Arc::new({
                let (runner, partition) = super::partition::metric_labels(&name);
                RunnerMetrics::new(runner, &partition)
            }),
            name,
            status: Arc::new(status),
            preset: std::sync::Mutex::new(None),
        }
    }
}

impl<H: Handler, S: Source, L: LeaseStore> Runner<H, S, L> {
    /// Takes the handler's lease from `leases` (shared across processes for durable stores).
    pub fn with_leases<L2: LeaseStore>(self, leases: L2) -> Runner<H, S, L2> {
        Runner {
            handler: self.handler,
            source: self.source,
            leases,
            batch_size: self.batch_size,
            filter: self.filter,
            policy: self.policy,
            poll_min: self.poll_min,
            poll_max: self.poll_max,
            rebuild_on_change: self.rebuild_on_change,
            standby: self.standby,
            retry: self.retry,
            wake: self.wake,
            name: self.name,
            status: self.status,
            metrics: self.metrics,
            preset: std::sync::Mutex::new(None),
        }
    }

    /// Starts holding `lease` (taken on the runner's name from its own lease store): the
    /// first acquisition uses it instead of asking the store.
    pub(crate) fn holding(self, lease: L::Lease) -> Self {
        if let Ok(mut preset) = self.preset.lock() {
            *preset = Some(Box::new(lease));
        }
        self
    }

    /// Makes the runner one partition's in a fleet: no standing by (the fleet decides who
    /// runs a partition whose lease was lost). Its metrics carry the partition's labels
    /// already (a partition's name gives `partition = {index}/{count}`).
    pub(crate) fn in_fleet(mut self) -> Self {
        self.standby = false;
        self
    }

    /// Reads at most `size` events per batch (at least 1).
    pub fn batch_size(mut self, size: usize) -> Self {
        self.batch_size = size.max(1);
        self
    }

    /// What to do with an event the handler cannot take while following the source.
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

    /// Wakes the live loop at once when `head` changes (a local commit, or a notification).
    pub fn wake_on(mut self, head: watch::Receiver<u64>) -> Self {
        self.wake = Some(head);
        self
    }

    /// Rebuild instead of failing when the checkpoint was written by other code.
    pub fn rebuild_on_change(mut self) -> Self {
        self.rebuild_on_change = true;
        self
    }

    /// Wait for the lease instead of failing with [`RunError::AlreadyRunning`], and go back to
    /// waiting when the lease is lost or another runner takes over; take over when the
    /// holder dies (its lease is released with its process or connection).
    pub fn standby(mut self) -> Self {
        self.standby = true;
        self
    }

    /// How transient failures are retried.
    pub fn retry(mut self, backoff: Backoff) -> Self {
        self.retry = backoff;
        self
    }

    /// A view of this runner's progress, usable while it runs.
    pub fn handle(&self) -> RunnerHandle {
        RunnerHandle {
            name: Arc::clone(&self.name),
            status: self.status.subscribe(),
        }
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The source.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// The filter the runner reads through ([`Handler::filter`]; `None`: every event).
    pub fn filter(&self) -> Option<&EventFilter> {
        self.filter.as_ref()
    }

    /// Reads every event, ignoring the handler's filter (the handler still skips what is
    /// not its own): for comparison, or for a source whose filtered reads cost more than
    /// they save.
    pub fn unfiltered(mut self) -> Self {
        self.filter = None;
        self
    }

    /// Processes every event after the checkpoint up to the head, then returns the number of
    /// events committed past (the events the handler's [filter](Handler::filter) leaves out
    /// are skipped unread and not counted; the checkpoint still moves past them).
    pub async fn catch_up(&self) -> Result<u64, RunError> {
        let span = tracing::info_span!("cqrs.runner.catch_up", name = %self.name);
        async {
            let result = async {
                let lease = self.acquire(std::future::pending()).await?;
                let lease = lease.ok_or_else(|| self.already_running())?;
                let mut claim = self.claim_checked().await?;
                let from = claim.cursor;
                self.publish_position(from.position);
                let (processed, _) = self
                    .pump_held(&lease, &mut claim, from, self.policy)
                    .await?;
                let tick = self.tick(claim.fence).await?;
                Ok(processed + tick.done)
            }
            .await;
            self.finish(&result, RunState::Idle);
            result
        }
        .instrument(span)
        .await
    }

    /// Rebuilds from zero: clears the handler's effects and resets the checkpoint (one commit),
    /// then replays the whole source. An event the handler cannot take stops a rebuild,
    /// whatever the error policy. Returns the number of events committed past.
    pub async fn rebuild(&self) -> Result<u64, RunError> {
        let span = tracing::info_span!("cqrs.runner.rebuild", name = %self.name);
        async {
            let result = async {
                let lease = self.acquire(std::future::pending()).await?;
                let lease = lease.ok_or_else(|| self.already_running())?;
                let mut claim = self.retrying(|| self.handler.claim()).await?;
                let head = self.retrying(|| self.source.head()).await?;
                let reset = self
                    .retrying(|| self.handler.reset(claim.fence, head))
                    .await?;
                tracing::info!("rebuilding");
                self.publish_position(reset.cursor.position);
                self.pump_held(&lease, &mut claim, reset.cursor, ErrorPolicy::Stop)
                    .await
                    .map(|(n, _)| n)
            }
            .await;
            self.finish(&result, RunState::Idle);
            result
        }
        .instrument(span)
        .await
    }

    /// Catches up, then follows the source live until `shutdown` completes (or an error).
    /// With [`standby`](Self::standby), waits for the lease first, and goes back to waiting
    /// when it is lost or taken over.
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send) -> Result<(), RunError> {
        let span = tracing::info_span!("cqrs.runner.run", name = %self.name);
        async {
            let result = self.run_until(shutdown).await;
            self.finish(&result, RunState::Stopped);
            result
        }
        .instrument(span)
        .await
    }

    /// Runs on a new Tokio task until [`Running::stop`]; dropping the returned [`Running`]
    /// stops the runner too.
    pub fn spawn(self) -> Running
    where
        H: 'static,
        S: 'static,
        L: 'static,
    {
        let handle = self.handle();
        let task = Stoppable::spawn(|shutdown| async move { self.run(shutdown).await });
        Running { handle, task }
    }

    /// The handler's dead letters, oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, RunError> {
        self.handler
            .dead_letters()
            .await
            .map_err(|e| RunError::store(&self.name, e))
    }

    /// Takes the dead-lettered event at `position` again (after a fix): its effects commit and
    /// its dead letter goes, the checkpoint stays where it is. `Ok(false)` when there is no
    /// such dead letter; the handler's error when it fails again (the dead letter stays).
    ///
    /// Runs beside a live runner without taking it over: it commits under the checkpoint's
    /// current fence.
    pub async fn retry_dead_letter(&self, position: u64) -> Result<bool, RunError> {
        let store = |e| RunError::store(&self.name, e);
        let letters = self.handler.dead_letters().await.map_err(store)?;
        let Some(letter) = letters.into_iter().find(|l| l.cursor.position == position) else {
            return Ok(false);
        };
        let events = self
            .source
            .read(letter.cursor.before(), 1, None)
            .await
            .map_err(store)?;
        let Some(event) = events.events.into_iter().find(|(c, _)| *c == letter.cursor) else {
            return Err(store(StoreError::backend(format!(
                "the dead-lettered event at position {position} is no longer in the source"
            ))));
        };
        let fence = self.current_fence().await?;
        let handled = self.handler.retry(fence, &event).await.map_err(store)?;
        match handled.stopped {
            Some(error) => Err(error),
            None => Ok(true),
        }
    }

    /// Forgets the dead letter at `position` without taking its event. `Ok(false)` when there
    /// is no such dead letter.
    pub async fn discard_dead_letter(&self, position: u64) -> Result<bool, RunError> {
        let store = |e| RunError::store(&self.name, e);
        let letters = self.handler.dead_letters().await.map_err(store)?;
        if !letters.iter().any(|l| l.cursor.position == position) {
            return Ok(false);
        }
        let fence = self.current_fence().await?;
        self.handler
            .commit(CheckpointCommit::keep(fence, vec![position]))
            .await
            .map_err(store)?;
        Ok(true)
    }

    async fn current_fence(&self) -> Result<u64, RunError> {
        let checkpoint = self
            .handler
            .checkpoint()
            .await
            .map_err(|e| RunError::store(&self.name, e))?;
        Ok(checkpoint.map_or(0, |c| c.fence))
    }

    /// The end of a runner that knows it lost its lease.
    fn lost_lease(&self) -> RunError {
        RunError::Superseded {
            name: self.name.to_string(),
            source: StoreError::backend("the runner lost its lease"),
        }
    }

    fn already_running(&self) -> RunError {
        RunError::AlreadyRunning {
            name: self.name.to_string(),
        }
    }

    /// The lease: `Some` when taken; `None` when another runner holds it and this one does
    /// not stand by. Standing by, waits (polling with back-off) until the lease is free or
    /// `shutdown` completes (then `None`).
    async fn acquire(
        &self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Option<L::Lease>, RunError> {
        let mut shutdown = std::pin::pin!(shutdown);
        let preset = self.preset.lock().ok().and_then(|mut preset| preset.take());
        if let Some(lease) = preset.and_then(|lease| lease.downcast::<L::Lease>().ok())
            && lease.name() == &*self.name
        {
            return Ok(Some(*lease));
        }
        let mut pause = self.poll_min.max(Duration::from_millis(10));
        loop {
            let taken = self
                .retrying(|| self.leases.try_acquire(&self.name))
                .await?;
            if taken.is_some() || !self.standby {
                return Ok(taken);
            }
            self.set_state(RunState::StandingBy);
            tokio::select! {
                () = &mut shutdown => return Ok(None),
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(self.poll_max.max(Duration::from_millis(10)));
        }
    }

    /// Claims the checkpoint and checks that the running code wrote it (or rebuilds, with
    /// `rebuild_on_change`).
    async fn claim_checked(&self) -> Result<Checkpoint, RunError> {
        let claim = self.retrying(|| self.handler.claim()).await?;
        let (version, fingerprint) = self.handler.identity();
        if claim.written_by(version, fingerprint) {
            return Ok(claim);
        }
        if self.rebuild_on_change {
            tracing::warn!(
                stored_version = claim.version,
                version,
                "checkpoint written by other code: rebuilding"
            );
            self.rebuild_claimed(claim.fence).await?;
            return self
                .retrying(|| self.handler.checkpoint())
                .await?
                .ok_or_else(|| {
                    RunError::store(&self.name, StoreError::backend("the checkpoint vanished"))
                });
        }
        Err(RunError::RebuildRequired {
            name: self.name.to_string(),
            stored_version: claim.version,
            stored_fingerprint: claim.fingerprint,
            version,
            fingerprint,
        })
    }

    async fn rebuild_claimed(&self, fence: u64) -> Result<u64, RunError> {
        tracing::info!("rebuilding");
        let head = self.retrying(|| self.source.head()).await?;
        let reset = self.retrying(|| self.handler.reset(fence, head)).await?;
        self.publish_position(reset.cursor.position);
        self.pump(None, fence, reset.cursor, ErrorPolicy::Stop)
            .await
            .map(|(n, _)| n)
    }

    /// [`Runner::pump`] while holding `lease`. A commit refused by a newer fence ends it with
    /// [`RunError::Superseded`], unless the runner proves that it still holds its lease:
    /// its leases span processes ([`LeaseStore::spans_processes`]) and [`Lease::check`]
    /// says so within [`LEASE_CHECK_TIMEOUT`]. Then the fence came from a runner configured
    /// without these leases, or from a claim a dead holder left running on the server, and
    /// the runner claims again and goes on from the committed checkpoint, a few times in a
    /// row at most. A runner that lost its lease without noticing (a partitioned or ended
    /// session, a removed lock file) cannot prove it, and never claims again. Every commit
    /// is atomic and starts from the checkpoint its claim read, so the effects stay exact
    /// whoever wins.
    async fn pump_held(
        &self,
        lease: &L::Lease,
        claim: &mut Checkpoint,
        mut cursor: Cursor,
        policy: ErrorPolicy,
    ) -> Result<(u64, Cursor), RunError> {
        let mut reclaims = 0;
        loop {
            match self.pump(Some(lease), claim.fence, cursor, policy).await {
                Ok(done) => return Ok(done),
                Err(RunError::Superseded { name, source }) => {
                    if reclaims >= MAX_RECLAIMS || !self.proves(lease).await {
                        return Err(RunError::Superseded { name, source });
                    }
                    reclaims += 1;
                    tracing::warn!(error = %source, "fenced while holding the lease: claiming again");
                    tokio::time::sleep(self.retry.delay(reclaims)).await;
                    *claim = self.claim_checked().await?;
                    cursor = claim.cursor;
                    self.publish_position(cursor.position);
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Whether the runner can prove that it still holds `lease` against runners of other
    /// processes: leases that span processes, and a [`Lease::check`] that says so in time.
    async fn proves(&self, lease: &L::Lease) -> bool {
        if !self.leases.spans_processes() {
            tracing::warn!("fenced: the leases do not span processes, stopping");
            return false;
        }
        match tokio::time::timeout(LEASE_CHECK_TIMEOUT, lease.check()).await {
            Ok(Ok(true)) => true,
            Ok(Ok(false)) => {
                tracing::warn!("fenced after losing the lease: stopping");
                false
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "fenced, and the lease cannot be checked: stopping");
                false
            }
            Err(_) => {
                tracing::warn!(
                    timeout = ?LEASE_CHECK_TIMEOUT,
                    "fenced, and the lease's store does not answer: stopping"
                );
                false
            }
        }
    }

    async fn run_until(&self, shutdown: impl Future<Output = ()> + Send) -> Result<(), RunError> {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let Some(lease) = self.acquire(shutdown.as_mut()).await? else {
                if self.standby {
                    return Ok(()); // shut down while standing by
                }
                return Err(self.already_running());
            };
            match self.follow(&lease, shutdown.as_mut()).await {
                Ok(Exit::Shutdown) => return Ok(()),
                Ok(Exit::LostLease) if self.standby => {
                    tracing::warn!("lost the lease: standing by");
                }
                Err(RunError::Superseded { source, .. }) if self.standby => {
                    tracing::warn!(error = %source, "taken over: standing by");
                }
                Ok(Exit::LostLease) => return Err(self.lost_lease()),
                Err(error) => return Err(error),
            }
            drop(lease);
            self.set_state(RunState::StandingBy);
        }
    }

    /// Claims, catches up, then follows the source until `shutdown`, a lost lease, or an
    /// error.
    async fn follow(
        &self,
        lease: &L::Lease,
        mut shutdown: Pin<&mut (impl Future<Output = ()> + Send)>,
    ) -> Result<Exit, RunError> {
        let mut claim = self.claim_checked().await?;
        self.publish_position(claim.cursor.position);
        let mut cursor = claim.cursor;
        let mut wake = self.wake.clone();
        let mut idle = self.poll_min;
        loop {
            if !lease.is_held() {
                return Ok(Exit::LostLease);
            }
            let (processed, reached) = self
                .pump_held(lease, &mut claim, cursor, self.policy)
                .await?;
            cursor = reached;
            let tick = self.tick(claim.fence).await?;
            if processed + tick.done > 0 {
                idle = self.poll_min;
            }
            self.set_state(RunState::Live);
            // Sleep until the next poll, or until the handler's next work is due.
            let until_due = tick.next.map(|at| {
                (at - chrono::Utc::now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .max(self.poll_min)
            });
            let pause = until_due.map_or(idle, |due| due.min(idle));
            tokio::select! {
                () = &mut shutdown => return Ok(Exit::Shutdown),
                () = changed(&mut wake) => {}
                () = tokio::time::sleep(pause) => {
                    if pause == idle {
                        idle = (idle * 2).min(self.poll_max);
                    }
                }
            }
        }
    }

    /// Reads and hands over batches from `cursor` until a read comes back empty; returns the
    /// number of events committed past and the cursor reached. Stops with
    /// [`RunError::Superseded`] before a batch once `lease` is known to be lost.
    async fn pump(
        &self,
        lease: Option<&L::Lease>,
        fence: u64,
        mut cursor: Cursor,
        policy: ErrorPolicy,
    ) -> Result<(u64, Cursor), RunError> {
        let mut processed = 0;
        loop {
            if lease.is_some_and(|lease| !lease.is_held()) {
                return Err(self.lost_lease());
            }
            let read = self
                .retrying_read(|| {
                    self.source
                        .read(cursor, self.batch_size, self.filter.as_ref())
                })
                .await;
            let ReadBatch {
                events: batch,
                through,
            } = match read {
                Ok(read) => read,
                Err(StoreError::Corrupt(corrupt)) => {
                    cursor = self.unreadable(fence, cursor, *corrupt, policy).await?;
                    processed += 1;
                    continue;
                }
                Err(error) => return Err(RunError::store(&self.name, error)),
            };
            let head = self.retrying(|| self.source.head()).await?.position;
            if batch.is_empty() {
                if through > cursor {
                    // Nothing matched the filter up to `through`: move the checkpoint there,
                    // so that the range is not examined again, and read on (the read may
                    // have stopped at its limit: a partition's source keeps few of the
                    // events it reads).
                    cursor = self.skip_to(fence, through).await?;
                    self.publish(cursor.position, head, None);
                    continue;
                }
                self.publish(cursor.position, head, None);
                return Ok((processed, cursor));
            }
            self.status.send_modify(|s| {
                s.state = RunState::CatchingUp;
                s.lag = lag(s.lag.position, head);
            });
            let span = tracing::debug_span!(
                "cqrs.runner.batch",
                events = batch.len(),
                after = cursor.position
            );
            let handled: Handled = self
                .retrying(|| self.handler.handle(fence, &batch, policy))
                .instrument(span)
                .await?;
            self.metrics.events.increment(handled.processed);
            if handled.dead_lettered + handled.orphans > 0 {
                self.metrics.dead_letters.increment(handled.dead_lettered);
                self.status.send_modify(|s| {
                    s.dead_letters += handled.dead_lettered;
                    s.orphans += handled.orphans;
                });
            }
            if let Some(reached) = handled.reached {
                processed += handled.processed;
                cursor = reached;
                self.metrics.batches.increment(1);
                self.retrying(|| self.source.committed(reached)).await?;
            }
            self.publish(cursor.position, head, Some(RunState::CatchingUp));
            if let Some(error) = handled.stopped {
                return Err(error);
            }
            // A short batch is not the end: a source ends a read before an unreadable row.
            // The loop ends on an empty read.
        }
    }

    /// Moves the checkpoint to `through`, past events the filter left out.
    async fn skip_to(&self, fence: u64, through: Cursor) -> Result<Cursor, RunError> {
        let (version, fingerprint) = self.handler.identity();
        let commit = CheckpointCommit::advance(fence, through, version, fingerprint);
        self.retrying(|| self.handler.commit(commit.clone()))
            .await?;
        self.retrying(|| self.source.committed(through)).await?;
        Ok(through)
    }

    /// The handler's due work besides the source (retried like the rest).
    async fn tick(&self, fence: u64) -> Result<Tick, RunError> {
        let mut tick = self
            .retrying(|| self.handler.tick(fence, self.policy))
            .await?;
        if let Some(error) = tick.stopped.take() {
            return Err(error);
        }
        Ok(tick)
    }

    /// A row of the source that cannot be read, first in a read: through the error policy.
    #[cold]
    async fn unreadable(
        &self,
        fence: u64,
        cursor: Cursor,
        corrupt: CorruptEvent,
        policy: ErrorPolicy,
    ) -> Result<Cursor, RunError> {
        let at = match corrupt.cursor {
            Some(at) if policy == ErrorPolicy::SkipAndRecord && at > cursor => at,
            _ => return Err(RunError::store(&self.name, corrupt.into())),
        };
        tracing::warn!(position = at.position, reason = %corrupt.reason, "skipping an unreadable event");
        let letter = DeadLetter {
            cursor: at,
            event_id: None,
            stream_type: corrupt.stream_type.clone().unwrap_or_default(),
            stream_id: corrupt.stream_id.clone().unwrap_or_default(),
            stream_version: corrupt.stream_version.unwrap_or(0),
            event_type: String::new(),
            event_version: 0,
            error: corrupt.to_string(),
            recorded_at: now(),
        };
        let (version, fingerprint) = self.handler.identity();
        let mut commit = CheckpointCommit::advance(fence, at, version, fingerprint);
        commit.record.push(letter);
        self.retrying(|| self.handler.commit(commit.clone()))
            .await?;
        self.status.send_modify(|s| s.dead_letters += 1);
        self.metrics.dead_letters.increment(1);
        self.metrics.failed(RunnerFailure::Event);
        Ok(at)
    }

    /// Runs `op`, retrying transient failures per the back-off; other errors as [`RunError`].
    async fn retrying<T, F, Fut>(&self, mut op: F) -> Result<T, RunError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        self.retrying_read(&mut op)
            .await
            .map_err(|e| RunError::store(&self.name, e))
    }

    /// [`Runner::retrying`], keeping the store's error.
    async fn retrying_read<T, F, Fut>(&self, mut op: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut attempt = 0;
        loop {
            match op().await {
                Err(error) if error.is_transient() && self.retry.allows(attempt) => {
                    let pause = self.retry.delay(attempt);
                    tracing::warn!(%error, attempt, ?pause, "transient failure: retrying");
                    self.metrics.failed(RunnerFailure::Transient);
                    self.set_state(RunState::Retrying(error.to_string()));
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn finish<T>(&self, result: &Result<T, RunError>, done: RunState) {
        let state = match result {
            Ok(_) => done,
            Err(error) => {
                self.metrics.failed(match error {
                    RunError::Event { .. } => RunnerFailure::Event,
                    RunError::Handler { .. } | RunError::Deadline { .. } => RunnerFailure::Handler,
                    RunError::Superseded { .. } | RunError::AlreadyRunning { .. } => {
                        RunnerFailure::Superseded
                    }
                    _ => RunnerFailure::Store,
                });
                RunState::Failed(error.to_string())
            }
        };
        self.set_state(state);
    }

    fn set_state(&self, state: RunState) {
        self.status.send_if_modified(|s| {
            if s.state == state {
                return false;
            }
            s.state = state;
            true
        });
    }

    fn publish_position(&self, position: u64) {
        self.status.send_modify(|s| {
            s.lag = lag(position, s.lag.head.max(position));
            self.metrics.progress(s.lag.position, s.lag.head);
        });
    }

    fn publish(&self, position: u64, head: u64, state: Option<RunState>) {
        self.status.send_modify(|s| {
            s.lag = lag(position, head.max(position));
            self.metrics.progress(s.lag.position, s.lag.head);
            if let Some(state) = state {
                s.state = state;
            }
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

/// A runner on its own task.
pub struct Running {
    handle: RunnerHandle,
    task: Stoppable<RunError>,
}

impl Running {
    /// A view of the runner's progress (lag, state, read-your-writes).
    pub fn handle(&self) -> &RunnerHandle {
        &self.handle
    }

    /// Read-your-writes; see [`RunnerHandle::wait_for`].
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> Result<(), WaitError> {
        self.handle.wait_for(position, timeout).await
    }

    /// Whether the runner's task has ended (then [`join`](Self::join) returns at once).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Asks the runner to stop after its current batch and waits for it; returns how it ended.
    pub async fn stop(self) -> Result<(), RunError> {
        let name = self.handle.name.to_string();
        self.task.stop(|error| crashed(name, &error)).await
    }

    /// Waits for the runner to end on its own (an error, since it runs until stopped).
    pub async fn join(self) -> Result<(), RunError> {
        let name = self.handle.name.to_string();
        self.task.join(|error| crashed(name, &error)).await
    }
}

/// A runner task that panicked or was cancelled.
fn crashed(name: String, error: &tokio::task::JoinError) -> RunError {
    RunError::Crashed {
        name,
        reason: error.to_string(),
    }
}
