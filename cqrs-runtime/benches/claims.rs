//! The cost of a claim: the append of one event that claims one value, beside the append of
//! the same event without a claim, on the in-memory, SQLite and (with `--features postgres`)
//! PostgreSQL stores. Each append starts a new stream and claims a new value, so nothing
//! clashes (the claims table grows as the bench runs).
//!
//! Run: `cargo bench -p cqrs-runtime --features postgres --bench claims` (shorter: append
//! `-- --warm-up-time 1 --measurement-time 3`). Criterion writes each cell's median to
//! `target/criterion/claims_<store>/<cell>/new/estimates.json`.
//!
//! `CLAIMS_ROUNDS=<k>` measures instead in `k` alternating rounds per store (without, with;
//! then with, without; …), each round `CLAIMS_APPENDS` appends (200 by default), and prints
//! each cell's median time per append and the ratio with / without: the machine's drift
//! falls on both cells alike.
//!
//! PostgreSQL: `DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/test`, in a schema
//! of its own (dropped at the end); skipped with the reason when the server is unreachable
//! (a failure when `CI=true`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cqrs_runtime::InMemoryEventStore;
use cqrs_runtime::envelope::Metadata;
use cqrs_runtime::store::{Claim, EventStore, ExpectedVersion, NewEvent};
use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;

/// Streams (and claimed values) never repeat within one process.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// Appends `n` one-event streams, each claiming a fresh value if `claim`; the time they took.
fn appends<S: EventStore>(rt: &Runtime, store: &S, n: u64, claim: bool) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..n {
            let i = NEXT.fetch_add(1, Ordering::Relaxed);
            let id = format!("u-{i}");
            let payload = format!(r#"{{"email":"user{i}@example.com"}}"#).into_bytes();
            let mut event = NewEvent::new("user_registered", 1, payload, Metadata::new());
            if claim {
                let value = format!("user{i}@example.com");
                event = event.with_claims(vec![Claim::take("user_email", value)]);
            }
            if let Err(e) = store
                .append("user", &id, ExpectedVersion::NoStream, vec![event])
                .await
            {
                panic!("append failed: {e}");
            }
        }
        start.elapsed()
    })
}

fn cells<S: EventStore>(c: &mut Criterion, rt: &Runtime, name: &str, store: &S) {
    let mut group = c.benchmark_group(format!("claims/{name}"));
    group.bench_function("append_without_claim", |b| {
        b.iter_custom(|n| appends(rt, store, n, false))
    });
    group.bench_function("append_with_claim", |b| {
        b.iter_custom(|n| appends(rt, store, n, true))
    });
    group.finish();
}

/// The median of `times`.
fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// `rounds` alternating rounds of `n` appends without and with a claim; prints the medians
/// per append and their ratio.
fn alternate<S: EventStore>(rt: &Runtime, name: &str, store: &S, rounds: usize, n: u64) {
    // Warm up both paths (connections, statements, pages).
    appends(rt, store, n / 4 + 1, false);
    appends(rt, store, n / 4 + 1, true);
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        if round % 2 == 0 {
            without.push(appends(rt, store, n, false) / n as u32);
            with.push(appends(rt, store, n, true) / n as u32);
        } else {
            with.push(appends(rt, store, n, true) / n as u32);
            without.push(appends(rt, store, n, false) / n as u32);
        }
    }
    let (without, with) = (median(without), median(with));
    println!(
        "claims/{name}: {rounds} rounds × {n} appends: without {without:?}, with {with:?} \
         per append (medians); with / without = {:.2}",
        with.as_secs_f64() / without.as_secs_f64()
    );
}

/// Measures `store` as criterion cells, or in alternating rounds under `CLAIMS_ROUNDS`.
fn measure<S: EventStore>(c: &mut Criterion, rt: &Runtime, name: &str, store: &S) {
    let rounds = std::env::var("CLAIMS_ROUNDS")
        .ok()
        .and_then(|r| r.parse::<usize>().ok());
    match rounds {
        Some(rounds) if rounds > 0 => {
            let n = std::env::var("CLAIMS_APPENDS")
                .ok()
                .and_then(|n| n.parse::<u64>().ok())
                .filter(|n| *n > 0)
                .unwrap_or(200);
            alternate(rt, name, store, rounds, n);
        }
        _ => cells(c, rt, name, store),
    }
}

/// The PostgreSQL store in a fresh schema, and the connection that drops it; `None` (with
/// the reason printed) when the server is unreachable.
#[cfg(feature = "postgres")]
fn postgres(
    rt: &Runtime,
) -> Option<(
    cqrs_runtime::postgres::PostgresEventStore,
    tokio_postgres::Client,
    String,
)> {
    use cqrs_runtime::postgres::{PostgresConfig, Tls};
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let admin = rt.block_on(async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok::<_, tokio_postgres::Error>(client)
    });
    let admin = match admin {
        Ok(admin) => admin,
        Err(e) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("PostgreSQL is unreachable at {url} under CI: {e}");
            }
            println!("skipping the PostgreSQL claims bench: cannot connect to {url}: {e}");
            return None;
        }
    };
    let schema = format!("bench_claims_{}", uuid::Uuid::now_v7().simple());
    let config = PostgresConfig::new(&url)
        .expect("url")
        .tls(Tls::disable())
        .schema(&schema)
        .expect("schema");
    let store = rt.block_on(config.connections(1).open()).expect("open");
    Some((store, admin, schema))
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    measure(c, &rt, "memory", &InMemoryEventStore::new());
    #[cfg(feature = "sqlite")]
    {
        let dir = std::env::temp_dir().join(format!("cqrs-bench-claims-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let store = rt
            .block_on(cqrs_runtime::sqlite::SqliteEventStore::open(
                dir.join("events.sqlite"),
            ))
            .expect("open");
        measure(c, &rt, "sqlite", &store);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
    #[cfg(feature = "postgres")]
    if let Some((store, admin, schema)) = postgres(&rt) {
        measure(c, &rt, "postgres", &store);
        drop(store);
        let _ = rt.block_on(admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")));
    }
}

criterion_group! {
    name = claims;
    config = Criterion::default().sample_size(10);
    targets = benches
}
criterion_main!(claims);
