//! The statements of the SQLite checkpoint and dead-letter tables, and the rows they read.

use chrono::DateTime;
use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use super::db;
use crate::backends::idempotency::{to_i64, to_u64};
use crate::backends::names::TableNames;
use crate::store::{
    Checkpoint, CheckpointChange, CheckpointCommit, Cursor, DeadLetter, NamedCheckpoint,
    StoreError, already_committed, apply_change, fenced, now,
};

/// The statements of the checkpoint and dead-letter tables.
pub(super) struct SideSql {
    select: String,
    claim: String,
    update: String,
    dead_insert: String,
    dead_remove: String,
    dead_clear: String,
    dead_select: String,
    list: String,
}

const CHECKPOINT_COLUMNS: &str =
    "last_tx_id, last_position, version, fingerprint, generation, fence";

impl SideSql {
    pub(super) fn new(t: &TableNames) -> Self {
        let (checkpoints, dead) = (&t.checkpoints, &t.dead_letters);
        Self {
            select: format!("SELECT {CHECKPOINT_COLUMNS} FROM {checkpoints} WHERE name = ?1"),
            claim: format!(
                "INSERT INTO {checkpoints} (name, last_tx_id, last_position, version, fingerprint, \
                 generation, fence, updated_at) VALUES (?1, 0, 0, 0, 0, 0, 1, ?2) \
                 ON CONFLICT (name) DO UPDATE SET fence = fence + 1, updated_at = excluded.updated_at \
                 RETURNING {CHECKPOINT_COLUMNS}"
            ),
            update: format!(
                "UPDATE {checkpoints} SET last_tx_id = ?2, last_position = ?3, version = ?4, \
                 fingerprint = ?5, generation = ?6, updated_at = ?7 WHERE name = ?1"
            ),
            dead_insert: format!(
                "INSERT OR REPLACE INTO {dead} (name, position, tx, event_id, stream_type, stream_id, \
                 stream_version, event_type, event_version, error, recorded_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ),
            dead_remove: format!("DELETE FROM {dead} WHERE name = ?1 AND position = ?2"),
            dead_clear: format!("DELETE FROM {dead} WHERE name = ?1"),
            dead_select: format!(
                "SELECT position, tx, event_id, stream_type, stream_id, stream_version, event_type, \
                 event_version, error, recorded_at FROM {dead} WHERE name = ?1 ORDER BY position"
            ),
            list: format!(
                "SELECT {CHECKPOINT_COLUMNS}, name, updated_at, \
                 (SELECT count(*) FROM {dead} WHERE {dead}.name = {checkpoints}.name) \
                 FROM {checkpoints} ORDER BY name"
            ),
        }
    }

    pub(super) fn read(
        &self,
        conn: &Connection,
        name: &str,
    ) -> Result<Option<Checkpoint>, StoreError> {
        conn.prepare_cached(&self.select)
            .and_then(|mut s| s.query_row([name], checkpoint_row).optional())
            .map_err(db)?
            .transpose()
    }

    /// Takes a new fence for `name`, inside the caller's write transaction.
    pub(super) fn claim(&self, conn: &Connection, name: &str) -> Result<Checkpoint, StoreError> {
        conn.prepare_cached(&self.claim)
            .and_then(|mut s| s.query_row(params![name, now().timestamp_micros()], checkpoint_row))
            .map_err(db)?
    }

    /// Checks the fence of `commit`, runs `statements` (the read model's writes), then
    /// applies the commit; all inside the caller's write transaction.
    pub(super) fn commit(
        &self,
        tx: &Connection,
        name: &str,
        commit: CheckpointCommit,
        statements: impl FnOnce(&Connection) -> Result<(), StoreError>,
    ) -> Result<Checkpoint, StoreError> {
        let Some(stored) = self.read(tx, name)? else {
            return Err(fenced(name, commit.fence, 0));
        };
        if stored.fence != commit.fence {
            return Err(fenced(name, commit.fence, stored.fence));
        }
        if already_committed(&stored, &commit) {
            return Ok(stored);
        }
        statements(tx)?;
        let next = apply_change(stored, commit.change);
        tx.prepare_cached(&self.update)
            .and_then(|mut s| {
                s.execute(params![
                    name,
                    to_i64(next.cursor.tx, "checkpoint tx").map_err(to_sql)?,
                    to_i64(next.cursor.position, "checkpoint position").map_err(to_sql)?,
                    i64::from(next.version),
                    // Stored as the same 64 bits, reinterpreted.
                    next.fingerprint as i64,
                    next.generation as i64,
                    now().timestamp_micros(),
                ])
            })
            .map_err(db)?;
        if matches!(commit.change, CheckpointChange::Reset { .. }) {
            tx.prepare_cached(&self.dead_clear)
                .and_then(|mut s| s.execute([name]))
                .map_err(db)?;
        }
        for position in commit.remove {
            let position = to_i64(position, "dead letter position")?;
            tx.prepare_cached(&self.dead_remove)
                .and_then(|mut s| s.execute(params![name, position]))
                .map_err(db)?;
        }
        for letter in commit.record {
            tx.prepare_cached(&self.dead_insert)
                .and_then(|mut s| {
                    s.execute(params![
                        name,
                        to_i64(letter.cursor.position, "position").map_err(to_sql)?,
                        to_i64(letter.cursor.tx, "tx").map_err(to_sql)?,
                        letter.event_id.map(|id| id.as_bytes().to_vec()),
                        letter.stream_type,
                        letter.stream_id,
                        to_i64(letter.stream_version, "version").map_err(to_sql)?,
                        letter.event_type,
                        letter.event_version,
                        letter.error,
                        letter.recorded_at.timestamp_micros(),
                    ])
                })
                .map_err(db)?;
        }
        Ok(next)
    }

    pub(super) fn list(&self, conn: &Connection) -> Result<Vec<NamedCheckpoint>, StoreError> {
        let mut query = conn.prepare(&self.list).map_err(db)?;
        let rows = query
            .query_map([], |r| {
                let checkpoint = checkpoint_row(r)?;
                let (name, updated, dead): (String, i64, i64) = (r.get(6)?, r.get(7)?, r.get(8)?);
                Ok((checkpoint, name, updated, dead))
            })
            .map_err(db)?;
        rows.map(|row| {
            let (checkpoint, name, updated, dead) = row.map_err(db)?;
            Ok(NamedCheckpoint {
                name,
                checkpoint: checkpoint?,
                updated_at: DateTime::from_timestamp_micros(updated).ok_or_else(|| {
                    StoreError::backend(format!("checkpoint updated_at {updated} is out of range"))
                })?,
                dead_letters: to_u64(dead, "dead letter count")?,
            })
        })
        .collect()
    }

    pub(super) fn dead_letters(
        &self,
        conn: &Connection,
        name: &str,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let mut query = conn.prepare_cached(&self.dead_select).map_err(db)?;
        let rows = query.query_map([name], dead_letter_row).map_err(db)?;
        rows.map(|r| r.map_err(db)?).collect()
    }
}

fn to_sql(error: StoreError) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(error))
}

