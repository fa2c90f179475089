//! Rehydrating one aggregate from 10,000 and 100,000 stored JSON events, half of them an old
//! version that needs one upcast: the generated decoder and `apply` dispatch against a
//! hand-written `match` on (name, version) with `serde_json::from_slice` and `From`, in the same
//! run. Run with `cargo bench --bench rehydrate`.

use std::hint::black_box;

use chrono::Utc;
use cqrs_runtime::prelude::*;
use cqrs_runtime::store::StoredEvent;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "bench_opened", version = 1)]
pub struct Opened {
    pub owner: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "bench_deposited", version = 1)]
pub struct DepositedV1 {
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "bench_deposited", version = 2, upcast_from = DepositedV1)]
pub struct Deposited {
    pub amount: i64,
    pub currency: String,
}

impl From<DepositedV1> for Deposited {
    fn from(v1: DepositedV1) -> Self {
        Deposited {
            amount: v1.amount,
            currency: "EUR".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum AccountEvent {
    Opened(Opened),
    Deposited(Deposited),
}

#[derive(Debug, Clone, Command)]
#[command(aggregate = Account)]
pub struct Open {
    #[id]
    pub id: String,
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
pub struct Never;

#[derive(Debug, Default)]
pub struct Account {
    owner: String,
    balance: i64,
    deposits: u64,
}

#[aggregate(name = "account", id = String, events = AccountEvent, error = Never)]
impl Account {
    #[command(create)]
    fn open(&self, cmd: Open) -> Result<Opened, Never> {
        Ok(Opened { owner: cmd.id })
    }
    #[apply]
    fn opened(&mut self, e: &Opened) {
        self.owner.clone_from(&e.owner);
    }
    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
        self.deposits += 1;
    }
}

/// The hand-written floor: the same structs, a plain enum, a `match` on (name, version).
mod hand {
    use super::{Account, Deposited, DepositedV1, Opened};

    pub enum Event {
        Opened(Opened),
        Deposited(Deposited),
    }

    pub fn decode(name: &str, version: u32, payload: &[u8]) -> Result<Event, serde_json::Error> {
        Ok(match (name, version) {
            ("bench_opened", 1) => Event::Opened(serde_json::from_slice(payload)?),
            ("bench_deposited", 1) => {
                Event::Deposited(serde_json::from_slice::<DepositedV1>(payload)?.into())
            }
            ("bench_deposited", 2) => Event::Deposited(serde_json::from_slice(payload)?),
            _ => return Err(serde::de::Error::custom("unknown event")),
        })
    }

    pub fn apply(state: &mut Account, event: &Event) {
        match event {
            Event::Opened(e) => state.owner.clone_from(&e.owner),
            Event::Deposited(e) => {
                state.balance += e.amount;
                state.deposits += 1;
            }
        }
    }
}

fn stream(n: usize) -> Vec<StoredEvent> {
    (0..n)
        .map(|i| {
            let (event_type, event_version, payload) = match i {
                0 => ("bench_opened", 1, br#"{"owner":"ann"}"#.to_vec()),
                i if i % 2 == 1 => (
                    "bench_deposited",
                    1,
                    format!(r#"{{"amount":{i}}}"#).into_bytes(),
                ),
                i => (
                    "bench_deposited",
                    2,
                    format!(r#"{{"amount":{i},"currency":"EUR"}}"#).into_bytes(),
                ),
            };
            StoredEvent {
                global_position: i as u64 + 1,
                stream_type: "account".into(),
                stream_id: "a-1".into(),
                stream_version: i as u64 + 1,
                event_id: Uuid::now_v7(),
                event_type: event_type.into(),
                event_version,
                payload,
                metadata: Metadata::new(),
                recorded_at: Utc::now(),
            }
        })
        .collect()
}

fn generated(events: &[StoredEvent]) -> Account {
    let mut state = Account::default();
    for stored in events {
        let decoded =
            AccountEvent::decode(&stored.event_type, stored.event_version, &stored.payload);
        decoded
            .expect("decodes")
            .for_each(|event| state.apply(&event));
    }
    state
}

fn hand_written(events: &[StoredEvent]) -> Account {
    let mut state = Account::default();
    for stored in events {
        let event = hand::decode(&stored.event_type, stored.event_version, &stored.payload)
            .expect("decodes");
        hand::apply(&mut state, &event);
    }
    state
}

fn rehydrate(c: &mut Criterion) {
    let mut group = c.benchmark_group("rehydrate");
    for n in [10_000usize, 100_000] {
        let events = stream(n);
        assert_eq!(generated(&events).balance, hand_written(&events).balance);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("generated", n), &events, |b, events| {
            b.iter(|| black_box(generated(black_box(events))))
        });
        group.bench_with_input(BenchmarkId::new("hand_written", n), &events, |b, events| {
            b.iter(|| black_box(hand_written(black_box(events))))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = rehydrate
}
/// `CQRS_COUNT=generated|hand_written|setup` runs that path once over 100,000 events and exits, for
/// instruction counts that do not depend on the machine's noise:
/// `CQRS_COUNT=generated valgrind --tool=callgrind target/release/deps/rehydrate-* --bench`.
fn main() {
    if let Ok(which) = std::env::var("CQRS_COUNT") {
        let events = stream(100_000);
        let state = match which.as_str() {
            "generated" => generated(&events),
            "hand_written" => hand_written(&events),
            _ => Account::default(), // "setup": building the stream only, to subtract
        };
        println!("{which}: balance {}", state.balance);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
