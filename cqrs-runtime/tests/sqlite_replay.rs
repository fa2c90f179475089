//! SQLite's two ways to lend a stream to a load: straight from the rows (multi-thread
//! runtime, in `block_in_place`) and in chunks from the blocking pool (current-thread
//! runtime). Both must lend the same events, across chunk boundaries, and stop on request.
#![cfg(feature = "sqlite")]

use cqrs_runtime::Metadata;
use cqrs_runtime::sqlite::SqliteEventStore;
use cqrs_runtime::store::{EventStore, ExpectedVersion, NewEvent};

const EVENTS: u64 = 4_500; // more than two chunks of 2,048

async fn replay_matches_read(store: &SqliteEventStore) {
    for from in [0, 1, 2_048, 2_049, 4_500, 4_501] {
        let read = store.read_stream("thing", "a", from).await.expect("read");
        let mut seen = Vec::new();
        store
            .replay_stream("thing", "a", from, |e| {
                seen.push((
                    e.global_position,
                    e.stream_version,
                    e.event_type.to_owned(),
                    e.event_version,
                    e.payload.to_vec(),
                ));
                true
            })
            .await
            .expect("replay");
        let expected: Vec<_> = read
            .into_iter()
            .map(|e| {
                let payload = e.payload;
                (
                    e.global_position,
                    e.stream_version,
                    e.event_type,
                    e.event_version,
                    payload,
                )
            })
            .collect();
        assert_eq!(seen, expected, "from version {from}");
    }
    for stop_after in [1, 2_048, 2_049] {
        let mut n = 0;
        store
            .replay_stream("thing", "a", 1, |_| {
                n += 1;
                n < stop_after
            })
            .await
            .expect("replay");
        assert_eq!(n, stop_after);
    }
}

async fn filled_store() -> (std::path::PathBuf, SqliteEventStore) {
    let dir = std::env::temp_dir().join(format!("cqrs-replay-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let store = SqliteEventStore::open(dir.join("events.sqlite"))
        .await
        .expect("open");
    for chunk in 0..EVENTS / 100 {
        let events = (0..100)
            .map(|i| {
                let payload = format!(r#"{{"n":{}}}"#, chunk * 100 + i).into_bytes();
                NewEvent::new("thing_happened", 1, payload, Metadata::new())
            })
            .collect();
        let expected = ExpectedVersion::from_version(chunk * 100);
        store
            .append("thing", "a", expected, events)
            .await
            .expect("append");
    }
    (dir, store)
}

#[tokio::test(flavor = "current_thread")]
async fn chunked_replay_on_a_current_thread_runtime() {
    let (dir, store) = filled_store().await;
    replay_matches_read(&store).await;
    drop(store);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_replay_on_a_worker_thread() {
    let (dir, store) = filled_store().await;
    // The test's own future runs in `block_on`, not on a worker: spawn onto one.
    let worker = tokio::spawn(async move {
        let name = std::thread::current().name().map(str::to_owned);
        assert!(
            name.as_deref()
                .is_some_and(|n| n.starts_with("tokio-r") && n.ends_with("worker")),
            "the replay runs on a worker thread, not {name:?}"
        );
        replay_matches_read(&store).await;
        store
    });
    drop(worker.await.expect("worker task"));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_replay_in_block_on_of_a_multi_thread_runtime() {
    let (dir, store) = filled_store().await;
    replay_matches_read(&store).await;
    drop(store);
    let _ = std::fs::remove_dir_all(dir);
}
