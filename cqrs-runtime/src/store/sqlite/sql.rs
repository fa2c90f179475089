//! The SQLite store's SQL: schema migrations, append, reads. Table names are validated
//! identifiers spliced in once, at open; every value is bound.

use std::collections::HashMap;
use std::convert::Infallible;

use chrono::DateTime;
use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Row, Transaction, TransactionBehavior, params,
};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::chunk::{Chunk, ChunkPool};
use crate::envelope::Metadata;
use crate::store::idempotency::{Slot, classify, duplicate_in_batch, to_i64, to_u64};
use crate::store::names::TableNames;
use crate::store::{
    AppendOutcome, ExpectedVersion, NewEvent, StoreError, StoredEvent, StreamEvent, StreamEventRef,
    TransactionError, TransactionOutcome,
};

/// An append waiting for the writer.
pub(super) struct Request {
    pub(super) stream_type: String,
    pub(super) stream_id: String,
    pub(super) expected: ExpectedVersion,
    pub(super) events: Vec<NewEvent>,
    pub(super) reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
}

/// Runs a statement without parameters or rows through the statement cache.
fn run_cached(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .map(drop)
        .map_err(StoreError::backend)
}

fn begin_immediate(conn: &mut Connection) -> Result<Transaction<'_>, StoreError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(StoreError::backend)
}

/// How often an append committed alone runs again when, between its refusal and the look
/// at why, another process made room for it.
const ALONE_ATTEMPTS: usize = 4;

fn fail_all(group: Vec<Request>, error: &rusqlite::Error) {
    for request in group {
        let _ = request
            .reply
            .send(Err(StoreError::backend(error.to_string())));
    }
}

const COLUMNS: &str = "global_position, stream_type, stream_id, stream_version, event_id, \
    event_type, event_version, payload, metadata, recorded_at";

pub(super) struct Sql {
    pub(super) tables: TableNames,
    insert: String,
    head: String,
    slot: String,
    read_stream: String,
    read_stream_events: String,
    read_all: String,
    head_position: String,
    pub(super) load_checkpoint: String,
    pub(super) save_checkpoint: String,
    pub(super) reset_checkpoint: String,
    pub(super) load_snapshot: String,
    pub(super) save_snapshot: String,
}

impl Sql {
    pub(super) fn new(t: &TableNames) -> Self {
        let (events, snapshots, checkpoints) = (&t.events, &t.snapshots, &t.checkpoints);
        Self {
            tables: t.clone(),
            insert: format!(
                "INSERT INTO {events} (stream_type, stream_id, stream_version, event_id, \
                 event_type, event_version, payload, metadata, recorded_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ),
            head: format!(
                "SELECT coalesce(max(stream_version), 0) FROM {events} \
                 WHERE stream_type = ?1 AND stream_id = ?2"
            ),
            slot: format!(
                "SELECT stream_type, stream_id, stream_version, global_position FROM {events} \
                 WHERE event_id = ?1"
            ),
            read_stream: format!(
                "SELECT {COLUMNS} FROM {events} WHERE stream_type = ?1 AND stream_id = ?2 \
                 AND stream_version >= ?3 ORDER BY stream_version"
            ),
            read_stream_events: format!(
                "SELECT global_position, stream_version, event_type, event_version, payload \
                 FROM {events} WHERE stream_type = ?1 AND stream_id = ?2 \
                 AND stream_version >= ?3 ORDER BY stream_version"
            ),
            read_all: format!(
                "SELECT {COLUMNS} FROM {events} WHERE global_position > ?1 \
                 ORDER BY global_position LIMIT ?2"
            ),
            head_position: format!("SELECT coalesce(max(global_position), 0) FROM {events}"),
            load_checkpoint: format!(
                "SELECT last_tx_id, last_position FROM {checkpoints} WHERE projection = ?1"
            ),
            save_checkpoint: format!(
                "INSERT INTO {checkpoints} (projection, last_tx_id, last_position, updated_at) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (projection) DO UPDATE SET \
                 last_tx_id = excluded.last_tx_id, last_position = excluded.last_position, \
                 updated_at = excluded.updated_at"
            ),
            reset_checkpoint: format!("DELETE FROM {checkpoints} WHERE projection = ?1"),
            load_snapshot: format!(
                "SELECT version, state_fingerprint, payload FROM {snapshots} \
                 WHERE stream_type = ?1 AND stream_id = ?2"
            ),
            save_snapshot: format!(
                "INSERT INTO {snapshots} (stream_type, stream_id, version, state_fingerprint, \
                 payload) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (stream_type, stream_id) DO UPDATE SET version = excluded.version, \
                 state_fingerprint = excluded.state_fingerprint, payload = excluded.payload \
                 WHERE excluded.version > {snapshots}.version"
            ),
        }
    }

    /// Runs a group of queued appends in one `BEGIN IMMEDIATE` transaction (group commit:
    /// one disk sync for all of them), each inside its own savepoint, so that a refused
    /// append rolls back only its own rows. Every request gets its reply. A group of one
    /// needs no savepoint (see [`Sql::append_alone`]).
    pub(super) fn append_group(&self, conn: &mut Connection, mut group: Vec<Request>) {
        if group.len() == 1
            && let Some(request) = group.pop()
        {
            let result = self.append_alone(conn, &request);
            let _ = request.reply.send(result);
            return;
        }
        let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => return fail_all(group, &e),
        };
        let results: Vec<_> = group.iter().map(|r| self.append_one(&tx, r)).collect();
        match tx.commit() {
            Ok(()) => {
                for (request, result) in group.into_iter().zip(results) {
                    let _ = request.reply.send(result);
                }
            }
            Err(e) => fail_all(group, &e),
        }
    }

