//! Users with unique emails: a rule across aggregates. Each user is an aggregate of their own;
//! the email is claimed by the event that registers the user, in the append's transaction, so
//! two users can never hold one email, even when they sign up at the same moment. Handlers ask
//! the claims first and reject a taken email with a business error.
//!
//! ```text
//! cargo run --example users              # SQLite file target/users.sqlite (made afresh)
//! cargo run --example users -- --memory  # in memory
//! ```
//!
//! The SQLite file stays after the run: `sqlite3 target/users.sqlite 'SELECT * FROM claims'`
//! shows who holds which email.

#[path = "users/domain.rs"]
mod domain;
#[path = "users/story.rs"]
mod story;

use std::error::Error;
use std::path::Path;

use cqrs_runtime::InMemoryEventStore;
use cqrs_runtime::sqlite::SqliteEventStore;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let memory = match args.next().as_deref() {
        None => false,
        Some("--memory") => true,
        Some(other) => return Err(format!("unknown argument `{other}`; use --memory").into()),
    };
    let mut stdout = std::io::stdout();
    if memory {
        println!("== Store: in memory");
        story::run(InMemoryEventStore::new(), &mut stdout).await?;
        return Ok(());
    }
    // A new file each run: the story registers the same users every time.
    let path = Path::new("target/users.sqlite");
    std::fs::create_dir_all("target")?;
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", path.display());
        if Path::new(&file).exists() {
            std::fs::remove_file(&file)?;
        }
    }
    println!("== Store: SQLite file {}", path.display());
    story::run(SqliteEventStore::open(path).await?, &mut stdout).await?;
    Ok(())
}
