//! SQL read models in PostgreSQL: the batch's statements and the checkpoint commit in one
//! transaction (exactly once).

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;
use std::sync::Arc;

use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient, Statement, Transaction};

use super::open;
use super::values::readable;
use crate::projection::{Checkpoint, Delivery, ReadModelStore, Step};
use crate::store::idempotency::{to_i64, to_u64};
use crate::store::names::Ident;
use crate::store::sql_model::{
    Buffered, CHECKPOINT_TABLE, SqlDialect, SqlModelError, SqlModelStore, SqlProjection,
    SqlStatement, SqlValue, SqlWrites, buffer_batch,
};
use crate::store::{Cursor, StoreError, StoredEvent};

/// A SQL read model in a PostgreSQL schema, with its checkpoint in the same schema: exactly
/// once.
///
/// Every connection of the store sets `search_path` to the schema (created if missing), so the
/// projection's SQL names its tables unqualified. Each batch's [`SqlWrites`] run in one
/// transaction with the checkpoint upsert (table [`CHECKPOINT_TABLE`]); the transaction first
/// takes a transaction-level advisory lock on the projection and reads the stored checkpoint,
/// so batches of one projection commit one at a time across processes and an event already
/// committed is never applied again. Read the model through [`PostgresReadModel::client`] (a
/// connection with the same `search_path`) or [`PostgresReadModel::fetch_all`].
///
/// Run it with `.with_leases(event_store)` (a session advisory lock) so that one runner per
/// projection is active across processes; the batch transaction's advisory lock and
/// checkpoint re-read keep every event applied once even without.
///
/// Cloning is cheap; clones share the connections. See [`SqliteReadModel`] for a complete
/// example: only the constructor differs (`PostgresReadModel::<P>::connect(url, schema)`).
///
/// [`SqliteReadModel`]: crate::store::SqliteReadModel
pub struct PostgresReadModel<P> {
    inner: Arc<Inner<P>>,
}

struct Inner<P> {
    pg: tokio_postgres::Config,
    schema: Ident,
    checkpoints: String,
    writer: Mutex<Option<Writer>>,
    reader: Mutex<Option<Arc<Client>>>,
    model: Mutex<P>,
    _projection: PhantomData<fn() -> P>,
}

/// What a model transaction does with the checkpoint after the statements.
enum Finish {
    /// Nothing (setup).
    Nothing,
    /// Saves the checkpoint at this cursor (a batch).
    Save(Cursor),
    /// Deletes it (a rebuild's reset).
    Forget,
}

/// The write connection and its prepared statements.
struct Writer {
    client: Client,
    prepared: HashMap<String, Statement>,
}

impl<P> Clone for PostgresReadModel<P> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<P> fmt::Debug for PostgresReadModel<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresReadModel")
            .field("hosts", &self.inner.pg.get_hosts())
            .field("dbname", &self.inner.pg.get_dbname())
            .field("schema", &self.inner.schema)
            .finish_non_exhaustive()
    }
}

impl<P: SqlProjection + Default> PostgresReadModel<P> {
    /// Connects to `url`, and creates (if missing) `schema`, the checkpoint table and the
    /// model's tables ([`SqlProjection::create_tables`]) in one transaction, under an advisory
    /// lock so that processes starting together do it once.
    pub async fn connect(url: &str, schema: &str) -> Result<Self, StoreError> {
        let pg = tokio_postgres::Config::from_str(url).map_err(StoreError::backend)?;
        let schema = Ident::new(schema).map_err(StoreError::backend)?;
        let table = Ident::new(CHECKPOINT_TABLE).map_err(StoreError::backend)?;
        let model = Self {
            inner: Arc::new(Inner {
                checkpoints: format!("{schema}.{table}"),
                pg,
                schema,
                writer: Mutex::new(None),
                reader: Mutex::new(None),
                model: Mutex::new(P::default()),
                _projection: PhantomData,
            }),
        };
        model.setup().await?;
        Ok(model)
    }
}

impl<P: SqlProjection> PostgresReadModel<P> {
    /// The schema holding the model's tables.
    pub fn schema(&self) -> &str {
        self.inner.schema.as_str()
    }

    /// A connection for reading the model (its `search_path` is the model's schema), opened
    /// again if it broke. `tokio-postgres` pipelines concurrent queries on it.
    pub async fn client(&self) -> Result<Arc<Client>, StoreError> {
        let mut reader = self.inner.reader.lock().await;
        if let Some(client) = reader.as_ref().filter(|c| !c.is_closed()) {
            return Ok(Arc::clone(client));
        }
        let client = Arc::new(self.open().await?);
        *reader = Some(Arc::clone(&client));
        Ok(client)
    }

