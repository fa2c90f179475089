//! The bank-account story: every step the example prints, as a function that writes to any
//! `io::Write`, so that `tests/example_transcript.rs` can check the transcript.

use std::collections::BTreeMap;
use std::error::Error;
use std::future::Future;
use std::io::Write;

use cqrs_runtime::prelude::*;
use cqrs_runtime::store::{AppendOutcome, NewEvent, StoreError, StoredEvent};

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
    let with_retry = Repository::<BankAccount, _>::new(laggy).with_retry(RetryPolicy::attempts(3));
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

    writeln!(out, "== Read models (built by a loop over read_all)")?;
    let models = ReadModels::build(&store).await?;
    for (id, details) in &models.accounts {
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
    Ok(models)
}

fn outcome<T>(result: &Result<T, CommandError<AccountError>>) -> String {
    match result {
        Ok(_) => "committed".into(),
        Err(e) if e.is_conflict() => "conflict".into(),
        Err(e) => format!("failed: {e}"),
    }
}

/// One account as the details query sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountDetails {
    pub owner: String,
    pub balance: Cents,
    pub closed: bool,
}

/// An owner's accounts, summed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Portfolio {
    pub open_accounts: usize,
    pub total: Cents,
}

/// The query side, folded from the global event log.
#[derive(Debug, Default)]
pub struct ReadModels {
    pub accounts: BTreeMap<String, AccountDetails>,
}

impl ReadModels {
    /// Reads every event in global order, in pages, and folds it.
    pub async fn build(store: &impl EventStore) -> Result<Self, Box<dyn Error>> {
        let mut models = ReadModels::default();
        let mut after = 0;
        loop {
            let page = store.read_all(after, 100).await?;
            let Some(last) = page.last() else { break };
            after = last.global_position;
            for stored in &page {
                let envelope = Envelope::<AccountEvent>::decode(stored)?;
                let account = models
                    .accounts
                    .entry(envelope.stream_id.clone())
                    .or_default();
                match envelope.event {
                    AccountEvent::Opened(e) => {
                        account.owner = e.owner;
                        account.balance = e.initial_balance;
                    }
                    AccountEvent::Deposited(e) => account.balance = e.balance_after,
                    AccountEvent::Withdrawn(e) => account.balance = e.balance_after,
                    AccountEvent::Closed(_) => account.closed = true,
                }
            }
        }
        Ok(models)
    }

    /// Accounts with a balance of at least `min`.
    pub fn high_value(&self, min: Cents) -> Vec<&str> {
        self.accounts
            .iter()
            .filter(|(_, a)| a.balance >= min)
            .map(|(id, _)| id.as_str())
            .collect()
    }

    /// The open accounts of `owner`, counted and summed.
    pub fn portfolio(&self, owner: &str) -> Portfolio {
        self.accounts
            .values()
            .filter(|a| a.owner == owner && !a.closed)
            .fold(Portfolio::default(), |p, a| Portfolio {
                open_accounts: p.open_accounts + 1,
                total: p.total + a.balance,
            })
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

    fn read_all(
        &self,
        after_position: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send {
        self.0.read_all(after_position, limit)
    }

    fn head_position(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        self.0.head_position()
    }
}
