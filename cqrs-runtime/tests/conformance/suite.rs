//! The single-writer contract: append and read, conflicts, idempotency, order.

use cqrs_runtime::store::{Cursor, EventStore, ExpectedVersion, StoreError};

use std::sync::Arc;

use super::{Backend, event, events, same_json};

pub async fn append_and_read<B: Backend>(b: &Arc<B>) {
    let store = b.events();
    let batch = events(0..3);
    let outcome = store
        .append("thing", "a", ExpectedVersion::NoStream, batch.clone())
        .await
        .expect("append");
    assert_eq!(outcome.stream_version, 3);
    assert_eq!(outcome.positions.len(), 3);
    assert!(outcome.positions.windows(2).all(|w| w[0] < w[1]));

    let stored = store.read_stream("thing", "a", 0).await.expect("read");
    assert_eq!(stored.len(), 3);
    for (i, (stored, new)) in stored.iter().zip(&batch).enumerate() {
        assert_eq!(stored.stream_version, i as u64 + 1);
        assert_eq!(stored.global_position, outcome.positions[i]);
        assert_eq!(
            (stored.stream_type.as_str(), stored.stream_id.as_str()),
            ("thing", "a")
        );
        assert_eq!(stored.event_id, new.event_id);
        assert_eq!(stored.event_type, "thing_happened");
        assert_eq!(stored.event_version, 1);
        assert!(same_json(&stored.payload, &new.payload), "payload changed");
        assert_eq!(stored.metadata, new.metadata);
        assert_eq!(stored.recorded_at, new.recorded_at);
    }
    assert_eq!(
        store.head_position().await.expect("head"),
        outcome.positions[2]
    );
    assert!(
        store
            .read_stream("thing", "b", 1)
            .await
            .expect("read")
            .is_empty()
    );
    assert!(
        store
            .read_stream("other", "a", 1)
            .await
            .expect("read")
            .is_empty()
    );
}

pub async fn read_stream_from_version<B: Backend>(b: &Arc<B>) {
    let store = b.events();
    store
        .append("thing", "a", ExpectedVersion::NoStream, events(0..5))
        .await
        .expect("append");
    let versions = |from| {
        let store = store.clone();
        async move {
            let read = store.read_stream("thing", "a", from).await.expect("read");
            read.iter().map(|e| e.stream_version).collect::<Vec<_>>()
        }
    };
    assert_eq!(versions(1).await, vec![1, 2, 3, 4, 5]);
    assert_eq!(versions(4).await, vec![4, 5]);
    assert!(versions(6).await.is_empty());
}

/// `replay_stream` lends the same events as `read_stream_events`, from any version, across
/// SQLite's chunk boundaries (2,048 rows), and stops when the visitor says so.
pub async fn replay_stream_lends_every_event_and_stops<B: Backend>(b: &Arc<B>) {
    let store = b.events();
    for (id, n) in [("a", 4_500), ("b", 3)] {
        for chunk in 0..n / 100 + 1 {
            let range = chunk * 100..(chunk * 100 + 100).min(n);
            let expected = ExpectedVersion::from_version(range.start);
            if !range.is_empty() {
                store
                    .append("thing", id, expected, events(range))
                    .await
                    .expect("append");
            }
        }
    }
    let replay = |from, stop_after: usize| {
        let store = store.clone();
        async move {
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
                    seen.len() < stop_after
                })
                .await
                .expect("replay");
            seen
        }
    };
    for from in [0, 1, 2_049, 4_500, 4_501] {
        let read = store
            .read_stream_events("thing", "a", from)
            .await
            .expect("read");
        let seen = replay(from, usize::MAX).await;
        assert_eq!(seen.len(), read.len(), "from {from}");
        for (seen, read) in seen.iter().zip(&read) {
            assert_eq!(
                (seen.0, seen.1),
                (read.global_position, read.stream_version)
            );
            assert_eq!(
                (seen.2.as_str(), seen.3),
                (read.event_type.as_str(), read.event_version)
            );
            assert!(same_json(&seen.4, &read.payload), "payload changed");
        }
    }
    assert_eq!(replay(1, usize::MAX).await.len(), 4_500);
    let stopped = replay(1, 5).await;
    assert_eq!(
        stopped.iter().map(|e| e.1).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(replay(2_000, 300).await.len(), 300);
    let mut none = 0;
    store
        .replay_stream("thing", "missing", 1, |_| {
            none += 1;
            true
        })
        .await
        .expect("replay of an empty stream");
    assert_eq!(none, 0);
}

