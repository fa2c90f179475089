//! The in-memory event store's contract.

use std::collections::HashSet;
use std::sync::Arc;

use cqrs_runtime::envelope::Metadata;
use cqrs_runtime::memory::InMemoryEventStore;
use cqrs_runtime::store::{
    AppendOutcome, Cursor, EventStore, ExpectedVersion, NewEvent, StoreError, StoredEvent,
};

fn event(n: u64) -> NewEvent {
    NewEvent::new(
        "thing_happened",
        1,
        format!("{{\"n\":{n}}}").into_bytes(),
        Metadata::new(),
    )
}

fn events(range: std::ops::Range<u64>) -> Vec<NewEvent> {
    range.map(event).collect()
}

#[tokio::test]
async fn append_then_read_stream() {
    let store = InMemoryEventStore::new();
    let batch = events(0..3);
    let outcome = store
        .append("thing", "a", ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();
    assert_eq!(
        outcome,
        AppendOutcome {
            stream_version: 3,
            positions: vec![1, 2, 3]
        }
    );

    let stored = store.read_stream("thing", "a", 1).await.unwrap();
    assert_eq!(stored.len(), 3);
    for (i, (stored, new)) in stored.iter().zip(&batch).enumerate() {
        assert_eq!(stored.stream_version, i as u64 + 1);
        assert_eq!(stored.global_position, i as u64 + 1);
        assert_eq!(stored.stream_type, "thing");
        assert_eq!(stored.stream_id, "a");
        assert_eq!(stored.event_id, new.event_id);
        assert_eq!(stored.event_type, "thing_happened");
        assert_eq!(stored.event_version, 1);
        assert_eq!(stored.payload, new.payload);
        assert_eq!(stored.metadata, new.metadata);
        assert_eq!(stored.recorded_at, new.recorded_at);
    }
    assert!(store.read_stream("thing", "b", 1).await.unwrap().is_empty());
    assert!(store.read_stream("other", "a", 1).await.unwrap().is_empty());
}

#[tokio::test]
async fn read_stream_from_version_is_inclusive() {
    let store = InMemoryEventStore::new();
    store
        .append("thing", "a", ExpectedVersion::Any, events(0..5))
        .await
        .unwrap();
    let versions =
        |events: Vec<StoredEvent>| events.iter().map(|e| e.stream_version).collect::<Vec<_>>();
    assert_eq!(
        versions(store.read_stream("thing", "a", 0).await.unwrap()),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(
        versions(store.read_stream("thing", "a", 4).await.unwrap()),
        [4, 5]
    );
    assert!(store.read_stream("thing", "a", 6).await.unwrap().is_empty());
    assert!(
        store
            .read_stream("thing", "a", u64::MAX)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn wrong_expected_version_is_a_conflict() {
    let store = InMemoryEventStore::new();
    store
        .append("thing", "a", ExpectedVersion::Exact(0), events(0..2))
        .await
        .unwrap();

    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(0),
        ExpectedVersion::Exact(1),
        ExpectedVersion::Exact(3),
    ] {
        match store.append("thing", "a", expected, events(10..11)).await {
            Err(StoreError::Conflict {
                stream_type,
                stream_id,
                expected: reported,
                actual,
            }) => {
                assert_eq!((stream_type.as_str(), stream_id.as_str()), ("thing", "a"));
                assert_eq!(reported, expected);
                assert_eq!(actual, 2);
            }
            other => panic!("expected a conflict for {expected:?}, got {other:?}"),
        }
    }
    let outcome = store
        .append("thing", "a", ExpectedVersion::Exact(2), events(20..21))
        .await
        .unwrap();
    assert_eq!(outcome.stream_version, 3);
    let outcome = store
        .append("thing", "a", ExpectedVersion::Any, events(30..31))
        .await
        .unwrap();
    assert_eq!(outcome.stream_version, 4);
    assert_eq!(store.head().await.unwrap().position, 4);
}

#[tokio::test]
async fn empty_batch_is_a_no_op_that_checks_the_expected_version() {
    let store = InMemoryEventStore::new();
    let outcome = store
        .append("thing", "a", ExpectedVersion::NoStream, Vec::new())
        .await
        .unwrap();
    assert_eq!(
        outcome,
        AppendOutcome {
            stream_version: 0,
            positions: vec![]
        }
    );
    store
        .append("thing", "a", ExpectedVersion::NoStream, events(0..1))
        .await
        .unwrap();
    let err = store
        .append("thing", "a", ExpectedVersion::NoStream, Vec::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { actual: 1, .. }),
        "{err:?}"
    );
    let outcome = store
        .append("thing", "a", ExpectedVersion::Exact(1), Vec::new())
        .await
        .unwrap();
    assert_eq!(
        outcome,
        AppendOutcome {
            stream_version: 1,
            positions: vec![]
        }
    );
    assert_eq!(store.head().await.unwrap().position, 1);
}

#[tokio::test]
async fn reappending_a_landed_batch_returns_the_original_outcome() {
    let store = InMemoryEventStore::new();
    store
        .append("thing", "other", ExpectedVersion::Any, events(0..2))
        .await
        .unwrap();
    store
        .append("thing", "a", ExpectedVersion::NoStream, events(0..1))
        .await
        .unwrap();
    let batch = events(1..4);
    let original = store
        .append("thing", "a", ExpectedVersion::Exact(1), batch.clone())
        .await
        .unwrap();
    assert_eq!(
        original,
        AppendOutcome {
            stream_version: 4,
            positions: vec![4, 5, 6]
        }
    );
    // The stream moved on since.
    store
        .append("thing", "a", ExpectedVersion::Exact(4), events(9..10))
        .await
        .unwrap();

    let retried = store
        .append("thing", "a", ExpectedVersion::Exact(1), batch.clone())
        .await
        .unwrap();
    assert_eq!(retried, original);
    let retried = store
        .append("thing", "a", ExpectedVersion::Any, batch.clone())
        .await
        .unwrap();
    assert_eq!(retried, original);
    assert_eq!(store.head().await.unwrap().position, 7);
    assert_eq!(store.len().unwrap(), 7);
    assert_eq!(store.read_stream("thing", "a", 1).await.unwrap().len(), 5);
}

#[tokio::test]
async fn clashing_event_ids_are_duplicates() {
    let store = InMemoryEventStore::new();
    let batch = events(0..2);
    store
        .append("thing", "a", ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();
    let duplicate_of = |err: StoreError| match err {
        StoreError::DuplicateEventId { event_id } => event_id,
        other => panic!("expected DuplicateEventId, got {other:?}"),
    };

    // Same ids in another stream.
    let err = store
        .append("thing", "b", ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap_err();
    assert_eq!(duplicate_of(err), batch[0].event_id);

    // Same stream, but at versions the batch would not occupy.
    let err = store
        .append("thing", "a", ExpectedVersion::Exact(2), batch.clone())
        .await
        .unwrap_err();
    assert_eq!(duplicate_of(err), batch[0].event_id);

    // A batch mixing a stored id with a new one.
    let mixed = vec![event(7), batch[1].clone()];
    let err = store
        .append("thing", "a", ExpectedVersion::Exact(2), mixed)
        .await
        .unwrap_err();
    assert_eq!(duplicate_of(err), batch[1].event_id);

    // Reordered: the ids are stored, but not at these versions.
    let reordered = vec![batch[1].clone(), batch[0].clone()];
    let err = store
        .append("thing", "a", ExpectedVersion::Exact(0), reordered)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::DuplicateEventId { .. }),
        "{err:?}"
    );

    // The same new id twice in one batch.
    let twice = event(8);
    let err = store
        .append(
            "thing",
            "a",
            ExpectedVersion::Exact(2),
            vec![twice.clone(), twice.clone()],
        )
        .await
        .unwrap_err();
    assert_eq!(duplicate_of(err), twice.event_id);

    assert_eq!(store.head().await.unwrap().position, 2);
    assert!(store.read_stream("thing", "b", 1).await.unwrap().is_empty());
}

/// The log after `after`, without cursors (the in-memory store commits in position order).
async fn read_all(store: &InMemoryEventStore, after: u64, limit: usize) -> Vec<StoredEvent> {
    let cursor = Cursor {
        tx: 0,
        position: after,
    };
    let page = store.read_after(cursor, limit).await.unwrap();
    assert!(
        page.iter()
            .all(|(c, e)| c.tx == 0 && c.position == e.global_position)
    );
    page.into_iter().map(|(_, e)| e).collect()
}

#[tokio::test]
async fn read_after_is_in_global_order_and_respects_limits() {
    let store = InMemoryEventStore::new();
    let mut expected = Vec::new();
    for round in 0..4 {
        for stream in ["a", "b", "c"] {
            let batch = events(round * 10..round * 10 + 2);
            expected.extend(batch.iter().map(|e| e.event_id));
            store
                .append("thing", stream, ExpectedVersion::Any, batch)
                .await
                .unwrap();
        }
    }
    assert_eq!(store.head().await.unwrap().position, 24);

    let all = read_all(&store, 0, usize::MAX).await;
    assert_eq!(all.iter().map(|e| e.event_id).collect::<Vec<_>>(), expected);
    assert_eq!(
        all.iter().map(|e| e.global_position).collect::<Vec<_>>(),
        (1..=24).collect::<Vec<_>>()
    );

    let page = read_all(&store, 5, 4).await;
    assert_eq!(
        page.iter().map(|e| e.global_position).collect::<Vec<_>>(),
        [6, 7, 8, 9]
    );
    assert_eq!(page[0].stream_id, "c");
    assert_eq!(page[0].stream_version, 2);
    assert_eq!(
        (page[1].stream_id.as_str(), page[1].stream_version),
        ("a", 3)
    );

    assert!(read_all(&store, 0, 0).await.is_empty());
    assert_eq!(read_all(&store, 22, 10).await.len(), 2);
    assert!(read_all(&store, 24, 10).await.is_empty());
    assert!(read_all(&store, u64::MAX, 10).await.is_empty());

    // Paging through the whole log sees every event once.
    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let page = read_all(&store, after, 5).await;
        let Some(last) = page.last() else { break };
        after = last.global_position;
        seen.extend(page.iter().map(|e| e.event_id));
    }
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn subscribe_sees_the_head_move() {
    let store = InMemoryEventStore::new();
    let mut head = store.subscribe();
    assert_eq!(*head.borrow(), 0);
    let clone = store.clone();
    let writer = tokio::spawn(async move {
        clone
            .append("thing", "a", ExpectedVersion::Any, events(0..3))
            .await
            .unwrap();
    });
    head.changed().await.unwrap();
    assert_eq!(*head.borrow_and_update(), 3);
    writer.await.unwrap();
    // A failed append does not notify.
    store
        .append("thing", "a", ExpectedVersion::NoStream, events(3..4))
        .await
        .unwrap_err();
    assert!(!head.has_changed().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_to_one_stream_lose_nothing() {
    const TASKS: u64 = 16;
    const PER_TASK: u64 = 10;
    let store = InMemoryEventStore::new();
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            let mut conflicts = 0;
            for n in 0..PER_TASK {
                let new = event(task * 100 + n);
                ids.push(new.event_id);
                loop {
                    let version = store.read_stream("thing", "hot", 1).await.unwrap().len() as u64;
                    let expected = ExpectedVersion::from_version(version);
                    match store
                        .append("thing", "hot", expected, vec![new.clone()])
                        .await
                    {
                        Ok(outcome) => {
                            assert_eq!(outcome.stream_version, version + 1);
                            break;
                        }
                        Err(StoreError::Conflict { .. }) => {
                            conflicts += 1;
                            tokio::task::yield_now().await;
                        }
                        Err(other) => panic!("{other}"),
                    }
                }
            }
            (ids, conflicts)
        }));
    }
    let mut ids = HashSet::new();
    for handle in handles {
        let (task_ids, _conflicts) = handle.await.unwrap();
        ids.extend(task_ids);
    }

    let stream = store.read_stream("thing", "hot", 1).await.unwrap();
    assert_eq!(stream.len() as u64, TASKS * PER_TASK);
    let versions: Vec<u64> = stream.iter().map(|e| e.stream_version).collect();
    assert_eq!(versions, (1..=TASKS * PER_TASK).collect::<Vec<_>>());
    let stored_ids: HashSet<_> = stream.iter().map(|e| e.event_id).collect();
    assert_eq!(stored_ids, ids);
    assert_eq!(store.head().await.unwrap().position, TASKS * PER_TASK);
}

async fn append_through<S: EventStore>(store: S) -> AppendOutcome {
    store
        .append("thing", "a", ExpectedVersion::Any, events(0..1))
        .await
        .unwrap()
}

#[tokio::test]
async fn arc_and_static_refs_are_stores() {
    let store = Arc::new(InMemoryEventStore::new());
    assert_eq!(append_through(Arc::clone(&store)).await.stream_version, 1);
    let leaked: &'static InMemoryEventStore = Box::leak(Box::new(InMemoryEventStore::new()));
    assert_eq!(append_through(leaked).await.positions, [1]);
    assert_eq!(store.head().await.unwrap().position, 1);
}
