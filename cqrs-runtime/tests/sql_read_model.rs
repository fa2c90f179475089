//! SQL read models on real SQLite files and PostgreSQL schemas: exactly once across a runner
//! process killed with SIGKILL in the middle of a batch (stalled in a handler, stalled inside
//! the batch's database transaction, and at arbitrary moments), one active runner at a time
//! with take-over, rebuilds, and typed errors.
//!
//! The kill test re-executes this test binary as the runner process (the `child_runner` test,
//! which does nothing unless `CQRS_SQL_CHILD` is set). PostgreSQL tests read `DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`), create their own schemas, skip with a
//! printed reason when the server is unreachable, and fail instead when `CI=true`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cqrs_runtime::projection::{EventMeta, ProjectionError, ProjectionRunner, ReadModelStore};
use cqrs_runtime::store::{
    EventStore, ExpectedVersion, LeaseStore, NewEvent, SqlDialect, SqlModelError, SqlProjection,
    SqlValue, SqlWrites, StoreError,
};
use cqrs_runtime::{Event, EventEnum, Metadata, projection};
use serde::{Deserialize, Serialize};

// ---- the projection under test --------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "sql_added", version = 1)]
pub struct Added {
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "sql_flagged", version = 1)]
pub struct Flagged {}

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum TallyEvent {
    Added(Added),
    Flagged(Flagged),
}

/// Per stream: the sum, the count (an `INTEGER`, narrowed on PostgreSQL) and a flag; and one
/// `seen` row per event, keyed by position, so that an event applied twice is a unique
/// violation, not a silent double count.
#[derive(Default)]
pub struct Tallies;

#[projection(name = "sql_tallies", events = TallyEvent, transaction = SqlWrites)]
impl Tallies {
    #[on]
    fn added(&mut self, e: &Added, meta: &EventMeta, db: &mut SqlWrites) {
        db.execute(
            "INSERT INTO tallies (stream, total, events, flagged) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (stream) DO UPDATE SET total = tallies.total + $2, events = tallies.events + 1",
            [meta.stream_id.into(), e.amount.into(), false.into()],
        );
        seen(meta, db);
    }

    #[on]
    fn flagged(&mut self, _: &Flagged, meta: &EventMeta, db: &mut SqlWrites) {
        db.execute(
            "UPDATE tallies SET flagged = $2 WHERE stream = $1",
            [meta.stream_id.into(), true.into()],
        );
        seen(meta, db);
    }
}

fn seen(meta: &EventMeta, db: &mut SqlWrites) {
    let position = SqlValue::try_from(meta.position).unwrap_or(SqlValue::Null);
    db.execute(
        "INSERT INTO seen (position, stream) VALUES ($1, $2)",
        [position, meta.stream_id.into()],
    );
    child_hooks(db);
}

impl SqlProjection for Tallies {
    fn create_tables(db: &mut SqlWrites) {
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

    fn clear_tables(db: &mut SqlWrites) {
        db.execute("DELETE FROM tallies", []);
        db.execute("DELETE FROM seen", []);
    }
}

// ---- what the runner process does (only when re-executed by the kill test) ------------------

/// Set in the runner process only: how it stalls and where it signals.
struct Hooks {
    marker: PathBuf,
    /// After this many handled events, write the marker and stall (the parent kills us then).
    stall_at: Option<u64>,
    /// Run a CPU-heavy statement per event, so that the batch's transaction takes a while.
    busy: bool,
    /// At this many handled events, buffer a statement that runs for seconds: the runner stalls
    /// inside the batch's database transaction, after the earlier events' statements ran.
    stall_in_tx_at: Option<u64>,
}

static HOOKS: OnceLock<Hooks> = OnceLock::new();
static HANDLED: AtomicU64 = AtomicU64::new(0);

fn child_hooks(db: &mut SqlWrites) {
    let Some(hooks) = HOOKS.get() else { return };
    if hooks.busy {
        db.execute(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000) \
             SELECT count(*) FROM c",
            [],
        );
    }
    let handled = HANDLED.fetch_add(1, Ordering::SeqCst) + 1;
    if hooks.stall_in_tx_at == Some(handled) {
        // The parent sees this statement running (PostgreSQL: `pg_stat_activity`; SQLite: the
        // write lock is held) and kills us inside the transaction.
        match db.dialect() {
            SqlDialect::Postgres => db.execute(format!("SELECT pg_sleep(3) /* {STALL} */"), []),
            SqlDialect::Sqlite => db.execute(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000000) \
                 SELECT count(*) FROM c",
                [],
            ),
        };
        let _ = std::fs::write(
            &hooks.marker,
            format!("stalling in the transaction {handled}"),
        );
    }
    if hooks.stall_at == Some(handled) {
        // Mid-batch: the events before this one are handled, nothing of the batch committed.
        let _ = std::fs::write(&hooks.marker, format!("stalled {handled}"));
        std::thread::sleep(Duration::from_secs(60));
    }
}

