//! Store benchmarks, each beside a hand-written floor on the same schema and driver:
//!
//! - append throughput: commands of 1 and of 10 events, spread over 1,000 aggregates, by 1
//!   task and by 8 concurrent tasks (criterion's `iter_custom`: each sample runs as many
//!   commands as criterion asks for, so the figure is the time per command);
//! - load of one 10,000-event aggregate (read, decode, apply);
//! - catch-up of a projection whose events are 10% of a 100,000-event log, reading through
//!   its filter against reading everything (`catchup.rs`).
//!
//! Run: `cargo bench -p cqrs-runtime --all-features --bench stores` (PostgreSQL at
//! `DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/test`; skipped if unreachable).
//! Shorter: append `-- --warm-up-time 1 --measurement-time 3`.
//!
//! On a shared machine, `CQRS_BENCH_ALTERNATE=3` times ours and the floor back to back,
//! 3 rounds per append cell (30 loads), and prints medians; `CQRS_BENCH_ONLY=sqlite/load`
//! (any part of a cell name) limits it to some cells.

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod catchup;
mod common;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

use criterion::{Criterion, criterion_group, criterion_main};

fn benches(c: &mut Criterion) {
    #[cfg(feature = "sqlite")]
    sqlite::benches(c);
    #[cfg(feature = "postgres")]
    postgres::benches(c);
    let _ = c;
}

criterion_group! {
    name = stores;
    config = Criterion::default().sample_size(10);
    targets = benches
}
criterion_main!(stores);
