//! A process manager on every store: instances, deadlines and checkpoint commit together;
//! commands take effect once; a rejection is compensated; a deadline fires once.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use cqrs_runtime::memory::InMemoryLeases;
use cqrs_runtime::processing::Runner;
use cqrs_runtime::processing::reaction::{ManualClock, process_manager};
use cqrs_runtime::store::EventStore;

use super::Backend;
use super::shop::*;

/// Catches up until the runner has committed past the head (PostgreSQL's log holds events
/// back while an older transaction is open anywhere on the server).
async fn settle<H, S, L>(runner: &Runner<H, S, L>, store: &impl EventStore)
where
    H: cqrs_runtime::processing::Handler,
    S: cqrs_runtime::processing::Source,
    L: cqrs_runtime::store::LeaseStore,
{
    let deadline = std::time::Instant::now() + StdDuration::from_secs(30);
    loop {
        runner.catch_up().await.expect("catch up");
        let head = store.head().await.expect("head").position;
        if runner.handle().lag().position >= head {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the runner never got to {head}"
        );
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
}

pub async fn a_process_manager_reserves_compensates_and_times_out<B: Backend>(b: &Arc<B>) {
    let store = b.events();
    let shop = Shop::new(&store);
    let clock = ManualClock::at(Utc::now());
    let handler =
        process_manager::<Fulfilment, _, _>(shop.clone(), b.reactions()).clock(clock.clone());
    let runner = Runner::new(store.clone(), handler).with_leases(InMemoryLeases::new());
    for order in ["o-1", "o-2", "o-3"] {
        shop.place(order, 4).await;
    }
    settle(&runner, &store).await;
    let tea = || async { shop.stock.load(&"tea".to_owned()).await.expect("stock") };
    assert_eq!(
        tea().await.state.reserved,
        8,
        "two orders reserved, the third out of stock"
    );
    let order = |id: &'static str| {
        let shop = shop.clone();
        async move { shop.orders.load(&id.to_owned()).await.expect("order").state }
    };
    assert!(order("o-3").await.cancelled, "out of stock: cancelled");
    assert!(
        runner
            .handler()
            .instance("o-3")
            .await
            .expect("load")
            .is_none()
    );
    let o1 = runner.handler().instance("o-1").await.expect("load");
    assert_eq!(o1.map(|f| f.reserved), Some(4));

    // o-1 is paid: its deadline goes with its instance.
    shop.orders
        .execute(PayOrder {
            order: "o-1".into(),
        })
        .await
        .expect("pay");
    settle(&runner, &store).await;
    assert!(
        runner
            .handler()
            .instance("o-1")
            .await
            .expect("load")
            .is_none()
    );

    // A day later o-2 is still unpaid: cancelled, its stock released, once.
    clock.advance(PAYMENT_WINDOW + Duration::seconds(1));
    settle(&runner, &store).await;
    assert!(order("o-2").await.cancelled);
    assert!(!order("o-1").await.cancelled, "the paid order stays");
    assert_eq!(tea().await.state.reserved, 4, "o-2's stock released");
    settle(&runner, &store).await;
    clock.advance(Duration::days(30));
    settle(&runner, &store).await;
    assert_eq!(tea().await.state.reserved, 4, "nothing fired twice");
    let cancellations = store.read_stream("order", "o-2", 1).await.expect("read");
    assert_eq!(cancellations.len(), 2, "placed, cancelled once");
    // The cancellations the manager caused come back for ended instances: orphans.
    assert_eq!(runner.handle().orphans(), 2);
    // Committed together: every instance ended, nothing is pending.
    assert!(
        runner
            .handler()
            .instance("o-2")
            .await
            .expect("load")
            .is_none()
    );
    let checkpoint = cqrs_runtime::processing::Handler::checkpoint(runner.handler())
        .await
        .expect("checkpoint")
        .expect("a checkpoint");
    assert_eq!(
        checkpoint.cursor.position,
        store.head().await.expect("head").position
    );
}
