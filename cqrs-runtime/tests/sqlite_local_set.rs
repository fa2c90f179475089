//! A load from SQLite works wherever a Tokio task can run: inside a `LocalSet` on a
//! multi-thread runtime (where `block_in_place` is not allowed), on a worker task, and on a
//! current-thread runtime.
#![cfg(feature = "sqlite")]

use cqrs_runtime::Metadata;
use cqrs_runtime::sqlite::SqliteEventStore;
use cqrs_runtime::store::{EventStore, ExpectedVersion, NewEvent};

async fn filled() -> SqliteEventStore {
    let dir = std::env::temp_dir().join(format!("cqrs-localset-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("dir");
    let store = SqliteEventStore::open(dir.join("events.sqlite"))
        .await
        .expect("open");
    let events = (0..10)
        .map(|n| {
            NewEvent::new(
                "thing",
                1,
                format!("{{\"n\":{n}}}").into_bytes(),
                Metadata::new(),
            )
        })
        .collect();
    store
        .append("thing", "a", ExpectedVersion::NoStream, events)
        .await
        .expect("append");
    store
}

async fn replay_count(store: &SqliteEventStore) -> usize {
    let mut n = 0;
    store
        .replay_stream("thing", "a", 1, |_| {
            n += 1;
            true
        })
        .await
        .expect("replay");
    n
}

#[test]
fn inside_a_local_set_on_a_multi_thread_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    let n = local.block_on(&rt, async {
        let store = filled().await;
        tokio::task::spawn_local(async move { replay_count(&store).await })
            .await
            .expect("local task")
    });
    assert_eq!(n, 10);
}

#[test]
fn on_a_worker_task() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let n = rt.block_on(async {
        let store = filled().await;
        tokio::spawn(async move { replay_count(&store).await })
            .await
            .expect("worker task")
    });
    assert_eq!(n, 10);
}

#[test]
fn on_a_current_thread_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    assert_eq!(
        rt.block_on(async { replay_count(&filled().await).await }),
        10
    );
}
