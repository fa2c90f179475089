//! SQL read models in a SQLite file: the batch's statements and the checkpoint commit in one
//! `BEGIN IMMEDIATE` transaction (exactly once).

use std::fmt;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{SqliteConfig, blocking, connect, poisoned};
use crate::projection::{Checkpoint, Delivery, ReadModelStore, Step};
use crate::store::idempotency::{to_i64, to_u64};
use crate::store::names::Ident;
use crate::store::sql_model::{
    Buffered, CHECKPOINT_TABLE, SqlDialect, SqlModelError, SqlModelStore, SqlProjection,
    SqlStatement, SqlValue, SqlWrites, buffer_batch,
};
use crate::store::{Cursor, StoreError, StoredEvent};

/// A SQL read model in a SQLite file, with its checkpoint in the same file: exactly once.
///
/// Each batch's [`SqlWrites`] run in one `BEGIN IMMEDIATE` transaction together with the
/// checkpoint upsert (table [`CHECKPOINT_TABLE`]); a process killed at any point leaves the
/// tables matching the checkpoint. The file may be the event store's own file or another one.
/// Read the model with [`SqliteReadModel::read`] (any `rusqlite` query on a reader connection)
/// or [`SqliteReadModel::fetch_all`]. Cloning is cheap; clones share the connections.
///
/// Run it with `.with_leases(event_store)` (or another shared [`LeaseStore`]) so that one
/// runner per projection is active across processes; even without, the checkpoint re-read in
/// each batch transaction keeps every event applied once.
///
/// ```
/// use cqrs_runtime::prelude::*;
/// use cqrs_runtime::projection::EventMeta;
/// use cqrs_runtime::store::{SqlProjection, SqlWrites};
/// use serde::{Deserialize, Serialize};
///
/// # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
/// # #[event(name = "item_added", version = 1)]
/// # pub struct ItemAdded { pub sku: String, pub qty: u32 }
/// # #[derive(Debug, Clone, PartialEq, EventEnum)]
/// # pub enum CartEvent { Added(ItemAdded) }
/// #[derive(Default)]
/// pub struct Demand;
///
/// #[projection(name = "demand", events = CartEvent, transaction = SqlWrites)]
/// impl Demand {
///     #[on]
///     fn added(&mut self, e: &ItemAdded, _: &EventMeta, db: &mut SqlWrites) {
///         db.execute(
///             "INSERT INTO demand (sku, qty) VALUES ($1, $2) \
///              ON CONFLICT (sku) DO UPDATE SET qty = demand.qty + excluded.qty",
///             [e.sku.as_str().into(), e.qty.into()],
///         );
///     }
/// }
///
/// impl SqlProjection for Demand {
///     fn create_tables(db: &mut SqlWrites) {
///         db.execute("CREATE TABLE IF NOT EXISTS demand (sku TEXT PRIMARY KEY, qty BIGINT NOT NULL)", []);
///     }
///     fn clear_tables(db: &mut SqlWrites) {
///         db.execute("DELETE FROM demand", []);
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use cqrs_runtime::projection::ProjectionRunner;
/// use cqrs_runtime::store::{NewEvent, SqliteEventStore, SqliteReadModel, SqlValue};
///
/// let dir = std::env::temp_dir().join(format!("cqrs-doc-sql-{}", uuid::Uuid::now_v7()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("app.sqlite");
/// let store = SqliteEventStore::open(&path).await?;
/// for qty in [2, 3] {
///     let added = CartEvent::Added(ItemAdded { sku: "tea".into(), qty }).encode()?;
///     store.append("cart", "c-1", ExpectedVersion::Any, vec![NewEvent::from_encoded(added, Metadata::new())]).await?;
/// }
/// // The read model may share the event store's file (or live in another one).
/// let model = SqliteReadModel::<Demand>::open(&path).await?;
/// ProjectionRunner::new(store.clone(), model.clone()).with_leases(store).catch_up().await?;
/// let rows = model.fetch_all("SELECT qty FROM demand WHERE sku = $1", &["tea".into()]).await?;
/// assert_eq!(rows, vec![vec![SqlValue::Int(5)]]);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
///
/// [`LeaseStore`]: crate::store::LeaseStore
pub struct SqliteReadModel<P> {
    inner: Arc<Inner<P>>,
}

