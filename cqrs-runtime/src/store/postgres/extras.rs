//! Checkpoints, snapshots and leases of the PostgreSQL store.

use tokio_postgres::Client;

use super::{PostgresEventStore, open};
use crate::store::idempotency::{to_i64, to_u64};
use crate::store::{CheckpointStore, Cursor, LeaseStore, Snapshot, SnapshotStore, StoreError};

impl CheckpointStore for PostgresEventStore {
    async fn load_checkpoint(&self, projection: &str) -> Result<Option<Cursor>, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .client
            .query_opt(&conn.st.load_checkpoint, &[&projection])
            .await
            .map_err(StoreError::backend)?;
        row.map(|row| {
            Ok(Cursor {
                tx: to_u64(
                    row.try_get(0).map_err(StoreError::backend)?,
                    "checkpoint tx",
                )?,
                position: to_u64(row.try_get(1).map_err(StoreError::backend)?, "checkpoint")?,
            })
        })
        .transpose()
    }

    async fn save_checkpoint(&self, projection: &str, cursor: Cursor) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        let tx = to_i64(cursor.tx, "checkpoint tx")?;
        let position = to_i64(cursor.position, "checkpoint position")?;
        conn.client
            .execute(&conn.st.save_checkpoint, &[&projection, &tx, &position])
            .await
            .map_err(StoreError::backend)?;
        Ok(())
    }

    async fn reset_checkpoint(&self, projection: &str) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.client
            .execute(&conn.st.reset_checkpoint, &[&projection])
            .await
            .map_err(StoreError::backend)?;
        Ok(())
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
            .map_err(StoreError::backend)?;
        row.map(|row| {
            let fingerprint: i64 = row.try_get(1).map_err(StoreError::backend)?;
            Ok(Snapshot {
                stream_type: stream_type.to_owned(),
                stream_id: stream_id.to_owned(),
                version: to_u64(row.try_get(0).map_err(StoreError::backend)?, "version")?,
                // Stored as the same 64 bits, reinterpreted.
                state_fingerprint: fingerprint as u64,
                payload: row.try_get(2).map_err(StoreError::backend)?,
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
            .map_err(StoreError::backend)?;
        Ok(())
    }
}

/// A lease of a [`PostgresEventStore`]: a session advisory lock held by a connection of its
/// own. Dropping the lease closes that connection, and PostgreSQL releases the lock; a
/// crashed holder's lock goes with its session.
pub struct PostgresLease {
    name: String,
    client: Client,
}

impl std::fmt::Debug for PostgresLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresLease")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl PostgresLease {
    /// The leased name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the lease still holds: its connection is open and the lock is still its own.
    /// A holder doing long work can call this between batches.
    pub async fn is_held(&self) -> bool {
        if self.client.is_closed() {
            return false;
        }
        self.client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
                 AND pid = pg_backend_pid() AND granted)",
                &[],
            )
            .await
            .and_then(|row| row.try_get::<_, bool>(0))
            .unwrap_or(false)
    }
}

/// One active holder per name across every process that shares the database: a session
/// advisory lock (`pg_try_advisory_lock`) on a 64-bit hash of the schema, the events table
/// and the name.
impl LeaseStore for PostgresEventStore {
    type Lease = PostgresLease;

    async fn try_acquire(&self, name: &str) -> Result<Option<PostgresLease>, StoreError> {
        let client = open(&self.inner.config.pg).await?;
        let key = format!(
            "cqrs-lease:{}.{}:{name}",
            self.schema(),
            self.inner.config.tables.events()
        );
        let acquired: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended($1::text, 0))",
                &[&key],
            )
            .await
            .and_then(|row| row.try_get(0))
            .map_err(StoreError::backend)?;
        Ok(acquired.then(|| PostgresLease {
            name: name.to_owned(),
            client,
        }))
    }
}
