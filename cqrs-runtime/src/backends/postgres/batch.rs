//! Multi-stream appends in one transaction (see [`PostgresEventStore::append_batch`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::events::RACE_ATTEMPTS;
use super::{Conn, PostgresEventStore, db};
use crate::backends::idempotency::{
    batch_outcomes, check_batch, classify_batch, plan_batch, slot_of, to_i64, to_u64,
};
use crate::store::{AppendOutcome, StoreError, StreamAppend};

impl PostgresEventStore {
    /// Appends to several streams in one transaction: every append of the batch is stored,
    /// or none is. Events take global positions in batch order, and readers following the
    /// log see the batch at once; each append's expected version is checked against the
    /// stream as the batch's earlier appends left it (a stream may appear several times).
    /// One statement and one commit for the whole batch: the way to import or copy many
    /// small streams fast.
    ///
    /// A batch whose every append is already stored, each at its place, returns the original
    /// outcomes (a retry after a lost answer). Otherwise a refusal refuses the whole batch
    /// and names the first cause: an id already stored elsewhere or held twice
    /// ([`StoreError::DuplicateEventId`]), then a version conflict ([`StoreError::Conflict`]).
    /// A batch stores no claims ([`StoreError::InvalidEvent`] for an event that carries one):
    /// claims are taken by [`EventStore::append`](crate::store::EventStore::append).
    ///
    /// Like [`append_with`](Self::append_with), it runs on a connection of its own.
    pub async fn append_batch(
        &self,
        appends: Vec<StreamAppend>,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        check_batch(&appends)?;
        if appends.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.exclusive_conn().await?;
        let result = self.run_batch(&mut conn, &appends).await;
        self.return_exclusive(conn);
        let outcomes = result?;
        for (a, outcome) in appends.iter().zip(&outcomes) {
            self.saw(&a.stream_type, &a.stream_id, outcome.stream_version);
        }
        Ok(outcomes)
    }

