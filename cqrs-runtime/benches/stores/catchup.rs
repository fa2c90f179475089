//! Catch-up of a projection whose events are 10% of the log: through its filter (the store
//! reads only its events) against reading everything (`Runner::unfiltered`).
//!
//! The log: [`TOTAL`] events, in commands of 100 (10 pings to a `ping` stream, then 90 noise
//! events to a `noise` stream). Each run catches a fresh in-memory model up from the start, in
//! batches of 500, and checks the model. `CQRS_BENCH_ALTERNATE=n` times the two back to back
//! `n` times and prints the medians and unfiltered/filtered; `CQRS_BENCH_ONLY=catch_up` runs
//! only this (the log is written only when it runs).

use std::time::{Duration, Instant};

use cqrs_runtime::prelude::*;
use cqrs_runtime::projection::{EventMeta, InMemoryReadModel, ProjectionRunner};
use cqrs_runtime::store::NewEvent;
use criterion::Criterion;
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

use crate::common;

/// Events in the log.
pub const TOTAL: u64 = 100_000;
/// The projection's share: 10 of every 100.
const RELEVANT_PER_100: u64 = 10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "bench_pinged", version = 1)]
pub struct Pinged {
    pub n: u64,
}

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum PingEvent {
    Pinged(Pinged),
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Pings {
    pub count: u64,
    pub sum: u64,
}

#[projection(name = "bench_pings", events = PingEvent)]
impl Pings {
    #[on]
    fn pinged(&mut self, e: &Pinged, _meta: &EventMeta<'_>) {
        self.count += 1;
        self.sum += e.n;
    }
}

fn raw(name: &'static str, n: u64) -> NewEvent {
    NewEvent::new(
        name,
        1,
        format!(r#"{{"n":{n},"note":"a payload of a few dozen bytes"}}"#).into_bytes(),
        Metadata::new(),
    )
}

/// Writes the log: `TOTAL / 100` rounds of 10 pings and 90 noise events.
pub fn fill<S: EventStore>(rt: &Runtime, store: &S) {
    rt.block_on(async {
        for round in 0..TOTAL / 100 {
            let stream = format!("s-{}", round % 100);
            let pings = (0..RELEVANT_PER_100)
                .map(|i| raw("bench_pinged", round * 100 + i))
                .collect();
            let noise = (RELEVANT_PER_100..100)
                .map(|i| raw("bench_noise", round * 100 + i))
                .collect();
            for (stream_type, events) in [("ping", pings), ("noise", noise)] {
                store
                    .append(stream_type, &stream, ExpectedVersion::Any, events)
                    .await
                    .expect("fill");
            }
        }
    });
}

/// One catch-up from the start into a fresh model, timed.
fn catch_up<S: EventStore + Clone>(rt: &Runtime, store: &S, filtered: bool) -> Duration {
    let model = InMemoryReadModel::<Pings>::new();
    let mut runner = ProjectionRunner::new(store.clone(), model.clone()).batch_size(500);
    if !filtered {
        runner = runner.unfiltered();
    }
    let start = Instant::now();
    let processed = rt.block_on(runner.catch_up()).expect("catch-up");
    let elapsed = start.elapsed();
    let expected = TOTAL / 100 * RELEVANT_PER_100;
    assert_eq!(model.read(|m| m.count), expected);
    // Unfiltered, every event is committed past (the foreign ones skipped by the projection).
    assert_eq!(processed, if filtered { expected } else { TOTAL });
    elapsed
}

/// The catch-up cells of one backend, over a store already [`fill`]ed.
pub fn benches<S: EventStore + Clone>(c: &mut Criterion, rt: &Runtime, backend: &str, store: &S) {
    let name = format!("{backend}/catch_up/{TOTAL}ev_10pct");
    if let Some(rounds) = common::alternate_rounds() {
        let (mut filtered, mut unfiltered) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            filtered.push(catch_up(rt, store, true));
            unfiltered.push(catch_up(rt, store, false));
        }
        filtered.sort();
        unfiltered.sort();
        let (f, u) = (filtered[rounds / 2], unfiltered[rounds / 2]);
        println!(
            "ALTERNATE {name} ({rounds} rounds): filtered {f:.2?}, unfiltered {u:.2?}, \
             unfiltered/filtered {:.2}",
            u.as_secs_f64() / f.as_secs_f64()
        );
        return;
    }
    let mut group = c.benchmark_group(name);
    group.bench_function("filtered", |b| {
        b.iter_custom(|n| (0..n).map(|_| catch_up(rt, store, true)).sum())
    });
    group.bench_function("unfiltered", |b| {
        b.iter_custom(|n| (0..n).map(|_| catch_up(rt, store, false)).sum())
    });
    group.finish();
}

/// Whether the catch-up cells of `backend` run (`CQRS_BENCH_ONLY`).
pub fn selected(backend: &str) -> bool {
    common::selected(&format!("{backend}/catch_up"))
}
