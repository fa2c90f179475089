//! The SQLite backend: the embedded default. One file, WAL mode, zero setup.
//!
//! [`SqliteEventStore`] is the event store, and also the checkpoint, snapshot and lease store
//! and the [`SqlBackend`](crate::store::SqlBackend) of read models kept in the same file.
//!
//! - One writer connection serializes appends inside the process, in `BEGIN IMMEDIATE`
//!   transactions, so several processes may share the file (SQLite's own write lock, waited
//!   for up to the busy timeout).
//! - Group commit without a writer thread: an append that finds the writer connection free
//!   commits on its own blocking task; appends that arrive while it is busy are committed
//!   together by its holder, in one transaction and one disk sync, each inside its own
//!   savepoint (a refused append rolls back only its own rows, and every append keeps its
//!   own outcome). An append committed alone needs no savepoint.
//! - Readers use their own connections (WAL: readers never block the writer).
//! - Commits are serialized, so global positions become visible in order: a log read's cursor
//!   is `(0, position)`.
//! - SQLite calls are blocking; each operation runs on Tokio's blocking pool.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use cqrs_runtime::sqlite::SqliteEventStore;
//! use cqrs_runtime::store::{EventStore, ExpectedVersion, NewEvent};
//! use cqrs_runtime::Metadata;
//!
//! let dir = std::env::temp_dir().join(format!("cqrs-doc-{}", uuid::Uuid::now_v7()));
//! std::fs::create_dir_all(&dir)?;
//! let store = SqliteEventStore::open(dir.join("events.sqlite")).await?;
//! let event = NewEvent::new("opened", 1, b"{}".to_vec(), Metadata::new());
//! let outcome = store.append("account", "a-1", ExpectedVersion::NoStream, vec![event]).await?;
//! assert_eq!(outcome.stream_version, 1);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod chunk;
mod models;
mod schema;
mod side;
mod side_sql;
mod sql;
mod transaction;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use crate::backends::idempotency::check_batch;
pub use crate::backends::names::{InvalidIdentifier, TableNames};
pub use crate::backends::transaction::{TransactionError, TransactionOutcome};
use crate::store::{
    AppendOutcome, Cursor, EventFilter, EventStore, ExpectedVersion, NewEvent, ReadBatch,
    StoreError, StoredEvent, StreamAppend, StreamEventRef, check_append,
};
use chunk::ChunkPool;
/// The driver, re-exported at the version this crate uses: [`SqliteEventStore::append_with`]'s
/// writes get a [`rusqlite::Transaction`].
pub use rusqlite;
pub use side::SqliteLease;
use sql::{Request, Sql};
use writer::Writer;

/// How hard SQLite pushes each commit to disk (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Every commit is on disk before the append returns (the default: a committed command
    /// survives a power loss).
    #[default]
    Full,
    /// WAL commits are synced at checkpoints only: never corrupt, much faster, but the last
    /// commits may be lost on a power loss or OS crash (not on an application crash).
    Normal,
}

/// How to open a [`SqliteEventStore`].
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    path: PathBuf,
    tables: TableNames,
    synchronous: Synchronous,
    busy_timeout: Duration,
    max_idle_readers: usize,
    migrate: bool,
}

impl SqliteConfig {
    /// The file at `path` (created if missing), default tables, [`Synchronous::Full`], a 5 s
    /// busy timeout.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
            tables: TableNames::default(),
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(5),
            max_idle_readers: 4,
            migrate: true,
        }
    }

    /// Uses these table names.
    pub fn tables(mut self, tables: TableNames) -> Self {
        self.tables = tables;
        self
    }

    /// Sets the durability of commits.
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// How long a write waits for another process's write lock before failing.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Whether [`open`](Self::open) creates the file and migrates its schema (`true`, the
    /// default). With `false`, `open` changes nothing in the file: it fails when the file does
    /// not exist, or when its schema is not at the version this build writes (a file that is
    /// not a store, or one written by an older or newer build). For tools that only read.
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// Opens the file, creating it and migrating its schema to the current version (unless
    /// [`migrate(false)`](Self::migrate)).
    pub async fn open(self) -> Result<SqliteEventStore, StoreError> {
        blocking(move || {
            let sql = Arc::new(Sql::new(&self.tables));
            if !self.migrate {
                let conn = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(|e| {
                    StoreError::backend(format!("cannot open {}: {e}", self.path.display()))
                })?;
                sql.check_schema(&conn, &self.path)?;
            }
            let mut conn = connect(&self)?;
            if self.migrate {
                sql.migrate(&mut conn)?;
            }
            let writer = Writer::new(conn);
            Ok(SqliteEventStore {
                inner: Arc::new(Inner {
                    writer,
                    readers: Mutex::new(Vec::new()),
                    chunks: ChunkPool::default(),
                    sql,
                    config: self,
                }),
            })
        })
        .await
    }
}

