//! SQL read models, exactly once: what a projection writes through ([`SqlWrites`]), the values
//! it binds ([`SqlValue`]), and how it declares its tables ([`SqlProjection`]).
//!
//! A projection whose read model lives in SQL tables declares
//! `#[projection(..., transaction = SqlWrites)]`; its `#[on]` handlers take a third argument,
//! `db: &mut SqlWrites`, and call [`SqlWrites::execute`]. Handlers are sync and the PostgreSQL
//! driver is async, so handlers do not talk to the database: they *buffer* statements. The
//! store ([`SqliteReadModel`](crate::store::SqliteReadModel),
//! [`PostgresReadModel`](crate::store::PostgresReadModel)) then runs the batch's buffer and the
//! checkpoint upsert in **one database transaction**: the model's rows and the checkpoint
//! commit together or not at all, so a runner killed at any point leaves a model that matches
//! its checkpoint, and the next runner resumes right after it (exactly once).
//!
//! Inside that transaction the store also reads the stored checkpoint first and drops the
//! statements of every event at or before it: a runner that lost its lease (or a second
//! runner started by mistake) cannot apply an event twice.
//!
//! Values are always bound parameters, never spliced into the SQL text. Placeholders are
//! written `$1`, `$2`, ... on both backends (PostgreSQL's own syntax; the SQLite store binds
//! `$N` by name, so they may appear in any order or repeat).
//!
//! The fields of the projection struct itself are not stored and not rolled back: keep the
//! read model in the tables, and treat `self` as configuration or scratch space.
//!
//! ```
//! use cqrs_runtime::prelude::*;
//! use cqrs_runtime::projection::EventMeta;
//! use cqrs_runtime::store::{SqlProjection, SqlWrites};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
//! #[event(name = "item_added", version = 1)]
//! pub struct ItemAdded { pub sku: String, pub qty: u32 }
//!
//! #[derive(Debug, Clone, PartialEq, EventEnum)]
//! pub enum CartEvent { Added(ItemAdded) }
//!
//! #[derive(Default)]
//! pub struct Demand;
//!
//! #[projection(name = "demand", events = CartEvent, transaction = SqlWrites)]
//! impl Demand {
//!     #[on]
//!     fn added(&mut self, e: &ItemAdded, _: &EventMeta, db: &mut SqlWrites) {
//!         db.execute(
//!             "INSERT INTO demand (sku, qty) VALUES ($1, $2) \
//!              ON CONFLICT (sku) DO UPDATE SET qty = demand.qty + excluded.qty",
//!             [e.sku.as_str().into(), e.qty.into()],
//!         );
//!     }
//! }
//!
//! impl SqlProjection for Demand {
//!     fn create_tables(db: &mut SqlWrites) {
//!         db.execute("CREATE TABLE IF NOT EXISTS demand (sku TEXT PRIMARY KEY, qty BIGINT NOT NULL)", []);
//!     }
//!     fn clear_tables(db: &mut SqlWrites) {
//!         db.execute("DELETE FROM demand", []);
//!     }
//! }
//!
//! ```
//!
//! [`SqliteReadModel`](crate::store::SqliteReadModel) runs this projection end to end;
//! [`PostgresReadModel`](crate::store::PostgresReadModel) is used the same way.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;

use crate::projection::{Projection, ReadModelStore};
use crate::store::StoreError;

/// One value bound to a placeholder: owned, so that buffered statements outlive the event.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// SQL `NULL` (also what `None` converts to).
    Null,
    /// A 64-bit integer. PostgreSQL narrows it to `smallint`/`integer` columns, checking the
    /// range.
    Int(i64),
    /// A double-precision float.
    Float(f64),
    /// Text. PostgreSQL sends it in text format to columns of other types, so a string binds
    /// to `uuid`, `timestamptz`, `numeric`, `date`, ... columns and the server parses it.
    Text(String),
    /// Bytes (`BLOB`, `bytea`).
    Bytes(Vec<u8>),
    /// A JSON document: `json`/`jsonb` on PostgreSQL, its text on SQLite.
    Json(serde_json::Value),
    /// A boolean: `boolean` on PostgreSQL, 0 or 1 on SQLite.
    Bool(bool),
}

