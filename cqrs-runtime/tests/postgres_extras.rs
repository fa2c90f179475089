//! PostgreSQL-only features: LISTEN/NOTIFY as an opt-in wake-up hint, and appending inside a
//! transaction that also holds the caller's writes. Skipped (with a printed reason) without a
//! server at `DATABASE_URL`; failing if `CI=true`.
#![cfg(feature = "postgres")]
#![allow(missing_docs, reason = "test fixtures")]

use std::time::{Duration, Instant};

use cqrs_runtime::postgres::ListenError;
use cqrs_runtime::postgres::{
    PostgresConfig, PostgresEventStore, TransactionError, TransactionOutcome,
};
use cqrs_runtime::projection::{EventMeta, InMemoryReadModel, ProjectionRunner};
use cqrs_runtime::store::{EventStore, ExpectedVersion, NewEvent, StoreError};
use cqrs_runtime::{Event, EventEnum, Metadata, projection};
use serde::{Deserialize, Serialize};
use tokio_postgres::NoTls;

/// The tests of this file run one at a time: a transaction held open by one (the
/// `append_with` writes) would hide another's events from `read_after` meanwhile.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

async fn admin() -> Option<tokio_postgres::Client> {
    let url = url();
    let connect = tokio_postgres::connect(&url, NoTls);
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok((client, connection))) => {
            tokio::spawn(connection);
            Some(client)
        }
        failed => {
            let reason = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".to_owned(),
            };
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("PostgreSQL is unreachable at {url} and CI=true: {reason}");
            }
            eprintln!("skipping: cannot connect to {url}: {reason}");
            None
        }
    }
}

/// A fresh schema, its admin client (to drop it), and a config pointing at it.
async fn fresh() -> Option<(tokio_postgres::Client, String, PostgresConfig)> {
    let admin = admin().await?;
    let schema = format!("cqrs_x_{}", uuid::Uuid::now_v7().simple());
    let config = PostgresConfig::new(&url())
        .expect("DATABASE_URL parses")
        .schema(&schema)
        .expect("valid schema");
    Some((admin, schema, config))
}

async fn drop_schema(admin: &tokio_postgres::Client, schema: &str) {
    let _ = admin
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "pinged", version = 1)]
pub struct Pinged {
    pub n: u64,
}

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum PingEvent {
    Pinged(Pinged),
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Pings {
    count: u64,
}

#[projection(name = "pings", events = PingEvent)]
impl Pings {
    #[on]
    fn pinged(&mut self, _: &Pinged, _: &EventMeta<'_>) {
        self.count += 1;
    }
}

fn ping(n: u64) -> NewEvent {
    NewEvent::new(
        "pinged",
        1,
        format!(r#"{{"n":{n}}}"#).into_bytes(),
        Metadata::new(),
    )
}

/// A live runner with a 60 s poll interval, woken by the store's notifications, sees an
/// append made through another connection pool within seconds.
///
/// (A notification can arrive while its event is still hidden from `read_after` by an older
/// transaction open elsewhere in the server; the runner then reads it at the next wake-up or
/// poll. The tests of this file run one at a time so that none of them holds one.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_wake_a_runner_before_its_poll_interval() {
    let _serial = SERIAL.lock().await;
    let Some((admin, schema, config)) = fresh().await else {
        return;
    };
    let config = config.notify("cqrs_test_events").expect("valid channel");
    let store = config.clone().open().await.expect("connect");
    let writer = config.open().await.expect("second store");
    store
        .append("ping", "p-1", ExpectedVersion::NoStream, vec![ping(0)])
        .await
        .expect("first append");

    let model = InMemoryReadModel::<Pings>::new();
    let running = ProjectionRunner::new(store.clone(), model.clone())
        .poll_interval(Duration::from_secs(60), Duration::from_secs(60))
        .wake_on(store.listen().await.expect("listen"))
        .spawn();
    running
        .wait_for(1, Duration::from_secs(20))
        .await
        .expect("catch-up");

    // The runner is now idle until its 60 s poll, or a notification.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    let outcome = writer
        .append("ping", "p-1", ExpectedVersion::Exact(1), vec![ping(1)])
        .await
        .expect("second append");
    let head = outcome.last_position().expect("a position");
    running
        .wait_for(head, Duration::from_secs(10))
        .await
        .expect("woken by the notification, well before the 60 s poll");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(model.read(|p| p.count), 2);
    running.stop().await.expect("stop");
    drop_schema(&admin, &schema).await;
}

/// With notifications on, appends keep their semantics: outcomes, conflicts, idempotent
/// re-appends; a refused append notifies nobody, each stored one carries its last position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifying_appends_keep_conflicts_and_idempotency() {
    let _serial = SERIAL.lock().await;
    let Some((admin, schema, config)) = fresh().await else {
        return;
    };
    let store = config
        .notify("cqrs_test_semantics")
        .expect("valid channel")
        .open()
        .await
        .expect("connect");
    let mut heads = store.listen().await.expect("listen");
    let batch = vec![ping(0), ping(1), ping(2)];
    let first = store
        .append("ping", "p-1", ExpectedVersion::NoStream, batch.clone())
        .await
        .expect("append");
    assert_eq!(first.stream_version, 3);
    let again = store
        .append("ping", "p-1", ExpectedVersion::NoStream, batch)
        .await
        .expect("idempotent re-append");
    assert_eq!(again, first);
    let conflict = store
        .append("ping", "p-1", ExpectedVersion::Exact(7), vec![ping(3)])
        .await;
    assert!(
        matches!(conflict, Err(StoreError::Conflict { actual: 3, .. })),
        "{conflict:?}"
    );
    let any = store
        .append("ping", "p-1", ExpectedVersion::Any, vec![ping(4)])
        .await
        .expect("any-version append");
    assert_eq!(any.stream_version, 4);
    let last = any.last_position().expect("a position");
    tokio::time::timeout(Duration::from_secs(10), async {
        while *heads.borrow_and_update() < last {
            heads.changed().await.expect("listener alive");
        }
    })
    .await
    .expect("the last append's position is notified");

    let plain = PostgresConfig::new(&url())
        .expect("url")
        .schema(&schema)
        .expect("schema")
        .open()
        .await
        .expect("connect without notify");
    assert!(matches!(
        plain.listen().await,
        Err(ListenError::NotConfigured)
    ));
    drop_schema(&admin, &schema).await;
}