/// An [`EventStore`] (and checkpoint, snapshot and lease store) in one SQLite file.
///
/// Cloning is cheap; clones share the connections. Open it with [`SqliteEventStore::open`]
/// or [`SqliteConfig::open`].
#[derive(Clone)]
pub struct SqliteEventStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// The write connection and the appends queued for it.
    writer: Writer,
    readers: Mutex<Vec<Connection>>,
    /// Buffers of aggregate loads, reused.
    chunks: ChunkPool,
    sql: Arc<Sql>,
    config: SqliteConfig,
}

impl fmt::Debug for SqliteEventStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteEventStore")
            .field("path", &self.inner.config.path)
            .field("tables", &self.inner.config.tables)
            .finish_non_exhaustive()
    }
}

impl SqliteEventStore {
    /// Opens (creating and migrating if needed) the store in the file at `path`.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        SqliteConfig::new(path).open().await
    }

    /// Appends to several streams in one transaction: every append of the batch is stored,
    /// or none is. Events take global positions in batch order; each append's expected
    /// version is checked against the stream as the batch's earlier appends left it (a
    /// stream may appear several times). One commit (and one disk sync) for the whole batch:
    /// the way to import or copy many small streams fast.
    ///
    /// A batch whose every append is already stored, each at its place, returns the original
    /// outcomes (a retry after a lost answer). Otherwise a refusal refuses the whole batch
    /// and names the first cause: an id already stored elsewhere or held twice
    /// ([`StoreError::DuplicateEventId`]), then a version conflict ([`StoreError::Conflict`]).
    /// A batch stores no claims ([`StoreError::InvalidEvent`] for an event that carries one):
    /// claims are taken by [`EventStore::append`].
    ///
    /// ```
    /// # async fn demo() -> Result<(), cqrs_runtime::store::StoreError> {
    /// use cqrs_runtime::sqlite::SqliteEventStore;
    /// use cqrs_runtime::store::{ExpectedVersion, NewEvent, StreamAppend};
    ///
    /// # let dir = std::env::temp_dir().join(format!("batch-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).ok();
    /// let store = SqliteEventStore::open(dir.join("events.db")).await?;
    /// let opened = |owner: &str| {
    ///     let payload = format!(r#"{{"owner":"{owner}"}}"#).into_bytes();
    ///     NewEvent::new("account_opened", 1, payload, Default::default())
    /// };
    /// let outcomes = store
    ///     .append_batch(vec![
    ///         StreamAppend::new("account", "a-1", ExpectedVersion::NoStream, vec![opened("Ada")]),
    ///         StreamAppend::new("account", "a-2", ExpectedVersion::NoStream, vec![opened("Bo")]),
    ///     ])
    ///     .await?;
    /// assert_eq!(outcomes[1].stream_version, 1);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn append_batch(
        &self,
        appends: Vec<StreamAppend>,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        check_batch(&appends)?;
        if appends.is_empty() {
            return Ok(Vec::new());
        }
        self.write(move |conn, sql| sql.append_batch(conn, &appends))
            .await
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.inner.config.path
    }

    /// Runs `f` on the write connection, on the blocking pool.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, &Sql) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = Arc::clone(&self.inner);
        blocking(move || inner.writer.run(&inner.sql, f)).await
    }

    /// Runs `f` on a reader connection, on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &Sql) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = Arc::clone(&self.inner);
        blocking(move || inner.with_reader(f)).await
    }
}

impl Inner {
    /// Runs `f` on an idle reader connection (or a new one), here and now: blocking.
    fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection, &Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let idle = self.readers.lock().map_err(|_| poisoned())?.pop();
        let conn = match idle {
            Some(conn) => conn,
            None => connect(&self.config)?,
        };
        let result = f(&conn, &self.sql);
        let mut readers = self.readers.lock().map_err(|_| poisoned())?;
        if readers.len() < self.config.max_idle_readers {
            readers.push(conn);
        }
        result
    }
}

fn connect(config: &SqliteConfig) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(&config.path, flags).map_err(StoreError::backend)?;
    conn.busy_timeout(config.busy_timeout)
        .map_err(StoreError::backend)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(StoreError::backend)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::backend(format!(
            "SQLite refused WAL mode for {} (journal mode {mode})",
            config.path.display()
        )));
    }
    let synchronous = match config.synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(StoreError::backend)?;
    // Stable plans: SQLite otherwise marks some statements to be re-planned for the values
    // bound to them, and rusqlite's statement cache clears the bindings of every statement it
    // takes back, which then re-prepares the statement at its next use (measured: the stream
    // head query was compiled again on every append, a fifth of an append's CPU time).
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(StoreError::backend)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// Whether this is a worker thread of a multi-thread Tokio runtime, where `block_in_place` is
/// allowed. Tokio has no public way to ask whether a `LocalSet` (where it panics) runs the
/// caller, but a `LocalSet` never runs on a worker thread (its futures are not `Send`), and
/// worker threads carry Tokio's default name (`tokio-rt-worker`, `tokio-runtime-worker` in
/// older versions) unless the runtime renamed them: a renamed runtime takes the chunked path,
/// which is correct everywhere.
fn on_worker_thread() -> bool {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|rt| rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    multi_thread
        && matches!(
            std::thread::current().name(),
            Some("tokio-rt-worker" | "tokio-runtime-worker")
        )
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::backend(format!("SQLite task failed: {e}")))?
}

