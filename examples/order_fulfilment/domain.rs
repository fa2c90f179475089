//! Order fulfilment across three aggregates (orders, payments, inventory), coordinated by a
//! reactor and a process manager written with the DSL. Shared by
//! `examples/order_fulfilment.rs` and the integration tests.

use chrono::Duration;
use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// How long an order may stay unpaid before it is cancelled.
pub const PAYMENT_WINDOW: Duration = Duration::days(1);

/// How many units of each sku the warehouse holds.
pub const SHELF: u32 = 10;

// ---- orders ---------------------------------------------------------------------------------

/// A customer orders `qty` units of `sku`.
#[derive(Debug, Clone, PartialEq, Command)]
#[command(aggregate = Order)]
pub struct PlaceOrder {
    #[id]
    pub order: String,
    pub sku: String,
    pub qty: u32,
}

/// The order is paid.
#[derive(Debug, Clone, PartialEq, Command)]
#[command(aggregate = Order)]
pub struct MarkPaid {
    #[id]
    pub order: String,
}

/// The order is cancelled.
#[derive(Debug, Clone, PartialEq, Command)]
#[command(aggregate = Order)]
pub struct CancelOrder {
    #[id]
    pub order: String,
    pub reason: String,
}

/// An order was placed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "order_placed", version = 1)]
pub struct OrderPlaced {
    pub order: String,
    pub sku: String,
    pub qty: u32,
}

/// An order was paid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "order_paid", version = 1)]
pub struct OrderPaid {
    pub order: String,
}

/// An order was cancelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "order_cancelled", version = 1)]
pub struct OrderCancelled {
    pub order: String,
    pub reason: String,
}

/// The events of an order.
#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum OrderEvent {
    Placed(OrderPlaced),
    Paid(OrderPaid),
    Cancelled(OrderCancelled),
}

/// Why an order refused a command.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OrderError {
    #[error("the order is cancelled")]
    Cancelled,
    #[error("the order is paid")]
    Paid,
}

/// An order.
#[derive(Debug, Default)]
pub struct Order {
    pub paid: bool,
    pub cancelled: bool,
}

#[aggregate(name = "order", id = String, events = OrderEvent, error = OrderError)]
impl Order {
    #[command(create)]
    fn place(&self, cmd: PlaceOrder) -> Result<OrderPlaced, OrderError> {
        Ok(OrderPlaced {
            order: cmd.order,
            sku: cmd.sku,
            qty: cmd.qty,
        })
    }

    #[command]
    fn mark_paid(&self, cmd: MarkPaid) -> Result<OrderPaid, OrderError> {
        if self.cancelled {
            return Err(OrderError::Cancelled);
        }
        Ok(OrderPaid { order: cmd.order })
    }

    #[command]
    fn cancel(&self, cmd: CancelOrder) -> Result<OrderCancelled, OrderError> {
        if self.cancelled {
            return Err(OrderError::Cancelled);
        }
        if self.paid {
            return Err(OrderError::Paid);
        }
        Ok(OrderCancelled {
            order: cmd.order,
            reason: cmd.reason,
        })
    }

    #[apply]
    fn placed(&mut self, _: &OrderPlaced) {}

    #[apply]
    fn paid(&mut self, _: &OrderPaid) {
        self.paid = true;
    }

    #[apply]
    fn cancelled(&mut self, _: &OrderCancelled) {
        self.cancelled = true;
    }
}

// ---- payments -------------------------------------------------------------------------------

/// The payment provider charged the customer.
#[derive(Debug, Clone, PartialEq, Command)]
#[command(aggregate = Payment)]
pub struct CapturePayment {
    #[id]
    pub payment: String,
    pub order: String,
}

/// The payment provider refused the charge.
#[derive(Debug, Clone, PartialEq, Command)]
#[command(aggregate = Payment)]
pub struct FailPayment {
    #[id]
    pub payment: String,
    pub order: String,
    pub reason: String,
}

/// The money goes back to the customer.
#[derive(Debug, Clone, PartialEq, Command)]
#[command(aggregate = Payment)]
pub struct RefundPayment {
    #[id]
    pub payment: String,
}

/// A payment was captured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "payment_captured", version = 1)]
pub struct PaymentCaptured {
    pub payment: String,
    pub order: String,
}

/// A payment failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "payment_failed", version = 1)]
pub struct PaymentFailed {
    pub payment: String,
    pub order: String,
    pub reason: String,
}

/// A payment was refunded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "payment_refunded", version = 1)]
pub struct PaymentRefunded {
    pub payment: String,
}

/// The events of a payment.
#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum PaymentEvent {
    Captured(PaymentCaptured),
    Failed(PaymentFailed),
    Refunded(PaymentRefunded),
}

/// Why a payment refused a command.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PaymentError {
    #[error("the payment is settled")]
    Settled,
    #[error("only a captured payment is refunded")]
    NotCaptured,
}

