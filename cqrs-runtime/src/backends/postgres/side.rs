//! The PostgreSQL side tables: checkpoints with their dead letters (fenced), snapshots, and
//! leases (session advisory locks).

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row};

use super::{Conn, PostgresEventStore, db, open};
use crate::backends::idempotency::{to_i64, to_u64};
use crate::store::EventStore;
use crate::store::{
    Checkpoint, CheckpointChange, CheckpointCommit, CheckpointStore, ClaimHolder, ClaimRebuild,
    ClaimStore, ClaimsRebuilt, Cursor, DeadLetter, Lease, LeaseStore, NamedCheckpoint, Snapshot,
    SnapshotStore, StoreError, already_committed, apply_change, fenced,
};

fn checkpoint_row(row: &Row) -> Result<Checkpoint, StoreError> {
    let get = |i: usize| row.try_get::<_, i64>(i).map_err(db);
    let version = get(2)?;
    Ok(Checkpoint {
        cursor: Cursor {
            tx: to_u64(get(0)?, "checkpoint tx")?,
            position: to_u64(get(1)?, "checkpoint position")?,
        },
        version: u32::try_from(version).map_err(|_| {
            StoreError::backend(format!("stored checkpoint version {version} is not a u32"))
        })?,
        // Stored as the same 64 bits, reinterpreted.
        fingerprint: get(3)? as u64,
        generation: to_u64(get(4)?, "checkpoint generation")?,
        fence: to_u64(get(5)?, "checkpoint fence")?,
    })
}

fn dead_letter_row(row: &Row) -> Result<DeadLetter, StoreError> {
    let int = |i: usize| row.try_get::<_, i64>(i).map_err(db);
    let text = |i: usize| row.try_get::<_, String>(i).map_err(db);
    let event_version = int(7)?;
    Ok(DeadLetter {
        cursor: Cursor {
            tx: to_u64(int(1)?, "dead letter tx")?,
            position: to_u64(int(0)?, "dead letter position")?,
        },
        event_id: row.try_get(2).map_err(db)?,
        stream_type: text(3)?,
        stream_id: text(4)?,
        stream_version: to_u64(int(5)?, "dead letter version")?,
        event_type: text(6)?,
        event_version: u32::try_from(event_version).map_err(StoreError::backend)?,
        error: text(8)?,
        recorded_at: row.try_get(9).map_err(db)?,
    })
}

