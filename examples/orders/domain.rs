//! The e-commerce domain of the CQRS literature: customers, products and orders, three
//! aggregates with their own streams.

use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// Amounts are whole cents.
pub type Cents = i64;

/// Why a command was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShopError {
    #[error("an order needs at least one line")]
    EmptyOrder,
    #[error("a quantity must be positive")]
    ZeroQuantity,
    #[error("the order is {0}")]
    WrongStatus(&'static str),
}

// ---- customers ------------------------------------------------------------------------------

#[derive(Debug, Clone, Command)]
#[command(aggregate = Customer)]
pub struct RegisterCustomer {
    #[id]
    pub customer: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "customer_registered", version = 1)]
pub struct CustomerRegistered {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum CustomerEvent {
    Registered(CustomerRegistered),
}

#[derive(Debug, Default)]
pub struct Customer;

#[aggregate(name = "customer", id = String, events = CustomerEvent, error = ShopError)]
impl Customer {
    #[command(create)]
    fn register(&self, cmd: RegisterCustomer) -> Result<CustomerRegistered, ShopError> {
        Ok(CustomerRegistered { name: cmd.name })
    }

    #[apply]
    fn registered(&mut self, _: &CustomerRegistered) {}
}

// ---- products -------------------------------------------------------------------------------

#[derive(Debug, Clone, Command)]
#[command(aggregate = Product)]
pub struct AddProduct {
    #[id]
    pub sku: String,
    pub name: String,
    pub stock: u32,
}

#[derive(Debug, Clone, Command)]
#[command(aggregate = Product)]
pub struct Restock {
    #[id]
    pub sku: String,
    pub quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "product_added", version = 1)]
pub struct ProductAdded {
    pub name: String,
    pub stock: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "product_restocked", version = 1)]
pub struct ProductRestocked {
    pub quantity: u32,
}

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum ProductEvent {
    Added(ProductAdded),
    Restocked(ProductRestocked),
}

#[derive(Debug, Default)]
pub struct Product;

#[aggregate(name = "product", id = String, events = ProductEvent, error = ShopError)]
impl Product {
    #[command(create)]
    fn add(&self, cmd: AddProduct) -> Result<ProductAdded, ShopError> {
        Ok(ProductAdded {
            name: cmd.name,
            stock: cmd.stock,
        })
    }

    #[command]
    fn restock(&self, cmd: Restock) -> Result<ProductRestocked, ShopError> {
        if cmd.quantity == 0 {
            return Err(ShopError::ZeroQuantity);
        }
        Ok(ProductRestocked {
            quantity: cmd.quantity,
        })
    }

    #[apply]
    fn added(&mut self, _: &ProductAdded) {}

    #[apply]
    fn restocked(&mut self, _: &ProductRestocked) {}
}

// ---- orders ---------------------------------------------------------------------------------

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Shape)]
pub struct Line {
    pub sku: String,
    pub quantity: u32,
    pub unit_price: Cents,
}

#[derive(Debug, Clone, Command)]
#[command(aggregate = Order)]
pub struct Checkout {
    #[id]
    pub order: String,
    pub customer: String,
    pub lines: Vec<Line>,
}

#[derive(Debug, Clone, Command)]
#[command(aggregate = Order)]
pub struct ShipOrder {
    #[id]
    pub order: String,
}

#[derive(Debug, Clone, Command)]
#[command(aggregate = Order)]
pub struct CancelOrder {
    #[id]
    pub order: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "order_placed", version = 1)]
pub struct OrderPlaced {
    pub customer: String,
    pub lines: Vec<Line>,
}

impl OrderPlaced {
    /// The order's total.
    pub fn total(&self) -> Cents {
        self.lines
            .iter()
            .map(|l| l.unit_price * Cents::from(l.quantity))
            .sum()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "order_shipped", version = 1)]
pub struct OrderShipped {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "order_cancelled", version = 1)]
pub struct OrderCancelled {}

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum OrderEvent {
    Placed(OrderPlaced),
    Shipped(OrderShipped),
    Cancelled(OrderCancelled),
}

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Status {
    #[default]
    Placed,
    Shipped,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Placed => "placed",
            Status::Shipped => "shipped",
            Status::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Default)]
pub struct Order {
    status: Status,
}

#[aggregate(name = "order", id = String, events = OrderEvent, error = ShopError)]
impl Order {
    #[command(create)]
    fn place(&self, cmd: Checkout) -> Result<OrderPlaced, ShopError> {
        if cmd.lines.is_empty() {
            return Err(ShopError::EmptyOrder);
        }
        if cmd.lines.iter().any(|l| l.quantity == 0) {
            return Err(ShopError::ZeroQuantity);
        }
        Ok(OrderPlaced {
            customer: cmd.customer,
            lines: cmd.lines,
        })
    }

    #[command]
    fn ship(&self, _: ShipOrder) -> Result<OrderShipped, ShopError> {
        match self.status {
            Status::Placed => Ok(OrderShipped {}),
            other => Err(ShopError::WrongStatus(other.as_str())),
        }
    }

    #[command]
    fn cancel(&self, _: CancelOrder) -> Result<OrderCancelled, ShopError> {
        match self.status {
            Status::Placed => Ok(OrderCancelled {}),
            other => Err(ShopError::WrongStatus(other.as_str())),
        }
    }

    #[apply]
    fn placed(&mut self, _: &OrderPlaced) {
        self.status = Status::Placed;
    }

    #[apply]
    fn shipped(&mut self, _: &OrderShipped) {
        self.status = Status::Shipped;
    }

    #[apply]
    fn cancelled(&mut self, _: &OrderCancelled) {
        self.status = Status::Cancelled;
    }
}
