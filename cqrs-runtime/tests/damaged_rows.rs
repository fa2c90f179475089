//! Damaged and tampered data: a load checks that a stream's versions run 1..n in position
//! order, and every row the stores cannot read is a typed error naming the stream, the version
//! and the global position, which a runner's error policy can stop at or set aside.
//!
//! The rows are damaged with the databases' own SQL, as an operator's mistake or a bad
//! restore would. PostgreSQL tests read `DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), skip with a printed reason when it is
//! unreachable, and fail instead when `CI=true`.
#![cfg(all(feature = "sqlite", feature = "postgres"))]

mod common;

use std::time::Duration;

use common::{Account, AccountId, OpenAccount};
use cqrs_runtime::error::CommandError;
use cqrs_runtime::event::{DecodeError, Decoded, EventEnum};
use cqrs_runtime::memory::InMemoryLeases;
use cqrs_runtime::postgres::{PostgresConfig, PostgresEventStore};
use cqrs_runtime::processing::{ErrorPolicy, Runner};
use cqrs_runtime::projection::{EventMeta, InMemoryReadModel, Outcome, Projection, RunError};
use cqrs_runtime::repository::Repository;
use cqrs_runtime::sqlite::SqliteEventStore;
use cqrs_runtime::store::{Cursor, EventFilter, EventStore, ReadBatch, StoreError, StoredEvent};

/// A store of one backend, and a way to run SQL on its tables.
trait Tamper: EventStore + Clone {
    async fn sql(&self, statement: &str);
}

impl Tamper for SqliteEventStore {
    async fn sql(&self, statement: &str) {
        let conn = rusqlite::Connection::open(self.path()).expect("open");
        conn.execute_batch(statement).expect("tamper");
    }
}

struct Pg {
    store: PostgresEventStore,
    url: String,
}

impl Clone for Pg {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            url: self.url.clone(),
        }
    }
}

async fn pg() -> Option<Pg> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("cqrs_damage_{}", uuid::Uuid::now_v7().simple());
    let config = PostgresConfig::new(&url).expect("url").schema(&schema);
    let opened =
        match tokio::time::timeout(Duration::from_secs(5), config.expect("schema").open()).await {
            Ok(Ok(store)) => store,
            Ok(Err(e)) if std::env::var("CI").as_deref() != Ok("true") => {
                eprintln!("skipping a PostgreSQL test: cannot connect to {url}: {e}");
                return None;
            }
            Ok(Err(e)) => panic!("PostgreSQL is unreachable at {url} and CI=true: {e}"),
            Err(_) => panic!("connecting to PostgreSQL at {url} timed out"),
        };
    Some(Pg { store: opened, url })
}

impl Tamper for Pg {
    async fn sql(&self, statement: &str) {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        let schema = self.store.schema().to_owned();
        client
            .batch_execute(&format!("SET search_path TO {schema}; {statement}"))
            .await
            .expect("tamper");
    }
}

