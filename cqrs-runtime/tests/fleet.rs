//! Partitioned processing: a SQL read model split into partitions by stream id, each
//! partition with its own checkpoint and lease, run by a fleet of workers.
//!
//! - The partitions split the log exactly: each event is handled by exactly one partition,
//!   in stream order (in-memory source, and a SQLite read model whose `seen` table refuses a
//!   second application of an event).
//! - A worker started with another partition count is refused with a typed error; a
//!   re-partition is refused while a worker runs, and then rebuilds under the new count.
//! - The headline test on PostgreSQL: 3 worker processes (this test binary re-executed as
//!   `fleet_child`, which does nothing unless `CQRS_FLEET_CHILD` is set) run an 8-partition
//!   model while writers append; one worker is killed with SIGKILL and another added midway;
//!   the model equals a clean rebuild, and the lease table (`pg_locks`, each worker's
//!   sessions named by `application_name`) shows every partition held, spread evenly, the
//!   killed worker's partitions taken over.
//!
//! PostgreSQL tests read `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`),
//! create their own schemas and drop them, skip with a printed reason when the server is
//! unreachable, and fail instead when `CI=true`.
#![allow(missing_docs, reason = "test fixtures")]

mod shop;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use cqrs_runtime::processing::{Fleet, FleetError, Partition, PartitionKey, Source};
use cqrs_runtime::projection::{EventMeta, ProjectionRunner, SqlProjection, SqlReadModel};
use cqrs_runtime::store::{
    Cursor, EventStore, ExpectedVersion, NewEvent, SqlBatch, SqlValue, StoredEvent,
};
use cqrs_runtime::{Event, EventEnum, Metadata, projection};
use serde::{Deserialize, Serialize};

// ---- the projection ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "fleet_deposited", version = 1)]
pub struct Deposited {
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum LedgerEvent {
    Deposited(Deposited),
}

/// Per stream: the total, the first version seen and the last version of an unbroken chain
/// (a version out of order breaks it); one `seen` row per event keyed by position, so that an
/// event applied twice is a unique violation.
#[derive(Default)]
pub struct Ledger;

#[projection(name = "fleet_ledger", events = LedgerEvent, transaction = SqlBatch)]
impl Ledger {
    #[on]
    fn deposited(&mut self, e: &Deposited, meta: &EventMeta<'_>, db: &mut SqlBatch) {
        let position = SqlValue::try_from(meta.position).unwrap_or(SqlValue::Null);
        let version = SqlValue::try_from(meta.stream_version).unwrap_or(SqlValue::Null);
        db.execute(
            "INSERT INTO seen (position, stream, version) VALUES ($1, $2, $3)",
            [position, meta.stream_id.into(), version.clone()],
        );
        db.execute(
            "INSERT INTO chain (stream, first, last, total) VALUES ($1, $2, $2, $3) \
             ON CONFLICT (stream) DO UPDATE SET last = excluded.last, \
             total = chain.total + excluded.total WHERE chain.last + 1 = excluded.last",
            [meta.stream_id.into(), version, e.amount.into()],
        );
    }
}

impl SqlProjection for Ledger {
    fn create_tables(db: &mut SqlBatch) {
        db.execute(
            "CREATE TABLE IF NOT EXISTS seen (position BIGINT PRIMARY KEY, stream TEXT NOT NULL, \
             version BIGINT NOT NULL)",
            [],
        );
        db.execute(
            "CREATE TABLE IF NOT EXISTS chain (stream TEXT PRIMARY KEY, first BIGINT NOT NULL, \
             last BIGINT NOT NULL, total BIGINT NOT NULL)",
            [],
        );
    }

