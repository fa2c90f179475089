//! The SQLite store's schema: versioned migrations, applied idempotently at open.

use rusqlite::{Connection, TransactionBehavior, params};

use super::db;
use super::sql::Sql;
use crate::backends::names::TableNames;
use crate::store::StoreError;

/// The schema versions, applied in order, each once.
fn migrations(t: &TableNames) -> Vec<String> {
    let (events, snapshots, checkpoints) = (&t.events, &t.snapshots, &t.checkpoints);
    let (dead_letters, claims) = (&t.dead_letters, &t.claims);
    let index = format!("\"{}_by_stream\"", t.events.as_str());
    let by_type = format!("\"{}_by_stream_type\"", t.events.as_str());
    let by_name = format!("\"{}_by_event_type\"", t.events.as_str());
    vec![
        format!(
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
        ),
        // One checkpoint concept: identity, generation and fence join the cursor; dead letters
        // are kept beside it.
        format!(
            "ALTER TABLE {checkpoints} RENAME COLUMN projection TO name;
        ALTER TABLE {checkpoints} ADD COLUMN version     INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE {checkpoints} ADD COLUMN fingerprint INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE {checkpoints} ADD COLUMN generation  INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE {checkpoints} ADD COLUMN fence       INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE IF NOT EXISTS {dead_letters} (
            name           TEXT    NOT NULL,
            position       INTEGER NOT NULL,
            tx             INTEGER NOT NULL,
            event_id       BLOB,
            stream_type    TEXT    NOT NULL,
            stream_id      TEXT    NOT NULL,
            stream_version INTEGER NOT NULL,
            event_type     TEXT    NOT NULL,
            event_version  INTEGER NOT NULL,
            error          TEXT    NOT NULL,
            recorded_at    INTEGER NOT NULL,
            PRIMARY KEY (name, position)
        ) WITHOUT ROWID;"
        ),
        // Claims: values held exclusively per scope, taken and released with the events.
        format!(
            "CREATE TABLE IF NOT EXISTS {claims} (
            scope       TEXT    NOT NULL,
            value       TEXT    NOT NULL,
            stream_type TEXT    NOT NULL,
            stream_id   TEXT    NOT NULL,
            position    INTEGER NOT NULL,
            PRIMARY KEY (scope, value)
        ) WITHOUT ROWID;"
        ),
        // Filtered reads: each stream type and each wire name is an index range in position
        // order.
        format!(
            "CREATE INDEX IF NOT EXISTS {by_type} ON {events} (stream_type, global_position);
        CREATE INDEX IF NOT EXISTS {by_name} ON {events} (event_type, global_position);"
        ),
    ]
}

/// Read models of earlier versions kept their checkpoints in a table of their own, in the
/// file they wrote to; the checkpoints table now holds them (identity included).
fn adopt_read_model_checkpoints(tx: &Connection, t: &TableNames) -> Result<(), StoreError> {
    let legacy: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'read_model_checkpoints')",
            [],
            |r| r.get(0),
        )
        .map_err(db)?;
    if legacy {
        tx.execute_batch(&format!(
            "INSERT OR IGNORE INTO {} (name, last_tx_id, last_position, version, fingerprint, \
             generation, fence, updated_at) SELECT projection, last_tx_id, last_position, version, \
             fingerprint, 0, 0, updated_at FROM read_model_checkpoints",
            t.checkpoints
        ))
        .map_err(db)?;
    }
    Ok(())
}

impl Sql {
    /// Checks, without changing anything, that the schema in `conn` is at the version this
    /// build writes.
    pub(super) fn check_schema(
        &self,
        conn: &Connection,
        path: &std::path::Path,
    ) -> Result<(), StoreError> {
        let table = &self.tables.migrations;
        let exists: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
                [table.as_str()],
                |r| r.get(0),
            )
            .map_err(db)?;
        let current: i64 = if exists {
            conn.query_row(
                &format!("SELECT coalesce(max(version), 0) FROM {table}"),
                [],
                |r| r.get(0),
            )
            .map_err(db)?
        } else {
            0
        };
        let wanted = migrations(&self.tables).len() as i64;
        if current == wanted {
            return Ok(());
        }
        Err(StoreError::backend(format!(
            "{} holds no event store at schema version {wanted} (found version {current}); \
             it was opened without migrating: open it with a build that migrates (the \
             application, or a subcommand that writes) first",
            path.display()
        )))
    }

    /// Creates or upgrades the schema, idempotently, under SQLite's write lock.
    pub(super) fn migrate(&self, conn: &mut Connection) -> Result<(), StoreError> {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let table = &self.tables.migrations;
        tx.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)"
        ))
        .map_err(db)?;
        let current: i64 = tx
            .query_row(
                &format!("SELECT coalesce(max(version), 0) FROM {table}"),
                [],
                |r| r.get(0),
            )
            .map_err(db)?;
        for (version, migration) in (1_i64..).zip(migrations(&self.tables)) {
            if version > current {
                tx.execute_batch(&migration).map_err(db)?;
                if version == 2 {
                    adopt_read_model_checkpoints(&tx, &self.tables)?;
                }
                tx.execute(
                    &format!("INSERT INTO {table} (version, applied_at) VALUES (?1, ?2)"),
                    params![version, crate::store::now().timestamp_micros()],
                )
                .map_err(db)?;
            }
        }
        tx.commit().map_err(db)
    }
}
