//! The SQLite side tables: checkpoints with their dead letters (fenced; their statements are in
//! `side_sql.rs`), snapshots, and leases (OS file locks beside the database file).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::PathBuf;

use rusqlite::{Connection, OptionalExtension, params};

use super::sql::Sql;
use super::{SqliteEventStore, blocking, db};
use crate::backends::idempotency::{to_i64, to_u64};
use crate::store::{
    Checkpoint, CheckpointCommit, CheckpointStore, ClaimHolder, ClaimRebuild, ClaimStore,
    ClaimsRebuilt, DeadLetter, Lease, LeaseStore, NamedCheckpoint, Snapshot, SnapshotStore,
    StoreError,
};

impl CheckpointStore for SqliteEventStore {
    async fn checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, StoreError> {
        let name = name.to_owned();
        self.read(move |conn, sql| sql.side.read(conn, &name)).await
    }

    async fn claim(&self, name: &str) -> Result<Checkpoint, StoreError> {
        let name = name.to_owned();
        self.write(move |conn, sql| {
            let tx = super::sql::begin_immediate(conn)?;
            let claimed = sql.side.claim(&tx, &name)?;
            tx.commit().map_err(db)?;
            Ok(claimed)
        })
        .await
    }

    async fn commit(&self, name: &str, commit: CheckpointCommit) -> Result<Checkpoint, StoreError> {
        self.commit_statements(name, commit, Vec::new()).await
    }

    async fn dead_letters(&self, name: &str) -> Result<Vec<DeadLetter>, StoreError> {
        let name = name.to_owned();
        self.read(move |conn, sql| sql.side.dead_letters(conn, &name))
            .await
    }
}

impl SqliteEventStore {
    /// Every stored checkpoint, by name, with its dead-letter count (for tools: what
    /// `cqrs_runtime::cli`'s `projections` lists).
    pub async fn checkpoints(&self) -> Result<Vec<NamedCheckpoint>, StoreError> {
        self.read(move |conn, sql| sql.side.list(conn)).await
    }

    /// The process id written into the lock file of the lease on `name` by the process that
    /// holds it, if any (see [`SqliteLease`]): `None` when nobody holds the lease, or when
    /// its holder is not alive (on Linux, where that can be told), or for a holder of an
    /// earlier build that wrote no id.
    pub async fn lease_holder(&self, name: &str) -> Result<Option<u32>, StoreError> {
        let path =
            lease_dir(self.path(), self.inner.config.tables.events()).join(lock_file_name(name));
        blocking(move || {
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(StoreError::backend(e)),
            };
            let Ok(pid) = text.trim().parse::<u32>() else {
                return Ok(None);
            };
            let alive = !cfg!(target_os = "linux")
                || std::path::Path::new(&format!("/proc/{pid}")).exists();
            Ok(alive.then_some(pid))
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
                .map_err(db)?;
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
                .map_err(db)?;
            Ok(())
        })
        .await
    }
}

/// A lease of a [`SqliteEventStore`]: an exclusive OS file lock on a file in
/// `<database>.<events table>.leases/`. Dropping it (or the process ending, even by a crash)
/// releases the name.
#[derive(Debug)]
pub struct SqliteLease {
    name: String,
    path: PathBuf,
    file: File,
}

impl Lease for SqliteLease {
    fn name(&self) -> &str {
        &self.name
    }

    /// An OS file lock lasts as long as its file is open: held until dropped.
    fn is_held(&self) -> bool {
        true
    }

    /// Whether the lock file at the lease's path is still the file this lease locked: once
    /// it was removed (the leases directory cleaned up) or replaced, another holder can lock
    /// the file now at that path.
    async fn check(&self) -> Result<bool, StoreError> {
        let at_path = match std::fs::metadata(&self.path) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(StoreError::backend(e)),
        };
        let locked = self.file.metadata().map_err(StoreError::backend)?;
        Ok(same_file(&locked, &at_path))
    }
}

impl Drop for SqliteLease {
    /// Clears the holder's process id before the lock goes with the file.
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
    }
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// Without inode numbers in `std`: the file at the path is taken for the locked one.
#[cfg(not(unix))]
fn same_file(_: &std::fs::Metadata, _: &std::fs::Metadata) -> bool {
    true
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
            let path = dir.join(lock_file_name(&name));
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(StoreError::backend)?;
            match file.try_lock() {
                Ok(()) => {
                    // The holder's process id, for tools (`lease_holder`); the lock is the
                    // lease, the id only informs.
                    let _ = file.set_len(0);
                    let _ = (&file).write_all(std::process::id().to_string().as_bytes());
                    Ok(Some(SqliteLease { name, path, file }))
                }
                Err(TryLockError::WouldBlock) => Ok(None),
                Err(TryLockError::Error(e)) => Err(StoreError::backend(e)),
            }
        })
        .await
    }

    /// `true`: every process that opens the database file sees the lock files (on one
    /// machine; OS file locks do not cross network file systems reliably).
    fn spans_processes(&self) -> bool {
        true
    }
}

