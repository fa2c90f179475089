//! The schema lock (`events.lock`) records every published event version of this package's
//! domains. A locked version whose shape changes no longer compiles; a new version makes this
//! test fail until it is recorded with `CQRS_BLESS=1 cargo test --test schema_lock`.

#[allow(dead_code)] // the shared domain is used only in part here
#[path = "../examples/bank_account/domain.rs"]
mod bank;
#[allow(dead_code)] // the shared domain is used only in part here
#[path = "../examples/schema_evolution/domain.rs"]
mod evolution;
#[allow(dead_code)] // the shared domain is used only in part here
#[path = "../examples/orders/domain.rs"]
mod orders;

use cqrs_runtime::schema::lock::assert_locked;

#[test]
fn every_event_version_is_locked() {
    assert_locked::<bank::AccountEvent>("events.lock");
    assert_locked::<evolution::CustomerEvent>("events.lock");
    assert_locked::<orders::CustomerEvent>("events.lock");
    assert_locked::<orders::ProductEvent>("events.lock");
    assert_locked::<orders::OrderEvent>("events.lock");
}