    /// One append in a transaction of its own: no savepoint, since a refusal rolls back the
    /// whole transaction.
    fn append_alone(
        &self,
        conn: &mut Connection,
        r: &Request,
    ) -> Result<AppendOutcome, StoreError> {
        let (stream_type, stream_id) = (r.stream_type.as_str(), r.stream_id.as_str());
        let nothing = |_: &Transaction<'_>, _: &AppendOutcome| Ok::<(), Infallible>(());
        match self.append_in_tx(conn, stream_type, stream_id, r.expected, &r.events, nothing) {
            Ok(TransactionOutcome::Committed { outcome, .. })
            | Ok(TransactionOutcome::AlreadyStored(outcome)) => Ok(outcome),
            Err(TransactionError::Store(error)) => Err(error),
            Err(TransactionError::Caller(never)) => match never {},
        }
    }

    /// One append in a transaction of its own, then `writes` in the same transaction, then
    /// the commit (or a rollback if `writes` fails). A refused append is classified under
    /// the write lock, in a new transaction; if another process changed the stream in between
    /// so that the append now fits, it runs again (a bounded number of times).
    pub(super) fn append_in_tx<T, E>(
        &self,
        conn: &mut Connection,
        stream_type: &str,
        stream_id: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
        writes: impl FnOnce(&Transaction<'_>, &AppendOutcome) -> Result<T, E>,
    ) -> Result<TransactionOutcome<T>, TransactionError<E>> {
        if let Some(event_id) = duplicate_in_batch(events) {
            return Err(StoreError::DuplicateEventId { event_id }.into());
        }
        for _ in 0..ALONE_ATTEMPTS {
            let tx = begin_immediate(conn)?;
            if let Some(outcome) = self.try_append(&tx, stream_type, stream_id, expected, events)? {
                return match writes(&tx, &outcome) {
                    Ok(value) => {
                        tx.commit().map_err(StoreError::backend)?;
                        Ok(TransactionOutcome::Committed { outcome, value })
                    }
                    // Dropping `tx` rolls it back.
                    Err(error) => Err(TransactionError::Caller(error)),
                };
            }
            tx.rollback().map_err(StoreError::backend)?;
            let tx = begin_immediate(conn)?;
            let refused = self.refused(&tx, stream_type, stream_id, expected, events);
            tx.rollback().map_err(StoreError::backend)?;
            if let Some(outcome) = refused? {
                return Ok(TransactionOutcome::AlreadyStored(outcome));
            }
        }
        Err(StoreError::backend(format!(
            "append to {stream_type}/{stream_id} was refused {ALONE_ATTEMPTS} times, but \
             neither as a clash nor as a conflict"
        ))
        .into())
    }

    /// One append of a group, inside the group's transaction.
    fn append_one(&self, tx: &Connection, r: &Request) -> Result<AppendOutcome, StoreError> {
        let (stream_type, stream_id) = (r.stream_type.as_str(), r.stream_id.as_str());
        if let Some(event_id) = duplicate_in_batch(&r.events) {
            return Err(StoreError::DuplicateEventId { event_id });
        }
        run_cached(tx, "SAVEPOINT cqrs_append")?;
        let stored = self.try_append(tx, stream_type, stream_id, r.expected, &r.events);
        if let Ok(Some(outcome)) = stored {
            run_cached(tx, "RELEASE cqrs_append")?;
            return Ok(outcome);
        }
        run_cached(tx, "ROLLBACK TO cqrs_append")?;
        run_cached(tx, "RELEASE cqrs_append")?;
        stored?;
        // Under the write lock nothing can change between the refusal and this look.
        self.refused(tx, stream_type, stream_id, r.expected, &r.events)?
            .ok_or_else(|| {
                StoreError::backend("append refused, but neither a clash nor a conflict")
            })
    }

    fn head(
        &self,
        conn: &Connection,
        stream_type: &str,
        stream_id: &str,
    ) -> Result<u64, StoreError> {
        let head: i64 = conn
            .prepare_cached(&self.head)
            .and_then(|mut s| s.query_row(params![stream_type, stream_id], |r| r.get(0)))
            .map_err(StoreError::backend)?;
        to_u64(head, "stream version")
    }

    /// Stores the batch; `None` when the version does not match or an id is already stored
    /// (the caller rolls back to its savepoint).
    fn try_append(
        &self,
        tx: &Connection,
        stream_type: &str,
        stream_id: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<Option<AppendOutcome>, StoreError> {
        let actual = self.head(tx, stream_type, stream_id)?;
        if !expected.matches(actual) {
            return Ok(None);
        }
        let mut positions = Vec::with_capacity(events.len());
        let mut insert = tx
            .prepare_cached(&self.insert)
            .map_err(StoreError::backend)?;
        for (version, event) in (actual + 1..).zip(events) {
            let payload = std::str::from_utf8(&event.payload).map_err(StoreError::backend)?;
            let metadata = serde_json::to_string(&event.metadata).map_err(StoreError::backend)?;
            let inserted = insert.execute(params![
                stream_type,
                stream_id,
                to_i64(version, "stream version")?,
                event.event_id.as_bytes().as_slice(),
                event.event_type.as_ref(),
                event.event_version,
                payload,
                metadata,
                event.recorded_at.timestamp_micros(),
            ]);
            match inserted {
                Ok(_) => positions.push(to_u64(tx.last_insert_rowid(), "position")?),
                Err(e) if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => {
                    return Ok(None);
                }
                Err(e) => return Err(StoreError::backend(e)),
            }
        }
        Ok(Some(AppendOutcome {
            stream_version: actual + events.len() as u64,
            positions,
        }))
    }

    /// Classifies an append that stored nothing: a retry, a clash or a conflict; `None`
    /// means "run it again".
    fn refused(
        &self,
        conn: &Connection,
        stream_type: &str,
        stream_id: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<Option<AppendOutcome>, StoreError> {
        let mut stored = HashMap::with_capacity(events.len());
        let mut query = conn
            .prepare_cached(&self.slot)
            .map_err(StoreError::backend)?;
        for event in events {
            let row = query
                .query_row([event.event_id.as_bytes().as_slice()], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get(2)?,
                        r.get(3)?,
                    ))
                })
                .optional()
                .map_err(StoreError::backend)?;
            if let Some((st, sid, version, position)) = row {
                let slot = (
                    st,
                    sid,
                    to_u64(version, "version")?,
                    to_u64(position, "position")?,
                );
                stored.insert(event.event_id, slot);
            }
        }
        let lookup = |id: &Uuid| {
            stored.get(id).map(|(st, sid, version, position)| Slot {
                stream_type: st,
                stream_id: sid,
                stream_version: *version,
                global_position: *position,
            })
        };
        let actual = self.head(conn, stream_type, stream_id)?;
        classify(stream_type, stream_id, expected, events, actual, lookup)
    }

