//! A small shop for reaction tests: orders and stock, and a command bus over any store.
#![allow(dead_code, missing_docs, reason = "shared by several test crates")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use cqrs_runtime::error::CommandError;
use cqrs_runtime::memory::InMemoryEventStore;
use cqrs_runtime::prelude::*;
use cqrs_runtime::processing::reaction::Dispatch;
use cqrs_runtime::repository::Once;
use serde::{Deserialize, Serialize};

// ---- three aggregates ---------------------------------------------------------------------

#[derive(Debug, Clone, Command)]
#[command(aggregate = Order)]
pub struct PlaceOrder {
    #[id]
    pub order: String,
    pub qty: u32,
}

#[derive(Debug, Clone, PartialEq, Command)]
#[command(aggregate = Order)]
pub struct CancelOrder {
    #[id]
    pub order: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Command)]
#[command(aggregate = Order)]
pub struct PayOrder {
    #[id]
    pub order: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "order_paid", version = 1)]
pub struct OrderPaid {
    pub order: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "order_placed", version = 1)]
pub struct OrderPlaced {
    pub order: String,
    pub qty: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "order_cancelled", version = 1)]
pub struct OrderCancelled {
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum OrderEvent {
    Placed(OrderPlaced),
    Paid(OrderPaid),
    Cancelled(OrderCancelled),
}

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("the order is cancelled")]
    Cancelled,
    #[error("the order is paid")]
    Paid,
}

#[derive(Debug, Default)]
pub struct Order {
    pub cancelled: bool,
    pub paid: bool,
}

#[aggregate(name = "order", id = String, events = OrderEvent, error = OrderError)]
impl Order {
    #[command(create)]
    fn place(&self, cmd: PlaceOrder) -> Result<OrderPlaced, OrderError> {
        Ok(OrderPlaced {
            order: cmd.order,
            qty: cmd.qty,
        })
    }

    #[command]
    fn cancel(&self, cmd: CancelOrder) -> Result<OrderCancelled, OrderError> {
        if self.cancelled {
            return Err(OrderError::Cancelled);
        }
        if self.paid {
            return Err(OrderError::Paid);
        }
        Ok(OrderCancelled { reason: cmd.reason })
    }

    #[command]
    fn pay(&self, cmd: PayOrder) -> Result<OrderPaid, OrderError> {
        if self.cancelled {
            return Err(OrderError::Cancelled);
        }
        Ok(OrderPaid { order: cmd.order })
    }

    #[apply]
    fn paid(&mut self, _: &OrderPaid) {
        self.paid = true;
    }

    #[apply]
    fn placed(&mut self, _: &OrderPlaced) {}

    #[apply]
    fn cancelled(&mut self, _: &OrderCancelled) {
        self.cancelled = true;
    }
}

#[derive(Debug, Clone, PartialEq, Command)]
#[command(aggregate = Stock)]
pub struct Reserve {
    #[id]
    pub sku: String,
    pub order: String,
    pub qty: u32,
}

#[derive(Debug, Clone, PartialEq, Command)]
#[command(aggregate = Stock)]
pub struct Release {
    #[id]
    pub sku: String,
    pub order: String,
    pub qty: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "stock_released", version = 1)]
pub struct Released {
    pub order: String,
    pub qty: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "stock_reserved", version = 1)]
