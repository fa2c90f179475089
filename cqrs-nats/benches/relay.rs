//! Relay throughput: the relay (`Relay` driven by `Runner::catch_up` from an in-memory store,
//! checkpoint in memory) against a plain `async-nats` loop that publishes the same messages
//! (the same subjects, headers and bodies, encoded before the timing) in the same batches,
//! pipelined, awaiting the same acknowledgments. Each iteration publishes every event into a
//! fresh JetStream stream (memory storage), created and deleted outside the timing.
//!
//! Rebuild throughput (group `rebuild`): one `#[projection]` into an `InMemoryReadModel`, caught
//! up by a `ProjectionRunner` from the store itself against the same runner fed by a fresh
//! durable consumer of a JetStream stream the relay filled (outside the timing).
//!
//! Needs NATS with JetStream at `NATS_URL` (default `127.0.0.1:4222`). Run with
//! `cargo bench -p cqrs-nats --bench relay`; `CQRS_EVENTS` sets the number of events (20,000
//! by default), `CQRS_BATCH` the batch size (500).
#![allow(missing_docs, reason = "bench fixtures")]

use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, message::PublishMessage};
use bytes::Bytes;
use cqrs_nats::{
    JetStreamSource, Relay, RelayConfig, SourceConfig, Storage, StreamConfig, Subjects,
    ensure_stream, envelope,
};
use cqrs_runtime::memory::{InMemoryCheckpoints, InMemoryLeases};
use cqrs_runtime::prelude::*;
use cqrs_runtime::projection::{EventMeta, InMemoryReadModel, ProjectionRunner};
use cqrs_runtime::store::{Cursor, NewEvent};
use cqrs_runtime::{Event, EventEnum, projection};
use criterion::{Criterion, Throughput, criterion_group};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// The store: `events` deposits of ~100-byte payloads over 100 streams.
async fn store(events: usize) -> InMemoryEventStore {
    let store = InMemoryEventStore::new();
    for stream in 0..100 {
        let batch: Vec<NewEvent> = (0..events / 100)
            .map(|i| {
                let payload = format!(
                    r#"{{"amount":{i},"balance_after":{},"note":"a deposit of the benchmark, {stream}"}}"#,
                    i * 2
                );
                NewEvent::new("money_deposited", 1, payload.into_bytes(), Metadata::new())
            })
            .collect();
        store
            .append(
                "account",
                &format!("acc-{stream}"),
                ExpectedVersion::NoStream,
                batch,
            )
            .await
            .expect("append");
    }
    store
}

/// The messages the relay publishes, encoded once.
async fn messages(store: &InMemoryEventStore, prefix: &str) -> Vec<(String, HeaderMap, Bytes)> {
    let subjects = Subjects::by_type(prefix);
    let events = store
        .read_after(Cursor::START, usize::MAX)
        .await
        .expect("read");
    let mut prev = Cursor::START;
    events
        .into_iter()
        .map(|(cursor, event)| {
            let (headers, body) = envelope::encode(cursor, prev, &event).expect("encode");
            prev = cursor;
            (subjects.subject(&event), headers, body)
        })
        .collect()
}

fn stream_config(prefix: &str) -> StreamConfig {
    StreamConfig::new(format!("BENCH{}", Uuid::now_v7().simple()), prefix).storage(Storage::Memory)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// JetStream at `NATS_URL`; `None` (with the reason printed) when it is unreachable.
fn connect(runtime: &tokio::runtime::Runtime, bench: &str) -> Option<jetstream::Context> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "127.0.0.1:4222".to_owned());
    match runtime.block_on(async_nats::connect(&url)) {
        Ok(client) => Some(jetstream::new(client)),
        Err(error) => {
            eprintln!("skipping the {bench} bench: NATS is unreachable at {url}: {error}");
            None
        }
    }
}

/// Publishes `store` with the relay into a fresh stream: the stream's name, how many events
/// were published, and how long the relay's catch-up took.
async fn publish(
    js: &jetstream::Context,
    store: &InMemoryEventStore,
    prefix: &str,
    batch: usize,
) -> (String, u64, Duration) {
    let config = stream_config(prefix);
    let name = config.name.clone();
    let relay = Relay::start(
        js.clone(),
        InMemoryCheckpoints::new(),
        RelayConfig::new(&name, prefix).stream(config),
    )
    .await
    .expect("relay")
    .runner(store.clone())
    .with_leases(InMemoryLeases::new())
    .batch_size(batch);
    let start = Instant::now();
    let published = relay.catch_up().await.expect("publish");
    (name, published, start.elapsed())
}