    fn clear_tables(db: &mut SqlBatch) {
        db.execute("DELETE FROM seen", []);
        db.execute("DELETE FROM chain", []);
    }
}

const DUMP: [&str; 2] = [
    "SELECT position, stream, version FROM seen ORDER BY position",
    "SELECT stream, first, last, total FROM chain ORDER BY stream",
];

async fn dump<B: cqrs_runtime::store::SqlBackend>(
    model: &SqlReadModel<Ledger, B>,
) -> Vec<Vec<SqlValue>> {
    let mut rows = Vec::new();
    for sql in DUMP {
        rows.extend(model.fetch_all(sql, &[]).await.expect("dump"));
    }
    rows
}

/// Every stream's chain starts at 1 and is unbroken to its last event.
async fn assert_in_order<B: cqrs_runtime::store::SqlBackend>(
    model: &SqlReadModel<Ledger, B>,
    events: &[(Cursor, StoredEvent)],
) {
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    for (_, event) in events {
        last.insert(event.stream_id.clone(), event.stream_version as i64);
    }
    let rows = model
        .fetch_all("SELECT stream, first, last FROM chain ORDER BY stream", &[])
        .await
        .expect("chain");
    let found: BTreeMap<String, i64> = rows
        .into_iter()
        .map(|row| match &row[..] {
            [
                SqlValue::Text(stream),
                SqlValue::Int(first),
                SqlValue::Int(end),
            ] => {
                assert_eq!(*first, 1, "stream {stream} started after its first event");
                (stream.clone(), *end)
            }
            other => panic!("unexpected row {other:?}"),
        })
        .collect();
    assert_eq!(found, last, "a stream's events were handled out of order");
}

fn deposit(amount: i64) -> NewEvent {
    let payload = serde_json::to_vec(&Deposited { amount }).expect("encode");
    NewEvent::new("fleet_deposited", 1, payload, Metadata::new())
}

/// Appends `count` events over `streams` streams, one or two per append.
async fn write<S: EventStore>(store: &S, from: u64, count: u64, streams: u64) {
    let mut i = from;
    while i < from + count {
        let stream = format!("acct-{}", (i.wrapping_mul(2_654_435_761) >> 7) % streams);
        let events = if i.is_multiple_of(3) && i + 1 < from + count {
            vec![deposit(i as i64), deposit(i as i64 + 1)]
        } else {
            vec![deposit(i as i64)]
        };
        i += events.len() as u64;
        store
            .append("acct", &stream, ExpectedVersion::Any, events)
            .await
            .expect("append");
    }
}

/// How many streams `events` hold.
fn streams(events: &[(Cursor, StoredEvent)]) -> usize {
    let ids: BTreeSet<&str> = events.iter().map(|(_, e)| e.stream_id.as_str()).collect();
    ids.len()
}

async fn everything<S: EventStore>(store: &S) -> Vec<(Cursor, StoredEvent)> {
    let mut all = Vec::new();
    let mut after = Cursor::START;
    loop {
        let batch = store.read_after(after, 1000).await.expect("read");
        let Some((last, _)) = batch.last() else {
            return all;
        };
        after = *last;
        all.extend(batch);
    }
}

// ---- the partitions split the log ----------------------------------------------------------

/// Every event read through the partitioned sources lands in exactly one partition, each
/// partition sees its events in the log's order, and a stream's events share a partition;
/// with a custom key, events with the same key do.
#[tokio::test]
async fn partitions_split_the_log_exactly_once_in_order() {
    let store = cqrs_runtime::memory::InMemoryEventStore::new();
    write(&store, 0, 600, 37).await;
    let all = everything(&store).await;
    for key in [
        PartitionKey::StreamId,
        PartitionKey::by(|e: &StoredEvent| {
            std::borrow::Cow::Owned((e.global_position % 50).to_string())
        }),
    ] {
        let custom = matches!(key, PartitionKey::Custom(_));
        let mut owner: BTreeMap<u64, u32> = BTreeMap::new();
        let mut key_partition: BTreeMap<String, u32> = BTreeMap::new();
        for index in 0..5 {
            let partition = Partition::new("split", index, 5, key.clone());
            let source = partition.source(store.clone());
            let mut after = Cursor::START;
            let mut previous = 0;
            loop {
                // Small reads: most come back with none of the partition's events.
                let batch = source.read(after, 7, None).await.expect("read");
                if batch.events.is_empty() && batch.through == after {
                    break;
                }
                for (cursor, event) in &batch.events {
                    assert!(cursor.position > previous, "out of the log's order");
                    previous = cursor.position;
                    let earlier = owner.insert(cursor.position, index);
                    assert_eq!(
                        earlier, None,
                        "position {} in two partitions",
                        cursor.position
                    );
                    let k = key.key(event).into_owned();
                    let first = *key_partition.entry(k.clone()).or_insert(index);
                    assert_eq!(first, index, "key {k} in two partitions");
                }
                after = batch.through;
            }
        }
        let positions: Vec<u64> = all.iter().map(|(c, _)| c.position).collect();
        assert_eq!(
            owner.keys().copied().collect::<Vec<_>>(),
            positions,
            "every event in a partition"
        );
        let used: BTreeSet<u32> = owner.values().copied().collect();
        assert_eq!(
            used.len(),
            5,
            "every partition got events (custom: {custom})"
        );
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use cqrs_runtime::processing::reaction::{ReactionContext, ReactionError, Reactor, reactor};
    use cqrs_runtime::projection::Outcome;
    use cqrs_runtime::sqlite::SqliteEventStore;

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("cqrs-fleet-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir.join(name)
    }

    /// Four partitions of one SQL model, caught up one after the other while events keep
    /// coming, give the model of an unpartitioned rebuild; every event once, in stream order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn partitions_of_a_sql_model_equal_a_clean_rebuild() {
        let path = temp("events.sqlite");
        let store = SqliteEventStore::open(&path).await.expect("open");
        let model = SqlReadModel::<Ledger, _>::open(store.clone())
            .await
            .expect("model");
        for round in 0..3 {
            write(&store, round * 300, 300, 23).await;
            for index in 0..4 {
                let partition = Partition::new("fleet_ledger", index, 4, PartitionKey::StreamId);
                let runner = ProjectionRunner::new(
                    partition.source(store.clone()),
                    model.partition(&partition),
                )
                .with_leases(store.clone())
                .batch_size(17);
                runner.catch_up().await.expect("catch up");
            }
        }
        let all = everything(&store).await;
        assert_in_order(&model, &all).await;

        let clean_store = SqliteEventStore::open(path.with_file_name("clean.sqlite"))
            .await
            .expect("open");
        let clean = SqlReadModel::<Ledger, _>::open(clean_store.clone())
            .await
            .expect("model");
        ProjectionRunner::new(store.clone(), clean.clone())
            .with_leases(clean_store)
            .rebuild()
            .await
            .expect("rebuild");
        let rows = dump(&model).await;
        assert_eq!(rows.len(), all.len() + streams(&all));
        assert_eq!(rows, dump(&clean).await);
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }

    /// Records every event it reacts to, in the order it does.
    struct Recorder {
        seen: std::sync::Arc<std::sync::Mutex<Vec<(String, u64, u64)>>>,
    }

    impl Reactor<()> for Recorder {
        const NAME: &'static str = "fleet_recorder";
        const VERSION: u32 = 1;
        const HANDLED: &'static [&'static str] = &["fleet_deposited"];

        async fn react(
            &self,
            event: &StoredEvent,
            _ctx: &mut ReactionContext<'_, ()>,
        ) -> Result<Outcome, ReactionError> {
            self.seen.lock().expect("seen").push((
                event.stream_id.clone(),
                event.stream_version,
                event.global_position,
            ));
            Ok(Outcome::Applied)
        }
    }

