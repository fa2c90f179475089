//! The relay and the consumer source against a real NATS server with JetStream.
//!
//! Every test uses its own JetStream stream and subject prefix, and deletes the stream at the
//! end. The server is `NATS_URL` (default `127.0.0.1:4222`); a test skips with a printed
//! reason when it is unreachable, and fails instead when `CI` is set. The restart test starts
//! its own `nats-server` (`NATS_SERVER`, default `nats-server` on the `PATH`) on a free port.
//!
//! The kill test re-executes this test binary as the relay or consumer process (the
//! `child_process` test, which does nothing unless `CQRS_NATS_CHILD` is set).
#![allow(missing_docs, reason = "test fixtures")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use cqrs_nats::{
    Foreign, JetStreamSource, NatsError, Relay, RelayConfig, SourceConfig, StreamConfig,
    ensure_stream,
};
use cqrs_runtime::memory::InMemoryLeases;
use cqrs_runtime::processing::{Backoff, Source};
use cqrs_runtime::projection::{
    ErrorPolicy, EventMeta, ProjectionRunner, ReadModel, RunError, SqlProjection, SqlReadModel,
};
use cqrs_runtime::sqlite::SqliteEventStore;
use cqrs_runtime::store::{
    Checkpoint, CheckpointCommit, CheckpointStore, Cursor, DeadLetter, EventFilter, EventStore,
    ExpectedVersion, LeaseStore, NewEvent, ReadBatch, SqlBatch, SqlValue, StoreError,
};
use cqrs_runtime::{Event, EventEnum, Metadata, projection};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

// ---- the read model ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "nats_added", version = 1)]
pub struct Added {
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "nats_flagged", version = 1)]
pub struct Flagged {}

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum TallyEvent {
    Added(Added),
    Flagged(Flagged),
}

/// Per stream: the sum, the count and a flag; and one `seen` row per event, keyed by
/// position, so that an event applied twice is a unique violation (the runner stops), not a
/// silent double count.
#[derive(Default)]
pub struct Tallies;

#[projection(name = "nats_tallies", events = TallyEvent, transaction = SqlBatch)]
impl Tallies {
    #[on]
    fn added(&mut self, e: &Added, meta: &EventMeta<'_>, db: &mut SqlBatch) {
        db.execute(
            "INSERT INTO tallies (stream, total, events, flagged) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (stream) DO UPDATE SET total = tallies.total + $2, events = tallies.events + 1",
            [meta.stream_id.into(), e.amount.into(), false.into()],
        );
        seen(meta, db);
    }

    #[on]
    fn flagged(&mut self, _: &Flagged, meta: &EventMeta<'_>, db: &mut SqlBatch) {
        db.execute(
            "UPDATE tallies SET flagged = $2 WHERE stream = $1",
            [meta.stream_id.into(), true.into()],
        );
        seen(meta, db);
    }
}

fn seen(meta: &EventMeta<'_>, db: &mut SqlBatch) {
    let position = SqlValue::try_from(meta.position).unwrap_or(SqlValue::Null);
    db.execute(
        "INSERT INTO seen (position, stream) VALUES ($1, $2)",
        [position, meta.stream_id.into()],
    );
}

impl SqlProjection for Tallies {
    fn create_tables(db: &mut SqlBatch) {
        db.execute(
            "CREATE TABLE IF NOT EXISTS tallies (stream TEXT PRIMARY KEY, total BIGINT NOT NULL, \
             events INTEGER NOT NULL, flagged BOOLEAN NOT NULL)",
            [],
        );
        db.execute(
            "CREATE TABLE IF NOT EXISTS seen (position BIGINT PRIMARY KEY, stream TEXT NOT NULL)",
            [],
        );
    }

    fn clear_tables(db: &mut SqlBatch) {
        db.execute("DELETE FROM tallies", []);
        db.execute("DELETE FROM seen", []);
    }
}

type Model = SqlReadModel<Tallies, SqliteEventStore>;

async fn model(path: &Path) -> Model {
    let tables = SqliteEventStore::open(path).await.expect("open model file");
    Model::open(tables).await.expect("open model")
}

async fn dump(model: &Model) -> Vec<Vec<SqlValue>> {
    let mut rows = Vec::new();
    for sql in [
        "SELECT stream, total, events, flagged FROM tallies ORDER BY stream",
        "SELECT position, stream FROM seen ORDER BY position",
    ] {
        rows.extend(model.fetch_all(sql, &[]).await.expect("dump"));
    }
    rows
}

async fn seen_count(model: &Model) -> usize {
    model
        .fetch_all("SELECT position FROM seen", &[])
        .await
        .expect("seen")
        .len()
}