struct Inner<P> {
    config: SqliteConfig,
    checkpoints: Ident,
    /// The write connection (its `Mutex` is taken on the blocking pool only).
    writer: Arc<Mutex<Connection>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    /// The projection value handlers run on; also serializes this handle's batches.
    model: tokio::sync::Mutex<P>,
    _projection: PhantomData<fn() -> P>,
}

impl<P> Clone for SqliteReadModel<P> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<P> fmt::Debug for SqliteReadModel<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteReadModel")
            .field("path", &self.inner.config.path)
            .field("checkpoints", &self.inner.checkpoints)
            .finish_non_exhaustive()
    }
}

impl<P: SqlProjection + Default> SqliteReadModel<P> {
    /// Opens (creating if needed) the file at `path`, the checkpoint table and the model's
    /// tables ([`SqlProjection::create_tables`]), in one transaction.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let config = SqliteConfig::new(path);
        let checkpoints = Ident::new(CHECKPOINT_TABLE).map_err(StoreError::backend)?;
        let (writer, checkpoints) = blocking(move || {
            let mut conn = connect(&config)?;
            let mut setup = SqlWrites::new(SqlDialect::Sqlite);
            setup.execute(
                format!(
                    "CREATE TABLE IF NOT EXISTS {checkpoints} (
                        projection    TEXT    PRIMARY KEY,
                        last_tx_id    INTEGER NOT NULL,
                        last_position INTEGER NOT NULL,
                        version       INTEGER NOT NULL,
                        fingerprint   INTEGER NOT NULL,
                        updated_at    INTEGER NOT NULL
                    )"
                ),
                [],
            );
            P::create_tables(&mut setup);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(StoreError::backend)?;
            for statement in setup.statements() {
                run::<P>(&tx, statement)?;
            }
            tx.commit().map_err(StoreError::backend)?;
            Ok(((conn, config), checkpoints))
        })
        .await?;
        let (conn, config) = writer;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                checkpoints,
                writer: Arc::new(Mutex::new(conn)),
                readers: Arc::new(Mutex::new(Vec::new())),
                model: tokio::sync::Mutex::new(P::default()),
                _projection: PhantomData,
            }),
        })
    }
}

impl<P: SqlProjection> SqliteReadModel<P> {
    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.inner.config.path
    }

    /// Runs `f` on a reader connection of the file, on Tokio's blocking pool: how queries read
    /// the model (WAL mode: readers never block the runner's writes, and see committed
    /// batches only).
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.with_reader(move |conn| f(conn).map_err(StoreError::backend))
            .await
    }

    /// Runs a read query with `$1`, `$2`, ... bound to `params`; returns every row as values
    /// (the portable way to read a model on either SQL backend).
    pub async fn fetch_all(
        &self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Vec<Vec<SqlValue>>, StoreError> {
        let statement = SqlStatement {
            sql: sql.to_owned().into(),
            params: params.to_vec(),
        };
        self.with_reader(move |conn| query::<P>(conn, &statement))
            .await
    }

    /// Runs `f` on an idle reader connection (or a new one), on the blocking pool.
    async fn with_reader<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = Arc::clone(&self.inner.readers);
        let config = self.inner.config.clone();
        blocking(move || {
            let idle = readers.lock().map_err(|_| poisoned())?.pop();
            let conn = match idle {
                Some(conn) => conn,
                None => connect(&config)?,
            };
            let result = f(&conn);
            let mut readers = readers.lock().map_err(|_| poisoned())?;
            if readers.len() < 2 {
                readers.push(conn);
            }
            result
        })
        .await
    }

    /// The stored checkpoint (what a runner resumes from).
    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        let writer = Arc::clone(&self.inner.writer);
        let table = self.inner.checkpoints.clone();
        blocking(move || {
            let conn = writer.lock().map_err(|_| poisoned())?;
            load::<P>(&conn, &table)
        })
        .await
    }

    /// Runs `statements` and then `finish` in one immediate transaction on the writer.
    async fn transaction(
        &self,
        buffered: Buffered,
        finish: impl FnOnce(&Connection, &Ident, Option<Checkpoint>) -> Result<(), StoreError>
        + Send
        + 'static,
    ) -> Result<(), StoreError> {
        let writer = Arc::clone(&self.inner.writer);
        let table = self.inner.checkpoints.clone();
        blocking(move || {
            let mut conn = writer.lock().map_err(|_| poisoned())?;
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(StoreError::backend)?;
            // Under SQLite's write lock: nobody else commits a batch until this one ends.
            let stored = load::<P>(&tx, &table)?;
            for statement in buffered.after(stored.map(|c| c.cursor)) {
                run::<P>(&tx, statement)?;
            }
            finish(&tx, &table, stored)?;
            tx.commit().map_err(StoreError::backend)
        })
        .await
    }
}

