//! The bank-account story: every step the example prints, as a function that writes to any
//! `io::Write`, so that `tests/example_transcript.rs` can check the transcript.

use std::collections::BTreeMap;
use std::error::Error;
use std::future::Future;
use std::io::Write;

use std::time::Duration;

use cqrs_runtime::memory::InMemoryLeases;
use cqrs_runtime::prelude::*;
use cqrs_runtime::projection::EventMeta;
use cqrs_runtime::store::{
    AppendOutcome, Cursor, EventFilter, NewEvent, ReadBatch, StoreError, StoredEvent,
    StreamEventRef,
};

use super::domain::*;

/// Runs the whole story against `store`, writing what happens to `out`.
#[allow(dead_code)] // the example binary calls `run_numbered`
pub async fn run<S>(store: S, out: &mut dyn Write) -> Result<ReadModels, Box<dyn Error>>
where
    S: EventStore + Clone,
{
    run_numbered(store, out, 1).await
}

/// Runs the story for the `run`-th time against a store that may hold earlier runs: run 1
/// uses the accounts `acc-alice`, ...; run `n > 1` uses `acc-alice-run<n>`, ..., so a durable
/// store resumes with its earlier accounts intact and the story never re-opens one.
pub async fn run_numbered<S>(
    store: S,
    out: &mut dyn Write,
    run: u64,
) -> Result<ReadModels, Box<dyn Error>>
where
    S: EventStore + Clone,
{
    let suffix = if run <= 1 {
        String::new()
    } else {
        format!("-run{run}")
    };
    let account = |name: &str| AccountId(format!("acc-{name}{suffix}"));
    let bank: Repository<BankAccount, S> = Repository::new(store.clone());
    let alice = account("alice");
    let bob = account("bob");
    let alice_savings = AccountId(format!("acc-alice-savings{suffix}"));

    writeln!(out, "== Commands")?;
    let steps: Vec<BankAccountCommand> = vec![
        OpenAccount {
            account: alice.clone(),
            owner: "alice".into(),
            initial_balance: 50_000,
        }
        .into(),
        OpenAccount {
            account: bob.clone(),
            owner: "bob".into(),
            initial_balance: 0,
        }
        .into(),
        OpenAccount {
            account: alice_savings.clone(),
            owner: "alice".into(),
            initial_balance: 100_000,
        }
        .into(),
        Deposit {
            account: alice.clone(),
            amount: 75_000,
        }
        .into(),
        Deposit {
            account: bob.clone(),
            amount: 20_000,
        }
        .into(),
        Withdraw {
            account: bob.clone(),
            amount: 5_000,
        }
        .into(),
        Deposit {
            account: alice_savings.clone(),
            amount: 1_000_000,
        }
        .into(),
        Withdraw {
            account: bob.clone(),
            amount: 15_000,
        }
        .into(),
        CloseAccount {
            account: bob.clone(),
        }
        .into(),
    ];
    for command in steps {
        let committed = bank.execute(command).await?;
        for envelope in &committed.events {
            writeln!(
                out,
                "  {} v{} -> {:?}",
                envelope.stream_id, envelope.stream_version, envelope.event
            )?;
        }
    }

    writeln!(out, "== Rejected commands")?;
    let rejected: Vec<BankAccountCommand> = vec![
        Withdraw {
            account: alice.clone(),
            amount: 10_000_000,
        }
        .into(),
        Deposit {
            account: alice.clone(),
            amount: 1_000_001,
        }
        .into(),
        Deposit {
            account: bob.clone(),
            amount: 100,
        }
        .into(),
        OpenAccount {
            account: account("carol"),
            owner: "carol".into(),
            initial_balance: -1,
        }
        .into(),
        Deposit {
            account: account("nobody"),
            amount: 100,
        }
        .into(),
    ];
    for command in rejected {
        let name = command.command_name();
        match bank.execute(command).await {
            Ok(_) => return Err(format!("{name} should have been rejected").into()),
            Err(error) => writeln!(out, "  {name}: {error}")?,
        }
    }

    writeln!(
        out,
        "== Concurrency: two tellers deposit into {alice} at the same moment"
    )?;
    let laggy = Laggy(store.clone());
    let no_retry: Repository<BankAccount, _> = Repository::new(laggy.clone());
    let (first, second) = tokio::join!(
        no_retry.execute(Deposit {
            account: alice.clone(),
            amount: 1_000
        }),
        no_retry.execute(Deposit {
            account: alice.clone(),
            amount: 2_000
        }),
    );
    writeln!(
        out,
        "  without retry: first {}, second {}",
        outcome(&first),
        outcome(&second)
    )?;
    let with_retry = Repository::<BankAccount, _>::new(laggy).retry(RetryPolicy::attempts(3));
    let (first, second) = tokio::join!(
        with_retry.execute(Deposit {
            account: alice.clone(),
            amount: 1_000
        }),
        with_retry.execute(Deposit {
            account: alice.clone(),
            amount: 2_000
        }),
    );
    writeln!(
        out,
        "  with retry:    first {}, second {}",
        outcome(&first),
        outcome(&second)
    )?;
    let alice_now = bank.load(&alice).await?;
    writeln!(
        out,
        "  {alice} is at version {} with balance {}",
        alice_now.version, alice_now.state.balance
    )?;

    writeln!(out, "== Read models (projections, followed live)")?;
    let head = store.head().await?.position;
    let models = ReadModels::follow(&store).await?;
    for (id, details) in models.details.query(AllAccounts) {
        writeln!(
            out,
            "  account {id}: owner {}, balance {}, {}",
            details.owner,
            details.balance,
            if details.closed { "closed" } else { "open" }
        )?;
    }
    writeln!(out, "  balance >= 100000: {:?}", models.high_value(100_000))?;
    for owner in ["alice", "bob"] {
        let p = models.portfolio(owner);
        writeln!(
            out,
            "  portfolio of {owner}: {} open accounts, total {}",
            p.open_accounts, p.total
        )?;
    }
    debug_assert_eq!(models.position, head);
    Ok(models)
}