impl Conn {
    /// A statement prepared once on this connection (read models' and side tables' SQL).
    pub(super) async fn statement(
        &mut self,
        sql: &str,
    ) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
        if let Some(statement) = self.user.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await?;
        self.user.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

impl PostgresEventStore {
    /// Runs `work` in a transaction on a connection of its own; the connection is kept for
    /// reuse only if the transaction committed (a failed one may have left stale statements
    /// or a broken session).
    pub(super) async fn in_transaction<T>(
        &self,
        work: impl AsyncFnOnce(&mut Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.exclusive_conn().await?;
        conn.client.batch_execute("BEGIN").await.map_err(db)?;
        let result = match work(&mut conn).await {
            Ok(value) => conn
                .client
                .batch_execute("COMMIT")
                .await
                .map_err(db)
                .map(|()| value),
            Err(error) => {
                let _ = conn.client.batch_execute("ROLLBACK").await;
                Err(error)
            }
        };
        if result.is_ok() {
            self.return_exclusive(conn);
        }
        result
    }

    /// Inside a transaction on `conn`: locks `name`'s checkpoint row, checks the fence, runs
    /// `statements`, applies `commit`.
    pub(super) async fn commit_in(
        &self,
        conn: &mut Conn,
        name: &str,
        commit: CheckpointCommit,
        statements: impl AsyncFnOnce(&mut Conn) -> Result<(), StoreError>,
    ) -> Result<Checkpoint, StoreError> {
        let texts = &self.inner.texts;
        let select = conn
            .statement(&texts.checkpoint_for_update)
            .await
            .map_err(db)?;
        let Some(row) = conn.client.query_opt(&select, &[&name]).await.map_err(db)? else {
            return Err(fenced(name, commit.fence, 0));
        };
        let stored = checkpoint_row(&row)?;
        if stored.fence != commit.fence {
            return Err(fenced(name, commit.fence, stored.fence));
        }
        if already_committed(&stored, &commit) {
            return Ok(stored);
        }
        statements(conn).await?;
        let next = apply_change(stored, commit.change);
        let update = conn.statement(&texts.checkpoint_update).await.map_err(db)?;
        let values: [&(dyn ToSql + Sync); 6] = [
            &name,
            &to_i64(next.cursor.tx, "checkpoint tx")?,
            &to_i64(next.cursor.position, "checkpoint position")?,
            &i64::from(next.version),
            // Stored as the same 64 bits, reinterpreted.
            &(next.fingerprint as i64),
            &to_i64(next.generation, "checkpoint generation")?,
        ];
        conn.client.execute(&update, &values).await.map_err(db)?;
        if matches!(commit.change, CheckpointChange::Reset { .. }) {
            let clear = conn.statement(&texts.dead_clear).await.map_err(db)?;
            conn.client.execute(&clear, &[&name]).await.map_err(db)?;
        }
        for position in commit.remove {
            let remove = conn.statement(&texts.dead_remove).await.map_err(db)?;
            let position = to_i64(position, "dead letter position")?;
            conn.client
                .execute(&remove, &[&name, &position])
                .await
                .map_err(db)?;
        }
        for letter in commit.record {
            let insert = conn.statement(&texts.dead_insert).await.map_err(db)?;
            let values: [&(dyn ToSql + Sync); 11] = [
                &name,
                &to_i64(letter.cursor.position, "position")?,
                &to_i64(letter.cursor.tx, "tx")?,
                &letter.event_id,
                &letter.stream_type,
                &letter.stream_id,
                &to_i64(letter.stream_version, "version")?,
                &letter.event_type,
                &i64::from(letter.event_version),
                &letter.error,
                &letter.recorded_at,
            ];
            conn.client.execute(&insert, &values).await.map_err(db)?;
        }
        Ok(next)
    }
}

impl CheckpointStore for PostgresEventStore {
    async fn checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .client
            .query_opt(self.inner.texts.checkpoint.as_str(), &[&name])
            .await
            .map_err(db)?;
        row.as_ref().map(checkpoint_row).transpose()
    }

    async fn claim(&self, name: &str) -> Result<Checkpoint, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .client
            .query_one(self.inner.texts.claim.as_str(), &[&name])
            .await
            .map_err(db)?;
        checkpoint_row(&row)
    }

    async fn commit(&self, name: &str, commit: CheckpointCommit) -> Result<Checkpoint, StoreError> {
        self.in_transaction(async |conn| self.commit_in(conn, name, commit, async |_| Ok(())).await)
            .await
    }

    async fn dead_letters(&self, name: &str) -> Result<Vec<DeadLetter>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .client
            .query(self.inner.texts.dead_select.as_str(), &[&name])
            .await
            .map_err(db)?;
        rows.iter().map(dead_letter_row).collect()
    }
}

impl SnapshotStore for PostgresEventStore {
    async fn load_snapshot(
        &self,
        stream_type: &str,
        stream_id: &str,
    ) -> Result<Option<Snapshot>, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .client
            .query_opt(&conn.st.load_snapshot, &[&stream_type, &stream_id])
            .await
            .map_err(db)?;
        row.map(|row| {
            let fingerprint: i64 = row.try_get(1).map_err(db)?;
            Ok(Snapshot {
                stream_type: stream_type.to_owned(),
                stream_id: stream_id.to_owned(),
                version: to_u64(row.try_get(0).map_err(db)?, "version")?,
                // Stored as the same 64 bits, reinterpreted.
                state_fingerprint: fingerprint as u64,
                payload: row.try_get(2).map_err(db)?,
            })
        })
        .transpose()
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        let version = to_i64(snapshot.version, "snapshot version")?;
        let fingerprint = snapshot.state_fingerprint as i64;
        conn.client
            .execute(
                &conn.st.save_snapshot,
                &[
                    &snapshot.stream_type,
                    &snapshot.stream_id,
                    &version,
                    &fingerprint,
                    &snapshot.payload,
                ],
            )
            .await
            .map_err(db)?;
        Ok(())
    }
}

