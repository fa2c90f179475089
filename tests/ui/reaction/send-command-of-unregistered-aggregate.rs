use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Command)]
#[command(aggregate = Order)]
pub struct PlaceOrder { #[id] pub order: String }

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "placed", version = 1)]
pub struct Placed { pub order: String }

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum OrderEvent { Placed(Placed) }

#[derive(Debug, Default)]
pub struct Order;

#[aggregate(name = "order", id = String, events = OrderEvent, error = std::convert::Infallible)]
impl Order {
    #[command(create)]
    fn place(&self, cmd: PlaceOrder) -> Result<Placed, std::convert::Infallible> { Ok(Placed { order: cmd.order }) }
    #[apply]
    fn placed(&mut self, _: &Placed) {}
}

#[derive(Debug, Clone, Command)]
#[command(aggregate = Stock)]
pub struct Reserve { #[id] pub sku: String }

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "reserved", version = 1)]
pub struct Reserved {}

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum StockEvent { Reserved(Reserved) }

#[derive(Debug, Default)]
pub struct Stock;

#[aggregate(name = "stock", id = String, events = StockEvent, error = std::convert::Infallible)]
impl Stock {
    #[command(any)]
    fn reserve(&self, _cmd: Reserve) -> Result<Reserved, std::convert::Infallible> { Ok(Reserved {}) }
    #[apply]
    fn reserved(&mut self, _: &Reserved) {}
}

#[derive(Debug, Clone, Command)]
#[command(aggregate = Payment)]
pub struct Refund { #[id] pub payment: String }

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "refunded", version = 1)]
pub struct Refunded {}

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum PaymentEvent { Refunded(Refunded) }

#[derive(Debug, Default)]
pub struct Payment;

#[aggregate(name = "payment", id = String, events = PaymentEvent, error = std::convert::Infallible)]
impl Payment {
    #[command(any)]
    fn refund(&self, _cmd: Refund) -> Result<Refunded, std::convert::Infallible> { Ok(Refunded {}) }
    #[apply]
    fn refunded(&mut self, _: &Refunded) {}
}

/// Holds orders and payments, not stock.
#[derive(CommandBus)]
pub struct Shop {
    pub orders: Repository<Order, InMemoryEventStore>,
    pub payments: Repository<Payment, InMemoryEventStore>,
}

pub struct Reservations;

#[reactor(name = "reservations", events = OrderEvent)]
impl Reservations {
    #[on]
    async fn placed(&self, e: &Placed, ctx: &mut ReactionContext<'_, Shop>) -> Result<(), ReactionError> {
        ctx.send(Reserve { sku: e.order.clone() }).await?;
        Ok(())
    }
}

fn main() {}
