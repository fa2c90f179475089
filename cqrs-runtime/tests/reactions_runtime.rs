//! The reaction runtime with hand-written reactions (what `#[reactor]` and
//! `#[process_manager]` generate): commands dispatched through a bus with derived identities,
//! typed rejections handled, deadlines firing once, state and checkpoint committed together,
//! and a redelivered batch taking effect once.

mod shop;

use std::future::Future;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Duration, Utc};
use cqrs_runtime::error::CommandError;
use cqrs_runtime::event::{DecodeError, Decoded};
use cqrs_runtime::memory::{InMemoryCheckpoints, InMemoryLeases};
use cqrs_runtime::prelude::*;
use cqrs_runtime::processing::Runner;
use cqrs_runtime::processing::reaction::{
    Deadline, DueDeadline, HandledBy, InMemoryReactions, ManualClock, ProcessContext,
    ProcessManager, ReactionContext, ReactionError, Reactor, Role, Route, process_manager, reactor,
};
use cqrs_runtime::projection::Outcome;
use cqrs_runtime::store::StoredEvent;
use cqrs_runtime::testkit::{ProcessTest, ReactorTest};
use serde::{Deserialize, Serialize};
use shop::*;

// ---- a reactor: reserve stock for each order, cancel the order when there is none ----------

#[derive(Default)]
pub struct Reservations;

impl Reactor<Shop> for Reservations {
    const NAME: &'static str = "reservations";
    const VERSION: u32 = 1;
    const HANDLED: &'static [&'static str] = &["order_placed"];

    async fn react(
        &self,
        event: &StoredEvent,
        ctx: &mut ReactionContext<'_, Shop>,
    ) -> Result<Outcome, ReactionError> {
        if event.stream_type != "order" {
            return Ok(Outcome::Foreign);
        }
        let decoded = OrderEvent::decode(&event.event_type, event.event_version, &event.payload)?;
        let Decoded::One(OrderEvent::Placed(placed)) = decoded else {
            return Ok(Outcome::Applied); // cancelled: ignored
        };
        let reserve = Reserve {
            sku: "tea".into(),
            order: placed.order.clone(),
            qty: placed.qty,
        };
        match ctx.send(reserve).await {
            Ok(_) => {}
            Err(CommandError::Rejected(StockError::OutOfStock { available })) => {
                ctx.send(CancelOrder {
                    order: placed.order,
                    reason: format!("out of stock ({available} left)"),
                })
                .await?;
            }
            Err(other) => return Err(other.into()),
        }
        Ok(Outcome::Applied)
    }
}

fn shop(store: &InMemoryEventStore) -> Shop {
    Shop::new(store)
}

async fn place(shop: &Shop, order: &str, qty: u32) {
    shop.place(order, qty).await;
}

#[tokio::test]
async fn a_reactor_sends_commands_and_handles_rejections() {
    let store = InMemoryEventStore::new();
    let shop = shop(&store);
    for order in ["o-1", "o-2", "o-3"] {
        place(&shop, order, 4).await;
    }
    let checkpoints = InMemoryCheckpoints::new();
    let runner = Runner::new(
        store.clone(),
        reactor(Reservations, shop.clone(), checkpoints.clone()),
    )
    .with_leases(InMemoryLeases::new());
    runner.catch_up().await.expect("catch up");
    let stock = shop.stock.load(&"tea".to_owned()).await.expect("stock");
    assert_eq!(stock.state.reserved, 8, "two orders reserved");
    let third = shop.orders.load(&"o-3".to_owned()).await.expect("order");
    assert!(
        third.state.cancelled,
        "the third order was cancelled: no stock left"
    );
    // Commands carry the cause: causation = the order's event, correlation carried over.
    let cancel = store.read_stream("order", "o-3", 2).await.expect("read");
    let placed = store.read_stream("order", "o-3", 1).await.expect("read");
    // The event's cause is the command, whose id derives from the order's event.
    let command_id = cancel[0].metadata.causation_id.expect("a cause");
    assert_eq!(command_id.get_version_num(), 5, "a derived command id");
    assert_eq!(
        cancel[0].event_id,
        cqrs_runtime::repository::event_id(command_id, 0),
        "a derived event id"
    );
    assert_eq!(
        cancel[0].metadata.correlation_id,
        placed[0].metadata.correlation_id
    );
    // A second runner over the same checkpoint has nothing to do.
    assert_eq!(runner.catch_up().await.expect("again"), 0);
}

