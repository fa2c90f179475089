//! A reactor over 1,000 order streams × 100 `OrderPlaced` events (100,000 events), each event
//! turned into one `OpenInvoice` command on another aggregate: the `#[reactor]` run by
//! `processing::Runner::catch_up`, against a hand-written loop that reads the same pages with
//! `EventStore::read_after`, decodes the same events, derives the same command ids and runs the
//! same commands with `Repository::execute_once`. Both leave the same events in the store (the
//! same derived event ids): the bench checks it before it measures.
//!
//! Run with `cargo bench --bench reactions`; `CQRS_EVENTS=10000` for a quick run. Each
//! iteration starts from a fresh store (built outside the timing).
#![allow(missing_docs, reason = "bench fixtures")]

use std::hint::black_box;

use cqrs_runtime::event::{DecodeError, Decoded};
use cqrs_runtime::memory::{InMemoryCheckpoints, InMemoryLeases};
use cqrs_runtime::prelude::*;
use cqrs_runtime::processing::Runner;
use cqrs_runtime::processing::reaction::reactor;
use cqrs_runtime::store::{Cursor, NewEvent};
use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const STREAMS: usize = 1_000;
const BATCH: usize = 1_000;
const NAME: &str = "bench_invoicing";
/// The namespace the runtime derives reaction identities under
/// (`cqrs-runtime/src/processing/reaction/context.rs`).
const NAMESPACE: Uuid = Uuid::from_u128(0x5d0c_7a1e_9b3f_4c2a_8e61_0f4d_2b7c_9a13);

