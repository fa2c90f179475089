//! The PostgreSQL store: many writer and projection processes share one database.
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
//! - Every event row carries its transaction id (`xid8`). [`EventStore::read_after`] reads
//!   `(tx_id, global_position) > cursor AND tx_id < pg_snapshot_xmin(pg_current_snapshot())`:
//!   an event of a transaction still in flight is never skipped, only read later. Use it, not
//!   [`EventStore::read_all`], to follow the log (positions commit out of order).
//! - The schema is created and upgraded from code ([`PostgresConfig::connect`] migrates),
//!   idempotently, under an advisory lock; schema and table names are configurable.
//! - Leases are session advisory locks held on a dedicated connection (see [`PostgresLease`]).
//! - Statements are prepared once per connection; a small set of connections is shared by
//!   round robin (tokio-postgres pipelines concurrent requests on one connection) and
//!   re-opened when one breaks.

mod events;
mod extras;
mod heads;
mod notify;
mod read_model;
mod sql;
mod transaction;
mod values;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls, Statement};

use super::StoreError;
use super::names::{Ident, InvalidIdentifier, TableNames};
pub use extras::PostgresLease;
pub use notify::ListenError;
pub use read_model::PostgresReadModel;
use sql::Texts;
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
            .finish()
    }
}

impl PostgresConfig {
    /// Parses a connection URL (`postgres://user@host:5432/db`) or key-value string; the
    /// `public` schema, default table names, 4 connections.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        Ok(Self {
            pg: tokio_postgres::Config::from_str(url).map_err(StoreError::backend)?,
            schema: Ident::new("public").map_err(StoreError::backend)?,
            tables: TableNames::default(),
            connections: 4,
            notify: None,
        })
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
    /// `watch` receiver for [`ProjectionRunner::wake_on`](crate::projection::ProjectionRunner::wake_on).
    ///
    /// Off by default: PostgreSQL serializes the commits of notifying transactions on one
    /// global lock (measured: 37% less append throughput with 8 concurrent writers). The
    /// notification never carries the event (payloads are limited to 8,000 bytes); readers
    /// still read the log with [`read_after`](crate::store::EventStore::read_after).
    ///
    /// Keep the runner's poll interval as the safety net: a notification can arrive while
    /// its event is still hidden from `read_after` by an older transaction open elsewhere in
    /// the server (one that notifies nobody when it ends); the runner then reads the event
    /// at its next wake-up or poll.
    pub fn notify(mut self, channel: &str) -> Result<Self, InvalidIdentifier> {
        self.notify = Some(Ident::new(channel)?);
        Ok(self)
    }

    /// Connects, creates or upgrades the schema, and prepares the statements.
    pub async fn connect(self) -> Result<PostgresEventStore, StoreError> {
        let mut client = open(&self.pg).await?;
        migrate(&mut client, &self.schema, &self.tables).await?;
        let texts = Texts::new(&self.schema, &self.tables, self.notify.as_ref());
        let first = Arc::new(Conn::prepare(client, &texts).await?);
        let mut slots = vec![Slot::new(Some(first))];
        slots.extend((1..self.connections).map(|_| Slot::new(None)));
        Ok(PostgresEventStore {
            inner: Arc::new(Inner {
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

/// An [`EventStore`](super::EventStore) (and checkpoint, snapshot and lease store) in a
/// PostgreSQL database. Cloning is cheap; clones share the connections.
#[derive(Clone)]
pub struct PostgresEventStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: PostgresConfig,
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
    /// Connects to `url` with the defaults of [`PostgresConfig::from_url`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        PostgresConfig::from_url(url)?.connect().await
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
        let client = open(&self.inner.config.pg).await?;
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

/// One connection with its prepared statements.
struct Conn {
    client: Client,
    st: Prepared,
}

struct Prepared {
    append_new: Statement,
    append_exact: Statement,
    append_any: Statement,
    head: Statement,
    slots: Statement,
    read_stream: Statement,
    read_stream_events: Statement,
    read_all: Statement,
    read_after: Statement,
    head_position: Statement,
    load_checkpoint: Statement,
    save_checkpoint: Statement,
    reset_checkpoint: Statement,
    load_snapshot: Statement,
    save_snapshot: Statement,
}

impl Conn {
    async fn prepare(client: Client, t: &Texts) -> Result<Self, StoreError> {
        let p = |text: &str| {
            let text = text.to_owned();
            let client = &client;
            async move { client.prepare(&text).await.map_err(StoreError::backend) }
        };
        let st = Prepared {
            append_new: p(&t.append_new).await?,
            append_exact: p(&t.append_exact).await?,
            append_any: p(&t.append_any).await?,
            head: p(&t.head).await?,
            slots: p(&t.slots).await?,
            read_stream: p(&t.read_stream).await?,
            read_stream_events: p(&t.read_stream_events).await?,
            read_all: p(&t.read_all).await?,
            read_after: p(&t.read_after).await?,
            head_position: p(&t.head_position).await?,
            load_checkpoint: p(&t.load_checkpoint).await?,
            save_checkpoint: p(&t.save_checkpoint).await?,
            reset_checkpoint: p(&t.reset_checkpoint).await?,
            load_snapshot: p(&t.load_snapshot).await?,
            save_snapshot: p(&t.save_snapshot).await?,
        };
        Ok(Self { client, st })
    }
}

/// Opens one connection and drives it on a Tokio task until the client is dropped.
async fn open(config: &tokio_postgres::Config) -> Result<Client, StoreError> {
    let (client, connection) = config.connect(NoTls).await.map_err(StoreError::backend)?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "PostgreSQL connection closed with an error");
        }
    });
    Ok(client)
}

/// Creates or upgrades the schema: one transaction under an advisory lock, so concurrent
/// processes starting together migrate once; each version is recorded and applied once.
async fn migrate(client: &mut Client, schema: &Ident, t: &TableNames) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(StoreError::backend)?;
    let lock_key = format!("cqrs-migrate:{}.{}", schema.as_str(), t.events.as_str());
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))",
        &[&lock_key],
    )
    .await
    .map_err(StoreError::backend)?;
    let table = format!("{schema}.{}", t.migrations);
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {table} (
             version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());"
    ))
    .await
    .map_err(StoreError::backend)?;
    let current: i32 = tx
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {table}"),
            &[],
        )
        .await
        .and_then(|row| row.try_get(0))
        .map_err(StoreError::backend)?;
    for (version, migration) in (1_i32..).zip(sql::migrations(schema, t)) {
        if version > current {
            tx.batch_execute(&migration)
                .await
                .map_err(StoreError::backend)?;
            tx.execute(
                &format!("INSERT INTO {table} (version) VALUES ($1)"),
                &[&version],
            )
            .await
            .map_err(StoreError::backend)?;
        }
    }
    tx.commit().await.map_err(StoreError::backend)
}
