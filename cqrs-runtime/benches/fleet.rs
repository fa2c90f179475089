//! Fleet throughput on PostgreSQL: a SQL projection split into 8 partitions, run by 1, 2 and
//! 4 worker processes (this binary re-executed), over a log written beforehand. Each handler
//! writes two statements per event (an upsert and an insert), committed per batch with the
//! partition's checkpoint.
//!
//! The figure is the time from starting the workers until every partition's checkpoint has
//! reached the head (workers' start-up and their first claims included), as events per
//! second, the median of `CQRS_BENCH_ROUNDS` (default 3) runs per worker count, each on fresh
//! model tables. A single unpartitioned runner over the same log is the baseline: its time
//! per event is the per-event database cost that bounds the speed-up on a machine whose
//! cores the database shares.
//!
//! Run: `cargo bench -p cqrs-runtime --all-features --bench fleet` (PostgreSQL at
//! `DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/test`; skipped if
//! unreachable). `CQRS_BENCH_EVENTS` sets the log's size (default 20,000).
#![allow(missing_docs, reason = "benchmark fixtures")]

#[cfg(feature = "postgres")]
mod bench {
    use std::path::PathBuf;
    use std::process::{Child, Command};
    use std::time::{Duration, Instant};

    use cqrs_runtime::postgres::{PostgresConfig, PostgresEventStore};
    use cqrs_runtime::processing::Fleet;
    use cqrs_runtime::projection::{EventMeta, ProjectionRunner, SqlProjection, SqlReadModel};
    use cqrs_runtime::store::{EventStore, ExpectedVersion, NewEvent, SqlBatch, SqlValue};
    use cqrs_runtime::{Event, EventEnum, Metadata, projection};
    use serde::{Deserialize, Serialize};

    const PARTITIONS: u32 = 8;
    const NAME: &str = "bench_fleet";

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
    #[event(name = "bench_fleet_deposited", version = 1)]
    pub struct Deposited {
        pub amount: i64,
    }

    #[derive(Debug, Clone, PartialEq, EventEnum)]
    pub enum BenchEvent {
        Deposited(Deposited),
    }

    #[derive(Default)]
    pub struct Balances;

    #[projection(name = "bench_fleet", events = BenchEvent, transaction = SqlBatch)]
    impl Balances {
        #[on]
        fn deposited(&mut self, e: &Deposited, meta: &EventMeta<'_>, db: &mut SqlBatch) {
            db.execute(
                "INSERT INTO balances (account, total) VALUES ($1, $2) \
                 ON CONFLICT (account) DO UPDATE SET total = balances.total + excluded.total",
                [meta.stream_id.into(), e.amount.into()],
            );
            let position = SqlValue::try_from(meta.position).unwrap_or(SqlValue::Null);
            db.execute("INSERT INTO seen (position) VALUES ($1)", [position]);
        }
    }

    impl SqlProjection for Balances {
        fn create_tables(db: &mut SqlBatch) {
            db.execute(
                "CREATE TABLE IF NOT EXISTS balances (account TEXT PRIMARY KEY, total BIGINT NOT NULL)",
                [],
            );
            db.execute(
                "CREATE TABLE IF NOT EXISTS seen (position BIGINT PRIMARY KEY)",
                [],
            );
        }
        fn clear_tables(db: &mut SqlBatch) {
            db.execute("DELETE FROM balances", []);
            db.execute("DELETE FROM seen", []);
        }
    }

