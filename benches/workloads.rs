//! W1–W4 of the benchmark suite for (a) this project's macros and (b) hand-written code, in the
//! same run (see `BENCHMARKS.md`; `benches/compare` adds (c) cqrs-es to every group):
//!
//! - W1 core: rehydrate one aggregate from 10,000 and 100,000 stored JSON events already in
//!   memory, half of them an old version that needs one upcast; W1 load: the same through the
//!   store's public load path;
//! - W2: 100,000 commands over 1,000 aggregates on the in-memory store (load, decide, append);
//! - W3: rebuild a read model over 1,000 streams × 100 events;
//! - W4: decide and apply alone (no store, no serialization).
//!
//! `cargo bench --bench workloads`. `CQRS_COUNT=<workload>:<contender>` runs one workload once
//! for instruction counts (see `scripts/count.sh`).

#[path = "common/mod.rs"]
mod common;

fn main() {
    if let Ok(which) = std::env::var("CQRS_COUNT") {
        common::suite::count(&which, &());
        return;
    }
    if let Ok(which) = std::env::var("CQRS_ALTERNATE") {
        common::suite::alternate(&which);
        return;
    }
    let mut criterion = criterion::Criterion::default().configure_from_args();
    common::suite::benches(&mut criterion, &());
    criterion.final_summary();
}