/// A lease of a [`PostgresEventStore`]: a session advisory lock held by a connection of its
/// own. Dropping the lease closes that connection, and PostgreSQL releases the lock; a
/// crashed holder's lock goes with its session.
pub struct PostgresLease {
    name: String,
    key: String,
    client: Client,
}

impl std::fmt::Debug for PostgresLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresLease")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The advisory lock of `key`, as `pg_locks` shows a lock taken on a `bigint` key: its high
/// 32 bits in `classid`, its low 32 bits in `objid`, `objsubid` 1.
const LEASE_LOCK: &str = "locktype = 'advisory' AND objsubid = 1 AND granted \
     AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($1::text, 0)";

impl Lease for PostgresLease {
    fn name(&self) -> &str {
        &self.name
    }

    /// `false` once the lease's connection closed (the server released the lock then).
    fn is_held(&self) -> bool {
        !self.client.is_closed()
    }

    /// Asks the server, on the lease's own connection, whether its session still holds the
    /// advisory lock (`pg_locks`). A session the server ended answers nothing: the query
    /// fails, or waits until the caller's timeout when the network dropped the connection.
    async fn check(&self) -> Result<bool, StoreError> {
        if self.client.is_closed() {
            return Ok(false);
        }
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = pg_backend_pid() AND {LEASE_LOCK})"
        );
        self.client
            .query_one(&sql, &[&self.key])
            .await
            .and_then(|row| row.try_get::<_, bool>(0))
            .map_err(db)
    }
}

impl PostgresLease {
    /// Asks the server whether the lock is still this lease's own (see [`Lease::check`]; an
    /// error is a `false`).
    pub async fn verify(&self) -> bool {
        self.check().await.unwrap_or(false)
    }
}

impl PostgresEventStore {
    /// The advisory-lock key of the lease on `name`: the schema, the events table and the
    /// name.
    fn lease_key(&self, name: &str) -> String {
        format!(
            "cqrs-lease:{}.{}:{name}",
            self.schema(),
            self.inner.config.tables.events()
        )
    }

    /// Every stored checkpoint, by name, with its dead-letter count (for tools: what
    /// `cqrs_runtime::cli`'s `projections` lists).
    pub async fn checkpoints(&self) -> Result<Vec<NamedCheckpoint>, StoreError> {
        let config = &self.inner.config;
        let checkpoints = format!("{}.{}", config.schema, config.tables.checkpoints);
        let dead = format!("{}.{}", config.schema, config.tables.dead_letters);
        let sql = format!(
            "SELECT last_tx_id, last_position, version, fingerprint, generation, fence, name, \
             updated_at, (SELECT count(*) FROM {dead} d WHERE d.name = c.name) \
             FROM {checkpoints} c ORDER BY name"
        );
        let conn = self.conn().await?;
        let rows = conn.client.query(&sql, &[]).await.map_err(db)?;
        rows.iter()
            .map(|row| {
                Ok(NamedCheckpoint {
                    checkpoint: checkpoint_row(row)?,
                    name: row.try_get(6).map_err(db)?,
                    updated_at: row.try_get(7).map_err(db)?,
                    dead_letters: to_u64(row.try_get(8).map_err(db)?, "dead letter count")?,
                })
            })
            .collect()
    }

    /// The process id (`pg_backend_pid`) of the session that holds the lease on `name`, if
    /// any: the session to end (`pg_terminate_backend`) to take a lease from a holder that
    /// hangs. The fence keeps a holder that lost its lease this way from writing.
    pub async fn lease_holder(&self, name: &str) -> Result<Option<i32>, StoreError> {
        let conn = self.conn().await?;
        let sql = format!("SELECT pid FROM pg_locks WHERE {LEASE_LOCK} LIMIT 1");
        let row = conn
            .client
            .query_opt(&sql, &[&self.lease_key(name)])
            .await
            .map_err(db)?;
        row.map(|row| row.try_get::<_, i32>(0).map_err(db))
            .transpose()
    }
}

/// One active holder per name across every process that shares the database: a session
/// advisory lock (`pg_try_advisory_lock`) on a 64-bit hash of the schema, the events table
/// and the name.
impl LeaseStore for PostgresEventStore {
    type Lease = PostgresLease;

