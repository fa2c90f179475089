//! The criterion groups and the instruction-count mode, shared by the root bench (contenders
//! (a) and (b)) and the comparison crate, which passes an [`Extra`] that adds (c) cqrs-es to
//! every group. Group and contender names are what `scripts/chart.py` reads back from
//! `target/criterion/<group>/<contender>/<n>/new/estimates.json`.

use std::hint::black_box;
use std::mem::forget;
use std::time::Duration;

use cqrs_runtime::prelude::*;
use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput};
use tokio::runtime::Runtime;

use super::data::{self, Outcome};
use super::domain::{Account, AccountCommand};
use super::hand;
use super::work::{self, Portfolio};

/// W1 sizes, W2 commands and aggregates, W3 streams and events per stream, W4 commands.
pub const W1_SIZES: [usize; 2] = [10_000, 100_000];
pub const W2: (usize, usize) = (100_000, 1_000);
/// W2 in the count mode: the same 100 commands per aggregate over 100 aggregates (callgrind
/// runs about 50 times slower than native; instructions are reported per command).
pub const W2_COUNT: (usize, usize) = (10_000, 100);
pub const W3: (usize, usize) = (1_000, 100);
pub const W4: usize = 100_000;

/// A third contender (cqrs-es in the comparison crate); the root bench passes `()`.
pub trait Extra {
    fn w1_load(&self, _group: &mut BenchmarkGroup<'_, WallTime>, _n: usize, _expected: &Account) {}
    fn w2(&self, _group: &mut BenchmarkGroup<'_, WallTime>, _expected: Outcome) {}
    fn w3(&self, _group: &mut BenchmarkGroup<'_, WallTime>, _expected: &Portfolio) {}
    fn w4(&self, _group: &mut BenchmarkGroup<'_, WallTime>, _expected: Outcome) {}
    /// Runs `workload` once for `contender` (after its setup; only the setup when `setup_only`)
    /// if the contender is this one's; returns whether it was.
    fn count(&self, _workload: &str, _contender: &str, _setup_only: bool) -> bool {
        false
    }
}

impl Extra for () {}

/// A store holding W1's stream under `acc-0`.
pub fn w1_store(rt: &Runtime, n: usize) -> InMemoryEventStore {
    let stream = data::w1_stream(n);
    work::store_with(rt, stream.iter().map(|e| (0, e)))
}

/// W3's global log in a store.
pub fn w3_store(rt: &Runtime) -> InMemoryEventStore {
    let log = data::w3_log(W3.0, W3.1);
    work::store_with(rt, log.iter().map(|(s, e)| (*s, e)))
}

pub fn benches(c: &mut Criterion, extra: &dyn Extra) {
    let rt = super::runtime();
    let id = data::stream_id(0);

    // W1 core: decode and apply from stored events already in memory (no store read).
    let mut group = c.benchmark_group("w1_core");
    group.sample_size(20);
    for n in W1_SIZES {
        let store = w1_store(&rt, n);
        let events = rt
            .block_on(store.read_stream(work::TYPE, &id, 1))
            .expect("reads");
        assert_eq!(
            work::w1_core_generated(&events),
            work::w1_core_hand(&events)
        );
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("generated", n), &events, |b, events| {
            b.iter(|| black_box(work::w1_core_generated(black_box(events))))
        });
        group.bench_with_input(BenchmarkId::new("hand_written", n), &events, |b, events| {
            b.iter(|| black_box(work::w1_core_hand(black_box(events))))
        });
    }
    group.finish();

    // W1 load: each contender's public load path from its in-memory store.
    let mut group = c.benchmark_group("w1_load");
    group.sample_size(20);
    for n in W1_SIZES {
        let store = w1_store(&rt, n);
        let repo = Repository::<Account, _>::new(store.clone());
        let expected = work::w1_load_generated(&rt, &repo, &id);
        assert_eq!(expected, work::w1_load_hand(&rt, &store, &id));
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("generated", n), |b| {
            b.iter(|| black_box(work::w1_load_generated(&rt, &repo, &id)))
        });
        group.bench_function(BenchmarkId::new("hand_written", n), |b| {
            b.iter(|| black_box(work::w1_load_hand(&rt, &store, &id)))
        });
        extra.w1_load(&mut group, n, &expected);
    }
    group.finish();

    // W2: 100,000 commands over 1,000 aggregates, a fresh store per iteration.
    let commands = W2.0;
    let (ours, theirs) = w2_commands();
    let (expected, _) = work::w2_generated(&rt, InMemoryEventStore::new(), ours.clone());
    assert_eq!(
        expected,
        work::w2_hand(&rt, InMemoryEventStore::new(), theirs.clone()).0
    );
    let mut group = c.benchmark_group("w2_commands");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(commands as u64));
    group.bench_function(BenchmarkId::new("generated", commands), |b| {
        b.iter_batched(
            || (InMemoryEventStore::new(), ours.clone()),
            |(store, cmds)| work::w2_generated(&rt, store, cmds),
            BatchSize::PerIteration,
        )
    });
    group.bench_function(BenchmarkId::new("hand_written", commands), |b| {
        b.iter_batched(
            || (InMemoryEventStore::new(), theirs.clone()),
            |(store, cmds)| work::w2_hand(&rt, store, cmds),
            BatchSize::PerIteration,
        )
    });
    extra.w2(&mut group, expected);
    group.finish();

    // W3: rebuild a read model over 1,000 streams x 100 events.
    let store = w3_store(&rt);
    let expected = work::w3_generated(&rt, &store);
    assert_eq!(expected, work::w3_hand(&rt, &store));
    let n = (W3.0 * W3.1) as u64;
    let mut group = c.benchmark_group("w3_rebuild");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(n));
    group.bench_function(BenchmarkId::new("generated", n), |b| {
        b.iter(|| work::w3_generated(&rt, &store))
    });
    group.bench_function(BenchmarkId::new("hand_written", n), |b| {
        b.iter(|| work::w3_hand(&rt, &store))
    });
    extra.w3(&mut group, &expected);
    group.finish();