/// A payment of one order.
#[derive(Debug, Default)]
pub struct Payment {
    pub settled: bool,
    pub captured: bool,
    pub refunded: bool,
}

#[aggregate(name = "payment", id = String, events = PaymentEvent, error = PaymentError)]
impl Payment {
    #[command(create)]
    fn capture(&self, cmd: CapturePayment) -> Result<PaymentCaptured, PaymentError> {
        Ok(PaymentCaptured {
            payment: cmd.payment,
            order: cmd.order,
        })
    }

    #[command(create)]
    fn fail(&self, cmd: FailPayment) -> Result<PaymentFailed, PaymentError> {
        Ok(PaymentFailed {
            payment: cmd.payment,
            order: cmd.order,
            reason: cmd.reason,
        })
    }

    #[command]
    fn refund(&self, cmd: RefundPayment) -> Result<Option<PaymentRefunded>, PaymentError> {
        if !self.captured {
            return Err(PaymentError::NotCaptured);
        }
        if self.refunded {
            return Ok(None);
        }
        Ok(Some(PaymentRefunded {
            payment: cmd.payment,
        }))
    }

    #[apply]
    fn captured(&mut self, _: &PaymentCaptured) {
        self.settled = true;
        self.captured = true;
    }

    #[apply]
    fn failed(&mut self, _: &PaymentFailed) {
        self.settled = true;
    }

    #[apply]
    fn refunded(&mut self, _: &PaymentRefunded) {
        self.refunded = true;
    }
}

// ---- inventory ------------------------------------------------------------------------------

/// Sets `qty` units of `sku` aside for `order`.
#[derive(Debug, Clone, PartialEq, Command)]
#[command(aggregate = Inventory)]
pub struct ReserveStock {
    #[id]
    pub sku: String,
    pub order: String,
    pub qty: u32,
}

/// Puts the units set aside for `order` back on the shelf.
#[derive(Debug, Clone, PartialEq, Command)]
#[command(aggregate = Inventory)]
pub struct ReleaseStock {
    #[id]
    pub sku: String,
    pub order: String,
    pub qty: u32,
}

/// Stock was set aside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "stock_reserved", version = 1)]
pub struct StockReserved {
    pub sku: String,
    pub order: String,
    pub qty: u32,
}

/// Stock went back on the shelf.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "stock_released", version = 1)]
pub struct StockReleased {
    pub sku: String,
    pub order: String,
    pub qty: u32,
}

/// The events of a sku's inventory.
#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum InventoryEvent {
    Reserved(StockReserved),
    Released(StockReleased),
}

/// Why the inventory refused a command.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InventoryError {
    #[error("only {available} left")]
    OutOfStock { available: u32 },
}

/// The stock of one sku.
#[derive(Debug, Default)]
pub struct Inventory {
    pub reserved: u32,
}

#[aggregate(name = "inventory", id = String, events = InventoryEvent, error = InventoryError)]
impl Inventory {
    #[command(any)]
    fn reserve(&self, cmd: ReserveStock) -> Result<StockReserved, InventoryError> {
        let available = SHELF - self.reserved;
        if cmd.qty > available {
            return Err(InventoryError::OutOfStock { available });
        }
        Ok(StockReserved {
            sku: cmd.sku,
            order: cmd.order,
            qty: cmd.qty,
        })
    }

    #[command(any)]
    fn release(&self, cmd: ReleaseStock) -> Result<StockReleased, InventoryError> {
        Ok(StockReleased {
            sku: cmd.sku,
            order: cmd.order,
            qty: cmd.qty,
        })
    }

    #[apply]
    fn reserved(&mut self, e: &StockReserved) {
        self.reserved += e.qty;
    }

    #[apply]
    fn released(&mut self, e: &StockReleased) {
        self.reserved = self.reserved.saturating_sub(e.qty);
    }
}

// ---- the command bus ------------------------------------------------------------------------

/// The repositories reactions send commands through: a command of any other aggregate does
/// not compile.
#[derive(CommandBus)]
pub struct Shop<S: EventStore> {
    pub orders: Repository<Order, S>,
    pub payments: Repository<Payment, S>,
    pub inventory: Repository<Inventory, S>,
}

impl<S: EventStore + Clone> Shop<S> {
    /// Repositories over `store`, retrying conflicts (reactions and customers race on orders).
    pub fn new(store: &S) -> Self {
        Self {
            orders: Repository::new(store.clone()).retry(RetryPolicy::attempts(10)),
            payments: Repository::new(store.clone()).retry(RetryPolicy::attempts(10)),
            inventory: Repository::new(store.clone()).retry(RetryPolicy::attempts(10)),
        }
    }
}

// ---- a reactor: a captured payment pays its order, or is refunded ---------------------------

/// Marks an order paid when its payment is captured; refunds the payment when the order was
/// cancelled meanwhile (the rejection, typed, is the cue to compensate).
#[derive(Debug, Default)]
pub struct PaymentsToOrders;