    async fn run_batch(
        &self,
        conn: &mut Conn,
        appends: &[StreamAppend],
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        let mut columns = BatchColumns::new(appends)?;
        let (types, ids) = distinct_streams(appends);
        for _ in 0..RACE_ATTEMPTS {
            let tx = conn.client.transaction().await.map_err(db)?;
            let rows = tx
                .query(&conn.st.batch_heads, &[&types, &ids])
                .await
                .map_err(db)?;
            let heads = stream_heads(&rows)?;
            let stored_head = |t: &str, i: &str| Ok(heads.get(&(t, i)).copied().unwrap_or(0));
            match plan_batch(appends, stored_head) {
                Ok(starts) => {
                    columns.set_versions(appends, &starts)?;
                    let inserted = tx.query(&conn.st.append_batch, &columns.params()).await;
                    match inserted {
                        Ok(rows) => {
                            let mut positions = rows
                                .iter()
                                .map(|row| to_u64(row.try_get(0).map_err(db)?, "position"))
                                .collect::<Result<Vec<u64>, StoreError>>()?;
                            // Inserted, so numbered, in array order.
                            positions.sort_unstable();
                            tx.commit().await.map_err(db)?;
                            return Ok(batch_outcomes(appends, &starts, positions.into_iter()));
                        }
                        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {}
                        Err(e) => return Err(db(e)),
                    }
                }
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
            // A failed statement aborted the transaction; a conflict stored nothing.
            drop(tx);
            if let Some(outcomes) = self.classify_batch(conn, appends, &types, &ids).await? {
                return Ok(outcomes);
            }
            tokio::task::yield_now().await;
        }
        Err(StoreError::backend(format!(
            "a batch append lost {RACE_ATTEMPTS} races in a row"
        )))
    }

    /// Why a batch stored nothing, on committed data: `Ok(None)` means "run it again".
    async fn classify_batch(
        &self,
        conn: &Conn,
        appends: &[StreamAppend],
        types: &[&str],
        ids: &[&str],
    ) -> Result<Option<Vec<AppendOutcome>>, StoreError> {
        let event_ids: Vec<Uuid> = appends
            .iter()
            .flat_map(|a| &a.events)
            .map(|e| e.event_id)
            .collect();
        let stored = self.stored_slots(conn, &event_ids).await?;
        let rows = conn
            .client
            .query(&conn.st.batch_heads, &[&types, &ids])
            .await
            .map_err(db)?;
        let heads = stream_heads(&rows)?;
        let stored_head = |t: &str, i: &str| Ok(heads.get(&(t, i)).copied().unwrap_or(0));
        classify_batch(appends, stored_head, |id| slot_of(&stored, id))
    }
}

/// Each stream of the batch once, as the `batch_heads` parameters.
fn distinct_streams(appends: &[StreamAppend]) -> (Vec<&str>, Vec<&str>) {
    let mut seen = std::collections::HashSet::new();
    appends
        .iter()
        .map(|a| (a.stream_type.as_str(), a.stream_id.as_str()))
        .filter(|key| seen.insert(*key))
        .unzip()
}

/// The rows of `batch_heads`, by stream.
fn stream_heads(rows: &[tokio_postgres::Row]) -> Result<HashMap<(&str, &str), u64>, StoreError> {
    rows.iter()
        .map(|row| {
            let t: &str = row.try_get(0).map_err(db)?;
            let i: &str = row.try_get(1).map_err(db)?;
            Ok((
                (t, i),
                to_u64(row.try_get(2).map_err(db)?, "stream version")?,
            ))
        })
        .collect()
}

/// A multi-stream batch as column arrays, bound to `append_batch`.
struct BatchColumns<'a> {
    types: Vec<&'a str>,
    ids: Vec<&'a str>,
    versions: Vec<i64>,
    event_ids: Vec<Uuid>,
    names: Vec<&'a str>,
    shapes: Vec<i32>,
    payloads: Vec<&'a str>,
    metadata: Vec<String>,
    recorded: Vec<DateTime<Utc>>,
}

impl<'a> BatchColumns<'a> {
    fn new(appends: &'a [StreamAppend]) -> Result<Self, StoreError> {
        let n = appends.iter().map(|a| a.events.len()).sum();
        let mut c = Self {
            types: Vec::with_capacity(n),
            ids: Vec::with_capacity(n),
            versions: Vec::with_capacity(n),
            event_ids: Vec::with_capacity(n),
            names: Vec::with_capacity(n),
            shapes: Vec::with_capacity(n),
            payloads: Vec::with_capacity(n),
            metadata: Vec::with_capacity(n),
            recorded: Vec::with_capacity(n),
        };
        for a in appends {
            for e in &a.events {
                c.types.push(&a.stream_type);
                c.ids.push(&a.stream_id);
                c.event_ids.push(e.event_id);
                c.names.push(&e.event_type);
                c.shapes
                    .push(i32::try_from(e.event_version).map_err(StoreError::backend)?);
                c.payloads
                    .push(std::str::from_utf8(&e.payload).map_err(StoreError::backend)?);
                c.metadata
                    .push(serde_json::to_string(&e.metadata).map_err(StoreError::backend)?);
                c.recorded.push(e.recorded_at);
            }
        }
        Ok(c)
    }

    /// The stream versions, from each append's start (see `plan_batch`).
    fn set_versions(&mut self, appends: &[StreamAppend], starts: &[u64]) -> Result<(), StoreError> {
        self.versions.clear();
        for (a, start) in appends.iter().zip(starts) {
            for version in (start + 1..).take(a.events.len()) {
                self.versions.push(to_i64(version, "stream version")?);
            }
        }
        Ok(())
    }

    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 9] {
        [
            &self.types,
            &self.ids,
            &self.versions,
            &self.event_ids,
            &self.names,
            &self.shapes,
            &self.payloads,
            &self.metadata,
            &self.recorded,
        ]
    }
}