macro_rules! int_from {
    ($($t:ty),*) => {$(
        impl From<$t> for SqlValue {
            fn from(v: $t) -> Self {
                Self::Int(i64::from(v))
            }
        }
    )*};
}
int_from!(i8, i16, i32, i64, u8, u16, u32);

impl TryFrom<u64> for SqlValue {
    type Error = std::num::TryFromIntError;

    /// Fails above `i64::MAX` (SQL integers are signed 64-bit).
    fn try_from(v: u64) -> Result<Self, Self::Error> {
        i64::try_from(v).map(Self::Int)
    }
}

impl From<f32> for SqlValue {
    fn from(v: f32) -> Self {
        Self::Float(f64::from(v))
    }
}

impl From<f64> for SqlValue {
    fn from(v: f64) -> Self {
        Self::Float(v)
    }
}

impl From<bool> for SqlValue {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}

impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}

impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}

impl From<&String> for SqlValue {
    fn from(v: &String) -> Self {
        Self::Text(v.clone())
    }
}

impl From<Vec<u8>> for SqlValue {
    fn from(v: Vec<u8>) -> Self {
        Self::Bytes(v)
    }
}

impl From<&[u8]> for SqlValue {
    fn from(v: &[u8]) -> Self {
        Self::Bytes(v.to_vec())
    }
}

impl From<serde_json::Value> for SqlValue {
    fn from(v: serde_json::Value) -> Self {
        Self::Json(v)
    }
}

impl From<uuid::Uuid> for SqlValue {
    /// The hyphenated text form (binds to `uuid` columns on PostgreSQL, `TEXT` on SQLite).
    fn from(v: uuid::Uuid) -> Self {
        Self::Text(v.hyphenated().to_string())
    }
}

impl From<chrono::DateTime<chrono::Utc>> for SqlValue {
    /// RFC 3339 text with microseconds (binds to `timestamptz` on PostgreSQL; sorts as text on
    /// SQLite).
    fn from(v: chrono::DateTime<chrono::Utc>) -> Self {
        Self::Text(v.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
    }
}

impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

impl fmt::Display for SqlValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("NULL"),
            Self::Int(v) => write!(f, "{v}"),
            Self::Float(v) => write!(f, "{v}"),
            Self::Text(v) => write!(f, "{v:?}"),
            Self::Bytes(v) => write!(f, "<{} bytes>", v.len()),
            Self::Json(v) => write!(f, "{v}"),
            Self::Bool(v) => write!(f, "{v}"),
        }
    }
}

/// The SQL dialect a [`SqlWrites`] buffer will run on, for the rare statement that differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlDialect {
    /// SQLite ([`SqliteReadModel`](crate::store::SqliteReadModel)).
    Sqlite,
    /// PostgreSQL ([`PostgresReadModel`](crate::store::PostgresReadModel)).
    Postgres,
}

/// One buffered statement: SQL text and its bound values.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlStatement {
    /// The SQL text, with `$1`, `$2`, ... placeholders.
    pub sql: Cow<'static, str>,
    /// The values bound to `$1`, `$2`, ..., in order.
    pub params: Vec<SqlValue>,
}

/// The transaction of a SQL read model: the statements the handlers of one batch write,
/// executed by the store inside the transaction that also writes the checkpoint.
///
/// Declare it with `#[projection(..., transaction = SqlWrites)]`; see the [module
/// docs](self) for the whole picture.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlWrites {
    dialect: SqlDialect,
    statements: Vec<SqlStatement>,
}

impl SqlWrites {
    /// An empty buffer for `dialect`.
    pub fn new(dialect: SqlDialect) -> Self {
        Self {
            dialect,
            statements: Vec::new(),
        }
    }

    /// The dialect the statements will run on.
    pub fn dialect(&self) -> SqlDialect {
        self.dialect
    }