async fn position(model: &Model) -> u64 {
    ReadModel::checkpoint(model)
        .await
        .expect("checkpoint")
        .map_or(0, |c| c.cursor.position)
}

/// Waits until `model`'s checkpoint reaches `target` (panics after a minute).
async fn reach(model: &Model, target: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while position(model).await < target {
        assert!(
            Instant::now() < deadline,
            "the model reached {} of {target}",
            position(model).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The same model built from the store directly.
async fn direct<S: EventStore + Clone>(store: &S, dir: &Path) -> Model {
    let direct = model(&dir.join("direct.sqlite")).await;
    ProjectionRunner::new(store.clone(), direct.clone())
        .with_leases(InMemoryLeases::new())
        .catch_up()
        .await
        .expect("direct catch-up");
    direct
}

fn added(amount: i64) -> NewEvent {
    let payload = format!(r#"{{"amount":{amount}}}"#).into_bytes();
    NewEvent::new("nats_added", 1, payload, Metadata::new())
}

fn flagged() -> NewEvent {
    NewEvent::new("nats_flagged", 1, b"{}".to_vec(), Metadata::new())
}

/// Appends `per_stream` events to each of `streams` streams (named from `tag`), one event per
/// append, interleaved across streams.
async fn append<S: EventStore>(store: &S, tag: &str, streams: u64, per_stream: u64) {
    for version in 0..per_stream {
        for s in 0..streams {
            let event = if version % 5 == 4 {
                flagged()
            } else {
                added(i64::try_from(version * 10 + s).unwrap_or(0))
            };
            store
                .append(
                    "tally",
                    &format!("{tag}-{s}"),
                    ExpectedVersion::Exact(version),
                    vec![event],
                )
                .await
                .expect("append");
        }
    }
}

// ---- NATS ---------------------------------------------------------------------------------------

fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "127.0.0.1:4222".to_owned())
}

/// A client of the shared server; `None` (with a printed reason) when it is unreachable
/// outside CI.
async fn client() -> Option<async_nats::Client> {
    let url = nats_url();
    match tokio::time::timeout(Duration::from_secs(5), async_nats::connect(&url)).await {
        Ok(Ok(client)) => Some(client),
        Ok(Err(error)) if !in_ci() => {
            eprintln!("skipping: NATS is unreachable at {url}: {error}");
            None
        }
        Err(_) if !in_ci() => {
            eprintln!("skipping: NATS at {url} does not answer");
            None
        }
        other => panic!("NATS is unreachable at {url} and CI is set: {other:?}"),
    }
}

/// One test's stream, prefix and temporary directory.
struct Fixture {
    js: jetstream::Context,
    stream: String,
    prefix: String,
    dir: PathBuf,
}

impl Fixture {
    async fn new() -> Option<Self> {
        let client = client().await?;
        Some(Self::on(client))
    }

    fn on(client: async_nats::Client) -> Self {
        let id = Uuid::now_v7().simple().to_string();
        let dir = std::env::temp_dir().join(format!("cqrs-nats-{id}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self {
            js: jetstream::new(client),
            stream: format!("T{id}"),
            prefix: format!("t{id}"),
            dir,
        }
    }

    fn relay_config(&self) -> RelayConfig {
        RelayConfig::new(&self.stream, &self.prefix)
    }

    async fn relay<C: CheckpointStore>(&self, checkpoints: C) -> Relay<C> {
        Relay::start(self.js.clone(), checkpoints, self.relay_config())
            .await
            .expect("start the relay")
    }

    fn source_config(&self, durable: &str) -> SourceConfig {
        SourceConfig::new(durable)
            .ack_wait(Duration::from_secs(2))
            .gap_retry(Duration::from_millis(200))
    }

    async fn source(&self, config: SourceConfig) -> JetStreamSource {
        JetStreamSource::connect(&self.js, &self.stream, config)
            .await
            .expect("connect the source")
    }

    async fn messages(&self) -> u64 {
        let mut stream = self.js.get_stream(&self.stream).await.expect("stream");
        stream.info().await.expect("stream info").state.messages
    }

    async fn teardown(self) {
        let _ = self.js.delete_stream(&self.stream).await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(500),
        attempts: None,
    }
}

// ---- end to end ---------------------------------------------------------------------------------

/// Appends (before and while the relay runs), relays, and builds the model from a durable
/// consumer in batches; it equals the model built from the store.
async fn end_to_end<S>(fx: &Fixture, store: S)
where
    S: EventStore + CheckpointStore + LeaseStore + Clone,
{
    append(&store, "e2e", 6, 10).await;
    let relay = fx
        .relay(store.clone())
        .await
        .runner(store.clone())
        .with_leases(store.clone())
        .batch_size(25)
        .poll_interval(Duration::from_millis(5), Duration::from_millis(50))
        .spawn();
    let source = fx.source(fx.source_config("e2e")).await;
    let consumed = model(&fx.dir.join("consumer.sqlite")).await;
    let consumer = ProjectionRunner::new(source, consumed.clone())
        .with_leases(InMemoryLeases::new())
        .batch_size(7)
        .retry(backoff())
        .poll_interval(Duration::from_millis(5), Duration::from_millis(50))
        .spawn();
    append(&store, "live", 4, 10).await;
    let head = EventStore::head(&store).await.expect("head").position;
    reach(&consumed, head).await;
    let direct = direct(&store, &fx.dir).await;
    assert_eq!(dump(&consumed).await, dump(&direct).await);
    assert_eq!(seen_count(&consumed).await, 100);
    assert_eq!(fx.messages().await, 100);
    relay.stop().await.expect("relay");
    consumer.stop().await.expect("consumer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_to_a_consumer_fed_sql_model() {
    let Some(fx) = Fixture::new().await else {
        return;
    };
    let store = SqliteEventStore::open(fx.dir.join("events.sqlite"))
        .await
        .expect("open");
    end_to_end(&fx, store).await;
    fx.teardown().await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_to_a_consumer_fed_sql_model() {
    use cqrs_runtime::postgres::PostgresConfig;
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let admin = match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(connection);
            client
        }
        Err(e) if !in_ci() => {
            eprintln!("skipping: PostgreSQL is unreachable at {url}: {e}");
            return;
        }
        Err(e) => panic!("PostgreSQL is unreachable at {url} and CI is set: {e}"),
    };
    let Some(fx) = Fixture::new().await else {
        return;
    };
    let schema = format!("cqrs_nats_{}", Uuid::now_v7().simple());
    let store = PostgresConfig::new(&url)
        .expect("url")
        .schema(&schema)
        .expect("schema")
        .open()
        .await
        .expect("open");
    end_to_end(&fx, store).await;
    let _ = admin
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await;
    fx.teardown().await;
}

// ---- the stream ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_stream_with_other_settings_is_a_typed_error() {
    let Some(fx) = Fixture::new().await else {
        return;
    };
    let config = StreamConfig::new(&fx.stream, &fx.prefix);
    ensure_stream(&fx.js, &config).await.expect("create");
    ensure_stream(&fx.js, &config)
        .await
        .expect("the same again");
    let other = config.clone().duplicate_window(Duration::from_secs(30));
    match ensure_stream(&fx.js, &other).await {
        Err(NatsError::StreamMismatch { field, .. }) => assert_eq!(field, "duplicate_window"),
        other => panic!("expected a mismatch, got {other:?}"),
    }
    let mut subjects = config.clone();
    subjects.subjects = vec![format!("{}.other.>", fx.prefix)];
    match ensure_stream(&fx.js, &subjects).await {
        Err(NatsError::StreamMismatch { field, .. }) => assert_eq!(field, "subjects"),
        other => panic!("expected a mismatch, got {other:?}"),
    }
    fx.teardown().await;
}

// ---- duplicates ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_restarted_from_an_older_checkpoint_publishes_duplicates_jetstream_drops() {
    let Some(fx) = Fixture::new().await else {
        return;
    };
    let store = SqliteEventStore::open(fx.dir.join("events.sqlite"))
        .await
        .expect("open");
    append(&store, "dup", 3, 10).await;
    let relay = fx
        .relay(store.clone())
        .await
        .runner(store.clone())
        .with_leases(store.clone())
        .batch_size(8);
    assert_eq!(relay.catch_up().await.expect("publish"), 30);
    assert_eq!(fx.messages().await, 30);
    // From the start again: every event is published a second time.
    assert_eq!(relay.rebuild().await.expect("publish again"), 30);
    assert_eq!(fx.messages().await, 30, "JetStream dropped the copies");
    append(&store, "dup2", 1, 5).await;
    assert_eq!(relay.catch_up().await.expect("publish"), 5);
    assert_eq!(fx.messages().await, 35);
    fx.teardown().await;
}

// ---- unreadable messages ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_and_foreign_messages_go_through_the_error_policies() {
    let Some(fx) = Fixture::new().await else {
        return;
    };
    let store = SqliteEventStore::open(fx.dir.join("events.sqlite"))
        .await
        .expect("open");
    append(&store, "ok", 1, 3).await;
    // Position 4: JSON the store takes, and the decoder refuses.
    let bad = NewEvent::new(
        "nats_added",
        1,
        br#"{"amount":"many"}"#.to_vec(),
        Metadata::new(),
    );
    store
        .append("tally", "bad", ExpectedVersion::NoStream, vec![bad])
        .await
        .expect("append");
    let relay = fx
        .relay(store.clone())
        .await
        .runner(store.clone())
        .with_leases(store.clone());
    relay.catch_up().await.expect("publish");
    // A message no relay wrote, then more events.
    fx.js
        .publish(format!("{}.tally.nats_added", fx.prefix), "not json".into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    append(&store, "more", 1, 3).await;
    relay.catch_up().await.expect("publish");

    // Stop, by default: halts at the foreign message? No: the decoder's refusal comes first.
    let stopping = model(&fx.dir.join("stop.sqlite")).await;
    let runner = ProjectionRunner::new(fx.source(fx.source_config("stop")).await, stopping.clone())
        .with_leases(InMemoryLeases::new())
        .retry(Backoff::none());
    match runner.catch_up().await {
        Err(RunError::Event { position, .. }) => assert_eq!(position, 4),
        other => panic!("expected the decoder's refusal, got {other:?}"),
    }
    assert_eq!(position(&stopping).await, 3);

    // Skip and record: a dead letter at 4; then the foreign message stops the runner.
    let skipping = model(&fx.dir.join("skip.sqlite")).await;
    let runner = ProjectionRunner::new(fx.source(fx.source_config("skip")).await, skipping.clone())
        .with_leases(InMemoryLeases::new())
        .error_policy(ErrorPolicy::SkipAndRecord)
        .retry(Backoff::none());
    match runner.catch_up().await {
        Err(RunError::Store { source, .. }) => {
            assert!(matches!(source, StoreError::Corrupt(_)), "{source}");
        }
        other => panic!("expected the foreign message to stop it, got {other:?}"),
    }
    let letters = runner.dead_letters().await.expect("dead letters");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].cursor.position, 4);
    assert_eq!(position(&skipping).await, 4);

    // Foreign messages terminated: everything else arrives.
    let terminating = model(&fx.dir.join("term.sqlite")).await;
    let config = fx.source_config("term").foreign(Foreign::Terminate);
    let runner = ProjectionRunner::new(fx.source(config).await, terminating.clone())
        .with_leases(InMemoryLeases::new())
        .error_policy(ErrorPolicy::SkipAndRecord)
        .retry(Backoff::none());
    runner.catch_up().await.expect("catch up");
    assert_eq!(position(&terminating).await, 7);
    assert_eq!(seen_count(&terminating).await, 6);
    fx.teardown().await;
}