fn checkpoint_row(r: &Row<'_>) -> rusqlite::Result<Result<Checkpoint, StoreError>> {
    let (tx, position, version, fingerprint, generation, fence): (i64, i64, i64, i64, i64, i64) = (
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    );
    Ok((|| {
        Ok(Checkpoint {
            cursor: Cursor {
                tx: to_u64(tx, "checkpoint tx")?,
                position: to_u64(position, "checkpoint position")?,
            },
            version: u32::try_from(version).map_err(|_| {
                StoreError::backend(format!("stored checkpoint version {version} is not a u32"))
            })?,
            // Stored as the same 64 bits, reinterpreted.
            fingerprint: fingerprint as u64,
            generation: to_u64(generation, "checkpoint generation")?,
            fence: to_u64(fence, "checkpoint fence")?,
        })
    })())
}

fn dead_letter_row(r: &Row<'_>) -> rusqlite::Result<Result<DeadLetter, StoreError>> {
    let position: i64 = r.get(0)?;
    let tx: i64 = r.get(1)?;
    let id: Option<Vec<u8>> = r.get(2)?;
    let stream_version: i64 = r.get(5)?;
    let event_version: i64 = r.get(7)?;
    let at: i64 = r.get(9)?;
    let (stream_type, stream_id, event_type, error): (String, String, String, String) =
        (r.get(3)?, r.get(4)?, r.get(6)?, r.get(8)?);
    Ok((|| {
        Ok(DeadLetter {
            cursor: Cursor {
                tx: to_u64(tx, "dead letter tx")?,
                position: to_u64(position, "dead letter position")?,
            },
            event_id: id
                .map(|id| Uuid::from_slice(&id))
                .transpose()
                .map_err(StoreError::backend)?,
            stream_type,
            stream_id,
            stream_version: to_u64(stream_version, "dead letter version")?,
            event_type,
            event_version: u32::try_from(event_version).map_err(StoreError::backend)?,
            error,
            recorded_at: DateTime::from_timestamp_micros(at).ok_or_else(|| {
                StoreError::backend(format!("dead letter recorded_at {at} is out of range"))
            })?,
        })
    })())
}
