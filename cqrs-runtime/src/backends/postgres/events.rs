//! The [`EventStore`] implementation of [`PostgresEventStore`].

use chrono::{DateTime, Utc};
use futures_core::Stream;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use tokio_postgres::Statement;

use super::{Conn, PostgresEventStore, Prepared, db};
use crate::backends::idempotency::{
    StoredSlots, classify, duplicate_in_batch, slot_of, to_i64, to_u64,
};
use crate::envelope::Metadata;
use crate::store::{
    AppendOutcome, Claim, ClaimAction, ClaimHolder, CorruptEvent, Cursor, EventFilter, EventStore,
    ExpectedVersion, NewEvent, ReadBatch, StoreError, StoredEvent, StreamEventRef, check_append,
    claimed, net,
};

/// How often an append re-runs after losing a race it may still win (an any-version append
/// whose computed version was taken, or a stream that caught up with the expected version).
pub(super) const RACE_ATTEMPTS: usize = 32;

/// A batch as column arrays, bound to the append's `unnest`.
pub(super) struct Columns<'a> {
    ids: Vec<Uuid>,
    types: Vec<&'a str>,
    versions: Vec<i32>,
    payloads: Vec<&'a str>,
    metadata: Vec<String>,
    recorded: Vec<DateTime<Utc>>,
    /// The batch's net claims: (scope, value) taken and released.
    pub(super) claims: Option<ClaimColumns>,
}

/// A batch's net claims as column arrays (`$10`..`$13` of the claiming statements).
pub(super) struct ClaimColumns {
    pub(super) claimed: Vec<Claim>,
    claim_scopes: Vec<String>,
    claim_values: Vec<String>,
    claim_events: Vec<i32>,
    release_scopes: Vec<String>,
    release_values: Vec<String>,
}

impl<'a> Columns<'a> {
    pub(super) fn new(events: &'a [NewEvent]) -> Result<Self, StoreError> {
        let mut c = Columns {
            ids: Vec::with_capacity(events.len()),
            types: Vec::with_capacity(events.len()),
            versions: Vec::with_capacity(events.len()),
            payloads: Vec::with_capacity(events.len()),
            metadata: Vec::with_capacity(events.len()),
            recorded: Vec::with_capacity(events.len()),
            claims: None,
        };
        if events.iter().any(|e| !e.claims.is_empty()) {
            let batch = events
                .iter()
                .enumerate()
                .flat_map(|(i, e)| e.claims.iter().map(move |c| (i, c)));
            let mut columns = ClaimColumns {
                claimed: Vec::new(),
                claim_scopes: Vec::new(),
                claim_values: Vec::new(),
                claim_events: Vec::new(),
                release_scopes: Vec::new(),
                release_values: Vec::new(),
            };
            for (event, claim) in net(batch) {
                let (scopes, values) = match claim.action {
                    ClaimAction::Claim => {
                        columns.claimed.push(claim.clone());
                        columns
                            .claim_events
                            .push(i32::try_from(event).map_err(StoreError::backend)?);
                        (&mut columns.claim_scopes, &mut columns.claim_values)
                    }
                    ClaimAction::Release => {
                        (&mut columns.release_scopes, &mut columns.release_values)
                    }
                };
                scopes.push(claim.scope.to_string());
                values.push(claim.value.clone());
            }
            c.claims = Some(columns);
        }
        for e in events {
            c.ids.push(e.event_id);
            c.types.push(&e.event_type);
            c.versions
                .push(i32::try_from(e.event_version).map_err(StoreError::backend)?);
            c.payloads
                .push(std::str::from_utf8(&e.payload).map_err(StoreError::backend)?);
            c.metadata
                .push(serde_json::to_string(&e.metadata).map_err(StoreError::backend)?);
            c.recorded.push(e.recorded_at);
        }
        Ok(c)
    }
}

