//! A SQL read model of the bank: one row per account, in the durable store's own database, with
//! its checkpoint committed in the same transaction as its rows. A second run of the example
//! resumes it from that checkpoint instead of replaying the log from zero.

use std::error::Error;
use std::io::Write;

use cqrs_runtime::prelude::*;
use cqrs_runtime::projection::{
    EventMeta, ProjectionRunner, ReadModel, SqlProjection, SqlReadModel,
};
use cqrs_runtime::store::{LeaseStore, SqlBackend, SqlBatch, SqlValue};

use super::domain::*;
use super::story;

/// The `account_summary` table: owner, balance and status per account.
#[derive(Debug, Default)]
pub struct AccountSummary;

#[projection(name = "account_summary", events = AccountEvent, transaction = SqlBatch)]
impl AccountSummary {
    #[on]
    fn opened(&mut self, e: &AccountOpened, meta: &EventMeta<'_>, db: &mut SqlBatch) {
        db.execute(
            "INSERT INTO account_summary (account, owner, balance, closed) VALUES ($1, $2, $3, $4)",
            [
                meta.stream_id.into(),
                e.owner.as_str().into(),
                e.initial_balance.into(),
                false.into(),
            ],
        );
    }

    #[on]
    fn deposited(&mut self, e: &MoneyDeposited, meta: &EventMeta<'_>, db: &mut SqlBatch) {
        set_balance(db, meta.stream_id, e.balance_after);
    }

    #[on]
    fn withdrawn(&mut self, e: &MoneyWithdrawn, meta: &EventMeta<'_>, db: &mut SqlBatch) {
        set_balance(db, meta.stream_id, e.balance_after);
    }

    #[on]
    fn closed(&mut self, _: &AccountClosed, meta: &EventMeta<'_>, db: &mut SqlBatch) {
        db.execute(
            "UPDATE account_summary SET closed = $2 WHERE account = $1",
            [meta.stream_id.into(), true.into()],
        );
    }
}

fn set_balance(db: &mut SqlBatch, account: &str, balance: Cents) {
    db.execute(
        "UPDATE account_summary SET balance = $2 WHERE account = $1",
        [account.into(), balance.into()],
    );
}

impl SqlProjection for AccountSummary {
    fn create_tables(db: &mut SqlBatch) {
        db.execute(
            "CREATE TABLE IF NOT EXISTS account_summary (account TEXT PRIMARY KEY, \
             owner TEXT NOT NULL, balance BIGINT NOT NULL, closed BOOLEAN NOT NULL)",
            [],
        );
    }

    fn clear_tables(db: &mut SqlBatch) {
        db.execute("DELETE FROM account_summary", []);
    }
}

/// Where a catch-up of the summary started and ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaughtUp {
    /// The stored checkpoint's position before the catch-up (`None`: no checkpoint, built from
    /// the start of the log).
    pub resumed_at: Option<u64>,
    /// The events processed.
    pub processed: u64,
    /// The checkpoint's position after it.
    pub position: u64,
}

impl std::fmt::Display for CaughtUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.resumed_at {
            Some(at) => write!(
                f,
                "resumed projection account_summary at position {at}: {} new event(s), now at {}",
                self.processed, self.position
            ),
            None => write!(
                f,
                "built projection account_summary from the start of the log: {} event(s), now at {}",
                self.processed, self.position
            ),
        }
    }
}

/// Catches the summary up from its stored checkpoint.
pub async fn catch_up<S, M, L>(store: &S, model: &M, leases: L) -> Result<CaughtUp, Box<dyn Error>>
where
    S: EventStore + Clone,
    M: ReadModel<Projection = AccountSummary> + Clone,
    L: LeaseStore,
{
    let before = ReadModel::checkpoint(model).await?;
    let processed = ProjectionRunner::new(store.clone(), model.clone())
        .with_leases(leases)
        .catch_up()
        .await?;
    let after = ReadModel::checkpoint(model).await?;
    Ok(CaughtUp {
        // A checkpoint at the start (claimed, nothing committed yet) resumes nothing.
        resumed_at: before
            .map(|c| c.cursor.position)
            .filter(|&position| position > 0),
        processed,
        position: after.map_or(0, |c| c.cursor.position),
    })
}

/// How many times the story already ran: the summary's `acc-alice` accounts of each run.
pub async fn earlier_runs<B: SqlBackend>(
    model: &SqlReadModel<AccountSummary, B>,
) -> Result<u64, Box<dyn Error>> {
    let rows = model
        .fetch_all(
            "SELECT count(*) FROM account_summary WHERE account = $1 OR account LIKE $2",
            &["acc-alice".into(), "acc-alice-run%".into()],
        )
        .await?;
    match rows.first().and_then(|row| row.first()) {
        Some(SqlValue::Int(n)) => Ok(u64::try_from(*n)?),
        other => Err(format!("unexpected count {other:?}").into()),
    }
}

/// Accounts, closed accounts and the total balance of the open ones.
pub async fn totals<B: SqlBackend>(
    model: &SqlReadModel<AccountSummary, B>,
) -> Result<(i64, i64, i64), Box<dyn Error>> {
    let rows = model
        .fetch_all(
            "SELECT count(*), \
             CAST(sum(CASE WHEN closed THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(sum(CASE WHEN closed THEN 0 ELSE balance END) AS BIGINT) FROM account_summary",
            &[],
        )
        .await?;
    let int = |i: usize| match rows.first().and_then(|row| row.get(i)) {
        Some(SqlValue::Int(n)) => *n,
        _ => 0,
    };
    Ok((int(0), int(1), int(2)))
}

/// One run of the example on a durable store: catches the summary up from its checkpoint,
/// counts the earlier runs in it, runs the story once more, and catches the summary up again.
/// Returns the two catch-ups.
pub async fn run_durable<S, B, L>(
    store: S,
    summary: &SqlReadModel<AccountSummary, B>,
    leases: L,
    out: &mut dyn Write,
) -> Result<[CaughtUp; 2], Box<dyn Error>>
where
    S: EventStore + Clone,
    B: SqlBackend,
    L: LeaseStore + Clone,
{
    let before = catch_up(&store, summary, leases.clone()).await?;
    writeln!(out, "  {before}")?;
    let runs = earlier_runs(summary).await?;
    writeln!(
        out,
        "  {runs} earlier run(s), log head at position {}; this is run {}",
        store.head().await?.position,
        runs + 1
    )?;
    story::run_numbered(store.clone(), out, runs + 1).await?;
    writeln!(
        out,
        "== SQL read model account_summary (its checkpoint commits with its rows)"
    )?;
    let after = catch_up(&store, summary, leases).await?;
    writeln!(out, "  {after}")?;
    let (accounts, closed, total) = totals(summary).await?;
    writeln!(
        out,
        "  {accounts} account(s), {closed} closed, {total} in the open ones"
    )?;
    Ok([before, after])
}