impl<P: SqlProjection> SqlModelStore<P> for SqliteReadModel<P> {
    async fn fetch_all(
        &self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Vec<Vec<SqlValue>>, StoreError> {
        SqliteReadModel::fetch_all(self, sql, params).await
    }
}

impl<P: SqlProjection> ReadModelStore<P> for SqliteReadModel<P> {
    fn delivery(&self) -> Delivery {
        Delivery::ExactlyOnce
    }

    async fn load_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        self.checkpoint().await
    }

    async fn apply_batch<F>(
        &self,
        batch: &[(Cursor, StoredEvent)],
        step: F,
    ) -> Result<Option<Cursor>, StoreError>
    where
        F: FnMut(&mut P, &mut SqlWrites, Cursor, &StoredEvent) -> Step + Send,
    {
        let mut model = self.inner.model.lock().await;
        let (buffered, last) = buffer_batch(&mut *model, SqlDialect::Sqlite, batch, step);
        let Some(last) = last else {
            return Ok(None);
        };
        self.transaction(buffered, move |tx, table, stored| {
            // Never move the checkpoint backwards (a batch another runner already committed).
            let cursor = stored.map_or(last, |s| s.cursor.max(last));
            save::<P>(tx, table, cursor)
        })
        .await?;
        Ok(Some(last))
    }

    async fn reset(&self) -> Result<(), StoreError> {
        let mut model = self.inner.model.lock().await;
        let mut clear = SqlWrites::new(SqlDialect::Sqlite);
        P::clear_tables(&mut clear);
        let buffered = Buffered {
            statements: clear.take(),
            events: Vec::new(),
        };
        self.transaction(buffered, |tx, table, _| {
            tx.execute(
                &format!("DELETE FROM {table} WHERE projection = ?1"),
                [P::NAME],
            )
            .map_err(StoreError::backend)?;
            Ok(())
        })
        .await?;
        model.reset();
        Ok(())
    }
}