impl Columns<'_> {
    /// The parameters of an append statement (see [`append_statement`]): 9, or 14 with
    /// claims.
    pub(super) fn params<'p>(
        &'p self,
        stream_type: &'p &str,
        stream_id: &'p &str,
        after: &'p i64,
    ) -> Vec<&'p (dyn ToSql + Sync)> {
        let mut params: Vec<&'p (dyn ToSql + Sync)> = Vec::with_capacity(14);
        params.extend([
            stream_type as &(dyn ToSql + Sync),
            stream_id,
            after,
            &self.ids,
            &self.types,
            &self.versions,
            &self.payloads,
            &self.metadata,
            &self.recorded,
        ]);
        if let Some(claims) = &self.claims {
            params.extend([
                &claims.claim_scopes as &(dyn ToSql + Sync),
                &claims.claim_values,
                &claims.release_scopes,
                &claims.release_values,
                &claims.claim_events,
            ]);
        }
        params
    }
}

/// The append statement for `expected` and its `$3`. `known`: the expected version is known
/// to be stored (see [`KnownHeads`](super::heads::KnownHeads)), so the unique key is the only
/// check the statement needs.
pub(super) fn append_statement(
    st: &Prepared,
    expected: ExpectedVersion,
    known: bool,
    claiming: bool,
) -> Result<(&Statement, i64), StoreError> {
    let (new, exact, any) = if claiming {
        (&st.claiming_new, &st.claiming_exact, &st.claiming_any)
    } else {
        (&st.append_new, &st.append_exact, &st.append_any)
    };
    Ok(match expected.exact() {
        Some(0) => (new, 0),
        Some(version) if known => (new, to_i64(version, "version")?),
        Some(version) => (exact, to_i64(version, "version")?),
        None => (any, 0),
    })
}

impl PostgresEventStore {
    /// Whether `expected` is an exact version this store knows to be stored.
    pub(super) fn known(&self, stream_type: &str, stream_id: &str, e: ExpectedVersion) -> bool {
        e.exact()
            .is_some_and(|v| self.inner.heads.covers(stream_type, stream_id, v))
    }

    /// Records that `version` of the stream is committed.
    pub(super) fn saw(&self, stream_type: &str, stream_id: &str, version: u64) {
        self.inner.heads.saw(stream_type, stream_id, version);
    }

    pub(super) async fn stream_head(
        &self,
        conn: &Conn,
        stream_type: &str,
        stream_id: &str,
    ) -> Result<u64, StoreError> {
        let row = conn
            .client
            .query_one(&conn.st.head, &[&stream_type, &stream_id])
            .await
            .map_err(db)?;
        to_u64(row.try_get(0).map_err(db)?, "stream version")
    }

    /// Where each of `ids` that is stored sits.
    pub(super) async fn stored_slots(
        &self,
        conn: &Conn,
        ids: &[Uuid],
    ) -> Result<StoredSlots, StoreError> {
        let rows = conn
            .client
            .query(&conn.st.slots, &[&ids])
            .await
            .map_err(db)?;
        let mut stored = StoredSlots::with_capacity(rows.len());
        for row in rows {
            let id: Uuid = row.try_get(0).map_err(db)?;
            let st: String = row.try_get(1).map_err(db)?;
            let sid: String = row.try_get(2).map_err(db)?;
            let version = to_u64(row.try_get(3).map_err(db)?, "version")?;
            let position = to_u64(row.try_get(4).map_err(db)?, "position")?;
            stored.insert(id, (st, sid, version, position));
        }
        Ok(stored)
    }

