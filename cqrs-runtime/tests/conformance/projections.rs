//! Projections over every store: the runner reads the store's commit order, a live runner and a
//! rebuild agree, an old-version event reaches the handler upcast, and one runner at a time
//! holds a projection across handles (connections / processes).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cqrs_runtime::projection::{
    EventMeta, InMemoryReadModel, ProjectionRunner, ReadModel, RunError, RunState,
};
use cqrs_runtime::store::{EventStore, ExpectedVersion, Lease, LeaseStore, NewEvent};
use cqrs_runtime::{Event, EventEnum, Metadata, projection};
use serde::{Deserialize, Serialize};

use super::Backend;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "tally_added", version = 1)]
pub struct AddedV1 {
    pub n: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "tally_added", version = 2, upcast_from = AddedV1)]
pub struct Added {
    pub amount: u64,
}

impl From<AddedV1> for Added {
    fn from(v1: AddedV1) -> Self {
        Added { amount: v1.n }
    }
}

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum TallyEvent {
    Added(Added),
}

/// The sum and count per stream.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Tallies {
    by_stream: BTreeMap<String, (u64, u64)>,
}

#[projection(name = "conformance_tallies", events = TallyEvent)]
impl Tallies {
    #[on]
    fn added(&mut self, e: &Added, meta: &EventMeta<'_>) {
        let entry = self.by_stream.entry(meta.stream_id.to_owned()).or_default();
        entry.0 += e.amount;
        entry.1 += 1;
    }
}

