//! The SQLite read-model backend: a read model's statements and its checkpoint commit in one
//! `BEGIN IMMEDIATE` transaction of the store's write connection.

use rusqlite::Connection;
use rusqlite::types::{ToSqlOutput, Value, ValueRef};

use super::{SqliteEventStore, db};
use crate::store::sql::check_placeholders;
use crate::store::{
    Checkpoint, CheckpointCommit, SqlBackend, SqlDialect, SqlError, SqlStatement, SqlValue,
    StoreError,
};

/// Read models may keep their tables in the store's file: their batches commit on the write
/// connection, between appends (SQLite has one writer per file anyway), in one transaction
/// with the checkpoint, after the fence check. For a model in another file, open a second
/// store on that file.
impl SqlBackend for SqliteEventStore {
    fn dialect(&self) -> SqlDialect {
        SqlDialect::Sqlite
    }

    async fn execute(
        &self,
        context: &str,
        statements: Vec<SqlStatement>,
    ) -> Result<(), StoreError> {
        let context = context.to_owned();
        self.write(move |conn, _| {
            let tx = super::sql::begin_immediate(conn)?;
            for statement in &statements {
                run(&tx, &context, statement)?;
            }
            tx.commit().map_err(db)
        })
        .await
    }

    async fn commit_with(
        &self,
        name: &str,
        commit: CheckpointCommit,
        statements: Vec<SqlStatement>,
    ) -> Result<Checkpoint, StoreError> {
        self.commit_statements(name, commit, statements).await
    }

    async fn fetch_all(
        &self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Vec<Vec<SqlValue>>, StoreError> {
        let statement = SqlStatement {
            sql: sql.to_owned().into(),
            params: params.to_vec(),
        };
        self.read(move |conn, _| query(conn, &statement)).await
    }
}

impl SqliteEventStore {
    /// The fence check, `statements` and `commit`, in one write transaction.
    pub(super) async fn commit_statements(
        &self,
        name: &str,
        commit: CheckpointCommit,
        statements: Vec<SqlStatement>,
    ) -> Result<Checkpoint, StoreError> {
        let name = name.to_owned();
        self.write(move |conn, sql| {
            let tx = super::sql::begin_immediate(conn)?;
            let committed = sql.side.commit(&tx, &name, commit, |tx| {
                statements.iter().try_for_each(|s| run(tx, &name, s))
            })?;
            tx.commit().map_err(db)?;
            Ok(committed)
        })
        .await
    }
}

fn statement_error(context: &str, sql: &str, source: rusqlite::Error) -> StoreError {
    let classified = source.sqlite_error_code();
    let error = SqlError::Statement {
        context: context.to_owned(),
        sql: sql.to_owned(),
        source: Box::new(source),
    };
    match classified {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            StoreError::unavailable(error)
        }
        _ => StoreError::backend(error),
    }
}

/// Prepares `statement`, checks its placeholders run `$1..$n` for its `n` values, and binds
/// them: `$N` by name where the SQL uses `$N` (SQLite numbers `$N` parameters by first
/// appearance, not by `N`).
fn bind<'c>(
    conn: &'c Connection,
    context: &str,
    statement: &SqlStatement,
) -> Result<rusqlite::CachedStatement<'c>, StoreError> {
    let sql: &str = &statement.sql;
    check_placeholders(sql, statement.params.len()).map_err(|problem| {
        StoreError::backend(SqlError::Placeholders {
            context: context.to_owned(),
            sql: sql.to_owned(),
            problem,
        })
    })?;
    let failed = |source| statement_error(context, sql, source);
    let mut prepared = conn.prepare_cached(sql).map_err(failed)?;
    for (n, value) in (1..).zip(&statement.params) {
        let index = prepared
            .parameter_index(&format!("${n}"))
            .map_err(failed)?
            .ok_or_else(|| {
                StoreError::backend(SqlError::Placeholders {
                    context: context.to_owned(),
                    sql: sql.to_owned(),
                    problem: format!("has no ${n}"),
                })
            })?;
        prepared.raw_bind_parameter(index, value).map_err(failed)?;
    }
    Ok(prepared)
}

/// Runs one buffered statement (rows it may return are read and dropped).
fn run(conn: &Connection, context: &str, statement: &SqlStatement) -> Result<(), StoreError> {
    let mut prepared = bind(conn, context, statement)?;
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
    result.map_err(|source| statement_error(context, &statement.sql, source))
}

/// Runs a read query and returns its rows as values.
fn query(conn: &Connection, statement: &SqlStatement) -> Result<Vec<Vec<SqlValue>>, StoreError> {
    let context = "fetch_all";
    let mut prepared = bind(conn, context, statement)?;
    let columns = prepared.column_count();
    let mut rows = prepared.raw_query();
    let mut out = Vec::new();
    let failed = |source| statement_error(context, &statement.sql, source);
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
