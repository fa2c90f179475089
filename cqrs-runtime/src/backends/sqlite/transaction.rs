//! Appending inside a transaction that also holds the caller's writes (see
//! [`SqliteEventStore::append_with`]).

use std::sync::Arc;

use rusqlite::Transaction;

use super::SqliteEventStore;
use crate::backends::transaction::{TransactionError, TransactionOutcome};
use crate::store::{AppendOutcome, ExpectedVersion, NewEvent, StoreError, check_append};

impl SqliteEventStore {
    /// Appends `events` like [`EventStore::append`](crate::store::EventStore::append), in a
    /// `BEGIN IMMEDIATE` transaction of the write connection that also runs `writes`, then
    /// commits both together or neither.
    ///
    /// The event INSERT runs first; then `writes` gets the open transaction and the append's
    /// outcome, on the blocking pool; then the store commits. If `writes` returns an error,
    /// everything is rolled back ([`TransactionError::Caller`]). Conflicts and clashing ids
    /// are refused before `writes` runs; a batch that is already stored returns
    /// [`TransactionOutcome::AlreadyStored`] without running `writes`. Other appends of this
    /// store wait while `writes` runs: keep it short.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use cqrs_runtime::sqlite::{SqliteEventStore, TransactionOutcome};
    /// use cqrs_runtime::store::{ExpectedVersion, NewEvent};
    /// use cqrs_runtime::Metadata;
    ///
    /// let dir = std::env::temp_dir().join(format!("cqrs-doc-{}", uuid::Uuid::now_v7()));
    /// std::fs::create_dir_all(&dir)?;
    /// let store = SqliteEventStore::open(dir.join("events.sqlite")).await?;
    /// let event = NewEvent::new("opened", 1, b"{}".to_vec(), Metadata::new());
    /// let done = store
    ///     .append_with("account", "a-1", ExpectedVersion::NoStream, vec![event], |tx, outcome| {
    ///         tx.execute_batch("CREATE TABLE IF NOT EXISTS balances (id TEXT PRIMARY KEY, version INTEGER)")?;
    ///         tx.execute(
    ///             "INSERT INTO balances (id, version) VALUES ('a-1', ?1)",
    ///             [outcome.stream_version as i64],
    ///         )
    ///     })
    ///     .await?;
    /// assert!(matches!(done, TransactionOutcome::Committed { value: 1, .. }));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn append_with<T, E>(
        &self,
        stream_type: &str,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        writes: impl FnOnce(&Transaction<'_>, &AppendOutcome) -> Result<T, E> + Send + 'static,
    ) -> Result<TransactionOutcome<T>, TransactionError<E>>
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        check_append(stream_type, stream_id, &events)?;
        let (stream_type, stream_id) = (stream_type.to_owned(), stream_id.to_owned());
        let inner = Arc::clone(&self.inner);
        let ran = tokio::task::spawn_blocking(move || {
            inner.writer.run(&inner.sql, |conn, sql| {
                sql.append_in_tx(conn, &stream_type, &stream_id, expected, &events, writes)
            })
        })
        .await;
        ran.map_err(|e| StoreError::backend(format!("SQLite task failed: {e}")))?
    }
}