    // W4: decide and apply alone, 100,000 commands on one aggregate.
    let script = data::script(W4, 1);
    let ours: Vec<_> = script.iter().copied().map(work::command).collect();
    let theirs: Vec<_> = script
        .iter()
        .copied()
        .map(hand::Command::from_step)
        .collect();
    let expected = work::w4_generated(ours.clone()).0;
    assert_eq!(expected, work::w4_hand(theirs.clone()).0);
    let mut group = c.benchmark_group("w4_decide_apply");
    group.sample_size(20);
    group.throughput(Throughput::Elements(W4 as u64));
    group.bench_function(BenchmarkId::new("generated", W4), |b| {
        b.iter_batched(|| ours.clone(), work::w4_generated, BatchSize::LargeInput)
    });
    group.bench_function(BenchmarkId::new("hand_written", W4), |b| {
        b.iter_batched(|| theirs.clone(), work::w4_hand, BatchSize::LargeInput)
    });
    extra.w4(&mut group, expected);
    group.finish();
}

/// The instruction-count mode: `CQRS_COUNT=<workload>:<contender>` runs that workload once
/// after building its input and exits; with `CQRS_COUNT_SETUP=1` it builds the input only, to
/// subtract. Workloads: `w1_core`, `w1_load` (100,000 events), `w2` (10,000 commands over 100
/// aggregates), `w3`, `w4`. Contenders: `generated`, `hand_written`, and whatever the
/// [`Extra`] knows. Outputs are leaked, not dropped, so no contender pays for freeing.
/// `scripts/count.sh` runs every pair under callgrind.
pub fn count(which: &str, extra: &dyn Extra) {
    let (workload, contender) = which
        .split_once(':')
        .expect("CQRS_COUNT=<workload>:<contender>");
    let setup_only = std::env::var_os("CQRS_COUNT_SETUP").is_some();
    if extra.count(workload, contender, setup_only) {
        return;
    }
    let rt = super::runtime();
    let id = data::stream_id(0);
    let generated = match contender {
        "generated" => true,
        "hand_written" => false,
        other => panic!("unknown contender {other}"),
    };
    match workload {
        "w1_core" => {
            let store = w1_store(&rt, 100_000);
            let events = rt
                .block_on(store.read_stream(work::TYPE, &id, 1))
                .expect("reads");
            if !setup_only {
                forget(if generated {
                    work::w1_core_generated(&events)
                } else {
                    work::w1_core_hand(&events)
                });
            }
            forget((store, events));
        }
        "w1_load" => {
            let store = w1_store(&rt, 100_000);
            let repo = Repository::<Account, _>::new(store.clone());
            if !setup_only {
                forget(if generated {
                    work::w1_load_generated(&rt, &repo, &id)
                } else {
                    work::w1_load_hand(&rt, &store, &id)
                });
            }
            forget((store, repo));
        }
        "w2" => {
            let script = data::script(W2_COUNT.0, W2_COUNT.1);
            let store = InMemoryEventStore::new();
            if generated {
                let cmds: Vec<_> = script.into_iter().map(work::command).collect();
                if !setup_only {
                    forget(work::w2_generated(&rt, store, cmds));
                } else {
                    forget((store, cmds));
                }
            } else {
                let cmds: Vec<_> = script.into_iter().map(hand::Command::from_step).collect();
                if !setup_only {
                    forget(work::w2_hand(&rt, store, cmds));
                } else {
                    forget((store, cmds));
                }
            }
        }
        "w3" => {
            let store = w3_store(&rt);
            if !setup_only {
                forget(if generated {
                    work::w3_generated(&rt, &store)
                } else {
                    work::w3_hand(&rt, &store)
                });
            }
            forget(store);
        }
        "w4" => {
            let script = data::script(W4, 1);
            if generated {
                let cmds: Vec<_> = script.into_iter().map(work::command).collect();
                if !setup_only {
                    forget(work::w4_generated(cmds));
                } else {
                    forget(cmds);
                }
            } else {
                let cmds: Vec<_> = script.into_iter().map(hand::Command::from_step).collect();
                if !setup_only {
                    forget(work::w4_hand(cmds));
                } else {
                    forget(cmds);
                }
            }
        }
        other => panic!("unknown workload {other}"),
    }
    forget(rt);
}