#[tokio::test]
async fn a_redelivered_batch_takes_effect_once() {
    let store = InMemoryEventStore::new();
    let shop = shop(&store);
    for order in ["o-1", "o-2", "o-3"] {
        place(&shop, order, 4).await;
    }
    // The first run's checkpoint is lost (another claim fences it out before its commit,
    // as a crash between the commands and the checkpoint would): the events come again.
    let checkpoints = InMemoryCheckpoints::new();
    let first = Runner::new(
        store.clone(),
        reactor(Reservations, shop.clone(), checkpoints.clone()),
    )
    .with_leases(InMemoryLeases::new());
    first.catch_up().await.expect("first run");
    let head = store.head().await.expect("head").position;
    // Forget the checkpoint: a reset to the start, as if nothing had committed.
    let claim = cqrs_runtime::store::CheckpointStore::claim(&checkpoints, "reservations")
        .await
        .expect("claim");
    cqrs_runtime::store::CheckpointStore::commit(
        &checkpoints,
        "reservations",
        cqrs_runtime::store::CheckpointCommit {
            fence: claim.fence,
            change: cqrs_runtime::store::CheckpointChange::Reset {
                at: cqrs_runtime::store::Cursor::START,
                version: 1,
                fingerprint: <Reservations as Reactor<Shop>>::FINGERPRINT,
            },
            record: vec![],
            remove: vec![],
        },
    )
    .await
    .expect("reset");
    let dispatched = shop.dispatched.load(Ordering::SeqCst);
    let second = Runner::new(
        store.clone(),
        reactor(Reservations, shop.clone(), checkpoints.clone()),
    )
    .with_leases(InMemoryLeases::new());
    second.catch_up().await.expect("second run");
    assert!(
        shop.dispatched.load(Ordering::SeqCst) > dispatched,
        "the commands were sent again"
    );
    let stock = shop.stock.load(&"tea".to_owned()).await.expect("stock");
    assert_eq!(stock.state.reserved, 8, "but took effect once");
    let cancelled = store.read_stream("order", "o-3", 1).await.expect("read");
    assert_eq!(cancelled.len(), 2, "one cancellation");
    assert_eq!(
        store.head().await.expect("head").position,
        head,
        "no new event at all"
    );
}

// ---- a process manager: cancel an order unpaid after a day ----------------------------------

#[derive(Debug, Serialize, Deserialize)]
pub struct PaymentDue {
    order: String,
}

impl Deadline for PaymentDue {
    const NAME: &'static str = "payment_due";
}

/// `PaymentWatch` schedules `PaymentDue` (and takes it in `on_deadline`).
impl HandledBy<PaymentWatch> for PaymentDue {}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PaymentWatch {
    order: String,
    reminders: u32,
}

impl ProcessManager<Shop> for PaymentWatch {
    const NAME: &'static str = "payment_watch";
    const VERSION: u32 = 1;
    const HANDLED: &'static [&'static str] = &["order_placed", "order_cancelled"];
    const DEADLINES: &'static [&'static str] = &["payment_due"];

    fn route(event: &StoredEvent) -> Result<Route, DecodeError> {
        if event.stream_type != "order" {
            return Ok(Route::Foreign);
        }
        let role = match event.event_type.as_str() {
            "order_placed" => Role::Start,
            "order_cancelled" => Role::End,
            _ => return Ok(Route::Ignored),
        };
        Ok(Route::Handle {
            key: event.stream_id.clone(),
            role,
        })
    }

    async fn handle(
        &mut self,
        event: &StoredEvent,
        ctx: &mut ProcessContext<'_, Shop, Self>,
    ) -> Result<(), ReactionError> {
        match OrderEvent::decode(&event.event_type, event.event_version, &event.payload)? {
            Decoded::One(OrderEvent::Placed(placed)) => {
                self.order = placed.order.clone();
                let due = ctx.now() + Duration::days(1);
                ctx.schedule(
                    due,
                    &PaymentDue {
                        order: placed.order,
                    },
                )?;
            }
            _ => ctx.cancel::<PaymentDue>(),
        }
        Ok(())
    }

    async fn on_deadline(
        &mut self,
        deadline: &DueDeadline,
        ctx: &mut ProcessContext<'_, Shop, Self>,
    ) -> Result<(), ReactionError> {
        let due: PaymentDue = deadline.decode()?;
        self.reminders += 1;
        ctx.send(CancelOrder {
            order: due.order,
            reason: "unpaid".into(),
        })
        .await?;
        ctx.end();
        Ok(())
    }
}

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("time")
        .with_timezone(&Utc)
}

