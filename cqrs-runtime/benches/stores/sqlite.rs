//! SQLite: the store against hand-written rusqlite code on the same schema and pragmas.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cqrs_runtime::prelude::*;
use cqrs_runtime::sqlite::SqliteEventStore;
use cqrs_runtime::store::NewEvent;
use criterion::Criterion;
use rusqlite::{Connection, TransactionBehavior, params};
use tokio::runtime::Runtime;

use crate::common::{self, Appender, Counter, LOAD_EVENTS};

const BACKEND: &str = "sqlite";

impl Appender for SqliteEventStore {
    async fn append(&self, stream: String, expected: u64, events: Vec<NewEvent>) {
        let expected = ExpectedVersion::from_version(expected);
        if let Err(e) = EventStore::append(self, "counter", &stream, expected, events).await {
            panic!("append failed: {e}");
        }
    }
}

/// The floor: one connection behind a mutex, on the blocking pool, one `BEGIN IMMEDIATE`
/// transaction per command, one prepared INSERT per event; the unique index is the only
/// concurrency check.
#[derive(Clone)]
struct Floor(Arc<Mutex<Connection>>);

impl Floor {
    fn open(path: &Path) -> Self {
        let conn = Connection::open(path).expect("open");
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))
            .expect("wal");
        conn.pragma_update(None, "synchronous", "FULL")
            .expect("sync");
        Self(Arc::new(Mutex::new(conn)))
    }
}

impl Appender for Floor {
    async fn append(&self, stream: String, expected: u64, events: Vec<NewEvent>) {
        let conn = Arc::clone(&self.0);
        let stored = tokio::task::spawn_blocking(move || -> rusqlite::Result<()> {
            let mut conn = conn.lock().expect("lock");
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO events (stream_type, stream_id, stream_version, event_id, \
                     event_type, event_version, payload, metadata, recorded_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?;
                for (version, e) in (expected + 1..).zip(&events) {
                    let metadata = serde_json::to_string(&e.metadata).unwrap_or_default();
                    insert.execute(params![
                        "counter",
                        stream,
                        version as i64,
                        e.event_id.as_bytes().as_slice(),
                        e.event_type.as_ref(),
                        e.event_version,
                        std::str::from_utf8(&e.payload).unwrap_or_default(),
                        metadata,
                        e.recorded_at.timestamp_micros(),
                    ])?;
                }
            }
            tx.commit()
        });
        stored.await.expect("join").expect("floor append");
    }
}

fn floor_load(conn: &Connection, stream: &str) -> Counter {
    let mut state = Counter::default();
    let mut query = conn
        .prepare_cached(
            "SELECT event_type, event_version, payload FROM events \
             WHERE stream_type = ?1 AND stream_id = ?2 ORDER BY stream_version",
        )
        .expect("prepare");
    let mut rows = query.query(params!["counter", stream]).expect("query");
    while let Ok(Some(row)) = rows.next() {
        let (t, v, p): (String, i64, String) = (
            row.get(0).expect("t"),
            row.get(1).expect("v"),
            row.get(2).expect("p"),
        );
        common::floor_apply(&mut state, &t, v, &p);
    }
    state
}

pub fn benches(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let dir: PathBuf = std::env::temp_dir().join(format!("cqrs-bench-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("dir");
    let open = |name: &str| {
        let path = dir.join(name);
        let store = rt.block_on(SqliteEventStore::open(&path)).expect("open");
        (path, store)
    };
    let (_, ours) = open("ours.sqlite");
    // The floor writes into a file whose schema the store created, then uses its own SQL.
    let (floor_path, _floor_schema) = open("floor.sqlite");
    let floor = Floor::open(&floor_path);
    common::append_matrix(c, BACKEND, &rt, |_| ours.clone(), |_| floor.clone());
    if crate::catchup::selected(BACKEND) {
        let (_, log) = open("catch_up.sqlite");
        crate::catchup::fill(&rt, &log);
        crate::catchup::benches(c, &rt, BACKEND, &log);
    }

    common::fill_stream(&rt, &ours, "load-1");
    let repo = Repository::<Counter, _>::new(ours.clone());
    let reader = Arc::new(Mutex::new(
        Connection::open(dir.join("ours.sqlite")).expect("reader"),
    ));
    let load_ours = || {
        let loaded = rt.block_on(repo.load(&"load-1".to_owned())).expect("load");
        assert_eq!(loaded.state.events, LOAD_EVENTS);
    };
    let load_floor = || {
        // Same hop to the blocking pool as the store, so both pay it.
        let reader = Arc::clone(&reader);
        let state = rt.block_on(async {
            tokio::task::spawn_blocking(move || floor_load(&reader.lock().expect("lock"), "load-1"))
                .await
                .expect("join")
        });
        assert_eq!(state.events, LOAD_EVENTS);
    };
    let cleanup = || {
        let _ = std::fs::remove_dir_all(&dir);
    };
    if let Some(rounds) = common::alternate_rounds() {
        if !common::selected(&format!("{BACKEND}/load")) {
            return cleanup();
        }
        common::alternate(
            &format!("{BACKEND}/load/{LOAD_EVENTS}ev"),
            rounds * 10,
            || common::timed(&load_ours),
            || common::timed(&load_floor),
        );
        return cleanup();
    }
    let mut group = c.benchmark_group(format!("sqlite/load/{LOAD_EVENTS}ev"));
    group.bench_function("ours", |b| b.iter(load_ours));
    group.bench_function("ours-read-only", |b| {
        b.iter(|| {
            let mut n = 0;
            let read = rt.block_on(ours.replay_stream("counter", "load-1", 1, |_| {
                n += 1;
                true
            }));
            assert!(read.is_ok());
            assert_eq!(n, LOAD_EVENTS);
        })
    });
    group.bench_function("floor", |b| b.iter(load_floor));
    group.finish();
    cleanup();
}
