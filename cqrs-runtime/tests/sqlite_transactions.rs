//! `SqliteEventStore::append_with`: the events and the caller's rows commit together or not
//! at all; refusals and retries behave as for a plain append.
#![cfg(feature = "sqlite")]

use std::path::PathBuf;

use cqrs_runtime::Metadata;
use cqrs_runtime::sqlite::rusqlite;
use cqrs_runtime::sqlite::{SqliteEventStore, TransactionError, TransactionOutcome};
use cqrs_runtime::store::{EventStore, ExpectedVersion, NewEvent, StoreError};

fn event(n: u64) -> NewEvent {
    NewEvent::new(
        "thing_happened",
        1,
        format!(r#"{{"n":{n}}}"#).into_bytes(),
        Metadata::new(),
    )
}

async fn store() -> (PathBuf, SqliteEventStore) {
    let dir = std::env::temp_dir().join(format!("cqrs-tx-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("events.sqlite");
    let store = SqliteEventStore::open(&path).await.expect("open");
    let conn = rusqlite::Connection::open(&path).expect("user connection");
    conn.execute_batch("CREATE TABLE balances (id TEXT PRIMARY KEY, version INTEGER NOT NULL)")
        .expect("user table");
    (dir, store)
}

fn balances(store: &SqliteEventStore) -> Vec<(String, i64)> {
    let conn = rusqlite::Connection::open(store.path()).expect("reader");
    let mut query = conn
        .prepare("SELECT id, version FROM balances ORDER BY id")
        .expect("prepare");
    query
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
    #[error("the caller gave up")]
    GaveUp,
}

#[tokio::test]
async fn append_with_commits_events_and_rows_together() {
    let (dir, store) = store().await;
    let batch = vec![event(0), event(1)];
    let ids: Vec<_> = batch
        .iter()
        .map(|e| e.event_id.as_bytes().to_vec())
        .collect();
    let done = store
        .append_with(
            "thing",
            "a",
            ExpectedVersion::NoStream,
            batch.clone(),
            move |tx, outcome| {
                // The event INSERT ran first, in this transaction.
                let seen: i64 = tx.query_row(
                    "SELECT count(*) FROM events WHERE event_id IN (?1, ?2)",
                    [&ids[0], &ids[1]],
                    |r| r.get(0),
                )?;
                assert_eq!(seen, 2, "the events precede the caller's writes");
                let version = outcome.stream_version as i64;
                tx.execute(
                    "INSERT INTO balances (id, version) VALUES ('a', ?1)",
                    [version],
                )?;
                Ok::<_, WriteError>(version)
            },
        )
        .await
        .expect("append with writes");
    let TransactionOutcome::Committed { outcome, value } = &done else {
        panic!("expected a commit, got {done:?}");
    };
    assert_eq!((outcome.stream_version, *value), (2, 2));
    assert_eq!(balances(&store), [("a".to_owned(), 2)]);

    let retried = store
        .append_with(
            "thing",
            "a",
            ExpectedVersion::NoStream,
            batch,
            |_, _| -> Result<(), WriteError> { panic!("writes of a stored batch ran") },
        )
        .await
        .expect("idempotent retry");
    assert_eq!(retried, TransactionOutcome::AlreadyStored(outcome.clone()));
    assert_eq!(balances(&store), [("a".to_owned(), 2)]);
    drop(store);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn append_with_rolls_back_together_and_refuses_like_append() {
    let (dir, store) = store().await;
    let failed = store
        .append_with(
            "thing",
            "b",
            ExpectedVersion::NoStream,
            vec![event(0)],
            |tx, _| {
                tx.execute("INSERT INTO balances (id, version) VALUES ('b', 1)", [])?;
                Err::<(), _>(WriteError::GaveUp)
            },
        )
        .await;
    assert!(
        matches!(failed, Err(TransactionError::Caller(WriteError::GaveUp))),
        "{failed:?}"
    );
    assert!(
        store
            .read_stream("thing", "b", 1)
            .await
            .expect("read")
            .is_empty()
    );
    assert!(
        balances(&store).is_empty(),
        "the row was rolled back with the events"
    );

    store
        .append("thing", "b", ExpectedVersion::NoStream, vec![event(1)])
        .await
        .expect("plain append");
    let conflict = store
        .append_with(
            "thing",
            "b",
            ExpectedVersion::Exact(5),
            vec![event(2)],
            |_, _| -> Result<(), WriteError> { panic!("writes of a refused append ran") },
        )
        .await;
    assert!(
        matches!(
            conflict,
            Err(TransactionError::Store(StoreError::Conflict {
                actual: 1,
                ..
            }))
        ),
        "{conflict:?}"
    );
    // Plain appends still work after the failures (the write connection is clean).
    let next = store
        .append("thing", "b", ExpectedVersion::Exact(1), vec![event(3)])
        .await
        .expect("append at the head");
    assert_eq!(next.stream_version, 2);
    drop(store);
    let _ = std::fs::remove_dir_all(dir);
}
