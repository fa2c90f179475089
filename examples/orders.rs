//! The e-commerce domain of the CQRS literature (customers, products, orders) with three read
//! models kept by projections: orders by customer and inventory status (both cross-aggregate),
//! and a revenue dashboard. Commands go through repositories; runners follow the store live,
//! woken by each commit; queries wait for their projection to reach the command's position
//! (read-your-writes) before they read.
//!
//! Run it with `cargo run --example orders`.

#[path = "orders/domain.rs"]
mod domain;
#[path = "orders/read_models.rs"]
mod read_models;

use std::time::Duration;

use cqrs_runtime::memory::InMemoryLeases;
use cqrs_runtime::prelude::*;
use cqrs_runtime::projection::Running;

use domain::*;
use read_models::*;

const WAIT: Duration = Duration::from_secs(5);

fn line(sku: &str, quantity: u32, unit_price: Cents) -> Line {
    Line {
        sku: sku.into(),
        quantity,
        unit_price,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = InMemoryEventStore::new();
    let leases = InMemoryLeases::new();
    let by_customer = InMemoryReadModel::<OrdersByCustomer>::new();
    let revenue = InMemoryReadModel::<RevenueDashboard>::new();
    let inventory = InMemoryReadModel::<InventoryStatus>::new();
    let runners: [Running; 3] = [
        ProjectionRunner::new(store.clone(), by_customer.clone())
            .with_leases(leases.clone())
            .wake_on(store.subscribe())
            .spawn(),
        ProjectionRunner::new(store.clone(), revenue.clone())
            .with_leases(leases.clone())
            .wake_on(store.subscribe())
            .spawn(),
        ProjectionRunner::new(store.clone(), inventory.clone())
            .with_leases(leases)
            .wake_on(store.subscribe())
            .spawn(),
    ];

    let customers = Repository::<Customer, _>::new(store.clone());
    let products = Repository::<Product, _>::new(store.clone());
    let orders = Repository::<Order, _>::new(store.clone());

    println!("== Catalogue and customers");
    for (sku, name, stock) in [
        ("tea", "Green tea", 40),
        ("mug", "Mug", 10),
        ("pot", "Teapot", 3),
    ] {
        products
            .execute(AddProduct {
                sku: sku.into(),
                name: name.into(),
                stock,
            })
            .await?;
        println!("  product {sku}: {name}, {stock} in stock");
    }
    for (id, name) in [("c-ann", "Ann"), ("c-bo", "Bo")] {
        customers
            .execute(RegisterCustomer {
                customer: id.into(),
                name: name.into(),
            })
            .await?;
        println!("  customer {id}: {name}");
    }

    println!("== Orders");
    let placed = [
        (
            "o-1",
            "c-ann",
            vec![line("tea", 4, 550), line("mug", 2, 1200)],
        ),
        ("o-2", "c-bo", vec![line("pot", 2, 3500)]),
        (
            "o-3",
            "c-ann",
            vec![line("pot", 1, 3500), line("tea", 10, 500)],
        ),
        ("o-4", "c-bo", vec![line("mug", 6, 1100)]),
    ];
    for (order, customer, lines) in placed {
        let committed = orders
            .execute(Checkout {
                order: order.into(),
                customer: customer.into(),
                lines,
            })
            .await?;
        println!(
            "  {order} placed by {customer} (position {:?})",
            committed.position
        );
    }
    orders
        .execute(ShipOrder {
            order: "o-1".into(),
        })
        .await?;
    orders
        .execute(ShipOrder {
            order: "o-2".into(),
        })
        .await?;
    let last = orders
        .execute(CancelOrder {
            order: "o-4".into(),
        })
        .await?;
    println!("  o-1 and o-2 shipped, o-4 cancelled");
    let refused = orders
        .execute(CancelOrder {
            order: "o-1".into(),
        })
        .await;
    println!(
        "  cancelling o-1 again: {}",
        refused
            .map(|_| "committed".to_string())
            .unwrap_or_else(|e| e.to_string())
    );
    let restock = products
        .execute(Restock {
            sku: "pot".into(),
            quantity: 5,
        })
        .await?;

    // Read-your-writes: each query waits until its projection has processed the commit.
    let position = restock.position.or(last.position).unwrap_or_default();
    for runner in &runners {
        runner.wait_for(position, WAIT).await?;
    }

    println!("== Orders by customer");
    let ann = by_customer
        .query(OrderHistoryOf("c-ann"))
        .ok_or("no history for c-ann")?;
    let bo = by_customer
        .query(OrderHistoryOf("c-bo"))
        .ok_or("no history for c-bo")?;
    for (id, history) in [("c-ann", &ann), ("c-bo", &bo)] {
        println!("  {} ({id}):", history.name);
        for o in &history.orders {
            println!("    {} total {} {}", o.order, o.total, o.status.as_str());
        }
    }

    println!("== Revenue dashboard");
    let report = revenue.query(RevenueReport);
    println!(
        "  orders {}, cancelled {}, booked {}, shipped {}",
        report.orders, report.cancelled, report.booked, report.shipped
    );
    for (sku, amount) in &report.by_sku {
        println!("    {sku}: {amount}");
    }

    println!("== Inventory status");
    let levels = inventory.query(StockLevels);
    for (sku, level) in &levels {
        println!(
            "  {sku} ({}): on hand {}, reserved {}, available {}",
            level.name,
            level.on_hand,
            level.reserved,
            level.available()
        );
    }
    let low = inventory.query(LowStock { below: 5 });
    println!("  low stock (< 5 available): {low:?}");

    for runner in runners {
        let lag = runner.handle().lag();
        println!(
            "  {}: at position {}, head {}, behind {}",
            runner.handle().name(),
            lag.position,
            lag.head,
            lag.behind
        );
        runner.stop().await?;
    }

    // The answers, checked.
    assert_eq!(ann.name, "Ann");
    assert_eq!(
        ann.orders
            .iter()
            .map(|o| (o.order.as_str(), o.total, o.status))
            .collect::<Vec<_>>(),
        vec![
            ("o-1", 4600, Status::Shipped),
            ("o-3", 8500, Status::Placed)
        ]
    );
    assert_eq!(
        bo.orders
            .iter()
            .map(|o| (o.order.as_str(), o.status))
            .collect::<Vec<_>>(),
        vec![("o-2", Status::Shipped), ("o-4", Status::Cancelled)]
    );
    assert_eq!((report.orders, report.cancelled), (4, 1));
    assert_eq!(report.booked, 4600 + 7000 + 8500);
    assert_eq!(report.shipped, 4600 + 7000);
    assert_eq!(report.by_sku["mug"], 2400);
    let stock = |sku: &str| {
        levels
            .get(sku)
            .map(|l| (l.on_hand, l.reserved, l.available()))
    };
    assert_eq!(stock("tea"), Some((36, 10, 26)));
    assert_eq!(stock("mug"), Some((8, 0, 8)));
    assert_eq!(stock("pot"), Some((6, 1, 5)));
    assert!(low.is_empty(), "{low:?}");
    println!("== All answers checked");
    Ok(())
}
