//! A process manager killed with SIGKILL over and over while orders come in, are paid and are
//! cancelled, on a SQLite file and on a PostgreSQL schema: after every restart each command's
//! effect exists once and each payment deadline fires once, judged from the event store alone.
//!
//! The test re-executes this test binary as the runner process (the `child_runner` test, which
//! does nothing unless `CQRS_KILL_CHILD` is set). The child runs [`KillFulfilment`] live under
//! a standby runner holding the store's lease; the parent places orders (more than the shelves
//! hold), pays and cancels some, and kills the child:
//!
//! - **between command dispatch and checkpoint**: the child stalls in an event handler right
//!   after its commands took effect (`CQRS_KILL_STALL_EVENT=n`: the n-th such handler), and
//!   writes a marker naming them;
//! - **inside the commit's transaction**: the n-th reservation (`CQRS_KILL_STALL_COMMIT=n`)
//!   saves a state with `"stall":true`, which a trigger the parent put on the instance table
//!   turns into a statement that runs for seconds (PostgreSQL: `pg_sleep`; SQLite: a cross
//!   join, holding the write lock); the parent sees it running (`pg_stat_activity`; SQLite's
//!   write lock is taken) and kills the child there;
//! - **while a deadline fires**: the child stalls in the deadline handler after its
//!   cancellation and release took effect (`CQRS_KILL_STALL_DEADLINE=n`);
//! - at random moments.
//!
//! Every dispatch is appended to a log file (process id, command id, outcome), so the test
//! proves that the commands of each deliberately interrupted handler were sent again by the
//! next process and found already applied.
//!
//! A rejection is an outcome too: a reservation rejected for want of stock, compensated by a
//! cancellation, and redelivered after a kill once stock was released in between, is rejected
//! again (the decision is recorded and re-taken against the stock as it was), so the order
//! ends cancelled "out of stock" once and never reserved.
//!
//! `CQRS_KILL_SEED` replays a run (the seed is printed). PostgreSQL tests read `DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`), create their own schema, skip with a
//! printed reason when the server is unreachable, and fail instead when `CI=true`.
#![allow(missing_docs, reason = "test fixtures")]

mod shop;