fn outcome<T>(result: &Result<T, CommandError<AccountError>>) -> String {
    match result {
        Ok(_) => "committed".into(),
        Err(e) if e.is_conflict() => "conflict".into(),
        Err(e) => format!("failed: {e}"),
    }
}

// ---- the query side -------------------------------------------------------------------------

/// One account as the details query sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountDetails {
    pub owner: String,
    pub balance: Cents,
    pub closed: bool,
}

/// Query: one account's details.
pub struct DetailsOf<'a>(pub &'a str);

/// Query: every account, by id.
pub struct AllAccounts;

/// Account details, keyed by account id.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AccountDirectory {
    /// Every account, by stream id.
    pub accounts: BTreeMap<String, AccountDetails>,
}

#[projection(name = "account_details", events = AccountEvent)]
impl AccountDirectory {
    #[on]
    fn opened(&mut self, e: &AccountOpened, meta: &EventMeta<'_>) {
        let details = AccountDetails {
            owner: e.owner.clone(),
            balance: e.initial_balance,
            closed: false,
        };
        self.accounts.insert(meta.stream_id.to_owned(), details);
    }

    #[on]
    fn deposited(&mut self, e: &MoneyDeposited, meta: &EventMeta<'_>) {
        self.set_balance(meta.stream_id, e.balance_after);
    }

    #[on]
    fn withdrawn(&mut self, e: &MoneyWithdrawn, meta: &EventMeta<'_>) {
        self.set_balance(meta.stream_id, e.balance_after);
    }

    #[on]
    fn closed(&mut self, _: &AccountClosed, meta: &EventMeta<'_>) {
        if let Some(account) = self.accounts.get_mut(meta.stream_id) {
            account.closed = true;
        }
    }

    #[query]
    fn details(&self, q: DetailsOf<'_>) -> Option<AccountDetails> {
        self.accounts.get(q.0).cloned()
    }

    #[query]
    fn all(&self, _: AllAccounts) -> Vec<(String, AccountDetails)> {
        self.accounts
            .iter()
            .map(|(id, a)| (id.clone(), a.clone()))
            .collect()
    }

    fn set_balance(&mut self, id: &str, balance: Cents) {
        if let Some(account) = self.accounts.get_mut(id) {
            account.balance = balance;
        }
    }
}

/// Query: the accounts holding at least `min`.
pub struct HighValue {
    pub min: Cents,
}

/// Balances of every account, for threshold queries. A closed account's balance is zero, so
/// closing changes nothing here: the projection says so with `ignore(AccountClosed)`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Balances {
    balances: BTreeMap<String, Cents>,
}

#[projection(name = "balances", events = AccountEvent, ignore(AccountClosed))]
impl Balances {
    #[on]
    fn opened(&mut self, e: &AccountOpened, meta: &EventMeta<'_>) {
        self.balances
            .insert(meta.stream_id.to_owned(), e.initial_balance);
    }

    #[on]
    fn deposited(&mut self, e: &MoneyDeposited, meta: &EventMeta<'_>) {
        self.balances
            .insert(meta.stream_id.to_owned(), e.balance_after);
    }

    #[on]
    fn withdrawn(&mut self, e: &MoneyWithdrawn, meta: &EventMeta<'_>) {
        self.balances
            .insert(meta.stream_id.to_owned(), e.balance_after);
    }

    #[query]
    fn high_value(&self, q: HighValue) -> Vec<String> {
        let rich = self.balances.iter().filter(|(_, b)| **b >= q.min);
        rich.map(|(id, _)| id.clone()).collect()
    }
}

/// An owner's accounts, summed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Portfolio {
    pub open_accounts: usize,
    pub total: Cents,
}

/// Query: the open accounts of one owner.
pub struct PortfolioOf<'a>(pub &'a str);

/// Open accounts per owner: keyed by owner, not by the aggregate id.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Portfolios {
    owner_of: BTreeMap<String, String>,
    open: BTreeMap<String, BTreeMap<String, Cents>>,
}