pub struct Reserved {
    pub order: String,
    pub qty: u32,
}

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum StockEvent {
    Reserved(Reserved),
    Released(Released),
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum StockError {
    #[error("only {available} left")]
    OutOfStock { available: u32 },
}

#[derive(Debug, Default)]
pub struct Stock {
    pub reserved: u32,
}

/// How much of each sku there is.
pub const SHELF: u32 = 10;

#[aggregate(name = "stock", id = String, events = StockEvent, error = StockError)]
impl Stock {
    #[command(any)]
    fn reserve(&self, cmd: Reserve) -> Result<Reserved, StockError> {
        let available = SHELF - self.reserved;
        if cmd.qty > available {
            return Err(StockError::OutOfStock { available });
        }
        Ok(Reserved {
            order: cmd.order,
            qty: cmd.qty,
        })
    }

    #[command(any)]
    fn release(&self, cmd: Release) -> Result<Released, StockError> {
        Ok(Released {
            order: cmd.order,
            qty: cmd.qty,
        })
    }

    #[apply]
    fn reserved(&mut self, e: &Reserved) {
        self.reserved += e.qty;
    }

    #[apply]
    fn released(&mut self, e: &Released) {
        self.reserved -= e.qty;
    }
}

// ---- the bus --------------------------------------------------------------------------------

/// Orders and stock in the store `S`; counts the dispatches that reached a repository.
pub struct Shop<S: EventStore = InMemoryEventStore> {
    pub orders: Repository<Order, S>,
    pub stock: Repository<Stock, S>,
    pub dispatched: Arc<AtomicU32>,
}

impl<S: EventStore + Clone> Clone for Shop<S> {
    fn clone(&self) -> Self {
        Self {
            orders: self.orders.clone(),
            stock: self.stock.clone(),
            dispatched: Arc::clone(&self.dispatched),
        }
    }
}

impl<S: EventStore + Clone> Shop<S> {
    /// Repositories over `store`, with retries (reactions and customers race on orders).
    pub fn new(store: &S) -> Self {
        Self {
            orders: Repository::new(store.clone()).retry(RetryPolicy::attempts(10)),
            stock: Repository::new(store.clone()).retry(RetryPolicy::attempts(10)),
            dispatched: Arc::new(AtomicU32::new(0)),
        }
    }

    /// Places `order` for `qty`.
    pub async fn place(&self, order: &str, qty: u32) {
        self.orders
            .execute(PlaceOrder {
                order: order.into(),
                qty,
            })
            .await
            .expect("place");
    }
}

impl<S: EventStore> Dispatch<Order> for Shop<S> {
    async fn execute_once(
        &self,
        command: OrderCommand,
        metadata: CommandMetadata,
    ) -> Result<Once<Order>, CommandError<OrderError>> {
        self.dispatched.fetch_add(1, Ordering::SeqCst);
        self.orders.execute_once(command, metadata).await
    }
}

impl<S: EventStore> Dispatch<Stock> for Shop<S> {
    async fn execute_once(
        &self,
        command: StockCommand,
        metadata: CommandMetadata,
    ) -> Result<Once<Stock>, CommandError<StockError>> {
        self.dispatched.fetch_add(1, Ordering::SeqCst);
        self.stock.execute_once(command, metadata).await
    }
}

// ---- a process manager: reserve, wait for payment, cancel when unpaid ------------------------

use chrono::Duration;
use cqrs_runtime::event::{DecodeError, Decoded};
use cqrs_runtime::processing::reaction::{
    Deadline, DueDeadline, HandledBy, ProcessContext, ProcessManager, ReactionError, Role, Route,
};
use cqrs_runtime::store::StoredEvent;

/// How long an order may stay unpaid.
pub const PAYMENT_WINDOW: Duration = Duration::days(1);

#[derive(Debug, Serialize, Deserialize)]
pub struct PaymentDue {
    pub order: String,
}

impl Deadline for PaymentDue {
    const NAME: &'static str = "payment_due";
}

/// `Fulfilment` schedules `PaymentDue` (and takes it in `on_deadline`).
impl HandledBy<Fulfilment> for PaymentDue {}

/// One instance per order: reserves its stock, then waits for the payment; an order unpaid
/// after [`PAYMENT_WINDOW`] is cancelled and its stock released; an order out of stock is
/// cancelled at once.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Fulfilment {
    pub order: String,
    pub reserved: u32,
}

impl<S: EventStore> ProcessManager<Shop<S>> for Fulfilment {
    const NAME: &'static str = "fulfilment";
    const VERSION: u32 = 1;
    const HANDLED: &'static [&'static str] = &["order_placed", "order_paid", "order_cancelled"];
    const DEADLINES: &'static [&'static str] = &["payment_due"];

    fn route(event: &StoredEvent) -> Result<Route, DecodeError> {
        if event.stream_type != "order" {
            return Ok(Route::Foreign);
        }
        let role = match event.event_type.as_str() {
            "order_placed" => Role::Start,
            "order_paid" | "order_cancelled" => Role::End,
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
        ctx: &mut ProcessContext<'_, Shop<S>, Self>,
    ) -> Result<(), ReactionError> {
        let decoded = OrderEvent::decode(&event.event_type, event.event_version, &event.payload)?;
        let Decoded::One(event) = decoded else {
            return Ok(());
        };
        match event {
            OrderEvent::Placed(placed) => {
                self.order = placed.order.clone();
                let reserve = Reserve {
                    sku: "tea".into(),
                    order: placed.order.clone(),
                    qty: placed.qty,
                };
                match ctx.send(reserve).await {
                    Ok(_) => {
                        self.reserved = placed.qty;
                        let due = ctx.now() + PAYMENT_WINDOW;
                        ctx.schedule(
                            due,
                            &PaymentDue {
                                order: placed.order,
                            },
                        )?;
                    }
                    Err(CommandError::Rejected(StockError::OutOfStock { .. })) => {
                        ctx.send(CancelOrder {
                            order: placed.order,
                            reason: "out of stock".into(),
                        })
                        .await?;
                        ctx.end();
                    }
                    Err(other) => return Err(other.into()),
                }
            }
            OrderEvent::Paid(_) => ctx.cancel::<PaymentDue>(),
            OrderEvent::Cancelled(_) => {
                ctx.cancel::<PaymentDue>();
                self.release(ctx).await?;
            }
        }
        Ok(())
    }

    async fn on_deadline(
        &mut self,
        deadline: &DueDeadline,
        ctx: &mut ProcessContext<'_, Shop<S>, Self>,
    ) -> Result<(), ReactionError> {
        let due: PaymentDue = deadline.decode()?;
        match ctx
            .send(CancelOrder {
                order: due.order,
                reason: "unpaid".into(),
            })
            .await
        {
            // Paid in the meantime: the payment ends the instance when it comes by.
            Err(CommandError::Rejected(OrderError::Paid)) => return Ok(()),
            other => other?,
        };
        self.release(ctx).await?;
        ctx.end();
        Ok(())
    }
}

impl Fulfilment {
    async fn release<S: EventStore>(
        &mut self,
        ctx: &mut ProcessContext<'_, Shop<S>, Self>,
    ) -> Result<(), ReactionError> {
        if self.reserved > 0 {
            ctx.send(Release {
                sku: "tea".into(),
                order: self.order.clone(),
                qty: self.reserved,
            })
            .await?;
            self.reserved = 0;
        }
        Ok(())
    }
}