    /// Classifies an append that stored nothing: `Ok(None)` means "run it again".
    pub(super) async fn refused(
        &self,
        conn: &Conn,
        stream_type: &str,
        stream_id: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<Option<AppendOutcome>, StoreError> {
        let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
        let stored = self.stored_slots(conn, &ids).await?;
        let actual = self.stream_head(conn, stream_type, stream_id).await?;
        let lookup = |id: &Uuid| slot_of(&stored, id);
        classify(stream_type, stream_id, expected, events, actual, lookup)
    }
}

impl PostgresEventStore {
    /// The refusal of a claiming append that divided by zero: the first claim another stream
    /// holds (`None`: released meanwhile, run the append again).
    pub(super) async fn clash(
        &self,
        conn: &Conn,
        stream_type: &str,
        stream_id: &str,
        columns: &Columns<'_>,
    ) -> Result<Option<StoreError>, StoreError> {
        let Some(claims) = &columns.claims else {
            return Err(StoreError::backend(
                "an append without claims divided by zero",
            ));
        };
        for claim in &claims.claimed {
            if let Some(holder) = self.claim_holder(conn, &claim.scope, &claim.value).await?
                && (holder.stream_type != stream_type || holder.stream_id != stream_id)
            {
                return Ok(Some(claimed(claim, holder)));
            }
        }
        Ok(None)
    }

    pub(super) async fn claim_holder(
        &self,
        conn: &Conn,
        scope: &str,
        value: &str,
    ) -> Result<Option<ClaimHolder>, StoreError> {
        let row = conn
            .client
            .query_opt(self.inner.texts.claim_holder.as_str(), &[&scope, &value])
            .await
            .map_err(db)?;
        row.map(|row| {
            Ok(ClaimHolder {
                stream_type: row.try_get(0).map_err(db)?,
                stream_id: row.try_get(1).map_err(db)?,
                position: to_u64(row.try_get(2).map_err(db)?, "claim position")?,
            })
        })
        .transpose()
    }
}

impl PostgresEventStore {
    /// The first transaction id not yet assigned: every transaction that could have
    /// committed an event so far is below it (see [`PostgresEventStore::settled`]).
    #[cfg(feature = "cli")]
    pub(crate) async fn settle_point(&self) -> Result<u64, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .client
            .query_one(
                "SELECT (pg_snapshot_xmax(pg_current_snapshot())::text)::int8",
                &[],
            )
            .await
            .map_err(db)?;
        to_u64(row.try_get(0).map_err(db)?, "transaction id")
    }

    /// Whether every transaction below `point` (a [`settle_point`](Self::settle_point)) has
    /// ended, so that `read_after` returns every event they committed.
    #[cfg(feature = "cli")]
    pub(crate) async fn settled(&self, point: u64) -> Result<bool, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .client
            .query_one(
                "SELECT (pg_snapshot_xmin(pg_current_snapshot())::text)::int8",
                &[],
            )
            .await
            .map_err(db)?;
        Ok(to_u64(row.try_get(0).map_err(db)?, "transaction id")? >= point)
    }
}

impl EventStore for PostgresEventStore {
    async fn append(
        &self,
        stream_type: &str,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        check_append(stream_type, stream_id, &events)?;
        if let Some(event_id) = duplicate_in_batch(&events) {
            return Err(StoreError::DuplicateEventId { event_id });
        }
        let conn = self.conn().await?;
        if events.is_empty() {
            let actual = self.stream_head(&conn, stream_type, stream_id).await?;
            expected.check(stream_type, stream_id, actual)?;
            return Ok(AppendOutcome {
                stream_version: actual,
                positions: Vec::new(),
            });
        }
        let columns = Columns::new(&events)?;
        let known = self.known(stream_type, stream_id, expected);
        let (statement, after) =
            append_statement(&conn.st, expected, known, columns.claims.is_some())?;
        let params = columns.params(&stream_type, &stream_id, &after);
        for _ in 0..RACE_ATTEMPTS {
            let inserted = conn.client.query(statement, &params).await;
            match inserted {
                Ok(rows) if rows.len() == events.len() => {
                    let outcome = outcome(rows)?;
                    self.saw(stream_type, stream_id, outcome.stream_version);
                    return Ok(outcome);
                }
                Ok(_) => {}
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {}
                Err(e) if e.code() == Some(&SqlState::DIVISION_BY_ZERO) => {
                    if let Some(refusal) =
                        self.clash(&conn, stream_type, stream_id, &columns).await?
                    {
                        return Err(refusal);
                    }
                }
                Err(e) => return Err(db(e)),
            }
            if let Some(outcome) = self
                .refused(&conn, stream_type, stream_id, expected, &events)
                .await?
            {
                return Ok(outcome);
            }
            tokio::task::yield_now().await;
        }
        Err(StoreError::backend(format!(
            "append to {stream_type}/{stream_id} lost {RACE_ATTEMPTS} races in a row"
        )))
    }

