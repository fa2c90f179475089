//! The repository under concurrency: typed conflicts and opt-in retry.

mod common;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use cqrs_runtime::envelope::Metadata;
use cqrs_runtime::error::CommandError;
use cqrs_runtime::memory::InMemoryEventStore;
use cqrs_runtime::repository::{Repository, RetryPolicy};
use cqrs_runtime::store::{
    AppendOutcome, Cursor, EventFilter, EventStore, ExpectedVersion, NewEvent, ReadBatch,
    StoreError, StoredEvent, StreamEventRef,
};

/// A store that lets another writer slip in one event right before the next `n` appends.
#[derive(Clone)]
struct Interfering {
    inner: InMemoryEventStore,
    remaining: Arc<std::sync::atomic::AtomicU32>,
}

impl EventStore for Interfering {
    async fn append(
        &self,
        stream_type: &str,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        let interfere = self
            .remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if interfere {
            let payload = br#"{"amount":1}"#.to_vec();
            let sneak = NewEvent::new("money_deposited", 2, payload, Metadata::new());
            self.inner
                .append(stream_type, stream_id, ExpectedVersion::Any, vec![sneak])
                .await?;
        }
        self.inner
            .append(stream_type, stream_id, expected, events)
            .await
    }

    fn read_stream(
        &self,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send {
        self.inner.read_stream(stream_type, stream_id, from_version)
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
        self.inner
            .replay_stream(stream_type, stream_id, from_version, visit)
    }
    fn read_after(
        &self,
        after: Cursor,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(Cursor, StoredEvent)>, StoreError>> + Send {
        self.inner.read_after(after, limit)
    }

    fn read_filtered(
        &self,
        after: Cursor,
        limit: usize,
        filter: &EventFilter,
    ) -> impl Future<Output = Result<ReadBatch, StoreError>> + Send {
        self.inner.read_filtered(after, limit, filter)
    }
    fn head(&self) -> impl Future<Output = Result<Cursor, StoreError>> + Send {
        self.inner.head()
    }

    fn read_event(
        &self,
        event_id: uuid::Uuid,
    ) -> impl Future<Output = Result<Option<StoredEvent>, StoreError>> + Send {
        self.inner.read_event(event_id)
    }
}

async fn interfering_repo(interferences: u32) -> Repository<Account, Interfering> {
    let store = Interfering {
        inner: InMemoryEventStore::new(),
        remaining: Arc::new(0.into()),
    };
    let repo = Repository::new(store.clone());
    repo.execute(OpenAccount {
        id: id("acc-1"),
        owner: "ada".into(),
    })
    .await
    .unwrap();
    store.remaining.store(interferences, Ordering::SeqCst);
    repo
}

#[tokio::test]
async fn a_conflict_without_retry_is_a_typed_error() {
    let repo = interfering_repo(1).await;
    let err = repo
        .execute(Deposit {
            id: id("acc-1"),
            amount: 5,
        })
        .await
        .unwrap_err();
    match &err {
        CommandError::Conflict {
            stream_type,
            stream_id,
            expected,
            actual,
            attempts,
        } => {
            assert_eq!(
                (stream_type.as_str(), stream_id.as_str()),
                ("account", "acc-1")
            );
            assert_eq!(
                (*expected, *actual, *attempts),
                (ExpectedVersion::Exact(1), 2, 1)
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(err.is_conflict());
    // Only the interfering writer's event landed.
    assert_eq!(repo.load(&id("acc-1")).await.unwrap().state.balance, 1);
}

#[tokio::test]
async fn retry_reloads_and_redecides() {
    let repo = interfering_repo(2)
        .await
        .retry(RetryPolicy::attempts(3).with_backoff(Duration::ZERO, Duration::ZERO));
    let committed = repo
        .execute(Deposit {
            id: id("acc-1"),
            amount: 5,
        })
        .await
        .unwrap();
    // Opened, two interfering deposits, then ours, decided against the re-loaded state.
    assert_eq!(committed.version, 4);
    assert_eq!(committed.events[0].stream_version, 4);
    assert_eq!(committed.state.balance, 7);

    let repo = interfering_repo(3).await.retry(RetryPolicy::attempts(3));
    let err = repo
        .execute(Deposit {
            id: id("acc-1"),
            amount: 5,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CommandError::Conflict {
                attempts: 3,
                actual: 4,
                ..
            }
        ),
        "{err:?}"
    );
}

async fn hammer(repo: Arc<Repo>, tasks: u64) -> (u64, u64) {
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let repo = Arc::clone(&repo);
            tokio::spawn(async move {
                // Yields between load and append, so that tasks interleave.
                repo.execute(AuditedDeposit {
                    id: id("hot"),
                    amount: 1,
                })
                .await
            })
        })
        .collect();
    let (mut ok, mut conflicts) = (0, 0);
    for handle in handles {
        match handle.await.unwrap() {
            Ok(_) => ok += 1,
            Err(err) if err.is_conflict() => conflicts += 1,
            Err(err) => panic!("{err}"),
        }
    }
    (ok, conflicts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commands_with_retry_all_commit() {
    const TASKS: u64 = 24;
    // A conflict means another task committed after this one loaded: with one event per
    // task, no task can lose more than TASKS - 1 times.
    let repo = Arc::new(repo().retry(RetryPolicy::attempts(TASKS as u32)));
    open(&repo, "hot").await;
    let (ok, conflicts) = hammer(Arc::clone(&repo), TASKS).await;
    assert_eq!((ok, conflicts), (TASKS, 0));
    let loaded = repo.load(&id("hot")).await.unwrap();
    assert_eq!(loaded.version, 1 + ok);
    assert_eq!(loaded.state.balance, ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commands_without_retry_commit_or_conflict() {
    const TASKS: u64 = 24;
    let repo = Arc::new(repo());
    open(&repo, "hot").await;
    let (ok, conflicts) = hammer(Arc::clone(&repo), TASKS).await;
    assert_eq!(ok + conflicts, TASKS);
    let loaded = repo.load(&id("hot")).await.unwrap();
    assert_eq!(loaded.version, 1 + ok);
    assert_eq!(loaded.state.balance, ok);
}