const BATCH: usize = 10;

/// Marks the stalling statement, for `pg_stat_activity`.
const STALL: &str = "cqrs-stall-in-tx";

/// The runner process: runs the projection live until it is killed.
#[test]
fn child_runner() {
    let Ok(backend) = std::env::var("CQRS_SQL_CHILD") else {
        return; // an ordinary test run: nothing to do
    };
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let marker = PathBuf::from(var("CQRS_SQL_MARKER"));
    let hooks = Hooks {
        marker: marker.clone(),
        stall_at: var("CQRS_SQL_STALL_AT").parse().ok(),
        busy: var("CQRS_SQL_BUSY") == "1",
        stall_in_tx_at: var("CQRS_SQL_STALL_IN_TX_AT").parse().ok(),
    };
    assert!(HOOKS.set(hooks).is_ok());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let started = marker.with_extension("started");
        match backend.as_str() {
            #[cfg(feature = "sqlite")]
            "sqlite" => {
                let events = cqrs_runtime::store::SqliteEventStore::open(var("CQRS_SQL_EVENTS"))
                    .await
                    .expect("open events");
                let model =
                    cqrs_runtime::store::SqliteReadModel::<Tallies>::open(var("CQRS_SQL_MODEL"))
                        .await
                        .expect("open model");
                run_until_killed(events.clone(), model, events, &started).await;
            }
            #[cfg(feature = "postgres")]
            "postgres" => {
                use cqrs_runtime::store::{PostgresConfig, PostgresReadModel};
                let schema = var("CQRS_SQL_SCHEMA");
                let config = PostgresConfig::from_url(&var("CQRS_SQL_EVENTS")).expect("url");
                let events = config
                    .schema(&schema)
                    .expect("schema")
                    .connect()
                    .await
                    .expect("connect events");
                let model = PostgresReadModel::<Tallies>::connect(&var("CQRS_SQL_EVENTS"), &schema)
                    .await
                    .expect("connect model");
                run_until_killed(events.clone(), model, events, &started).await;
            }
            other => panic!("unknown backend {other}"),
        }
    });
}

