//! Filtered reads over every store: a read through an `EventFilter` returns exactly the
//! matching events of the unfiltered log, in the same order, and its `through` cursor moves
//! past what it examined (without passing an event of a transaction still open); a
//! projection's runner fetches only its sources' events and ends at the head.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cqrs_runtime::projection::{EventMeta, InMemoryReadModel, Projection, ProjectionRunner};
use cqrs_runtime::store::{
    AppendOutcome, Cursor, EventFilter, EventStore, ExpectedVersion, NewEvent, ReadBatch,
    StoreError, StoredEvent, StreamEventRef,
};
use cqrs_runtime::{Event, EventEnum, Metadata, projection};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Backend;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "pinged", version = 1)]
pub struct Pinged {
    pub n: u64,
}

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum PingEvent {
    Pinged(Pinged),
}

/// The pings per stream (count, sum).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Pings {
    by_stream: BTreeMap<String, (u64, u64)>,
}

#[projection(name = "conformance_pings", events = PingEvent)]
impl Pings {
    #[on]
    fn pinged(&mut self, e: &Pinged, meta: &EventMeta<'_>) {
        let entry = self.by_stream.entry(meta.stream_id.to_owned()).or_default();
        entry.0 += 1;
        entry.1 += e.n;
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

fn noise(n: u64) -> NewEvent {
    NewEvent::new(
        "noise_made",
        1,
        format!(r#"{{"n":{n}}}"#).into_bytes(),
        Metadata::new(),
    )
}

async fn append<S: EventStore>(store: &S, stream_type: &str, id: &str, event: NewEvent) {
    store
        .append(stream_type, id, ExpectedVersion::Any, vec![event])
        .await
        .expect("append");
}

/// Every event of `store`, unfiltered.
async fn everything<S: EventStore>(store: &S) -> Vec<(Cursor, StoredEvent)> {
    store
        .read_after(Cursor::START, 100_000)
        .await
        .expect("read")
}

/// Waits until the log shows `n` events (PostgreSQL holds committed events back while an
/// older transaction anywhere in the server is open), bounded.
async fn settle<S: EventStore>(store: &S, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while everything(store).await.len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the log never showed {n} events"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ids(events: &[(Cursor, StoredEvent)]) -> Vec<(Cursor, Uuid)> {
    events.iter().map(|(c, e)| (*c, e.event_id)).collect()
}

/// Pages through the log with `filter`, `limit` at a time, until a read returns nothing.
async fn page<S: EventStore>(store: &S, filter: &EventFilter, limit: usize) -> ReadBatch {
    let mut all = ReadBatch::default();
    for _ in 0..10_000 {
        let read = store
            .read_filtered(all.through, limit, filter)
            .await
            .expect("filtered read");
        assert!(read.events.len() <= limit);
        assert!(read.through >= all.through, "through never goes back");
        if let Some((last, _)) = read.events.last() {
            assert!(read.through >= *last, "through is at or after every event");
        }
        if read.events.len() == limit {
            let last = read.events.last().map(|(c, _)| *c);
            assert_eq!(
                Some(read.through),
                last,
                "a full batch ends at its last event"
            );
        }
        let done = read.events.is_empty();
        all.events.extend(read.events);
        all.through = read.through;
        if done {
            return all;
        }
    }
    panic!("paging did not end");
}

pub async fn filtered_reads_return_the_matching_events<B: Backend>(b: &Arc<B>) {
    let store = b.events();
    // Pings in `ping` streams, noise in `noise` streams, a ping in a noise stream (matches by
    // name) and a stranger in a ping stream (matches by stream type).
    for i in 0..40u64 {
        if i % 5 == 0 {
            append(&store, "ping", &format!("p-{}", i % 3), ping(i)).await;
        } else {
            append(&store, "noise", &format!("n-{}", i % 4), noise(i)).await;
        }
    }
    append(&store, "noise", "n-0", ping(100)).await;
    append(&store, "ping", "p-0", noise(101)).await;
    for i in 0..5u64 {
        append(&store, "noise", "n-1", noise(200 + i)).await;
    }
    settle(&store, 47).await;
    let all = everything(&store).await;
    let head = store.head().await.expect("head");
    let subset = |keep: &dyn Fn(&StoredEvent) -> bool| -> Vec<(Cursor, Uuid)> {
        ids(&all
            .iter()
            .filter(|(_, e)| keep(e))
            .cloned()
            .collect::<Vec<_>>())
    };

    let by_type = EventFilter::new().with_stream_type("ping");
    let by_name = EventFilter::new().with_event_type("pinged");
    let both = by_type.clone().union(&by_name);
    let cases: [(&EventFilter, Vec<(Cursor, Uuid)>); 3] = [
        (&by_type, subset(&|e| e.stream_type == "ping")),
        (&by_name, subset(&|e| e.event_type == "pinged")),
        (
            &both,
            subset(&|e| e.stream_type == "ping" || e.event_type == "pinged"),
        ),
    ];
    for (filter, expected) in cases {
        assert!(!expected.is_empty());
        let read = store
            .read_filtered(Cursor::START, 1000, filter)
            .await
            .expect("filtered read");
        assert_eq!(ids(&read.events), expected, "{filter:?}");
        assert_eq!(
            read.through.position, head.position,
            "a short read examined the log to its head"
        );
        for limit in [1, 2, 3, 1000] {
            let paged = page(&store, filter, limit).await;
            assert_eq!(ids(&paged.events), expected, "{filter:?} by {limit}");
            assert_eq!(paged.through.position, head.position);
        }
        // The same payloads and metadata as the unfiltered read.
        for (cursor, event) in &read.events {
            let (_, same) = all.iter().find(|(c, _)| c == cursor).expect("in the log");
            assert_eq!(event.event_id, same.event_id);
            assert!(super::same_json(&event.payload, &same.payload));
            assert_eq!(event.metadata, same.metadata);
        }
    }

    // The tail is noise: a read after the last ping moves through to the head anyway.
    let last_ping = ids(&all)
        .into_iter()
        .zip(&all)
        .filter(|(_, (_, e))| e.stream_type == "ping")
        .map(|((c, _), _)| c)
        .next_back()
        .expect("a ping");
    let tail = store
        .read_filtered(last_ping, 10, &by_type)
        .await
        .expect("read");
    assert!(tail.events.is_empty());
    assert_eq!(tail.through.position, head.position);

    // Nothing matches: no events, and through at the head (never before where it started).
    let none = EventFilter::new().with_stream_type("nobody");
    let read = store
        .read_filtered(Cursor::START, 10, &none)
        .await
        .expect("read");
    assert!(read.events.is_empty());
    assert_eq!(read.through.position, head.position);
    let at_head = store
        .read_filtered(read.through, 10, &EventFilter::new())
        .await
        .expect("read");
    assert!(at_head.events.is_empty());
    assert_eq!(at_head.through, read.through);
}

/// A filtered reader that resumes after each `through` sees every matching event once, even
/// while a writer's transaction that took an earlier position is still open (PostgreSQL).
pub async fn filtered_reads_do_not_pass_open_transactions<B: Backend>(b: &Arc<B>) {
    let store = b.events();
    append(&store, "ping", "p-0", ping(0)).await;
    append(&store, "noise", "n-0", noise(1)).await;
    let held = {
        let b = Arc::clone(b);
        tokio::spawn(async move {
            b.append_held_open("ping", "p-held", 1, ping(2), Duration::from_millis(1500))
                .await;
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    append(&store, "ping", "p-1", ping(3)).await;
    append(&store, "noise", "n-0", noise(4)).await;

    let filter = EventFilter::new().with_event_type("pinged");
    let mut seen: Vec<(Cursor, StoredEvent)> = Vec::new();
    let mut through = Cursor::START;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen.len() < 3 && tokio::time::Instant::now() < deadline {
        let read = store
            .read_filtered(through, 2, &filter)
            .await
            .expect("read");
        assert!(read.through >= through);
        through = read.through;
        seen.extend(read.events);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    held.await.expect("held append");
    let read = store
        .read_filtered(through, 10, &filter)
        .await
        .expect("read");
    seen.extend(read.events);
    let ns: HashSet<u64> = seen
        .iter()
        .map(|(_, e)| {
            serde_json::from_slice::<Pinged>(&e.payload)
                .expect("ping")
                .n
        })
        .collect();
    assert_eq!(seen.len(), 3, "every ping once: {:?}", ids(&seen));
    assert_eq!(ns, HashSet::from([0, 2, 3]));
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "in commit order");
}

/// A store that counts the event rows its reads return.
#[derive(Clone)]
struct Counting<S> {
    inner: S,
    fetched: Arc<AtomicU64>,
}

impl<S: EventStore> EventStore for Counting<S> {
    fn append(
        &self,
        stream_type: &str,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<AppendOutcome, StoreError>> + Send {
        self.inner.append(stream_type, stream_id, expected, events)
    }

    fn read_stream(
        &self,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send {
        self.inner.read_stream(stream_type, stream_id, from_version)
    }

    fn replay_stream<F>(
        &self,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
        visit: F,
    ) -> impl Future<Output = Result<(), StoreError>> + Send
    where
        F: FnMut(StreamEventRef<'_>) -> bool + Send,
    {
        self.inner
            .replay_stream(stream_type, stream_id, from_version, visit)
    }

    async fn read_after(
        &self,
        after: Cursor,
        limit: usize,
    ) -> Result<Vec<(Cursor, StoredEvent)>, StoreError> {
        let events = self.inner.read_after(after, limit).await?;
        self.fetched
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        Ok(events)
    }

    async fn read_filtered(
        &self,
        after: Cursor,
        limit: usize,
        filter: &EventFilter,
    ) -> Result<ReadBatch, StoreError> {
        let read = self.inner.read_filtered(after, limit, filter).await?;
        self.fetched
            .fetch_add(read.events.len() as u64, Ordering::Relaxed);
        Ok(read)
    }

    fn head(&self) -> impl Future<Output = Result<Cursor, StoreError>> + Send {
        self.inner.head()
    }

    fn read_event(
        &self,
        event_id: Uuid,
    ) -> impl Future<Output = Result<Option<StoredEvent>, StoreError>> + Send {
        self.inner.read_event(event_id)
    }
}

/// A projection over a log whose events are 10% its own reads only those, builds the model
/// the unfiltered read builds, and leaves its checkpoint at the head.
pub async fn a_projection_reads_only_its_events<B: Backend>(b: &Arc<B>) {
    let fetched = Arc::new(AtomicU64::new(0));
    let store = Counting {
        inner: b.events(),
        fetched: Arc::clone(&fetched),
    };
    let total = 300u64;
    let mut relevant = 0;
    for i in 0..total {
        if i % 10 == 3 {
            relevant += 1;
            append(&store, "ping", &format!("p-{}", i % 7), ping(i)).await;
        } else {
            append(&store, "noise", &format!("n-{}", i % 11), noise(i)).await;
        }
    }
    assert_eq!(
        <Pings as Projection>::filter(),
        Some(EventFilter::new().with_event_type("pinged")),
        "the projection's filter names its source's events"
    );
    settle(&store, total as usize).await;
    let head = store.head().await.expect("head");

    let filtered = InMemoryReadModel::<Pings>::new();
    let runner = ProjectionRunner::new(store.clone(), filtered.clone())
        .with_leases(b.leases())
        .batch_size(7);
    assert!(runner.filter().is_some());
    fetched.store(0, Ordering::Relaxed);
    let processed = runner.catch_up().await.expect("filtered catch-up");
    assert_eq!(processed, relevant);
    assert_eq!(
        fetched.load(Ordering::Relaxed),
        relevant,
        "only the projection's events were fetched"
    );
    let checkpoint = filtered.stored_checkpoint().expect("checkpoint");
    assert_eq!(checkpoint.cursor.position, head.position, "at the head");
    assert_eq!(runner.handle().lag().behind, 0);

    let unfiltered = InMemoryReadModel::<Pings>::new();
    let plain = ProjectionRunner::new(store.clone(), unfiltered.clone())
        .with_leases(b.leases())
        .batch_size(7)
        .unfiltered();
    fetched.store(0, Ordering::Relaxed);
    plain.catch_up().await.expect("unfiltered catch-up");
    assert_eq!(fetched.load(Ordering::Relaxed), total);
    assert_eq!(filtered.snapshot(), unfiltered.snapshot());
    assert_eq!(
        filtered.read(|p| p.by_stream.values().map(|v| v.0).sum::<u64>()),
        relevant
    );

    // Only noise since: the next catch-up fetches nothing and still moves to the head.
    for i in 0..25u64 {
        append(&store, "noise", "n-0", noise(1000 + i)).await;
    }
    settle(&store, total as usize + 25).await;
    let head = store.head().await.expect("head");
    fetched.store(0, Ordering::Relaxed);
    assert_eq!(runner.catch_up().await.expect("catch-up"), 0);
    assert_eq!(fetched.load(Ordering::Relaxed), 0);
    let checkpoint = filtered.stored_checkpoint().expect("checkpoint");
    assert_eq!(checkpoint.cursor.position, head.position);
    assert_eq!(runner.handle().lag().behind, 0);
}
