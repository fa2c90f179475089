//! Checkpoints, snapshots and leases of the SQLite store.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::PathBuf;

use rusqlite::{OptionalExtension, params};

use super::{SqliteEventStore, blocking};
use crate::store::idempotency::{to_i64, to_u64};
use crate::store::{CheckpointStore, Cursor, LeaseStore, Snapshot, SnapshotStore, StoreError};

impl CheckpointStore for SqliteEventStore {
    async fn load_checkpoint(&self, projection: &str) -> Result<Option<Cursor>, StoreError> {
        let projection = projection.to_owned();
        self.read(move |conn, sql| {
            let row: Option<(i64, i64)> = conn
                .prepare_cached(&sql.load_checkpoint)
                .and_then(|mut s| s.query_row([&projection], |r| Ok((r.get(0)?, r.get(1)?))))
                .optional()
                .map_err(StoreError::backend)?;
            row.map(|(tx, position)| {
                Ok(Cursor {
                    tx: to_u64(tx, "checkpoint tx")?,
                    position: to_u64(position, "checkpoint position")?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn save_checkpoint(&self, projection: &str, cursor: Cursor) -> Result<(), StoreError> {
        let projection = projection.to_owned();
        self.write(move |conn, sql| {
            let values = params![
                projection,
                to_i64(cursor.tx, "checkpoint tx")?,
                to_i64(cursor.position, "checkpoint position")?,
                crate::store::now().timestamp_micros(),
            ];
            conn.prepare_cached(&sql.save_checkpoint)
                .and_then(|mut s| s.execute(values))
                .map_err(StoreError::backend)?;
            Ok(())
        })
        .await
    }

    async fn reset_checkpoint(&self, projection: &str) -> Result<(), StoreError> {
        let projection = projection.to_owned();
        self.write(move |conn, sql| {
            conn.prepare_cached(&sql.reset_checkpoint)
                .and_then(|mut s| s.execute([projection]))
                .map_err(StoreError::backend)?;
            Ok(())
        })
        .await
    }
}

impl SnapshotStore for SqliteEventStore {
    async fn load_snapshot(
        &self,
        stream_type: &str,
        stream_id: &str,
    ) -> Result<Option<Snapshot>, StoreError> {
        let (stream_type, stream_id) = (stream_type.to_owned(), stream_id.to_owned());
        self.read(move |conn, sql| {
            let row: Option<(i64, i64, Vec<u8>)> = conn
                .prepare_cached(&sql.load_snapshot)
                .and_then(|mut s| {
                    s.query_row(params![stream_type, stream_id], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                })
                .optional()
                .map_err(StoreError::backend)?;
            row.map(|(version, fingerprint, payload)| {
                Ok(Snapshot {
                    stream_type,
                    stream_id,
                    version: to_u64(version, "snapshot version")?,
                    // Stored as the same 64 bits, reinterpreted.
                    state_fingerprint: fingerprint as u64,
                    payload,
                })
            })
            .transpose()
        })
        .await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.write(move |conn, sql| {
            let values = params![
                snapshot.stream_type,
                snapshot.stream_id,
                to_i64(snapshot.version, "snapshot version")?,
                snapshot.state_fingerprint as i64,
                snapshot.payload,
            ];
            conn.prepare_cached(&sql.save_snapshot)
                .and_then(|mut s| s.execute(values))
                .map_err(StoreError::backend)?;
            Ok(())
        })
        .await
    }
}

/// A lease of a [`SqliteEventStore`]: an exclusive OS file lock on
/// `<database>.leases/<hex name>.lock`. Dropping it (or the process ending, even by a crash)
/// releases the name.
#[derive(Debug)]
pub struct SqliteLease {
    name: String,
    _file: File,
}

impl SqliteLease {
    /// The leased name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Leases are OS file locks beside the database file, not rows: SQLite has no session that
/// dies with its holder, and a lock file is released by the OS when its holder exits, so a
/// crashed runner never blocks its successor, across every process that shares the file.
impl LeaseStore for SqliteEventStore {
    type Lease = SqliteLease;

    async fn try_acquire(&self, name: &str) -> Result<Option<SqliteLease>, StoreError> {
        let dir = lease_dir(self.path(), self.inner.config.tables.events());
        let name = name.to_owned();
        blocking(move || {
            std::fs::create_dir_all(&dir).map_err(StoreError::backend)?;
            let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.join(format!("{hex}.lock")))
                .map_err(StoreError::backend)?;
            match file.try_lock() {
                Ok(()) => Ok(Some(SqliteLease { name, _file: file })),
                Err(TryLockError::WouldBlock) => Ok(None),
                Err(TryLockError::Error(e)) => Err(StoreError::backend(e)),
            }
        })
        .await
    }
}

/// `<database>.<events table>.leases/`: one directory per store in the file.
fn lease_dir(path: &std::path::Path, events_table: &str) -> PathBuf {
    let mut dir = path.as_os_str().to_owned();
    dir.push(format!(".{events_table}.leases"));
    PathBuf::from(dir)
}
