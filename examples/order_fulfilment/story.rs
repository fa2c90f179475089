//! The order-fulfilment story: commands from customers and the payment provider, the reactions
//! that follow, and a day passing on a manual clock. Printed by `examples/order_fulfilment.rs`
//! and checked against its transcript by `tests/example_transcript.rs`.

use std::io::Write;

use chrono::{Duration, Utc};
use cqrs_runtime::memory::{InMemoryCheckpoints, InMemoryLeases};
use cqrs_runtime::prelude::*;
use cqrs_runtime::processing::Runner;
use cqrs_runtime::processing::reaction::{
    InMemoryReactions, ManualClock, process_manager, reactor,
};

use super::domain::*;

/// What can go wrong in the story.
pub type Failure = Box<dyn std::error::Error + Send + Sync>;

/// The store, the bus, and where the reactions keep their state.
pub struct Story<W> {
    store: InMemoryEventStore,
    shop: Shop<InMemoryEventStore>,
    reactions: InMemoryReactions,
    checkpoints: InMemoryCheckpoints,
    clock: ManualClock,
    out: W,
}

impl<W: Write> Story<W> {
    /// A fresh shop writing its transcript to `out`.
    pub fn new(out: W) -> Self {
        let store = InMemoryEventStore::new();
        Self {
            shop: Shop::new(&store),
            store,
            reactions: InMemoryReactions::new(),
            checkpoints: InMemoryCheckpoints::new(),
            clock: ManualClock::at(Utc::now()),
            out,
        }
    }

    /// Runs both reactions until they caught up and nothing is due, with new runners (as a
    /// restarted process would): what they did is in the store.
    async fn react(&self) -> Result<(), Failure> {
        for _ in 0..3 {
            Runner::new(
                self.store.clone(),
                reactor(
                    PaymentsToOrders,
                    Shop::new(&self.store),
                    self.checkpoints.clone(),
                ),
            )
            .with_leases(InMemoryLeases::new())
            .catch_up()
            .await?;
            Runner::new(
                self.store.clone(),
                process_manager::<Fulfilment, _, _>(Shop::new(&self.store), self.reactions.clone())
                    .clock(self.clock.clone()),
            )
            .with_leases(InMemoryLeases::new())
            .catch_up()
            .await?;
        }
        Ok(())
    }

    async fn reserved(&self) -> Result<u32, Failure> {
        Ok(self
            .shop
            .inventory
            .load(&"tea".to_owned())
            .await
            .map(|loaded| loaded.state.reserved)
            .unwrap_or(0))
    }

    async fn order_line(&self, order: &str) -> Result<String, Failure> {
        let events = self.store.read_stream("order", order, 1).await?;
        let mut line = String::new();
        for event in events {
            if event.event_type == "order_cancelled" {
                let cancelled: OrderCancelled = serde_json::from_slice(&event.payload)?;
                line = format!("cancelled ({})", cancelled.reason);
            } else if event.event_type == "order_paid" {
                line = "paid".into();
            }
        }
        if line.is_empty() {
            line = "open".into();
        }
        Ok(line)
    }

    async fn place(&mut self, order: &str, qty: u32) -> Result<(), Failure> {
        self.shop
            .orders
            .execute(PlaceOrder {
                order: order.into(),
                sku: "tea".into(),
                qty,
            })
            .await?;
        self.react().await?;
        let state = self.order_line(order).await?;
        let reserved = self.reserved().await?;
        writeln!(
            self.out,
            "placed {order} for {qty} tea: order {state}, {reserved} of {SHELF} tea reserved"
        )?;
        Ok(())
    }

    /// The whole story.
    pub async fn run(mut self) -> Result<W, Failure> {
        writeln!(self.out, "== an order paid")?;
        self.place("o-1", 2).await?;
        self.shop
            .payments
            .execute(CapturePayment {
                payment: "p-1".into(),
                order: "o-1".into(),
            })
            .await?;
        self.react().await?;
        let o1 = self.order_line("o-1").await?;
        writeln!(self.out, "payment p-1 captured: order o-1 {o1}")?;

        writeln!(
            self.out,
            "== a payment failed: stock released, order cancelled"
        )?;
        self.place("o-2", 3).await?;
        self.shop
            .payments
            .execute(FailPayment {
                payment: "p-2".into(),
                order: "o-2".into(),
                reason: "card declined".into(),
            })
            .await?;
        self.react().await?;
        let (o2, reserved) = (self.order_line("o-2").await?, self.reserved().await?);
        writeln!(
            self.out,
            "payment p-2 failed: order o-2 {o2}, {reserved} of {SHELF} tea reserved"
        )?;

        writeln!(self.out, "== out of stock: the rejection is compensated")?;
        self.place("o-3", 50).await?;
        self.shop
            .payments
            .execute(CapturePayment {
                payment: "p-3".into(),
                order: "o-3".into(),
            })
            .await?;
        self.react().await?;
        let refunds = self
            .store
            .read_stream("payment", "p-3", 1)
            .await?
            .iter()
            .filter(|e| e.event_type == "payment_refunded")
            .count();
        writeln!(
            self.out,
            "payment p-3 captured for the cancelled o-3: refunded {refunds} time(s)"
        )?;

        writeln!(self.out, "== an unpaid order meets its deadline")?;
        self.place("o-4", 4).await?;
        self.clock.advance(PAYMENT_WINDOW - Duration::minutes(1));
        self.react().await?;
        let o4 = self.order_line("o-4").await?;
        writeln!(self.out, "23h59m later: order o-4 {o4}")?;
        self.clock.advance(Duration::minutes(2));
        self.react().await?;
        let (o4, reserved) = (self.order_line("o-4").await?, self.reserved().await?);
        writeln!(
            self.out,
            "24h01m later: order o-4 {o4}, {reserved} of {SHELF} tea reserved"
        )?;
        self.clock.advance(Duration::days(30));
        self.react().await?;
        let cancellations = self
            .store
            .read_stream("order", "o-4", 1)
            .await?
            .iter()
            .filter(|e| e.event_type == "order_cancelled")
            .count();
        writeln!(
            self.out,
            "a month and many restarts later: o-4 was cancelled {cancellations} time(s)"
        )?;
        Ok(self.out)
    }
}
