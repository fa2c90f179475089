//! The schema lock (`events.lock`) records every published event version of this package's
//! domains. A locked version whose shape changes no longer compiles; a new version makes this
//! test fail until it is recorded with `CQRS_BLESS=1 cargo test --test schema_lock`, and a
//! line that no enum decodes any more fails it too.

#[allow(dead_code)] // the shared domain is used only in part here
#[path = "../examples/bank_account/domain.rs"]
mod bank;
#[allow(dead_code)] // the shared domain is used only in part here
#[path = "../examples/schema_evolution/domain.rs"]
mod evolution;
#[allow(dead_code)] // the shared domain is used only in part here
#[path = "../examples/order_fulfilment/domain.rs"]
mod fulfilment;
#[allow(dead_code)] // the shared domain is used only in part here
#[path = "../examples/orders/domain.rs"]
mod orders;
#[allow(dead_code)] // the shared domain is used only in part here
#[path = "../examples/users/domain.rs"]
mod users;

use cqrs_runtime::schema::lock::assert_locked_all;

/// Every enum of the package in one call: a failure lists every missing and every stale line.
#[test]
fn every_event_version_is_locked() {
    assert_locked_all::<(
        bank::AccountEvent,
        evolution::CustomerEvent,
        orders::CustomerEvent,
        orders::ProductEvent,
        orders::OrderEvent,
        users::UserEvent,
        fulfilment::OrderEvent,
        fulfilment::PaymentEvent,
        fulfilment::InventoryEvent,
    )>("events.lock");
}
