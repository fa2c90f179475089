//! Many writers, a concurrent catch-up reader, and competing lease holders.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cqrs_runtime::store::{Cursor, EventStore, ExpectedVersion, LeaseStore, StoreError};

use super::{Backend, event};

/// Random bits (UUIDv7's random tail), for jitter.
fn random_below(max: u64) -> u64 {
    (uuid::Uuid::now_v7().as_u128() as u64) % max.max(1)
}

pub async fn one_lease_holder_and_takeover<B: Backend>(b: &Arc<B>) {
    let mine = b.leases();
    let theirs = b.other_leases().await;
    let first = mine
        .try_acquire("projection-x")
        .await
        .expect("try_acquire")
        .expect("a free lease is granted");
    assert!(
        theirs
            .try_acquire("projection-x")
            .await
            .expect("try")
            .is_none()
    );
    assert!(
        mine.try_acquire("projection-x")
            .await
            .expect("try")
            .is_none()
    );
    let other = theirs.try_acquire("projection-y").await.expect("try");
    assert!(other.is_some(), "another name is independent");

    // Contenders racing for a free name: exactly one wins.
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..4 {
        let leases = if i % 2 == 0 {
            b.leases()
        } else {
            b.other_leases().await
        };
        racers.spawn(async move { leases.try_acquire("race").await });
    }
    let mut winners = Vec::new();
    while let Some(joined) = racers.join_next().await {
        if let Some(lease) = joined.expect("racer").expect("try_acquire") {
            winners.push(lease);
        }
    }
    assert_eq!(winners.len(), 1, "one holder per name");

    // The first holder stops: the other handle takes over within a bounded time.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    let taken = loop {
        if let Some(lease) = theirs.try_acquire("projection-x").await.expect("try") {
            break lease;
        }
        assert!(Instant::now() < deadline, "the lease was never released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        mine.try_acquire("projection-x")
            .await
            .expect("try")
            .is_none()
    );
    drop(taken);
}

/// N tasks × M commands on one stream, each re-reading and retrying on a conflict.
pub async fn concurrent_commands_with_retry_lose_nothing<B: Backend>(b: &Arc<B>) {
    const TASKS: u64 = 8;
    const COMMANDS: u64 = 10;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let store = b.events();
        tasks.spawn(async move {
            let mut committed = Vec::new();
            let mut conflicts = 0_u32;
            for command in 0..COMMANDS {
                let new = event(task * 1000 + command);
                loop {
                    assert!(Instant::now() < deadline, "commands did not finish in time");
                    assert!(conflicts < 2_000, "too many conflicts");
                    let head = store.read_stream("counter", "one", 1).await.expect("read");
                    let version = head.last().map_or(0, |e| e.stream_version);
                    let expected = ExpectedVersion::from_version(version);
                    match store
                        .append("counter", "one", expected, vec![new.clone()])
                        .await
                    {
                        Ok(_) => break,
                        Err(StoreError::Conflict { .. }) => {
                            conflicts += 1;
                            tokio::time::sleep(Duration::from_micros(random_below(500))).await;
                        }
                        Err(other) => panic!("append failed: {other}"),
                    }
                }
                committed.push(new.event_id);
            }
            committed
        });
    }
    let mut committed = HashSet::new();
    while let Some(joined) = tasks.join_next().await {
        committed.extend(joined.expect("writer task"));
    }
    let stored = b
        .events()
        .read_stream("counter", "one", 1)
        .await
        .expect("read");
    let versions: Vec<u64> = stored.iter().map(|e| e.stream_version).collect();
    assert_eq!(
        versions,
        (1..=TASKS * COMMANDS).collect::<Vec<_>>(),
        "no lost or doubled version"
    );
    let ids: HashSet<_> = stored.iter().map(|e| e.event_id).collect();
    assert_eq!(ids, committed, "exactly the committed commands are stored");
}

/// The gap test: 8 writers whose transactions stay open for random times, and a concurrent
/// catch-up reader that must see every event exactly once, in each stream's version order.
pub async fn catch_up_reader_sees_every_event_once<B: Backend>(b: &Arc<B>) {
    const WRITERS: u64 = 8;
    const EVENTS: u64 = 20;
    let total = (WRITERS * EVENTS) as usize;
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let b = Arc::clone(b);
        writers.spawn(async move {
            let stream = format!("w{writer}");
            for version in 1..=EVENTS {
                let hold = Duration::from_millis(random_below(15));
                let e = event(writer * 1000 + version);
                b.append_held_open("gap", &stream, version, e, hold).await;
            }
        });
    }

    let store = b.events();
    let mut cursor = Cursor::START;
    let mut seen = HashSet::new();
    let mut last_version: HashMap<String, u64> = HashMap::new();
    while seen.len() < total {
        assert!(
            Instant::now() < deadline,
            "reader saw {} of {total} events before the deadline",
            seen.len()
        );
        let page = store.read_after(cursor, 16).await.expect("read_after");
        if page.is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        }
        for (next, e) in page {
            assert!(next > cursor, "cursors only move forward");
            cursor = next;
            assert!(seen.insert(e.event_id), "event {} seen twice", e.event_id);
            let last = last_version.entry(e.stream_id.clone()).or_insert(0);
            assert_eq!(
                e.stream_version,
                *last + 1,
                "stream {} out of order",
                e.stream_id
            );
            *last = e.stream_version;
        }
    }
    while let Some(joined) = writers.join_next().await {
        joined.expect("writer task");
    }
    assert!(
        store.read_after(cursor, 16).await.expect("read").is_empty(),
        "nothing left over"
    );
    assert_eq!(last_version.len() as u64, WRITERS);
    assert!(last_version.values().all(|&v| v == EVENTS));
    println!("gap test: read_after saw {}/{total} events", seen.len());
}