    /// A reactor split into 4 partitions, run by two workers of a fleet in this process while
    /// events are appended: each event is reacted to exactly once, each stream in order, the
    /// partitions spread 2 and 2.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_partitioned_reactor_reacts_once_per_event_in_stream_order() {
        let path = temp("events.sqlite");
        let store = SqliteEventStore::open(&path).await.expect("open");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let worker = || {
            let (events, seen) = (store.clone(), seen.clone());
            Fleet::new("fleet_recorder", 4, store.clone(), move |p| {
                let handler =
                    reactor(Recorder { seen: seen.clone() }, (), events.clone()).partition(&p);
                ProjectionRunner::new(p.source(events.clone()), handler).batch_size(13)
            })
            .heartbeat(Duration::from_millis(20))
            .spawn()
        };
        let first = worker();
        write(&store, 0, 300, 17).await;
        let second = worker();
        write(&store, 300, 300, 17).await;
        for running in [&first, &second] {
            assert!(
                running
                    .handle()
                    .wait_until(Duration::from_secs(30), |s| s.live_workers == 2
                        && s.held.len() == 2)
                    .await,
                "two partitions each: {:?}",
                running.handle().status()
            );
        }
        let head = EventStore::head(&store).await.expect("head").position;
        Fleet::wait_for(&store, "fleet_recorder", 4, head, Duration::from_secs(30))
            .await
            .expect("caught up");
        first.stop().await.expect("stop");
        second.stop().await.expect("stop");

