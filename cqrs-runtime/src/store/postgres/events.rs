//! The [`EventStore`] implementation of [`PostgresEventStore`].

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures_core::Stream;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use tokio_postgres::Statement;

use super::{Conn, PostgresEventStore, Prepared};
use crate::envelope::Metadata;
use crate::store::idempotency::{Slot, classify, duplicate_in_batch, to_i64, to_u64};
use crate::store::{
    AppendOutcome, Cursor, EventStore, ExpectedVersion, NewEvent, StoreError, StoredEvent,
    StreamEvent, StreamEventRef,
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
        };
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
    /// The parameters of an append statement (see [`append_statement`]).
    pub(super) fn params<'p>(
        &'p self,
        stream_type: &'p &str,
        stream_id: &'p &str,
        after: &'p i64,
    ) -> [&'p (dyn ToSql + Sync); 9] {
        [
            stream_type,
            stream_id,
            after,
            &self.ids,
            &self.types,
            &self.versions,
            &self.payloads,
            &self.metadata,
            &self.recorded,
        ]
    }
}

/// The append statement for `expected` and its `$3`. `known`: the expected version is known
/// to be stored (see [`KnownHeads`](super::heads::KnownHeads)), so the unique key is the only
/// check the statement needs.
pub(super) fn append_statement(
    st: &Prepared,
    expected: ExpectedVersion,
    known: bool,
) -> Result<(&Statement, i64), StoreError> {
    Ok(match expected.exact() {
        Some(0) => (&st.append_new, 0),
        Some(version) if known => (&st.append_new, to_i64(version, "version")?),
        Some(version) => (&st.append_exact, to_i64(version, "version")?),
        None => (&st.append_any, 0),
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
            .map_err(StoreError::backend)?;
        to_u64(
            row.try_get(0).map_err(StoreError::backend)?,
            "stream version",
        )
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
        let rows = conn
            .client
            .query(&conn.st.slots, &[&ids])
            .await
            .map_err(StoreError::backend)?;
        let mut stored = HashMap::with_capacity(rows.len());
        for row in rows {
            let id: Uuid = row.try_get(0).map_err(StoreError::backend)?;
            let st: String = row.try_get(1).map_err(StoreError::backend)?;
            let sid: String = row.try_get(2).map_err(StoreError::backend)?;
            let version = to_u64(row.try_get(3).map_err(StoreError::backend)?, "version")?;
            let position = to_u64(row.try_get(4).map_err(StoreError::backend)?, "position")?;
            stored.insert(id, (st, sid, version, position));
        }
        let actual = self.stream_head(conn, stream_type, stream_id).await?;
        let lookup = |id: &Uuid| {
            stored.get(id).map(|(st, sid, version, position)| Slot {
                stream_type: st,
                stream_id: sid,
                stream_version: *version,
                global_position: *position,
            })
        };
        classify(stream_type, stream_id, expected, events, actual, lookup)
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
        let (statement, after) = append_statement(&conn.st, expected, known)?;
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
                Err(e) => return Err(StoreError::backend(e)),
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
            .map_err(StoreError::backend)?;
        let events: Vec<StoredEvent> = rows.iter().map(row_to_event).collect::<Result<_, _>>()?;
        if let Some(last) = events.last() {
            self.saw(stream_type, stream_id, last.stream_version);
        }
        Ok(events)
    }

    async fn read_stream_events(
        &self,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
    ) -> Result<Vec<StreamEvent>, StoreError> {
        let conn = self.conn().await?;
        let from = to_i64(from_version.max(1), "version")?;
        let rows = conn
            .client
            .query(
                &conn.st.read_stream_events,
                &[&stream_type, &stream_id, &from],
            )
            .await
            .map_err(StoreError::backend)?;
        let events: Vec<StreamEvent> = rows
            .iter()
            .map(|row| {
                let event_version: i32 = row.try_get(3).map_err(e)?;
                let payload: String = row.try_get(4).map_err(e)?;
                Ok(StreamEvent {
                    global_position: to_u64(row.try_get(0).map_err(e)?, "position")?,
                    stream_version: to_u64(row.try_get(1).map_err(e)?, "version")?,
                    event_type: row.try_get(2).map_err(e)?,
                    event_version: u32::try_from(event_version).map_err(e)?,
                    payload: payload.into_bytes(),
                })
            })
            .collect::<Result<_, StoreError>>()?;
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
            .map_err(e)?;
        let mut rows = std::pin::pin!(rows);
        let mut last = 0;
        while let Some(row) = std::future::poll_fn(|cx| rows.as_mut().poll_next(cx)).await {
            let row = row.map_err(e)?;
            let event_version: i32 = row.try_get(3).map_err(e)?;
            let payload: &str = row.try_get(4).map_err(e)?;
            let event = StreamEventRef {
                global_position: to_u64(row.try_get(0).map_err(e)?, "position")?,
                stream_version: to_u64(row.try_get(1).map_err(e)?, "version")?,
                event_type: row.try_get(2).map_err(e)?,
                event_version: u32::try_from(event_version).map_err(e)?,
                payload: payload.as_bytes(),
            };
            last = event.stream_version;
            if !visit(event) {
                break;
            }
        }
        self.saw(stream_type, stream_id, last);
        Ok(())
    }

    async fn read_all(
        &self,
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let conn = self.conn().await?;
        let after = to_i64(after_position, "position")?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = conn
            .client
            .query(&conn.st.read_all, &[&after, &limit])
            .await
            .map_err(StoreError::backend)?;
        rows.iter().map(row_to_event).collect()
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .client
            .query_one(&conn.st.head_position, &[])
            .await
            .map_err(StoreError::backend)?;
        to_u64(row.try_get(0).map_err(StoreError::backend)?, "position")
    }

    async fn read_after(
        &self,
        cursor: Cursor,
        limit: usize,
    ) -> Result<Vec<(Cursor, StoredEvent)>, StoreError> {
        let conn = self.conn().await?;
        let tx = to_i64(cursor.tx, "cursor tx")?;
        let position = to_i64(cursor.position, "cursor position")?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = conn
            .client
            .query(&conn.st.read_after, &[&tx, &position, &limit])
            .await
            .map_err(StoreError::backend)?;
        rows.iter()
            .map(|row| {
                let event = row_to_event(row)?;
                let tx = to_u64(row.try_get(10).map_err(StoreError::backend)?, "tx id")?;
                let cursor = Cursor {
                    tx,
                    position: event.global_position,
                };
                Ok((cursor, event))
            })
            .collect()
    }
}

/// The outcome of a successful insert: positions in stream-version order.
pub(super) fn outcome(rows: Vec<Row>) -> Result<AppendOutcome, StoreError> {
    let mut pairs = Vec::with_capacity(rows.len());
    for row in rows {
        let position = to_u64(row.try_get(0).map_err(StoreError::backend)?, "position")?;
        let version = to_u64(row.try_get(1).map_err(StoreError::backend)?, "version")?;
        pairs.push((version, position));
    }
    pairs.sort_unstable();
    Ok(AppendOutcome {
        stream_version: pairs.last().map_or(0, |&(version, _)| version),
        positions: pairs.into_iter().map(|(_, position)| position).collect(),
    })
}

/// One row of `COLUMNS` → a stored event.
fn row_to_event(row: &Row) -> Result<StoredEvent, StoreError> {
    let metadata: String = row.try_get(8).map_err(e)?;
    let metadata: Metadata = serde_json::from_str(&metadata).map_err(e)?;
    let payload: String = row.try_get(7).map_err(e)?;
    let event_version: i32 = row.try_get(6).map_err(e)?;
    Ok(StoredEvent {
        global_position: to_u64(row.try_get(0).map_err(e)?, "position")?,
        stream_type: row.try_get(1).map_err(e)?,
        stream_id: row.try_get(2).map_err(e)?,
        stream_version: to_u64(row.try_get(3).map_err(e)?, "version")?,
        event_id: row.try_get(4).map_err(e)?,
        event_type: row.try_get(5).map_err(e)?,
        event_version: u32::try_from(event_version).map_err(e)?,
        payload: payload.into_bytes(),
        metadata,
        recorded_at: row.try_get(9).map_err(e)?,
    })
}

/// Any driver error as a backend error (a generic fn, so it fits every `map_err`).
fn e(error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::backend(error)
}