use std::collections::{BTreeMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cqrs_runtime::aggregate::{Aggregate, Command};
use cqrs_runtime::error::CommandError;
use cqrs_runtime::event::{DecodeError, Decoded};
use cqrs_runtime::prelude::*;
use cqrs_runtime::processing::Runner;
use cqrs_runtime::processing::reaction::{
    Deadline, Dispatch, DueDeadline, HandledBy, ProcessContext, ProcessManager, ReactionError,
    ReactionStore, Role, Route, Sent, process_manager,
};
use cqrs_runtime::repository::DECISIONS_STREAM_TYPE;
use cqrs_runtime::store::{CheckpointStore, Cursor, LeaseStore, SqlBackend, SqlValue, StoredEvent};
use serde::{Deserialize, Serialize};
use shop::*;
use uuid::Uuid;

// ---- the process manager under test ---------------------------------------------------------

/// The reaction's name: its checkpoint, lease, instances and deadlines.
const NAME: &str = "kill_fulfilment";

/// How long an order may stay unpaid: short, so that deadlines fire during the test.
const WINDOW: chrono::Duration = chrono::Duration::milliseconds(400);

/// Orders come in groups, one sku per group: a group's orders ask for more than its shelf
/// ([`SHELF`]) holds, so that some are out of stock while paid orders keep theirs.
const GROUP: usize = 8;

/// `o-<group>-<n>` is served from `sku-<group>`.
fn sku_of(order: &str) -> String {
    let group = order.split('-').nth(1).unwrap_or("?");
    format!("sku-{group}")
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PaymentDue {
    pub order: String,
}

impl Deadline for PaymentDue {
    const NAME: &'static str = "kill_payment_due";
}

/// `KillFulfilment` schedules `PaymentDue` (and takes it in `on_deadline`).
impl HandledBy<KillFulfilment> for PaymentDue {}

/// [`Fulfilment`] with a short payment window, one sku per group of orders, a deadline that
/// gives way to a customer's payment or cancellation, and the child's hooks: a dispatch log
/// and the stalls the parent kills it in.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct KillFulfilment {
    pub order: String,
    pub reserved: u32,
    /// Set (in a child told to) on the state whose save should stall inside the commit.
    #[serde(default, skip_serializing_if = "is_false")]
    pub stall: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl<S: EventStore> ProcessManager<Shop<S>> for KillFulfilment {
    const NAME: &'static str = NAME;
    const VERSION: u32 = 1;
    const HANDLED: &'static [&'static str] = &["order_placed", "order_paid", "order_cancelled"];
    const DEADLINES: &'static [&'static str] = &["kill_payment_due"];

    fn route(event: &StoredEvent) -> Result<Route, DecodeError> {
        if event.stream_type != "order" {
            return Ok(Route::Foreign);
        }
        let role = match event.event_type.as_str() {
            "order_placed" => Role::Start,
            "order_paid" | "order_cancelled" => Role::End,
            _ => return Ok(Route::Ignored),
        };
        Ok(Route::Handle {
            key: event.stream_id.clone(),
            role,
        })
    }

    async fn handle(
        &mut self,
        event: &StoredEvent,
        ctx: &mut ProcessContext<'_, Shop<S>, Self>,
    ) -> Result<(), ReactionError> {
        let decoded = OrderEvent::decode(&event.event_type, event.event_version, &event.payload)?;
        let Decoded::One(event) = decoded else {
            return Ok(());
        };
        let mut sends = Sends::new("event");
        match event {
            OrderEvent::Placed(placed) => {
                self.order = placed.order.clone();
                let reserve = Reserve {
                    sku: sku_of(&placed.order),
                    order: placed.order.clone(),
                    qty: placed.qty,
                };
                match sends.send(ctx, reserve).await {
                    Ok(_) => {
                        self.reserved = placed.qty;
                        let due = ctx.now() + WINDOW;
                        ctx.schedule(
                            due,
                            &PaymentDue {
                                order: placed.order,
                            },
                        )?;
                        self.stall = child::stall_in_commit(&sends);
                    }
                    Err(CommandError::Rejected(StockError::OutOfStock { .. })) => {
                        let cancel = CancelOrder {
                            order: placed.order,
                            reason: "out of stock".into(),
                        };
                        sends.send(ctx, cancel).await?;
                        ctx.end();
                    }
                    Err(other) => return Err(other.into()),
                }
            }
            OrderEvent::Paid(_) => ctx.cancel::<PaymentDue>(),
            OrderEvent::Cancelled(_) => {
                ctx.cancel::<PaymentDue>();
                self.release(ctx, &mut sends).await?;
            }
        }
        child::after(Stall::Event, &sends).await;
        Ok(())
    }

    async fn on_deadline(
        &mut self,
        deadline: &DueDeadline,
        ctx: &mut ProcessContext<'_, Shop<S>, Self>,
    ) -> Result<(), ReactionError> {
        let due: PaymentDue = deadline.decode()?;
        let mut sends = Sends::new("deadline");
        let cancel = CancelOrder {
            order: due.order,
            reason: "unpaid".into(),
        };
        match sends.send(ctx, cancel).await {
            // Paid or cancelled by the customer in the meantime: that event ends the instance
            // (and releases the stock) when it comes by.
            Err(CommandError::Rejected(OrderError::Paid | OrderError::Cancelled)) => {
                return Ok(());
            }
            other => other?,
        };
        self.release(ctx, &mut sends).await?;
        ctx.end();
        child::after(Stall::Deadline, &sends).await;
        Ok(())
    }
}

impl KillFulfilment {
    async fn release<S: EventStore>(
        &mut self,
        ctx: &mut ProcessContext<'_, Shop<S>, Self>,
        sends: &mut Sends,
    ) -> Result<(), ReactionError> {
        if self.reserved > 0 {
            let release = Release {
                sku: sku_of(&self.order),
                order: self.order.clone(),
                qty: self.reserved,
            };
            sends.send(ctx, release).await?;
            self.reserved = 0;
        }
        Ok(())
    }
}

/// The commands one handler sent, with their outcomes; each is appended to the dispatch log.
struct Sends {
    kind: &'static str,
    sent: Vec<(Uuid, &'static str)>,
}

impl Sends {
    fn new(kind: &'static str) -> Self {
        Self {
            kind,
            sent: Vec::new(),
        }
    }

    async fn send<S, C, M>(
        &mut self,
        ctx: &mut ProcessContext<'_, Shop<S>, M>,
        command: C,
    ) -> Result<Sent, CommandError<<C::Aggregate as Aggregate>::Error>>
    where
        S: EventStore,
        C: Command + Into<<C::Aggregate as Aggregate>::Command>,
        Shop<S>: Dispatch<C::Aggregate>,
    {
        // Every send of the handler goes through here: the index is the context's.
        let index = u32::try_from(self.sent.len()).expect("a few commands");
        let id = ctx.command_id(index);
        let result = ctx.send(command).await;
        let outcome = match &result {
            Ok(sent) if sent.already_applied => "already",
            Ok(_) => "applied",
            Err(CommandError::Rejected(_)) => "rejected",
            Err(_) => "failed",
        };
        self.sent.push((id, outcome));
        child::log(self.kind, id, outcome);
        result
    }

    /// Whether a command took effect now (and none failed).
    fn took_effect(&self) -> bool {
        self.sent.iter().any(|(_, o)| *o == "applied")
            && self.sent.iter().all(|(_, o)| *o != "failed")
    }