        let seen = seen.lock().expect("seen").clone();
        let all = everything(&store).await;
        let mut positions: Vec<u64> = seen.iter().map(|(_, _, p)| *p).collect();
        positions.sort_unstable();
        let expected: Vec<u64> = all.iter().map(|(c, _)| c.position).collect();
        assert_eq!(positions, expected, "every event exactly once");
        let mut last: BTreeMap<&str, u64> = BTreeMap::new();
        for (stream, version, _) in &seen {
            let before = last.insert(stream, *version).unwrap_or(0);
            assert_eq!(*version, before + 1, "stream {stream} out of order");
        }
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }

    /// The partition count is recorded at the first start: a worker with another count is
    /// refused; a re-partition is refused while a worker runs, and afterwards the new count
    /// rebuilds the cleared model.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_partition_count_is_refused_until_repartitioned() {
        let path = temp("events.sqlite");
        let store = SqliteEventStore::open(&path).await.expect("open");
        write(&store, 0, 200, 11).await;
        let model = SqlReadModel::<Ledger, _>::open(store.clone())
            .await
            .expect("model");
        let fleet = |count: u32| {
            let (events, model) = (store.clone(), model.clone());
            Fleet::new("fleet_ledger", count, store.clone(), move |p| {
                ProjectionRunner::new(p.source(events.clone()), model.partition(&p))
            })
            .heartbeat(Duration::from_millis(20))
        };

        let running = fleet(4).spawn();
        assert!(
            running
                .handle()
                .wait_until(Duration::from_secs(30), |s| s.held.len() == 4)
                .await,
            "the only worker runs every partition"
        );
        let head = EventStore::head(&store).await.expect("head").position;
        Fleet::wait_for(&store, "fleet_ledger", 4, head, Duration::from_secs(30))
            .await
            .expect("caught up");

        match fleet(8).run(std::future::pending()).await {
            Err(FleetError::PartitionCount {
                stored: 4,
                requested: 8,
                ..
            }) => {}
            other => panic!("expected a refusal, got {other:?}"),
        }
        match Fleet::repartition(&store, "fleet_ledger", 8).await {
            Err(FleetError::Running { .. }) => {}
            other => panic!("expected a refusal while running, got {other:?}"),
        }
        running.stop().await.expect("stop");

        model.clear().await.expect("clear");
        let previous = Fleet::repartition(&store, "fleet_ledger", 8)
            .await
            .expect("repartition");
        assert_eq!(previous, Some(4));
        match fleet(4).run(std::future::pending()).await {
            Err(FleetError::PartitionCount {
                stored: 8,
                requested: 4,
                ..
            }) => {}
            other => panic!("expected a refusal, got {other:?}"),
        }
        let running = fleet(8).spawn();
        Fleet::wait_for(&store, "fleet_ledger", 8, head, Duration::from_secs(30))
            .await
            .expect("rebuilt under 8 partitions");
        running.stop().await.expect("stop");
        let all = everything(&store).await;
        assert_in_order(&model, &all).await;
        let rows = dump(&model).await;
        assert_eq!(rows.len(), all.len() + streams(&all));
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }

    /// A process manager split into 4 partitions by its correlation key (the order id), run
    /// by two workers of a fleet: each order's instance lives in exactly one partition, and
    /// its events and its payment deadline are handled there, once: paid orders end, unpaid
    /// ones are cancelled by their deadline and their stock released, each exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_partitioned_process_manager_keeps_each_instance_in_its_partition() {
        use cqrs_runtime::processing::reaction::{ManualClock, process_key, process_manager};
        use shop::{Fulfilment, PayOrder, Shop};

        type Bus = Shop<SqliteEventStore>;
        let path = temp("events.sqlite");
        let store = SqliteEventStore::open(&path).await.expect("open");
        let shop = Shop::new(&store);
        let clock = ManualClock::at(chrono::Utc::now());
        let handler = {
            let (shop, store, clock) = (shop.clone(), store.clone(), clock.clone());
            move |p: &Partition| {
                process_manager::<Fulfilment, _, _>(shop.clone(), store.clone())
                    .clock(clock.clone())
                    .partition(p)
            }
        };
        let worker = || {
            let (events, handler) = (store.clone(), handler.clone());
            Fleet::new("fulfilment", 4, store.clone(), move |p| {
                ProjectionRunner::new(p.source(events.clone()), handler(&p))
                    .batch_size(3)
                    .poll_interval(Duration::from_millis(5), Duration::from_millis(50))
            })
            .key(process_key::<Fulfilment, Bus>())
            .heartbeat(Duration::from_millis(20))
            .spawn()
        };
        let first = worker();
        let second = worker();
        let orders: Vec<String> = (0..8).map(|i| format!("o-{i}")).collect();
        for order in &orders {
            shop.place(order, 1).await;
        }
        let head = EventStore::head(&store).await.expect("head").position;
        Fleet::wait_for(&store, "fulfilment", 4, head, Duration::from_secs(30))
            .await
            .expect("caught up");

        // Each instance in exactly one partition: the one its key hashes to.
        let partition =
            |i: u32| Partition::new("fulfilment", i, 4, process_key::<Fulfilment, Bus>());
        let mut spread = BTreeSet::new();
        for order in &orders {
            let mut holders = Vec::new();
            for i in 0..4 {
                if handler(&partition(i))
                    .instance(order)
                    .await
                    .expect("instance")
                    .is_some()
                {
                    holders.push(i);
                }
            }
            assert_eq!(holders.len(), 1, "{order} held by partitions {holders:?}");
            spread.insert(holders[0]);
        }
        assert!(spread.len() > 1, "the instances spread over the partitions");

        // Two are paid; a day later the others are cancelled by their deadlines.
        for order in &orders[..2] {
            shop.orders
                .execute(PayOrder {
                    order: order.clone(),
                })
                .await
                .expect("pay");
        }
        clock.advance(shop::PAYMENT_WINDOW + chrono::Duration::seconds(1));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut cancelled = 0;
            for order in &orders[2..] {
                if shop
                    .orders
                    .load(order)
                    .await
                    .expect("order")
                    .state
                    .cancelled
                {
                    cancelled += 1;
                }
            }
            let reserved = shop
                .stock
                .load(&"tea".to_owned())
                .await
                .expect("stock")
                .state
                .reserved;
            if cancelled == 6 && reserved == 2 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{cancelled} of 6 unpaid orders cancelled, {reserved} reserved"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let head = EventStore::head(&store).await.expect("head").position;
        Fleet::wait_for(&store, "fulfilment", 4, head, Duration::from_secs(30))
            .await
            .expect("caught up");
        tokio::time::sleep(Duration::from_millis(200)).await;
        first.stop().await.expect("stop");
        second.stop().await.expect("stop");

        // Once each: one cancellation per unpaid order, one release of its stock; every
        // instance ended.
        for order in &orders[2..] {
            let events = store.read_stream("order", order, 1).await.expect("read");
            let cancellations = events
                .iter()
                .filter(|e| e.event_type == "order_cancelled")
                .count();
            assert_eq!(cancellations, 1, "{order} cancelled once");
        }
        let stock = store.read_stream("stock", "tea", 1).await.expect("read");
        let released = stock
            .iter()
            .filter(|e| e.event_type == "stock_released")
            .count();
        assert_eq!(released, 6, "each unpaid order's stock released once");
        for order in &orders {
            for i in 0..4 {
                assert!(
                    handler(&partition(i))
                        .instance(order)
                        .await
                        .expect("instance")
                        .is_none(),
                    "{order} ended"
                );
            }
        }
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }
}