fn assert_conflict(result: Result<impl std::fmt::Debug, StoreError>, want_actual: u64) {
    match result {
        Err(StoreError::Conflict { actual, .. }) => assert_eq!(actual, want_actual),
        other => panic!("expected a conflict at {want_actual}, got {other:?}"),
    }
}

pub async fn conflicts_report_the_actual_version<B: Backend>(b: &Arc<B>) {
    let store = b.events();
    store
        .append("thing", "a", ExpectedVersion::NoStream, events(0..2))
        .await
        .expect("append");
    let again = store
        .append("thing", "a", ExpectedVersion::NoStream, events(2..3))
        .await;
    assert_conflict(again, 2);
    let behind = store
        .append("thing", "a", ExpectedVersion::Exact(1), events(3..4))
        .await;
    assert_conflict(behind, 2);
    let ahead = store
        .append("thing", "a", ExpectedVersion::Exact(7), events(4..5))
        .await;
    assert_conflict(ahead, 2);
    let on_empty = store
        .append("thing", "b", ExpectedVersion::Exact(1), events(5..6))
        .await;
    assert_conflict(on_empty, 0);
    let any = store
        .append("thing", "a", ExpectedVersion::Any, events(6..8))
        .await
        .expect("any");
    assert_eq!(any.stream_version, 4);
    let exact = store
        .append("thing", "a", ExpectedVersion::Exact(4), events(8..9))
        .await
        .expect("exact");
    assert_eq!(exact.stream_version, 5);
    let read = store.read_stream("thing", "a", 1).await.expect("read");
    let versions: Vec<u64> = read.iter().map(|e| e.stream_version).collect();
    assert_eq!(
        versions,
        vec![1, 2, 3, 4, 5],
        "refused appends stored nothing"
    );
}

pub async fn empty_batch_checks_the_expected_version<B: Backend>(b: &Arc<B>) {
    let store = b.events();
    let empty = store
        .append("thing", "a", ExpectedVersion::NoStream, Vec::new())
        .await
        .expect("empty on empty");
    assert_eq!((empty.stream_version, empty.positions.len()), (0, 0));
    store
        .append("thing", "a", ExpectedVersion::NoStream, events(0..1))
        .await
        .expect("append");
    let ok = store
        .append("thing", "a", ExpectedVersion::Exact(1), Vec::new())
        .await
        .expect("matching empty");
    assert_eq!(ok.stream_version, 1);
    let wrong = store
        .append("thing", "a", ExpectedVersion::NoStream, Vec::new())
        .await;
    assert_conflict(wrong, 1);
    assert_eq!(
        store
            .read_stream("thing", "a", 1)
            .await
            .expect("read")
            .len(),
        1
    );
}

pub async fn reappend_is_idempotent<B: Backend>(b: &Arc<B>) {
    let store = b.events();
    store
        .append("thing", "x", ExpectedVersion::NoStream, events(100..101))
        .await
        .expect("other stream");
    let batch = events(0..3);
    let first = store
        .append("thing", "a", ExpectedVersion::NoStream, batch.clone())
        .await
        .expect("append");
    let head = store.head_position().await.expect("head");
    let again = store
        .append("thing", "a", ExpectedVersion::NoStream, batch.clone())
        .await
        .expect("retried append succeeds");
    assert_eq!(again, first);
    let any = store
        .append("thing", "a", ExpectedVersion::Any, batch.clone())
        .await
        .expect("retried with any");
    assert_eq!(any, first);
    let prefix = store
        .append("thing", "a", ExpectedVersion::NoStream, batch[..1].to_vec())
        .await
        .expect("retried prefix");
    assert_eq!(prefix.stream_version, 1);
    assert_eq!(prefix.positions, first.positions[..1].to_vec());
    assert_eq!(
        store.head_position().await.expect("head"),
        head,
        "nothing stored twice"
    );
    assert_eq!(
        store
            .read_stream("thing", "a", 1)
            .await
            .expect("read")
            .len(),
        3
    );
}

