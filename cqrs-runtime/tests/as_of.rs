//! A projection's answer as of a global position (`projection::as_of`, `UpTo`), on SQLite and
//! PostgreSQL: the scratch model holds exactly the events up to the position, and the live
//! model and its checkpoint are left alone.
//!
//! PostgreSQL tests read `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`),
//! use a schema of their own, skip with a printed reason when the server is unreachable, and
//! fail instead when `CI=true`.
#![cfg(feature = "postgres")]

use std::time::Duration;

use cqrs_runtime::event::EventEnum as _;
use cqrs_runtime::postgres::PostgresConfig;
use cqrs_runtime::projection::{
    EventMeta, InMemoryReadModel, ProjectionRunner, RunError, UpTo, as_of,
};
use cqrs_runtime::sqlite::SqliteEventStore;
use cqrs_runtime::store::{EventStore, ExpectedVersion, NewEvent};
use cqrs_runtime::{Event, EventEnum, Metadata, projection};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "asof_added", version = 1)]
pub struct Added {
    pub n: u64,
}

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum AsOfEvent {
    Added(Added),
}

/// Every number, in log order.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub numbers: Vec<u64>,
    pub last_position: u64,
}

#[projection(name = "asof_seen", events = AsOfEvent)]
impl Seen {
    #[on]
    fn added(&mut self, e: &Added, meta: &EventMeta<'_>) {
        self.numbers.push(e.n);
        self.last_position = meta.position;
    }
}

async fn add<S: EventStore>(store: &S, stream: &str, n: u64) {
    let added = AsOfEvent::Added(Added { n }).encode().expect("encode");
    store
        .append(
            "numbers",
            stream,
            ExpectedVersion::Any,
            vec![NewEvent::from_encoded(added, Metadata::new())],
        )
        .await
        .expect("append");
}

async fn answers_as_of<S: EventStore + Clone>(store: S) {
    for n in 1..=10 {
        add(&store, if n % 2 == 0 { "even" } else { "odd" }, n).await;
        // Events of another kind in between, which the projection does not read.
        store
            .append(
                "other",
                "x",
                ExpectedVersion::Any,
                vec![NewEvent::new("noise", 1, b"{}".to_vec(), Metadata::new())],
            )
            .await
            .expect("append");
    }
    // The live model, caught up to the head, under this process's lease table.
    let live = InMemoryReadModel::<Seen>::new();
    let runner = ProjectionRunner::new(store.clone(), live.clone());
    runner.catch_up().await.expect("catch up");
    let checkpoint = live.stored_checkpoint();

    // Positions: the n-th number is at 2n - 1, its noise at 2n.
    for (position, expected) in [(0, 0), (1, 1), (2, 1), (7, 4), (20, 10), (99, 10)] {
        let model = as_of::<Seen, _>(store.clone(), position)
            .await
            .expect("as of");
        let numbers = model.read(|m| m.numbers.clone());
        assert_eq!(
            numbers,
            (1..=expected).collect::<Vec<u64>>(),
            "as of position {position}"
        );
        assert!(model.read(|m| m.last_position) <= position);
    }
    assert_eq!(
        live.stored_checkpoint(),
        checkpoint,
        "the live model is left alone"
    );
    assert_eq!(live.read(|m| m.numbers.len()), 10);

    // A runner of any read model can read through `UpTo`: its rebuild stops there.
    let scratch = InMemoryReadModel::<Seen>::new();
    let stop = ProjectionRunner::new(UpTo::new(store.clone(), 9), scratch.clone())
        .with_leases(cqrs_runtime::store::InMemoryLeases::new());
    stop.rebuild().await.expect("rebuild");
    assert_eq!(scratch.read(|m| m.numbers.clone()), [1, 2, 3, 4, 5]);
    let reached = stop.handle().lag().position;
    assert!(reached >= 9, "{reached}");

    // A rebuild never skips: an event the projection cannot take is an error.
    store
        .append(
            "numbers",
            "bad",
            ExpectedVersion::Any,
            vec![NewEvent::new(
                "asof_added",
                1,
                br#"{"n":"x"}"#.to_vec(),
                Metadata::new(),
            )],
        )
        .await
        .expect("append");
    assert!(matches!(
        as_of::<Seen, _>(store.clone(), 99).await,
        Err(RunError::Event { position: 21, .. })
    ));
    assert!(as_of::<Seen, _>(store.clone(), 20).await.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn as_of_a_position_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("cqrs-asof-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("dir");
    let store = SqliteEventStore::open(dir.join("events.db"))
        .await
        .expect("open");
    answers_as_of(store).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn as_of_a_position_on_postgres() {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("cqrs_asof_{}", uuid::Uuid::now_v7().simple());
    let config = PostgresConfig::new(&url)
        .expect("url")
        .schema(&schema)
        .expect("schema");
    let store = match tokio::time::timeout(Duration::from_secs(5), config.open()).await {
        Ok(Ok(store)) => store,
        Ok(Err(e)) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipping a PostgreSQL test: cannot connect to {url}: {e}");
            return;
        }
        Ok(Err(e)) => panic!("PostgreSQL is unreachable at {url} and CI=true: {e}"),
        Err(_) => panic!("connecting to PostgreSQL at {url} timed out"),
    };
    answers_as_of(store).await;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .expect("drop");
}
