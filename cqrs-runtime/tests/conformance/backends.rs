//! The stores under test.

use std::time::Duration;

use cqrs_runtime::memory::{
    InMemoryCheckpoints, InMemoryEventStore, InMemoryLeases, InMemorySnapshots,
};
use cqrs_runtime::store::{EventStore, ExpectedVersion, NewEvent};

use super::Backend;

/// Appends after waiting: for stores whose writers are serialized anyway.
async fn wait_then_append(
    store: &impl EventStore,
    stream_type: &str,
    stream_id: &str,
    version: u64,
    event: NewEvent,
    hold: Duration,
) {
    tokio::time::sleep(hold).await;
    let expected = ExpectedVersion::from_version(version - 1);
    if let Err(e) = store
        .append(stream_type, stream_id, expected, vec![event])
        .await
    {
        panic!("append {stream_type}/{stream_id} v{version}: {e}");
    }
}

pub struct Memory {
    reactions: cqrs_runtime::processing::reaction::InMemoryReactions,
    events: InMemoryEventStore,
    checkpoints: InMemoryCheckpoints,
    snapshots: InMemorySnapshots,
    leases: InMemoryLeases,
}

impl Backend for Memory {
    type Events = InMemoryEventStore;
    type Checkpoints = InMemoryCheckpoints;
    type Snapshots = InMemorySnapshots;
    type Leases = InMemoryLeases;
    type Reactions = cqrs_runtime::processing::reaction::InMemoryReactions;

    async fn setup() -> Option<Self> {
        Some(Self {
            reactions: Default::default(),
            events: InMemoryEventStore::new(),
            checkpoints: InMemoryCheckpoints::new(),
            snapshots: InMemorySnapshots::new(),
            leases: InMemoryLeases::new(),
        })
    }
    fn events(&self) -> Self::Events {
        self.events.clone()
    }
    fn checkpoints(&self) -> Self::Checkpoints {
        self.checkpoints.clone()
    }
    fn snapshots(&self) -> Self::Snapshots {
        self.snapshots.clone()
    }
    fn reactions(&self) -> Self::Reactions {
        self.reactions.clone()
    }
    fn leases(&self) -> Self::Leases {
        self.leases.clone()
    }
    async fn other_leases(&self) -> Self::Leases {
        self.leases.clone()
    }
    async fn lose_lease(&self, name: &str) {
        self.leases.revoke(name);
    }
    async fn append_held_open(&self, st: &str, id: &str, v: u64, e: NewEvent, hold: Duration) {
        wait_then_append(&self.events, st, id, v, e, hold).await;
    }
    async fn teardown(self) {}
}