async fn run_until_killed<S, M, L>(events: S, model: M, leases: L, started: &Path)
where
    S: EventStore + Clone,
    M: ReadModelStore<Tallies> + Clone,
    L: LeaseStore + Clone,
{
    // The killed predecessor's lease (a file lock, a session lock) goes with its process; the
    // server may take a moment to notice a dead session.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let runner = ProjectionRunner::new(events.clone(), model.clone())
            .with_leases(leases.clone())
            .batch_size(BATCH)
            .poll_interval(Duration::from_millis(5), Duration::from_millis(20));
        let _ = std::fs::write(started, "started");
        match runner.run(std::future::pending()).await {
            Err(ProjectionError::AlreadyRunning { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("the runner ended: {other:?}"),
        }
    }
}

// ---- the backends -----------------------------------------------------------------------------

/// One backend: a fresh event store, and read models in it or beside it.
trait Db: Sized + Send + Sync {
    type Events: EventStore + LeaseStore + Clone;
    type Model: ReadModelStore<Tallies> + Clone;

    /// A fresh store; `None` skips the test (with a printed reason).
    async fn setup() -> Option<Self>;
    fn events(&self) -> Self::Events;
    /// Another handle on the same events (another connection, as another process has).
    async fn other_events(&self) -> Self::Events;
    /// The model `name`: `main` is where the runner processes write, others are separate
    /// databases (files, schemas) for clean rebuilds.
    async fn model(&self, name: &str) -> Self::Model;
    /// Every row of the model, ordered.
    async fn dump(model: &Self::Model) -> Vec<Vec<SqlValue>>;
    async fn checkpoint(model: &Self::Model) -> Option<u64>;
    /// Whether a runner process is inside a model transaction, stalled in its long statement.
    async fn in_transaction(&self) -> bool;
    /// The environment of a runner process on the `main` model.
    fn child_env(&self) -> Vec<(&'static str, String)>;
    async fn teardown(self);
}

const DUMP: [&str; 2] = [
    "SELECT stream, total, events, flagged FROM tallies ORDER BY stream",
    "SELECT position, stream FROM seen ORDER BY position",
];

#[cfg(feature = "sqlite")]
struct Sqlite {
    dir: PathBuf,
    events: cqrs_runtime::store::SqliteEventStore,
}

#[cfg(feature = "sqlite")]
impl Db for Sqlite {
    type Events = cqrs_runtime::store::SqliteEventStore;
    type Model = cqrs_runtime::store::SqliteReadModel<Tallies>;

    async fn setup() -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("cqrs-sqlmodel-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let events = Self::Events::open(dir.join("events.sqlite"))
            .await
            .expect("open events");
        Some(Self { dir, events })
    }
    fn events(&self) -> Self::Events {
        self.events.clone()
    }
    async fn other_events(&self) -> Self::Events {
        Self::Events::open(self.events.path())
            .await
            .expect("reopen")
    }
    async fn model(&self, name: &str) -> Self::Model {
        // `main` shares the event store's file; the others get files of their own.
        let path = match name {
            "main" => self.events.path().to_path_buf(),
            other => self.dir.join(format!("{other}.sqlite")),
        };
        Self::Model::open(path).await.expect("open model")
    }
    async fn dump(model: &Self::Model) -> Vec<Vec<SqlValue>> {
        let mut rows = Vec::new();
        for sql in DUMP {
            rows.extend(model.fetch_all(sql, &[]).await.expect("dump"));
        }
        rows
    }
    async fn checkpoint(model: &Self::Model) -> Option<u64> {
        let checkpoint = model.checkpoint().await.expect("checkpoint");
        checkpoint.map(|c| c.cursor.position)
    }
    async fn in_transaction(&self) -> bool {
        // The runner holds SQLite's write lock for its transaction: ours cannot begin.
        let conn = rusqlite::Connection::open(self.events.path()).expect("open");
        conn.busy_timeout(Duration::ZERO).expect("busy timeout");
        match conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK") {
            Ok(()) => false,
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => true,
            Err(e) => panic!("probing the write lock: {e}"),
        }
    }
    fn child_env(&self) -> Vec<(&'static str, String)> {
        let path = self.events.path().display().to_string();
        vec![
            ("CQRS_SQL_CHILD", "sqlite".into()),
            ("CQRS_SQL_EVENTS", path.clone()),
            ("CQRS_SQL_MODEL", path),
        ]
    }
    async fn teardown(self) {
        drop(self.events);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(feature = "postgres")]
mod pg {
    use super::*;
    use cqrs_runtime::store::{PostgresConfig, PostgresEventStore, PostgresReadModel};

    pub struct Postgres {
        pub url: String,
        pub schema: String,
        pub events: PostgresEventStore,
    }

    /// `DATABASE_URL`, or the local default.
    pub fn url() -> String {
        std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    pub async fn client(url: &str) -> Result<tokio_postgres::Client, String> {
        let connect = tokio_postgres::connect(url, tokio_postgres::NoTls);
        let (client, connection) = tokio::time::timeout(Duration::from_secs(5), connect)
            .await
            .map_err(|_| "timed out after 5 s".to_owned())?
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        Ok(client)
    }

    impl Postgres {
        async fn connect_events(&self) -> PostgresEventStore {
            let config = PostgresConfig::from_url(&self.url).expect("url");
            let config = config.schema(&self.schema).expect("schema");
            config.connect().await.expect("connect events")
        }
    }

    impl Db for Postgres {
        type Events = PostgresEventStore;
        type Model = PostgresReadModel<Tallies>;

        async fn setup() -> Option<Self> {
            let url = url();
            if let Err(e) = client(&url).await {
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("PostgreSQL is unreachable at {url} and CI=true: {e}");
                }
                eprintln!("skipping a PostgreSQL test: cannot connect to {url}: {e}");
                return None;
            }
            let schema = format!("cqrs_t_{}", uuid::Uuid::now_v7().simple());
            let config = PostgresConfig::from_url(&url).expect("DATABASE_URL parses");
            let config = config.schema(&schema).expect("valid schema name");
            let events = config.connect().await.expect("connect and migrate");
            Some(Self {
                url,
                schema,
                events,
            })
        }
        fn events(&self) -> Self::Events {
            self.events.clone()
        }
        async fn other_events(&self) -> Self::Events {
            self.connect_events().await
        }
        async fn model(&self, name: &str) -> Self::Model {
            // `main` shares the event store's schema; the others get schemas of their own.
            let schema = match name {
                "main" => self.schema.clone(),
                other => format!("{}_{other}", self.schema),
            };
            Self::Model::connect(&self.url, &schema)
                .await
                .expect("connect model")
        }
        async fn dump(model: &Self::Model) -> Vec<Vec<SqlValue>> {
            let mut rows = Vec::new();
            for sql in DUMP {
                rows.extend(model.fetch_all(sql, &[]).await.expect("dump"));
            }
            rows
        }
        async fn checkpoint(model: &Self::Model) -> Option<u64> {
            let checkpoint = model.checkpoint().await.expect("checkpoint");
            checkpoint.map(|c| c.cursor.position)
        }
        async fn in_transaction(&self) -> bool {
            let client = client(&self.url).await.expect("client");
            let running = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' \
                     AND xact_start IS NOT NULL AND query LIKE $1",
                    &[&format!("%{STALL}%")],
                )
                .await
                .expect("pg_stat_activity");
            running.get::<_, i64>(0) > 0
        }
        fn child_env(&self) -> Vec<(&'static str, String)> {
            vec![
                ("CQRS_SQL_CHILD", "postgres".into()),
                ("CQRS_SQL_EVENTS", self.url.clone()),
                ("CQRS_SQL_SCHEMA", self.schema.clone()),
            ]
        }
        async fn teardown(self) {
            drop(self.events);
            if let Ok(client) = client(&self.url).await {
                for suffix in ["", "_rebuilt", "_other"] {
                    let drop = format!("DROP SCHEMA IF EXISTS \"{}{suffix}\" CASCADE", self.schema);
                    let _ = client.batch_execute(&drop).await;
                }
            }
        }
    }
}

// ---- the tests, once per backend -------------------------------------------------------------

fn added(amount: i64) -> NewEvent {
    let payload = format!(r#"{{"amount":{amount}}}"#).into_bytes();
    NewEvent::new("sql_added", 1, payload, Metadata::new())
}

fn flagged() -> NewEvent {
    NewEvent::new("sql_flagged", 1, b"{}".to_vec(), Metadata::new())
}

/// `n` events over 4 streams (every 7th one a flag), one append each.
async fn write_events(store: &impl EventStore, from: u64, n: u64) {
    for i in from..from + n {
        let event = if i % 7 == 6 {
            flagged()
        } else {
            added(i as i64)
        };
        let stream = format!("s-{}", i % 4);
        store
            .append("tally", &stream, ExpectedVersion::Any, vec![event])
            .await
            .expect("append");
    }
}

/// The model matches its checkpoint: exactly the events up to it are in `seen`, once each.
async fn assert_consistent<D: Db>(model: &D::Model) -> u64 {
    let checkpoint = D::checkpoint(model).await.unwrap_or(0);
    let seen = model_seen::<D>(model).await;
    let expected: Vec<i64> = (1..=checkpoint as i64).collect();
    assert_eq!(
        seen, expected,
        "the model's rows do not match its checkpoint {checkpoint}"
    );
    checkpoint
}

async fn model_seen<D: Db>(model: &D::Model) -> Vec<i64> {
    D::dump(model)
        .await
        .into_iter()
        .filter(|row| row.len() == 2)
        .map(|row| match row.first() {
            Some(SqlValue::Int(p)) => *p,
            other => panic!("seen.position is {other:?}"),
        })
        .collect()
}

/// How a runner process stalls: in a handler, or inside the batch's database transaction.
#[derive(Clone, Copy)]
enum Stall {
    None,
    InHandler(u64),
    InTransaction(u64),
}

fn spawn_child<D: Db>(db: &D, marker: &Path, stall: Stall, busy: bool) -> Child {
    let (stall_at, stall_in_tx_at) = match stall {
        Stall::None => (None, None),
        Stall::InHandler(n) => (Some(n), None),
        Stall::InTransaction(n) => (None, Some(n)),
    };
    let _ = std::fs::remove_file(marker);
    let _ = std::fs::remove_file(marker.with_extension("started"));
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command
        .args(["--exact", "child_runner", "--nocapture", "--test-threads=1"])
        .env("CQRS_SQL_MARKER", marker)
        .env("CQRS_SQL_BUSY", if busy { "1" } else { "0" })
        .env(
            "CQRS_SQL_STALL_AT",
            stall_at.map(|n| n.to_string()).unwrap_or_default(),
        )
        .env(
            "CQRS_SQL_STALL_IN_TX_AT",
            stall_in_tx_at.map(|n| n.to_string()).unwrap_or_default(),
        )
        .stdout(std::process::Stdio::null());
    for (key, value) in db.child_env() {
        command.env(key, value);
    }
    command.spawn().expect("spawn the runner process")
}

async fn wait_for_file(path: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the runner process ended early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "no {} after 60 s",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// SIGKILL, and make sure it was a kill.
fn kill(mut child: Child) {
    use std::os::unix::process::ExitStatusExt;
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("wait");
    assert_eq!(
        status.signal(),
        Some(9),
        "the runner was not killed: {status}"
    );
}

async fn killed_mid_batch_then_resumed_equals_a_clean_rebuild<D: Db>(db: &D) {
    const TOTAL: u64 = 200;
    let store = db.events();
    write_events(&store, 0, TOTAL).await;
    let main = db.model("main").await;
    let marker = std::env::temp_dir().join(format!("cqrs-kill-{}", uuid::Uuid::now_v7()));

    // 1. Stalls in the handler of its 25th event (batch 21..=30): killed mid-batch.
    let mut child = spawn_child(db, &marker, Stall::InHandler(25), false);
    wait_for_file(&marker, &mut child).await;
    kill(child);
    assert_eq!(
        assert_consistent::<D>(&main).await,
        20,
        "the two whole batches are in, nothing of the third"
    );

    // 2. Resumes at 21, stalls at its 17th event (position 37): the model stays at 30.
    let mut child = spawn_child(db, &marker, Stall::InHandler(17), false);
    wait_for_file(&marker, &mut child).await;
    kill(child);
    assert_eq!(assert_consistent::<D>(&main).await, 30);

    // 3. Resumes at 31; at its 5th event (position 35) the batch's transaction has run the
    //    statements of 31..=34 and stalls in a long statement: killed inside the transaction.
    let mut child = spawn_child(db, &marker, Stall::InTransaction(5), false);
    wait_for_file(&marker, &mut child).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !db.in_transaction().await {
        assert!(
            Instant::now() < deadline,
            "the runner never stalled in its transaction"
        );
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the runner process ended early: {status}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    kill(child);
    assert_eq!(
        assert_consistent::<D>(&main).await,
        30,
        "the killed transaction's statements are not in the model"
    );

    // 4. Killed at arbitrary moments while batches run heavy statements in their transaction.
    for delay_ms in [40, 90, 150] {
        let started = marker.with_extension("started");
        let mut child = spawn_child(db, &marker, Stall::None, true);
        wait_for_file(&started, &mut child).await;
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        kill(child);
        let at = assert_consistent::<D>(&main).await;
        eprintln!("killed after {delay_ms} ms: the model is consistent at position {at}");
    }

    // 5. A restarted runner finishes; the model equals a clean rebuild elsewhere.
    let runner = ProjectionRunner::new(store.clone(), main.clone())
        .with_leases(db.other_events().await)
        .batch_size(BATCH);
    let mut finished = false;
    for _ in 0..200 {
        match runner.catch_up().await {
            Ok(_) => {
                finished = true;
                break;
            }
            Err(ProjectionError::AlreadyRunning { .. }) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(other) => panic!("catch-up failed: {other}"),
        }
    }
    assert!(finished, "the killed runner's lease was never released");
    assert_eq!(assert_consistent::<D>(&main).await, TOTAL);
    let rebuilt = db.model("rebuilt").await;
    ProjectionRunner::new(store.clone(), rebuilt.clone())
        .with_leases(cqrs_runtime::store::InMemoryLeases::new())
        .rebuild()
        .await
        .expect("rebuild");
    assert_eq!(D::dump(&main).await, D::dump(&rebuilt).await);
    let _ = std::fs::remove_file(&marker);
    let _ = std::fs::remove_file(marker.with_extension("started"));
}

async fn one_runner_at_a_time_and_take_over<D: Db>(db: &D) {
    let store = db.events();
    write_events(&store, 0, 30).await;
    let head = store.head_position().await.expect("head");
    // Two handles, each with its own connections, as two processes have.
    let (model_a, model_b) = (db.model("main").await, db.model("main").await);
    let first = ProjectionRunner::new(store.clone(), model_a.clone())
        .with_leases(db.events())
        .batch_size(BATCH)
        .poll_interval(Duration::from_millis(5), Duration::from_millis(20))
        .spawn();
    first
        .wait_for(head, Duration::from_secs(20))
        .await
        .expect("the first runner is live");
    let other = db.other_events().await;
    let second = ProjectionRunner::new(other.clone(), model_b.clone())
        .with_leases(other.clone())
        .batch_size(BATCH);
    let refused = second.catch_up().await;
    assert!(
        matches!(refused, Err(ProjectionError::AlreadyRunning { .. })),
        "a second runner was not refused: {refused:?}"
    );
    first.stop().await.expect("stop");
    write_events(&store, 30, 15).await;
    let mut processed = None;
    for _ in 0..200 {
        if let Ok(n) = second.catch_up().await {
            processed = Some(n);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // It resumes from the first runner's checkpoint: only the new events.
    assert_eq!(processed, Some(15), "the second runner did not take over");
    assert_eq!(assert_consistent::<D>(&model_b).await, 45);
    assert_eq!(D::dump(&model_a).await, D::dump(&model_b).await);

    // A rebuild clears the tables in the checkpoint's transaction and replays.
    let before = D::dump(&model_b).await;
    second.rebuild().await.expect("rebuild");
    assert_eq!(D::dump(&model_b).await, before);
}

/// A projection whose statement has one value too few: a typed error, nothing committed.
#[derive(Default)]
pub struct Broken;

#[projection(name = "sql_broken", events = TallyEvent, ignore(Flagged), transaction = SqlWrites)]
impl Broken {
    #[on]
    fn added(&mut self, _: &Added, meta: &EventMeta, db: &mut SqlWrites) {
        db.execute(
            "INSERT INTO broken (stream, n) VALUES ($1, $2)",
            [meta.stream_id.into()],
        );
    }
}

impl SqlProjection for Broken {
    fn create_tables(db: &mut SqlWrites) {
        db.execute(
            "CREATE TABLE IF NOT EXISTS broken (stream TEXT, n BIGINT)",
            [],
        );
    }
    fn clear_tables(db: &mut SqlWrites) {
        db.execute("DELETE FROM broken", []);
    }
}

fn assert_parameter_count(result: Result<u64, ProjectionError>) {
    let Err(ProjectionError::Store {
        source: StoreError::Backend(source),
        ..
    }) = result
    else {
        panic!("expected a store error, got {result:?}");
    };
    let typed = source.downcast_ref::<SqlModelError>();
    assert!(
        matches!(
            typed,
            Some(SqlModelError::ParameterCount {
                expected: 2,
                given: 1,
                ..
            })
        ),
        "{source}"
    );
}

macro_rules! backend_tests {
    ($module:ident, $db:ty, $broken:ty) => {
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn killed_mid_batch_then_resumed_equals_a_clean_rebuild() {
                let Some(db) = <$db>::setup().await else {
                    return;
                };
                super::killed_mid_batch_then_resumed_equals_a_clean_rebuild(&db).await;
                db.teardown().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn one_runner_at_a_time_and_take_over() {
                let Some(db) = <$db>::setup().await else {
                    return;
                };
                super::one_runner_at_a_time_and_take_over(&db).await;
                db.teardown().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_wrong_statement_is_a_typed_error() {
                let Some(db) = <$db>::setup().await else {
                    return;
                };
                write_events(&db.events(), 0, 3).await;
                let model = <$broken>::open_for(&db).await;
                let runner = ProjectionRunner::new(db.events(), model.clone())
                    .with_leases(cqrs_runtime::store::InMemoryLeases::new());
                assert_parameter_count(runner.catch_up().await);
                assert_eq!(model.checkpoint().await.expect("checkpoint"), None);
                db.teardown().await;
            }
        }
    };
}

/// Opens the [`Broken`] model next to a backend's events.
trait OpenBroken<D> {
    async fn open_for(db: &D) -> Self;
}

#[cfg(feature = "sqlite")]
impl OpenBroken<Sqlite> for cqrs_runtime::store::SqliteReadModel<Broken> {
    async fn open_for(db: &Sqlite) -> Self {
        Self::open(db.events.path()).await.expect("open")
    }
}

#[cfg(feature = "postgres")]
impl OpenBroken<pg::Postgres> for cqrs_runtime::store::PostgresReadModel<Broken> {
    async fn open_for(db: &pg::Postgres) -> Self {
        Self::connect(&db.url, &db.schema).await.expect("connect")
    }
}

#[cfg(feature = "sqlite")]
backend_tests!(sqlite, Sqlite, cqrs_runtime::store::SqliteReadModel<Broken>);
#[cfg(feature = "postgres")]
backend_tests!(
    postgres,
    pg::Postgres,
    cqrs_runtime::store::PostgresReadModel<Broken>
);

/// PostgreSQL binds values to the placeholder's inferred type: integers narrow (checked),
/// text becomes `uuid`, `timestamptz` or `numeric`, JSON goes to `jsonb`.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_values_bind_to_inferred_types() {
    use tokio_postgres::types::ToSql;
    let Some(db) = <pg::Postgres as Db>::setup().await else {
        return;
    };
    let client = pg::client(&db.url).await.expect("client");
    let row = client
        .query_one(
            "SELECT $1::int4 + 1, $2::uuid::text, $3::timestamptz = '2024-01-02T03:04:05Z', \
             $4::numeric * 2, ($5::jsonb)->>'a', $6::int2, $7::bool",
            &[
                &SqlValue::Int(41) as &(dyn ToSql + Sync),
                &SqlValue::from(uuid::Uuid::nil()),
                &SqlValue::from("2024-01-02T03:04:05Z"),
                &SqlValue::Int(21),
                &SqlValue::Json(serde_json::json!({"a": "b"})),
                &SqlValue::Null,
                &SqlValue::Bool(true),
            ],
        )
        .await
        .expect("values bind");
    assert_eq!(row.get::<_, i32>(0), 42);
    assert_eq!(row.get::<_, String>(1), uuid::Uuid::nil().to_string());
    assert!(row.get::<_, bool>(2));
    assert_eq!(row.get::<_, SqlValue>(4), SqlValue::Text("b".into()));
    assert_eq!(row.get::<_, Option<i16>>(5), None);
    assert!(row.get::<_, bool>(6));
    let too_big = client
        .query_one("SELECT $1::int2", &[&SqlValue::Int(1 << 20)])
        .await;
    assert!(too_big.is_err(), "an out-of-range integer was narrowed");
    db.teardown().await;
}
