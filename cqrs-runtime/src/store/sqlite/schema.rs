//! The SQLite store's schema: versioned migrations, applied idempotently at open.

use rusqlite::{Connection, TransactionBehavior, params};

use super::sql::Sql;
use crate::store::StoreError;
use crate::store::names::TableNames;

/// The schema versions, applied in order, each once.
fn migrations(t: &TableNames) -> Vec<String> {
    let (events, snapshots, checkpoints) = (&t.events, &t.snapshots, &t.checkpoints);
    let index = format!("\"{}_by_stream\"", t.events.as_str());
    vec![format!(
        "CREATE TABLE IF NOT EXISTS {events} (
            global_position INTEGER PRIMARY KEY,
            stream_type     TEXT    NOT NULL,
            stream_id       TEXT    NOT NULL,
            stream_version  INTEGER NOT NULL,
            event_id        BLOB    NOT NULL UNIQUE,
            event_type      TEXT    NOT NULL,
            event_version   INTEGER NOT NULL,
            payload         TEXT    NOT NULL,
            metadata        TEXT    NOT NULL,
            recorded_at     INTEGER NOT NULL
        );
        CREATE UNIQUE INDEX IF NOT EXISTS {index}
            ON {events} (stream_type, stream_id, stream_version);
        CREATE TABLE IF NOT EXISTS {snapshots} (
            stream_type       TEXT    NOT NULL,
            stream_id         TEXT    NOT NULL,
            version           INTEGER NOT NULL,
            state_fingerprint INTEGER NOT NULL,
            payload           BLOB    NOT NULL,
            PRIMARY KEY (stream_type, stream_id)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS {checkpoints} (
            projection    TEXT    PRIMARY KEY,
            last_tx_id    INTEGER NOT NULL,
            last_position INTEGER NOT NULL,
            updated_at    INTEGER NOT NULL
        );"
    )]
}

impl Sql {
    /// Creates or upgrades the schema, idempotently, under SQLite's write lock.
    pub(super) fn migrate(&self, conn: &mut Connection) -> Result<(), StoreError> {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::backend)?;
        let table = &self.tables.migrations;
        tx.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)"
        ))
        .map_err(StoreError::backend)?;
        let current: i64 = tx
            .query_row(
                &format!("SELECT coalesce(max(version), 0) FROM {table}"),
                [],
                |r| r.get(0),
            )
            .map_err(StoreError::backend)?;
        for (version, migration) in (1_i64..).zip(migrations(&self.tables)) {
            if version > current {
                tx.execute_batch(&migration).map_err(StoreError::backend)?;
                tx.execute(
                    &format!("INSERT INTO {table} (version, applied_at) VALUES (?1, ?2)"),
                    params![version, crate::store::now().timestamp_micros()],
                )
                .map_err(StoreError::backend)?;
            }
        }
        tx.commit().map_err(StoreError::backend)
    }
}