    /// Buffers one statement with its values bound to `$1`, `$2`, ...; it runs when the batch
    /// commits, in order, inside the batch's transaction. Never format a value into `sql`.
    pub fn execute<I>(&mut self, sql: impl Into<Cow<'static, str>>, params: I) -> &mut Self
    where
        I: IntoIterator<Item = SqlValue>,
    {
        self.statements.push(SqlStatement {
            sql: sql.into(),
            params: params.into_iter().collect(),
        });
        self
    }

    /// The buffered statements, oldest first.
    pub fn statements(&self) -> &[SqlStatement] {
        &self.statements
    }

    /// How many statements are buffered.
    pub fn len(&self) -> usize {
        self.statements.len()
    }

    /// Whether no statement is buffered.
    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    /// Drops the statements buffered after the first `len` ones.
    pub fn truncate(&mut self, len: usize) {
        self.statements.truncate(len);
    }

    /// Takes the statements out, leaving the buffer empty.
    pub fn take(&mut self) -> Vec<SqlStatement> {
        std::mem::take(&mut self.statements)
    }
}

/// A projection whose read model lives in SQL tables, written through [`SqlWrites`].
///
/// How a rebuild resets SQL tables: [`Projection::reset`] has no transaction (it clears the
/// in-memory fields), so a SQL projection also names its tables' statements here. The store
/// runs [`SqlProjection::create_tables`] when it opens (idempotent statements, with the
/// checkpoint table's creation, in one transaction), and [`SqlProjection::clear_tables`] at
/// the start of a rebuild, in the same transaction that deletes the checkpoint: a rebuild
/// killed half-way leaves empty tables and no checkpoint, never a cleared model with a stale
/// checkpoint. Bumping the projection's `version` (or changing its handled events) makes the
/// runner refuse the old checkpoint ([`crate::projection::ProjectionError::RebuildRequired`],
/// or a rebuild with `rebuild_on_change()`); `create_tables` runs before that, so a changed
/// table shape is best given a new table name, or dropped and re-created in `clear_tables`.
pub trait SqlProjection: Projection<Transaction = SqlWrites> {
    /// Buffers the statements that create the read model's tables if they are missing
    /// (`CREATE TABLE IF NOT EXISTS ...`, indexes). Run at every open: keep them idempotent.
    fn create_tables(db: &mut SqlWrites);

    /// Buffers the statements that empty the read model's tables (`DELETE FROM ...`).
    fn clear_tables(db: &mut SqlWrites);
}

/// A store of SQL read models, whichever the database: what code that works on both
/// [`SqliteReadModel`](crate::store::SqliteReadModel) and
/// [`PostgresReadModel`](crate::store::PostgresReadModel) reads the model through.
///
/// Backend-specific reads have their own doors: `SqliteReadModel::read` lends a `rusqlite`
/// connection, `PostgresReadModel::client` a `tokio-postgres` client.
pub trait SqlModelStore<P: SqlProjection>: ReadModelStore<P> {
    /// Runs a read query with `$1`, `$2`, ... bound to `params`, and returns every row.
    fn fetch_all(
        &self,
        sql: &str,
        params: &[SqlValue],
    ) -> impl Future<Output = Result<Vec<Vec<SqlValue>>, StoreError>> + Send;
}

/// Why a SQL read-model operation failed (inside [`StoreError::Backend`]).
///
/// [`StoreError::Backend`]: crate::store::StoreError::Backend
#[derive(Debug, thiserror::Error)]
pub enum SqlModelError {
    /// A statement of the model failed (syntax, constraint, type, connection...).
    #[error("read model `{projection}`: statement `{sql}` failed: {source}")]
    Statement {
        /// The projection's name.
        projection: &'static str,
        /// The statement's SQL text.
        sql: String,
        /// The driver's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A statement has another number of placeholders than values given.
    #[error(
        "read model `{projection}`: statement `{sql}` has {expected} placeholder(s) but {given} value(s) were given"
    )]
    ParameterCount {
        /// The projection's name.
        projection: &'static str,
        /// The statement's SQL text.
        sql: String,
        /// The number of placeholders.
        expected: usize,
        /// The number of values.
        given: usize,
    },
    /// A value does not fit the column type PostgreSQL inferred for its placeholder.
    #[error(
        "value {value} cannot be bound to a parameter of type `{column_type}`; cast in SQL (for example `$1::text`) or convert the value"
    )]
    Value {
        /// The value (its display form).
        value: String,
        /// The parameter's SQL type.
        column_type: String,
    },
    /// A column of a read query has a type with no [`SqlValue`] equivalent.
    #[error(
        "column `{column}` has type `{column_type}`, which has no SqlValue form; cast it in the query (for example `{column}::text`)"
    )]
    ColumnType {
        /// The column's name.
        column: String,
        /// The column's SQL type.
        column_type: String,
    },
}