/// Channel names are validated identifiers.
#[test]
fn notify_channels_are_validated() {
    let config = PostgresConfig::new("postgres://x@localhost/db").expect("url");
    assert!(config.clone().notify("events_2").is_ok());
    assert!(config.clone().notify("Events").is_err());
    assert!(config.notify("x'; DROP TABLE events; --").is_err());
}

/// `append_with`: a user table in the store's schema, written in the append's transaction.
async fn transactional_store() -> Option<(tokio_postgres::Client, String, PostgresEventStore)> {
    let (admin, schema, config) = fresh().await?;
    let store = config.open().await.expect("connect");
    admin
        .batch_execute(&format!(
            "CREATE TABLE \"{schema}\".balances (id text PRIMARY KEY, version bigint NOT NULL, \
             tx_id xid8 NOT NULL DEFAULT pg_current_xact_id())"
        ))
        .await
        .expect("user table");
    Some((admin, schema, store))
}

#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
    #[error("the caller gave up")]
    GaveUp,
}

/// The events and the caller's row commit together, in one transaction whose id was assigned
/// by the event INSERT: inside `writes`, the events are already visible and the transaction's
/// id is the one the events carry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_with_commits_the_events_first_and_the_callers_rows_with_them() {
    let _serial = SERIAL.lock().await;
    let Some((admin, schema, store)) = transactional_store().await else {
        return;
    };
    let batch = vec![ping(0), ping(1)];
    let ids: Vec<uuid::Uuid> = batch.iter().map(|e| e.event_id).collect();
    let (events, balances) = (
        format!("\"{schema}\".events"),
        format!("\"{schema}\".balances"),
    );
    let done = store
        .append_with(
            "ping",
            "p-1",
            ExpectedVersion::NoStream,
            batch.clone(),
            async |tx, outcome| {
                // The INSERT ran first: the events are there, and assigned the transaction id.
                let row = tx
                    .query_one(
                        &format!(
                            "SELECT count(*), min(tx_id::text) = pg_current_xact_id_if_assigned()::text \
                             FROM {events} WHERE event_id = ANY($1)"
                        ),
                        &[&ids],
                    )
                    .await?;
                let (seen, same_tx): (i64, bool) = (row.get(0), row.get(1));
                assert_eq!(seen, 2, "the events precede the caller's writes");
                assert!(same_tx, "the event INSERT assigned the transaction id");
                let version = outcome.stream_version as i64;
                tx.execute(
                    &format!("INSERT INTO {balances} (id, version) VALUES ('p-1', $1)"),
                    &[&version],
                )
                .await?;
                Ok::<_, WriteError>(version)
            },
        )
        .await
        .expect("append with writes");
    let TransactionOutcome::Committed { outcome, value } = &done else {
        panic!("expected a commit, got {done:?}");
    };
    assert_eq!((outcome.stream_version, *value), (2, 2));
    let same_tx: bool = admin
        .query_one(
            &format!(
                "SELECT (SELECT tx_id FROM {balances} WHERE id = 'p-1') = \
                 ALL (SELECT tx_id FROM {events} WHERE stream_id = 'p-1')"
            ),
            &[],
        )
        .await
        .expect("query")
        .get(0);
    assert!(
        same_tx,
        "one transaction holds the events and the caller's row"
    );

    // A retry of the same batch: the original outcome, and the writes do not run again.
    let retried = store
        .append_with(
            "ping",
            "p-1",
            ExpectedVersion::NoStream,
            batch,
            async |_, _| -> Result<(), WriteError> { panic!("writes of a stored batch ran") },
        )
        .await
        .expect("idempotent retry");
    assert_eq!(retried, TransactionOutcome::AlreadyStored(outcome.clone()));
    drop_schema(&admin, &schema).await;
}