    async fn read_stream(
        &self,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let conn = self.conn().await?;
        let from = to_i64(from_version.max(1), "version")?;
        let rows = conn
            .client
            .query(&conn.st.read_stream, &[&stream_type, &stream_id, &from])
            .await
            .map_err(db)?;
        let events: Vec<StoredEvent> = rows
            .iter()
            .map(|row| row_to_event(row, None))
            .collect::<Result<_, _>>()?;
        if let Some(last) = events.last() {
            self.saw(stream_type, stream_id, last.stream_version);
        }
        Ok(events)
    }

    /// Decodes each row as it arrives from the server (a row stream, not a `Vec` of rows),
    /// lending its text columns to `visit` without copying them.
    async fn replay_stream<F>(
        &self,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
        mut visit: F,
    ) -> Result<(), StoreError>
    where
        F: FnMut(StreamEventRef<'_>) -> bool + Send,
    {
        let conn = self.conn().await?;
        let from = to_i64(from_version.max(1), "version")?;
        let params: [&(dyn ToSql + Sync); 3] = [&stream_type, &stream_id, &from];
        let rows = conn
            .client
            .query_raw(&conn.st.read_stream_events, params)
            .await
            .map_err(db)?;
        let mut rows = std::pin::pin!(rows);
        let mut last = 0;
        while let Some(row) = std::future::poll_fn(|cx| rows.as_mut().poll_next(cx)).await {
            let row = row.map_err(db)?;
            let Some(event) = stream_event(&row) else {
                return Err(corrupt_stream_row(&row, stream_type, stream_id));
            };
            last = event.stream_version;
            if !visit(event) {
                break;
            }
        }
        self.saw(stream_type, stream_id, last);
        Ok(())
    }

    /// `(xmin - 1, max position)`: every event of a finished transaction is at or before
    /// it; an event of a transaction still open has `tx_id >= xmin` and comes after it.
    async fn head(&self) -> Result<Cursor, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .client
            .query_one(&conn.st.log_head, &[])
            .await
            .map_err(db)?;
        let tx: i64 = row.try_get(0).map_err(db)?;
        let position: i64 = row.try_get(1).map_err(db)?;
        Ok(Cursor {
            tx: to_u64(tx.max(0), "head tx")?,
            position: to_u64(position, "position")?,
        })
    }