// ---- processes killed with SIGKILL --------------------------------------------------------------

/// Forwards to a checkpoint store, stalling (after writing a marker) before the
/// `stall_at`-th commit: the relay published and got the acknowledgments, and its checkpoint
/// is not written.
#[derive(Clone)]
struct StallingCheckpoints {
    inner: SqliteEventStore,
    marker: PathBuf,
    stall_at: u64,
    commits: std::sync::Arc<AtomicU64>,
}

impl CheckpointStore for StallingCheckpoints {
    async fn checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, StoreError> {
        self.inner.checkpoint(name).await
    }
    async fn claim(&self, name: &str) -> Result<Checkpoint, StoreError> {
        self.inner.claim(name).await
    }
    async fn commit(&self, name: &str, commit: CheckpointCommit) -> Result<Checkpoint, StoreError> {
        if self.commits.fetch_add(1, Ordering::SeqCst) + 1 == self.stall_at {
            stall(&self.marker).await;
        }
        self.inner.commit(name, commit).await
    }
    async fn dead_letters(&self, name: &str) -> Result<Vec<DeadLetter>, StoreError> {
        self.inner.dead_letters(name).await
    }
}

/// Forwards to a source, stalling (after writing a marker) before the `stall_at`-th
/// acknowledgment: the handler's transaction committed, and the messages are not
/// acknowledged.
struct StallingSource {
    inner: JetStreamSource,
    marker: PathBuf,
    stall_at: u64,
    commits: AtomicU64,
    /// Stall after the `stall_at`-th read instead (messages pulled, nothing committed).
    on_read: bool,
    reads: AtomicU64,
}