    /// Runs a read query with `$1`, `$2`, ... bound to `params`; returns every row as values
    /// (the portable way to read a model on either SQL backend). Columns of types with no
    /// [`SqlValue`] form (timestamps, `numeric`, ...) must be cast in the query (`col::text`).
    pub async fn fetch_all(
        &self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Vec<Vec<SqlValue>>, StoreError> {
        let client = self.client().await?;
        let failed = |e: tokio_postgres::Error| statement_error::<P>(sql, e);
        let statement = client.prepare(sql).await.map_err(failed)?;
        check_count::<P>(sql, &statement, params.len())?;
        if let Some(column) = statement.columns().iter().find(|c| !readable(c.type_())) {
            return Err(StoreError::backend(SqlModelError::ColumnType {
                column: column.name().to_owned(),
                column_type: column.type_().name().to_owned(),
            }));
        }
        let rows = client
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

    /// The stored checkpoint (what a runner resumes from).
    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        let client = self.client().await?;
        load::<P>(&*client, &self.inner.checkpoints).await
    }

    /// Opens a connection whose `search_path` is the model's schema.
    async fn open(&self) -> Result<Client, StoreError> {
        let client = open(&self.inner.pg).await?;
        client
            .batch_execute(&format!("SET search_path TO {}", self.inner.schema))
            .await
            .map_err(StoreError::backend)?;
        Ok(client)
    }

    /// The writer, (re)connected if needed.
    async fn writer(&self) -> Result<MutexGuard<'_, Option<Writer>>, StoreError> {
        let mut writer = self.inner.writer.lock().await;
        if writer.as_ref().is_none_or(|w| w.client.is_closed()) {
            *writer = Some(Writer {
                client: self.open().await?,
                prepared: HashMap::new(),
            });
        }
        Ok(writer)
    }

    async fn setup(&self) -> Result<(), StoreError> {
        let mut setup = SqlWrites::new(SqlDialect::Postgres);
        P::create_tables(&mut setup);
        let schema = &self.inner.schema;
        let create = format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE IF NOT EXISTS {} (
                 projection    text        PRIMARY KEY,
                 last_tx_id    bigint      NOT NULL,
                 last_position bigint      NOT NULL,
                 version       bigint      NOT NULL,
                 fingerprint   bigint      NOT NULL,
                 updated_at    timestamptz NOT NULL DEFAULT now());",
            self.inner.checkpoints
        );
        let buffered = Buffered {
            statements: setup.take(),
            events: Vec::new(),
        };
        let key = format!("cqrs-read-model-setup:{}", schema.as_str());
        self.transaction(&key, &create, buffered, Finish::Nothing)
            .await
    }

    /// In one transaction: an advisory lock on `key`, the `prelude` SQL, the stored checkpoint,
    /// the statements of `buffered` after it, then `finish`.
    async fn transaction(
        &self,
        key: &str,
        prelude: &str,
        buffered: Buffered,
        finish: Finish,
    ) -> Result<(), StoreError> {
        let mut guard = self.writer().await?;
        let result = async {
            let Some(Writer { client, prepared }) = guard.as_mut() else {
                return Err(StoreError::backend("no PostgreSQL read-model connection"));
            };
            let tx = client.transaction().await.map_err(StoreError::backend)?;
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))",
                &[&key],
            )
            .await
            .map_err(StoreError::backend)?;
            if !prelude.is_empty() {
                tx.batch_execute(prelude)
                    .await
                    .map_err(StoreError::backend)?;
            }
            let stored = load::<P>(&tx, &self.inner.checkpoints).await?;
            for statement in buffered.after(stored.map(|c| c.cursor)) {
                run::<P>(&tx, prepared, statement).await?;
            }
            let table = &self.inner.checkpoints;
            match finish {
                Finish::Nothing => {}
                // Never move the checkpoint backwards (past a batch another runner committed).
                Finish::Save(last) => {
                    let cursor = stored.map_or(last, |s| s.cursor.max(last));
                    save::<P>(&tx, table, cursor).await?;
                }
                Finish::Forget => {
                    tx.execute(
                        &format!("DELETE FROM {table} WHERE projection = $1"),
                        &[&P::NAME],
                    )
                    .await
                    .map_err(StoreError::backend)?;
                }
            }
            tx.commit().await.map_err(StoreError::backend)
        }
        .await;
        if result.is_err() {
            // A failed transaction may leave stale prepared statements (a table re-created)
            // or a broken connection: start the next batch on a fresh one.
            *guard = None;
        }
        result
    }

    fn batch_key(&self) -> String {
        format!("cqrs-read-model:{}:{}", self.inner.schema.as_str(), P::NAME)
    }
}

