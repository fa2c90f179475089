//! Reactions written with the DSL (`#[reactor]`, `#[process_manager]`, `#[derive(CommandBus)]`,
//! `#[derive(Deadline)]`) over an order-fulfilment domain, on the in-memory store and on
//! SQLite: an order reserves stock, a failed payment releases it and cancels the order, an
//! out-of-stock order is cancelled (a typed rejection compensated), an unpaid order is
//! cancelled by its deadline (a manual clock), a restart fires a deadline once, and a
//! redelivered log adds no effect. With `--features postgres`, on PostgreSQL too.

#[allow(dead_code)] // the shared domain is used only in part here
#[path = "../examples/order_fulfilment/domain.rs"]
mod domain;

use chrono::{Duration, Utc};
use cqrs_runtime::memory::{InMemoryCheckpoints, InMemoryLeases};
use cqrs_runtime::prelude::*;
use cqrs_runtime::processing::Runner;
use cqrs_runtime::processing::reaction::{
    InMemoryReactions, InstanceChange, ManualClock, ProcessManager, ReactionStore, Reactor,
    process_manager, reactor,
};
use cqrs_runtime::sqlite::SqliteEventStore;
use cqrs_runtime::store::{CheckpointChange, CheckpointCommit, CheckpointStore, Cursor};
use cqrs_runtime::testkit::{ProcessTest, ReactorTest};
use domain::*;

/// The reactions of one store: the bus, where reactions keep their state, the clock.
struct World<S: EventStore, St, C> {
    store: S,
    shop: Shop<S>,
    reactions: St,
    checkpoints: C,
    clock: ManualClock,
}

impl<S, St, C> World<S, St, C>
where
    S: EventStore + Clone,
    St: ReactionStore,
    C: CheckpointStore + Clone,
{
    fn new(store: S, reactions: St, checkpoints: C) -> Self {
        Self {
            shop: Shop::new(&store),
            store,
            reactions,
            checkpoints,
            clock: ManualClock::at(Utc::now()),
        }
    }

    /// Runs the reactor and the process manager until both caught up and nothing more is due:
    /// a fresh runner each time, as after a restart.
    async fn settle(&self) {
        for _ in 0..4 {
            let payments = Runner::new(
                self.store.clone(),
                reactor(
                    PaymentsToOrders,
                    Shop::new(&self.store),
                    self.checkpoints.clone(),
                ),
            )
            .with_leases(InMemoryLeases::new());
            payments.catch_up().await.expect("the reactor catches up");
            let fulfilment = Runner::new(
                self.store.clone(),
                process_manager::<Fulfilment, _, _>(Shop::new(&self.store), self.reactions.clone())
                    .clock(self.clock.clone()),
            )
            .with_leases(InMemoryLeases::new());
            fulfilment
                .catch_up()
                .await
                .expect("the process manager catches up");
        }
    }

    async fn place(&self, order: &str, qty: u32) {
        self.shop
            .orders
            .execute(PlaceOrder {
                order: order.into(),
                sku: "tea".into(),
                qty,
            })
            .await
            .expect("place");
    }

    async fn order(&self, order: &str) -> Order {
        self.shop
            .orders
            .load(&order.to_owned())
            .await
            .expect("order")
            .state
    }

    async fn reserved(&self) -> u32 {
        self.shop
            .inventory
            .load(&"tea".to_owned())
            .await
            .map(|loaded| loaded.state.reserved)
            .unwrap_or(0)
    }

    async fn events_of(&self, stream_type: &str, id: &str) -> Vec<String> {
        self.store
            .read_stream(stream_type, id, 1)
            .await
            .expect("read")
            .into_iter()
            .map(|e| e.event_type)
            .collect()
    }

    async fn head(&self) -> u64 {
        self.store.head().await.expect("head").position
    }

    async fn instance(&self, key: &str) -> Option<Fulfilment> {
        process_manager::<Fulfilment, _, _>(Shop::new(&self.store), self.reactions.clone())
            .instance(key)
            .await
            .expect("instance")
    }
}