    fn url() -> String {
        std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    async fn open(schema: &str) -> PostgresEventStore {
        PostgresConfig::new(&url())
            .expect("url")
            .schema(schema)
            .expect("schema")
            .open()
            .await
            .expect("open")
    }

    /// A worker process: the fleet over the events in `CQRS_FLEET_EVENTS`, model and
    /// checkpoints in `CQRS_FLEET_MODEL`, until the stop file appears.
    async fn worker(events_schema: String) {
        let var = |name: &str| std::env::var(name).unwrap_or_default();
        let events = open(&events_schema).await;
        let tables = open(&var("CQRS_FLEET_MODEL")).await;
        let model = SqlReadModel::<Balances, _>::open(tables.clone())
            .await
            .expect("model");
        let stop = PathBuf::from(var("CQRS_FLEET_STOP"));
        let fleet = Fleet::new(NAME, PARTITIONS, tables, move |p| {
            ProjectionRunner::new(p.source(events.clone()), model.partition(&p))
                .batch_size(200)
                .poll_interval(Duration::from_millis(5), Duration::from_millis(50))
        })
        .heartbeat(Duration::from_millis(50));
        fleet
            .run(async move {
                while !stop.exists() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await
            .expect("worker");
    }

    fn spawn(events: &str, model: &str, stop: &std::path::Path) -> Child {
        Command::new(std::env::current_exe().expect("bench binary"))
            .env("CQRS_FLEET_WORKER", events)
            .env("CQRS_FLEET_MODEL", model)
            .env("CQRS_FLEET_STOP", stop)
            .spawn()
            .expect("spawn a worker")
    }

    async fn write(store: &PostgresEventStore, total: u64) {
        let mut i = 0;
        while i < total {
            let stream = format!("acct-{}", (i.wrapping_mul(2_654_435_761) >> 7) % 1000);
            let events: Vec<NewEvent> = (0..10)
                .map(|k| {
                    let payload = serde_json::to_vec(&Deposited {
                        amount: (i + k) as i64,
                    })
                    .expect("encode");
                    NewEvent::new("bench_fleet_deposited", 1, payload, Metadata::new())
                })
                .collect();
            store
                .append("acct", &stream, ExpectedVersion::Any, events)
                .await
                .expect("append");
            i += 10;
        }
    }

    async fn drop_schema(db: &tokio_postgres::Client, schema: &str) {
        db.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .await
            .expect("drop schema");
    }

    /// One run with `workers` processes (0: the unpartitioned baseline in this process).
    async fn run(
        db: &tokio_postgres::Client,
        events: &PostgresEventStore,
        events_schema: &str,
        workers: usize,
    ) -> Duration {
        static RUN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let run = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let model_schema = format!("{events_schema}_m{run}");
        let tables = open(&model_schema).await;
        let model = SqlReadModel::<Balances, _>::open(tables.clone())
            .await
            .expect("model");
        let head = EventStore::head(events).await.expect("head").position;
        let started = Instant::now();
        if workers == 0 {
            ProjectionRunner::new(events.clone(), model)
                .with_leases(tables.clone())
                .batch_size(200)
                .catch_up()
                .await
                .expect("catch up");
        } else {
            let stop = std::env::temp_dir().join(format!("cqrs-bench-stop-{model_schema}"));
            let children: Vec<Child> = (0..workers)
                .map(|_| spawn(events_schema, &model_schema, &stop))
                .collect();
            Fleet::wait_for(&tables, NAME, PARTITIONS, head, Duration::from_secs(600))
                .await
                .expect("caught up");
            let elapsed = started.elapsed();
            std::fs::write(&stop, b"stop").expect("stop");
            for mut child in children {
                let _ = child.wait();
            }
            let _ = std::fs::remove_file(&stop);
            drop_schema(db, &model_schema).await;
            return elapsed;
        }
        let elapsed = started.elapsed();
        drop_schema(db, &model_schema).await;
        elapsed
    }

    pub fn main() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        if let Ok(events_schema) = std::env::var("CQRS_FLEET_WORKER") {
            runtime.block_on(worker(events_schema));
            return;
        }
        // `cargo bench` passes `--bench`; `cargo test --benches` runs it with no argument:
        // only measure when benchmarking.
        if !std::env::args().any(|a| a == "--bench") {
            return;
        }
        runtime.block_on(async {
            let (db, connection) = match tokio_postgres::connect(&url(), tokio_postgres::NoTls).await
            {
                Ok(pair) => pair,
                Err(e) => {
                    eprintln!("skipping the fleet benchmark: cannot connect to {}: {e}", url());
                    return;
                }
            };
            tokio::spawn(connection);
            let total: u64 = std::env::var("CQRS_BENCH_EVENTS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(20_000);
            let rounds: usize = std::env::var("CQRS_BENCH_ROUNDS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(3);
            let id = uuid::Uuid::now_v7().simple().to_string();
            let events_schema = format!("cqrs_bf_{}", &id[id.len() - 12..]);
            let events = open(&events_schema).await;
            write(&events, total).await;
            println!("fleet/{total} events, {PARTITIONS} partitions, {rounds} rounds (median)");
            let mut baseline = None;
            for workers in [0, 1, 2, 4] {
                let mut times: Vec<Duration> = Vec::new();
                for _ in 0..rounds {
                    times.push(run(&db, &events, &events_schema, workers).await);
                }
                times.sort();
                let median = times[times.len() / 2];
                let rate = total as f64 / median.as_secs_f64();
                let per_event = median.as_secs_f64() * 1e6 / total as f64;
                let base = *baseline.get_or_insert(rate);
                let label = if workers == 0 {
                    "unpartitioned runner".to_owned()
                } else {
                    format!("{workers} worker process(es)")
                };
                println!(
                    "  {label:>24}: {median:>10.2?}  {rate:>8.0} events/s  {per_event:>6.1} µs/event  ×{:.2}",
                    rate / base
                );
            }
            drop_schema(&db, &events_schema).await;
        });
    }
}

fn main() {
    #[cfg(feature = "postgres")]
    bench::main();
}
