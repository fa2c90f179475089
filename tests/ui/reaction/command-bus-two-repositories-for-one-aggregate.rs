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

#[derive(CommandBus)]
pub struct Shop {
    pub orders: Repository<Order, InMemoryEventStore>,
    pub stock: Repository<Stock, InMemoryEventStore>,
    pub more_orders: Repository<Order, InMemoryEventStore>,
}

fn main() {}