    pub(super) fn read_stream(
        &self,
        conn: &Connection,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let from = to_i64(from_version.max(1), "version")?;
        let mut query = conn
            .prepare_cached(&self.read_stream)
            .map_err(StoreError::backend)?;
        let rows = query
            .query_map(params![stream_type, stream_id, from], row_values)
            .map_err(StoreError::backend)?;
        rows.map(|r| r.map_err(StoreError::backend).and_then(stored_event))
            .collect()
    }

    pub(super) fn read_stream_events(
        &self,
        conn: &Connection,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
    ) -> Result<Vec<StreamEvent>, StoreError> {
        let from = to_i64(from_version.max(1), "version")?;
        let mut query = conn
            .prepare_cached(&self.read_stream_events)
            .map_err(StoreError::backend)?;
        let rows = query
            .query_map(params![stream_type, stream_id, from], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(StoreError::backend)?;
        rows.map(|row| {
            let (position, version, event_type, event_version, payload) =
                row.map_err(StoreError::backend)?;
            Ok(StreamEvent {
                global_position: to_u64(position, "position")?,
                stream_version: to_u64(version, "version")?,
                event_type,
                event_version: u32::try_from(event_version).map_err(StoreError::backend)?,
                payload: payload.into_bytes(),
            })
        })
        .collect()
    }

    /// Visits one stream's events for a load straight from the rows (borrowed column
    /// values, no allocation per event); stops when `visit` returns `false`.
    pub(super) fn visit_stream(
        &self,
        conn: &Connection,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
        mut visit: impl FnMut(StreamEventRef<'_>) -> bool,
    ) -> Result<(), StoreError> {
        let from = to_i64(from_version.max(1), "version")?;
        let mut query = conn
            .prepare_cached(&self.read_stream_events)
            .map_err(StoreError::backend)?;
        let mut rows = query
            .query(params![stream_type, stream_id, from])
            .map_err(StoreError::backend)?;
        while let Some(row) = rows.next().map_err(StoreError::backend)? {
            let event_type = row.get_ref(2).map_err(StoreError::backend)?;
            // The payload stays bytes: decoding validates its UTF-8 anyway.
            let payload = row.get_ref(4).map_err(StoreError::backend)?;
            let event_version: i64 = row.get(3).map_err(StoreError::backend)?;
            let event = StreamEventRef {
                global_position: to_u64(row.get(0).map_err(StoreError::backend)?, "position")?,
                stream_version: to_u64(row.get(1).map_err(StoreError::backend)?, "version")?,
                event_type: event_type.as_str().map_err(StoreError::backend)?,
                event_version: u32::try_from(event_version).map_err(StoreError::backend)?,
                payload: payload.as_bytes().map_err(StoreError::backend)?,
            };
            if !visit(event) {
                break;
            }
        }
        Ok(())
    }

    /// [`Sql::visit_stream`] into [`Chunk`]s handed to `send` (which returns `false` when
    /// the receiver is gone).
    pub(super) fn replay_stream(
        &self,
        conn: &Connection,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
        pool: &ChunkPool,
        mut send: impl FnMut(Chunk) -> bool,
    ) -> Result<(), StoreError> {
        let mut chunk = pool.take();
        let mut receiving = true;
        self.visit_stream(conn, stream_type, stream_id, from_version, |event| {
            chunk.push(event);
            if chunk.is_full() {
                receiving = send(std::mem::replace(&mut chunk, pool.take()));
            }
            receiving
        })?;
        if receiving && !chunk.is_empty() {
            send(chunk);
        }
        Ok(())
    }

    pub(super) fn read_all(
        &self,
        conn: &Connection,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let after = to_i64(after, "position")?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut query = conn
            .prepare_cached(&self.read_all)
            .map_err(StoreError::backend)?;
        let rows = query
            .query_map(params![after, limit], row_values)
            .map_err(StoreError::backend)?;
        rows.map(|r| r.map_err(StoreError::backend).and_then(stored_event))
            .collect()
    }

    pub(super) fn head_position(&self, conn: &Connection) -> Result<u64, StoreError> {
        let head: i64 = conn
            .prepare_cached(&self.head_position)
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(StoreError::backend)?;
        to_u64(head, "position")
    }
}

/// The raw columns of one event row, in [`COLUMNS`] order.
type RowValues = (
    i64,
    String,
    String,
    i64,
    Vec<u8>,
    String,
    i64,
    String,
    String,
    i64,
);

fn row_values(r: &Row<'_>) -> rusqlite::Result<RowValues> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    ))
}

fn stored_event(values: RowValues) -> Result<StoredEvent, StoreError> {
    let (
        position,
        stream_type,
        stream_id,
        version,
        id,
        event_type,
        event_version,
        payload,
        meta,
        at,
    ) = values;
    let metadata: Metadata = serde_json::from_str(&meta).map_err(StoreError::backend)?;
    Ok(StoredEvent {
        global_position: to_u64(position, "position")?,
        stream_type,
        stream_id,
        stream_version: to_u64(version, "version")?,
        event_id: Uuid::from_slice(&id).map_err(StoreError::backend)?,
        event_type,
        event_version: u32::try_from(event_version).map_err(StoreError::backend)?,
        payload: payload.into_bytes(),
        metadata,
        recorded_at: DateTime::from_timestamp_micros(at).ok_or_else(|| {
            StoreError::backend(format!("stored recorded_at {at} is out of range"))
        })?,
    })
}
