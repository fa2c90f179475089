//! The projection runner on the in-memory store: exactly once under a crash, idempotency
//! under duplicate delivery, rebuild equals live, error policies, read-your-writes, one active
//! runner, and the rebuild-required check.

#[path = "../examples/bank_account/domain.rs"]
#[allow(dead_code)]
mod domain;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cqrs_runtime::memory::InMemoryCheckpoints;
use cqrs_runtime::prelude::*;
use cqrs_runtime::projection::{CheckpointedReadModel, EventMeta, RunError, RunState, WaitError};
use cqrs_runtime::store::{
    Checkpoint, CheckpointCommit, CheckpointStore, Cursor, DeadLetter, NewEvent, StoreError,
};
use domain::*;

/// One line per account, plus a count of handler calls (a duplicate delivery would show).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Book {
    accounts: BTreeMap<String, (String, Cents, bool)>,
    calls: u64,
}

#[projection(name = "book", events = AccountEvent)]
impl Book {
    #[on]
    fn opened(&mut self, e: &AccountOpened, meta: &EventMeta<'_>) {
        self.calls += 1;
        self.accounts.insert(
            meta.stream_id.to_owned(),
            (e.owner.clone(), e.initial_balance, false),
        );
    }
    #[on]
    fn deposited(&mut self, e: &MoneyDeposited, meta: &EventMeta<'_>) {
        // The simulated crash strikes before the handler's effect (a process dying there).
        crash_point(meta.position);
        self.calls += 1;
        if let Some(a) = self.accounts.get_mut(meta.stream_id) {
            a.1 = e.balance_after;
        }
    }
    #[on]
    fn withdrawn(&mut self, e: &MoneyWithdrawn, meta: &EventMeta<'_>) {
        self.calls += 1;
        if let Some(a) = self.accounts.get_mut(meta.stream_id) {
            a.1 = e.balance_after;
        }
    }
    #[on]
    fn closed(&mut self, _: &AccountClosed, meta: &EventMeta<'_>) {
        self.calls += 1;
        if let Some(a) = self.accounts.get_mut(meta.stream_id) {
            a.2 = true;
        }
    }
}

/// The position at which `Book`'s deposit handler panics once (0: never).
static CRASH_AT: AtomicU64 = AtomicU64::new(0);