impl Source for StallingSource {
    async fn read(
        &self,
        after: Cursor,
        limit: usize,
        filter: Option<&EventFilter>,
    ) -> Result<ReadBatch, StoreError> {
        let batch = self.inner.read(after, limit, filter).await?;
        if self.on_read
            && !batch.events.is_empty()
            && self.reads.fetch_add(1, Ordering::SeqCst) + 1 == self.stall_at
        {
            stall(&self.marker).await;
        }
        Ok(batch)
    }
    async fn head(&self) -> Result<Cursor, StoreError> {
        self.inner.head().await
    }
    async fn committed(&self, through: Cursor) -> Result<(), StoreError> {
        if !self.on_read && self.commits.fetch_add(1, Ordering::SeqCst) + 1 == self.stall_at {
            stall(&self.marker).await;
        }
        self.inner.committed(through).await
    }
}

async fn stall(marker: &Path) {
    std::fs::write(marker, "stalled").expect("marker");
    tokio::time::sleep(Duration::from_secs(120)).await;
}

/// The relay or consumer process: runs until the parent kills it.
#[test]
fn child_process() {
    let Ok(role) = std::env::var("CQRS_NATS_CHILD") else {
        return; // an ordinary test run: nothing to do
    };
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let client = async_nats::connect(nats_url()).await.expect("connect");
        let js = jetstream::new(client);
        let events = SqliteEventStore::open(var("CQRS_NATS_EVENTS"))
            .await
            .expect("open events");
        let marker = PathBuf::from(var("CQRS_NATS_MARKER"));
        let stall_at = var("CQRS_NATS_STALL_AT").parse().expect("stall at");
        let stream = var("CQRS_NATS_STREAM");
        match role.as_str() {
            "relay" => {
                let checkpoints = StallingCheckpoints {
                    inner: events.clone(),
                    marker,
                    stall_at,
                    commits: Default::default(),
                };
                let relay = Relay::start(
                    js,
                    checkpoints,
                    RelayConfig::new(&stream, var("CQRS_NATS_PREFIX")),
                )
                .await
                .expect("relay");
                let result = relay
                    .runner(events.clone())
                    .with_leases(events)
                    .batch_size(10)
                    .run(std::future::pending())
                    .await;
                panic!("the relay ended: {result:?}");
            }
            "consumer" | "consumer-read" => {
                let inner = JetStreamSource::connect(
                    &js,
                    &stream,
                    SourceConfig::new("killed").ack_wait(Duration::from_secs(2)),
                )
                .await
                .expect("source");
                let source = StallingSource {
                    inner,
                    marker,
                    stall_at,
                    commits: AtomicU64::new(0),
                    on_read: role == "consumer-read",
                    reads: AtomicU64::new(0),
                };
                let tables = SqliteEventStore::open(var("CQRS_NATS_MODEL"))
                    .await
                    .expect("model file");
                let model = Model::open(tables.clone()).await.expect("model");
                let result = ProjectionRunner::new(source, model)
                    .with_leases(tables)
                    .batch_size(10)
                    .run(std::future::pending())
                    .await;
                panic!("the consumer ended: {result:?}");
            }
            other => panic!("unknown role {other}"),
        }
    });
}

