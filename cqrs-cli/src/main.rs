//! `cqrs-cli`: the subcommands of [`cqrs_runtime::cli`] with no registered event types.
//!
//! It checks every stream's versions (`verify` reports every stream type as unregistered),
//! lists streams and events, and exports, imports and copies stores (SQLite files and
//! PostgreSQL databases). To decode events with your own types, build the tool into your
//! application instead: see `OPERATING.md`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the Tokio runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(cqrs_runtime::cli::Cli::new("cqrs-cli").run_from_env())
}