fn crash_point(position: u64) {
    if CRASH_AT.load(Ordering::SeqCst) == position
        && CRASH_AT
            .compare_exchange(position, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    {
        panic!("simulated crash at position {position}");
    }
}

/// `accounts` accounts, each opened then given `deposits` deposits.
async fn history(accounts: usize, deposits: usize) -> (InMemoryEventStore, u64) {
    let store = InMemoryEventStore::new();
    let bank = Repository::<BankAccount, _>::new(store.clone());
    let mut last = 0;
    for a in 0..accounts {
        let account = AccountId(format!("acc-{a}"));
        bank.execute(OpenAccount {
            account: account.clone(),
            owner: format!("owner-{}", a % 3),
            initial_balance: 0,
        })
        .await
        .unwrap();
        for d in 0..deposits {
            let c = bank
                .execute(Deposit {
                    account: account.clone(),
                    amount: (d as i64 + 1) * 10,
                })
                .await
                .unwrap();
            last = c.position.unwrap();
        }
    }
    (store, last)
}

async fn clean_rebuild(store: &InMemoryEventStore) -> Book {
    let model = InMemoryReadModel::<Book>::new();
    let runner = ProjectionRunner::new(store.clone(), model.clone())
        .with_leases(InMemoryCheckpointsLeases::new());
    runner.rebuild().await.unwrap();
    model.snapshot()
}

/// A private lease table per call, so that tests running in parallel do not share leases.
type InMemoryCheckpointsLeases = cqrs_runtime::memory::InMemoryLeases;

#[tokio::test]
async fn exactly_once_under_a_crash_mid_batch() {
    let (store, _) = history(20, 10).await; // 220 events
    let model = InMemoryReadModel::<Book>::new();
    let leases = InMemoryCheckpointsLeases::new();
    CRASH_AT.store(150, Ordering::SeqCst);
    let crashing = ProjectionRunner::new(store.clone(), model.clone())
        .with_leases(leases.clone())
        .batch_size(100);
    let crashed = tokio::spawn(async move { crashing.catch_up().await }).await;
    assert!(
        crashed.is_err(),
        "the handler panicked inside the second batch"
    );
    let checkpoint = model
        .stored_checkpoint()
        .expect("the first batch and half the second committed");
    assert_eq!(checkpoint.cursor.position, 149);
    assert_eq!(model.read(|b| b.calls), 149);

    let restarted = ProjectionRunner::new(store.clone(), model.clone())
        .with_leases(leases)
        .batch_size(100);
    assert_eq!(restarted.catch_up().await.unwrap(), 71);
    let rebuilt = clean_rebuild(&store).await;
    assert_eq!(model.snapshot(), rebuilt);
    assert_eq!(rebuilt.calls, 220);
}

/// Checkpoints whose next `fail` commits fail (the crash between the model and the
/// checkpoint), and whose next claim can report an older cursor (a checkpoint write that was
/// lost): both make the runner deliver events again.
#[derive(Clone, Default)]
struct FlakyCheckpoints {
    inner: InMemoryCheckpoints,
    fail: std::sync::Arc<AtomicU64>,
    rewind: std::sync::Arc<std::sync::Mutex<Option<Cursor>>>,
}

impl CheckpointStore for FlakyCheckpoints {
    async fn checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, StoreError> {
        self.inner.checkpoint(name).await
    }
    async fn claim(&self, name: &str) -> Result<Checkpoint, StoreError> {
        let mut claim = self.inner.claim(name).await?;
        if let Some(cursor) = self.rewind.lock().expect("lock").take() {
            claim.cursor = cursor;
        }
        Ok(claim)
    }
    async fn commit(&self, name: &str, commit: CheckpointCommit) -> Result<Checkpoint, StoreError> {
        if self.fail.load(Ordering::SeqCst) > 0 {
            self.fail.fetch_sub(1, Ordering::SeqCst);
            return Err(StoreError::backend("simulated crash before the checkpoint"));
        }
        self.inner.commit(name, commit).await
    }
    async fn dead_letters(&self, name: &str) -> Result<Vec<DeadLetter>, StoreError> {
        self.inner.dead_letters(name).await
    }
}

#[tokio::test]
async fn at_least_once_redelivery_is_dropped_by_the_idempotency_guard() {
    let (store, _) = history(10, 9).await; // 100 events
    let checkpoints = FlakyCheckpoints::default();
    let model = CheckpointedReadModel::<Book, _>::new(checkpoints.clone());
    let leases = InMemoryCheckpointsLeases::new();
    let runner = ProjectionRunner::new(store.clone(), model.clone())
        .with_leases(leases)
        .batch_size(30);
    runner.catch_up().await.unwrap();
    assert_eq!(model.read(|b| b.calls), 100);

    // A lost checkpoint write: the events after position 10 are delivered again.
    *checkpoints.rewind.lock().unwrap() = Some(Cursor {
        tx: 0,
        position: 10,
    });
    assert_eq!(runner.catch_up().await.unwrap(), 90);
    assert_eq!(
        model.read(|b| b.calls),
        100,
        "re-delivered events were not applied twice"
    );

    // A crash between the model's commit and the checkpoint, then more events.
    let bank = Repository::<BankAccount, _>::new(store.clone());
    for amount in [5, 6, 7] {
        bank.execute(Deposit {
            account: AccountId("acc-1".into()),
            amount,
        })
        .await
        .unwrap();
    }
    checkpoints.fail.store(1, Ordering::SeqCst);
    let err = runner.catch_up().await.unwrap_err();
    assert!(matches!(err, RunError::Store { .. }), "{err}");
    assert_eq!(model.applied().map(|c| c.position), Some(103));
    assert_eq!(
        checkpoints
            .inner
            .checkpoint("book")
            .await
            .unwrap()
            .map(|c| c.cursor.position),
        Some(100)
    );
    runner.catch_up().await.unwrap();
    assert_eq!(model.read(Clone::clone), clean_rebuild(&store).await);
}

#[tokio::test]
async fn rebuild_equals_live() {
    let store = InMemoryEventStore::new();
    let model = InMemoryReadModel::<Book>::new();
    let running = ProjectionRunner::new(store.clone(), model.clone())
        .with_leases(InMemoryCheckpointsLeases::new())
        .wake_on(store.subscribe())
        .poll_interval(Duration::from_secs(5), Duration::from_secs(5))
        .spawn();
    let bank = Repository::<BankAccount, _>::new(store.clone());
    let mut last = 0;
    for a in 0..5 {
        let account = AccountId(format!("live-{a}"));
        bank.execute(OpenAccount {
            account: account.clone(),
            owner: "o".into(),
            initial_balance: 5,
        })
        .await
        .unwrap();
        for amount in 1..=4 {
            last = bank
                .execute(Deposit {
                    account: account.clone(),
                    amount,
                })
                .await
                .unwrap()
                .position
                .unwrap();
        }
        bank.execute(Withdraw {
            account: account.clone(),
            amount: 15,
        })
        .await
        .unwrap();
        last = bank
            .execute(CloseAccount { account })
            .await
            .map(|c| c.position)
            .unwrap()
            .unwrap_or(last);
    }
    // Woken by the commits, not by the 5 s poll.
    running
        .wait_for(last, Duration::from_secs(2))
        .await
        .unwrap();
    let lag = running.handle().lag();
    assert_eq!((lag.position, lag.head, lag.behind), (last, last, 0));
    running.stop().await.unwrap();
    let live = model.snapshot();
    assert_eq!(live, clean_rebuild(&store).await);

    // Rebuilding the same model in place gives the same result.
    let runner = ProjectionRunner::new(store.clone(), model.clone())
        .with_leases(InMemoryCheckpointsLeases::new());
    assert_eq!(runner.rebuild().await.unwrap(), last);
    assert_eq!(model.snapshot(), live);
}

async fn store_with_a_corrupt_event() -> InMemoryEventStore {
    let (store, _) = history(2, 2).await; // positions 1..=6
    let corrupt = NewEvent::new(
        "money_deposited",
        1,
        b"{\"amount\":\"ten\"}".to_vec(),
        Metadata::new(),
    );
    store
        .append("account", "acc-0", ExpectedVersion::Any, vec![corrupt])
        .await
        .unwrap(); // 7
    let bank = Repository::<BankAccount, _>::new(store.clone());
    bank.execute(OpenAccount {
        account: AccountId("acc-late".into()),
        owner: "z".into(),
        initial_balance: 1,
    })
    .await
    .unwrap(); // 8
    store
}

#[tokio::test]
async fn stop_policy_halts_before_the_bad_event_and_names_it() {
    let store = store_with_a_corrupt_event().await;
    let model = InMemoryReadModel::<Book>::new();
    let runner = ProjectionRunner::new(store.clone(), model.clone())
        .with_leases(InMemoryCheckpointsLeases::new());
    let err = runner.catch_up().await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(
            "`book` stopped at event `money_deposited` v1 (position 7, account acc-0 version 4"
        ),
        "{text}"
    );
    assert!(matches!(err, RunError::Event { position: 7, .. }));
    assert_eq!(model.stored_checkpoint().unwrap().cursor.position, 6);
    assert!(matches!(runner.handle().state(), RunState::Failed(_)));
    // It stops there again: nothing is skipped silently.
    assert!(runner.catch_up().await.is_err());
    assert_eq!(model.stored_checkpoint().unwrap().cursor.position, 6);
}