/// Starts this binary as `role`, and waits until it stalls at its `stall_at`-th commit.
async fn stalled_child(fx: &Fixture, role: &str, stall_at: u64) -> Child {
    let marker = fx.dir.join(format!("{role}.marker"));
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "child_process", "--nocapture"])
        .env("CQRS_NATS_CHILD", role)
        .env("CQRS_NATS_EVENTS", fx.dir.join("events.sqlite"))
        .env("CQRS_NATS_MODEL", fx.dir.join("consumer.sqlite"))
        .env("CQRS_NATS_MARKER", &marker)
        .env("CQRS_NATS_STALL_AT", stall_at.to_string())
        .env("CQRS_NATS_STREAM", &fx.stream)
        .env("CQRS_NATS_PREFIX", &fx.prefix)
        .spawn()
        .expect("spawn the child");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !marker.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the {role} process ended before stalling: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "the {role} process never stalled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child
}

fn kill(mut child: Child) {
    child.kill().expect("SIGKILL");
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_and_consumer_killed_before_their_checkpoint_and_ack_lose_nothing_and_apply_nothing_twice()
 {
    let Some(fx) = Fixture::new().await else {
        return;
    };
    let store = SqliteEventStore::open(fx.dir.join("events.sqlite"))
        .await
        .expect("open");
    append(&store, "kill", 10, 10).await;

    // The relay process: batches of 10; the third one is acknowledged by JetStream, and the
    // process is killed before its checkpoint.
    let child = stalled_child(&fx, "relay", 3).await;
    assert_eq!(fx.messages().await, 30);
    kill(child);
    let checkpoint = store
        .checkpoint(&fx.relay_config().name)
        .await
        .expect("checkpoint");
    assert_eq!(checkpoint.map(|c| c.cursor.position), Some(20));
    // Its successor publishes 21..=30 again (dropped by JetStream), then the rest.
    let relay = fx
        .relay(store.clone())
        .await
        .runner(store.clone())
        .with_leases(store.clone());
    assert_eq!(relay.catch_up().await.expect("publish"), 80);
    assert_eq!(fx.messages().await, 100);

    // The consumer process: its fourth batch is committed in the model, and the process is
    // killed before the acknowledgment.
    let child = stalled_child(&fx, "consumer", 4).await;
    kill(child);
    let consumed = model(&fx.dir.join("consumer.sqlite")).await;
    assert_eq!(position(&consumed).await, 40);
    // Its successor shares the durable consumer: 31..=40 are delivered again after the
    // acknowledgment deadline, and dropped by the checkpoint.
    let tables = SqliteEventStore::open(fx.dir.join("consumer.sqlite"))
        .await
        .expect("model file");
    let source = fx
        .source(SourceConfig::new("killed").ack_wait(Duration::from_secs(2)))
        .await;
    let consumer = ProjectionRunner::new(source, consumed.clone())
        .with_leases(tables)
        .batch_size(10)
        .retry(backoff())
        .poll_interval(Duration::from_millis(5), Duration::from_millis(50))
        .spawn();
    reach(&consumed, 100).await;
    // The redelivered messages are dropped, not applied (a second `seen` row would stop the
    // runner with a unique violation).
    tokio::time::sleep(Duration::from_secs(3)).await;
    consumer
        .stop()
        .await
        .expect("the consumer ran without an error");
    assert_eq!(seen_count(&consumed).await, 100);
    assert_eq!(
        dump(&consumed).await,
        dump(&direct(&store, &fx.dir).await).await
    );
    fx.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_killed_mid_batch_is_taken_over_without_a_gap() {
    let Some(fx) = Fixture::new().await else {
        return;
    };
    let store = SqliteEventStore::open(fx.dir.join("events.sqlite"))
        .await
        .expect("open");
    append(&store, "mid", 10, 10).await;
    let relay = fx
        .relay(store.clone())
        .await
        .runner(store.clone())
        .with_leases(store.clone());
    relay.catch_up().await.expect("publish");

    // The consumer process pulls its fifth batch (41..=50) and is killed before committing
    // it: JetStream delivers those ten again only after the acknowledgment deadline.
    let child = stalled_child(&fx, "consumer-read", 5).await;
    kill(child);
    let consumed = model(&fx.dir.join("consumer.sqlite")).await;
    assert_eq!(position(&consumed).await, 40);
    // The successor is given 51.. first; the chain check holds them back until 41..=50 come.
    let tables = SqliteEventStore::open(fx.dir.join("consumer.sqlite"))
        .await
        .expect("model file");
    let source = fx.source(fx.source_config("killed")).await;
    let consumer = ProjectionRunner::new(source, consumed.clone())
        .with_leases(tables)
        .batch_size(10)
        .retry(backoff())
        .poll_interval(Duration::from_millis(5), Duration::from_millis(50))
        .spawn();
    reach(&consumed, 100).await;
    consumer
        .stop()
        .await
        .expect("the consumer ran without an error");
    assert_eq!(seen_count(&consumed).await, 100);
    assert_eq!(
        dump(&consumed).await,
        dump(&direct(&store, &fx.dir).await).await
    );
    fx.teardown().await;
}

// ---- a server of the test's own -----------------------------------------------------------------

/// A `nats-server` child process with JetStream, on a free port.
struct Server {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    args: Vec<String>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn server_binary() -> String {
    std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".to_owned())
}

impl Server {
    /// Starts a server; `None` (with a printed reason) when `nats-server` cannot be run
    /// outside CI.
    async fn start(dir: &Path, extra: Vec<String>) -> Option<Self> {
        Self::start_on(free_port(), dir, extra, true).await
    }

    /// [`Server::start`] on `port`, waiting until it listens if `wait`.
    async fn start_on(port: u16, dir: &Path, extra: Vec<String>, wait: bool) -> Option<Self> {
        let dir = dir.join(format!("server-{port}"));
        std::fs::create_dir_all(&dir).expect("server dir");
        let mut args = vec![
            "-js".to_owned(),
            "-a".to_owned(),
            "127.0.0.1".to_owned(),
            "-p".to_owned(),
            port.to_string(),
            "-sd".to_owned(),
            dir.display().to_string(),
        ];
        args.extend(extra);
        let mut server = Self {
            child: None,
            port,
            dir,
            args,
        };
        match server.spawn() {
            Ok(()) => {}
            Err(e) if !in_ci() => {
                eprintln!("skipping: cannot run {}: {e}", server_binary());
                return None;
            }
            Err(e) => panic!("cannot run {} and CI is set: {e}", server_binary()),
        }
        if wait {
            server.wait_listening().await;
        }
        Some(server)
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let child = Command::new(server_binary())
            .args(&self.args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    async fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "nats-server on {} never listened",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server with SIGTERM (it writes its stores out), and waits for it.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Kills the server with SIGKILL.
    fn kill(&mut self) {
        if let Some(child) = self.child.take() {
            kill(child);
        }
    }

    async fn restart(&mut self) {
        self.spawn().expect("restart nats-server");
        self.wait_listening().await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restarted_mid_stream_loses_nothing() {
    let base = std::env::temp_dir().join(format!("cqrs-nats-server-{}", Uuid::now_v7().simple()));
    let Some(mut server) = Server::start(&base, Vec::new()).await else {
        return;
    };
    let client = async_nats::connect(server.url()).await.expect("connect");
    let fx = Fixture::on(client);
    let store = SqliteEventStore::open(fx.dir.join("events.sqlite"))
        .await
        .expect("open");
    append(&store, "before", 6, 10).await;
    let relay = fx
        .relay(store.clone())
        .await
        .runner(store.clone())
        .with_leases(store.clone())
        .batch_size(10)
        .retry(backoff())
        .poll_interval(Duration::from_millis(5), Duration::from_millis(50))
        .spawn();
    let consumed = model(&fx.dir.join("consumer.sqlite")).await;
    let consumer = ProjectionRunner::new(
        fx.source(fx.source_config("restart")).await,
        consumed.clone(),
    )
    .with_leases(InMemoryLeases::new())
    .batch_size(7)
    .retry(backoff())
    .poll_interval(Duration::from_millis(5), Duration::from_millis(50))
    .spawn();
    reach(&consumed, 20).await;
    server.stop();
    append(&store, "while-down", 4, 10).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while position(&consumed).await < 100 {
        if Instant::now() > deadline {
            let relayed = store
                .checkpoint(&fx.relay_config().name)
                .await
                .expect("checkpoint");
            panic!(
                "the model reached {}; relay checkpoint {relayed:?}, stream messages {}, relay {:?}, consumer {:?}",
                position(&consumed).await,
                fx.messages().await,
                relay.handle().state(),
                consumer.handle().state(),
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    relay.stop().await.expect("relay");
    consumer.stop().await.expect("consumer");
    assert_eq!(fx.messages().await, 100);
    assert_eq!(seen_count(&consumed).await, 100);
    assert_eq!(
        dump(&consumed).await,
        dump(&direct(&store, &fx.dir).await).await
    );
    fx.teardown().await;
    drop(server);
    let _ = std::fs::remove_dir_all(&base);
}

// ---- a three-node cluster -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_node_killed_while_publishing_loses_nothing_acknowledged() {
    let base = std::env::temp_dir().join(format!("cqrs-nats-cluster-{}", Uuid::now_v7().simple()));
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let all_routes = routes
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut servers = Vec::new();
    for i in 0..3 {
        let extra = vec![
            "-n".to_owned(),
            format!("n{i}"),
            "--cluster_name".to_owned(),
            "cqrs".to_owned(),
            "--cluster".to_owned(),
            format!("nats://127.0.0.1:{}", routes[i]),
            "--routes".to_owned(),
            all_routes.clone(),
        ];
        let Some(server) = Server::start_on(ports[i], &base, extra, false).await else {
            return;
        };
        servers.push(server);
    }
    for server in &servers {
        server.wait_listening().await;
    }
    let addrs: Vec<async_nats::ServerAddr> = servers
        .iter()
        .map(|s| s.url().parse().expect("server address"))
        .collect();
    let client = async_nats::ConnectOptions::new()
        .connect(addrs)
        .await
        .expect("connect to the cluster");
    let fx = Fixture::on(client);
    let config = fx
        .relay_config()
        .stream(StreamConfig::new(&fx.stream, &fx.prefix).replicas(3));
    // The cluster elects its JetStream leader first.
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(error) = ensure_stream(&fx.js, &config.stream).await {
        assert!(Instant::now() < deadline, "no R3 stream: {error}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let store = SqliteEventStore::open(fx.dir.join("events.sqlite"))
        .await
        .expect("open");
    append(&store, "cluster", 10, 30).await;
    let name = config.name.clone();
    let relay = Relay::start(fx.js.clone(), store.clone(), config)
        .await
        .expect("relay")
        .runner(store.clone())
        .with_leases(store.clone())
        .batch_size(10)
        .retry(backoff())
        .poll_interval(Duration::from_millis(5), Duration::from_millis(50))
        .spawn();
    let relayed = || async {
        store
            .checkpoint(&name)
            .await
            .expect("checkpoint")
            .map_or(0, |c| c.cursor.position)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while relayed().await < 100 {
        assert!(Instant::now() < deadline, "the relay did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // One node dies while the relay publishes.
    servers[1].kill();
    let deadline = Instant::now() + Duration::from_secs(120);
    while relayed().await < 300 {
        assert!(
            Instant::now() < deadline,
            "the relay reached {}",
            relayed().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    relay.stop().await.expect("relay");
    // Everything the relay checkpointed (JetStream acknowledged it) is in the stream, once.
    assert_eq!(fx.messages().await, 300);
    let consumed = model(&fx.dir.join("consumer.sqlite")).await;
    let consumer = ProjectionRunner::new(
        fx.source(fx.source_config("cluster")).await,
        consumed.clone(),
    )
    .with_leases(InMemoryLeases::new())
    .batch_size(50)
    .retry(backoff())
    .spawn();
    reach(&consumed, 300).await;
    consumer.stop().await.expect("consumer");
    assert_eq!(
        dump(&consumed).await,
        dump(&direct(&store, &fx.dir).await).await
    );
    fx.teardown().await;
    drop(servers);
    let _ = std::fs::remove_dir_all(&base);
}

// ---- a reaction in another service --------------------------------------------------------------

mod billing {
    use cqrs_runtime::processing::reaction::{ReactionContext, ReactionError};
    use cqrs_runtime::store::StoredEvent;
    use cqrs_runtime::{
        Command, CommandBus, Event, EventEnum, EventStore, Repository, aggregate, reactor,
    };
    use serde::{Deserialize, Serialize};

    use super::{Added, Flagged, TallyEvent};

    #[derive(Debug, Clone, PartialEq, Command)]
    #[command(aggregate = Invoice)]
    pub struct OpenInvoice {
        #[id]
        pub invoice: String,
        pub amount: i64,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
    #[event(name = "nats_invoice_opened", version = 1)]
    pub struct InvoiceOpened {
        pub amount: i64,
    }

    #[derive(Debug, Clone, PartialEq, EventEnum)]
    pub enum InvoiceEvent {
        Opened(InvoiceOpened),
    }

    #[derive(Debug, Clone, PartialEq, thiserror::Error)]
    #[error("never")]
    pub struct InvoiceError;

    #[derive(Debug, Default)]
    pub struct Invoice;

    #[aggregate(name = "nats_invoice", id = String, events = InvoiceEvent, error = InvoiceError)]
    impl Invoice {
        #[command(create)]
        fn open(&self, cmd: OpenInvoice) -> Result<InvoiceOpened, InvoiceError> {
            Ok(InvoiceOpened { amount: cmd.amount })
        }

        #[apply]
        fn opened(&mut self, _: &InvoiceOpened) {}
    }

    #[derive(CommandBus)]
    pub struct Billing<S: EventStore> {
        pub invoices: Repository<Invoice, S>,
    }

    /// One invoice per `Added` event of the other service.
    #[derive(Debug, Default)]
    pub struct Invoicing;

    #[reactor(name = "nats_invoicing", events = TallyEvent, ignore(Flagged))]
    impl<S: EventStore> Invoicing {
        #[on]
        async fn added(
            &self,
            e: &Added,
            stored: &StoredEvent,
            ctx: &mut ReactionContext<'_, Billing<S>>,
        ) -> Result<(), ReactionError> {
            ctx.send(OpenInvoice {
                invoice: format!("{}-{}", stored.stream_id, stored.global_position),
                amount: e.amount,
            })
            .await?;
            Ok(())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reactor_of_another_service_is_fed_from_jetstream() {
    use cqrs_runtime::Repository;
    use cqrs_runtime::memory::InMemoryCheckpoints;
    use cqrs_runtime::processing::Runner;
    use cqrs_runtime::processing::reaction::reactor;
    let Some(fx) = Fixture::new().await else {
        return;
    };
    let store = SqliteEventStore::open(fx.dir.join("events.sqlite"))
        .await
        .expect("open");
    append(&store, "react", 3, 10).await;
    let relay = fx
        .relay(store.clone())
        .await
        .runner(store.clone())
        .with_leases(store.clone());
    relay.catch_up().await.expect("publish");

    let other = SqliteEventStore::open(fx.dir.join("billing.sqlite"))
        .await
        .expect("open");
    let bus = billing::Billing {
        invoices: Repository::new(other.clone()),
    };
    let runner = Runner::new(
        fx.source(fx.source_config("invoicing")).await,
        reactor(billing::Invoicing, bus, InMemoryCheckpoints::new()),
    )
    .with_leases(InMemoryLeases::new())
    .batch_size(7);
    assert_eq!(runner.catch_up().await.expect("react"), 30);
    // 8 of each stream's 10 events are `Added`: one invoice each.
    let invoices = other
        .read_after(Cursor::START, usize::MAX)
        .await
        .expect("read");
    assert_eq!(invoices.len(), 24);
    assert!(
        invoices
            .iter()
            .all(|(_, e)| e.event_type == "nats_invoice_opened")
    );
    fx.teardown().await;
}
