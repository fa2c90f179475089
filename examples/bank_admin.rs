//! The operations tool of the bank example: `cqrs_runtime::cli` built with the bank's own
//! types, so that it decodes the account events and rebuilds the `account_summary` read model.
//! See `OPERATING.md`.
//!
//! ```text
//! cargo run --example bank_account                 # writes target/bank_account.sqlite
//! cargo run --example bank_admin --features cli -- --store target/bank_account.sqlite verify
//! cargo run --example bank_admin --features cli -- --store target/bank_account.sqlite projections
//! ```

#[path = "bank_account/domain.rs"]
#[allow(
    dead_code,
    reason = "the tool uses the domain's types, not its commands"
)]
mod domain;
#[path = "bank_account/story.rs"]
#[allow(dead_code, reason = "needed by the summary module, not run here")]
mod story;
#[path = "bank_account/summary.rs"]
#[allow(dead_code, reason = "the tool uses the projection, not its runner")]
mod summary;

use cqrs_runtime::cli::Cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    Cli::new("bank_admin")
        .aggregate::<domain::BankAccount>()
        .projection::<summary::AccountSummary>()
        .run_from_env()
        .await
}
