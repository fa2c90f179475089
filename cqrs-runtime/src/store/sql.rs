//! SQL for read models: the values handlers bind ([`SqlValue`]), the statements they buffer
//! ([`SqlBatch`]), and the database that runs them with the checkpoint ([`SqlBackend`]).
//!
//! A projection whose read model lives in SQL tables buffers statements in its handlers
//! (handlers are sync, drivers async); the processing layer's `SqlReadModel` hands a batch's
//! statements to a [`SqlBackend`] ([`SqliteEventStore`](crate::sqlite::SqliteEventStore),
//! [`PostgresEventStore`](crate::postgres::PostgresEventStore)), which runs them and the
//! checkpoint's change in **one transaction**, after checking the checkpoint's fence.
//!
//! Values are always bound parameters, never spliced into the SQL text. Placeholders are
//! written `$1`, `$2`, ... on both backends and must run from `$1` to `$n` for `n` values
//! (each may repeat, in any order): a statement with a gap (`$2, $3`), or with another number
//! of values, is refused with [`SqlError::Placeholders`] on both backends.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;

use super::error::clip;
use super::{Checkpoint, CheckpointCommit, CheckpointStore, StoreError};

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

/// The SQL dialect a [`SqlBatch`] buffer will run on, for the rare statement that differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlDialect {
    /// SQLite ([`SqliteEventStore`](crate::sqlite::SqliteEventStore)).
    Sqlite,
    /// PostgreSQL ([`PostgresEventStore`](crate::postgres::PostgresEventStore)).
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
/// executed by a [`SqlBackend`] inside the transaction that also writes the checkpoint.
///
/// Declare it with `#[projection(..., transaction = SqlBatch)]` (see
/// [`SqlProjection`](crate::projection::SqlProjection)).
#[derive(Debug, Clone, PartialEq)]
pub struct SqlBatch {
    dialect: SqlDialect,
    statements: Vec<SqlStatement>,
}

impl SqlBatch {
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

/// A SQL database in which read models keep their tables: it runs their statements and their
/// checkpoint's change in one transaction.
///
/// Implemented by [`SqliteEventStore`](crate::sqlite::SqliteEventStore) and
/// [`PostgresEventStore`](crate::postgres::PostgresEventStore) (the read model's tables live
/// in the store's file, or schema; open a second store for another file or schema). The
/// checkpoint and dead-letter tables are the backend's own ([`CheckpointStore`]).
pub trait SqlBackend: CheckpointStore + Clone {
    /// The dialect the statements run on.
    fn dialect(&self) -> SqlDialect;

    /// Runs `statements` in one transaction (a read model's table setup). `context` names
    /// the caller in errors.
    fn execute(
        &self,
        context: &str,
        statements: Vec<SqlStatement>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// In one transaction: checks that `name`'s fence is still `commit.fence` (else
    /// [`StoreError::Fenced`], and nothing runs), runs `statements` in order, and applies
    /// `commit`. Returns the checkpoint as committed.
    fn commit_with(
        &self,
        name: &str,
        commit: CheckpointCommit,
        statements: Vec<SqlStatement>,
    ) -> impl Future<Output = Result<Checkpoint, StoreError>> + Send;

    /// Runs a read query with `$1`, `$2`, ... bound to `params`, and returns every row.
    fn fetch_all(
        &self,
        sql: &str,
        params: &[SqlValue],
    ) -> impl Future<Output = Result<Vec<Vec<SqlValue>>, StoreError>> + Send;
}

/// Why a read model's SQL failed (inside [`StoreError::Backend`]).
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// A statement failed (syntax, constraint, type, connection...).
    #[error("`{}`: statement `{}` failed: {source}", clip(context), clip(sql))]
    Statement {
        /// Who ran it (the read model's name).
        context: String,
        /// The statement's SQL text.
        sql: String,
        /// The driver's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The statement's placeholders do not run from `$1` to `$n` for its `n` values.
    #[error("`{}`: statement `{}` {problem}", clip(context), clip(sql))]
    Placeholders {
        /// Who ran it (the read model's name).
        context: String,
        /// The statement's SQL text.
        sql: String,
        /// What is wrong, in words.
        problem: String,
    },
    /// A value does not fit the type PostgreSQL inferred for its placeholder.
    #[error(
        "value {} cannot be bound to a parameter of type `{column_type}`; cast in SQL (for example `$1::text`) or convert the value",
        clip(value)
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

/// Checks that `sql`'s placeholders (`$1`, `$2`, ... outside quotes and comments) run from `$1`
/// to `$given` without a gap; the problem in words otherwise.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) fn check_placeholders(sql: &str, given: usize) -> Result<(), String> {
    let mut used = vec![false; given];
    let mut highest = 0usize;
    let bytes = sql.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\'' | b'"' => {
                // Skip a quoted literal or identifier ('' and "" escape themselves).
                i += 1;
                while let Some(&c) = bytes.get(i) {
                    i += 1;
                    if c == b {
                        if bytes.get(i) == Some(&b) {
                            i += 1;
                        } else {
                            break;
                        }
                    }
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while bytes.get(i).is_some_and(|&c| c != b'\n') {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 2;
            }
            b'$' => {
                let start = i + 1;
                let mut end = start;
                while bytes.get(end).is_some_and(u8::is_ascii_digit) {
                    end += 1;
                }
                if end > start {
                    let n: usize = sql
                        .get(start..end)
                        .and_then(|digits| digits.parse().ok())
                        .unwrap_or(usize::MAX);
                    if n == 0 || n > given {
                        return Err(format!(
                            "uses ${n}, but {given} value(s) were given: placeholders run from $1 to ${given}"
                        ));
                    }
                    highest = highest.max(n);
                    if let Some(slot) = used.get_mut(n - 1) {
                        *slot = true;
                    }
                    i = end;
                    continue;
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    if let Some(missing) = used.iter().position(|u| !u) {
        return Err(format!(
            "has no ${} but {given} value(s) were given: placeholders must run from $1 to ${given} without a gap",
            missing + 1
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_convert_from_common_types() {
        assert_eq!(SqlValue::from(3_u32), SqlValue::Int(3));
        assert_eq!(SqlValue::from("a"), SqlValue::Text("a".into()));
        assert_eq!(SqlValue::from(None::<i64>), SqlValue::Null);
        assert_eq!(SqlValue::from(Some(true)), SqlValue::Bool(true));
        assert!(SqlValue::try_from(u64::MAX).is_err());
    }

    #[test]
    fn placeholders_must_run_from_one_to_n() {
        assert!(check_placeholders("SELECT 1", 0).is_ok());
        assert!(check_placeholders("UPDATE t SET a = $2 WHERE b = $1", 2).is_ok());
        assert!(check_placeholders("SELECT $1, $1", 1).is_ok());
        assert!(check_placeholders("SELECT '$3', \"$4\" -- $5\n, $1 /* $6 */", 1).is_ok());
        let gap = check_placeholders("SELECT $2, $3", 2).unwrap_err();
        assert!(gap.contains("uses $3"), "{gap}");
        let missing = check_placeholders("SELECT $2", 2).unwrap_err();
        assert!(missing.contains("no $1"), "{missing}");
        assert!(check_placeholders("SELECT $0", 1).is_err());
        assert!(check_placeholders("SELECT 1", 1).is_err());
        assert!(check_placeholders("SELECT $99999999999999999999999", 1).is_err());
    }
}
