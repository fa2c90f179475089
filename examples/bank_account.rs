//! The bank-account domain of the CQRS literature, end to end: commands decided by an
//! aggregate, events appended with optimistic concurrency, rejected commands, a conflict
//! resolved by retry, and queries answered from read models.
//!
//! Run it with `cargo run --example bank_account`.

#[path = "bank_account/domain.rs"]
mod domain;
#[path = "bank_account/story.rs"]
mod story;

use cqrs_runtime::prelude::*;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = InMemoryEventStore::new();
    let mut stdout = std::io::stdout();
    story::run(store, &mut stdout).await?;
    Ok(())
}
