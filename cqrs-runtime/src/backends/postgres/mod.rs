//! The PostgreSQL backend: many writer and reader processes share one database.
//!
//! [`PostgresEventStore`] is the event store, and also the checkpoint, snapshot and lease
//! store and the [`SqlBackend`](crate::store::SqlBackend) of read models kept in its schema.
//!
//! - `append` is one `INSERT ... SELECT FROM unnest(...)` per command, whatever the number of
//!   events, in its own transaction; the unique stream key turns a lost race into
//!   [`StoreError::Conflict`], the unique event id turns a retried append into an idempotent
//!   success (after checking the stored rows).
//! - An append at an exact version checks that the version exists (else the batch would leave
//!   a gap), unless this store has already read or appended that version of the stream: it
//!   remembers the heads it saw for up to 4,096 recently used streams (about 200 KiB), and then
//!   sends the bare INSERT; the unique key still refuses a stream that moved ahead. Events are
//!   never deleted, so what was seen stays true (truncating the table under a running store
//!   would break that).
//! - Every event row carries its transaction id (`xid8`).
//!   [`EventStore::read_after`](crate::store::EventStore::read_after) reads
//!   `(tx_id, global_position) > cursor AND tx_id < pg_snapshot_xmin(pg_current_snapshot())`:
//!   an event of a transaction still in flight is never skipped, only read later (positions
//!   commit out of order).
//!   [`EventStore::read_filtered`](crate::store::EventStore::read_filtered) (a projection's
//!   runner) reads the same way, per stream type and per event name through the indexes
//!   `(stream_type, tx_id, global_position)` and `(event_type, tx_id, global_position)`, and
//!   reports the last event below that bound as how far it looked.
//! - The schema is created and upgraded from code ([`PostgresConfig::open`] migrates),
//!   idempotently, under an advisory lock; schema and table names are configurable.
//! - Leases are session advisory locks held on a dedicated connection (see [`PostgresLease`]).
//! - Every connection's `search_path` is the store's schema, so read models' SQL names their
//!   tables unqualified.
//! - Errors show the server's message, SQLSTATE, detail and hint; a lost connection, a
//!   serialization failure, a deadlock or a server shutting down is
//!   [`StoreError::Unavailable`] (worth retrying).
//! - Connections use TLS as libpq's `sslmode` and `sslrootcert` say (rustls; `prefer` by
//!   default): see [`Tls`].
//! - Statements are prepared once per connection; a small set of connections is shared by
//!   round robin (tokio-postgres pipelines concurrent requests on one connection) and
//!   re-opened when one breaks.

mod batch;
mod error;
mod events;
mod heads;
mod models;
mod notify;
mod side;
mod sql;
mod tls;
mod transaction;
mod values;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Mutex;
use tokio_postgres::{Client, Connection, Socket, Statement};

use crate::backends::names::Ident;
pub use crate::backends::names::{InvalidIdentifier, TableNames};
pub use crate::backends::transaction::{TransactionError, TransactionOutcome};
use crate::store::StoreError;
pub use error::PostgresError;
pub(crate) use error::db;
pub use notify::ListenError;
pub use side::PostgresLease;
use sql::Texts;
pub use tls::{SslMode, Tls, TlsError};
/// The driver, re-exported at the version this crate uses: [`append_with`]'s writes get a
/// [`tokio_postgres::Transaction`].
///
/// [`append_with`]: PostgresEventStore::append_with
pub use tokio_postgres;

/// How to connect a [`PostgresEventStore`].
#[derive(Clone)]
pub struct PostgresConfig {
    pg: tokio_postgres::Config,
    schema: Ident,
    tables: TableNames,
    connections: usize,
    notify: Option<Ident>,
    tls: Tls,
    migrate: bool,
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The connection config may hold a password: show only where it points.
        f.debug_struct("PostgresConfig")
            .field("hosts", &self.pg.get_hosts())
            .field("dbname", &self.pg.get_dbname())
            .field("schema", &self.schema)
            .field("tables", &self.tables)
            .field("connections", &self.connections)
            .field("notify", &self.notify)
            .field("tls", &self.tls)
            .finish()
    }
}

impl PostgresConfig {
    /// Parses a connection URL (`postgres://user@host:5432/db?sslmode=verify-full`) or
    /// key-value string (`host=db user=app sslmode=require`); the `public` schema, default
    /// table names, 4 connections.
    ///
    /// `sslmode` (`disable`, `prefer` (the default), `require`, `verify-ca`,
    /// `verify-full`) and `sslrootcert` (a PEM file of trusted roots, or `system`) mean what
    /// they mean to libpq; see [`Tls`].
    pub fn new(url: &str) -> Result<Self, StoreError> {
        let (url, tls) = tls::split_url(url).map_err(StoreError::backend)?;
        Ok(Self {
            pg: tokio_postgres::Config::from_str(&url).map_err(StoreError::backend)?,
            schema: Ident::new("public").map_err(StoreError::backend)?,
            tables: TableNames::default(),
            connections: 4,
            notify: None,
            tls,
            migrate: true,
        })
    }