fn added(version: u32, n: u64) -> NewEvent {
    let payload = match version {
        1 => format!(r#"{{"n":{n}}}"#),
        _ => format!(r#"{{"amount":{n}}}"#),
    };
    NewEvent::new(
        "tally_added",
        version,
        payload.into_bytes(),
        Metadata::new(),
    )
}

/// 4 writers × 25 events, alternating old and new versions, appended concurrently.
async fn write_history<S: EventStore + Clone>(store: &S) -> BTreeMap<String, (u64, u64)> {
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..25u64 {
                let event = added(if i % 2 == 0 { 1 } else { 2 }, i);
                let expected = ExpectedVersion::from_version(i);
                store
                    .append("tally", &format!("t-{w}"), expected, vec![event])
                    .await
                    .expect("append");
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    (0..4)
        .map(|w| (format!("t-{w}"), ((0..25).sum(), 25)))
        .collect()
}

pub async fn projection_live_and_rebuild_agree<B: Backend>(b: &Arc<B>) {
    let store = b.events();
    let expected = write_history(&store).await;
    let head = store.head().await.expect("head").position;

    let live = InMemoryReadModel::<Tallies>::new();
    let running = ProjectionRunner::new(store.clone(), live.clone())
        .with_leases(b.leases())
        .batch_size(7)
        .poll_interval(Duration::from_millis(5), Duration::from_millis(50))
        .spawn();
    // PostgreSQL may hold a committed event back while an older transaction is open: bound the
    // wait, as a reader would.
    running
        .wait_for(head, super::VISIBLE_WITHIN)
        .await
        .expect("live runner reaches the head");
    running.stop().await.expect("stop");
    assert_eq!(live.read(|t| t.by_stream.clone()), expected);

    let rebuilt = InMemoryReadModel::<Tallies>::new();
    let runner = ProjectionRunner::new(store, rebuilt.clone()).with_leases(b.leases());
    runner.rebuild().await.expect("rebuild");
    assert_eq!(rebuilt.read(|t| t.by_stream.clone()), expected);
}

pub async fn one_projection_runner_at_a_time<B: Backend>(b: &Arc<B>) {
    let store = b.events();
    write_history(&store).await;
    let head = store.head().await.expect("head").position;
    let first = ProjectionRunner::new(store.clone(), InMemoryReadModel::<Tallies>::new())
        .with_leases(b.leases())
        .poll_interval(Duration::from_millis(5), Duration::from_millis(20))
        .spawn();
    first
        .wait_for(head, super::VISIBLE_WITHIN)
        .await
        .expect("the first runner is live");
    // A second runner on another handle (another connection, as another process would have).
    let second = ProjectionRunner::new(store.clone(), InMemoryReadModel::<Tallies>::new())
        .with_leases(b.other_leases().await);
    let refused = second.catch_up().await;
    assert!(
        matches!(refused, Err(RunError::AlreadyRunning { .. })),
        "a second runner of the same projection was not refused: {refused:?}"
    );
    first.stop().await.expect("stop");
    // The lease is free once the first runner stopped: the second one takes over.
    let mut took_over = false;
    for _ in 0..200 {
        if second.catch_up().await.is_ok() {
            took_over = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        took_over,
        "the second runner did not take over after the first stopped"
    );
}

/// A lease taken from its holder without telling it: the holder's [`Lease::check`] says so,
/// another handle takes the lease, and a runner that held it commits nothing once the new
/// holder claimed the checkpoint (it stops superseded).
pub async fn a_lost_lease_is_seen_and_its_holder_writes_nothing<B: Backend>(b: &Arc<B>) {
    // The lease alone.
    let lease = b
        .leases()
        .try_acquire("lost-x")
        .await
        .expect("try_acquire")
        .expect("a free lease is granted");
    assert!(lease.check().await.expect("check"), "a held lease checks");
    b.lose_lease("lost-x").await;
    let checked = tokio::time::timeout(Duration::from_secs(5), lease.check()).await;
    assert!(
        !matches!(checked, Ok(Ok(true))),
        "a lost lease still checks as held"
    );
    let theirs = b.other_leases().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while theirs.try_acquire("lost-x").await.expect("try").is_none() {
        assert!(Instant::now() < deadline, "the lost lease is not free");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A runner.
    let store = b.events();
    write_history(&store).await;
    let head = store.head().await.expect("head").position;
    let model = InMemoryReadModel::<Tallies>::new();
    let victim = ProjectionRunner::new(store.clone(), model.clone())
        .with_leases(b.leases())
        .poll_interval(Duration::from_millis(5), Duration::from_millis(20))
        .spawn();
    victim
        .wait_for(head, super::VISIBLE_WITHIN)
        .await
        .expect("the first runner is live");
    b.lose_lease("conformance_tallies").await;
    let taker = ProjectionRunner::new(store.clone(), model.clone())
        .with_leases(b.other_leases().await)
        .poll_interval(Duration::from_millis(5), Duration::from_millis(20))
        .standby()
        .spawn();
    let deadline = Instant::now() + super::VISIBLE_WITHIN;
    while taker.handle().state() != RunState::Live {
        assert!(
            Instant::now() < deadline,
            "the second runner never took over"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let fence = |model: &InMemoryReadModel<Tallies>| {
        let model = model.clone();
        async move {
            ReadModel::checkpoint(&model)
                .await
                .expect("checkpoint")
                .map_or(0, |c| c.fence)
        }
    };
    let taken = fence(&model).await;
    for i in 0..10u64 {
        store
            .append(
                "tally",
                "t-late",
                ExpectedVersion::from_version(i),
                vec![added(2, i)],
            )
            .await
            .expect("append");
    }
    let ended = tokio::time::timeout(Duration::from_secs(30), victim.join())
        .await
        .expect("the runner that lost its lease is still running");
    assert!(
        matches!(ended, Err(RunError::Superseded { .. })),
        "the runner that lost its lease ended with {ended:?}"
    );
    let head = store.head().await.expect("head").position;
    taker
        .wait_for(head, super::VISIBLE_WITHIN)
        .await
        .expect("the new holder goes on");
    assert_eq!(fence(&model).await, taken, "the old holder claimed again");
    taker.stop().await.expect("stop");
    let late = model.read(|t| t.by_stream.get("t-late").copied());
    assert_eq!(late, Some(((0..10).sum(), 10)), "each late event once");
}