/// The default name of the table that holds SQL read models' checkpoints (one row per
/// projection: cursor, version, fingerprint).
pub const CHECKPOINT_TABLE: &str = "read_model_checkpoints";

/// Which buffered statements belong to which event of a batch.
pub(crate) struct Buffered {
    /// The statements of the batch.
    pub(crate) statements: Vec<SqlStatement>,
    /// Each advanced event's cursor and the index of its first statement, in order.
    pub(crate) events: Vec<(crate::store::Cursor, usize)>,
}

impl Buffered {
    /// The statements of the events after `stored` (all of them when `None`, or when the
    /// statements belong to no event: setup, reset): the idempotency guard against a batch
    /// whose first events another runner already committed.
    pub(crate) fn after(
        &self,
        stored: Option<crate::store::Cursor>,
    ) -> impl Iterator<Item = &SqlStatement> {
        let first = match stored {
            _ if self.events.is_empty() => 0,
            None => 0,
            Some(stored) => self
                .events
                .iter()
                .find(|(cursor, _)| *cursor > stored)
                .map_or(self.statements.len(), |(_, start)| *start),
        };
        self.statements.get(first..).unwrap_or_default().iter()
    }
}

/// Runs `step` over `batch` with one [`SqlWrites`] buffer, keeping only the statements of
/// advanced events; returns the buffer split per event and the last advanced cursor.
pub(crate) fn buffer_batch<P, F>(
    model: &mut P,
    dialect: SqlDialect,
    batch: &[(crate::store::Cursor, crate::store::StoredEvent)],
    mut step: F,
) -> (Buffered, Option<crate::store::Cursor>)
where
    P: Projection<Transaction = SqlWrites>,
    F: FnMut(
        &mut P,
        &mut SqlWrites,
        crate::store::Cursor,
        &crate::store::StoredEvent,
    ) -> crate::projection::Step,
{
    let mut writes = SqlWrites::new(dialect);
    let mut events = Vec::new();
    let mut last = None;
    for (cursor, event) in batch {
        let mark = writes.len();
        match step(model, &mut writes, *cursor, event) {
            crate::projection::Step::Advance => {
                events.push((*cursor, mark));
                last = Some(*cursor);
            }
            crate::projection::Step::Halt => {
                writes.truncate(mark);
                break;
            }
        }
    }
    let buffered = Buffered {
        statements: writes.take(),
        events,
    };
    (buffered, last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Cursor;

    fn at(position: u64) -> Cursor {
        Cursor { tx: 0, position }
    }

    #[test]
    fn values_convert_from_common_types() {
        assert_eq!(SqlValue::from(3_u32), SqlValue::Int(3));
        assert_eq!(SqlValue::from("a"), SqlValue::Text("a".into()));
        assert_eq!(SqlValue::from(None::<i64>), SqlValue::Null);
        assert_eq!(SqlValue::from(Some(true)), SqlValue::Bool(true));
        assert!(SqlValue::try_from(u64::MAX).is_err());
    }

    #[test]
    fn the_guard_drops_statements_of_events_already_committed() {
        let statement = |sql: &'static str| SqlStatement {
            sql: sql.into(),
            params: vec![],
        };
        let buffered = Buffered {
            statements: vec![statement("a"), statement("b1"), statement("b2")],
            events: vec![(at(1), 0), (at(2), 1), (at(3), 3)],
        };
        let sqls = |stored| {
            buffered
                .after(stored)
                .map(|s| s.sql.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(sqls(None), ["a", "b1", "b2"]);
        assert_eq!(sqls(Some(at(1))), ["b1", "b2"]);
        assert_eq!(sqls(Some(at(2))), Vec::<String>::new());
        assert_eq!(sqls(Some(at(9))), Vec::<String>::new());
        let reset = Buffered {
            statements: vec![statement("clear")],
            events: vec![],
        };
        assert_eq!(reset.after(Some(at(9))).count(), 1, "a reset always runs");
    }
}