    /// Uses these TLS settings instead of the URL's `sslmode` and `sslrootcert`, e.g.
    /// `.tls(Tls::verify_full().root_cert("/etc/ssl/db-ca.pem"))`. Every connection of the
    /// store uses them: shared, transactional, lease and listening connections.
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = tls;
        self
    }

    /// Puts the tables into this schema (created if missing).
    pub fn schema(mut self, schema: &str) -> Result<Self, InvalidIdentifier> {
        self.schema = Ident::new(schema)?;
        Ok(self)
    }

    /// Uses these table names.
    pub fn tables(mut self, tables: TableNames) -> Self {
        self.tables = tables;
        self
    }

    /// How many connections the store shares among its operations (at least 1).
    pub fn connections(mut self, n: usize) -> Self {
        self.connections = n.max(1);
        self
    }

    /// Opt-in wake-up hint: every append also runs `pg_notify(channel, <last position>)`, in
    /// the same statement, and [`PostgresEventStore::listen`] turns the notifications into a
    /// `watch` receiver for a runner's `wake_on`.
    ///
    /// Off by default: PostgreSQL serializes the commits of notifying transactions on one
    /// global lock (measured: 37% less append throughput with 8 concurrent writers). The
    /// notification never carries the event (payloads are limited to 8,000 bytes); readers
    /// still read the log with [`read_after`](crate::store::EventStore::read_after).
    ///
    /// Every checkpoint commit (a projection's batch, a reaction's) also notifies
    /// `<channel>_checkpoints` ([`PostgresEventStore::checkpoint_channel`]) in its
    /// transaction, with the committed position:
    /// [`PostgresEventStore::listen_checkpoints`] turns those into a wake-up for
    /// [`CheckpointWatch`](crate::processing::CheckpointWatch), so that another process
    /// waiting for a read model wakes when it moves.
    ///
    /// Keep the runner's poll interval as the safety net: a notification can arrive while
    /// its event is still hidden from `read_after` by an older transaction open elsewhere in
    /// the server (one that notifies nobody when it ends); the runner then reads the event
    /// at its next wake-up or poll.
    pub fn notify(mut self, channel: &str) -> Result<Self, InvalidIdentifier> {
        self.notify = Some(Ident::new(channel)?);
        Ok(self)
    }

    /// Whether [`open`](Self::open) creates or upgrades the schema (`true`, the default).
    /// With `false`, `open` creates nothing: it fails when the schema's tables are missing or
    /// not at the version this build writes. For tools that only read.
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// Reads the TLS root certificates, connects, creates or upgrades the schema (unless
    /// [`migrate(false)`](Self::migrate)), and prepares the statements.
    pub async fn open(self) -> Result<PostgresEventStore, StoreError> {
        let connector = Connector::new(&self.pg, &self.tls).await?;
        let mut client = open(&connector).await?;
        if self.migrate {
            migrate(&mut client, &self.schema, &self.tables).await?;
        } else {
            check_schema(&client, &self.schema, &self.tables).await?;
        }
        let texts = Texts::new(&self.schema, &self.tables, self.notify.as_ref());
        let first = Arc::new(Conn::prepare(client, &texts).await?);
        let mut slots = vec![Slot::new(Some(first))];
        slots.extend((1..self.connections).map(|_| Slot::new(None)));
        Ok(PostgresEventStore {
            inner: Arc::new(Inner {
                connector,
                config: self,
                texts,
                slots,
                next: AtomicUsize::new(0),
                heads: heads::KnownHeads::new(),
                exclusive: std::sync::Mutex::new(Vec::new()),
            }),
        })
    }
}

/// An [`EventStore`](crate::store::EventStore) (and checkpoint, snapshot and lease store) in a
/// PostgreSQL database. Cloning is cheap; clones share the connections.
#[derive(Clone)]
pub struct PostgresEventStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: PostgresConfig,
    /// Opens the store's connections, with its TLS settings.
    connector: Connector,
    texts: Texts,
    slots: Vec<Slot>,
    next: AtomicUsize,
    /// Stream versions known to be committed (see [`heads`]).
    heads: heads::KnownHeads,
    /// Idle connections for [`PostgresEventStore::append_with`], each used by one
    /// transaction at a time.
    exclusive: std::sync::Mutex<Vec<Conn>>,
}