fn relay(c: &mut Criterion) {
    let (events, batch) = (env("CQRS_EVENTS", 20_000), env("CQRS_BATCH", 500));
    let runtime = runtime();
    // The JetStream context spawns its acknowledgment task on the runtime.
    let _runtime = runtime.enter();
    let Some(js) = connect(&runtime, "relay") else {
        return;
    };
    let prefix = "benchrelay";
    let store = runtime.block_on(store(events));
    let messages = runtime.block_on(messages(&store, prefix));
    assert_eq!(messages.len(), events / 100 * 100);

    let mut group = c.benchmark_group("relay");
    group.throughput(Throughput::Elements(messages.len() as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));

    group.bench_function("plain_async_nats", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let config = stream_config(prefix);
                    ensure_stream(&js, &config).await.expect("stream");
                    let start = Instant::now();
                    for chunk in messages.chunks(batch) {
                        let mut acks = Vec::with_capacity(chunk.len());
                        for (subject, headers, body) in chunk {
                            let publish = PublishMessage::build()
                                .headers(headers.clone())
                                .payload(body.clone());
                            acks.push(
                                js.send_publish(subject.clone(), publish)
                                    .await
                                    .expect("send"),
                            );
                        }
                        for ack in acks {
                            ack.await.expect("ack");
                        }
                    }
                    total += start.elapsed();
                    js.delete_stream(&config.name).await.expect("delete");
                }
                total
            })
        });
    });

    group.bench_function("relay", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (name, published, took) = publish(&js, &store, prefix, batch).await;
                    total += took;
                    assert_eq!(published, messages.len() as u64);
                    js.delete_stream(&name).await.expect("delete");
                }
                total
            })
        });
    });
    group.finish();
}

/// The stored deposits, as the projection reads them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "money_deposited", version = 1)]
pub struct MoneyDeposited {
    pub amount: i64,
    pub balance_after: i64,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum AccountEvent {
    Deposited(MoneyDeposited),
}

/// Per account: the number of deposits and the last balance.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Balances {
    pub accounts: std::collections::HashMap<String, (u64, i64)>,
}

#[projection(name = "bench_balances", events = AccountEvent)]
impl Balances {
    #[on]
    fn deposited(&mut self, e: &MoneyDeposited, meta: &EventMeta<'_>) {
        let row = self.accounts.entry(meta.stream_id.to_owned()).or_default();
        row.0 += 1;
        row.1 = e.balance_after;
    }
}

fn rebuild(c: &mut Criterion) {
    let (events, batch) = (env("CQRS_EVENTS", 20_000), env("CQRS_BATCH", 500));
    let runtime = runtime();
    let _runtime = runtime.enter();
    let Some(js) = connect(&runtime, "rebuild") else {
        return;
    };
    let prefix = "benchrebuild";
    let store = runtime.block_on(store(events));
    let total = (events / 100 * 100) as u64;
    // The stream, filled once by the relay.
    let (name, published, _) = runtime.block_on(publish(&js, &store, prefix, batch));
    assert_eq!(published, total);

    let mut group = c.benchmark_group("rebuild");
    group.throughput(Throughput::Elements(total));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));

    group.bench_function("store_fed", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    let model = InMemoryReadModel::<Balances>::new();
                    let runner = ProjectionRunner::new(store.clone(), model.clone())
                        .with_leases(InMemoryLeases::new())
                        .batch_size(batch);
                    let start = Instant::now();
                    assert_eq!(runner.catch_up().await.expect("catch up"), total);
                    elapsed += start.elapsed();
                    assert_eq!(model.read(|m| m.accounts.len()), 100);
                }
                elapsed
            })
        });
    });

    group.bench_function("consumer_fed", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    let durable = format!("bench{}", Uuid::now_v7().simple());
                    let model = InMemoryReadModel::<Balances>::new();
                    let source = JetStreamSource::connect(&js, &name, SourceConfig::new(&durable))
                        .await
                        .expect("consumer");
                    let runner = ProjectionRunner::new(source, model.clone())
                        .with_leases(InMemoryLeases::new())
                        .batch_size(batch);
                    let start = Instant::now();
                    assert_eq!(runner.catch_up().await.expect("catch up"), total);
                    elapsed += start.elapsed();
                    assert_eq!(model.read(|m| m.accounts.len()), 100);
                    JetStreamSource::delete_consumer(&js, &name, &durable)
                        .await
                        .expect("delete the consumer");
                }
                elapsed
            })
        });
    });
    group.finish();
    runtime
        .block_on(js.delete_stream(&name))
        .expect("delete the stream");
}

criterion_group!(benches, relay, rebuild);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