    async fn try_acquire(&self, name: &str) -> Result<Option<PostgresLease>, StoreError> {
        let client = open(&self.inner.connector).await?;
        let key = self.lease_key(name);
        let acquired: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended($1::text, 0))",
                &[&key],
            )
            .await
            .and_then(|row| row.try_get(0))
            .map_err(db)?;
        Ok(acquired.then(|| PostgresLease {
            name: name.to_owned(),
            key,
            client,
        }))
    }

    /// `true`: every process connected to the database sees the lock.
    fn spans_processes(&self) -> bool {
        true
    }

    /// Looks the lock up in `pg_locks` on a shared connection ([`lease_holder`](Self::lease_holder)).
    async fn is_taken(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.lease_holder(name).await?.is_some())
    }
}

impl ClaimStore for PostgresEventStore {
    async fn holder(&self, scope: &str, value: &str) -> Result<Option<ClaimHolder>, StoreError> {
        let conn = self.conn().await?;
        self.claim_holder(&conn, scope, value).await
    }

    async fn rebuild_claims(&self, mut rebuild: ClaimRebuild) -> Result<ClaimsRebuilt, StoreError> {
        // The bulk of the log without a lock, appends going on.
        loop {
            let batch = self.read_after(rebuild.cursor(), 1000).await?;
            if batch.is_empty() {
                break;
            }
            for (cursor, event) in &batch {
                rebuild.feed(*cursor, event)?;
            }
        }
        // The rest, the claims read and the changes under the claims table's lock.
        self.in_transaction(async |conn| {
            let texts = &self.inner.texts;
            conn.client
                .batch_execute(&texts.claims_lock)
                .await
                .map_err(db)?;
            loop {
                let at = rebuild.cursor();
                let (tx, position) = (
                    to_i64(at.tx, "cursor tx")?,
                    to_i64(at.position, "cursor position")?,
                );
                let rows = conn
                    .client
                    .query(texts.claims_tail.as_str(), &[&tx, &position, &1000_i64])
                    .await
                    .map_err(db)?;
                let batch = super::events::rows_to_events(&rows)?;
                if batch.is_empty() {
                    break;
                }
                for (cursor, event) in &batch {
                    rebuild.feed(*cursor, event)?;
                }
            }
            let scopes: Vec<&str> = rebuild.scopes().iter().map(String::as_str).collect();
            let rows = conn
                .client
                .query(texts.claims_live.as_str(), &[&scopes])
                .await
                .map_err(db)?;
            let mut live = Vec::with_capacity(rows.len());
            for row in &rows {
                live.push((
                    row.try_get(0).map_err(db)?,
                    row.try_get(1).map_err(db)?,
                    ClaimHolder {
                        stream_type: row.try_get(2).map_err(db)?,
                        stream_id: row.try_get(3).map_err(db)?,
                        position: to_u64(row.try_get(4).map_err(db)?, "claim position")?,
                    },
                ));
            }
            let dry_run = rebuild.is_dry_run();
            let changes = rebuild.finish(live);
            if dry_run {
                return Ok(changes.report);
            }
            let (scopes, values): (Vec<&str>, Vec<&str>) = changes
                .remove
                .iter()
                .map(|(s, v)| (s.as_str(), v.as_str()))
                .unzip();
            conn.client
                .execute(texts.claims_remove.as_str(), &[&scopes, &values])
                .await
                .map_err(db)?;
            let mut columns: [Vec<&str>; 4] = Default::default();
            let mut positions: Vec<i64> = Vec::with_capacity(changes.upsert.len());
            for (scope, value, holder) in &changes.upsert {
                let [s, v, t, i] = &mut columns;
                s.push(scope);
                v.push(value);
                t.push(&holder.stream_type);
                i.push(&holder.stream_id);
                positions.push(to_i64(holder.position, "claim position")?);
            }
            let [s, v, t, i] = &columns;
            conn.client
                .execute(texts.claims_upsert.as_str(), &[s, v, t, i, &positions])
                .await
                .map_err(db)?;
            Ok(changes.report)
        })
        .await
    }
}
