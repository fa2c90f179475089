//! The SQLite store's SQL: schema migrations, append, reads. Table names are validated
//! identifiers spliced in once, at open; every value is bound.

use std::convert::Infallible;

use chrono::DateTime;
use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Row, Transaction, TransactionBehavior, params,
};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::chunk::{Chunk, ChunkPool};
use super::{db, db_text};
use crate::backends::idempotency::{
    StoredSlots, batch_outcomes, classify, classify_batch, duplicate_in_batch, plan_batch, slot_of,
    to_i64, to_u64,
};
use crate::backends::names::TableNames;
use crate::backends::transaction::{TransactionError, TransactionOutcome};
use crate::envelope::Metadata;
use crate::store::{
    AppendOutcome, ClaimAction, ClaimHolder, CorruptEvent, Cursor, EventFilter, ExpectedVersion,
    NewEvent, ReadBatch, StoreError, StoredEvent, StreamAppend, StreamEventRef, claimed, net,
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
        .map_err(db)
}

pub(super) fn begin_immediate(conn: &mut Connection) -> Result<Transaction<'_>, StoreError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db)
}

/// How often an append committed alone runs again when, between its refusal and the look
/// at why, another process made room for it.
const ALONE_ATTEMPTS: usize = 4;

fn fail_all(group: Vec<Request>, error: &rusqlite::Error) {
    for request in group {
        let _ = request.reply.send(Err(db_text(error)));
    }
}

const COLUMNS: &str = "global_position, stream_type, stream_id, stream_version, event_id, \
    event_type, event_version, payload, metadata, recorded_at";

pub(super) struct Sql {
    pub(super) tables: TableNames,
    pub(super) side: super::side_sql::SideSql,
    insert: String,
    head: String,
    slot: String,
    read_stream: String,
    read_stream_events: String,
    read_after: String,
    read_event: String,
    head_position: String,
    claim_holder: String,
    claim_insert: String,
    claim_release: String,
    pub(super) load_snapshot: String,
    pub(super) save_snapshot: String,
}