/// The alternating mode: `CQRS_ALTERNATE=<workload>:<rounds>` (`w2` or `w3`) times (a) and (b)
/// on the full workload in ABBA order (generated first in even rounds, hand-written first in
/// odd ones), so that drift in the machine's load and the order of the contenders hit both
/// alike; prints both medians and (a)/(b). Criterion runs each contender's samples in one
/// block, which a noisy machine can skew.
pub fn alternate(which: &str) {
    let (workload, rounds) = which
        .split_once(':')
        .expect("CQRS_ALTERNATE=<workload>:<rounds>");
    let rounds: usize = rounds.parse().expect("a round count");
    let rt = super::runtime();
    let (mut ours, mut theirs): (Vec<Duration>, Vec<Duration>) = (Vec::new(), Vec::new());
    match workload {
        "w2" => {
            let (a, b) = w2_commands();
            for round in 0..rounds {
                // Inputs are built and outputs dropped outside the timed region.
                let (ca, cb) = (a.clone(), b.clone());
                let ((ta, out_a), (tb, out_b)) = abba(
                    round,
                    || timed(|| work::w2_generated(&rt, InMemoryEventStore::new(), ca)),
                    || timed(|| work::w2_hand(&rt, InMemoryEventStore::new(), cb)),
                );
                assert_eq!(out_a.0, out_b.0);
                ours.push(ta);
                theirs.push(tb);
            }
        }
        "w3" => {
            let store = w3_store(&rt);
            for round in 0..rounds {
                let ((ta, out_a), (tb, out_b)) = abba(
                    round,
                    || timed(|| work::w3_generated(&rt, &store)),
                    || timed(|| work::w3_hand(&rt, &store)),
                );
                assert_eq!(out_a, out_b);
                ours.push(ta);
                theirs.push(tb);
            }
        }
        other => panic!("CQRS_ALTERNATE supports w2 and w3, not {other}"),
    }
    // Each round's own ratio too: drift slower than a round cancels out of it.
    let mut ratios: Vec<f64> = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| a.as_secs_f64() / b.as_secs_f64())
        .collect();
    ratios.sort_by(f64::total_cmp);
    ours.sort();
    theirs.sort();
    let (a, b) = (ours[rounds / 2], theirs[rounds / 2]);
    println!(
        "ALTERNATE {workload}: generated {a:.3?}, hand_written {b:.3?}, (a)/(b) {:.3} (medians of {rounds}); median of the rounds' ratios {:.3}",
        a.as_secs_f64() / b.as_secs_f64(),
        ratios[rounds / 2]
    );
}

/// Runs `f` once: how long it took, and its output (dropped by the caller, untimed).
fn timed<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let start = std::time::Instant::now();
    let out = f();
    (start.elapsed(), out)
}

/// W2's commands for (a) and (b), from the same script.
fn w2_commands() -> (Vec<AccountCommand>, Vec<hand::Command>) {
    let script = data::script(W2.0, W2.1);
    let ours = script.iter().copied().map(work::command).collect();
    let theirs = script
        .iter()
        .copied()
        .map(hand::Command::from_step)
        .collect();
    (ours, theirs)
}

/// Runs `a` then `b` in even rounds and `b` then `a` in odd ones; returns their outputs as
/// `(a, b)`.
fn abba<A, B>(round: usize, a: impl FnOnce() -> A, b: impl FnOnce() -> B) -> (A, B) {
    if round.is_multiple_of(2) {
        let a = a();
        (a, b())
    } else {
        let b = b();
        (a(), b)
    }
}