/// The lock file of `name`: its bytes in hex when short enough for a file name, else a
/// 128-bit hash of them (two FNV-1a hashes with different seeds) with a length tag.
fn lock_file_name(name: &str) -> String {
    if name.len() <= 100 {
        let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
        return format!("{hex}.lock");
    }
    let hash = |seed: u64| cqrs_lock::fnv1a(seed, name.as_bytes());
    format!(
        "long-{}-{:016x}{:016x}.lock",
        name.len(),
        hash(0xcbf2_9ce4_8422_2325),
        hash(0x8422_2325_cbf2_9ce4)
    )
}

/// `<database>.<events table>.leases/`: one directory per store in the file.
fn lease_dir(path: &std::path::Path, events_table: &str) -> PathBuf {
    let mut dir = path.as_os_str().to_owned();
    dir.push(format!(".{events_table}.leases"));
    PathBuf::from(dir)
}

impl ClaimStore for SqliteEventStore {
    async fn holder(&self, scope: &str, value: &str) -> Result<Option<ClaimHolder>, StoreError> {
        let (scope, value) = (scope.to_owned(), value.to_owned());
        self.read(move |conn, sql| sql.claim_holder(conn, &scope, &value))
            .await
    }

    async fn rebuild_claims(&self, rebuild: ClaimRebuild) -> Result<ClaimsRebuilt, StoreError> {
        // The bulk of the log on a reader, writers going on; the rest, the claims read and
        // the changes in one immediate transaction, writers waiting.
        let rebuild = self
            .read(move |conn, sql| {
                let mut rebuild = rebuild;
                feed_log(conn, sql, &mut rebuild)?;
                Ok(rebuild)
            })
            .await?;
        self.write(move |conn, sql| {
            let mut rebuild = rebuild;
            let table = &sql.tables.claims;
            let tx = super::sql::begin_immediate(conn)?;
            feed_log(&tx, sql, &mut rebuild)?;
            let mut live = Vec::new();
            {
                let mut select = tx
                    .prepare(&format!(
                        "SELECT value, stream_type, stream_id, position FROM {table} \
                         WHERE scope = ?1"
                    ))
                    .map_err(db)?;
                for scope in rebuild.scopes() {
                    let mut rows = select.query([scope]).map_err(db)?;
                    while let Some(row) = rows.next().map_err(db)? {
                        let position: i64 = row.get(3).map_err(db)?;
                        live.push((
                            scope.clone(),
                            row.get(0).map_err(db)?,
                            ClaimHolder {
                                stream_type: row.get(1).map_err(db)?,
                                stream_id: row.get(2).map_err(db)?,
                                position: to_u64(position, "claim position")?,
                            },
                        ));
                    }
                }
            }
            let dry_run = rebuild.is_dry_run();
            let changes = rebuild.finish(live);
            if dry_run {
                return Ok(changes.report);
            }
            {
                let mut delete = tx
                    .prepare(&format!(
                        "DELETE FROM {table} WHERE scope = ?1 AND value = ?2"
                    ))
                    .map_err(db)?;
                for (scope, value) in &changes.remove {
                    delete.execute(params![scope, value]).map_err(db)?;
                }
                let mut upsert = tx
                    .prepare(&format!(
                        "INSERT OR REPLACE INTO {table} \
                         (scope, value, stream_type, stream_id, position) \
                         VALUES (?1, ?2, ?3, ?4, ?5)"
                    ))
                    .map_err(db)?;
                for (scope, value, holder) in &changes.upsert {
                    upsert
                        .execute(params![
                            scope,
                            value,
                            holder.stream_type,
                            holder.stream_id,
                            to_i64(holder.position, "claim position")?
                        ])
                        .map_err(db)?;
                }
            }
            tx.commit().map_err(db)?;
            Ok(changes.report)
        })
        .await
    }
}

/// Feeds `rebuild` the log after its cursor, in order.
fn feed_log(conn: &Connection, sql: &Sql, rebuild: &mut ClaimRebuild) -> Result<(), StoreError> {
    loop {
        let batch = sql.read_after(conn, rebuild.cursor().position, 1000)?;
        if batch.is_empty() {
            return Ok(());
        }
        for (cursor, event) in &batch {
            rebuild.feed(*cursor, event)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::lock_file_name;

    #[test]
    fn long_names_get_a_short_lock_file() {
        assert_eq!(lock_file_name("ab"), "6162.lock");
        let long = "x".repeat(10_000);
        let file = lock_file_name(&long);
        assert!(file.len() < 80, "{file}");
        assert_ne!(file, lock_file_name(&"x".repeat(10_001)));
    }
}