    fn describe(&self) -> String {
        self.sent
            .iter()
            .map(|(id, outcome)| format!("{id}:{outcome}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

// ---- the runner process (only when re-executed by the kill test) ---------------------------

/// Where a child stalls for the parent to kill it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stall {
    /// In an event handler, after its commands took effect: before the batch's commit.
    Event,
    /// Inside the commit's transaction, in the save of a reservation's state.
    Commit,
    /// In a deadline handler, after its cancellation and release took effect.
    Deadline,
}

impl Stall {
    fn var(self) -> &'static str {
        match self {
            Stall::Event => "CQRS_KILL_STALL_EVENT",
            Stall::Commit => "CQRS_KILL_STALL_COMMIT",
            Stall::Deadline => "CQRS_KILL_STALL_DEADLINE",
        }
    }
}

mod child {
    use super::*;

    pub struct Hooks {
        pub marker: PathBuf,
        pub log: PathBuf,
        pub stall: Option<(Stall, u32)>,
        pub seen: AtomicU32,
    }

    pub static HOOKS: OnceLock<Hooks> = OnceLock::new();

    /// Appends one dispatch to the log: `pid kind command-id outcome`.
    pub fn log(kind: &str, id: Uuid, outcome: &str) {
        let Some(hooks) = HOOKS.get() else { return };
        let line = format!("{} {kind} {id} {outcome}\n", std::process::id());
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&hooks.log)
            .expect("the dispatch log");
        // One write of a short line to a file opened for appending: lines do not interleave.
        file.write_all(line.as_bytes()).expect("log a dispatch");
    }

    /// Counts a stall point of `stall`; true at the one this child was told to stall at (its
    /// marker is written then).
    fn due(stall: Stall, sends: &Sends) -> bool {
        let Some(hooks) = HOOKS.get() else {
            return false;
        };
        if hooks.stall.map(|(s, _)| s) != Some(stall) || !sends.took_effect() {
            return false;
        }
        let seen = hooks.seen.fetch_add(1, Ordering::SeqCst) + 1;
        if hooks.stall.map(|(_, n)| n) != Some(seen) {
            return false;
        }
        let text = format!("{stall:?} {} {}", std::process::id(), sends.describe());
        let tmp = hooks.marker.with_extension("tmp");
        std::fs::write(&tmp, text).expect("write the marker");
        std::fs::rename(&tmp, &hooks.marker).expect("publish the marker");
        true
    }

    /// After a handler's commands: stalls (for the parent to kill us) if told to here.
    pub async fn after(stall: Stall, sends: &Sends) {
        if due(stall, sends) {
            tokio::time::sleep(Duration::from_secs(120)).await;
        }
    }

    /// Whether this reservation's state should stall inside the commit's transaction.
    pub fn stall_in_commit(sends: &Sends) -> bool {
        due(Stall::Commit, sends)
    }
}

/// The runner process: runs the process manager live until it is killed.
#[test]
fn child_runner() {
    let Ok(backend) = std::env::var("CQRS_KILL_CHILD") else {
        return; // an ordinary test run: nothing to do
    };
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let stall = [Stall::Event, Stall::Commit, Stall::Deadline]
        .into_iter()
        .find_map(|s| var(s.var()).parse().ok().map(|n| (s, n)));
    let marker = PathBuf::from(var("CQRS_KILL_MARKER"));
    let hooks = child::Hooks {
        marker: marker.clone(),
        log: PathBuf::from(var("CQRS_KILL_LOG")),
        stall,
        seen: AtomicU32::new(0),
    };
    assert!(child::HOOKS.set(hooks).is_ok());
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
                let store = cqrs_runtime::sqlite::SqliteEventStore::open(var("CQRS_KILL_DB"))
                    .await
                    .expect("open the store");
                run_until_killed(store, &started).await;
            }
            #[cfg(feature = "postgres")]
            "postgres" => {
                let config = cqrs_runtime::postgres::PostgresConfig::new(&var("CQRS_KILL_DB"))
                    .expect("url")
                    .schema(&var("CQRS_KILL_SCHEMA"))
                    .expect("schema");
                let store = config.open().await.expect("connect");
                run_until_killed(store, &started).await;
            }
            other => panic!("unknown backend {other}"),
        }
    });
}

async fn run_until_killed<S>(store: S, started: &Path)
where
    S: EventStore + ReactionStore + LeaseStore + Clone,
{
    let handler = process_manager::<KillFulfilment, _, _>(Shop::new(&store), store.clone());
    // Standby: the killed predecessor's lease (a file lock, a session lock) goes with its
    // process; the server may take a moment to notice a dead session.
    let runner = Runner::new(store.clone(), handler)
        .with_leases(store.clone())
        .standby()
        .poll_interval(Duration::from_millis(5), Duration::from_millis(40));
    std::fs::write(started, "started").expect("write the started marker");
    let result = Box::pin(runner.run(std::future::pending())).await;
    panic!("the runner ended: {result:?}");
}