impl fmt::Debug for PostgresEventStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresEventStore")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl PostgresEventStore {
    /// Connects to `url` with the defaults of [`PostgresConfig::new`], creating or upgrading
    /// the schema (the PostgreSQL twin of `SqliteEventStore::open`).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        PostgresConfig::new(url)?.open().await
    }

    /// The schema holding the tables.
    pub fn schema(&self) -> &str {
        self.inner.config.schema.as_str()
    }

    /// A shared connection, re-opened if it broke: the first idle one from a round-robin
    /// start, else the one with the fewest requests in flight. (Plain round robin queues a
    /// request behind another's commit on a busy connection while others sit idle.)
    async fn conn(&self) -> Result<InUse<'_>, StoreError> {
        let slots = &self.inner.slots;
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let mut chosen: Option<(&Slot, usize)> = None;
        for i in 0..slots.len() {
            let Some(slot) = slots.get(start.wrapping_add(i) % slots.len()) else {
                continue;
            };
            let in_flight = slot.in_flight.load(Ordering::Relaxed);
            if chosen.is_none_or(|(_, fewest)| in_flight < fewest) {
                chosen = Some((slot, in_flight));
            }
            if in_flight == 0 {
                break;
            }
        }
        let Some((slot, _)) = chosen else {
            return Err(StoreError::backend("no PostgreSQL connection slot"));
        };
        // Counted from now on; dropping `counted` (also on error) gives the slot back.
        let counted = Counted::new(&slot.in_flight);
        let mut current = slot.conn.lock().await;
        if let Some(conn) = current.as_ref().filter(|c| !c.client.is_closed()) {
            let conn = Arc::clone(conn);
            return Ok(InUse {
                _counted: counted,
                conn,
            });
        }
        let client = open(&self.inner.connector).await?;
        let conn = Arc::new(Conn::prepare(client, &self.inner.texts).await?);
        *current = Some(Arc::clone(&conn));
        Ok(InUse {
            _counted: counted,
            conn,
        })
    }
}

/// One shared connection (opened on first use) and how many requests use it right now.
struct Slot {
    conn: Mutex<Option<Arc<Conn>>>,
    in_flight: AtomicUsize,
}

impl Slot {
    fn new(conn: Option<Arc<Conn>>) -> Self {
        Self {
            conn: Mutex::new(conn),
            in_flight: AtomicUsize::new(0),
        }
    }
}

/// A shared connection in use by one request.
struct InUse<'a> {
    _counted: Counted<'a>,
    conn: Arc<Conn>,
}

impl std::ops::Deref for InUse<'_> {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        &self.conn
    }
}