/// The number of source events: `CQRS_EVENTS`, 100,000 by default.
fn events() -> usize {
    std::env::var("CQRS_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "bench_order_placed", version = 1)]
pub struct OrderPlaced {
    pub order: String,
    pub line: u32,
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum OrderEvent {
    Placed(OrderPlaced),
}

#[derive(Debug, Clone, PartialEq, Command)]
#[command(aggregate = Invoice)]
pub struct OpenInvoice {
    #[id]
    pub invoice: String,
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "bench_invoice_opened", version = 1)]
pub struct InvoiceOpened {
    pub invoice: String,
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum InvoiceEvent {
    Opened(InvoiceOpened),
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvoiceError {
    #[error("a negative amount")]
    Negative,
}

#[derive(Debug, Default)]
pub struct Invoice {
    pub amount: i64,
}

#[aggregate(name = "bench_invoice", id = String, events = InvoiceEvent, error = InvoiceError)]
impl Invoice {
    #[command(create)]
    fn open(&self, cmd: OpenInvoice) -> Result<InvoiceOpened, InvoiceError> {
        if cmd.amount < 0 {
            return Err(InvoiceError::Negative);
        }
        Ok(InvoiceOpened {
            invoice: cmd.invoice,
            amount: cmd.amount,
        })
    }

    #[apply]
    fn opened(&mut self, e: &InvoiceOpened) {
        self.amount = e.amount;
    }
}

#[derive(CommandBus)]
pub struct Billing<S: EventStore> {
    pub invoices: Repository<Invoice, S>,
}

/// Opens one invoice per order line.
#[derive(Debug, Default)]
pub struct Invoicing;

#[reactor(name = "bench_invoicing", events = OrderEvent)]
impl<S: EventStore> Invoicing {
    #[on]
    async fn placed(
        &self,
        e: &OrderPlaced,
        ctx: &mut ReactionContext<'_, Billing<S>>,
    ) -> Result<(), ReactionError> {
        ctx.send(OpenInvoice {
            invoice: invoice_id(e),
            amount: e.amount,
        })
        .await?;
        Ok(())
    }
}

fn invoice_id(e: &OrderPlaced) -> String {
    format!("{}-{}", e.order, e.line)
}

/// The id of the first command a reaction sends for the event `cause` (the runtime's
/// derivation: reaction name, 0, cause id, "command", index).
fn command_id(cause: Uuid) -> Uuid {
    let what = "command";
    let mut name = Vec::with_capacity(NAME.len() + what.len() + 24);
    name.extend_from_slice(NAME.as_bytes());
    name.push(0);
    name.extend_from_slice(cause.as_bytes());
    name.extend_from_slice(what.as_bytes());
    name.extend_from_slice(&0u32.to_le_bytes());
    Uuid::new_v5(&NAMESPACE, &name)
}

/// The baseline: the same pages, decoded with the enum, one `execute_once` per event with the
/// metadata the reaction context gives. Returns the number of commands run.
async fn hand_written(store: &InMemoryEventStore) -> u64 {
    let invoices: Repository<Invoice, _> = Repository::new(store.clone());
    let mut sent = 0;
    let mut cursor = Cursor::START;
    loop {
        let page = store.read_after(cursor, BATCH).await.expect("read");
        let Some((last, _)) = page.last() else { break };
        cursor = *last;
        for (_, stored) in &page {
            let decoded =
                match OrderEvent::decode(&stored.event_type, stored.event_version, &stored.payload)
                {
                    Err(DecodeError::UnknownEventType { .. }) => continue,
                    other => other.expect("decode"),
                };
            let Decoded::One(OrderEvent::Placed(e)) = decoded else {
                continue;
            };
            let metadata = CommandMetadata {
                command_id: command_id(stored.event_id),
                correlation_id: Some(stored.metadata.correlation_id),
                causation_id: Some(stored.event_id),
                user: stored.metadata.user.clone(),
                trace: stored.metadata.trace,
            };
            let command = OpenInvoice {
                invoice: invoice_id(&e),
                amount: e.amount,
            };
            invoices
                .execute_once(command, metadata)
                .await
                .expect("execute");
            sent += 1;
        }
        if page.len() < BATCH {
            break;
        }
    }
    sent
}

/// The generated reactor, caught up by a runner from the start of the log.
async fn generated(store: &InMemoryEventStore) -> u64 {
    let bus = Billing {
        invoices: Repository::new(store.clone()),
    };
    let runner = Runner::new(
        store.clone(),
        reactor(Invoicing, bus, InMemoryCheckpoints::new()),
    )
    .with_leases(InMemoryLeases::new())
    .batch_size(BATCH);
    runner.catch_up().await.expect("catch up")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
}

/// `n` events over [`STREAMS`] order streams, with fixed event ids (so that two stores derive
/// the same command and event ids).
fn history(rt: &tokio::runtime::Runtime, n: usize) -> InMemoryEventStore {
    let store = InMemoryEventStore::new();
    let per_stream = n.div_ceil(STREAMS);
    rt.block_on(async {
        let mut next = 0u128;
        for s in 0..STREAMS {
            let mut events = Vec::with_capacity(per_stream);
            for line in 0..per_stream {
                if next as usize == n {
                    break;
                }
                let placed = OrderEvent::Placed(OrderPlaced {
                    order: format!("order-{s}"),
                    line: line as u32,
                    amount: 100 + line as i64,
                });
                next += 1;
                events.push(
                    NewEvent::from_encoded(placed.encode().expect("encode"), Metadata::new())
                        .with_id(Uuid::from_u128(next)),
                );
            }
            if events.is_empty() {
                break;
            }
            store
                .append(
                    "bench_order",
                    &format!("order-{s}"),
                    ExpectedVersion::NoStream,
                    events,
                )
                .await
                .expect("append");
        }
    });
    store
}

/// The invoice events of `store`: (stream id, event id), in log order.
fn invoices(rt: &tokio::runtime::Runtime, store: &InMemoryEventStore) -> Vec<(String, Uuid)> {
    rt.block_on(async {
        let mut out = Vec::new();
        let mut cursor = Cursor::START;
        loop {
            let page = store.read_after(cursor, 10_000).await.expect("read");
            let Some((last, _)) = page.last() else { break };
            cursor = *last;
            out.extend(
                page.iter()
                    .filter(|(_, e)| e.stream_type == "bench_invoice")
                    .map(|(_, e)| (e.stream_id.clone(), e.event_id)),
            );
        }
        out
    })
}

fn react(c: &mut Criterion) {
    let n = events();
    let rt = runtime();

    // Both leave the same invoices, with the same derived event ids.
    let by_hand = history(&rt, n);
    assert_eq!(rt.block_on(hand_written(&by_hand)), n as u64);
    let by_runner = history(&rt, n);
    assert!(rt.block_on(generated(&by_runner)) >= n as u64);
    let expected = invoices(&rt, &by_hand);
    assert_eq!(expected.len(), n);
    assert_eq!(invoices(&rt, &by_runner), expected);
    let head = |s: &InMemoryEventStore| rt.block_on(s.head()).expect("head").position;
    assert_eq!(head(&by_hand), 2 * n as u64);
    assert_eq!(head(&by_runner), 2 * n as u64);

    let mut group = c.benchmark_group(format!("react_{n}_events"));
    group.throughput(Throughput::Elements(n as u64));
    group.sample_size(10);
    group.bench_function("hand_written_execute_once", |b| {
        b.iter_batched(
            || history(&rt, n),
            |store| black_box(rt.block_on(hand_written(&store))),
            BatchSize::PerIteration,
        );
    });
    group.bench_function("reactor_runner_catch_up", |b| {
        b.iter_batched(
            || history(&rt, n),
            |store| black_box(rt.block_on(generated(&store))),
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, react);
/// `CQRS_COUNT=hand_written|reactor|setup` runs that path once over `CQRS_EVENTS` events and
/// exits, for instruction counts (callgrind); `setup` only builds the store.
fn main() {
    if let Ok(which) = std::env::var("CQRS_COUNT") {
        let rt = runtime();
        let store = history(&rt, events());
        match which.as_str() {
            "hand_written" => println!("{}", rt.block_on(hand_written(&store))),
            "reactor" => println!("{}", rt.block_on(generated(&store))),
            _ => println!("setup"),
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