// ---- the backends -----------------------------------------------------------------------------

/// One backend: a fresh store, the stall trigger, and how to see a child stalled in it.
trait Db: Sized + Send + Sync {
    type Store: EventStore + ReactionStore + SqlBackend + LeaseStore + Clone;

    /// A fresh store; `None` skips the test (with a printed reason).
    async fn setup() -> Option<Self>;
    fn store(&self) -> Self::Store;
    /// Puts the trigger that makes the save of a `"stall":true` state run for seconds on the
    /// instance table.
    async fn install_stall(&self);
    /// Whether a child is inside a commit's transaction, in the stalling statement.
    async fn in_transaction(&self) -> bool;
    fn child_env(&self) -> Vec<(&'static str, String)>;
    async fn teardown(self);
}

#[cfg(feature = "sqlite")]
struct Sqlite {
    dir: PathBuf,
    store: cqrs_runtime::sqlite::SqliteEventStore,
}

#[cfg(feature = "sqlite")]
impl Db for Sqlite {
    type Store = cqrs_runtime::sqlite::SqliteEventStore;

    async fn setup() -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("cqrs-rkill-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let store = Self::Store::open(dir.join("shop.sqlite"))
            .await
            .expect("open the store");
        Some(Self { dir, store })
    }

    fn store(&self) -> Self::Store {
        self.store.clone()
    }

    async fn install_stall(&self) {
        // SQLite has no sleep: a three-way cross join of 1,000 rows (10^9 rows counted) holds
        // the write lock far longer than the parent takes to kill.
        let conn = rusqlite::Connection::open(self.store.path()).expect("open");
        conn.busy_timeout(Duration::from_secs(5))
            .expect("busy timeout");
        let mut sql = String::from(
            "BEGIN; CREATE TABLE kill_rows (n INTEGER); \
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) \
             INSERT INTO kill_rows SELECT x FROM c;",
        );
        for op in ["INSERT", "UPDATE"] {
            sql.push_str(&format!(
                "CREATE TRIGGER kill_stall_{op} BEFORE {op} ON cqrs_process_instances \
                 WHEN NEW.state LIKE '%\"stall\":true%' BEGIN \
                 SELECT count(*) FROM kill_rows a, kill_rows b, kill_rows c; END;"
            ));
        }
        sql.push_str("COMMIT;");
        conn.execute_batch(&sql).expect("the stall trigger");
    }

    async fn in_transaction(&self) -> bool {
        // The child holds SQLite's write lock for its transaction: ours cannot begin.
        let conn = rusqlite::Connection::open(self.store.path()).expect("open");
        conn.busy_timeout(Duration::ZERO).expect("busy timeout");
        match conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK") {
            Ok(()) => false,
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => true,
            Err(e) => panic!("probing the write lock: {e}"),
        }
    }

    fn child_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CQRS_KILL_CHILD", "sqlite".into()),
            ("CQRS_KILL_DB", self.store.path().display().to_string()),
        ]
    }

    async fn teardown(self) {
        drop(self.store);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(feature = "postgres")]
mod pg {
    use super::*;
    use cqrs_runtime::postgres::{PostgresConfig, PostgresEventStore};

    pub struct Postgres {
        url: String,
        schema: String,
        store: PostgresEventStore,
    }

    /// `DATABASE_URL`, or the local default.
    fn url() -> String {
        std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    async fn client(url: &str) -> Result<tokio_postgres::Client, String> {
        let connect = tokio_postgres::connect(url, tokio_postgres::NoTls);
        let (client, connection) = tokio::time::timeout(Duration::from_secs(5), connect)
            .await
            .map_err(|_| "timed out after 5 s".to_owned())?
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        Ok(client)
    }

    impl Db for Postgres {
        type Store = PostgresEventStore;

        async fn setup() -> Option<Self> {
            let url = url();
            if let Err(e) = client(&url).await {
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("PostgreSQL is unreachable at {url} and CI=true: {e}");
                }
                eprintln!("skipping a PostgreSQL test: cannot connect to {url}: {e}");
                return None;
            }
            let schema = format!("cqrs_t_{}", Uuid::now_v7().simple());
            let config = PostgresConfig::new(&url).expect("DATABASE_URL parses");
            let config = config.schema(&schema).expect("valid schema name");
            let store = config.open().await.expect("connect and migrate");
            Some(Self { url, schema, store })
        }

        fn store(&self) -> Self::Store {
            self.store.clone()
        }

        async fn install_stall(&self) {
            // Two seconds: a killed child's statement runs on in the server that long, its
            // transaction holding the checkpoint row, before the server rolls it back.
            let schema = &self.schema;
            let sql = format!(
                "CREATE FUNCTION \"{schema}\".kill_stall() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN PERFORM pg_sleep(2); RETURN NEW; END $$; \
                 CREATE TRIGGER kill_stall BEFORE INSERT OR UPDATE ON \
                 \"{schema}\".cqrs_process_instances FOR EACH ROW \
                 WHEN (NEW.state LIKE '%\"stall\":true%') \
                 EXECUTE FUNCTION \"{schema}\".kill_stall();"
            );
            let client = client(&self.url).await.expect("client");
            client.batch_execute(&sql).await.expect("the stall trigger");
        }

        async fn in_transaction(&self) -> bool {
            let client = client(&self.url).await.expect("client");
            let table = format!("\"{}\".cqrs_process_instances", self.schema);
            let running = client
                .query_one(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                     WHERE l.relation = to_regclass($1::text) AND a.wait_event = 'PgSleep'",
                    &[&table],
                )
                .await
                .expect("pg_stat_activity");
            running.get::<_, i64>(0) > 0
        }

        fn child_env(&self) -> Vec<(&'static str, String)> {
            vec![
                ("CQRS_KILL_CHILD", "postgres".into()),
                ("CQRS_KILL_DB", self.url.clone()),
                ("CQRS_KILL_SCHEMA", self.schema.clone()),
            ]
        }

        async fn teardown(self) {
            drop(self.store);
            if let Ok(client) = client(&self.url).await {
                let drop = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.schema);
                let _ = client.batch_execute(&drop).await;
            }
        }
    }
}