/// Every scenario, in order, on one store.
async fn scenarios<S, St, C>(world: World<S, St, C>)
where
    S: EventStore + Clone,
    St: ReactionStore,
    C: CheckpointStore + Clone,
{
    // An order placed reserves its stock and waits for its payment.
    world.place("o-1", 2).await;
    world.settle().await;
    assert_eq!(world.reserved().await, 2, "o-1 reserved its stock");
    let instance = world.instance("o-1").await.expect("o-1 is under way");
    assert_eq!(instance.reserved, 2);

    // Its payment is captured: the reactor marks it paid, which ends its instance.
    world
        .shop
        .payments
        .execute(CapturePayment {
            payment: "p-1".into(),
            order: "o-1".into(),
        })
        .await
        .expect("capture");
    world.settle().await;
    assert!(world.order("o-1").await.paid, "the reactor paid o-1");
    assert!(world.instance("o-1").await.is_none(), "o-1 is done");

    // A failed payment releases the stock and cancels the order.
    world.place("o-2", 3).await;
    world.settle().await;
    assert_eq!(world.reserved().await, 5);
    world
        .shop
        .payments
        .execute(FailPayment {
            payment: "p-2".into(),
            order: "o-2".into(),
            reason: "card declined".into(),
        })
        .await
        .expect("fail");
    world.settle().await;
    assert!(world.order("o-2").await.cancelled, "o-2 cancelled");
    assert_eq!(world.reserved().await, 2, "o-2's stock released");
    assert_eq!(
        world.events_of("order", "o-2").await,
        ["order_placed", "order_cancelled"]
    );

    // An order the shelf cannot serve: the reservation's typed rejection is compensated by a
    // cancellation.
    world.place("o-3", 50).await;
    world.settle().await;
    assert!(world.order("o-3").await.cancelled, "o-3 cancelled");
    assert_eq!(world.reserved().await, 2, "nothing reserved for o-3");

    // A payment captured for a cancelled order is refunded (the reactor's compensation).
    world
        .shop
        .payments
        .execute(CapturePayment {
            payment: "p-3".into(),
            order: "o-3".into(),
        })
        .await
        .expect("capture");
    world.settle().await;
    assert_eq!(
        world.events_of("payment", "p-3").await,
        ["payment_captured", "payment_refunded"]
    );

    // An unpaid order: nothing happens before its deadline, then it is cancelled once.
    world.place("o-4", 4).await;
    world.settle().await;
    assert_eq!(world.reserved().await, 6);
    world.clock.advance(PAYMENT_WINDOW - Duration::minutes(1));
    world.settle().await;
    assert!(!world.order("o-4").await.cancelled, "not due yet");
    // The restart in the middle: `settle` makes new runners over the same store each round.
    world.clock.advance(Duration::minutes(2));
    world.settle().await;
    world.settle().await;
    assert_eq!(
        world.events_of("order", "o-4").await,
        ["order_placed", "order_cancelled"],
        "the deadline fired once, across restarts"
    );
    assert_eq!(world.reserved().await, 2, "o-4's stock released once");
    assert_eq!(
        world.events_of("inventory", "tea").await.len(),
        5,
        "reserved o-1, o-2, o-4; released o-2, o-4; o-3's rejection left no event"
    );
    world.clock.advance(Duration::days(30));
    world.settle().await;
    assert_eq!(world.events_of("order", "o-4").await.len(), 2, "still once");

    // Redelivery. The reactor is stateless: it reads the whole log again, and its commands
    // are found applied (a rejected one is decided again, and rejected again).
    let head = world.head().await;
    rewind(
        &world.checkpoints,
        <PaymentsToOrders as Reactor<Shop<S>>>::NAME,
        Cursor::START,
    )
    .await;
    world.settle().await;
    assert_eq!(world.head().await, head, "no new event");

    // The process manager after a crash between its commands and its commit: the order's
    // reservation took effect, but no instance, deadline or checkpoint was stored.
    world.clock.set(Utc::now());
    let before = world.store.head().await.expect("head");
    world.place("o-5", 1).await;
    world.settle().await;
    assert_eq!(world.reserved().await, 3);
    let head = world.head().await;
    let name = <Fulfilment as ProcessManager<Shop<S>>>::NAME;
    let claim = world.reactions.claim(name).await.expect("claim");
    let now = world
        .reactions
        .checkpoint(name)
        .await
        .expect("checkpoint")
        .expect("a checkpoint");
    world
        .reactions
        .commit_changes(
            name,
            CheckpointCommit {
                fence: claim.fence,
                change: CheckpointChange::Reset {
                    at: before,
                    version: now.version,
                    fingerprint: now.fingerprint,
                },
                record: vec![],
                remove: vec![],
            },
            vec![InstanceChange::Remove { key: "o-5".into() }],
        )
        .await
        .expect("forget the batch");
    assert!(world.instance("o-5").await.is_none());
    world.settle().await;
    assert_eq!(
        world.head().await,
        head,
        "the reservation was found applied"
    );
    assert_eq!(world.reserved().await, 3, "reserved once");
    let instance = world.instance("o-5").await.expect("o-5 is under way again");
    assert_eq!(instance.reserved, 1);
    // Its deadline was scheduled again, and fires once.
    world.clock.advance(PAYMENT_WINDOW * 2);
    world.settle().await;
    assert_eq!(
        world.events_of("order", "o-5").await,
        ["order_placed", "order_cancelled"]
    );
    assert_eq!(world.reserved().await, 2);
}