/// A failing caller rolls the events back with its rows; a refused append never runs the
/// caller's writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_with_rolls_back_together_and_refuses_like_append() {
    let _serial = SERIAL.lock().await;
    let Some((admin, schema, store)) = transactional_store().await else {
        return;
    };
    let balances = format!("\"{schema}\".balances");
    let failed = store
        .append_with(
            "ping",
            "p-2",
            ExpectedVersion::NoStream,
            vec![ping(0)],
            async |tx, _| {
                tx.execute(
                    &format!("INSERT INTO {balances} (id, version) VALUES ('p-2', 1)"),
                    &[],
                )
                .await?;
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
            .read_stream("ping", "p-2", 1)
            .await
            .expect("read")
            .is_empty()
    );
    let rows: i64 = admin
        .query_one(&format!("SELECT count(*) FROM {balances}"), &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(rows, 0, "the caller's row was rolled back with the events");

    store
        .append("ping", "p-2", ExpectedVersion::NoStream, vec![ping(1)])
        .await
        .expect("plain append");
    let conflict = store
        .append_with(
            "ping",
            "p-2",
            ExpectedVersion::Exact(5),
            vec![ping(2)],
            async |_, _| -> Result<(), WriteError> { panic!("writes of a refused append ran") },
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
    let stored = store.read_stream("ping", "p-2", 1).await.expect("read");
    let clash = store
        .append_with(
            "ping",
            "p-3",
            ExpectedVersion::NoStream,
            vec![ping(3).with_id(stored[0].event_id)],
            async |_, _| -> Result<(), WriteError> { panic!("writes of a clashing append ran") },
        )
        .await;
    assert!(
        matches!(
            clash,
            Err(TransactionError::Store(StoreError::DuplicateEventId { .. }))
        ),
        "{clash:?}"
    );
    // Appends at the right version still work, through the same kept connection.
    let next = store
        .append_with(
            "ping",
            "p-2",
            ExpectedVersion::Exact(1),
            vec![ping(4)],
            async |_, outcome| Ok::<_, WriteError>(outcome.stream_version),
        )
        .await
        .expect("append at the head");
    assert_eq!(next.outcome().stream_version, 2);
    drop_schema(&admin, &schema).await;
}

/// An append at an exact version the store has seen committed skips the statement's
/// existence check (`heads.rs`). What it must still refuse: a stream that another process
/// moved ahead, a stream behind the expected version, and a version only a rolled-back
/// `append_with` wrote (rolled back, it was never committed, so it must not count as seen).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_versions_skip_the_check_but_never_a_conflict() {
    let _serial = SERIAL.lock().await;
    let Some((admin, schema, config)) = fresh().await else {
        return;
    };
    let ours = config.clone().open().await.expect("connect");
    let theirs = config.open().await.expect("second process");
    let conflict_at = |result: Result<_, StoreError>| match result {
        Err(StoreError::Conflict { actual, .. }) => actual,
        other => panic!("expected a conflict, got {other:?}"),
    };

    // Ours appends versions 1..=3 and so knows version 3; another process then adds 4.
    ours.append("ping", "k", ExpectedVersion::NoStream, vec![ping(0)])
        .await
        .expect("v1");
    ours.append(
        "ping",
        "k",
        ExpectedVersion::Exact(1),
        vec![ping(1), ping(2)],
    )
    .await
    .expect("v2-3");
    theirs
        .append("ping", "k", ExpectedVersion::Exact(3), vec![ping(3)])
        .await
        .expect("v4 by the other process");
    // Version 3 is known, the stream is ahead of it: the unique key refuses, typed.
    let stale = ours
        .append("ping", "k", ExpectedVersion::Exact(3), vec![ping(9)])
        .await;
    assert_eq!(conflict_at(stale), 4);
    // Behind: version 7 was never seen, so the check runs and refuses it.
    let behind = ours
        .append("ping", "k", ExpectedVersion::Exact(7), vec![ping(9)])
        .await;
    assert_eq!(conflict_at(behind), 4);
    // A read teaches the store version 4; the next append at 4 succeeds.
    assert_eq!(
        ours.read_stream("ping", "k", 1).await.expect("read").len(),
        4
    );
    let next = ours
        .append("ping", "k", ExpectedVersion::Exact(4), vec![ping(4)])
        .await
        .expect("v5");
    assert_eq!(next.stream_version, 5);

    // A rolled-back append_with: its version 6 must not count as seen.
    let failed = ours
        .append_with(
            "ping",
            "k",
            ExpectedVersion::Exact(5),
            vec![ping(5)],
            async |_, _| Err::<(), _>(WriteError::GaveUp),
        )
        .await;
    assert!(
        matches!(failed, Err(TransactionError::Caller(_))),
        "{failed:?}"
    );
    let gap = ours
        .append("ping", "k", ExpectedVersion::Exact(6), vec![ping(6)])
        .await;
    assert_eq!(conflict_at(gap), 5, "a gap after a rolled-back version");
    let versions: Vec<u64> = ours
        .read_stream("ping", "k", 1)
        .await
        .expect("read")
        .iter()
        .map(|e| e.stream_version)
        .collect();
    assert_eq!(versions, [1, 2, 3, 4, 5]);
    drop_schema(&admin, &schema).await;
}

/// A live runner whose store connections are terminated by the server (a failover, an
/// administrator, an idle-connection reaper) retries with back-off, reconnects, and goes on:
/// every event is taken. A failure the runner meets is counted as transient, never as fatal;
/// whether it meets one depends on whether the client library sees the closed socket before
/// the next query, so the test asserts the reconnection itself: after each round the runner
/// works over connections other than the terminated ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_runner_survives_its_connections_being_terminated() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let _serial = SERIAL.lock().await;
    let Some((admin, schema, writer_config)) = fresh().await else {
        return;
    };
    let application = format!("cqrs_dropped_{}", uuid::Uuid::now_v7().simple());
    let separator = if url().contains('?') { '&' } else { '?' };
    let reader_url = format!("{}{separator}application_name={application}", url());
    let store = PostgresConfig::new(&reader_url)
        .expect("URL parses")
        .schema(&schema)
        .expect("valid schema")
        .open()
        .await
        .expect("connect");
    let writer = writer_config.open().await.expect("writer");
    writer
        .append("ping", "p-1", ExpectedVersion::NoStream, vec![ping(0)])
        .await
        .expect("first append");

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let model = InMemoryReadModel::<Pings>::new();
    let running = metrics::with_local_recorder(&recorder, || {
        ProjectionRunner::new(store.clone(), model.clone())
            .poll_interval(Duration::from_millis(5), Duration::from_millis(20))
            .spawn()
    });
    running
        .wait_for(1, Duration::from_secs(20))
        .await
        .expect("catch-up");

    let mut version = 1;
    for round in 0..3 {
        let terminated: Vec<i32> = admin
            .query(
                "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                &[&application],
            )
            .await
            .expect("terminate")
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert!(
            !terminated.is_empty(),
            "round {round}: the runner's connections exist"
        );
        for _ in 0..5 {
            writer
                .append(
                    "ping",
                    "p-1",
                    ExpectedVersion::Exact(version),
                    vec![ping(version)],
                )
                .await
                .expect("append");
            version += 1;
        }
        let head = writer.head().await.expect("head").position;
        running
            .wait_for(head, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("round {round}: the runner goes on after the drop: {e}"));
        let now: Vec<i32> = admin
            .query(
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
                &[&application],
            )
            .await
            .expect("sessions")
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert!(
            !now.is_empty() && now.iter().all(|pid| !terminated.contains(pid)),
            "round {round}: the runner reconnected (terminated {terminated:?}, now {now:?})"
        );
    }
    assert_eq!(model.read(|p| p.count), version);
    running
        .stop()
        .await
        .expect("a runner that went on stops cleanly");

    let errors: Vec<(Option<String>, u64)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| {
            let kind = key
                .key()
                .labels()
                .find(|l| l.key() == "kind")
                .map(|l| l.value().to_owned());
            match (key.key().name(), value) {
                ("cqrs_runner_errors_total", DebugValue::Counter(n)) => Some((kind, n)),
                _ => None,
            }
        })
        .collect();
    assert!(
        errors
            .iter()
            .all(|(kind, n)| *n == 0 || kind.as_deref() == Some("transient")),
        "a dropped connection is a transient failure, never a fatal one: {errors:?}"
    );
    drop_schema(&admin, &schema).await;
}