// ---- PostgreSQL: a fleet of worker processes -----------------------------------------------

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use cqrs_runtime::postgres::{PostgresConfig, PostgresEventStore};
    use std::process::{Child, Command};

    const PARTITIONS: u32 = 8;

    /// The partitioned reaction: each deposit sends one `Count` command to the `Tally` of its
    /// account, kept in a store of its own. A command sent twice for one deposit would append
    /// a second `Counted` event: the tally store proves each was issued exactly once.
    mod tally {
        use cqrs_runtime::processing::reaction::{ReactionContext, ReactionError};
        use cqrs_runtime::store::StoredEvent;
        use cqrs_runtime::{
            Command, CommandBus, Event, EventEnum, EventStore, Repository, aggregate, reactor,
        };
        use serde::{Deserialize, Serialize};

        use super::super::{Deposited, LedgerEvent};

        #[derive(Debug, Clone, PartialEq, Command)]
        #[command(aggregate = Tally)]
        pub struct Count {
            #[id]
            pub account: String,
            pub amount: i64,
        }

        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
        #[event(name = "fleet_counted", version = 1)]
        pub struct Counted {
            pub amount: i64,
        }

        #[derive(Debug, Clone, PartialEq, EventEnum)]
        pub enum TallyEvent {
            Counted(Counted),
        }

        #[derive(Debug, Clone, PartialEq, thiserror::Error)]
        #[error("never")]
        pub struct TallyError;

        #[derive(Debug, Default)]
        pub struct Tally;

        #[aggregate(name = "fleet_tally", id = String, events = TallyEvent, error = TallyError)]
        impl Tally {
            #[command(any)]
            fn count(&self, cmd: Count) -> Result<Counted, TallyError> {
                Ok(Counted { amount: cmd.amount })
            }

            #[apply]
            fn counted(&mut self, _: &Counted) {}
        }

        #[derive(CommandBus)]
        pub struct Tallies<S: EventStore> {
            pub tallies: Repository<Tally, S>,
        }

        #[derive(Debug, Default)]
        pub struct Counting;

        #[reactor(name = "fleet_counting", events = LedgerEvent)]
        impl<S: EventStore> Counting {
            #[on]
            async fn deposited(
                &self,
                e: &Deposited,
                stored: &StoredEvent,
                ctx: &mut ReactionContext<'_, Tallies<S>>,
            ) -> Result<(), ReactionError> {
                ctx.send(Count {
                    account: stored.stream_id.clone(),
                    amount: e.amount,
                })
                .await?;
                Ok(())
            }
        }
    }

    fn url() -> String {
        std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    /// The URL with the worker's `application_name`, which names its sessions (and so its
    /// leases) in `pg_stat_activity`.
    fn named(url: &str, worker: &str) -> String {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}application_name={worker}")
    }

    async fn client(url: &str) -> Result<tokio_postgres::Client, String> {
        let connect = tokio_postgres::connect(url, tokio_postgres::NoTls);
        let (client, connection) = tokio::time::timeout(Duration::from_secs(5), connect)
            .await
            .map_err(|_| "timed out after 5 s".to_owned())?
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        Ok(client)
    }

    async fn open(url: &str, schema: &str) -> PostgresEventStore {
        let config = PostgresConfig::new(url).expect("url");
        config
            .schema(schema)
            .expect("schema")
            .open()
            .await
            .expect("open")
    }

    /// A worker process: runs the fleet until it is killed or its stop file appears.
    #[test]
    fn fleet_child() {
        let Ok(url) = std::env::var("CQRS_FLEET_CHILD") else {
            return; // an ordinary test run: nothing to do
        };
        let var = |name: &str| std::env::var(name).unwrap_or_default();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let store = open(&url, &var("CQRS_FLEET_SCHEMA")).await;
            let model = SqlReadModel::<Ledger, _>::open(store.clone())
                .await
                .expect("model");
            let events = store.clone();
            let stop = std::path::PathBuf::from(var("CQRS_FLEET_STOP"));
            let fleet = Fleet::new("fleet_ledger", PARTITIONS, store.clone(), move |p| {
                ProjectionRunner::new(p.source(events.clone()), model.partition(&p))
                    .batch_size(25)
                    .poll_interval(Duration::from_millis(5), Duration::from_millis(50))
            })
            .heartbeat(Duration::from_millis(100));
            let tallies = open(&url, &format!("{}_tally", var("CQRS_FLEET_SCHEMA"))).await;
            let events = store.clone();
            let checkpoints = store.clone();
            let reactions = Fleet::new("fleet_counting", PARTITIONS, store.clone(), move |p| {
                let bus = tally::Tallies {
                    tallies: cqrs_runtime::Repository::new(tallies.clone()),
                };
                let handler = cqrs_runtime::processing::reaction::reactor(
                    tally::Counting,
                    bus,
                    checkpoints.clone(),
                )
                .partition(&p);
                ProjectionRunner::new(p.source(events.clone()), handler)
                    .batch_size(25)
                    .poll_interval(Duration::from_millis(5), Duration::from_millis(50))
            })
            .heartbeat(Duration::from_millis(100));
            let stopped = |stop: std::path::PathBuf| async move {
                while !stop.exists() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            };
            let (ledger, counting) = tokio::join!(
                fleet.run(stopped(stop.clone())),
                reactions.run(stopped(stop))
            );
            ledger.expect("the ledger worker failed");
            counting.expect("the reaction worker failed");
        });
    }

    fn spawn_worker(url: &str, schema: &str, worker: &str, stop: &std::path::Path) -> Child {
        Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "postgres::fleet_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("CQRS_FLEET_CHILD", named(url, worker))
            .env("CQRS_FLEET_SCHEMA", schema)
            .env("CQRS_FLEET_STOP", stop)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn a worker")
    }

    /// Which worker (`application_name`) holds each partition's lease, from `pg_locks`.
    async fn holders(
        store: &PostgresEventStore,
        db: &tokio_postgres::Client,
    ) -> BTreeMap<u32, String> {
        let mut held = BTreeMap::new();
        for index in 0..PARTITIONS {
            let name = cqrs_runtime::processing::partition_name("fleet_ledger", index, PARTITIONS);
            let Some(pid) = store.lease_holder(&name).await.expect("lease holder") else {
                continue;
            };
            let row = db
                .query_opt(
                    "SELECT application_name FROM pg_stat_activity WHERE pid = $1",
                    &[&pid],
                )
                .await
                .expect("pg_stat_activity");
            if let Some(row) = row {
                held.insert(index, row.get::<_, String>(0));
            }
        }
        held
    }

    fn per_worker(held: &BTreeMap<u32, String>) -> BTreeMap<String, Vec<u32>> {
        let mut by: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for (index, worker) in held {
            by.entry(worker.clone()).or_default().push(*index);
        }
        by
    }

    /// Polls the lease table until `until` holds; panics with the last view after `within`.
    async fn wait_for_leases(
        store: &PostgresEventStore,
        db: &tokio_postgres::Client,
        within: Duration,
        what: &str,
        children: &mut [(String, Child)],
        mut until: impl FnMut(&BTreeMap<u32, String>) -> bool,
    ) -> BTreeMap<u32, String> {
        let deadline = Instant::now() + within;
        loop {
            for (name, child) in children.iter_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("worker {name} ended early: {status}");
                }
            }
            let held = holders(store, db).await;
            if until(&held) {
                return held;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not after {within:?}; leases: {:?}",
                per_worker(&held)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn kill(mut child: Child) {
        use std::os::unix::process::ExitStatusExt;
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        assert_eq!(
            status.signal(),
            Some(9),
            "the worker was not killed: {status}"
        );
    }

    /// 3 worker processes run an 8-partition SQL model and an 8-partition reaction while two
    /// writers append; one worker is killed with SIGKILL and a fourth started midway. The
    /// model equals a clean rebuild (every event once, in stream order), every reaction's
    /// command took effect exactly once (the tally store holds one `Counted` per deposit), and
    /// the lease table shows the killed worker's partitions taken over and every partition
    /// held, spread evenly, at the end.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_fleet_survives_a_killed_worker_and_rebalances() {
        let url = url();
        let db = match client(&url).await {
            Ok(db) => db,
            Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("PostgreSQL is unreachable at {url} and CI=true: {e}")
            }
            Err(e) => {
                eprintln!("skipping a PostgreSQL test: cannot connect to {url}: {e}");
                return;
            }
        };
        let schema = format!("cqrs_fleet_{}", uuid::Uuid::now_v7().simple());
        let clean_schema = format!("{schema}_clean");
        let tally_schema = format!("{schema}_tally");
        let store = open(&url, &schema).await;
        let model = SqlReadModel::<Ledger, _>::open(store.clone())
            .await
            .expect("model");
        let stop = std::env::temp_dir().join(format!("cqrs-fleet-stop-{schema}"));
        let _ = std::fs::remove_file(&stop);

        const STREAMS: u64 = 41;
        const PER_WRITER: u64 = 1500;
        write(&store, 0, 200, STREAMS).await;
        let mut children: Vec<(String, Child)> = ["w0", "w1", "w2"]
            .into_iter()
            .map(|w| (w.to_owned(), spawn_worker(&url, &schema, w, &stop)))
            .collect();
        let writers: Vec<_> = (0..2u64)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    let from = 1000 + w * 10_000;
                    let mut i = from;
                    while i < from + PER_WRITER {
                        write(&store, i, 25, STREAMS).await;
                        i += 25;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                })
            })
            .collect();

        // Every partition held by the three workers, none above its share.
        let before = wait_for_leases(
            &store,
            &db,
            Duration::from_secs(60),
            "8 partitions held by 3 workers",
            &mut children,
            |held| {
                let by = per_worker(held);
                held.len() == PARTITIONS as usize
                    && by.len() == 3
                    && by.values().all(|p| p.len() <= 3)
            },
        )
        .await;
        let killed: Vec<u32> = per_worker(&before)
            .remove("w0")
            .expect("w0 holds partitions");
        // Let the workers get some batches in, then kill w0 in the middle of its work.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (_, w0) = children.remove(0);
        kill(w0);
        let taken_over = wait_for_leases(
            &store,
            &db,
            Duration::from_secs(60),
            "the killed worker's partitions taken over",
            &mut children,
            |held| held.len() == PARTITIONS as usize && !held.values().any(|w| w == "w0"),
        )
        .await;
        for index in &killed {
            assert_ne!(taken_over[index], "w0");
        }
        children.push(("w3".to_owned(), spawn_worker(&url, &schema, "w3", &stop)));

        for writer in writers {
            writer.await.expect("writer");
        }
        let head = EventStore::head(&store).await.expect("head").position;
        let after = wait_for_leases(
            &store,
            &db,
            Duration::from_secs(60),
            "8 partitions spread over w1, w2, w3",
            &mut children,
            |held| {
                let by = per_worker(held);
                let sizes: Vec<usize> = by.values().map(Vec::len).collect();
                held.len() == PARTITIONS as usize
                    && by.len() == 3
                    && by.contains_key("w3")
                    && sizes.iter().max().copied().unwrap_or(0)
                        - sizes.iter().min().copied().unwrap_or(0)
                        <= 1
            },
        )
        .await;
        Fleet::wait_for(
            &store,
            "fleet_ledger",
            PARTITIONS,
            head,
            Duration::from_secs(60),
        )
        .await
        .expect("every partition caught up");
        Fleet::wait_for(
            &store,
            "fleet_counting",
            PARTITIONS,
            head,
            Duration::from_secs(60),
        )
        .await
        .expect("every reaction partition caught up");
        eprintln!(
            "leases before the kill: {:?}; after: {:?}",
            per_worker(&before),
            per_worker(&after)
        );

        // The model equals a clean, unpartitioned rebuild.
        let all = everything(&store).await;
        assert_eq!(all.len() as u64, 200 + 2 * PER_WRITER);
        assert!(streams(&all) > 30, "events spread over the streams");
        assert_in_order(&model, &all).await;
        let clean_store = open(&url, &clean_schema).await;
        let clean = SqlReadModel::<Ledger, _>::open(clean_store.clone())
            .await
            .expect("clean model");
        ProjectionRunner::new(store.clone(), clean.clone())
            .with_leases(clean_store)
            .rebuild()
            .await
            .expect("rebuild");
        assert_eq!(dump(&model).await, dump(&clean).await);

        // Every deposit's `Count` command took effect exactly once: per account, as many
        // `Counted` events as deposits, with the same amounts in the same order.
        let mut deposits: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for (_, event) in &all {
            let amount = serde_json::from_slice::<Deposited>(&event.payload)
                .expect("a deposit")
                .amount;
            deposits
                .entry(event.stream_id.clone())
                .or_default()
                .push(amount);
        }
        let tallies = open(&url, &tally_schema).await;
        let mut counted: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for (_, event) in tallies
            .read_after(Cursor::START, usize::MAX)
            .await
            .expect("tallies")
        {
            if event.stream_type != "fleet_tally" {
                continue; // the repository's recorded decisions
            }
            let amount = serde_json::from_slice::<tally::Counted>(&event.payload)
                .expect("a count")
                .amount;
            counted
                .entry(event.stream_id.clone())
                .or_default()
                .push(amount);
        }
        assert_eq!(
            counted, deposits,
            "each deposit counted exactly once, in order"
        );

        std::fs::write(&stop, b"stop").expect("stop file");
        for (name, mut child) in children {
            let status = child.wait().expect("wait");
            assert!(status.success(), "worker {name} ended with {status}");
        }
        let _ = std::fs::remove_file(&stop);
        for s in [&schema, &clean_schema, &tally_schema] {
            db.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{s}\" CASCADE"))
                .await
                .expect("drop schema");
        }
    }
}