    async fn read_event(&self, event_id: Uuid) -> Result<Option<StoredEvent>, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .client
            .query_opt(&conn.st.read_event, &[&event_id])
            .await
            .map_err(db)?;
        row.map(|row| {
            let cursor = row
                .try_get::<_, i64>(10)
                .ok()
                .and_then(|tx| u64::try_from(tx).ok())
                .zip(position(&row))
                .map(|(tx, position)| Cursor { tx, position });
            row_to_event(&row, cursor)
        })
        .transpose()
    }

    /// The readable events before the first unreadable row, or that row's error when it
    /// comes first.
    async fn read_after(
        &self,
        after: Cursor,
        limit: usize,
    ) -> Result<Vec<(Cursor, StoredEvent)>, StoreError> {
        let conn = self.conn().await?;
        let tx = to_i64(after.tx, "cursor tx")?;
        let position = to_i64(after.position, "cursor position")?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = conn
            .client
            .query(&conn.st.read_after, &[&tx, &position, &limit])
            .await
            .map_err(db)?;
        rows_to_events(&rows)
    }

    /// Keeps the gap-safety of `read_after`: only transactions below the snapshot's xmin are
    /// read, and `through` never passes an event of a transaction still open.
    async fn read_filtered(
        &self,
        after: Cursor,
        limit: usize,
        filter: &EventFilter,
    ) -> Result<ReadBatch, StoreError> {
        if limit == 0 {
            return Ok(ReadBatch {
                events: Vec::new(),
                through: after,
            });
        }
        let conn = self.conn().await?;
        let tx = to_i64(after.tx, "cursor tx")?;
        let position = to_i64(after.position, "cursor position")?;
        let limit_i = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = conn
            .client
            .query(
                &conn.st.read_filtered,
                &[
                    &tx,
                    &position,
                    &limit_i,
                    &filter.stream_types(),
                    &filter.event_types(),
                ],
            )
            .await
            .map_err(db)?;
        let mut tail = after;
        let mut hits = Vec::with_capacity(rows.len());
        for row in &rows {
            let tail_tx: Option<i64> = row.try_get(11).map_err(db)?;
            let tail_position: Option<i64> = row.try_get(12).map_err(db)?;
            if let (Some(tx), Some(position)) = (tail_tx, tail_position) {
                let at = Cursor {
                    tx: to_u64(tx, "tx")?,
                    position: to_u64(position, "position")?,
                };
                tail = tail.max(at);
            }
            if row.try_get::<_, Option<i64>>(0).map_err(db)?.is_some() {
                hits.push(row);
            }
        }
        let events = rows_to_events_of(hits.iter().copied())?;
        let through = match events.last() {
            Some((last, _)) if events.len() < hits.len() || events.len() >= limit => *last,
            _ => tail,
        };
        Ok(ReadBatch { events, through })
    }
}

/// The outcome of a successful insert: positions in stream-version order.
pub(super) fn outcome(rows: Vec<Row>) -> Result<AppendOutcome, StoreError> {
    let mut pairs = Vec::with_capacity(rows.len());
    for row in rows {
        let position = to_u64(row.try_get(0).map_err(db)?, "position")?;
        let version = to_u64(row.try_get(1).map_err(db)?, "version")?;
        pairs.push((version, position));
    }
    pairs.sort_unstable();
    Ok(AppendOutcome {
        stream_version: pairs.last().map_or(0, |&(version, _)| version),
        positions: pairs.into_iter().map(|(_, position)| position).collect(),
    })
}

/// Rows of `COLUMNS` and the transaction id → the readable events before the first
/// unreadable row, or that row's error when it comes first.
pub(super) fn rows_to_events(rows: &[Row]) -> Result<Vec<(Cursor, StoredEvent)>, StoreError> {
    rows_to_events_of(rows.iter())
}

/// [`rows_to_events`] over borrowed rows.
fn rows_to_events_of<'r>(
    rows: impl ExactSizeIterator<Item = &'r Row>,
) -> Result<Vec<(Cursor, StoredEvent)>, StoreError> {
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        let cursor = row
            .try_get::<_, i64>(10)
            .ok()
            .and_then(|tx| u64::try_from(tx).ok())
            .zip(
                row.try_get::<_, i64>(0)
                    .ok()
                    .and_then(|p| u64::try_from(p).ok()),
            )
            .map(|(tx, position)| Cursor { tx, position });
        match row_to_event(row, cursor) {
            Ok(event) => events.push((cursor.unwrap_or_default(), event)),
            Err(_) if !events.is_empty() => break,
            Err(error) => return Err(error),
        }
    }
    Ok(events)
}

