//! PostgreSQL: the store against hand-written tokio-postgres code on the same schema.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use cqrs_runtime::postgres::{PostgresConfig, PostgresEventStore, Tls};
use cqrs_runtime::prelude::*;
use cqrs_runtime::store::NewEvent;
use criterion::Criterion;
use tokio::runtime::Runtime;
use tokio_postgres::{Client, NoTls, Statement};
use uuid::Uuid;

use crate::common::{self, Appender, Counter, LOAD_EVENTS};

const BACKEND: &str = "postgres";

impl Appender for PostgresEventStore {
    async fn append(&self, stream: String, expected: u64, events: Vec<NewEvent>) {
        let expected = ExpectedVersion::from_version(expected);
        if let Err(e) = EventStore::append(self, "counter", &stream, expected, events).await {
            panic!("append failed: {e}");
        }
    }
}

fn url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

async fn client() -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(&url(), NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// The floor: the same `unnest` INSERT a careful hand-writer would use (no expected-version
/// check beyond the unique key, no idempotency lookup), prepared, over `n` connections.
#[derive(Clone)]
struct Floor {
    conns: Arc<Vec<(Client, Statement)>>,
    next: Arc<AtomicUsize>,
}

impl Floor {
    async fn connect(schema: &str, n: u64) -> Self {
        let mut conns = Vec::new();
        for _ in 0..n {
            let client = client().await.expect("floor connection");
            let insert = client
                .prepare(&format!(
                    "INSERT INTO {schema}.events (stream_type, stream_id, stream_version, \
                     event_id, event_type, event_version, payload, metadata, recorded_at) \
                     SELECT $1, $2, $3 + b.n, b.id, b.t, b.v, b.p::jsonb, b.m::jsonb, b.r \
                     FROM unnest($4::uuid[], $5::text[], $6::int4[], $7::text[], $8::text[], \
                     $9::timestamptz[]) WITH ORDINALITY AS b(id, t, v, p, m, r, n)"
                ))
                .await
                .expect("prepare");
            conns.push((client, insert));
        }
        Self {
            conns: Arc::new(conns),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl Appender for Floor {
    async fn append(&self, stream: String, expected: u64, events: Vec<NewEvent>) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        let (client, insert) = &self.conns[i];
        let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_ref()).collect();
        let versions: Vec<i32> = events.iter().map(|e| e.event_version as i32).collect();
        let payloads: Vec<&str> = events
            .iter()
            .map(|e| std::str::from_utf8(&e.payload).unwrap_or_default())
            .collect();
        let metadata: Vec<String> = events
            .iter()
            .map(|e| serde_json::to_string(&e.metadata).unwrap_or_default())
            .collect();
        let recorded: Vec<DateTime<Utc>> = events.iter().map(|e| e.recorded_at).collect();
        let expected = expected as i64;
        client
            .execute(
                insert,
                &[
                    &"counter", &stream, &expected, &ids, &types, &versions, &payloads, &metadata,
                    &recorded,
                ],
            )
            .await
            .expect("floor append");
    }
}

pub fn benches(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let Ok(admin) = rt.block_on(client()) else {
        println!(
            "skipping the PostgreSQL benchmarks: cannot connect to {}",
            url()
        );
        return;
    };
    let tag = Uuid::now_v7().simple().to_string();
    let (ours_schema, floor_schema) = (format!("bench_ours_{tag}"), format!("bench_floor_{tag}"));
    let store = |schema: &str, connections: u64| {
        // Plain text, as the floor's `NoTls` connections (the store's default would encrypt
        // where the server accepts TLS).
        let config = PostgresConfig::new(&url())
            .expect("url")
            .tls(Tls::disable());
        let config = config.schema(schema).expect("schema");
        rt.block_on(config.connections(connections as usize).open())
            .expect("connect")
    };
    // Both schemas come from the store's migration, so the floor writes the same tables.
    store(&floor_schema, 1);
    common::append_matrix(
        c,
        BACKEND,
        &rt,
        |tasks| store(&ours_schema, tasks),
        |tasks| rt.block_on(Floor::connect(&floor_schema, tasks)),
    );

    if crate::catchup::selected(BACKEND) {
        let schema = format!("bench_catch_up_{tag}");
        let log = store(&schema, 4);
        crate::catchup::fill(&rt, &log);
        // As autovacuum would after such a load: the planner sees the table's real size.
        rt.block_on(admin.batch_execute(&format!("ANALYZE {schema}.events")))
            .expect("analyze");
        crate::catchup::benches(c, &rt, BACKEND, &log);
        let _ = rt.block_on(admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")));
    }
    let ours = store(&ours_schema, 1);
    common::fill_stream(&rt, &ours, "load-1");
    let repo = Repository::<Counter, _>::new(ours);
    let select = rt
        .block_on(admin.prepare(&format!(
            "SELECT event_type, event_version, payload::text FROM {ours_schema}.events \
             WHERE stream_type = $1 AND stream_id = $2 ORDER BY stream_version"
        )))
        .expect("prepare");
    let load_ours = || {
        let loaded = rt.block_on(repo.load(&"load-1".to_owned())).expect("load");
        assert_eq!(loaded.state.events, LOAD_EVENTS);
    };
    let load_floor = || {
        let rows = rt
            .block_on(admin.query(&select, &[&"counter", &"load-1"]))
            .expect("query");
        let mut state = Counter::default();
        for row in &rows {
            let (t, v, p): (&str, i32, &str) = (row.get(0), row.get(1), row.get(2));
            common::floor_apply(&mut state, t, i64::from(v), p);
        }
        assert_eq!(state.events, LOAD_EVENTS);
    };
    let cleanup = || {
        let drop = format!("DROP SCHEMA {ours_schema} CASCADE; DROP SCHEMA {floor_schema} CASCADE");
        let _ = rt.block_on(admin.batch_execute(&drop));
    };
    if let Some(rounds) = common::alternate_rounds() {
        if !common::selected(&format!("{BACKEND}/load")) {
            return cleanup();
        }
        common::alternate(
            &format!("{BACKEND}/load/{LOAD_EVENTS}ev"),
            rounds * 10,
            || common::timed(&load_ours),
            || common::timed(&load_floor),
        );
        return cleanup();
    }
    let mut group = c.benchmark_group(format!("postgres/load/{LOAD_EVENTS}ev"));
    group.bench_function("ours", |b| b.iter(load_ours));
    group.bench_function("floor", |b| b.iter(load_floor));
    group.finish();
    cleanup();
}
