//! A projection's sources: an aggregate (`events = BankAccount`) stands for its event enum and
//! makes its streams strict. An event in an `account` stream that the account's events do not
//! include (a newer binary's event type, or another source's event) goes to the runner's error
//! policy, as loading the aggregate fails on the same row; an unknown event in any other stream
//! is foreign and skipped; with the event enum as the source (`events = AccountEvent`), every
//! stream is such a stream.

#[path = "../examples/bank_account/domain.rs"]
#[allow(dead_code)]
mod domain;

use std::collections::BTreeMap;

use cqrs_runtime::memory::InMemoryLeases;
use cqrs_runtime::prelude::*;
use cqrs_runtime::projection::{EventMeta, RunError, RunState};
use cqrs_runtime::store::NewEvent;
use domain::*;
use serde::{Deserialize, Serialize};

/// Balances per account, from the `account` streams (strict).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Ledger {
    balances: BTreeMap<String, Cents>,
}

#[projection(name = "ledger", events = BankAccount, ignore(AccountClosed))]
impl Ledger {
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
}

/// The same read model over the event enum: no stream is strict.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LooseLedger {
    opened: u64,
}

#[projection(name = "loose_ledger", events = AccountEvent, ignore(MoneyDeposited, MoneyWithdrawn, AccountClosed))]
impl LooseLedger {
    #[on]
    fn opened(&mut self, _: &AccountOpened) {
        self.opened += 1;
    }
}

/// A `non_exhaustive` projection of the aggregate: its streams are strict too.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Openings {
    opened: u64,
}

#[projection(name = "openings", events = BankAccount, non_exhaustive)]
impl Openings {
    #[on]
    fn opened(&mut self, _: &AccountOpened) {
        self.opened += 1;
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "parcel_shipped", version = 1)]
pub struct ParcelShipped {}

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum ParcelEvent {
    Shipped(ParcelShipped),
}

/// Two sources: the account aggregate (strict) and the parcel events (by name, any stream).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Activity {
    opened: u64,
    shipped: u64,
}

#[projection(name = "activity", events = [BankAccount, ParcelEvent], ignore(MoneyDeposited, MoneyWithdrawn, AccountClosed))]
impl Activity {
    #[on]
    fn opened(&mut self, _: &AccountOpened) {
        self.opened += 1;
    }
    #[on]
    fn shipped(&mut self, _: &ParcelShipped) {
        self.shipped += 1;
    }
}

async fn open(store: &InMemoryEventStore, account: &str) {
    Repository::<BankAccount, _>::new(store.clone())
        .execute(OpenAccount {
            account: AccountId(account.into()),
            owner: "o".into(),
            initial_balance: 10,
        })
        .await
        .unwrap();
}

async fn append(
    store: &InMemoryEventStore,
    stream_type: &str,
    stream_id: &str,
    event_type: &'static str,
) {
    let event = NewEvent::new(event_type, 1, b"{}".to_vec(), Metadata::new());
    store
        .append(stream_type, stream_id, ExpectedVersion::Any, vec![event])
        .await
        .unwrap();
}

/// `acc-0` opened (1), `account_frozen` (a type this binary does not know) in `acc-0`'s
/// stream (2), `acc-1` opened (3).
async fn store_with_a_newer_event_type() -> InMemoryEventStore {
    let store = InMemoryEventStore::new();
    open(&store, "acc-0").await;
    append(&store, "account", "acc-0", "account_frozen").await;
    open(&store, "acc-1").await;
    store
}

#[tokio::test]
async fn an_unknown_event_in_an_aggregate_stream_stops_the_runner() {
    let store = store_with_a_newer_event_type().await;
    // Loading the aggregate fails on that row ...
    let bank = Repository::<BankAccount, _>::new(store.clone());
    assert!(bank.load(&AccountId("acc-0".into())).await.is_err());
    // ... and the projection of the aggregate stops there, naming it.
    let model = InMemoryReadModel::<Ledger>::new();
    let runner = ProjectionRunner::new(store.clone(), model.clone())
        .with_leases(InMemoryLeases::new())
        .error_policy(ErrorPolicy::Stop);
    let err = runner.catch_up().await.unwrap_err();
    assert!(
        matches!(
            &err,
            RunError::Event { position: 2, event_type, stream_type, .. }
                if event_type == "account_frozen" && stream_type == "account"
        ),
        "{err}"
    );
    assert!(err.to_string().contains("account_frozen"), "{err}");
    assert_eq!(model.stored_checkpoint().unwrap().cursor.position, 1);
    assert!(matches!(runner.handle().state(), RunState::Failed(_)));
    assert!(!model.read(|l| l.balances.contains_key("acc-1")));
}