fn load<P: SqlProjection>(
    conn: &Connection,
    table: &Ident,
) -> Result<Option<Checkpoint>, StoreError> {
    let row: Option<(i64, i64, i64, i64)> = conn
        .query_row(
            &format!(
                "SELECT last_tx_id, last_position, version, fingerprint FROM {table} WHERE projection = ?1"
            ),
            [P::NAME],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()
        .map_err(StoreError::backend)?;
    row.map(|(tx, position, version, fingerprint)| {
        Ok(Checkpoint {
            cursor: Cursor {
                tx: to_u64(tx, "checkpoint tx")?,
                position: to_u64(position, "checkpoint position")?,
            },
            version: u32::try_from(version).map_err(|_| {
                StoreError::backend(format!("stored version {version} is not a u32"))
            })?,
            // Stored as the same 64 bits, reinterpreted.
            fingerprint: fingerprint as u64,
        })
    })
    .transpose()
}

fn save<P: SqlProjection>(
    conn: &Connection,
    table: &Ident,
    cursor: Cursor,
) -> Result<(), StoreError> {
    conn.execute(
        &format!(
            "INSERT INTO {table} (projection, last_tx_id, last_position, version, fingerprint, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (projection) DO UPDATE SET last_tx_id = excluded.last_tx_id, \
             last_position = excluded.last_position, version = excluded.version, \
             fingerprint = excluded.fingerprint, updated_at = excluded.updated_at"
        ),
        params![
            P::NAME,
            to_i64(cursor.tx, "checkpoint tx")?,
            to_i64(cursor.position, "checkpoint position")?,
            i64::from(P::VERSION),
            P::FINGERPRINT as i64,
            crate::store::now().timestamp_micros(),
        ],
    )
    .map_err(StoreError::backend)?;
    Ok(())
}

/// Prepares `statement` and binds its values: `$N` by name where the SQL uses `$N`, otherwise
/// by position (`?N`, `?`).
fn bind<'c, P: SqlProjection>(
    conn: &'c Connection,
    statement: &SqlStatement,
) -> Result<rusqlite::CachedStatement<'c>, StoreError> {
    let failed = |source: rusqlite::Error| {
        StoreError::backend(SqlModelError::Statement {
            projection: P::NAME,
            sql: statement.sql.to_string(),
            source: Box::new(source),
        })
    };
    let mut prepared = conn.prepare_cached(&statement.sql).map_err(failed)?;
    let expected = prepared.parameter_count();
    if expected != statement.params.len() {
        return Err(StoreError::backend(SqlModelError::ParameterCount {
            projection: P::NAME,
            sql: statement.sql.to_string(),
            expected,
            given: statement.params.len(),
        }));
    }
    for (n, value) in (1..).zip(&statement.params) {
        let index = prepared
            .parameter_index(&format!("${n}"))
            .map_err(failed)?
            .unwrap_or(n);
        prepared.raw_bind_parameter(index, value).map_err(failed)?;
    }
    Ok(prepared)
}

/// Runs one buffered statement (rows it may return are read and dropped).
fn run<P: SqlProjection>(conn: &Connection, statement: &SqlStatement) -> Result<(), StoreError> {
    let mut prepared = bind::<P>(conn, statement)?;
    let result = if prepared.column_count() == 0 {
        prepared.raw_execute().map(drop)
    } else {
        let mut rows = prepared.raw_query();
        loop {
            match rows.next() {
                Ok(Some(_)) => {}
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        }
    };
    result.map_err(|source| {
        StoreError::backend(SqlModelError::Statement {
            projection: P::NAME,
            sql: statement.sql.to_string(),
            source: Box::new(source),
        })
    })
}

/// Runs a read query and returns its rows as values.
fn query<P: SqlProjection>(
    conn: &Connection,
    statement: &SqlStatement,
) -> Result<Vec<Vec<SqlValue>>, StoreError> {
    let mut prepared = bind::<P>(conn, statement)?;
    let columns = prepared.column_count();
    let mut rows = prepared.raw_query();
    let mut out = Vec::new();
    let failed = |source: rusqlite::Error| {
        StoreError::backend(SqlModelError::Statement {
            projection: P::NAME,
            sql: statement.sql.to_string(),
            source: Box::new(source),
        })
    };
    while let Some(row) = rows.next().map_err(failed)? {
        let mut values = Vec::with_capacity(columns);
        for i in 0..columns {
            let value = match row.get_ref(i).map_err(failed)? {
                ValueRef::Null => SqlValue::Null,
                ValueRef::Integer(v) => SqlValue::Int(v),
                ValueRef::Real(v) => SqlValue::Float(v),
                ValueRef::Text(v) => SqlValue::Text(String::from_utf8_lossy(v).into_owned()),
                ValueRef::Blob(v) => SqlValue::Bytes(v.to_vec()),
            };
            values.push(value);
        }
        out.push(values);
    }
    Ok(out)
}

/// Binds as SQLite's storage classes: JSON as its text, booleans as 0 or 1.
impl rusqlite::ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Self::Null => ToSqlOutput::Owned(Value::Null),
            Self::Int(v) => ToSqlOutput::Owned(Value::Integer(*v)),
            Self::Float(v) => ToSqlOutput::Owned(Value::Real(*v)),
            Self::Text(v) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
            Self::Bytes(v) => ToSqlOutput::Borrowed(ValueRef::Blob(v)),
            Self::Json(v) => ToSqlOutput::Owned(Value::Text(v.to_string())),
            Self::Bool(v) => ToSqlOutput::Owned(Value::Integer(i64::from(*v))),
        })
    }
}