impl<P: SqlProjection> SqlModelStore<P> for PostgresReadModel<P> {
    async fn fetch_all(
        &self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Vec<Vec<SqlValue>>, StoreError> {
        PostgresReadModel::fetch_all(self, sql, params).await
    }
}

impl<P: SqlProjection> ReadModelStore<P> for PostgresReadModel<P> {
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
        let (buffered, last) = buffer_batch(&mut *model, SqlDialect::Postgres, batch, step);
        let Some(last) = last else {
            return Ok(None);
        };
        let key = self.batch_key();
        self.transaction(&key, "", buffered, Finish::Save(last))
            .await?;
        Ok(Some(last))
    }

    async fn reset(&self) -> Result<(), StoreError> {
        let mut model = self.inner.model.lock().await;
        let mut clear = SqlWrites::new(SqlDialect::Postgres);
        P::clear_tables(&mut clear);
        let buffered = Buffered {
            statements: clear.take(),
            events: Vec::new(),
        };
        let key = self.batch_key();
        self.transaction(&key, "", buffered, Finish::Forget).await?;
        model.reset();
        Ok(())
    }
}

async fn load<P: SqlProjection>(
    client: &impl GenericClient,
    table: &str,
) -> Result<Option<Checkpoint>, StoreError> {
    let row = client
        .query_opt(
            &format!(
                "SELECT last_tx_id, last_position, version, fingerprint FROM {table} WHERE projection = $1"
            ),
            &[&P::NAME],
        )
        .await
        .map_err(StoreError::backend)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let get = |i: usize| row.try_get::<_, i64>(i).map_err(StoreError::backend);
    let version = get(2)?;
    Ok(Some(Checkpoint {
        cursor: Cursor {
            tx: to_u64(get(0)?, "checkpoint tx")?,
            position: to_u64(get(1)?, "checkpoint position")?,
        },
        version: u32::try_from(version)
            .map_err(|_| StoreError::backend(format!("stored version {version} is not a u32")))?,
        // Stored as the same 64 bits, reinterpreted.
        fingerprint: get(3)? as u64,
    }))
}

async fn save<P: SqlProjection>(
    tx: &Transaction<'_>,
    table: &str,
    cursor: Cursor,
) -> Result<(), StoreError> {
    let values: [&(dyn ToSql + Sync); 5] = [
        &P::NAME,
        &to_i64(cursor.tx, "checkpoint tx")?,
        &to_i64(cursor.position, "checkpoint position")?,
        &i64::from(P::VERSION),
        &(P::FINGERPRINT as i64),
    ];
    tx.execute(
        &format!(
            "INSERT INTO {table} (projection, last_tx_id, last_position, version, fingerprint) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (projection) DO UPDATE SET last_tx_id = excluded.last_tx_id, \
             last_position = excluded.last_position, version = excluded.version, \
             fingerprint = excluded.fingerprint, updated_at = now()"
        ),
        &values,
    )
    .await
    .map_err(StoreError::backend)?;
    Ok(())
}

/// Runs one buffered statement, prepared once per connection.
async fn run<P: SqlProjection>(
    tx: &Transaction<'_>,
    prepared: &mut HashMap<String, Statement>,
    statement: &SqlStatement,
) -> Result<(), StoreError> {
    let sql: &str = &statement.sql;
    let failed = |e: tokio_postgres::Error| statement_error::<P>(sql, e);
    let prepared = match prepared.get(sql) {
        Some(prepared) => prepared.clone(),
        None => {
            let new = tx.prepare(sql).await.map_err(failed)?;
            prepared.insert(sql.to_owned(), new.clone());
            new
        }
    };
    check_count::<P>(sql, &prepared, statement.params.len())?;
    tx.execute(&prepared, &refs(&statement.params))
        .await
        .map_err(failed)?;
    Ok(())
}

fn refs(params: &[SqlValue]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

fn check_count<P: SqlProjection>(
    sql: &str,
    statement: &Statement,
    given: usize,
) -> Result<(), StoreError> {
    let expected = statement.params().len();
    if expected == given {
        return Ok(());
    }
    Err(StoreError::backend(SqlModelError::ParameterCount {
        projection: P::NAME,
        sql: sql.to_owned(),
        expected,
        given,
    }))
}

fn statement_error<P: SqlProjection>(sql: &str, source: tokio_postgres::Error) -> StoreError {
    StoreError::backend(SqlModelError::Statement {
        projection: P::NAME,
        sql: sql.to_owned(),
        source: Box::new(source),
    })
}
