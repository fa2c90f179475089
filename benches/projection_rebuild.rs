//! Rebuilding a projection over 1,000 streams × 100 events, against a hand-written loop that
//! reads the same pages, decodes the same events and folds them into the same map.
//!
//! Run with `cargo bench --bench projection_rebuild`; criterion prints each variant's time per
//! rebuild and its throughput in events/s.
#![allow(missing_docs, reason = "bench fixtures")]

use std::collections::HashMap;
use std::hint::black_box;

use cqrs_runtime::memory::InMemoryLeases;
use cqrs_runtime::prelude::*;
use cqrs_runtime::projection::EventMeta;
use cqrs_runtime::store::{Cursor, NewEvent};
use criterion::{Criterion, Throughput, criterion_group};
use serde::{Deserialize, Serialize};

const STREAMS: usize = 1_000;
const EVENTS_PER_STREAM: usize = 100;
const BATCH: usize = 1_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "bench_opened", version = 1)]
pub struct Opened {
    pub owner: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "bench_deposited", version = 1)]
pub struct Deposited {
    pub amount: i64,
    pub balance_after: i64,
}

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum BenchEvent {
    Opened(Opened),
    Deposited(Deposited),
}

/// Balance per stream.
#[derive(Debug, Default)]
pub struct Balances {
    by_stream: HashMap<String, i64>,
}

#[projection(name = "bench_balances", events = BenchEvent)]
impl Balances {
    #[on]
    fn opened(&mut self, _: &Opened, meta: &EventMeta<'_>) {
        self.by_stream.insert(meta.stream_id.to_owned(), 0);
    }

    #[on]
    fn deposited(&mut self, e: &Deposited, meta: &EventMeta<'_>) {
        if let Some(balance) = self.by_stream.get_mut(meta.stream_id) {
            *balance = e.balance_after;
        }
    }
}

/// The baseline: the same pages, decoded with the enum and folded by a hand-written `match`.
async fn hand_written(store: &InMemoryEventStore) -> HashMap<String, i64> {
    let mut by_stream: HashMap<String, i64> = HashMap::new();
    let mut cursor = Cursor::START;
    loop {
        let page = store.read_after(cursor, BATCH).await.expect("read");
        let Some((last, _)) = page.last() else { break };
        cursor = *last;
        for (_, stored) in &page {
            let decoded =
                BenchEvent::decode(&stored.event_type, stored.event_version, &stored.payload)
                    .expect("decode");
            let cqrs_runtime::event::Decoded::One(event) = decoded else {
                continue;
            };
            match event {
                BenchEvent::Opened(_) => {
                    by_stream.insert(stored.stream_id.clone(), 0);
                }
                BenchEvent::Deposited(e) => {
                    if let Some(balance) = by_stream.get_mut(&stored.stream_id) {
                        *balance = e.balance_after;
                    }
                }
            }
        }
        if page.len() < BATCH {
            break;
        }
    }
    by_stream
}

fn history() -> InMemoryEventStore {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let store = InMemoryEventStore::new();
    rt.block_on(async {
        for s in 0..STREAMS {
            let mut events = Vec::with_capacity(EVENTS_PER_STREAM);
            let opened = BenchEvent::Opened(Opened {
                owner: format!("owner-{s}"),
            });
            events.push(NewEvent::from_encoded(
                opened.encode().expect("encode"),
                Metadata::new(),
            ));
            for i in 1..EVENTS_PER_STREAM as i64 {
                let deposited = BenchEvent::Deposited(Deposited {
                    amount: 10,
                    balance_after: 10 * i,
                });
                events.push(NewEvent::from_encoded(
                    deposited.encode().expect("encode"),
                    Metadata::new(),
                ));
            }
            store
                .append(
                    "bench",
                    &format!("stream-{s}"),
                    ExpectedVersion::NoStream,
                    events,
                )
                .await
                .expect("append");
        }
    });
    store
}

fn rebuild(c: &mut Criterion) {
    let store = history();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let model = InMemoryReadModel::<Balances>::new();
    let runner = ProjectionRunner::new(store.clone(), model.clone())
        .with_leases(InMemoryLeases::new())
        .batch_size(BATCH);

    // Both produce the same model.
    let expected = rt.block_on(hand_written(&store));
    rt.block_on(runner.rebuild()).expect("rebuild");
    assert_eq!(model.read(|m| m.by_stream.clone()), expected);
    assert_eq!(expected.len(), STREAMS);

    let mut group = c.benchmark_group("rebuild_1000_streams_x_100_events");
    group.throughput(Throughput::Elements((STREAMS * EVENTS_PER_STREAM) as u64));
    group.sample_size(20);
    group.bench_function("hand_written_decode_and_fold", |b| {
        b.iter(|| black_box(rt.block_on(hand_written(&store))));
    });
    group.bench_function("projection_runner_rebuild", |b| {
        b.iter(|| black_box(rt.block_on(runner.rebuild()).expect("rebuild")));
    });
    group.finish();
}

criterion_group!(benches, rebuild);
/// `CQRS_COUNT=hand_written|runner|setup` runs that path once and exits, for instruction
/// counts (callgrind) that do not depend on the machine's noise; `setup` only builds the store.
fn main() {
    if let Ok(which) = std::env::var("CQRS_COUNT") {
        let store = history();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let model = InMemoryReadModel::<Balances>::new();
        let runner = ProjectionRunner::new(store.clone(), model.clone())
            .with_leases(InMemoryLeases::new())
            .batch_size(BATCH);
        match which.as_str() {
            "hand_written" => println!("{}", rt.block_on(hand_written(&store)).len()),
            "runner" => println!("{}", rt.block_on(runner.rebuild()).expect("rebuild")),
            _ => println!("setup"),
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
