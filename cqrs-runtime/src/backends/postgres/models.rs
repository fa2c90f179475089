//! The PostgreSQL read-model backend: a read model's statements and its checkpoint commit in
//! one transaction, on a connection of its own, after the checkpoint row is locked and its
//! fence checked.

use tokio_postgres::Statement;
use tokio_postgres::types::ToSql;

use super::values::readable;
use super::{Conn, PostgresEventStore, db};
use crate::store::sql::check_placeholders;
use crate::store::{
    Checkpoint, CheckpointCommit, SqlBackend, SqlDialect, SqlError, SqlStatement, SqlValue,
    StoreError,
};

/// Read models keep their tables in the store's schema (every connection's `search_path`),
/// named unqualified in their SQL. For a model in another schema, connect a second store
/// with that schema.
impl SqlBackend for PostgresEventStore {
    fn dialect(&self) -> SqlDialect {
        SqlDialect::Postgres
    }

    async fn execute(
        &self,
        context: &str,
        statements: Vec<SqlStatement>,
    ) -> Result<(), StoreError> {
        let key = format!("cqrs-read-model-setup:{}", self.schema());
        self.in_transaction(async |conn| {
            conn.client
                .execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))",
                    &[&key],
                )
                .await
                .map_err(db)?;
            for statement in &statements {
                run(conn, context, statement).await?;
            }
            Ok(())
        })
        .await
    }

    async fn commit_with(
        &self,
        name: &str,
        commit: CheckpointCommit,
        statements: Vec<SqlStatement>,
    ) -> Result<Checkpoint, StoreError> {
        self.in_transaction(async |conn| {
            self.commit_in(conn, name, commit, async |conn| {
                for statement in &statements {
                    run(conn, name, statement).await?;
                }
                Ok(())
            })
            .await
        })
        .await
    }

    /// Columns of types with no [`SqlValue`] form (timestamps, `numeric`, ...) must be cast
    /// in the query (`col::text`).
    async fn fetch_all(
        &self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Vec<Vec<SqlValue>>, StoreError> {
        let context = "fetch_all";
        let placeholders = |problem| {
            StoreError::backend(SqlError::Placeholders {
                context: context.to_owned(),
                sql: sql.to_owned(),
                problem,
            })
        };
        check_placeholders(sql, params.len()).map_err(placeholders)?;
        let conn = self.conn().await?;
        let failed = |e| statement_error(context, sql, e);
        let statement = conn.client.prepare(sql).await.map_err(failed)?;
        check_count(context, sql, &statement, params.len())?;
        if let Some(column) = statement.columns().iter().find(|c| !readable(c.type_())) {
            return Err(StoreError::backend(SqlError::ColumnType {
                column: column.name().to_owned(),
                column_type: column.type_().name().to_owned(),
            }));
        }
        let rows = conn
            .client
            .query(&statement, &refs(params))
            .await
            .map_err(failed)?;
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| row.try_get::<_, SqlValue>(i).map_err(failed))
                    .collect()
            })
            .collect()
    }
}

/// Runs one buffered statement, prepared once per connection.
async fn run(conn: &mut Conn, context: &str, statement: &SqlStatement) -> Result<(), StoreError> {
    let sql: &str = &statement.sql;
    check_placeholders(sql, statement.params.len()).map_err(|problem| {
        StoreError::backend(SqlError::Placeholders {
            context: context.to_owned(),
            sql: sql.to_owned(),
            problem,
        })
    })?;
    let failed = |e| statement_error(context, sql, e);
    let prepared = conn.statement(sql).await.map_err(failed)?;
    check_count(context, sql, &prepared, statement.params.len())?;
    conn.client
        .execute(&prepared, &refs(&statement.params))
        .await
        .map_err(failed)?;
    Ok(())
}

fn refs(params: &[SqlValue]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

fn check_count(
    context: &str,
    sql: &str,
    statement: &Statement,
    given: usize,
) -> Result<(), StoreError> {
    let expected = statement.params().len();
    if expected == given {
        return Ok(());
    }
    Err(StoreError::backend(SqlError::Placeholders {
        context: context.to_owned(),
        sql: sql.to_owned(),
        problem: format!("has {expected} placeholder(s) but {given} value(s) were given"),
    }))
}

/// A statement's failure, classified like every driver error (a lost connection is
/// [`StoreError::Unavailable`]).
fn statement_error(context: &str, sql: &str, source: tokio_postgres::Error) -> StoreError {
    let wrap = |error: Box<dyn std::error::Error + Send + Sync>| SqlError::Statement {
        context: context.to_owned(),
        sql: sql.to_owned(),
        source: error,
    };
    match db(source) {
        StoreError::Unavailable(e) => StoreError::unavailable(wrap(e)),
        StoreError::Backend(e) => StoreError::backend(wrap(e)),
        other => other,
    }
}