#[tokio::test]
async fn a_deadline_fires_once_and_ends_the_instance() {
    let store = InMemoryEventStore::new();
    let shop = shop(&store);
    place(&shop, "o-1", 1).await;
    place(&shop, "o-2", 1).await;
    let reactions = InMemoryReactions::new();
    let clock = ManualClock::at(Utc::now());
    let handler =
        process_manager::<PaymentWatch, _, _>(shop.clone(), reactions.clone()).clock(clock.clone());
    let runner = Runner::new(store.clone(), handler).with_leases(InMemoryLeases::new());
    runner.catch_up().await.expect("catch up");
    let watch = runner.handler().instance("o-1").await.expect("load");
    assert_eq!(watch.map(|w| w.order), Some("o-1".to_owned()));
    // o-2 is cancelled by its customer: its instance ends, its deadline with it.
    shop.orders
        .execute(CancelOrder {
            order: "o-2".into(),
            reason: "changed my mind".into(),
        })
        .await
        .expect("cancel");
    runner.catch_up().await.expect("catch up");
    assert!(
        runner
            .handler()
            .instance("o-2")
            .await
            .expect("load")
            .is_none()
    );

    // Nothing is due yet; a day later, o-1's deadline fires: the order is cancelled.
    assert_eq!(runner.catch_up().await.expect("nothing due"), 0);
    clock.advance(Duration::days(1) + Duration::seconds(1));
    runner.catch_up().await.expect("the deadline fires");
    let order = shop.orders.load(&"o-1".to_owned()).await.expect("order");
    assert!(order.state.cancelled);
    assert!(
        runner
            .handler()
            .instance("o-1")
            .await
            .expect("load")
            .is_none()
    );
    // The cancellation it caused comes back as an event for an ended instance: an orphan.
    runner.catch_up().await.expect("catch up");
    assert_eq!(runner.handle().orphans(), 1);
    // Again later: nothing fires twice.
    clock.advance(Duration::days(30));
    runner.catch_up().await.expect("nothing more");
    let events = store.read_stream("order", "o-1", 1).await.expect("read");
    assert_eq!(events.len(), 2, "placed, cancelled once");
}

// ---- the test kit ----------------------------------------------------------------------------

#[test]
fn the_test_kit_records_commands_and_answers_rejections() {
    let store = InMemoryEventStore::new();
    let placed = OrderPlaced {
        order: "o-9".into(),
        qty: 3,
    };
    ReactorTest::new(Reservations, shop(&store))
        .when_in("order", "o-9", placed.clone())
        .then_expect_success()
        .then_expect_command(Reserve {
            sku: "tea".into(),
            order: "o-9".into(),
            qty: 3,
        })
        .then_expect_command_names(&["Reserve"]);
    ReactorTest::new(Reservations, shop(&store))
        .rejecting::<Reserve, _>(|_| Some(StockError::OutOfStock { available: 1 }))
        .when_in("order", "o-9", placed)
        .then_expect_command_names(&["Reserve", "CancelOrder"])
        .then_expect_command(CancelOrder {
            order: "o-9".into(),
            reason: "out of stock (1 left)".into(),
        });
    assert_eq!(
        store.head().now_or_never_position(),
        0,
        "nothing was dispatched"
    );
}

#[test]
fn the_test_kit_drives_a_process_manager() {
    let store = InMemoryEventStore::new();
    let placed = OrderPlaced {
        order: "o-1".into(),
        qty: 1,
    };
    let monday = at("2026-01-05T09:00:00Z");
    let started = ProcessTest::<PaymentWatch, Shop>::new(shop(&store))
        .at(monday)
        .when_in("order", "o-1", placed);
    started
        .then_expect_no_commands()
        .then_state(|w| w.order == "o-1")
        .then_expect_scheduled::<PaymentDue>(monday + Duration::days(1));
    let (_, due) = started.scheduled::<PaymentDue>().expect("scheduled");
    assert_eq!(due.order, "o-1");
    let placed_at = started.state().map(|w| w.order.clone());
    assert_eq!(placed_at.as_deref(), Some("o-1"));
    let due = at("2026-01-02T00:00:00Z");
    ProcessTest::<PaymentWatch, Shop>::new(shop(&store))
        .given_state(PaymentWatch {
            order: "o-1".into(),
            reminders: 0,
        })
        .when_deadline(
            due,
            PaymentDue {
                order: "o-1".into(),
            },
        )
        .then_expect_command(CancelOrder {
            order: "o-1".into(),
            reason: "unpaid".into(),
        })
        .then_expect_ended();
    let late = OrderCancelled {
        reason: "late".into(),
    };
    ProcessTest::<PaymentWatch, Shop>::new(shop(&store))
        .when_in("order", "o-1", late)
        .then_expect_orphan();
    // In another stream type, the same event is not this manager's.
    let elsewhere = ProcessTest::<PaymentWatch, Shop>::new(shop(&store)).when(OrderCancelled {
        reason: "late".into(),
    });
    assert!(elsewhere.state().is_none());
}

trait NowOrNever {
    fn now_or_never_position(self) -> u64;
}

impl<F: Future<Output = Result<cqrs_runtime::store::Cursor, cqrs_runtime::StoreError>>> NowOrNever
    for F
{
    fn now_or_never_position(self) -> u64 {
        let mut future = std::pin::pin!(self);
        match future
            .as_mut()
            .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
        {
            std::task::Poll::Ready(Ok(head)) => head.position,
            other => panic!("the in-memory head is ready at once: {other:?}"),
        }
    }
}