fn poisoned() -> StoreError {
    StoreError::backend("a SQLite connection lock was poisoned by a panic")
}

/// A driver error as a store error: a busy or locked database is
/// [`StoreError::Unavailable`] (another process holds the write lock past the busy timeout),
/// anything else [`StoreError::Backend`].
pub(super) fn db(error: rusqlite::Error) -> StoreError {
    if transient(&error) {
        StoreError::unavailable(error)
    } else {
        StoreError::backend(error)
    }
}

/// [`db`] for an error shared by several requests (its text is copied).
pub(super) fn db_text(error: &rusqlite::Error) -> StoreError {
    if transient(error) {
        StoreError::unavailable(error.to_string())
    } else {
        StoreError::backend(error.to_string())
    }
}

fn transient(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

impl EventStore for SqliteEventStore {
    async fn append(
        &self,
        stream_type: &str,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        check_append(stream_type, stream_id, &events)?;
        let (reply, outcome) = tokio::sync::oneshot::channel();
        let request = Request {
            stream_type: stream_type.to_owned(),
            stream_id: stream_id.to_owned(),
            expected,
            events,
            reply,
        };
        // Group commit: committed on this blocking task, or by the one holding the writer
        // connection, with every other queued append. The reply comes before the blocking
        // task ends (a leader goes on committing the others' appends).
        let inner = Arc::clone(&self.inner);
        drop(tokio::task::spawn_blocking(move || {
            inner.writer.append(&inner.sql, request);
        }));
        outcome.await.map_err(|_| writer::stopped())?
    }

    async fn read_stream(
        &self,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let (stream_type, stream_id) = (stream_type.to_owned(), stream_id.to_owned());
        self.read(move |conn, sql| sql.read_stream(conn, &stream_type, &stream_id, from_version))
            .await
    }

    /// On a worker thread of a multi-thread runtime, reads and visits straight from the rows,
    /// in [`block_in_place`](tokio::task::block_in_place) (the worker's other tasks move to
    /// another thread meanwhile; other futures of the caller's own task wait). Elsewhere (a
    /// current-thread runtime, a `LocalSet`, a `block_on` call, a runtime whose worker threads
    /// were given another name), reads on the blocking pool and decodes on the caller's task at
    /// the same time, the rows travelling in chunks of 2,048 events with reused buffers.
    async fn replay_stream<F>(
        &self,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
        mut visit: F,
    ) -> Result<(), StoreError>
    where
        F: FnMut(StreamEventRef<'_>) -> bool + Send,
    {
        if on_worker_thread() {
            // The measured alternative, handing chunks from the blocking pool to this task,
            // loaded 10,000 events about 15% slower than reading and decoding on one thread:
            // every hand-over wakes a thread.
            return tokio::task::block_in_place(|| {
                self.inner.with_reader(|conn, sql| {
                    sql.visit_stream(conn, stream_type, stream_id, from_version, visit)
                })
            });
        }
        let (chunks, mut inbox) = tokio::sync::mpsc::channel(2);
        let (stream_type, stream_id) = (stream_type.to_owned(), stream_id.to_owned());
        let inner = Arc::clone(&self.inner);
        let read = self.read(move |conn, sql| {
            sql.replay_stream(
                conn,
                &stream_type,
                &stream_id,
                from_version,
                &inner.chunks,
                |chunk| chunks.blocking_send(chunk).is_ok(),
            )
        });
        // Dropping `inbox` (when `visit` stops early) stops the reader at its next chunk.
        let pool = &self.inner.chunks;
        let visit_all = async move {
            while let Some(chunk) = inbox.recv().await {
                let go_on = chunk.events().all(&mut visit);
                pool.give(chunk);
                if !go_on {
                    return;
                }
            }
        };
        let ((), read) = tokio::join!(visit_all, read);
        read
    }

    async fn read_after(
        &self,
        after: Cursor,
        limit: usize,
    ) -> Result<Vec<(Cursor, StoredEvent)>, StoreError> {
        self.read(move |conn, sql| sql.read_after(conn, after.position, limit))
            .await
    }

    async fn read_filtered(
        &self,
        after: Cursor,
        limit: usize,
        filter: &EventFilter,
    ) -> Result<ReadBatch, StoreError> {
        let filter = filter.clone();
        self.read(move |conn, sql| sql.read_filtered(conn, after.position, limit, &filter))
            .await
    }

    async fn head(&self) -> Result<Cursor, StoreError> {
        let position = self.read(|conn, sql| sql.head_position(conn)).await?;
        Ok(Cursor { tx: 0, position })
    }

    async fn read_event(&self, event_id: uuid::Uuid) -> Result<Option<StoredEvent>, StoreError> {
        self.read(move |conn, sql| sql.read_event(conn, event_id))
            .await
    }
}