/// One row of `COLUMNS` → a stored event; a row that cannot be read is
/// [`StoreError::Corrupt`], naming what of its place could be read.
fn row_to_event(row: &Row, cursor: Option<Cursor>) -> Result<StoredEvent, StoreError> {
    let read = || -> Result<StoredEvent, String> {
        let text = |i: usize, what: &str| -> Result<String, String> {
            row.try_get::<_, String>(i)
                .map_err(|e| format!("{what} cannot be read: {e}"))
        };
        let metadata = text(8, "metadata")?;
        let metadata: Metadata = serde_json::from_str(&metadata)
            .map_err(|e| format!("metadata is not valid metadata JSON: {e}"))?;
        let version: i64 = row
            .try_get(3)
            .map_err(|e| format!("stream_version cannot be read: {e}"))?;
        let stream_version = u64::try_from(version)
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| format!("stream_version {version} is not a positive version"))?;
        let event_version: i32 = row
            .try_get(6)
            .map_err(|e| format!("event_version cannot be read: {e}"))?;
        Ok(StoredEvent {
            global_position: position(row).unwrap_or(0),
            stream_type: text(1, "stream_type")?,
            stream_id: text(2, "stream_id")?,
            stream_version,
            event_id: row
                .try_get(4)
                .map_err(|e| format!("event_id cannot be read: {e}"))?,
            event_type: text(5, "event_type")?,
            event_version: u32::try_from(event_version)
                .map_err(|_| format!("event_version {event_version} is out of range"))?,
            payload: text(7, "payload")?.into_bytes(),
            metadata,
            recorded_at: row
                .try_get(9)
                .map_err(|e| format!("recorded_at cannot be read: {e}"))?,
        })
    };
    read().map_err(|reason| {
        CorruptEvent {
            global_position: position(row).unwrap_or(0),
            cursor,
            stream_type: row.try_get(1).ok(),
            stream_id: row.try_get(2).ok(),
            stream_version: row
                .try_get::<_, i64>(3)
                .ok()
                .and_then(|v| u64::try_from(v).ok()),
            reason,
        }
        .into()
    })
}

fn position(row: &Row) -> Option<u64> {
    row.try_get::<_, i64>(0)
        .ok()
        .and_then(|p| u64::try_from(p).ok())
}

/// A load's view of one row (position, version, type, event version, payload), borrowed;
/// `None` when a column does not hold what it should.
#[inline]
fn stream_event(row: &Row) -> Option<StreamEventRef<'_>> {
    let event_version: i32 = row.try_get(3).ok()?;
    let payload: &str = row.try_get(4).ok()?;
    Some(StreamEventRef {
        global_position: u64::try_from(row.try_get::<_, i64>(0).ok()?).ok()?,
        stream_version: u64::try_from(row.try_get::<_, i64>(1).ok()?).ok()?,
        event_type: row.try_get(2).ok()?,
        event_version: u32::try_from(event_version).ok()?,
        payload: payload.as_bytes(),
    })
}

/// The error of a stream row that [`stream_event`] could not read (out of the hot loop).
#[cold]
#[inline(never)]
fn corrupt_stream_row(row: &Row, stream_type: &str, stream_id: &str) -> StoreError {
    let reason = [
        "global_position",
        "stream_version",
        "event_type",
        "event_version",
        "payload",
    ]
    .iter()
    .enumerate()
    .find_map(|(i, name)| {
        let fine = match i {
            2 | 4 => row.try_get::<_, &str>(i).is_ok(),
            3 => row
                .try_get::<_, i32>(i)
                .is_ok_and(|v| u32::try_from(v).is_ok()),
            _ => row.try_get::<_, i64>(i).is_ok_and(|v| v >= 0),
        };
        (!fine).then(|| format!("column {name} cannot be read"))
    })
    .unwrap_or_else(|| "unreadable row".to_owned());
    CorruptEvent {
        global_position: position(row).unwrap_or(0),
        cursor: None,
        stream_type: Some(stream_type.to_owned()),
        stream_id: Some(stream_id.to_owned()),
        stream_version: row
            .try_get::<_, i64>(1)
            .ok()
            .and_then(|v| u64::try_from(v).ok()),
        reason,
    }
    .into()
}
