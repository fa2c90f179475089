//! The workload shared by every backend: the aggregate, the append matrix, the load.
#![allow(dead_code)] // each backend module uses its part

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cqrs_runtime::prelude::*;
use cqrs_runtime::store::NewEvent;
use criterion::Criterion;
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

#[derive(Debug, Clone, Command)]
#[command(aggregate = Counter)]
pub struct Add {
    #[id]
    pub counter: String,
    pub by: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "counter_added", version = 1)]
pub struct Added {
    pub by: u64,
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum CounterEvent {
    Added(Added),
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
pub struct Never;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Counter {
    pub total: u64,
    pub events: u64,
}

#[aggregate(name = "counter", id = String, events = CounterEvent, error = Never)]
impl Counter {
    #[command(any)]
    fn add(&self, cmd: Add) -> Result<Added, Never> {
        Ok(Added {
            by: cmd.by,
            total: self.total + cmd.by,
        })
    }

    #[apply]
    fn added(&mut self, e: &Added) {
        self.total = e.total;
        self.events += 1;
    }
}

/// What the floor does per row of a load: decode the typed event, apply it.
pub fn floor_apply(state: &mut Counter, event_type: &str, event_version: i64, payload: &str) {
    if event_type == "counter_added"
        && event_version == 1
        && let Ok(e) = serde_json::from_str::<Added>(payload)
    {
        state.total = e.total;
        state.events += 1;
    }
}

/// One command's events.
pub fn new_events(n: usize, total: u64) -> Vec<NewEvent> {
    let metadata = Metadata::new();
    (0..n as u64)
        .map(|i| {
            let e = Added {
                by: 1,
                total: total + i + 1,
            };
            let payload = serde_json::to_vec(&e).unwrap_or_default();
            NewEvent::new("counter_added", 1, payload, metadata.clone())
        })
        .collect()
}

/// Something that appends one command's events at an expected version.
pub trait Appender: Clone + Send + Sync + 'static {
    fn append(
        &self,
        stream: String,
        expected: u64,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = ()> + Send;
}

pub const AGGREGATES: u64 = 1_000;
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Runs `commands` commands of `per_command` events over [`AGGREGATES`] fresh streams, split
/// among `tasks` tasks that own disjoint streams (no conflicts), and times it.
pub fn run_appends<A: Appender>(
    rt: &Runtime,
    appender: &A,
    commands: u64,
    tasks: u64,
    per_command: usize,
) -> Duration {
    let generation = GENERATION.fetch_add(1, Ordering::Relaxed);
    rt.block_on(async {
        let start = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for task in 0..tasks {
            let appender = appender.clone();
            let owned: Vec<u64> = (0..AGGREGATES).filter(|a| a % tasks == task).collect();
            let mine = commands / tasks + u64::from(task < commands % tasks);
            set.spawn(async move {
                let mut versions = vec![0_u64; owned.len()];
                for i in 0..mine as usize {
                    let slot = i % owned.len();
                    let stream = format!("g{generation}-{}", owned[slot]);
                    let events = new_events(per_command, versions[slot]);
                    appender.append(stream, versions[slot], events).await;
                    versions[slot] += per_command as u64;
                }
            });
        }
        while set.join_next().await.is_some() {}
        start.elapsed()
    })
}

/// `CQRS_BENCH_ALTERNATE=rounds`: instead of criterion's sequential cells, time ours and the
/// floor alternately, `rounds` times each, so that a load that drifts during the run (other
/// processes on the machine) hits both alike. Prints medians and the ratio.
pub fn alternate_rounds() -> Option<usize> {
    std::env::var("CQRS_BENCH_ALTERNATE").ok()?.parse().ok()
}

/// `CQRS_BENCH_ONLY=text`: alternate mode runs only the cells whose name contains `text`
/// (for example `sqlite/append/1ev/1task` or `load`).
pub fn selected(name: &str) -> bool {
    std::env::var("CQRS_BENCH_ONLY").map_or(true, |only| name.contains(&only))
}

/// Times `ours` and `floor` alternately and prints the medians and floor/ours.
pub fn alternate(
    name: &str,
    rounds: usize,
    mut ours: impl FnMut() -> Duration,
    mut floor: impl FnMut() -> Duration,
) {
    let (mut a, mut f) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        a.push(ours());
        f.push(floor());
    }
    a.sort();
    f.sort();
    let (a, f) = (a[rounds / 2], f[rounds / 2]);
    println!(
        "ALTERNATE {name}: ours {a:.2?}, floor {f:.2?}, throughput ours/floor {:.2}",
        f.as_secs_f64() / a.as_secs_f64()
    );
}

/// Runs `f` once and times it.
pub fn timed(f: &dyn Fn()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// The command count per append cell in alternate mode.
pub const COMMANDS: u64 = 20_000;

/// The append matrix for one backend: `ours` and `floor` (each built for a task count).
pub fn append_matrix<A: Appender, F: Appender>(
    c: &mut Criterion,
    backend: &str,
    rt: &Runtime,
    ours: impl Fn(u64) -> A,
    floor: impl Fn(u64) -> F,
) {
    for per_command in [1_usize, 10] {
        for tasks in [1_u64, 8] {
            let name = format!("{backend}/append/{per_command}ev/{tasks}task");
            let (a, f) = (ours(tasks), floor(tasks));
            if let Some(rounds) = alternate_rounds() {
                if !selected(&name) {
                    continue;
                }
                alternate(
                    &format!("{name} ({COMMANDS} commands)"),
                    rounds,
                    || run_appends(rt, &a, COMMANDS, tasks, per_command),
                    || run_appends(rt, &f, COMMANDS, tasks, per_command),
                );
                continue;
            }
            let mut group = c.benchmark_group(name);
            group.bench_function("ours", |b| {
                b.iter_custom(|n| run_appends(rt, &a, n, tasks, per_command))
            });
            group.bench_function("floor", |b| {
                b.iter_custom(|n| run_appends(rt, &f, n, tasks, per_command))
            });
            group.finish();
        }
    }
}

pub const LOAD_EVENTS: u64 = 10_000;

/// Fills `stream` with [`LOAD_EVENTS`] events through `appender`, 100 per command.
pub fn fill_stream<A: Appender>(rt: &Runtime, appender: &A, stream: &str) {
    rt.block_on(async {
        for chunk in 0..LOAD_EVENTS / 100 {
            let events = new_events(100, chunk * 100);
            appender
                .append(stream.to_owned(), chunk * 100, events)
                .await;
        }
    });
}
