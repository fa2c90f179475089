//! Appending inside a transaction that also holds the caller's writes, the event INSERT
//! first (see [`PostgresEventStore::append_with`]).

use tokio_postgres::Transaction;
use tokio_postgres::error::SqlState;

use super::events::{Columns, RACE_ATTEMPTS, append_statement, outcome};
use super::{Conn, PostgresEventStore, db, open};
use crate::backends::idempotency::duplicate_in_batch;
use crate::backends::transaction::{TransactionError, TransactionOutcome};
use crate::store::{AppendOutcome, ExpectedVersion, NewEvent, StoreError, check_append};

impl PostgresEventStore {
    /// Appends `events` like [`EventStore::append`](crate::store::EventStore::append), in a
    /// transaction that also runs `writes`, then commits both together or neither.
    ///
    /// The order holds by construction: the store begins the transaction and runs the event
    /// INSERT first, so that the transaction id (which consumers order by, see
    /// [`read_after`](crate::store::EventStore::read_after)) is assigned by it, before any
    /// of the caller's rows; then `writes` gets the open transaction and the append's
    /// outcome; then the store commits. If `writes` returns an error, everything is rolled
    /// back ([`TransactionError::Caller`]).
    ///
    /// Conflicts and clashing ids are refused before `writes` runs, as by a plain append. A
    /// batch that is already stored returns [`TransactionOutcome::AlreadyStored`] without
    /// running `writes`: a caller that lost the answer of a commit can retry with the same
    /// events and is told the first attempt landed. Keep `writes` short: while the
    /// transaction is open, readers following the log wait for it (see the store docs).
    ///
    /// Each call uses a connection of its own (kept for reuse), never one shared with other
    /// operations, since a transaction needs its connection to itself.
    ///
    /// ```no_run
    /// # async fn demo(store: cqrs_runtime::postgres::PostgresEventStore,
    /// #               events: Vec<cqrs_runtime::store::NewEvent>) -> Result<(), Box<dyn std::error::Error>> {
    /// use cqrs_runtime::store::ExpectedVersion;
    ///
    /// let done = store
    ///     .append_with("account", "a-1", ExpectedVersion::Exact(3), events, async |tx, outcome| {
    ///         let version = outcome.stream_version as i64;
    ///         tx.execute("UPDATE balances SET version = $1 WHERE id = 'a-1'", &[&version])
    ///             .await
    ///     })
    ///     .await?;
    /// println!("stored up to version {}", done.outcome().stream_version);
    /// # Ok(()) }
    /// ```
    pub async fn append_with<T, E>(
        &self,
        stream_type: &str,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        writes: impl AsyncFnOnce(&Transaction<'_>, &AppendOutcome) -> Result<T, E>,
    ) -> Result<TransactionOutcome<T>, TransactionError<E>> {
        check_append(stream_type, stream_id, &events)?;
        if let Some(event_id) = duplicate_in_batch(&events) {
            return Err(StoreError::DuplicateEventId { event_id }.into());
        }
        let mut conn = self.exclusive_conn().await?;
        let mut writes = Some(writes);
        let result = self
            .run_append_with(
                &mut conn,
                stream_type,
                stream_id,
                expected,
                &events,
                &mut writes,
            )
            .await;
        self.return_exclusive(conn);
        result
    }

    async fn run_append_with<T, E>(
        &self,
        conn: &mut Conn,
        stream_type: &str,
        stream_id: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
        writes: &mut Option<impl AsyncFnOnce(&Transaction<'_>, &AppendOutcome) -> Result<T, E>>,
    ) -> Result<TransactionOutcome<T>, TransactionError<E>> {
        if events.is_empty() {
            // As a plain append: an empty batch only checks the expected version.
            let actual = self.stream_head(conn, stream_type, stream_id).await?;
            expected.check(stream_type, stream_id, actual)?;
            let outcome = AppendOutcome {
                stream_version: actual,
                positions: Vec::new(),
            };
            let tx = conn.client.transaction().await.map_err(db)?;
            return commit_with(tx, outcome, writes).await;
        }
        let columns = Columns::new(events)?;
        let known = self.known(stream_type, stream_id, expected);
        let (statement, after) =
            append_statement(&conn.st, expected, known, columns.claims.is_some())?;
        let params = columns.params(&stream_type, &stream_id, &after);
        for _ in 0..RACE_ATTEMPTS {
            let tx = conn.client.transaction().await.map_err(db)?;
            // The event INSERT is the transaction's first statement.
            match tx.query(statement, &params).await {
                Ok(rows) if rows.len() == events.len() => {
                    let committed = commit_with(tx, outcome(rows)?, writes).await;
                    // Only a commit makes the versions known: the caller's writes may fail.
                    if let Ok(TransactionOutcome::Committed { outcome, .. }) = &committed {
                        self.saw(stream_type, stream_id, outcome.stream_version);
                    }
                    return committed;
                }
                Ok(_) => {}
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {}
                Err(e) if e.code() == Some(&SqlState::DIVISION_BY_ZERO) => {
                    drop(tx);
                    if let Some(refusal) =
                        self.clash(conn, stream_type, stream_id, &columns).await?
                    {
                        return Err(refusal.into());
                    }
                    continue;
                }
                Err(e) => return Err(db(e).into()),
            }
            tx.rollback().await.map_err(db)?;
            // Refused: classified on committed data, outside the transaction.
            if let Some(stored) = self
                .refused(conn, stream_type, stream_id, expected, events)
                .await?
            {
                return Ok(TransactionOutcome::AlreadyStored(stored));
            }
            tokio::task::yield_now().await;
        }
        Err(StoreError::backend(format!(
            "append to {stream_type}/{stream_id} lost {RACE_ATTEMPTS} races in a row"
        ))
        .into())
    }

    /// A connection of its own for a transaction: an idle one, or a new one.
    pub(super) async fn exclusive_conn(&self) -> Result<Conn, StoreError> {
        let idle = self
            .inner
            .exclusive
            .lock()
            .map_err(|_| StoreError::backend("a PostgreSQL connection lock was poisoned"))?
            .pop();
        match idle {
            Some(conn) if !conn.client.is_closed() => Ok(conn),
            _ => {
                let client = open(&self.inner.connector).await?;
                Conn::prepare(client, &self.inner.texts).await
            }
        }
    }

    /// Keeps `conn` for the next transaction (at most as many as the store's connections).
    pub(super) fn return_exclusive(&self, conn: Conn) {
        if conn.client.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.inner.exclusive.lock()
            && idle.len() < self.inner.config.connections
        {
            idle.push(conn);
        }
    }
}

/// Runs the caller's writes in `tx`, then commits; rolls back if they fail.
async fn commit_with<T, E>(
    tx: Transaction<'_>,
    outcome: AppendOutcome,
    writes: &mut Option<impl AsyncFnOnce(&Transaction<'_>, &AppendOutcome) -> Result<T, E>>,
) -> Result<TransactionOutcome<T>, TransactionError<E>> {
    let writes = writes
        .take()
        .ok_or_else(|| StoreError::backend("the writes of an append ran twice"))?;
    match writes(&tx, &outcome).await {
        Ok(value) => {
            tx.commit().await.map_err(db)?;
            Ok(TransactionOutcome::Committed { outcome, value })
        }
        Err(error) => {
            // Not committed either way; a failed rollback means a broken connection.
            let _ = tx.rollback().await;
            Err(TransactionError::Caller(error))
        }
    }
}