/// One request counted in a slot's `in_flight` until dropped.
struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    fn new(in_flight: &'a AtomicUsize) -> Self {
        in_flight.fetch_add(1, Ordering::Relaxed);
        Self(in_flight)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One connection with its prepared statements (the store's, and read models' statements
/// prepared on it so far).
struct Conn {
    client: Client,
    st: Prepared,
    user: std::collections::HashMap<String, Statement>,
}

struct Prepared {
    append_new: Statement,
    append_exact: Statement,
    append_any: Statement,
    claiming_new: Statement,
    claiming_exact: Statement,
    claiming_any: Statement,
    head: Statement,
    slots: Statement,
    batch_heads: Statement,
    append_batch: Statement,
    read_stream: Statement,
    read_stream_events: Statement,
    read_after: Statement,
    read_filtered: Statement,
    log_head: Statement,
    read_event: Statement,
    load_snapshot: Statement,
    save_snapshot: Statement,
}

impl Conn {
    async fn prepare(client: Client, t: &Texts) -> Result<Self, StoreError> {
        client.batch_execute(&t.search_path).await.map_err(db)?;
        let p = |text: &str| {
            let text = text.to_owned();
            let client = &client;
            async move { client.prepare(&text).await.map_err(db) }
        };
        let st = Prepared {
            append_new: p(&t.append_new).await?,
            append_exact: p(&t.append_exact).await?,
            append_any: p(&t.append_any).await?,
            claiming_new: p(&t.claiming_new).await?,
            claiming_exact: p(&t.claiming_exact).await?,
            claiming_any: p(&t.claiming_any).await?,
            head: p(&t.head).await?,
            slots: p(&t.slots).await?,
            batch_heads: p(&t.batch_heads).await?,
            append_batch: p(&t.append_batch).await?,
            read_stream: p(&t.read_stream).await?,
            read_stream_events: p(&t.read_stream_events).await?,
            read_after: p(&t.read_after).await?,
            read_filtered: p(&t.read_filtered).await?,
            log_head: p(&t.log_head).await?,
            read_event: p(&t.read_event).await?,
            load_snapshot: p(&t.load_snapshot).await?,
            save_snapshot: p(&t.save_snapshot).await?,
        };
        Ok(Self {
            client,
            st,
            user: std::collections::HashMap::new(),
        })
    }
}

/// Opens the store's connections: the driver's settings with the TLS mode, and the rustls
/// configuration built once.
#[derive(Clone)]
struct Connector {
    pg: tokio_postgres::Config,
    tls: tls::MakeRustls,
    mode: SslMode,
}

impl Connector {
    async fn new(pg: &tokio_postgres::Config, settings: &Tls) -> Result<Self, StoreError> {
        let mut pg = pg.clone();
        pg.ssl_mode(settings.driver_mode());
        let tls = settings.connector().await.map_err(StoreError::backend)?;
        Ok(Self {
            pg,
            tls,
            mode: settings.ssl_mode(),
        })
    }

    /// Opens one connection; the caller drives it.
    async fn connect(&self) -> Result<(Client, Connection<Socket, tls::RustlsStream>), StoreError> {
        self.pg
            .connect(self.tls.clone())
            .await
            .map_err(|e| self.connect_error(e))
    }

    /// A connection failure: the TLS failure typed as a [`TlsError`], else as [`db`].
    fn connect_error(&self, error: tokio_postgres::Error) -> StoreError {
        let mut source = std::error::Error::source(&error);
        while let Some(s) = source {
            if let Some(tls) = s.downcast_ref::<TlsError>() {
                return if tls.is_transient() {
                    StoreError::unavailable(tls.clone())
                } else {
                    StoreError::backend(tls.clone())
                };
            }
            // The driver's own words when the server answers `N` to the SSL request.
            if s.to_string() == "server does not support TLS" {
                return StoreError::backend(TlsError::Refused { mode: self.mode });
            }
            source = s.source();
        }
        db(error)
    }
}

/// Opens one connection and drives it on a Tokio task until the client is dropped.
async fn open(connector: &Connector) -> Result<Client, StoreError> {
    let (client, connection) = connector.connect().await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "PostgreSQL connection closed with an error");
        }
    });
    Ok(client)
}

/// Checks, without changing anything, that the schema's tables are at the version this build
/// writes.
async fn check_schema(client: &Client, schema: &Ident, t: &TableNames) -> Result<(), StoreError> {
    let table = format!("{schema}.{}", t.migrations);
    let exists: bool = client
        .query_one("SELECT to_regclass($1::text) IS NOT NULL", &[&table])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(db)?;
    let current: i32 = if exists {
        client
            .query_one(
                &format!("SELECT coalesce(max(version), 0) FROM {table}"),
                &[],
            )
            .await
            .and_then(|row| row.try_get(0))
            .map_err(db)?
    } else {
        0
    };
    let wanted = i32::try_from(sql::migrations(schema, t).len()).unwrap_or(i32::MAX);
    if current == wanted {
        return Ok(());
    }
    Err(StoreError::backend(format!(
        "schema `{}` holds no event store at schema version {wanted} (found version {current}); \
         it was opened without migrating: open it with a build that migrates (the application, \
         or a subcommand that writes) first",
        schema.as_str()
    )))
}

/// Creates or upgrades the schema: one transaction under an advisory lock, so concurrent
/// processes starting together migrate once; each version is recorded and applied once.
async fn migrate(client: &mut Client, schema: &Ident, t: &TableNames) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(db)?;
    let lock_key = format!("cqrs-migrate:{}.{}", schema.as_str(), t.events.as_str());
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))",
        &[&lock_key],
    )
    .await
    .map_err(db)?;
    let table = format!("{schema}.{}", t.migrations);
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {table} (
             version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());"
    ))
    .await
    .map_err(db)?;
    let current: i32 = tx
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {table}"),
            &[],
        )
        .await
        .and_then(|row| row.try_get(0))
        .map_err(db)?;
    for (version, migration) in (1_i32..).zip(sql::migrations(schema, t)) {
        if version > current {
            tx.batch_execute(&migration).await.map_err(db)?;
            if version == 2 {
                sql::adopt_read_model_checkpoints(&tx, schema, t).await?;
            }
            tx.execute(
                &format!("INSERT INTO {table} (version) VALUES ($1)"),
                &[&version],
            )
            .await
            .map_err(db)?;
        }
    }
    tx.commit().await.map_err(db)
}