pub async fn clashing_ids_are_duplicates<B: Backend>(b: &Arc<B>) {
    let store = b.events();
    let landed = event(1);
    store
        .append(
            "thing",
            "a",
            ExpectedVersion::NoStream,
            vec![landed.clone()],
        )
        .await
        .expect("append");
    let head = store.head_position().await.expect("head");
    let is_duplicate = |r: Result<_, StoreError>, id| matches!(r, Err(StoreError::DuplicateEventId { event_id }) if event_id == id);
    let elsewhere = store
        .append(
            "thing",
            "b",
            ExpectedVersion::NoStream,
            vec![landed.clone()],
        )
        .await;
    assert!(
        is_duplicate(elsewhere, landed.event_id),
        "id stored in another stream"
    );
    let moved = store
        .append(
            "thing",
            "a",
            ExpectedVersion::Exact(1),
            vec![landed.clone()],
        )
        .await;
    assert!(
        is_duplicate(moved, landed.event_id),
        "id at another version"
    );
    let fresh = event(2);
    let twice = store
        .append(
            "thing",
            "c",
            ExpectedVersion::NoStream,
            vec![fresh.clone(), fresh.clone()],
        )
        .await;
    assert!(is_duplicate(twice, fresh.event_id), "id twice in one batch");
    let mixed = store
        .append(
            "thing",
            "a",
            ExpectedVersion::Exact(1),
            vec![event(3), landed.clone()],
        )
        .await;
    assert!(
        is_duplicate(mixed, landed.event_id),
        "a landed id inside a new batch"
    );
    assert_eq!(
        store.head_position().await.expect("head"),
        head,
        "nothing stored"
    );
    assert!(
        store
            .read_stream("thing", "b", 1)
            .await
            .expect("read")
            .is_empty()
    );
    assert!(
        store
            .read_stream("thing", "c", 1)
            .await
            .expect("read")
            .is_empty()
    );
    assert_eq!(
        store
            .read_stream("thing", "a", 1)
            .await
            .expect("read")
            .len(),
        1
    );
}

pub async fn read_all_and_read_after_are_in_order<B: Backend>(b: &Arc<B>) {
    let store = b.events();
    let mut expected_ids = Vec::new();
    for round in 0..5_u64 {
        for stream in ["a", "b", "c"] {
            let batch = events(round * 10..round * 10 + 2);
            expected_ids.extend(batch.iter().map(|e| e.event_id));
            store
                .append("thing", stream, ExpectedVersion::Any, batch)
                .await
                .expect("append");
        }
    }
    let mut seen = Vec::new();
    let mut after = 0;
    for _ in 0..100 {
        let page = store.read_all(after, 4).await.expect("read_all");
        assert!(page.len() <= 4);
        let Some(last) = page.last() else { break };
        assert!(page.iter().all(|e| e.global_position > after));
        assert!(
            page.windows(2)
                .all(|w| w[0].global_position < w[1].global_position)
        );
        after = last.global_position;
        seen.extend(page.iter().map(|e| e.event_id));
    }
    assert_eq!(seen, expected_ids, "read_all returns the commit order");

    // `read_after` may hold events back while any transaction that could precede them is
    // still open (on PostgreSQL, anywhere in the cluster), so it is polled, within bounds.
    let mut cursor = Cursor::START;
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    for _ in 0..2_000 {
        let page = store.read_after(cursor, 7).await.expect("read_after");
        let Some((last, _)) = page.last() else {
            if seen.len() == expected_ids.len() || std::time::Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        assert!(page.iter().all(|(c, _)| *c > cursor));
        assert!(page.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(page.iter().all(|(c, e)| c.position == e.global_position));
        cursor = *last;
        seen.extend(page.iter().map(|(_, e)| e.event_id));
    }
    assert_eq!(
        seen, expected_ids,
        "read_after returns every event once, in order"
    );
    let resumed = store
        .read_after(cursor, 10)
        .await
        .expect("read_after at the end");
    assert!(resumed.is_empty());
}