/// Moves the checkpoint of the reactor `name` to `at` (as if the batches after it had not
/// committed).
async fn rewind(checkpoints: &impl CheckpointStore, name: &str, at: Cursor) {
    let claim = checkpoints.claim(name).await.expect("claim");
    let now = checkpoints
        .checkpoint(name)
        .await
        .expect("checkpoint")
        .expect("a checkpoint");
    checkpoints
        .commit(
            name,
            CheckpointCommit {
                fence: claim.fence,
                change: CheckpointChange::Reset {
                    at,
                    version: now.version,
                    fingerprint: now.fingerprint,
                },
                record: vec![],
                remove: vec![],
            },
        )
        .await
        .expect("rewind");
}

#[tokio::test]
async fn fulfilment_in_memory() {
    let store = InMemoryEventStore::new();
    scenarios(World::new(
        store,
        InMemoryReactions::new(),
        InMemoryCheckpoints::new(),
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fulfilment_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("cqrs-reactions-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let store = SqliteEventStore::open(dir.join("events.sqlite"))
        .await
        .expect("open");
    scenarios(World::new(store.clone(), store.clone(), store)).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// On PostgreSQL (`--features postgres`): a schema of its own at `DATABASE_URL`; skipped with
/// a printed reason when the server is unreachable, failed instead when `CI=true`.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread")]
async fn fulfilment_on_postgres() {
    use cqrs_runtime::postgres::PostgresConfig;
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("cqrs_reactions_{}", uuid::Uuid::now_v7().simple());
    let config = PostgresConfig::new(&url)
        .expect("url")
        .schema(&schema)
        .expect("schema");
    let opened = tokio::time::timeout(std::time::Duration::from_secs(5), config.open()).await;
    let store = match opened {
        Ok(Ok(store)) => store,
        Ok(Err(e)) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipping a PostgreSQL test: cannot connect to {url}: {e}");
            return;
        }
        Ok(Err(e)) => panic!("PostgreSQL is unreachable at {url} and CI=true: {e}"),
        Err(_) => panic!("connecting to PostgreSQL at {url} timed out"),
    };
    scenarios(World::new(store.clone(), store.clone(), store)).await;
}

#[test]
fn the_test_kit_drives_the_macros() {
    let store = InMemoryEventStore::new();
    let placed = OrderPlaced {
        order: "o-9".into(),
        sku: "tea".into(),
        qty: 3,
    };
    let now = Utc::now();
    let started = ProcessTest::<Fulfilment, Shop<InMemoryEventStore>>::new(Shop::new(&store))
        .at(now)
        .when_in("order", "o-9", placed.clone());
    started
        .then_expect_command(ReserveStock {
            sku: "tea".into(),
            order: "o-9".into(),
            qty: 3,
        })
        .then_expect_scheduled::<PaymentDue>(now + PAYMENT_WINDOW);
    ProcessTest::<Fulfilment, Shop<InMemoryEventStore>>::new(Shop::new(&store))
        .rejecting::<ReserveStock, _>(|_| Some(InventoryError::OutOfStock { available: 1 }))
        .when_in("order", "o-9", placed)
        .then_expect_command_names(&["ReserveStock", "CancelOrder"])
        .then_expect_ended();
    ProcessTest::<Fulfilment, Shop<InMemoryEventStore>>::new(Shop::new(&store))
        .given_state(Fulfilment {
            order: "o-9".into(),
            sku: "tea".into(),
            reserved: 3,
        })
        .when_deadline(
            now,
            PaymentDue {
                order: "o-9".into(),
            },
        )
        .then_expect_command_names(&["CancelOrder", "ReleaseStock"])
        .then_expect_ended();
    ReactorTest::new(PaymentsToOrders, Shop::new(&store))
        .rejecting::<MarkPaid, _>(|_| Some(OrderError::Cancelled))
        .when_in(
            "payment",
            "p-9",
            PaymentCaptured {
                payment: "p-9".into(),
                order: "o-9".into(),
            },
        )
        .then_expect_command(RefundPayment {
            payment: "p-9".into(),
        });
}