#[cfg(feature = "sqlite")]
pub use sqlite::Sqlite;

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use cqrs_runtime::sqlite::SqliteEventStore;
    use std::path::PathBuf;

    pub struct Sqlite {
        dir: PathBuf,
        store: SqliteEventStore,
    }

    impl Backend for Sqlite {
        type Events = SqliteEventStore;
        type Checkpoints = SqliteEventStore;
        type Snapshots = SqliteEventStore;
        type Leases = SqliteEventStore;
        type Reactions = SqliteEventStore;

        async fn setup() -> Option<Self> {
            let dir = std::env::temp_dir().join(format!("cqrs-conf-{}", uuid::Uuid::now_v7()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let store = SqliteEventStore::open(dir.join("events.sqlite"))
                .await
                .expect("open SQLite store");
            Some(Self { dir, store })
        }
        fn events(&self) -> Self::Events {
            self.store.clone()
        }
        fn checkpoints(&self) -> Self::Checkpoints {
            self.store.clone()
        }
        fn snapshots(&self) -> Self::Snapshots {
            self.store.clone()
        }
        fn reactions(&self) -> Self::Reactions {
            self.store.clone()
        }
        fn leases(&self) -> Self::Leases {
            self.store.clone()
        }
        async fn other_leases(&self) -> Self::Leases {
            SqliteEventStore::open(self.store.path())
                .await
                .expect("reopen SQLite store")
        }
        async fn lose_lease(&self, _name: &str) {
            // `<database>.<events table>.leases/`: a new lock file at the same path locks on
            // its own.
            for entry in std::fs::read_dir(&self.dir).expect("read dir") {
                let entry = entry.expect("dir entry");
                if entry.file_name().to_string_lossy().ends_with(".leases") {
                    std::fs::remove_dir_all(entry.path()).expect("remove the leases");
                }
            }
        }
        async fn append_held_open(&self, st: &str, id: &str, v: u64, e: NewEvent, d: Duration) {
            wait_then_append(&self.store, st, id, v, e, d).await;
        }
        async fn teardown(self) {
            drop(self.store);
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(feature = "postgres")]
pub use postgres::Postgres;

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use cqrs_runtime::postgres::{PostgresConfig, PostgresEventStore};
    use tokio_postgres::NoTls;

    /// With `NOTIFY`, every append also notifies a channel (`PostgresConfig::notify`): the
    /// same contract must hold through the notifying statements.
    pub struct Postgres<const NOTIFY: bool = false> {
        url: String,
        schema: String,
        store: PostgresEventStore,
    }

    /// `DATABASE_URL`, or the local default.
    fn url() -> String {
        std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    async fn client(url: &str) -> Result<tokio_postgres::Client, String> {
        let connect = tokio_postgres::connect(url, NoTls);
        let (client, connection) = tokio::time::timeout(Duration::from_secs(5), connect)
            .await
            .map_err(|_| "timed out after 5 s".to_owned())?
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        Ok(client)
    }

    impl<const NOTIFY: bool> Backend for Postgres<NOTIFY> {
        type Events = PostgresEventStore;
        type Checkpoints = PostgresEventStore;
        type Snapshots = PostgresEventStore;
        type Leases = PostgresEventStore;
        type Reactions = PostgresEventStore;

        async fn setup() -> Option<Self> {
            let url = url();
            if let Err(e) = client(&url).await {
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("PostgreSQL is unreachable at {url} and CI=true: {e}");
                }
                eprintln!("skipping a PostgreSQL test: cannot connect to {url}: {e}");
                return None;
            }
            let schema = format!("cqrs_t_{}", uuid::Uuid::now_v7().simple());
            let mut config = PostgresConfig::new(&url).expect("DATABASE_URL parses");
            if NOTIFY {
                config = config.notify("cqrs_conformance").expect("valid channel");
            }
            let store = config
                .schema(&schema)
                .expect("valid schema name")
                .open()
                .await
                .expect("connect and migrate");
            Some(Self { url, schema, store })
        }
        fn events(&self) -> Self::Events {
            self.store.clone()
        }
        fn checkpoints(&self) -> Self::Checkpoints {
            self.store.clone()
        }
        fn snapshots(&self) -> Self::Snapshots {
            self.store.clone()
        }
        fn reactions(&self) -> Self::Reactions {
            self.store.clone()
        }
        fn leases(&self) -> Self::Leases {
            self.store.clone()
        }
        async fn other_leases(&self) -> Self::Leases {
            let config = PostgresConfig::new(&self.url).expect("URL parses");
            let config = config.schema(&self.schema).expect("valid schema");
            config.open().await.expect("second connection")
        }
        async fn lose_lease(&self, name: &str) {
            let pid = self.store.lease_holder(name).await.expect("pg_locks");
            let pid = pid.unwrap_or_else(|| panic!("nobody holds the lease on {name}"));
            let client = client(&self.url).await.expect("client");
            client
                .execute("SELECT pg_terminate_backend($1)", &[&pid])
                .await
                .expect("pg_terminate_backend");
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while self
                .store
                .lease_holder(name)
                .await
                .expect("pg_locks")
                .is_some()
            {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the lock outlived its session"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        /// A raw transaction that takes its identity value, then sleeps before committing:
        /// the writer that makes a plain `global_position > n` reader skip events.
        async fn append_held_open(&self, st: &str, id: &str, v: u64, e: NewEvent, d: Duration) {
            let mut client = client(&self.url).await.expect("writer connection");
            let tx = client.transaction().await.expect("begin");
            let insert = format!(
                "INSERT INTO \"{}\".events (stream_type, stream_id, stream_version, event_id, \
                 event_type, event_version, payload, metadata, recorded_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, ($7::text)::jsonb, ($8::text)::jsonb, $9)",
                self.schema
            );
            let payload = String::from_utf8(e.payload).expect("utf-8");
            let metadata = serde_json::to_string(&e.metadata).expect("metadata");
            let (version, event_version) = (v as i64, e.event_version as i32);
            let event_type: &str = &e.event_type;
            tx.execute(
                &insert,
                &[
                    &st,
                    &id,
                    &version,
                    &e.event_id,
                    &event_type,
                    &event_version,
                    &payload,
                    &metadata,
                    &e.recorded_at,
                ],
            )
            .await
            .expect("insert");
            tokio::time::sleep(d).await;
            tx.commit().await.expect("commit");
        }
        async fn teardown(self) {
            drop(self.store);
            if let Ok(client) = client(&self.url).await {
                let drop = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.schema);
                let _ = client.batch_execute(&drop).await;
            }
        }
    }
}
