//! The bank-account domain of the CQRS literature, end to end: commands decided by an
//! aggregate, events appended with optimistic concurrency, rejected commands, a conflict
//! resolved by retry, and queries answered from read models.
//!
//! ```text
//! cargo run --example bank_account                        # SQLite file target/bank_account.sqlite
//! cargo run --example bank_account -- --sqlite PATH       # another SQLite file
//! cargo run --example bank_account -- --memory            # in memory, forgotten at exit
//! cargo run --example bank_account --features postgres -- --postgres postgres://postgres@127.0.0.1:5432/test
//! ```
//!
//! A durable store keeps the events: run it again and the story resumes, opening the next
//! run's accounts next to the earlier ones. The story's read models live in memory and fold
//! every stored event; the SQL read model `account_summary` (see `bank_account/summary.rs`)
//! lives in the store's database with its checkpoint, so a second run resumes it from that
//! checkpoint ("resumed projection account_summary at position N") instead of replaying the
//! log from zero.

#[path = "bank_account/domain.rs"]
mod domain;
#[path = "bank_account/story.rs"]
mod story;
#[path = "bank_account/summary.rs"]
mod summary;

use std::error::Error;
use std::path::PathBuf;

use cqrs_runtime::prelude::*;
use cqrs_runtime::projection::SqlReadModel;
use cqrs_runtime::store::{LeaseStore, SqlBackend};
use summary::AccountSummary;

/// Where the events live, from the command line.
enum Choice {
    Memory,
    Sqlite(PathBuf),
    Postgres(String),
}

fn parse_args() -> Result<Choice, String> {
    let mut args = std::env::args().skip(1);
    let choice = match args.next().as_deref() {
        None => Choice::Sqlite(PathBuf::from("target/bank_account.sqlite")),
        Some("--memory") => Choice::Memory,
        Some("--sqlite") => Choice::Sqlite(args.next().ok_or("--sqlite needs a PATH")?.into()),
        Some("--postgres") => Choice::Postgres(args.next().ok_or("--postgres needs a URL")?),
        Some(other) => {
            return Err(format!(
                "unknown argument `{other}`; use --memory, --sqlite PATH or --postgres URL"
            ));
        }
    };
    match args.next() {
        Some(extra) => Err(format!("unexpected argument `{extra}`")),
        None => Ok(choice),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    match parse_args()? {
        Choice::Memory => {
            println!("== Store: in memory");
            resume(InMemoryEventStore::new()).await
        }
        Choice::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            println!("== Store: SQLite file {}", path.display());
            let store = cqrs_runtime::sqlite::SqliteEventStore::open(&path).await?;
            // The SQL read model's tables live in the event store's file.
            let summary = SqlReadModel::<AccountSummary, _>::open(store.clone()).await?;
            resume_durable(store.clone(), summary, store).await
        }
        Choice::Postgres(url) => postgres(&url).await,
    }
}

#[cfg(feature = "postgres")]
async fn postgres(url: &str) -> Result<(), Box<dyn Error>> {
    let store = cqrs_runtime::postgres::PostgresEventStore::open(url).await?;
    println!("== Store: PostgreSQL, schema {}", store.schema());
    // The SQL read model's tables live in the event store's schema.
    let summary = SqlReadModel::<AccountSummary, _>::open(store.clone()).await?;
    resume_durable(store.clone(), summary, store).await
}

#[cfg(not(feature = "postgres"))]
async fn postgres(_: &str) -> Result<(), Box<dyn Error>> {
    Err("this build has no PostgreSQL store: run with `--features postgres`".into())
}

/// A durable store: resumes the SQL read model, then runs the story once more.
async fn resume_durable<S, B, L>(
    store: S,
    summary: SqlReadModel<AccountSummary, B>,
    leases: L,
) -> Result<(), Box<dyn Error>>
where
    S: EventStore + Clone,
    B: SqlBackend,
    L: LeaseStore + Clone,
{
    summary::run_durable(store, &summary, leases, &mut std::io::stdout()).await?;
    Ok(())
}

/// In memory: counts the earlier runs (none: the store is new), then runs the story.
async fn resume<S: EventStore + Clone>(store: S) -> Result<(), Box<dyn Error>> {
    let earlier = story::ReadModels::follow(&store).await?;
    let runs = earlier.details.read(|directory| {
        directory
            .accounts
            .keys()
            .filter(|id| *id == "acc-alice" || id.starts_with("acc-alice-run"))
            .count() as u64
    });
    println!(
        "  {runs} earlier run(s), log head at position {}; this is run {}",
        store.head().await?.position,
        runs + 1
    );
    let mut stdout = std::io::stdout();
    story::run_numbered(store, &mut stdout, runs + 1).await?;
    Ok(())
}
