//! Two services joined by NATS JetStream.
//!
//! - `bank` (service A): the bank-account domain on a SQLite file; every command's events
//!   are relayed to the JetStream stream `BANK` (subjects `bank.account.<event>`).
//! - `notifier` (service B): a SQL read model of customer notifications in a SQLite file of
//!   its own, fed from the durable consumer `notifier` of that stream; it prints each
//!   notification it holds, then each new one as it arrives; run again, it resumes from its
//!   checkpoint.
//!
//! ```text
//! cargo run -p cqrs-nats --example notifications -- notifier   # terminal 1 (Ctrl-C to stop)
//! cargo run -p cqrs-nats --example notifications -- bank       # terminal 2 (run it again: more)
//! ```
//!
//! `NATS_URL` names the server (default `127.0.0.1:4222`).

#[allow(
    dead_code,
    reason = "the whole domain is shared with the root examples"
)]
#[path = "../../examples/bank_account/domain.rs"]
mod domain;

use std::error::Error;
use std::path::Path;
use std::time::Duration;

use cqrs_nats::{JetStreamSource, Relay, RelayConfig, SourceConfig, ensure_stream};
use cqrs_runtime::Repository;
use cqrs_runtime::projection::{EventMeta, ProjectionRunner, SqlProjection, SqlReadModel};
use cqrs_runtime::sqlite::SqliteEventStore;
use cqrs_runtime::store::{EventStore, SqlBatch, SqlValue};
use domain::*;

const STREAM: &str = "BANK";
const PREFIX: &str = "bank";

/// Service B's read model: one notification per money movement.
#[derive(Default)]
struct Notifications;

#[cqrs_runtime::projection(name = "notifications", events = AccountEvent, transaction = SqlBatch)]
impl Notifications {
    #[on]
    fn opened(&mut self, e: &AccountOpened, meta: &EventMeta<'_>, db: &mut SqlBatch) {
        let text = format!("welcome {}! your balance is {}", e.owner, e.initial_balance);
        notify(meta, text, db);
    }

    #[on]
    fn deposited(&mut self, e: &MoneyDeposited, meta: &EventMeta<'_>, db: &mut SqlBatch) {
        let text = format!("{} deposited, balance {}", e.amount, e.balance_after);
        notify(meta, text, db);
    }

    #[on]
    fn withdrawn(&mut self, e: &MoneyWithdrawn, meta: &EventMeta<'_>, db: &mut SqlBatch) {
        let text = format!("{} withdrawn, balance {}", e.amount, e.balance_after);
        notify(meta, text, db);
    }

    #[on]
    fn closed(&mut self, _: &AccountClosed, meta: &EventMeta<'_>, db: &mut SqlBatch) {
        notify(meta, "account closed".to_owned(), db);
    }
}

fn notify(meta: &EventMeta<'_>, text: String, db: &mut SqlBatch) {
    let position = SqlValue::try_from(meta.position).unwrap_or(SqlValue::Null);
    db.execute(
        "INSERT INTO notifications (position, account, text) VALUES ($1, $2, $3)",
        [position, meta.stream_id.into(), text.into()],
    );
}

impl SqlProjection for Notifications {
    fn create_tables(db: &mut SqlBatch) {
        db.execute(
            "CREATE TABLE IF NOT EXISTS notifications \
             (position BIGINT PRIMARY KEY, account TEXT NOT NULL, text TEXT NOT NULL)",
            [],
        );
    }

    fn clear_tables(db: &mut SqlBatch) {
        db.execute("DELETE FROM notifications", []);
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "127.0.0.1:4222".to_owned());
    let jetstream = async_nats::jetstream::new(async_nats::connect(&url).await?);
    std::fs::create_dir_all("target")?;
    match std::env::args().nth(1).as_deref() {
        Some("bank") => bank(jetstream, Path::new("target/notifications-bank.sqlite")).await,
        Some("notifier") => {
            notifier(jetstream, Path::new("target/notifications-notifier.sqlite")).await
        }
        _ => Err("usage: notifications bank | notifications notifier".into()),
    }
}

/// Service A: a few commands, relayed; returns once JetStream acknowledged them all.
async fn bank(
    jetstream: async_nats::jetstream::Context,
    path: &Path,
) -> Result<(), Box<dyn Error>> {
    let store = SqliteEventStore::open(path).await?;
    let relay = Relay::start(jetstream, store.clone(), RelayConfig::new(STREAM, PREFIX))
        .await?
        .runner(store.clone())
        .with_leases(store.clone())
        .standby()
        .spawn();
    let bank: Repository<BankAccount, _> = Repository::new(store.clone());
    let run = store.head().await?.position;
    let account = AccountId(format!("acc-{run}"));
    println!("[bank] opening {account}");
    bank.execute(OpenAccount {
        account: account.clone(),
        owner: format!("customer {run}"),
        initial_balance: 100,
    })
    .await?;
    for amount in [50, 25, 10] {
        tokio::time::sleep(Duration::from_millis(300)).await;
        println!("[bank] {account}: deposit {amount}");
        bank.execute(Deposit {
            account: account.clone(),
            amount,
        })
        .await?;
    }
    println!("[bank] {account}: withdraw 80");
    let last = bank
        .execute(Withdraw {
            account: account.clone(),
            amount: 80,
        })
        .await?;
    let position = last.position.unwrap_or_default();
    relay.wait_for(position, Duration::from_secs(30)).await?;
    println!("[bank] relayed through position {position}");
    relay.stop().await?;
    Ok(())
}

/// Service B: follows the stream, printing each new notification.
async fn notifier(
    jetstream: async_nats::jetstream::Context,
    path: &Path,
) -> Result<(), Box<dyn Error>> {
    let tables = SqliteEventStore::open(path).await?;
    let model = SqlReadModel::<Notifications, _>::open(tables.clone()).await?;
    // The stream may not exist yet (the bank has not run): create it as the relay would.
    ensure_stream(&jetstream, &RelayConfig::new(STREAM, PREFIX).stream).await?;
    let source =
        JetStreamSource::connect(&jetstream, STREAM, SourceConfig::new("notifier")).await?;
    let runner = ProjectionRunner::new(source, model.clone())
        .with_leases(tables)
        .standby()
        .poll_interval(Duration::from_millis(20), Duration::from_millis(500))
        .spawn();
    println!("[notifier] following JetStream stream {STREAM} (Ctrl-C to stop)");
    let mut shown = 0i64;
    loop {
        let rows = model
            .fetch_all(
                "SELECT position, account, text FROM notifications WHERE position > $1 ORDER BY position",
                &[SqlValue::from(shown)],
            )
            .await?;
        for row in rows {
            if let [
                SqlValue::Int(position),
                SqlValue::Text(account),
                SqlValue::Text(text),
            ] = row.as_slice()
            {
                println!("[notifier] #{position} {account}: {text}");
                shown = *position;
            }
        }
        if let cqrs_runtime::processing::RunState::Failed(reason) = runner.handle().state() {
            return Err(reason.into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
