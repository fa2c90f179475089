//! The shop's three read models, each a projection, and the queries they answer.

use std::collections::BTreeMap;

use cqrs_runtime::prelude::*;
use cqrs_runtime::projection::EventMeta;

use super::domain::*;

// ---- orders by customer (cross-aggregate: customers + orders) -------------------------------

/// One order in a customer's history.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderSummary {
    pub order: String,
    pub total: Cents,
    pub status: Status,
}

/// A customer's name and orders, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerHistory {
    pub name: String,
    pub orders: Vec<OrderSummary>,
}

/// Query: the order history of one customer.
pub struct OrderHistoryOf<'a>(pub &'a str);

/// Orders keyed by customer id, with the customer's name from the customer stream.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct OrdersByCustomer {
    customers: BTreeMap<String, CustomerHistory>,
    customer_of: BTreeMap<String, String>,
}

#[projection(name = "orders_by_customer", events = [CustomerEvent, OrderEvent])]
impl OrdersByCustomer {
    #[on]
    fn registered(&mut self, e: &CustomerRegistered, meta: &EventMeta<'_>) {
        let entry = self.customers.entry(meta.stream_id.to_owned()).or_default();
        entry.name = e.name.clone();
    }

    #[on]
    fn placed(&mut self, e: &OrderPlaced, meta: &EventMeta<'_>) {
        self.customer_of
            .insert(meta.stream_id.to_owned(), e.customer.clone());
        let history = self.customers.entry(e.customer.clone()).or_default();
        history.orders.push(OrderSummary {
            order: meta.stream_id.to_owned(),
            total: e.total(),
            status: Status::Placed,
        });
    }

    #[on]
    fn shipped(&mut self, _: &OrderShipped, meta: &EventMeta<'_>) {
        self.set_status(meta.stream_id, Status::Shipped);
    }

    #[on]
    fn cancelled(&mut self, _: &OrderCancelled, meta: &EventMeta<'_>) {
        self.set_status(meta.stream_id, Status::Cancelled);
    }

    #[query]
    fn history(&self, q: OrderHistoryOf<'_>) -> Option<CustomerHistory> {
        self.customers.get(q.0).cloned()
    }

    fn set_status(&mut self, order: &str, status: Status) {
        let Some(customer) = self.customer_of.get(order) else {
            return;
        };
        let orders = self.customers.get_mut(customer).map(|c| &mut c.orders);
        if let Some(summary) = orders.and_then(|o| o.iter_mut().find(|s| s.order == order)) {
            summary.status = status;
        }
    }
}

// ---- revenue dashboard ----------------------------------------------------------------------

/// Query: the revenue report.
pub struct RevenueReport;

/// Revenue so far: booked (placed, not cancelled), shipped, and by product.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Revenue {
    pub orders: u32,
    pub cancelled: u32,
    pub booked: Cents,
    pub shipped: Cents,
    pub by_sku: BTreeMap<String, Cents>,
}

/// The revenue dashboard.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RevenueDashboard {
    revenue: Revenue,
    orders: BTreeMap<String, OrderPlaced>,
}

#[projection(name = "revenue_dashboard", events = OrderEvent)]
impl RevenueDashboard {
    #[on]
    fn placed(&mut self, e: &OrderPlaced, meta: &EventMeta<'_>) {
        self.revenue.orders += 1;
        self.revenue.booked += e.total();
        for line in &e.lines {
            *self.revenue.by_sku.entry(line.sku.clone()).or_default() +=
                line.unit_price * Cents::from(line.quantity);
        }
        self.orders.insert(meta.stream_id.to_owned(), e.clone());
    }

    #[on]
    fn shipped(&mut self, _: &OrderShipped, meta: &EventMeta<'_>) {
        if let Some(order) = self.orders.get(meta.stream_id) {
            self.revenue.shipped += order.total();
        }
    }

    #[on]
    fn cancelled(&mut self, _: &OrderCancelled, meta: &EventMeta<'_>) {
        let Some(order) = self.orders.get(meta.stream_id) else {
            return;
        };
        self.revenue.cancelled += 1;
        self.revenue.booked -= order.total();
        for line in &order.lines {
            *self.revenue.by_sku.entry(line.sku.clone()).or_default() -=
                line.unit_price * Cents::from(line.quantity);
        }
    }

    #[query]
    fn report(&self, _: RevenueReport) -> Revenue {
        self.revenue.clone()
    }
}

// ---- inventory status (cross-aggregate: products + orders) ----------------------------------

/// One product's stock.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StockLevel {
    pub name: String,
    pub on_hand: i64,
    pub reserved: i64,
}

impl StockLevel {
    /// What can still be sold.
    pub fn available(&self) -> i64 {
        self.on_hand - self.reserved
    }
}

/// Query: every product's stock, by SKU.
pub struct StockLevels;

/// Query: the SKUs with fewer than `below` available.
pub struct LowStock {
    pub below: i64,
}

/// Stock per product: added and restocked on the product stream, reserved by placed orders,
/// released by cancellations, taken off the shelf when shipped.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct InventoryStatus {
    stock: BTreeMap<String, StockLevel>,
    open_orders: BTreeMap<String, Vec<Line>>,
}

#[projection(name = "inventory_status", events = [ProductEvent, OrderEvent])]
impl InventoryStatus {
    #[on]
    fn added(&mut self, e: &ProductAdded, meta: &EventMeta<'_>) {
        let level = self.stock.entry(meta.stream_id.to_owned()).or_default();
        level.name = e.name.clone();
        level.on_hand += i64::from(e.stock);
    }

    #[on]
    fn restocked(&mut self, e: &ProductRestocked, meta: &EventMeta<'_>) {
        let level = self.stock.entry(meta.stream_id.to_owned()).or_default();
        level.on_hand += i64::from(e.quantity);
    }

    #[on]
    fn placed(&mut self, e: &OrderPlaced, meta: &EventMeta<'_>) {
        for line in &e.lines {
            self.stock.entry(line.sku.clone()).or_default().reserved += i64::from(line.quantity);
        }
        self.open_orders
            .insert(meta.stream_id.to_owned(), e.lines.clone());
    }

    #[on]
    fn shipped(&mut self, _: &OrderShipped, meta: &EventMeta<'_>) {
        for line in self.open_orders.remove(meta.stream_id).unwrap_or_default() {
            let level = self.stock.entry(line.sku).or_default();
            level.reserved -= i64::from(line.quantity);
            level.on_hand -= i64::from(line.quantity);
        }
    }

    #[on]
    fn cancelled(&mut self, _: &OrderCancelled, meta: &EventMeta<'_>) {
        for line in self.open_orders.remove(meta.stream_id).unwrap_or_default() {
            self.stock.entry(line.sku).or_default().reserved -= i64::from(line.quantity);
        }
    }

    #[query]
    fn levels(&self, _: StockLevels) -> BTreeMap<String, StockLevel> {
        self.stock.clone()
    }

    #[query]
    fn low(&self, q: LowStock) -> Vec<String> {
        let low = self.stock.iter().filter(|(_, l)| l.available() < q.below);
        low.map(|(sku, _)| sku.clone()).collect()
    }
}