// ---- the parent: customers, kills, and the audit ---------------------------------------------

/// xorshift64*: enough randomness for kill moments and customers, replayable from a seed.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// In `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// A child process, killed when dropped (a failing test leaves no runner behind).
struct ChildGuard(Option<Child>);

impl ChildGuard {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("a child")
    }

    /// SIGKILL, and make sure it was a kill (not a crash before it).
    fn kill(mut self) {
        use std::os::unix::process::ExitStatusExt;
        let mut child = self.0.take().expect("a child");
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        assert_eq!(
            status.signal(),
            Some(9),
            "the runner process ended before it was killed: {status}"
        );
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct Files {
    dir: PathBuf,
    marker: PathBuf,
    started: PathBuf,
    log: PathBuf,
}

fn spawn_child<D: Db>(db: &D, files: &Files, stall: Option<(Stall, u32)>) -> ChildGuard {
    let _ = std::fs::remove_file(&files.marker);
    let _ = std::fs::remove_file(&files.started);
    let mut command = Process::new(std::env::current_exe().expect("test binary"));
    command
        .args(["--exact", "child_runner", "--nocapture", "--test-threads=1"])
        .env("CQRS_KILL_MARKER", &files.marker)
        .env("CQRS_KILL_LOG", &files.log)
        .stdout(std::process::Stdio::null());
    for s in [Stall::Event, Stall::Commit, Stall::Deadline] {
        command.env_remove(s.var());
    }
    if let Some((s, n)) = stall {
        command.env(s.var(), n.to_string());
    }
    for (key, value) in db.child_env() {
        command.env(key, value);
    }
    ChildGuard(Some(command.spawn().expect("spawn the runner process")))
}

async fn wait_for_file(path: &Path, child: &mut ChildGuard, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !path.exists() {
        if let Ok(Some(status)) = child.child().try_wait() {
            panic!("the runner process ended early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "no {} after {timeout:?}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// What a customer does with an order once its stock is reserved.
#[derive(Debug, Clone, Copy)]
enum Action {
    Pay,
    Cancel,
}

/// The customers: place orders (one every 40..120 ms, until `stop`), and pay or cancel some
/// of the reserved ones a while later (some before their deadline, some around it), others
/// never. Returns once stopped and every order is reserved or cancelled and every action
/// done.
async fn customers<S: EventStore + Clone>(store: S, mut rng: Rng, stop: Arc<AtomicBool>) -> u64 {
    let shop = Shop::new(&store);
    let mut placed = 0u64;
    let mut unresolved: HashSet<String> = HashSet::new();
    let mut actions: Vec<(Instant, String, Action)> = Vec::new();
    let mut cursor = Cursor::START;
    let mut next_order = Instant::now();
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        if !stopping && Instant::now() >= next_order && placed < 600 {
            let order = format!("o-{}-{}", placed as usize / GROUP, placed as usize % GROUP);
            let qty = u32::try_from(rng.range(1, 3)).expect("small");
            shop.orders
                .execute(PlaceOrder {
                    order: order.clone(),
                    qty,
                })
                .await
                .expect("place an order");
            unresolved.insert(order);
            placed += 1;
            next_order = Instant::now() + Duration::from_millis(rng.range(40, 120));
        }
        // Tail the log: reservations get an action, cancellations resolve their order.
        loop {
            let batch = store.read_after(cursor, 500).await.expect("read the log");
            let Some((last, _)) = batch.last() else {
                break;
            };
            cursor = *last;
            for (_, event) in batch {
                match event.event_type.as_str() {
                    "stock_reserved" => {
                        let order = json_str(&event, "order");
                        unresolved.remove(&order);
                        let action = match rng.range(0, 99) {
                            0..40 => Some(Action::Pay),
                            40..65 => Some(Action::Cancel),
                            _ => None,
                        };
                        if let Some(action) = action {
                            let at = Instant::now() + Duration::from_millis(rng.range(0, 500));
                            actions.push((at, order, action));
                        }
                    }
                    "order_cancelled" => {
                        unresolved.remove(&event.stream_id);
                    }
                    _ => {}
                }
            }
        }
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = actions.drain(..).partition(|(at, _, _)| *at <= now);
        actions = later;
        for (_, order, action) in due {
            let result = match action {
                Action::Pay => shop.orders.execute(PayOrder { order }).await,
                Action::Cancel => {
                    let reason = "customer".to_owned();
                    shop.orders.execute(CancelOrder { order, reason }).await
                }
            };
            match result {
                // Paid after its deadline cancelled it, or the other way round: fine.
                Ok(_) | Err(CommandError::Rejected(_)) => {}
                Err(other) => panic!("a customer's command failed: {other}"),
            }
        }
        if stopping && actions.is_empty() && unresolved.is_empty() {
            return placed;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn json(event: &StoredEvent) -> serde_json::Value {
    serde_json::from_slice(&event.payload).expect("a JSON payload")
}

fn json_str(event: &StoredEvent, field: &str) -> String {
    json(event)[field]
        .as_str()
        .unwrap_or_else(|| panic!("{} has no {field}", event.event_type))
        .to_owned()
}

fn json_u32(event: &StoredEvent, field: &str) -> u32 {
    let value = json(event)[field].as_u64().expect("a number");
    u32::try_from(value).expect("small")
}

async fn count<S: SqlBackend>(store: &S, table: &str) -> i64 {
    let rows = store
        .fetch_all(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .expect("count");
    match rows.first().and_then(|row| row.first()) {
        Some(SqlValue::Int(n)) => *n,
        other => panic!("count(*) is {other:?}"),
    }
}

/// Every instance ended, no deadline is pending, and the checkpoint is at the head.
async fn quiescent<S: Db>(store: &S::Store) -> bool {
    if count(store, "cqrs_process_instances").await > 0 {
        return false;
    }
    if count(store, "cqrs_deadlines").await > 0 {
        return false;
    }
    let head = store.head().await.expect("head").position;
    let checkpoint = CheckpointStore::checkpoint(store, NAME)
        .await
        .expect("checkpoint");
    checkpoint.is_some_and(|c| c.cursor.position >= head)
}

/// One kill of the plan.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// Stalled at the n-th point of this kind.
    At(Stall, u32),
    /// This many milliseconds after the child started.
    After(u64),
}

/// Every event of the store, in commit order.
async fn all_events(store: &impl EventStore) -> Vec<StoredEvent> {
    let mut cursor = Cursor::START;
    let mut events = Vec::new();
    loop {
        let batch = store.read_after(cursor, 1000).await.expect("read the log");
        let Some((last, _)) = batch.last() else {
            return events;
        };
        cursor = *last;
        events.extend(batch.into_iter().map(|(_, e)| e));
    }
}

#[derive(Debug, Default)]
struct OrderFacts {
    qty: u32,
    placed: u32,
    paid: u32,
    cancelled: BTreeMap<String, u32>,
    reserved: u32,
    released: u32,
    /// Its events, for the failure messages.
    history: Vec<String>,
}

/// The audit, from the event store alone.
async fn audit<S: EventStore + Clone>(store: &S, placed: u64) {
    let events = all_events(store).await;
    let mut ids = HashSet::new();
    for event in &events {
        assert!(
            ids.insert(event.event_id),
            "event id {} stored twice",
            event.event_id
        );
    }
    let mut orders: BTreeMap<String, OrderFacts> = BTreeMap::new();
    let mut skus: BTreeMap<String, i64> = BTreeMap::new();
    let mut decisions = 0;
    for event in &events {
        // The records of commands decided without effect (rejections): each one once, as
        // the id check above shows.
        if event.stream_type == DECISIONS_STREAM_TYPE {
            decisions += 1;
            continue;
        }
        let order = match event.stream_type.as_str() {
            "order" => event.stream_id.clone(),
            _ => json_str(event, "order"),
        };
        orders.entry(order).or_default().history.push(format!(
            "#{} {} {} (causation {:?}, correlation {})",
            event.global_position,
            event.event_type,
            String::from_utf8_lossy(&event.payload),
            event.metadata.causation_id,
            event.metadata.correlation_id
        ));
        match (event.stream_type.as_str(), event.event_type.as_str()) {
            ("order", "order_placed") => {
                let facts = orders.entry(event.stream_id.clone()).or_default();
                facts.placed += 1;
                facts.qty = json_u32(event, "qty");
            }
            ("order", "order_paid") => orders.entry(event.stream_id.clone()).or_default().paid += 1,
            ("order", "order_cancelled") => {
                let reason = json_str(event, "reason");
                let facts = orders.entry(event.stream_id.clone()).or_default();
                *facts.cancelled.entry(reason).or_default() += 1;
            }
            ("stock", "stock_reserved") => {
                let order = json_str(event, "order");
                assert_eq!(sku_of(&order), event.stream_id, "reserved from its sku");
                orders.entry(order).or_default().reserved += 1;
                *skus.entry(event.stream_id.clone()).or_default() +=
                    i64::from(json_u32(event, "qty"));
            }
            ("stock", "stock_released") => {
                let order = json_str(event, "order");
                orders.entry(order).or_default().released += 1;
                *skus.entry(event.stream_id.clone()).or_default() -=
                    i64::from(json_u32(event, "qty"));
            }
            (stream, event) => panic!("an unexpected {stream} event {event}"),
        }
    }
    assert_eq!(
        orders.len() as u64,
        placed,
        "every placed order, and no other"
    );
    let (mut paid, mut customer, mut unpaid, mut out_of_stock) = (0, 0, 0, 0);
    let mut kept: BTreeMap<String, i64> = BTreeMap::new();
    for (order, f) in &orders {
        let cancels = |reason: &str| f.cancelled.get(reason).copied().unwrap_or(0);
        let total_cancels: u32 = f.cancelled.values().sum();
        assert_eq!(f.placed, 1, "{order}: {f:?}");
        // Reserved once, or (out of stock) cancelled once for that: never both, never twice.
        match (f.reserved, cancels("out of stock")) {
            (1, 0) => {}
            (0, 1) => {
                assert_eq!(
                    (total_cancels, f.paid, f.released),
                    (1, 0, 0),
                    "{order}: {f:?}"
                );
                out_of_stock += 1;
                continue;
            }
            _ => panic!("{order} is neither reserved once nor out of stock once: {f:?}"),
        }
        if f.paid > 0 {
            // Paid: keeps its stock; no cancellation, no release.
            assert_eq!(
                (f.paid, total_cancels, f.released),
                (1, 0, 0),
                "{order}: {f:?}"
            );
            *kept.entry(sku_of(order)).or_default() += i64::from(f.qty);
            paid += 1;
        } else if cancels("customer") > 0 {
            // Cancelled by its customer (before its deadline, or the deadline gave way).
            assert_eq!((total_cancels, f.released), (1, 1), "{order}: {f:?}");
            customer += 1;
        } else {
            // Unpaid: its deadline fired once: one cancellation, one release.
            assert_eq!(
                (cancels("unpaid"), total_cancels, f.released),
                (1, 1, 1),
                "{order}: {f:?}"
            );
            unpaid += 1;
        }
    }
    for (sku, reserved) in &skus {
        let kept = kept.get(sku).copied().unwrap_or(0);
        assert_eq!(
            *reserved, kept,
            "{sku}: reserved net of releases = the paid orders' stock"
        );
        assert!(kept <= i64::from(SHELF), "{sku}: more than the shelf");
    }
    let shop = Shop::new(store);
    for (sku, kept) in &kept {
        let stock = shop.stock.load(sku).await.expect("load the stock");
        assert_eq!(i64::from(stock.state.reserved), *kept, "{sku}'s aggregate");
    }
    eprintln!(
        "audit: {} events, {placed} orders: {paid} paid, {customer} cancelled by their \
         customer, {unpaid} cancelled unpaid by their deadline, {out_of_stock} out of stock, \
         {decisions} commands decided without effect",
        events.len()
    );
    assert!(
        paid > 0 && customer > 0 && unpaid > 0 && out_of_stock > 0,
        "every path taken"
    );
}

/// A dispatch the children logged.
struct Dispatched {
    pid: u32,
    id: Uuid,
    outcome: String,
}

fn read_log(path: &Path) -> Vec<Dispatched> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|line| {
            let parts: Vec<&str> = line.split(' ').collect();
            assert_eq!(parts.len(), 4, "a torn log line: {line:?}");
            Dispatched {
                pid: parts[0].parse().expect("pid"),
                id: parts[2].parse().expect("command id"),
                outcome: parts[3].to_owned(),
            }
        })
        .collect()
}

async fn killed_over_and_over<D: Db>(db: &D) {
    let began = Instant::now();
    let seed = std::env::var("CQRS_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("time")
                .as_nanos();
            (nanos as u64) | 1
        });
    eprintln!("reaction kill test: CQRS_KILL_SEED={seed}");
    let mut rng = Rng(seed);
    let store = db.store();
    ReactionStore::prepare(&store)
        .await
        .expect("the reaction tables");
    db.install_stall().await;
    let dir = std::env::temp_dir().join(format!("cqrs-rkill-files-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let files = Files {
        marker: dir.join("marker"),
        started: dir.join("marker.started"),
        log: dir.join("dispatch.log"),
        dir,
    };

    let stop = Arc::new(AtomicBool::new(false));
    let workload = tokio::spawn(customers(
        store.clone(),
        Rng(rng.next() | 1),
        Arc::clone(&stop),
    ));

    // The plan: each deliberate kind four times, and random kills, interleaved.
    let mut plan = Vec::new();
    for _ in 0..4 {
        plan.push(Kill::At(
            Stall::Event,
            u32::try_from(rng.range(1, 4)).expect("small"),
        ));
        plan.push(Kill::At(
            Stall::Commit,
            u32::try_from(rng.range(1, 3)).expect("small"),
        ));
        plan.push(Kill::At(
            Stall::Deadline,
            u32::try_from(rng.range(1, 2)).expect("small"),
        ));
        plan.push(Kill::After(rng.range(0, 600)));
    }
    let mut stalled: Vec<(Stall, String)> = Vec::new();
    for kill in &plan {
        let stall = match kill {
            Kill::At(stall, n) => Some((*stall, *n)),
            Kill::After(_) => None,
        };
        let mut child = spawn_child(db, &files, stall);
        match *kill {
            Kill::At(stall, _) => {
                wait_for_file(&files.marker, &mut child, Duration::from_secs(20)).await;
                if stall == Stall::Commit {
                    // The marker is written in the handler; the commit comes after the batch.
                    let deadline = Instant::now() + Duration::from_secs(20);
                    let mut busy = 0;
                    while busy < 3 {
                        busy = if db.in_transaction().await {
                            busy + 1
                        } else {
                            0
                        };
                        assert!(
                            Instant::now() < deadline,
                            "the child never stalled in its commit"
                        );
                        if let Ok(Some(status)) = child.child().try_wait() {
                            panic!("the runner process ended early: {status}");
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                let marker = std::fs::read_to_string(&files.marker).expect("the marker");
                stalled.push((stall, marker));
            }
            Kill::After(ms) => {
                wait_for_file(&files.started, &mut child, Duration::from_secs(20)).await;
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
        }
        child.kill();
        eprintln!("{:>6} ms: killed at {kill:?}", began.elapsed().as_millis());
        // Down for a while: orders pile up, deadlines come due.
        tokio::time::sleep(Duration::from_millis(rng.range(0, 400))).await;
    }

    // The last restart runs until every order is settled and nothing is pending.
    stop.store(true, Ordering::SeqCst);
    let mut child = spawn_child(db, &files, None);
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if let Ok(Some(status)) = child.child().try_wait() {
            panic!("the runner process ended early: {status}");
        }
        if workload.is_finished() && quiescent::<D>(&store).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not settled 40 s after the last restart: {} instances, {} deadlines",
            count(&store, "cqrs_process_instances").await,
            count(&store, "cqrs_deadlines").await,
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill();
    let placed = workload.await.expect("the customers");

    audit(&store, placed).await;

    // Redelivery happened: each deliberately interrupted handler's commands were sent again
    // by a later process, and found applied.
    let log = read_log(&files.log);
    for (stall, marker) in &stalled {
        let mut words = marker.split(' ');
        let _kind = words.next();
        let pid: u32 = words
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the marker's pid");
        for sent in words {
            let (id, outcome) = sent.split_once(':').expect("id:outcome");
            if outcome != "applied" {
                continue;
            }
            let id: Uuid = id.parse().expect("command id");
            assert!(
                log.iter()
                    .any(|d| d.id == id && d.pid != pid && d.outcome == "already"),
                "the command {id} of the handler killed at {stall:?} was not sent again"
            );
        }
    }
    let already = log.iter().filter(|d| d.outcome == "already").count();
    assert!(
        already >= stalled.len(),
        "commands were sent again after the kills"
    );
    let pids: HashSet<u32> = log.iter().map(|d| d.pid).collect();
    eprintln!(
        "{} dispatches by {} processes, {already} found already applied; {} kills in {} ms",
        log.len(),
        pids.len(),
        plan.len(),
        began.elapsed().as_millis()
    );
    let _ = std::fs::remove_dir_all(&files.dir);
}

macro_rules! backend_tests {
    ($module:ident, $db:ty) => {
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_process_manager_killed_over_and_over_takes_effect_once() {
                let Some(db) = <$db>::setup().await else {
                    return;
                };
                super::killed_over_and_over(&db).await;
                db.teardown().await;
            }
        }
    };
}

#[cfg(feature = "sqlite")]
backend_tests!(sqlite, Sqlite);

#[cfg(feature = "postgres")]
backend_tests!(postgres, pg::Postgres);