#[tokio::test]
async fn an_unknown_event_in_an_aggregate_stream_becomes_a_dead_letter() {
    let store = store_with_a_newer_event_type().await;
    let model = InMemoryReadModel::<Ledger>::new();
    let runner = ProjectionRunner::new(store.clone(), model.clone())
        .with_leases(InMemoryLeases::new())
        .error_policy(ErrorPolicy::SkipAndRecord);
    assert_eq!(runner.catch_up().await.unwrap(), 3);
    let letters = runner.dead_letters().await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(
        (
            letters[0].cursor.position,
            letters[0].event_type.as_str(),
            letters[0].stream_type.as_str()
        ),
        (2, "account_frozen", "account")
    );
    assert!(model.read(|l| l.balances.contains_key("acc-1")));
}

#[tokio::test]
async fn an_unknown_event_in_another_stream_is_skipped() {
    let store = InMemoryEventStore::new();
    open(&store, "acc-0").await;
    append(&store, "parcel", "p-1", "parcel_lost").await;
    open(&store, "acc-1").await;
    let model = InMemoryReadModel::<Ledger>::new();
    let runner = ProjectionRunner::new(store.clone(), model.clone())
        .with_leases(InMemoryLeases::new())
        .error_policy(ErrorPolicy::Stop);
    // The parcel's event is outside the projection's filter: skipped unread, not counted.
    assert_eq!(runner.catch_up().await.unwrap(), 2);
    assert_eq!(runner.handle().lag().behind, 0);
    assert!(runner.dead_letters().await.unwrap().is_empty());
    assert_eq!(model.read(|l| l.balances.len()), 2);
}

#[tokio::test]
async fn with_the_event_enum_as_source_no_stream_is_strict() {
    let store = store_with_a_newer_event_type().await;
    let model = InMemoryReadModel::<LooseLedger>::new();
    let runner = ProjectionRunner::new(store.clone(), model.clone())
        .with_leases(InMemoryLeases::new())
        .error_policy(ErrorPolicy::Stop);
    // The unknown event is outside the enum source's filter: skipped unread, not counted.
    assert_eq!(runner.catch_up().await.unwrap(), 2);
    assert_eq!(runner.handle().lag().behind, 0);
    assert_eq!(model.read(|l| l.opened), 2);
}

#[tokio::test]
async fn a_non_exhaustive_projection_of_an_aggregate_is_strict_too() {
    let store = store_with_a_newer_event_type().await;
    Repository::<BankAccount, _>::new(store.clone())
        .execute(Deposit {
            account: AccountId("acc-1".into()),
            amount: 5,
        })
        .await
        .unwrap(); // 4: an event of the aggregate that the projection does not handle
    let model = InMemoryReadModel::<Openings>::new();
    let runner = ProjectionRunner::new(store.clone(), model.clone())
        .with_leases(InMemoryLeases::new())
        .error_policy(ErrorPolicy::SkipAndRecord);
    assert_eq!(runner.catch_up().await.unwrap(), 4);
    let letters = runner.dead_letters().await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].event_type, "account_frozen");
    assert_eq!(model.read(|o| o.opened), 2);
}

#[tokio::test]
async fn another_sources_event_in_an_aggregate_stream_is_refused() {
    let store = InMemoryEventStore::new();
    open(&store, "acc-0").await; // 1
    append(&store, "parcel", "p-1", "parcel_shipped").await; // 2: its own stream
    append(&store, "account", "acc-0", "parcel_shipped").await; // 3: not an account event
    let model = InMemoryReadModel::<Activity>::new();
    let runner = ProjectionRunner::new(store.clone(), model.clone())
        .with_leases(InMemoryLeases::new())
        .error_policy(ErrorPolicy::Stop);
    let err = runner.catch_up().await.unwrap_err();
    assert!(matches!(&err, RunError::Event { position: 3, .. }), "{err}");
    assert_eq!(model.read(|a| (a.opened, a.shipped)), (1, 1));
}