#[projection(name = "owner_portfolio", events = AccountEvent)]
impl Portfolios {
    #[on]
    fn opened(&mut self, e: &AccountOpened, meta: &EventMeta<'_>) {
        let id = meta.stream_id.to_owned();
        self.owner_of.insert(id.clone(), e.owner.clone());
        self.open
            .entry(e.owner.clone())
            .or_default()
            .insert(id, e.initial_balance);
    }

    #[on]
    fn deposited(&mut self, e: &MoneyDeposited, meta: &EventMeta<'_>) {
        self.set_balance(meta.stream_id, e.balance_after);
    }

    #[on]
    fn withdrawn(&mut self, e: &MoneyWithdrawn, meta: &EventMeta<'_>) {
        self.set_balance(meta.stream_id, e.balance_after);
    }

    #[on]
    fn closed(&mut self, _: &AccountClosed, meta: &EventMeta<'_>) {
        if let Some(owner) = self.owner_of.get(meta.stream_id)
            && let Some(accounts) = self.open.get_mut(owner)
        {
            accounts.remove(meta.stream_id);
        }
    }

    #[query]
    fn portfolio(&self, q: PortfolioOf<'_>) -> Portfolio {
        let accounts = self.open.get(q.0);
        Portfolio {
            open_accounts: accounts.map_or(0, BTreeMap::len),
            total: accounts.map_or(0, |a| a.values().sum()),
        }
    }

    fn set_balance(&mut self, id: &str, balance: Cents) {
        let Some(owner) = self.owner_of.get(id) else {
            return;
        };
        if let Some(slot) = self.open.get_mut(owner).and_then(|a| a.get_mut(id)) {
            *slot = balance;
        }
    }
}

/// The three read models, each fed by its own runner.
pub struct ReadModels {
    pub details: InMemoryReadModel<AccountDirectory>,
    pub balances: InMemoryReadModel<Balances>,
    pub portfolios: InMemoryReadModel<Portfolios>,
    /// The position all three had reached.
    pub position: u64,
}

impl ReadModels {
    /// Starts one live runner per projection, waits until each has processed the store's head
    /// (read-your-writes), and stops them.
    pub async fn follow<S: EventStore + Clone>(store: &S) -> Result<Self, Box<dyn Error>> {
        let head = store.head().await?.position;
        let leases = InMemoryLeases::new();
        let models = ReadModels {
            details: InMemoryReadModel::new(),
            balances: InMemoryReadModel::new(),
            portfolios: InMemoryReadModel::new(),
            position: head,
        };
        let poll = (Duration::from_millis(5), Duration::from_millis(50));
        let runners = [
            ProjectionRunner::new(store.clone(), models.details.clone())
                .with_leases(leases.clone())
                .poll_interval(poll.0, poll.1)
                .spawn(),
            ProjectionRunner::new(store.clone(), models.balances.clone())
                .with_leases(leases.clone())
                .poll_interval(poll.0, poll.1)
                .spawn(),
            ProjectionRunner::new(store.clone(), models.portfolios.clone())
                .with_leases(leases)
                .poll_interval(poll.0, poll.1)
                .spawn(),
        ];
        for runner in &runners {
            runner.wait_for(head, Duration::from_secs(5)).await?;
        }
        for runner in runners {
            runner.stop().await?;
        }
        Ok(models)
    }

    /// Accounts with a balance of at least `min`.
    pub fn high_value(&self, min: Cents) -> Vec<String> {
        self.balances.query(HighValue { min })
    }

    /// The open accounts of `owner`, counted and summed.
    pub fn portfolio(&self, owner: &str) -> Portfolio {
        self.portfolios.query(PortfolioOf(owner))
    }
}

/// A store that yields once before each append, like a network round trip, so that two
/// concurrent commands both load the same version before either appends.
#[derive(Clone)]
struct Laggy<S>(S);

impl<S: EventStore> EventStore for Laggy<S> {
    async fn append(
        &self,
        stream_type: &str,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        tokio::task::yield_now().await;
        self.0
            .append(stream_type, stream_id, expected, events)
            .await
    }

    fn read_stream(
        &self,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send {
        self.0.read_stream(stream_type, stream_id, from_version)
    }

    fn replay_stream<F>(
        &self,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
        visit: F,
    ) -> impl Future<Output = Result<(), StoreError>> + Send
    where
        F: FnMut(StreamEventRef<'_>) -> bool + Send,
    {
        self.0
            .replay_stream(stream_type, stream_id, from_version, visit)
    }

    fn read_after(
        &self,
        after: Cursor,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(Cursor, StoredEvent)>, StoreError>> + Send {
        self.0.read_after(after, limit)
    }

    fn read_filtered(
        &self,
        after: Cursor,
        limit: usize,
        filter: &EventFilter,
    ) -> impl Future<Output = Result<ReadBatch, StoreError>> + Send {
        self.0.read_filtered(after, limit, filter)
    }

    fn head(&self) -> impl Future<Output = Result<Cursor, StoreError>> + Send {
        self.0.head()
    }

    fn read_event(
        &self,
        event_id: uuid::Uuid,
    ) -> impl Future<Output = Result<Option<StoredEvent>, StoreError>> + Send {
        self.0.read_event(event_id)
    }
}
