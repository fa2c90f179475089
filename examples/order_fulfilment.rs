//! Order fulfilment across three aggregates (orders, payments, inventory), coordinated by
//! reactions written with the DSL: a reactor that pays an order when its payment is captured
//! (refunding it when the order was cancelled), and a process manager per order that reserves
//! stock, compensates a failed payment or a missing stock, and cancels an order left unpaid by
//! a deadline. A manual clock makes a day pass.
//!
//! Run it with `cargo run --example order_fulfilment`.

#[allow(dead_code)] // the shared domain is used only in part here
#[path = "order_fulfilment/domain.rs"]
mod domain;
#[path = "order_fulfilment/story.rs"]
mod story;

#[tokio::main]
async fn main() -> Result<(), story::Failure> {
    story::Story::new(std::io::stdout()).run().await?;
    Ok(())
}