#[tokio::test]
async fn skip_and_record_goes_on_but_a_rebuild_never_skips() {
    let store = store_with_a_corrupt_event().await;
    let model = InMemoryReadModel::<Book>::new();
    let runner = ProjectionRunner::new(store.clone(), model.clone())
        .with_leases(InMemoryCheckpointsLeases::new())
        .error_policy(ErrorPolicy::SkipAndRecord);
    assert_eq!(runner.catch_up().await.unwrap(), 8);
    assert_eq!(runner.handle().dead_letters(), 1);
    let skipped = runner.dead_letters().await.unwrap();
    assert_eq!(skipped.len(), 1);
    assert_eq!(
        (skipped[0].cursor.position, skipped[0].event_type.as_str()),
        (7, "money_deposited")
    );
    assert!(model.read(|b| b.accounts.contains_key("acc-late")));

    let err = runner.rebuild().await.unwrap_err();
    assert!(matches!(err, RunError::Event { position: 7, .. }), "{err}");
}

#[tokio::test]
async fn read_your_writes_waits_and_times_out() {
    let (store, _) = history(1, 1).await;
    let model = InMemoryReadModel::<Book>::new();
    // No wake-up and a slow poll: a fresh commit is not seen for a while.
    let running = ProjectionRunner::new(store.clone(), model.clone())
        .with_leases(InMemoryCheckpointsLeases::new())
        .poll_interval(Duration::from_millis(300), Duration::from_millis(300))
        .spawn();
    running.wait_for(2, Duration::from_secs(2)).await.unwrap();
    let bank = Repository::<BankAccount, _>::new(store.clone());
    let c = bank
        .execute(Deposit {
            account: AccountId("acc-0".into()),
            amount: 1,
        })
        .await
        .unwrap();
    let position = c.position.unwrap();
    let err = running
        .wait_for(position, Duration::from_millis(20))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            WaitError::Timeout {
                wanted: 3,
                reached: 2,
                ..
            }
        ),
        "{err}"
    );
    running
        .wait_for(position, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(model.read(|b| b.accounts["acc-0"].1), 11);

    // A stopped runner ends the wait at once instead of timing out.
    let handle = running.handle().clone();
    running.stop().await.unwrap();
    let err = handle
        .wait_for(99, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        matches!(err, WaitError::Stopped { reached: 3, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn one_active_runner_per_projection() {
    let (store, _) = history(1, 1).await;
    let leases = InMemoryCheckpointsLeases::new();
    let first = ProjectionRunner::new(store.clone(), InMemoryReadModel::<Book>::new())
        .with_leases(leases.clone())
        .spawn();
    first.wait_for(2, Duration::from_secs(2)).await.unwrap();
    let second = ProjectionRunner::new(store.clone(), InMemoryReadModel::<Book>::new())
        .with_leases(leases.clone());
    let err = second.catch_up().await.unwrap_err();
    assert!(
        matches!(&err, RunError::AlreadyRunning { name } if name == "book"),
        "{err}"
    );
    first.stop().await.unwrap();
    assert_eq!(second.catch_up().await.unwrap(), 2);
}

/// `Book` under the same name, at version 2: its checkpoints are not `Book`'s.
#[derive(Debug, Default)]
pub struct BookV2 {
    opened: u32,
}

#[projection(name = "book", version = 2, events = AccountEvent, non_exhaustive)]
impl BookV2 {
    #[on]
    fn opened(&mut self, _: &AccountOpened) {
        self.opened += 1;
    }
}

#[tokio::test]
async fn a_checkpoint_of_another_version_requires_a_rebuild() {
    let (store, _) = history(3, 1).await;
    let checkpoints = InMemoryCheckpoints::new();
    ProjectionRunner::new(
        store.clone(),
        CheckpointedReadModel::<Book, _>::new(checkpoints.clone()),
    )
    .with_leases(InMemoryCheckpointsLeases::new())
    .catch_up()
    .await
    .unwrap();
    let v2 = CheckpointedReadModel::<BookV2, _>::new(checkpoints.clone());
    let runner = ProjectionRunner::new(store.clone(), v2.clone())
        .with_leases(InMemoryCheckpointsLeases::new());
    let err = runner.catch_up().await.unwrap_err();
    assert!(
        matches!(
            err,
            RunError::RebuildRequired {
                stored_version: 0,
                version: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("call `rebuild()`"));
    let runner = runner.rebuild_on_change();
    runner.catch_up().await.unwrap();
    assert_eq!(v2.read(|m| m.opened), 3);
    assert_ne!(
        <Book as Projection>::FINGERPRINT,
        <BookV2 as Projection>::FINGERPRINT
    );
}

#[tokio::test]
async fn events_of_other_aggregates_are_passed_over() {
    let (store, _) = history(1, 1).await;
    let other = NewEvent::new("parcel_shipped", 1, b"{}".to_vec(), Metadata::new());
    store
        .append("parcel", "p-1", ExpectedVersion::Any, vec![other])
        .await
        .unwrap();
    let model = InMemoryReadModel::<Book>::new();
    let runner = ProjectionRunner::new(store.clone(), model.clone())
        .with_leases(InMemoryCheckpointsLeases::new());
    // The parcel's event is outside the projection's filter: never fetched, not counted,
    // and the checkpoint still moves past it.
    assert_eq!(runner.catch_up().await.unwrap(), 2);
    assert_eq!(runner.handle().lag().behind, 0);
    assert_eq!(model.read(|b| b.calls), 2);
    let unfiltered = InMemoryReadModel::<Book>::new();
    let runner = ProjectionRunner::new(store.clone(), unfiltered.clone())
        .with_leases(InMemoryCheckpointsLeases::new())
        .unfiltered();
    assert_eq!(
        runner.catch_up().await.unwrap(),
        3,
        "fetched and passed over"
    );
    assert_eq!(unfiltered.read(|b| b.calls), 2);
}