impl Sql {
    pub(super) fn new(t: &TableNames) -> Self {
        let (events, snapshots) = (&t.events, &t.snapshots);
        Self {
            tables: t.clone(),
            side: super::side_sql::SideSql::new(t),
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
            read_after: format!(
                "SELECT {COLUMNS} FROM {events} WHERE global_position > ?1 \
                 ORDER BY global_position LIMIT ?2"
            ),
            read_event: format!("SELECT {COLUMNS} FROM {events} WHERE event_id = ?1"),
            claim_holder: format!(
                "SELECT stream_type, stream_id, position FROM {} WHERE scope = ?1 AND value = ?2",
                t.claims
            ),
            claim_insert: format!(
                "INSERT INTO {} (scope, value, stream_type, stream_id, position) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                t.claims
            ),
            claim_release: format!(
                "DELETE FROM {} WHERE scope = ?1 AND value = ?2 AND stream_type = ?3 \
                 AND stream_id = ?4",
                t.claims
            ),
            head_position: format!("SELECT coalesce(max(global_position), 0) FROM {events}"),
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
                        tx.commit().map_err(db)?;
                        Ok(TransactionOutcome::Committed { outcome, value })
                    }
                    // Dropping `tx` rolls it back.
                    Err(error) => Err(TransactionError::Caller(error)),
                };
            }
            tx.rollback().map_err(db)?;
            let tx = begin_immediate(conn)?;
            let refused = self.refused(&tx, stream_type, stream_id, expected, events);
            tx.rollback().map_err(db)?;
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
            .map_err(db)?;
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
        let mut insert = tx.prepare_cached(&self.insert).map_err(db)?;
        if !Self::insert_events(
            &mut insert,
            stream_type,
            stream_id,
            actual,
            events,
            &mut positions,
        )? {
            return Ok(None);
        }
        if events.iter().any(|e| !e.claims.is_empty()) {
            self.apply_claims(tx, stream_type, stream_id, events, &positions)?;
        }
        Ok(Some(AppendOutcome {
            stream_version: actual + events.len() as u64,
            positions,
        }))
    }

    /// Inserts `events` after version `after` of the stream, pushing their positions; `false`
    /// when a unique key refused one (the caller rolls back).
    fn insert_events(
        insert: &mut rusqlite::Statement<'_>,
        stream_type: &str,
        stream_id: &str,
        after: u64,
        events: &[NewEvent],
        positions: &mut Vec<u64>,
    ) -> Result<bool, StoreError> {
        for (version, event) in (after + 1..).zip(events) {
            let payload = std::str::from_utf8(&event.payload).map_err(StoreError::backend)?;
            let metadata = serde_json::to_string(&event.metadata).map_err(StoreError::backend)?;
            let inserted = insert.insert(params![
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
                Ok(rowid) => positions.push(to_u64(rowid, "position")?),
                Err(e) if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => {
                    return Ok(false);
                }
                Err(e) => return Err(db(e)),
            }
        }
        Ok(true)
    }

    /// A multi-stream batch in one `BEGIN IMMEDIATE` transaction (see
    /// `SqliteEventStore::append_batch`). A refusal is classified under the write lock, in a
    /// new transaction; if another process made room meanwhile, the batch runs again.
    pub(super) fn append_batch(
        &self,
        conn: &mut Connection,
        appends: &[StreamAppend],
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        for _ in 0..ALONE_ATTEMPTS {
            let tx = begin_immediate(conn)?;
            match plan_batch(appends, |t, i| self.head(&tx, t, i)) {
                Ok(starts) => {
                    let mut positions = Vec::new();
                    let mut stored = true;
                    let mut insert = tx.prepare_cached(&self.insert).map_err(db)?;
                    for (a, start) in appends.iter().zip(&starts) {
                        if !Self::insert_events(
                            &mut insert,
                            &a.stream_type,
                            &a.stream_id,
                            *start,
                            &a.events,
                            &mut positions,
                        )? {
                            stored = false;
                            break;
                        }
                    }
                    drop(insert);
                    if stored {
                        tx.commit().map_err(db)?;
                        return Ok(batch_outcomes(appends, &starts, positions.into_iter()));
                    }
                }
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
            tx.rollback().map_err(db)?;
            let tx = begin_immediate(conn)?;
            let ids = appends.iter().flat_map(|a| &a.events).map(|e| e.event_id);
            let slots = self.slots(&tx, ids)?;
            let decided = classify_batch(
                appends,
                |t, i| self.head(&tx, t, i),
                |id| slot_of(&slots, id),
            );
            tx.rollback().map_err(db)?;
            if let Some(outcomes) = decided? {
                return Ok(outcomes);
            }
        }
        Err(StoreError::backend(format!(
            "a batch append was refused {ALONE_ATTEMPTS} times, but neither as a clash nor as a \
             conflict"
        )))
    }

    /// The batch's net claims, in the append's transaction: refused (the caller rolls back)
    /// if another stream holds one.
    fn apply_claims(
        &self,
        tx: &Connection,
        stream_type: &str,
        stream_id: &str,
        events: &[NewEvent],
        positions: &[u64],
    ) -> Result<(), StoreError> {
        let batch = events
            .iter()
            .enumerate()
            .flat_map(|(i, e)| e.claims.iter().map(move |c| (i, c)));
        for (event, claim) in net(batch) {
            let position = positions.get(event).copied().unwrap_or_default();
            let (scope, value) = (claim.scope.as_ref(), claim.value.as_str());
            match claim.action {
                ClaimAction::Claim => {
                    if let Some(holder) = self.claim_holder(tx, scope, value)? {
                        if holder.stream_type != stream_type || holder.stream_id != stream_id {
                            return Err(claimed(claim, holder));
                        }
                        continue;
                    }
                    tx.prepare_cached(&self.claim_insert)
                        .and_then(|mut s| {
                            s.execute(params![
                                scope,
                                value,
                                stream_type,
                                stream_id,
                                to_i64(position, "position").map_err(|e| {
                                    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
                                })?
                            ])
                        })
                        .map_err(db)?;
                }
                ClaimAction::Release => {
                    tx.prepare_cached(&self.claim_release)
                        .and_then(|mut s| s.execute(params![scope, value, stream_type, stream_id]))
                        .map_err(db)?;
                }
            }
        }
        Ok(())
    }

    pub(super) fn claim_holder(
        &self,
        conn: &Connection,
        scope: &str,
        value: &str,
    ) -> Result<Option<ClaimHolder>, StoreError> {
        let row: Option<(String, String, i64)> = conn
            .prepare_cached(&self.claim_holder)
            .and_then(|mut s| {
                s.query_row(params![scope, value], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()
            })
            .map_err(db)?;
        row.map(|(stream_type, stream_id, position)| {
            Ok(ClaimHolder {
                stream_type,
                stream_id,
                position: to_u64(position, "claim position")?,
            })
        })
        .transpose()
    }

    /// Where each of `ids` that is stored sits.
    fn slots(
        &self,
        conn: &Connection,
        ids: impl Iterator<Item = Uuid>,
    ) -> Result<StoredSlots, StoreError> {
        let mut stored = StoredSlots::new();
        let mut query = conn.prepare_cached(&self.slot).map_err(db)?;
        for id in ids {
            let row = query
                .query_row([id.as_bytes().as_slice()], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get(2)?,
                        r.get(3)?,
                    ))
                })
                .optional()
                .map_err(db)?;
            if let Some((st, sid, version, position)) = row {
                let slot = (
                    st,
                    sid,
                    to_u64(version, "version")?,
                    to_u64(position, "position")?,
                );
                stored.insert(id, slot);
            }
        }
        Ok(stored)
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
        let stored = self.slots(conn, events.iter().map(|e| e.event_id))?;
        let lookup = |id: &Uuid| slot_of(&stored, id);
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
        let mut query = conn.prepare_cached(&self.read_stream).map_err(db)?;
        let mut rows = query
            .query(params![stream_type, stream_id, from])
            .map_err(db)?;
        let mut events = Vec::new();
        while let Some(row) = rows.next().map_err(db)? {
            events.push(stored_event(row)?);
        }
        Ok(events)
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
        let mut query = conn.prepare_cached(&self.read_stream_events).map_err(db)?;
        let mut rows = query
            .query(params![stream_type, stream_id, from])
            .map_err(db)?;
        while let Some(row) = rows.next().map_err(db)? {
            let Some(event) = stream_event(row) else {
                return Err(corrupt_stream_row(row, stream_type, stream_id));
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

    /// At most `limit` events after `after`: the readable ones before the first unreadable
    /// row, or that row's error when it comes first.
    pub(super) fn read_after(
        &self,
        conn: &Connection,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(Cursor, StoredEvent)>, StoreError> {
        let after = to_i64(after, "position")?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut query = conn.prepare_cached(&self.read_after).map_err(db)?;
        let mut rows = query.query(params![after, limit]).map_err(db)?;
        let mut events = Vec::new();
        while let Some(row) = rows.next().map_err(db)? {
            match stored_event(row) {
                Ok(event) => {
                    let cursor = Cursor {
                        tx: 0,
                        position: event.global_position,
                    };
                    events.push((cursor, event));
                }
                Err(_) if !events.is_empty() => break,
                Err(error) => return Err(error),
            }
        }
        Ok(events)
    }

    /// At most `limit` events after `after` that match `filter`, and how far the read looked:
    /// one statement (one snapshot of the file), in which every listed stream type and name
    /// is an index range read in position order, at most `limit` rows each, merged.
    pub(super) fn read_filtered(
        &self,
        conn: &Connection,
        after: u64,
        limit: usize,
        filter: &EventFilter,
    ) -> Result<ReadBatch, StoreError> {
        let start = Cursor {
            tx: 0,
            position: after,
        };
        let cursor = |position| Cursor { tx: 0, position };
        if filter.is_empty() || limit == 0 {
            let head = self.head_position(conn)?;
            let through = if limit == 0 {
                start
            } else {
                cursor(head.max(after))
            };
            return Ok(ReadBatch {
                events: Vec::new(),
                through,
            });
        }
        let sql = self.filtered_statement(filter);
        let after_i = to_i64(after, "position")?;
        let limit_i = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut values: Vec<&dyn rusqlite::ToSql> = vec![&after_i, &limit_i];
        for value in filter.stream_types().iter().chain(filter.event_types()) {
            values.push(value);
        }
        let mut query = conn.prepare_cached(&sql).map_err(db)?;
        let mut rows = query.query(values.as_slice()).map_err(db)?;
        let mut events = Vec::new();
        let mut tail = after;
        let mut broken = false;
        while let Some(row) = rows.next().map_err(db)? {
            let head: i64 = row.get(10).map_err(db)?;
            tail = tail.max(to_u64(head, "position")?);
            if row.get::<_, Option<i64>>(0).map_err(db)?.is_none() {
                continue; // no event matched: the row carries the head alone
            }
            match stored_event(row) {
                Ok(event) => events.push((cursor(event.global_position), event)),
                Err(_) if !events.is_empty() => {
                    broken = true;
                    break;
                }
                Err(error) => return Err(error),
            }
        }
        let through = match events.last() {
            Some((last, _)) if broken || events.len() >= limit => *last,
            _ => cursor(tail),
        };
        Ok(ReadBatch { events, through })
    }

    /// The statement of [`Sql::read_filtered`] for the shape of `filter`: `?1` the position
    /// read after, `?2` the limit, then the stream types and the names.
    fn filtered_statement(&self, filter: &EventFilter) -> String {
        let events = &self.tables.events;
        let types = filter.stream_types().len();
        let mut arms = Vec::new();
        for i in 0..types {
            arms.push(format!(
                "SELECT * FROM (SELECT {COLUMNS} FROM {events} WHERE stream_type = ?{} \
                 AND global_position > ?1 ORDER BY global_position LIMIT ?2)",
                i + 3
            ));
        }
        let other_types = if types == 0 {
            String::new()
        } else {
            let list: Vec<String> = (0..types).map(|i| format!("?{}", i + 3)).collect();
            format!(" AND stream_type NOT IN ({})", list.join(", "))
        };
        for i in 0..filter.event_types().len() {
            arms.push(format!(
                "SELECT * FROM (SELECT {COLUMNS} FROM {events} WHERE event_type = ?{}{other_types} \
                 AND global_position > ?1 ORDER BY global_position LIMIT ?2)",
                i + 3 + types
            ));
        }
        format!(
            "SELECT h.*, (SELECT coalesce(max(global_position), 0) FROM {events}) \
             FROM (SELECT 1) AS one LEFT JOIN ({}) AS h ON 1 \
             ORDER BY h.global_position LIMIT ?2",
            arms.join(" UNION ALL ")
        )
    }

    pub(super) fn read_event(
        &self,
        conn: &Connection,
        event_id: Uuid,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let mut query = conn.prepare_cached(&self.read_event).map_err(db)?;
        let mut rows = query.query([event_id.as_bytes().as_slice()]).map_err(db)?;
        match rows.next().map_err(db)? {
            Some(row) => stored_event(row).map(Some),
            None => Ok(None),
        }
    }

    pub(super) fn head_position(&self, conn: &Connection) -> Result<u64, StoreError> {
        let head: i64 = conn
            .prepare_cached(&self.head_position)
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(db)?;
        to_u64(head, "position")
    }
}

/// One event row, in [`COLUMNS`] order; a row that cannot be read is
/// [`StoreError::Corrupt`], naming what of its place could be read.
fn stored_event(row: &Row<'_>) -> Result<StoredEvent, StoreError> {
    let position: i64 = row.get(0).map_err(db)?;
    let global_position = to_u64(position, "position")?;
    let text = |i: usize| -> Option<String> { row.get::<_, String>(i).ok() };
    let corrupt = |reason: String| -> StoreError {
        CorruptEvent {
            global_position,
            cursor: Some(Cursor {
                tx: 0,
                position: global_position,
            }),
            stream_type: text(1),
            stream_id: text(2),
            stream_version: row
                .get::<_, i64>(3)
                .ok()
                .and_then(|v| u64::try_from(v).ok()),
            reason,
        }
        .into()
    };
    let read = || -> Result<StoredEvent, String> {
        let get_text = |i: usize, what: &str| -> Result<String, String> {
            row.get::<_, String>(i)
                .map_err(|e| format!("{what} is not text: {e}"))
        };
        let get_int = |i: usize, what: &str| -> Result<i64, String> {
            row.get::<_, i64>(i)
                .map_err(|e| format!("{what} is not an integer: {e}"))
        };
        let version = get_int(3, "stream_version")?;
        let stream_version = u64::try_from(version)
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| format!("stream_version {version} is not a positive version"))?;
        let id: Vec<u8> = row
            .get(4)
            .map_err(|e| format!("event_id is not a blob: {e}"))?;
        let event_id = Uuid::from_slice(&id).map_err(|e| format!("event_id is not a UUID: {e}"))?;
        let event_version = get_int(6, "event_version")?;
        let event_version = u32::try_from(event_version)
            .map_err(|_| format!("event_version {event_version} is out of range"))?;
        let payload = get_text(7, "payload")?;
        let meta = get_text(8, "metadata")?;
        let metadata: Metadata = serde_json::from_str(&meta)
            .map_err(|e| format!("metadata is not valid metadata JSON: {e}"))?;
        let at = get_int(9, "recorded_at")?;
        let recorded_at = DateTime::from_timestamp_micros(at)
            .ok_or_else(|| format!("recorded_at {at} is out of range"))?;
        Ok(StoredEvent {
            global_position,
            stream_type: get_text(1, "stream_type")?,
            stream_id: get_text(2, "stream_id")?,
            stream_version,
            event_id,
            event_type: get_text(5, "event_type")?,
            event_version,
            payload: payload.into_bytes(),
            metadata,
            recorded_at,
        })
    };
    read().map_err(corrupt)
}

/// A load's view of one row (position, version, type, event version, payload), borrowed;
/// `None` when a column does not hold what it should.
#[inline]
fn stream_event<'r>(row: &'r Row<'_>) -> Option<StreamEventRef<'r>> {
    let position = u64::try_from(row.get_ref(0).ok()?.as_i64().ok()?).ok()?;
    let version = u64::try_from(row.get_ref(1).ok()?.as_i64().ok()?).ok()?;
    let event_version = u32::try_from(row.get_ref(3).ok()?.as_i64().ok()?).ok()?;
    Some(StreamEventRef {
        global_position: position,
        stream_version: version,
        event_type: row.get_ref(2).ok()?.as_str().ok()?,
        event_version,
        // The payload stays bytes: decoding validates its UTF-8 anyway.
        payload: row.get_ref(4).ok()?.as_bytes().ok()?,
    })
}

/// The error of a stream row that [`stream_event`] could not read (out of the hot loop).
#[cold]
#[inline(never)]
fn corrupt_stream_row(row: &Row<'_>, stream_type: &str, stream_id: &str) -> StoreError {
    let int = |i: usize| row.get_ref(i).ok().and_then(|v| v.as_i64().ok());
    let global_position = int(0).and_then(|p| u64::try_from(p).ok()).unwrap_or(0);
    let columns = [
        "global_position",
        "stream_version",
        "event_type",
        "event_version",
        "payload",
    ];
    let reason = columns
        .iter()
        .enumerate()
        .find_map(|(i, name)| {
            let value = row.get_ref(i).ok()?;
            let fine = match i {
                2 => value.as_str().is_ok(),
                4 => value.as_bytes().is_ok(),
                3 => value
                    .as_i64()
                    .ok()
                    .is_some_and(|v| u32::try_from(v).is_ok()),
                _ => value.as_i64().ok().is_some_and(|v| v >= 0),
            };
            (!fine).then(|| format!("column {name} holds {:?}", value.data_type()))
        })
        .unwrap_or_else(|| "unreadable row".to_owned());
    CorruptEvent {
        global_position,
        cursor: None,
        stream_type: Some(stream_type.to_owned()),
        stream_id: Some(stream_id.to_owned()),
        stream_version: int(1).and_then(|v| u64::try_from(v).ok()),
        reason,
    }
    .into()
}