impl EventStore for Pg {
    fn append(
        &self,
        stream_type: &str,
        stream_id: &str,
        expected: cqrs_runtime::store::ExpectedVersion,
        events: Vec<cqrs_runtime::store::NewEvent>,
    ) -> impl Future<Output = Result<cqrs_runtime::store::AppendOutcome, StoreError>> + Send {
        self.store.append(stream_type, stream_id, expected, events)
    }
    fn read_stream(
        &self,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send {
        self.store.read_stream(stream_type, stream_id, from_version)
    }
    fn replay_stream<F>(
        &self,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
        visit: F,
    ) -> impl Future<Output = Result<(), StoreError>> + Send
    where
        F: FnMut(cqrs_runtime::store::StreamEventRef<'_>) -> bool + Send,
    {
        self.store
            .replay_stream(stream_type, stream_id, from_version, visit)
    }
    fn read_after(
        &self,
        after: Cursor,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(Cursor, StoredEvent)>, StoreError>> + Send {
        self.store.read_after(after, limit)
    }

    fn read_filtered(
        &self,
        after: Cursor,
        limit: usize,
        filter: &EventFilter,
    ) -> impl Future<Output = Result<ReadBatch, StoreError>> + Send {
        self.store.read_filtered(after, limit, filter)
    }
    fn head(&self) -> impl Future<Output = Result<Cursor, StoreError>> + Send {
        self.store.head()
    }

    fn read_event(
        &self,
        event_id: uuid::Uuid,
    ) -> impl Future<Output = Result<Option<StoredEvent>, StoreError>> + Send {
        self.store.read_event(event_id)
    }
}

use std::future::Future;

fn sqlite_path() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cqrs-damage-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir.join("events.sqlite")
}

/// `n` accounts `a-0..`, each opened and given 4 deposits (5 events per stream).
async fn accounts<S: EventStore + Clone>(store: &S, n: usize) -> Repository<Account, S> {
    let repo = Repository::<Account, _>::new(store.clone());
    for i in 0..n {
        let id = AccountId(format!("a-{i}"));
        repo.execute(OpenAccount {
            id: id.clone(),
            owner: "ann".into(),
        })
        .await
        .expect("open");
        for amount in 1..=4 {
            repo.execute(common::Deposit {
                id: id.clone(),
                amount,
            })
            .await
            .expect("deposit");
        }
    }
    repo
}

/// The load of `a-{i}` fails with a corrupt-event error naming the stream; returns its text.
async fn load_fails<S: EventStore + Clone>(repo: &Repository<Account, S>, i: usize) -> String {
    let id = AccountId(format!("a-{i}"));
    match repo.load(&id).await {
        Err(CommandError::Store(StoreError::Corrupt(corrupt))) => {
            assert_eq!(corrupt.stream_id.as_deref(), Some(id.0.as_str()));
            assert!(corrupt.global_position > 0, "{corrupt}");
            corrupt.to_string()
        }
        other => panic!("a-{i}: expected a corrupt-event error, got {other:?}"),
    }
}

async fn damaged_streams_do_not_load<S: Tamper>(store: &S, events_table: &str) {
    let repo = accounts(store, 5).await;
    let e = events_table;
    // A deleted middle event: a gap.
    store
        .sql(&format!(
            "DELETE FROM {e} WHERE stream_id = 'a-0' AND stream_version = 3"
        ))
        .await;
    let text = load_fails(&repo, 0).await;
    assert!(text.contains("version 4 follows version 2"), "{text}");
    // Version 0.
    store
        .sql(&format!(
            "UPDATE {e} SET stream_version = 0 WHERE stream_id = 'a-1' AND stream_version = 1"
        ))
        .await;
    let text = load_fails(&repo, 1).await;
    assert!(text.contains("version 0"), "{text}");
    // A negative version.
    store
        .sql(&format!(
            "UPDATE {e} SET stream_version = -7 WHERE stream_id = 'a-2' AND stream_version = 2"
        ))
        .await;
    load_fails(&repo, 2).await;
    // Two events swapped: versions in order, positions not.
    store
        .sql(&format!(
            "UPDATE {e} SET stream_version = 99 WHERE stream_id = 'a-3' AND stream_version = 2; \
             UPDATE {e} SET stream_version = 2 WHERE stream_id = 'a-3' AND stream_version = 3; \
             UPDATE {e} SET stream_version = 3 WHERE stream_id = 'a-3' AND stream_version = 99"
        ))
        .await;
    let text = load_fails(&repo, 3).await;
    assert!(text.contains("not after version"), "{text}");
    // The untouched stream still loads.
    let loaded = repo
        .load(&AccountId("a-4".into()))
        .await
        .expect("a-4 loads");
    assert_eq!((loaded.version, loaded.state.balance), (5, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_damaged_streams_do_not_load() {
    let store = SqliteEventStore::open(sqlite_path()).await.expect("open");
    damaged_streams_do_not_load(&store, "events").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_damaged_streams_do_not_load() {
    let Some(pg) = pg().await else { return };
    damaged_streams_do_not_load(&pg, "events").await;
}

/// A duplicate version needs the unique key gone first (a restore without constraints).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_repeated_version_does_not_load() {
    let store = SqliteEventStore::open(sqlite_path()).await.expect("open");
    let repo = accounts(&store, 1).await;
    store
        .sql(
            "DROP INDEX \"events_by_stream\"; \
             INSERT INTO events (stream_type, stream_id, stream_version, event_id, event_type, \
             event_version, payload, metadata, recorded_at) SELECT stream_type, stream_id, \
             stream_version, randomblob(16), event_type, event_version, payload, metadata, \
             recorded_at FROM events WHERE stream_id = 'a-0' AND stream_version = 2",
        )
        .await;
    let text = load_fails(&repo, 0).await;
    assert!(text.contains("version 2 follows version 2"), "{text}");
}

/// Counts the events it sees.
#[derive(Default)]
struct Seen(u64);

impl Projection for Seen {
    const NAME: &'static str = "seen";
    const VERSION: u32 = 1;
    const HANDLED: &'static [&'static str] = &[];
    type Transaction = ();

    fn project(
        &mut self,
        event: &StoredEvent,
        _: &EventMeta<'_>,
        _: &mut (),
    ) -> Result<Outcome, DecodeError> {
        match common::AccountEvent::decode(&event.event_type, event.event_version, &event.payload)?
        {
            Decoded::One(_) | Decoded::Many(_) | Decoded::Skipped => self.0 += 1,
        }
        Ok(Outcome::Applied)
    }

    fn reset(&mut self) {
        self.0 = 0;
    }
}

/// Each kind of unreadable row: a read names it; `Stop` halts before it; `SkipAndRecord`
/// records it and goes on.
async fn unreadable_rows<S: Tamper>(store: &S, damage: &[(&str, String)]) {
    accounts(store, damage.len() + 1).await;
    for (i, (what, statement)) in damage.iter().enumerate() {
        let _ = what;
        store
            .sql(&statement.replace("{id}", &format!("a-{i}")))
            .await;
    }
    // Reads name the row.
    for (i, (what, _)) in damage.iter().enumerate() {
        match store.read_stream("account", &format!("a-{i}"), 1).await {
            Err(StoreError::Corrupt(c)) => {
                assert_eq!(
                    c.stream_id.as_deref(),
                    Some(format!("a-{i}").as_str()),
                    "{what}"
                );
                assert_eq!(c.stream_version, Some(3), "{what}: {c}");
                assert!(c.global_position > 0, "{what}");
            }
            other => panic!("{what}: expected a corrupt-event error, got {other:?}"),
        }
    }
    // `Stop` halts at the first one, naming it. (PostgreSQL's log holds events back while
    // an older transaction is open anywhere on the server: catch up until it gets there.)
    let model = InMemoryReadModel::<Seen>::new();
    let stop = Runner::new(store.clone(), model.clone()).with_leases(InMemoryLeases::new());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match stop.catch_up().await {
            Err(RunError::Store {
                source: StoreError::Corrupt(c),
                ..
            }) => {
                assert_eq!(c.stream_id.as_deref(), Some("a-0"));
                break;
            }
            Ok(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("expected a stop at the first damaged row, got {other:?}"),
        }
    }
    assert_eq!(model.read(|s| s.0), 2, "a-0's versions 1 and 2");
    // `SkipAndRecord` sets each aside and reads everything else.
    let model = InMemoryReadModel::<Seen>::new();
    let skip = Runner::new(store.clone(), model.clone())
        .with_leases(InMemoryLeases::new())
        .error_policy(ErrorPolicy::SkipAndRecord);
    let total = 5 * (damage.len() as u64 + 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while model.read(|s| s.0) < total - damage.len() as u64 {
        assert!(
            std::time::Instant::now() < deadline,
            "the runner never got through"
        );
        skip.catch_up().await.expect("skips");
    }
    assert_eq!(model.read(|s| s.0), total - damage.len() as u64);
    let letters = skip.dead_letters().await.expect("dead letters");
    assert_eq!(letters.len(), damage.len());
    for (i, letter) in letters.iter().enumerate() {
        assert_eq!(letter.stream_id, format!("a-{i}"));
        assert_eq!(letter.stream_version, 3);
        assert!(letter.error.contains("cannot be read"), "{}", letter.error);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_unreadable_rows_are_named_and_can_be_skipped() {
    let store = SqliteEventStore::open(sqlite_path()).await.expect("open");
    let row = "WHERE stream_id = '{id}' AND stream_version = 3";
    unreadable_rows(
        &store,
        &[
            (
                "metadata not JSON",
                format!("UPDATE events SET metadata = 'nope' {row}"),
            ),
            (
                "metadata of the wrong shape",
                format!("UPDATE events SET metadata = '[1, 2]' {row}"),
            ),
            (
                "a 3-byte event id",
                format!("UPDATE events SET event_id = x'010203' {row}"),
            ),
            (
                "recorded_at out of range",
                format!("UPDATE events SET recorded_at = 9223372036854775807 {row}"),
            ),
            (
                "event version out of range",
                format!("UPDATE events SET event_version = -1 {row}"),
            ),
            (
                "a payload of bytes",
                format!("UPDATE events SET payload = x'ff00' {row}"),
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unreadable_rows_are_named_and_can_be_skipped() {
    let Some(pg) = pg().await else { return };
    let row = "WHERE stream_id = '{id}' AND stream_version = 3";
    unreadable_rows(
        &pg,
        &[
            (
                "metadata of the wrong shape",
                format!("UPDATE events SET metadata = '[1, 2]'::jsonb {row}"),
            ),
            (
                "a NULL payload",
                format!("ALTER TABLE events ALTER COLUMN payload DROP NOT NULL; UPDATE events SET payload = NULL {row}"),
            ),
            (
                "event version out of range",
                format!("UPDATE events SET event_version = -1 {row}"),
            ),
        ],
    )
    .await;
}
