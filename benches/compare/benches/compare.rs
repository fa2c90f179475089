//! W1–W4 three ways in one run: (a) this project's macros, (b) hand-written, (c) cqrs-es 0.5.
//! See `BENCHMARKS.md`. `cargo bench --manifest-path benches/compare/Cargo.toml`;
//! `CQRS_COUNT=<workload>:<contender>` runs one workload once for instruction counts
//! (`scripts/count.sh`).

#[path = "../../common/mod.rs"]
mod common;
mod es;

use std::hint::black_box;
use std::mem::forget;

use common::data::{self, Outcome};
use common::domain::Account;
use common::suite::{self, Extra, W1_SIZES, W2, W2_COUNT, W3, W4};
use common::work::Portfolio;
use cqrs_es::mem_store::MemStore;
use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup, BenchmarkId};
use es::{EsCommand, MemRepo};

struct CqrsEs;

fn w1_repo(n: usize) -> MemRepo {
    let stream = data::w1_stream(n);
    MemRepo::with(stream.iter().map(|e| (0, e)))
}

fn w3_repo() -> MemRepo {
    let log = data::w3_log(W3.0, W3.1);
    MemRepo::with(log.iter().map(|(s, e)| (*s, e)))
}

fn commands(commands: usize, aggregates: usize) -> Vec<EsCommand> {
    data::script(commands, aggregates)
        .into_iter()
        .map(EsCommand::from_step)
        .collect()
}

/// cqrs-es does not return the state from `execute`: compare the decisions only.
fn same_decisions(a: Outcome, b: Outcome) {
    assert_eq!((a.accepted, a.rejected), (b.accepted, b.rejected));
}

impl Extra for CqrsEs {
    fn w1_load(&self, group: &mut BenchmarkGroup<'_, WallTime>, n: usize, expected: &Account) {
        let rt = common::runtime();
        let store = es::persisted_store(w1_repo(n));
        let id = data::stream_id(0);
        assert_eq!(&es::w1_load(&rt, &store, &id), expected);
        group.bench_function(BenchmarkId::new("cqrs_es", n), |b| {
            b.iter(|| black_box(es::w1_load(&rt, &store, &id)))
        });
    }

    fn w2(&self, group: &mut BenchmarkGroup<'_, WallTime>, expected: Outcome) {
        let rt = common::runtime();
        let cmds = commands(W2.0, W2.1);
        same_decisions(
            es::w2_persisted(&rt, MemRepo::default(), cmds.clone()).0,
            expected,
        );
        same_decisions(
            es::w2_memstore(&rt, MemStore::default(), cmds.clone()).0,
            expected,
        );
        group.bench_function(BenchmarkId::new("cqrs_es", W2.0), |b| {
            b.iter_batched(
                || (MemRepo::default(), cmds.clone()),
                |(repo, cmds)| es::w2_persisted(&rt, repo, cmds),
                BatchSize::PerIteration,
            )
        });
        group.bench_function(BenchmarkId::new("cqrs_es_memstore", W2.0), |b| {
            b.iter_batched(
                || (MemStore::default(), cmds.clone()),
                |(store, cmds)| es::w2_memstore(&rt, store, cmds),
                BatchSize::PerIteration,
            )
        });
    }

    fn w3(&self, group: &mut BenchmarkGroup<'_, WallTime>, expected: &Portfolio) {
        let rt = common::runtime();
        let repo = w3_repo();
        assert_eq!(&es::w3(&rt, &repo), expected);
        group.bench_function(BenchmarkId::new("cqrs_es", W3.0 * W3.1), |b| {
            b.iter(|| es::w3(&rt, &repo))
        });
    }

    fn w4(&self, group: &mut BenchmarkGroup<'_, WallTime>, expected: Outcome) {
        let cmds = commands(W4, 1);
        assert_eq!(es::w4(cmds.clone()).0, expected);
        group.bench_function(BenchmarkId::new("cqrs_es", W4), |b| {
            b.iter_batched(|| cmds.clone(), es::w4, BatchSize::LargeInput)
        });
    }

    fn count(&self, workload: &str, contender: &str, setup_only: bool) -> bool {
        if !contender.starts_with("cqrs_es") {
            return false;
        }
        let rt = common::runtime();
        let id = data::stream_id(0);
        match (workload, contender) {
            ("w1_load", "cqrs_es") => {
                let store = es::persisted_store(w1_repo(100_000));
                if !setup_only {
                    forget(es::w1_load(&rt, &store, &id));
                }
                forget(store);
            }
            ("w2", "cqrs_es") => {
                let (repo, cmds) = (MemRepo::default(), commands(W2_COUNT.0, W2_COUNT.1));
                if setup_only {
                    forget((repo, cmds));
                } else {
                    forget(es::w2_persisted(&rt, repo, cmds));
                }
            }
            ("w2", "cqrs_es_memstore") => {
                let (store, cmds) = (
                    MemStore::<es::EsAccount>::default(),
                    commands(W2_COUNT.0, W2_COUNT.1),
                );
                if setup_only {
                    forget((store, cmds));
                } else {
                    forget(es::w2_memstore(&rt, store, cmds));
                }
            }
            ("w3", "cqrs_es") => {
                let repo = w3_repo();
                if !setup_only {
                    forget(es::w3(&rt, &repo));
                }
                forget(repo);
            }
            ("w4", "cqrs_es") => {
                let cmds = commands(W4, 1);
                if setup_only {
                    forget(cmds);
                } else {
                    forget(es::w4(cmds));
                }
            }
            other => panic!("no cqrs-es contender for {other:?}"),
        }
        forget(rt);
        true
    }
}

fn main() {
    if let Ok(which) = std::env::var("CQRS_COUNT") {
        suite::count(&which, &CqrsEs);
        return;
    }
    let _ = W1_SIZES;
    let mut criterion = criterion::Criterion::default().configure_from_args();
    suite::benches(&mut criterion, &CqrsEs);
    criterion.final_summary();
}