#[reactor(name = "payments_to_orders", events = PaymentEvent, ignore(PaymentFailed, PaymentRefunded))]
impl<S: EventStore> PaymentsToOrders {
    #[on]
    async fn captured(
        &self,
        event: &PaymentCaptured,
        ctx: &mut ReactionContext<'_, Shop<S>>,
    ) -> Result<(), ReactionError> {
        let pay = MarkPaid {
            order: event.order.clone(),
        };
        match ctx.send(pay).await {
            Ok(_) => {}
            Err(CommandError::Rejected(OrderError::Cancelled)) => {
                ctx.send(RefundPayment {
                    payment: event.payment.clone(),
                })
                .await?;
            }
            Err(other) => return Err(other.into()),
        }
        Ok(())
    }
}

// ---- a process manager: reserve, wait for the payment, cancel when unpaid -------------------

/// The deadline of an unpaid order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Deadline)]
pub struct PaymentDue {
    pub order: String,
}

/// One instance per order: reserves its stock when it is placed (cancelling it when there is
/// none), releases the stock and cancels the order when its payment fails, and cancels an
/// order still unpaid after [`PAYMENT_WINDOW`].
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fulfilment {
    pub order: String,
    pub sku: String,
    pub reserved: u32,
}

#[process_manager(
    name = "fulfilment",
    events = [OrderEvent, PaymentEvent],
    ignore(PaymentCaptured, PaymentRefunded)
)]
impl<S: EventStore> Fulfilment {
    #[on(start, key = order)]
    async fn placed(
        &mut self,
        event: &OrderPlaced,
        ctx: &mut ProcessContext<'_, Shop<S>>,
    ) -> Result<(), ReactionError> {
        self.order = event.order.clone();
        self.sku = event.sku.clone();
        let reserve = ReserveStock {
            sku: event.sku.clone(),
            order: event.order.clone(),
            qty: event.qty,
        };
        match ctx.send(reserve).await {
            Ok(_) => {
                self.reserved = event.qty;
                let due = ctx.now() + PAYMENT_WINDOW;
                ctx.schedule(
                    due,
                    &PaymentDue {
                        order: event.order.clone(),
                    },
                )?;
            }
            // Compensation: no stock, no order.
            Err(CommandError::Rejected(InventoryError::OutOfStock { available })) => {
                ctx.send(CancelOrder {
                    order: event.order.clone(),
                    reason: format!("out of stock ({available} left)"),
                })
                .await?;
                ctx.end();
            }
            Err(other) => return Err(other.into()),
        }
        Ok(())
    }

    #[on(end, key = order)]
    async fn paid(
        &mut self,
        _event: &OrderPaid,
        ctx: &mut ProcessContext<'_, Shop<S>>,
    ) -> Result<(), ReactionError> {
        ctx.cancel::<PaymentDue>();
        Ok(())
    }

    #[on(end, key = order)]
    async fn payment_failed(
        &mut self,
        event: &PaymentFailed,
        ctx: &mut ProcessContext<'_, Shop<S>>,
    ) -> Result<(), ReactionError> {
        ctx.cancel::<PaymentDue>();
        self.release(ctx).await?;
        let cancel = CancelOrder {
            order: event.order.clone(),
            reason: format!("payment failed: {}", event.reason),
        };
        match ctx.send(cancel).await {
            // Cancelled by the customer meanwhile: nothing more to undo.
            Ok(_) | Err(CommandError::Rejected(OrderError::Cancelled)) => Ok(()),
            Err(other) => Err(other.into()),
        }
    }

    #[on(end, key = order)]
    async fn cancelled(
        &mut self,
        _event: &OrderCancelled,
        ctx: &mut ProcessContext<'_, Shop<S>>,
    ) -> Result<(), ReactionError> {
        ctx.cancel::<PaymentDue>();
        self.release(ctx).await
    }

    #[deadline]
    async fn payment_due(
        &mut self,
        due: PaymentDue,
        ctx: &mut ProcessContext<'_, Shop<S>>,
    ) -> Result<(), ReactionError> {
        let cancel = CancelOrder {
            order: due.order,
            reason: "unpaid".into(),
        };
        match ctx.send(cancel).await {
            Ok(_) => {}
            // Paid in the meantime: the payment ends the instance when it comes by.
            Err(CommandError::Rejected(OrderError::Paid)) => return Ok(()),
            Err(other) => return Err(other.into()),
        }
        self.release(ctx).await?;
        ctx.end();
        Ok(())
    }

    /// Puts the reserved stock back, once.
    async fn release(
        &mut self,
        ctx: &mut ProcessContext<'_, Shop<S>>,
    ) -> Result<(), ReactionError> {
        if self.reserved > 0 {
            ctx.send(ReleaseStock {
                sku: self.sku.clone(),
                order: self.order.clone(),
                qty: self.reserved,
            })
            .await?;
            self.reserved = 0;
        }
        Ok(())
    }
}
