//! SQL read models on real SQLite files and PostgreSQL schemas: exactly once across a runner
//! process killed with SIGKILL in the middle of a batch (stalled in a handler, stalled inside
//! the batch's database transaction, and at arbitrary moments), one active runner at a time
//! with take-over, rebuilds, and typed errors.
//!
//! Races and faults: a rebuild, a catch-up and a live runner started together while events
//! are appended (shared leases, none, and on PostgreSQL the lease's session ended midway);
//! a runner that loses its lease without noticing (SQLite: its lock file removed; PostgreSQL:
//! its connection partitioned by a TCP proxy that holds every byte, and its session ended)
//! writes nothing once another runner claimed; a standby runner takes over from a runner
//! process killed mid-batch; dead letters persist with the checkpoint; a PostgreSQL runner
//! whose sessions are ended retries.
//!
//! The kill test re-executes this test binary as the runner process (the `child_runner` test,
//! which does nothing unless `CQRS_SQL_CHILD` is set). PostgreSQL tests read `DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`), create their own schemas, skip with a
//! printed reason when the server is unreachable, and fail instead when `CI=true`.
#![allow(missing_docs, reason = "test fixtures")]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cqrs_runtime::memory::InMemoryLeases;
use cqrs_runtime::projection::{
    ErrorPolicy, EventMeta, ProjectionRunner, ReadModel, RunError, RunState, RunnerHandle, Running,
    SqlProjection, SqlReadModel,
};
use cqrs_runtime::store::{
    EventStore, ExpectedVersion, LeaseStore, NewEvent, SqlBatch, SqlDialect, SqlError, SqlValue,
    StoreError,
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

#[projection(name = "sql_tallies", events = TallyEvent, transaction = SqlBatch)]
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
    child_hooks(db);
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

fn child_hooks(db: &mut SqlBatch) {
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
                use cqrs_runtime::sqlite::SqliteEventStore;
                let events = SqliteEventStore::open(var("CQRS_SQL_EVENTS"))
                    .await
                    .expect("open events");
                let tables = SqliteEventStore::open(var("CQRS_SQL_MODEL"))
                    .await
                    .expect("open model file");
                let model = SqlReadModel::<Tallies, _>::open(tables)
                    .await
                    .expect("open model");
                run_until_killed(events.clone(), model, events, &started).await;
            }
            #[cfg(feature = "postgres")]
            "postgres" => {
                use cqrs_runtime::postgres::PostgresConfig;
                let schema = var("CQRS_SQL_SCHEMA");
                let config = PostgresConfig::new(&var("CQRS_SQL_EVENTS")).expect("url");
                let events = config
                    .schema(&schema)
                    .expect("schema")
                    .open()
                    .await
                    .expect("connect events");
                let model = SqlReadModel::<Tallies, _>::open(events.clone())
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
    M: ReadModel<Projection = Tallies> + Clone,
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
            Err(RunError::AlreadyRunning { .. }) if Instant::now() < deadline => {
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
    type Model: ReadModel<Projection = Tallies> + Clone;

    /// A fresh store; `None` skips the test (with a printed reason).
    async fn setup() -> Option<Self>;
    fn events(&self) -> Self::Events;
    /// Another handle on the same events (another connection, as another process has).
    async fn other_events(&self) -> Self::Events;
    /// The model `name`: `main` is where the runner processes write, others are separate
    /// databases (files, schemas) for clean rebuilds.
    async fn model(&self, name: &str) -> Self::Model;
    /// The `main` model on a handle of its own (new connections, as another process has).
    async fn reopened_model(&self) -> Self::Model;
    /// Every row of the model, ordered.
    async fn dump(model: &Self::Model) -> Vec<Vec<SqlValue>>;
    async fn checkpoint(model: &Self::Model) -> Option<u64>;
    /// Whether a runner process is inside a model transaction, stalled in its long statement.
    async fn in_transaction(&self) -> bool;
    /// The environment of a runner process on the `main` model.
    fn child_env(&self) -> Vec<(&'static str, String)>;
    /// Leases that [`Db::lose_lease`] can take from their holder without it noticing.
    async fn losable_leases(&self) -> Self::Events;
    /// Takes the lease on `name` from its holder (of [`Db::losable_leases`]) without telling
    /// it: SQLite, the leases directory is removed; PostgreSQL, the holder's connection is
    /// partitioned (its bytes held back) and its session ended on the server.
    async fn lose_lease(&self, name: &str);
    /// Ends a partition of [`Db::lose_lease`] (held bytes flow again).
    fn heal(&self);
    /// Ends the session holding the lease on `name` (`pg_terminate_backend`); whether there
    /// was one. SQLite has no sessions: `false`.
    async fn terminate_lease(&self, name: &str) -> bool;
    async fn teardown(self);
}

const DUMP: [&str; 2] = [
    "SELECT stream, total, events, flagged FROM tallies ORDER BY stream",
    "SELECT position, stream FROM seen ORDER BY position",
];

#[cfg(feature = "sqlite")]
struct Sqlite {
    dir: PathBuf,
    events: cqrs_runtime::sqlite::SqliteEventStore,
}

#[cfg(feature = "sqlite")]
impl Db for Sqlite {
    type Events = cqrs_runtime::sqlite::SqliteEventStore;
    type Model = SqlReadModel<Tallies, cqrs_runtime::sqlite::SqliteEventStore>;

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
        let tables = match name {
            "main" => self.events.clone(),
            other => Self::Events::open(self.dir.join(format!("{other}.sqlite")))
                .await
                .expect("open model file"),
        };
        Self::Model::open(tables).await.expect("open model")
    }
    async fn reopened_model(&self) -> Self::Model {
        let tables = self.other_events().await;
        Self::Model::open(tables).await.expect("reopen model")
    }
    async fn dump(model: &Self::Model) -> Vec<Vec<SqlValue>> {
        let mut rows = Vec::new();
        for sql in DUMP {
            rows.extend(model.fetch_all(sql, &[]).await.expect("dump"));
        }
        rows
    }
    async fn checkpoint(model: &Self::Model) -> Option<u64> {
        let checkpoint = ReadModel::checkpoint(model).await.expect("checkpoint");
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
    async fn losable_leases(&self) -> Self::Events {
        self.other_events().await
    }
    async fn lose_lease(&self, _name: &str) {
        // `<database>.<events table>.leases/`: its lock files go, and with them the locks'
        // exclusion (a new file at the same path locks on its own).
        let file = self.events.path().file_name().expect("file name");
        let prefix = format!("{}.", file.to_string_lossy());
        for entry in std::fs::read_dir(&self.dir).expect("read dir") {
            let entry = entry.expect("dir entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) && name.ends_with(".leases") {
                std::fs::remove_dir_all(entry.path()).expect("remove the leases");
            }
        }
    }
    fn heal(&self) {}
    async fn terminate_lease(&self, _name: &str) -> bool {
        false
    }
    async fn teardown(self) {
        drop(self.events);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(feature = "postgres")]
mod pg {
    use super::*;
    use cqrs_runtime::postgres::{PostgresConfig, PostgresEventStore};

    pub struct Postgres {
        pub url: String,
        pub schema: String,
        pub events: PostgresEventStore,
        /// The proxy that [`Db::losable_leases`] connect through.
        proxy: std::sync::Mutex<Option<Proxy>>,
    }

    /// A TCP relay to the server that can hold back every byte (a network partition: no
    /// reset, no end of stream, nothing arrives) and let them through again.
    pub struct Proxy {
        port: u16,
        frozen: tokio::sync::watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Proxy {
        async fn start(upstream: (String, u16)) -> Self {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind the proxy");
            let port = listener.local_addr().expect("proxy address").port();
            let (frozen, watch) = tokio::sync::watch::channel(false);
            let task = tokio::spawn(async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    let Ok(outbound) = tokio::net::TcpStream::connect(upstream.clone()).await
                    else {
                        continue;
                    };
                    let (from_client, to_client) = inbound.into_split();
                    let (from_server, to_server) = outbound.into_split();
                    tokio::spawn(relay(from_client, to_server, watch.clone()));
                    tokio::spawn(relay(from_server, to_client, watch.clone()));
                }
            });
            Self { port, frozen, task }
        }

        fn freeze(&self, frozen: bool) {
            self.frozen.send_replace(frozen);
        }
    }

    impl Drop for Proxy {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    async fn relay(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        mut frozen: tokio::sync::watch::Receiver<bool>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buffer).await {
                Ok(0) | Err(_) => 0,
                Ok(n) => n,
            };
            // Partitioned: hold the bytes (and the end of the stream) until healed.
            while *frozen.borrow_and_update() {
                if frozen.changed().await.is_err() {
                    return;
                }
            }
            if n == 0 {
                let _ = to.shutdown().await;
                return;
            }
            if to.write_all(&buffer[..n]).await.is_err() {
                return;
            }
        }
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
            let config = PostgresConfig::new(&self.url).expect("url");
            let config = config.schema(&self.schema).expect("schema");
            config.open().await.expect("connect events")
        }
    }

    impl Db for Postgres {
        type Events = PostgresEventStore;
        type Model = SqlReadModel<Tallies, PostgresEventStore>;

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
            let config = PostgresConfig::new(&url).expect("DATABASE_URL parses");
            let config = config.schema(&schema).expect("valid schema name");
            let events = config.open().await.expect("connect and migrate");
            Some(Self {
                url,
                schema,
                events,
                proxy: std::sync::Mutex::new(None),
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
            let tables = match name {
                "main" => self.events.clone(),
                other => {
                    let config = PostgresConfig::new(&self.url).expect("url");
                    let schema = format!("{}_{other}", self.schema);
                    let config = config.schema(&schema).expect("schema");
                    config.open().await.expect("connect model schema")
                }
            };
            Self::Model::open(tables).await.expect("connect model")
        }
        async fn reopened_model(&self) -> Self::Model {
            let tables = self.connect_events().await;
            Self::Model::open(tables).await.expect("reconnect model")
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
        async fn losable_leases(&self) -> Self::Events {
            let pg: tokio_postgres::Config = self.url.parse().expect("DATABASE_URL parses");
            let host = match pg.get_hosts().first() {
                Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
                other => panic!("the proxy relays TCP only, not {other:?}"),
            };
            let port = pg.get_ports().first().copied().unwrap_or(5432);
            let proxy = Proxy::start((host, port)).await;
            let mut url = format!("host=127.0.0.1 port={}", proxy.port);
            if let Some(user) = pg.get_user() {
                url.push_str(&format!(" user={user}"));
            }
            if let Some(password) = pg.get_password() {
                let password = String::from_utf8_lossy(password)
                    .replace('\\', "\\\\")
                    .replace('\'', "\\'");
                url.push_str(&format!(" password='{password}'"));
            }
            if let Some(dbname) = pg.get_dbname() {
                url.push_str(&format!(" dbname={dbname}"));
            }
            *self.proxy.lock().expect("proxy") = Some(proxy);
            let config = PostgresConfig::new(&url).expect("proxy url");
            let config = config.schema(&self.schema).expect("schema");
            config.open().await.expect("connect through the proxy")
        }
        async fn lose_lease(&self, name: &str) {
            if let Some(proxy) = self.proxy.lock().expect("proxy").as_ref() {
                proxy.freeze(true);
            }
            assert!(
                self.terminate_lease(name).await,
                "nobody holds the lease on {name}"
            );
            // The server released the lock with the session.
            let deadline = Instant::now() + Duration::from_secs(10);
            while self
                .events
                .lease_holder(name)
                .await
                .expect("pg_locks")
                .is_some()
            {
                assert!(Instant::now() < deadline, "the lock outlived its session");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        fn heal(&self) {
            if let Some(proxy) = self.proxy.lock().expect("proxy").as_ref() {
                proxy.freeze(false);
            }
        }
        async fn terminate_lease(&self, name: &str) -> bool {
            let Some(pid) = self.events.lease_holder(name).await.expect("pg_locks") else {
                return false;
            };
            let client = client(&self.url).await.expect("client");
            client
                .query_one("SELECT pg_terminate_backend($1)", &[&pid])
                .await
                .expect("pg_terminate_backend")
                .get::<_, bool>(0)
        }
        async fn teardown(self) {
            drop(self.proxy);
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
            Err(RunError::AlreadyRunning { .. }) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(other) => panic!("catch-up failed: {other}"),
        }
    }
    assert!(finished, "the killed runner's lease was never released");
    assert_eq!(assert_consistent::<D>(&main).await, TOTAL);
    let rebuilt = db.model("rebuilt").await;
    ProjectionRunner::new(store.clone(), rebuilt.clone())
        .with_leases(InMemoryLeases::new())
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
    let head = store.head().await.expect("head").position;
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
        matches!(refused, Err(RunError::AlreadyRunning { .. })),
        "a second runner was not refused: {refused:?}"
    );
    first.stop().await.expect("stop");
    write_events(&store, 30, 15).await;
    // (PostgreSQL's log may hold new events back while a transaction is open elsewhere in
    // the server: catch up until the second runner gets to them.)
    let mut processed = 0;
    for _ in 0..600 {
        if let Ok(n) = second.catch_up().await {
            processed += n;
            if D::checkpoint(&model_b).await == Some(45) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // It resumes from the first runner's checkpoint: only the new events.
    assert_eq!(processed, 15, "the second runner did not take over");
    assert_eq!(assert_consistent::<D>(&model_b).await, 45);
    assert_eq!(D::dump(&model_a).await, D::dump(&model_b).await);

    // A rebuild clears the tables in the checkpoint's transaction and replays.
    let before = D::dump(&model_b).await;
    second.rebuild().await.expect("rebuild");
    assert_eq!(D::dump(&model_b).await, before);
}

// ---- lost leases, races and take-over ---------------------------------------------------------

const NAME: &str = "sql_tallies";

/// The stored checkpoint's fence: it changes with every claim.
async fn fence<D: Db>(model: &D::Model) -> u64 {
    ReadModel::checkpoint(model)
        .await
        .expect("checkpoint")
        .map_or(0, |c| c.fence)
}

async fn head(store: &impl EventStore) -> u64 {
    store.head().await.expect("head").position
}

async fn wait_for_state(handle: &RunnerHandle, wanted: RunState, within: Duration) {
    let deadline = Instant::now() + within;
    while handle.state() != wanted {
        assert!(
            Instant::now() < deadline,
            "the runner is {:?}, not {wanted:?}, after {within:?}",
            handle.state()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The model holds every event of the log once, and equals a clean rebuild elsewhere.
async fn assert_equals_a_clean_rebuild<D: Db>(db: &D, model: &D::Model) {
    let store = db.events();
    let head = head(&store).await;
    assert_eq!(
        assert_consistent::<D>(model).await,
        head,
        "the model is not at the head"
    );
    let rebuilt = db.model("rebuilt").await;
    let runner = ProjectionRunner::new(store, rebuilt.clone()).with_leases(InMemoryLeases::new());
    runner.rebuild().await.expect("clean rebuild");
    catch_up_to::<D, _>(&runner, &rebuilt, head).await;
    assert_eq!(
        D::dump(model).await,
        D::dump(&rebuilt).await,
        "the model differs from a clean rebuild"
    );
}

/// Catches up until the model's checkpoint reaches `head`, waiting for a lease holder that is
/// going away. (PostgreSQL's log holds back events committed after a transaction that is
/// still open anywhere in the server, other tests' included.)
async fn catch_up_to<D: Db, L: LeaseStore>(
    runner: &ProjectionRunner<D::Events, D::Model, L>,
    model: &D::Model,
    head: u64,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match runner.catch_up().await {
            Ok(_) if D::checkpoint(model).await.unwrap_or(0) >= head => return,
            Ok(_) | Err(RunError::AlreadyRunning { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(_) => panic!("the catch-up never reached position {head}"),
            Err(other) => panic!("the catch-up failed: {other}"),
        }
    }
}

/// Catches up to the head with the shared leases.
async fn final_catch_up<D: Db>(db: &D, model: &D::Model) {
    let runner = ProjectionRunner::new(db.events(), model.clone())
        .with_leases(db.other_events().await)
        .batch_size(BATCH);
    catch_up_to::<D, _>(&runner, model, head(&db.events()).await).await;
}

/// A live runner loses its lease without noticing (SQLite: its lock file is removed;
/// PostgreSQL: its connection is partitioned and its session ended on the server), and a
/// second runner takes the lease and claims the checkpoint. The first runner's next commit is
/// fenced; it cannot prove its lease, so it stops (or, standing by, waits for the lease)
/// instead of claiming again: the checkpoint's fence stays the second runner's, and the second
/// runner is never fenced.
async fn a_runner_that_lost_its_lease_writes_nothing<D: Db>(db: &D, standby: bool) {
    let store = db.events();
    write_events(&store, 0, 30).await;
    let main = db.model("main").await;
    let victim = ProjectionRunner::new(store.clone(), db.model("main").await)
        .with_leases(db.losable_leases().await)
        .batch_size(BATCH)
        .poll_interval(Duration::from_millis(5), Duration::from_millis(20));
    let victim = if standby { victim.standby() } else { victim }.spawn();
    victim
        .wait_for(head(&store).await, Duration::from_secs(20))
        .await
        .expect("the first runner is live");

    db.lose_lease(NAME).await;
    let taker = ProjectionRunner::new(store.clone(), db.model("main").await)
        .with_leases(db.other_events().await)
        .batch_size(BATCH)
        .poll_interval(Duration::from_millis(5), Duration::from_millis(20))
        .standby()
        .spawn();
    wait_for_state(taker.handle(), RunState::Live, Duration::from_secs(20)).await;
    let taken = fence::<D>(&main).await;

    // New events: the first runner reads them too, and its commit is fenced.
    write_events(&store, 30, 30).await;
    let at = head(&store).await;
    let victim = if standby {
        wait_for_state(
            victim.handle(),
            RunState::StandingBy,
            Duration::from_secs(30),
        )
        .await;
        Some(victim)
    } else {
        let ended = tokio::time::timeout(Duration::from_secs(30), victim.join())
            .await
            .expect("the runner that lost its lease is still running");
        assert!(
            matches!(ended, Err(RunError::Superseded { .. })),
            "the runner that lost its lease ended with {ended:?}"
        );
        None
    };
    taker
        .wait_for(at, Duration::from_secs(30))
        .await
        .expect("the runner holding the lease goes on");
    assert_eq!(
        fence::<D>(&main).await,
        taken,
        "the runner that lost its lease claimed the checkpoint again"
    );
    let state = taker.handle().state();
    assert!(
        matches!(state, RunState::Live | RunState::CatchingUp),
        "the lease holder is {state:?}"
    );
    taker
        .stop()
        .await
        .expect("the lease holder was never fenced");

    if let Some(victim) = victim {
        // The partition ends; the lease is free: the first runner takes over again.
        db.heal();
        write_events(&store, 60, 10).await;
        let at = head(&store).await;
        victim
            .wait_for(at, Duration::from_secs(30))
            .await
            .expect("the standby runner takes the lease back");
        victim.stop().await.expect("stop");
    }
    db.heal();
    assert_equals_a_clean_rebuild(db, &main).await;
}

/// How the racing runners are leased.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leasing {
    /// One lease store for all (separate handles, as separate processes have).
    Shared,
    /// None shared: each runner has an in-memory lease table of its own (as runners of
    /// separate processes configured without a lease store).
    Unshared,
    /// Shared, and midway the session holding the lease is ended on the server.
    Terminated,
}

/// Runs `attempt` until it is not refused for a held lease (or 30 s pass).
async fn until_leased<F, Fut>(mut attempt: F) -> Result<u64, RunError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64, RunError>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match attempt().await {
            Err(RunError::AlreadyRunning { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            other => return other,
        }
    }
}

/// A rebuild, a catch-up and a live runner (standing by) of one SQL read model start together
/// while events are appended, five rounds. However they interleave, each event is applied
/// once, nothing appended is lost, and after a final catch-up the model equals a clean
/// rebuild. With shared leases nobody is fenced; without, a fenced runner stops; with the
/// lease's session ended midway, its holder stops writing.
async fn rebuild_catch_up_and_live_race<D: Db>(db: &D, leasing: Leasing) {
    const ROUNDS: u64 = 5;
    const PER_ROUND: u64 = 80;
    let store = db.events();
    let main = db.model("main").await;
    let (mut superseded, mut terminated) = (0, 0);
    for round in 0..ROUNDS {
        let leases = || async {
            match leasing {
                Leasing::Unshared => Leases::Memory(InMemoryLeases::new()),
                Leasing::Shared | Leasing::Terminated => Leases::Db(db.other_events().await),
            }
        };
        let runner = |leases: Leases<D::Events>, model: D::Model| {
            let runner = ProjectionRunner::new(store.clone(), model)
                .batch_size(BATCH)
                .poll_interval(Duration::from_millis(2), Duration::from_millis(10));
            (runner, leases)
        };
        let writer = db.other_events().await;
        let from = round * PER_ROUND;
        let appending = tokio::spawn(async move {
            for i in from..from + PER_ROUND {
                write_events(&writer, i, 1).await;
                if i % 8 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        });

        let (live, live_leases) = runner(leases().await, db.model("main").await);
        let live = live_leases.spawn_standby(live);
        let (rebuild, rebuild_leases) = runner(leases().await, db.model("main").await);
        let rebuilding =
            tokio::spawn(async move { rebuild_leases.run(rebuild, Role::Rebuild).await });
        let (catch_up, catch_up_leases) = runner(leases().await, db.model("main").await);
        let catching_up =
            tokio::spawn(async move { catch_up_leases.run(catch_up, Role::CatchUp).await });

        if leasing == Leasing::Terminated {
            // Midway, three times: end the session of whoever holds the lease then.
            for pause in [10 + 15 * round, 15, 25] {
                tokio::time::sleep(Duration::from_millis(pause)).await;
                let deadline = Instant::now() + Duration::from_secs(10);
                while !db.terminate_lease(NAME).await {
                    assert!(Instant::now() < deadline, "nobody took the lease");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                terminated += 1;
            }
        } else {
            // Midway the live runner stops, freeing a shared lease for the others.
            tokio::time::sleep(Duration::from_millis(10 + 20 * round)).await;
        }
        let live = live.stop().await;
        appending.await.expect("appender");
        let outcomes = [
            ("live", live.map(|()| 0)),
            ("rebuild", rebuilding.await.expect("rebuild task")),
            ("catch-up", catching_up.await.expect("catch-up task")),
        ];
        for (role, outcome) in outcomes {
            match outcome {
                Ok(_) => {}
                Err(RunError::Superseded { .. }) if leasing != Leasing::Shared => superseded += 1,
                Err(other) => panic!("round {round}: the {role} runner failed: {other}"),
            }
        }

        final_catch_up(db, &main).await;
        let at = assert_consistent::<D>(&main).await;
        assert_eq!(at, head(&store).await, "round {round}: events are missing");
        assert_equals_a_clean_rebuild(db, &main).await;
    }
    eprintln!(
        "{leasing:?}: {superseded} runner(s) stopped as superseded, {terminated} lease session(s) \
         ended, over {ROUNDS} rounds"
    );
}

enum Role {
    Rebuild,
    CatchUp,
}

/// The racing runners' leases: the database's, or an in-memory table of their own.
enum Leases<E> {
    Db(E),
    Memory(InMemoryLeases),
}

impl<E: LeaseStore> Leases<E> {
    async fn run<S: EventStore, M: ReadModel<Projection = Tallies>>(
        self,
        runner: ProjectionRunner<S, M>,
        role: Role,
    ) -> Result<u64, RunError> {
        async fn go<S: EventStore, M: ReadModel<Projection = Tallies>, L: LeaseStore>(
            runner: ProjectionRunner<S, M, L>,
            role: Role,
        ) -> Result<u64, RunError> {
            until_leased(|| async {
                match role {
                    Role::Rebuild => runner.rebuild().await,
                    Role::CatchUp => runner.catch_up().await,
                }
            })
            .await
        }
        match self {
            Leases::Db(leases) => go(runner.with_leases(leases), role).await,
            Leases::Memory(leases) => go(runner.with_leases(leases), role).await,
        }
    }

    fn spawn_standby<S: EventStore, M: ReadModel<Projection = Tallies>>(
        self,
        runner: ProjectionRunner<S, M>,
    ) -> Running {
        match self {
            Leases::Db(leases) => runner.with_leases(leases).standby().spawn(),
            Leases::Memory(leases) => runner.with_leases(leases).standby().spawn(),
        }
    }
}

/// A runner process holds the lease and is killed with SIGKILL in the middle of a batch; a
/// runner standing by in this process takes over, and after catching up the model equals a
/// clean rebuild.
async fn a_standby_takes_over_from_a_killed_runner<D: Db>(db: &D) {
    let store = db.events();
    write_events(&store, 0, 120).await;
    let main = db.model("main").await;
    let marker = std::env::temp_dir().join(format!("cqrs-standby-{}", uuid::Uuid::now_v7()));

    // The runner process stalls in the handler of its 45th event (batch 41..=50).
    let mut child = spawn_child(db, &marker, Stall::InHandler(45), false);
    wait_for_file(&marker, &mut child).await;
    let standby = ProjectionRunner::new(store.clone(), db.model("main").await)
        .with_leases(db.other_events().await)
        .batch_size(BATCH)
        .poll_interval(Duration::from_millis(5), Duration::from_millis(20))
        .standby()
        .spawn();
    wait_for_state(
        standby.handle(),
        RunState::StandingBy,
        Duration::from_secs(10),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        standby.handle().state(),
        RunState::StandingBy,
        "the standby runner did not wait for the lease"
    );
    let fence_before = fence::<D>(&main).await;

    kill(child);
    assert_eq!(
        assert_consistent::<D>(&main).await,
        40,
        "four whole batches are in, nothing of the fifth"
    );
    write_events(&store, 120, 40).await;
    standby
        .wait_for(head(&store).await, Duration::from_secs(30))
        .await
        .expect("the standby runner took over");
    assert!(
        fence::<D>(&main).await > fence_before,
        "the standby runner took over without claiming"
    );
    standby.stop().await.expect("stop");
    assert_equals_a_clean_rebuild(db, &main).await;
    let _ = std::fs::remove_file(&marker);
    let _ = std::fs::remove_file(marker.with_extension("started"));
}

/// An event the projection cannot take (`amount` is no integer) under
/// [`ErrorPolicy::SkipAndRecord`]: set aside as a dead letter in the model's database, with
/// the checkpoint that moved past it, so that a runner on a fresh handle (another process)
/// finds it; the other events are in the model once each.
async fn dead_letters_are_persisted_with_the_checkpoint<D: Db>(db: &D) {
    let store = db.events();
    write_events(&store, 0, 4).await;
    let poison = NewEvent::new(
        "sql_added",
        1,
        br#"{"amount":"four"}"#.to_vec(),
        Metadata::new(),
    );
    store
        .append("tally", "s-poison", ExpectedVersion::Any, vec![poison])
        .await
        .expect("append");
    write_events(&store, 4, 5).await;
    let first = ProjectionRunner::new(store.clone(), db.model("main").await)
        .with_leases(InMemoryLeases::new())
        .error_policy(ErrorPolicy::SkipAndRecord)
        .batch_size(3);
    let deadline = Instant::now() + Duration::from_secs(30);
    let main = db.model("main").await;
    while D::checkpoint(&main).await.unwrap_or(0) < 10 {
        assert!(Instant::now() < deadline, "the runner never got through");
        first.catch_up().await.expect("skips the poison event");
    }
    assert_eq!(first.handle().dead_letters(), 1);
    drop(first);

    let fresh = db.reopened_model().await;
    let restarted = ProjectionRunner::new(db.other_events().await, fresh.clone())
        .with_leases(InMemoryLeases::new());
    let letters = restarted.dead_letters().await.expect("dead letters");
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = letters.first().expect("one");
    assert_eq!(
        (letter.cursor.position, letter.stream_id.as_str()),
        (5, "s-poison")
    );
    assert!(letter.error.contains("four"), "{}", letter.error);
    assert_eq!(
        model_seen::<D>(&fresh).await,
        vec![1, 2, 3, 4, 6, 7, 8, 9, 10],
        "every other event once"
    );
    assert_eq!(restarted.catch_up().await.expect("nothing new"), 0);
}

/// A live runner whose PostgreSQL sessions (its source's and its model's) are ended on the
/// server, again and again while events are appended: each failure is transient, retried with
/// back-off on a new connection, and the model ends equal to a clean rebuild, each event once.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_transient_failures_are_retried() {
    use cqrs_runtime::postgres::PostgresConfig;
    use cqrs_runtime::processing::Backoff;
    let Some(db) = <pg::Postgres as Db>::setup().await else {
        return;
    };
    let app = format!("cqrs_faults_{}", uuid::Uuid::now_v7().simple());
    let mut pg: tokio_postgres::Config = db.url.parse().expect("url");
    pg.application_name(&app);
    let url = format!(
        "host=127.0.0.1 port={} user={} dbname={} application_name={app}",
        pg.get_ports().first().copied().unwrap_or(5432),
        pg.get_user().unwrap_or("postgres"),
        pg.get_dbname().unwrap_or("test"),
    );
    let faulty = PostgresConfig::new(&url)
        .expect("url")
        .schema(&db.schema)
        .expect("schema")
        .open()
        .await
        .expect("connect");
    let model = SqlReadModel::<Tallies, _>::open(faulty.clone())
        .await
        .expect("model");
    let store = db.events();
    write_events(&store, 0, 40).await;
    let runner = ProjectionRunner::new(faulty.clone(), model.clone())
        .with_leases(db.other_events().await)
        .batch_size(BATCH)
        .poll_interval(Duration::from_millis(2), Duration::from_millis(10))
        .retry(Backoff {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(50),
            attempts: None,
        })
        .spawn();
    let admin = pg::client(&db.url).await.expect("client");
    let mut ended = 0;
    let mut retried = false;
    for round in 0..8u64 {
        write_events(&store, 40 + round * 20, 20).await;
        ended += admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE application_name = $1",
                &[&app],
            )
            .await
            .expect("pg_terminate_backend")
            .get::<_, i64>(0);
        let deadline = Instant::now() + Duration::from_millis(100);
        while Instant::now() < deadline {
            retried |= matches!(runner.handle().state(), RunState::Retrying(_));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let at = head(&store).await;
    runner
        .wait_for(at, Duration::from_secs(30))
        .await
        .expect("the runner outlives its sessions");
    runner
        .stop()
        .await
        .expect("the runner was never stopped by a transient failure");
    assert!(ended >= 8, "only {ended} sessions were ended");
    assert!(retried, "the runner never reported a retry");
    eprintln!("{ended} sessions ended; the runner retried and caught up");
    assert_equals_a_clean_rebuild(&db, &model).await;
    db.teardown().await;
}

/// A projection whose statement has one value too few: a typed error, nothing committed.
#[derive(Default)]
pub struct Broken;

#[projection(name = "sql_broken", events = TallyEvent, ignore(Flagged), transaction = SqlBatch)]
impl Broken {
    #[on]
    fn added(&mut self, _: &Added, meta: &EventMeta<'_>, db: &mut SqlBatch) {
        db.execute(
            "INSERT INTO broken (stream, n) VALUES ($1, $2)",
            [meta.stream_id.into()],
        );
    }
}

impl SqlProjection for Broken {
    fn create_tables(db: &mut SqlBatch) {
        db.execute(
            "CREATE TABLE IF NOT EXISTS broken (stream TEXT, n BIGINT)",
            [],
        );
    }
    fn clear_tables(db: &mut SqlBatch) {
        db.execute("DELETE FROM broken", []);
    }
}

fn assert_parameter_count(result: Result<u64, RunError>) {
    let Err(RunError::Store {
        source: StoreError::Backend(source),
        ..
    }) = result
    else {
        panic!("expected a store error, got {result:?}");
    };
    let typed = source.downcast_ref::<SqlError>();
    assert!(
        matches!(typed, Some(SqlError::Placeholders { problem, .. }) if problem.contains("uses $2, but 1 value(s)")),
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
            async fn a_runner_that_lost_its_lease_writes_nothing() {
                let Some(db) = <$db>::setup().await else {
                    return;
                };
                super::a_runner_that_lost_its_lease_writes_nothing(&db, false).await;
                db.teardown().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_standby_that_lost_its_lease_writes_nothing() {
                let Some(db) = <$db>::setup().await else {
                    return;
                };
                super::a_runner_that_lost_its_lease_writes_nothing(&db, true).await;
                db.teardown().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn races_with_shared_leases() {
                let Some(db) = <$db>::setup().await else {
                    return;
                };
                super::rebuild_catch_up_and_live_race(&db, Leasing::Shared).await;
                db.teardown().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn races_without_shared_leases() {
                let Some(db) = <$db>::setup().await else {
                    return;
                };
                super::rebuild_catch_up_and_live_race(&db, Leasing::Unshared).await;
                db.teardown().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_standby_takes_over_from_a_killed_runner() {
                let Some(db) = <$db>::setup().await else {
                    return;
                };
                super::a_standby_takes_over_from_a_killed_runner(&db).await;
                db.teardown().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn dead_letters_are_persisted_with_the_checkpoint() {
                let Some(db) = <$db>::setup().await else {
                    return;
                };
                super::dead_letters_are_persisted_with_the_checkpoint(&db).await;
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
                    .with_leases(InMemoryLeases::new());
                // PostgreSQL's log may hold the events back while a transaction is open
                // elsewhere in the server (the kill test's stalled one): read until they come.
                let deadline = Instant::now() + Duration::from_secs(30);
                let result = loop {
                    match runner.catch_up().await {
                        Ok(0) if Instant::now() < deadline => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        other => break other,
                    }
                };
                assert_parameter_count(result);
                let checkpoint = ReadModel::checkpoint(&model).await.expect("checkpoint");
                assert_eq!(
                    checkpoint.map_or(0, |c| c.cursor.position),
                    0,
                    "nothing committed"
                );
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
impl OpenBroken<Sqlite> for SqlReadModel<Broken, cqrs_runtime::sqlite::SqliteEventStore> {
    async fn open_for(db: &Sqlite) -> Self {
        Self::open(db.events.clone()).await.expect("open")
    }
}

#[cfg(feature = "postgres")]
impl OpenBroken<pg::Postgres> for SqlReadModel<Broken, cqrs_runtime::postgres::PostgresEventStore> {
    async fn open_for(db: &pg::Postgres) -> Self {
        Self::open(db.events.clone()).await.expect("connect")
    }
}

#[cfg(feature = "sqlite")]
backend_tests!(
    sqlite,
    Sqlite,
    SqlReadModel<Broken, cqrs_runtime::sqlite::SqliteEventStore>
);
#[cfg(feature = "postgres")]
backend_tests!(
    postgres,
    pg::Postgres,
    SqlReadModel<Broken, cqrs_runtime::postgres::PostgresEventStore>
);

/// The race of [`rebuild_catch_up_and_live_race`] with the lease holder's session ended
/// (`pg_terminate_backend`) midway, every round.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_races_with_the_lease_session_terminated() {
    let Some(db) = <pg::Postgres as Db>::setup().await else {
        return;
    };
    rebuild_catch_up_and_live_race(&db, Leasing::Terminated).await;
    db.teardown().await;
}

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
