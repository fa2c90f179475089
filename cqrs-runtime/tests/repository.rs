//! The repository: load, policies, decide, append, metadata.

mod common;

use std::sync::Arc;

use common::*;
use cqrs_runtime::envelope::CommandMetadata;
use cqrs_runtime::error::CommandError;
use cqrs_runtime::memory::InMemoryEventStore;
use cqrs_runtime::repository::{Repository, RetryPolicy};
use cqrs_runtime::store::EventStore;
use serde_json::json;

#[tokio::test]
async fn commands_commit_events_with_envelopes() {
    let repo = repo();
    let committed = repo
        .execute(OpenWithDeposit {
            id: id("acc-1"),
            owner: "ada".into(),
            initial: 10,
        })
        .await
        .unwrap();
    assert_eq!(committed.version, 2);
    assert_eq!(committed.position, Some(2));
    assert_eq!(committed.state.balance, 10);
    assert_eq!(committed.state.owner.as_deref(), Some("ada"));
    let events: Vec<_> = committed.events.iter().map(|e| e.event.clone()).collect();
    assert_eq!(events, [opened("ada"), deposited(10)]);

    let stored = repo
        .store()
        .read_stream("account", "acc-1", 1)
        .await
        .unwrap();
    for (envelope, stored) in committed.events.iter().zip(&stored) {
        assert_eq!(envelope.event_id, stored.event_id);
        assert_eq!(envelope.stream_type, "account");
        assert_eq!(envelope.stream_id, "acc-1");
        assert_eq!(envelope.stream_version, stored.stream_version);
        assert_eq!(envelope.global_position, stored.global_position);
        assert_eq!(envelope.recorded_at, stored.recorded_at);
        assert_eq!(envelope.metadata, stored.metadata);
    }
    assert_eq!(stored[1].event_type, "money_deposited");
    assert_eq!(stored[1].event_version, 2);
    assert_eq!(stored[1].payload, br#"{"amount":10}"#);

    let committed = repo
        .execute(Withdraw {
            id: id("acc-1"),
            amount: 4,
        })
        .await
        .unwrap();
    assert_eq!((committed.version, committed.position), (3, Some(3)));
    assert_eq!(committed.events[0].stream_version, 3);
    assert_eq!(committed.state.balance, 6);
}

#[tokio::test]
async fn load_rebuilds_the_state_from_the_stream() {
    let repo = repo();
    let loaded = repo.load(&id("acc-1")).await.unwrap();
    assert_eq!((loaded.state, loaded.version), (Account::default(), 0));

    open(&repo, "acc-1").await;
    open(&repo, "acc-2").await;
    for amount in [5, 7] {
        repo.execute(Deposit {
            id: id("acc-1"),
            amount,
        })
        .await
        .unwrap();
    }
    let loaded = repo.load(&id("acc-1")).await.unwrap();
    assert_eq!(loaded.version, 3);
    assert_eq!(
        loaded.state,
        Account {
            owner: Some("ada".into()),
            balance: 12,
            closed: false
        }
    );
}

#[tokio::test]
async fn creation_policies_are_enforced() {
    let repo = repo();
    let err = repo
        .execute(Deposit {
            id: id("ghost"),
            amount: 1,
        })
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(
        err.to_string(),
        "account ghost not found: the handler of `Deposit` needs an existing account (creation \
         policy `existing`, the default); write `#[command(create)]` on a handler that creates it, \
         or `#[command(any)]` to accept both"
    );

    open(&repo, "acc-1").await;
    let err = repo
        .execute(OpenAccount {
            id: id("acc-1"),
            owner: "bob".into(),
        })
        .await
        .unwrap_err();
    match &err {
        CommandError::AlreadyExists {
            stream_type,
            stream_id,
            version,
            command,
        } => assert_eq!(
            (stream_type.as_str(), stream_id.as_str(), *version, *command),
            ("account", "acc-1", 1, "OpenAccount")
        ),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert!(err.is_already_exists());

    // `any` runs on both; no events means no append.
    for account in ["acc-1", "ghost"] {
        let committed = repo.execute(Ping { id: id(account) }).await.unwrap();
        assert!(committed.events.is_empty());
        assert_eq!(committed.position, None);
    }
    assert_eq!(repo.store().head().await.unwrap().position, 1);
}

#[tokio::test]
async fn handler_errors_are_rejections() {
    let repo = repo();
    open(&repo, "acc-1").await;
    let err = repo
        .execute(Withdraw {
            id: id("acc-1"),
            amount: 3,
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.rejection(),
        Some(&AccountError::InsufficientFunds {
            balance: 0,
            requested: 3
        })
    );
    assert!(!err.is_conflict());
    assert_eq!(
        err.to_string(),
        "insufficient funds: balance 0, requested 3"
    );
    assert!(matches!(
        err.into_rejection(),
        Ok(AccountError::InsufficientFunds { .. })
    ));
    assert_eq!(repo.store().head().await.unwrap().position, 1);
}

#[tokio::test]
async fn services_reach_the_handlers() {
    let repo = Repository::<Account, _>::with_services(
        InMemoryEventStore::new(),
        AccountServices {
            deposit_limit: Some(100),
        },
    );
    repo.execute(OpenAccount {
        id: id("acc-1"),
        owner: "ada".into(),
    })
    .await
    .unwrap();
    let err = repo
        .execute(Deposit {
            id: id("acc-1"),
            amount: 101,
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.rejection(),
        Some(&AccountError::OverLimit {
            amount: 101,
            limit: 100
        })
    );
}

#[tokio::test]
async fn metadata_propagates_from_commands_to_events_to_follow_ups() {
    let repo = repo();
    let meta = CommandMetadata::new()
        .with_user("tenant", "acme")
        .with_user("n", 7);
    let committed = repo
        .execute_with(
            OpenWithDeposit {
                id: id("acc-1"),
                owner: "ada".into(),
                initial: 1,
            },
            meta.clone(),
        )
        .await
        .unwrap();
    for envelope in &committed.events {
        // No correlation given: the command starts one at its own id.
        assert_eq!(envelope.metadata.correlation_id, meta.command_id);
        assert_eq!(envelope.metadata.causation_id, Some(meta.command_id));
        assert_eq!(envelope.metadata.user["tenant"], json!("acme"));
        assert_eq!(envelope.metadata.user["n"], json!(7));
    }
    let stored = repo
        .store()
        .read_stream("account", "acc-1", 1)
        .await
        .unwrap();
    assert!(
        stored
            .iter()
            .all(|e| e.metadata == committed.events[0].metadata)
    );

    // A follow-up command caused by the deposit event keeps the correlation.
    let cause = &committed.events[1];
    let follow_up = CommandMetadata::caused_by(cause);
    assert_eq!(
        follow_up,
        CommandMetadata {
            command_id: follow_up.command_id,
            ..cause.follow_up()
        }
    );
    assert_eq!(follow_up.correlation_id, Some(meta.command_id));
    assert_eq!(follow_up.causation_id, Some(cause.event_id));
    assert_ne!(follow_up.command_id, meta.command_id);
    let next = repo
        .execute_with(
            Deposit {
                id: id("acc-1"),
                amount: 2,
            },
            follow_up.clone(),
        )
        .await
        .unwrap();
    let metadata = &next.events[0].metadata;
    assert_eq!(metadata.correlation_id, meta.command_id);
    assert_eq!(metadata.causation_id, Some(follow_up.command_id));
    assert_eq!(metadata.user, meta.user);

    // An explicit correlation id wins over the command id.
    let correlation = uuid::Uuid::now_v7();
    let explicit = CommandMetadata::new().with_correlation_id(correlation);
    let next = repo
        .execute_with(
            Deposit {
                id: id("acc-1"),
                amount: 3,
            },
            explicit.clone(),
        )
        .await
        .unwrap();
    assert_eq!(next.events[0].metadata.correlation_id, correlation);
    assert_eq!(
        next.events[0].metadata.causation_id,
        Some(explicit.command_id)
    );
    assert!(next.events[0].metadata.user.is_empty());
}

#[tokio::test]
async fn repositories_over_shared_stores_see_each_other() {
    let store = Arc::new(InMemoryEventStore::new());
    let a = Repository::<Account, _>::new(Arc::clone(&store));
    let b = a.clone().retry(RetryPolicy::attempts(2));
    a.execute(OpenAccount {
        id: id("acc-1"),
        owner: "ada".into(),
    })
    .await
    .unwrap();
    let committed = b
        .execute(Deposit {
            id: id("acc-1"),
            amount: 9,
        })
        .await
        .unwrap();
    assert_eq!(committed.version, 2);
    assert_eq!(a.load(&id("acc-1")).await.unwrap().state.balance, 9);
}

fn assert_send<T: Send>(_: &T) {}

/// Compile-time check: the repository's futures are `Send` for any store, so they can be
/// spawned on a multi-threaded runtime.
#[allow(dead_code)]
fn repository_futures_are_send<S: EventStore>(repo: &Repository<Account, S>) {
    assert_send(&repo.execute(Ping { id: id("x") }));
    assert_send(&repo.execute_with(Ping { id: id("x") }, CommandMetadata::new()));
    assert_send(&repo.load(&id("x")));
}

mod execute_once {
    use super::*;
    use cqrs_runtime::repository::{DECISIONS_STREAM_TYPE, Once};
    use cqrs_runtime::store::{Cursor, StoredEvent};
    use uuid::Uuid;

    fn once(command_id: Uuid) -> CommandMetadata {
        CommandMetadata {
            command_id,
            ..CommandMetadata::new()
        }
    }

    async fn log(store: &InMemoryEventStore) -> Vec<StoredEvent> {
        let page = store.read_after(Cursor::START, 1000).await.unwrap();
        page.into_iter().map(|(_, e)| e).collect()
    }

    #[tokio::test]
    async fn a_command_takes_effect_once() {
        let repo = repo();
        open(&repo, "acc-1").await;
        let id_ = Uuid::now_v7();
        let deposit = || Deposit {
            id: id("acc-1"),
            amount: 5,
        };
        let first = repo.execute_once(deposit(), once(id_)).await.unwrap();
        assert!(!first.already_applied());
        let again = repo.execute_once(deposit(), once(id_)).await.unwrap();
        assert!(matches!(
            again,
            Once::AlreadyApplied {
                stream_version: 2,
                ..
            }
        ));
        assert_eq!(again.position(), first.position());
        assert_eq!(repo.load(&id("acc-1")).await.unwrap().state.balance, 5);
    }

    #[tokio::test]
    async fn a_rejection_is_the_answer_on_every_delivery() {
        let repo = repo();
        open(&repo, "acc-1").await;
        let id_ = Uuid::now_v7();
        let withdraw = || Withdraw {
            id: id("acc-1"),
            amount: 50,
        };
        let first = repo.execute_once(withdraw(), once(id_)).await;
        let rejected = AccountError::InsufficientFunds {
            balance: 0,
            requested: 50,
        };
        assert!(matches!(&first, Err(CommandError::Rejected(e)) if *e == rejected));

        // The account could pay now; the command is still answered as it was decided.
        repo.execute(Deposit {
            id: id("acc-1"),
            amount: 100,
        })
        .await
        .unwrap();
        let again = repo.execute_once(withdraw(), once(id_)).await;
        assert!(
            matches!(&again, Err(CommandError::Rejected(e)) if *e == rejected),
            "{again:?}"
        );
        assert_eq!(repo.load(&id("acc-1")).await.unwrap().state.balance, 100);

        // One record of the decision, in its own stream, under the command's first event id.
        let records: Vec<_> = log(repo.store())
            .await
            .into_iter()
            .filter(|e| e.stream_type == DECISIONS_STREAM_TYPE)
            .collect();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].stream_id, id_.to_string());
        assert_eq!(
            records[0].event_id,
            cqrs_runtime::repository::event_id(id_, 0)
        );
        let record: serde_json::Value = serde_json::from_slice(&records[0].payload).unwrap();
        assert_eq!(record["outcome"], "rejected");
        assert_eq!(record["version"], 1);
        assert_eq!(record["stream_id"], "acc-1");
    }

    #[tokio::test]
    async fn a_refusal_of_the_creation_policy_is_the_answer_on_every_delivery() {
        let repo = repo();
        let id_ = Uuid::now_v7();
        let deposit = || Deposit {
            id: id("acc-9"),
            amount: 1,
        };
        let first = repo.execute_once(deposit(), once(id_)).await;
        assert!(
            matches!(first, Err(CommandError::NotFound { .. })),
            "{first:?}"
        );
        open(&repo, "acc-9").await;
        let again = repo.execute_once(deposit(), once(id_)).await;
        assert!(
            matches!(again, Err(CommandError::NotFound { .. })),
            "{again:?}"
        );
        assert_eq!(repo.load(&id("acc-9")).await.unwrap().state.balance, 0);
    }

    #[tokio::test]
    async fn a_decision_of_no_event_is_kept() {
        let repo = repo();
        open(&repo, "acc-1").await;
        let id_ = Uuid::now_v7();
        let ping = || Ping { id: id("acc-1") };
        let first = repo.execute_once(ping(), once(id_)).await.unwrap();
        assert!(matches!(&first, Once::Committed(c) if c.events.is_empty()));
        assert_eq!(first.position(), None);
        let again = repo.execute_once(ping(), once(id_)).await.unwrap();
        assert!(
            matches!(again, Once::AlreadyDecided { version: 1 }),
            "{again:?}"
        );
        assert!(again.already_applied());
        assert_eq!(again.position(), None);
    }

    #[tokio::test]
    async fn a_handler_that_decides_differently_on_the_same_state_is_reported() {
        let store = InMemoryEventStore::new();
        let limited: Repo = Repository::with_services(
            store.clone(),
            AccountServices {
                deposit_limit: Some(5),
            },
        );
        open(&limited, "acc-1").await;
        let id_ = Uuid::now_v7();
        let deposit = || Deposit {
            id: id("acc-1"),
            amount: 10,
        };
        let first = limited.execute_once(deposit(), once(id_)).await;
        assert!(matches!(
            first,
            Err(CommandError::Rejected(AccountError::OverLimit { .. }))
        ));

        // The same command, the same state, other services: the handler now accepts.
        let unlimited: Repo = Repository::new(store);
        let again = unlimited.execute_once(deposit(), once(id_)).await;
        match again {
            Err(CommandError::NotReproducible {
                command_id,
                stream_id,
                version,
                ..
            }) => assert_eq!((command_id, stream_id.as_str(), version), (id_, "acc-1", 1)),
            other => panic!("expected NotReproducible, got {other:?}"),
        }
        assert_eq!(unlimited.load(&id("acc-1")).await.unwrap().state.balance, 0);
    }
}

mod temporal {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn an_aggregate_as_it_was_at_a_version_and_at_a_time() {
        let repo = repo();
        let before = chrono::Utc::now();
        tokio::time::sleep(Duration::from_millis(2)).await;
        open(&repo, "acc-1").await;
        let mut times = Vec::new();
        for amount in [10, 20, 30] {
            repo.execute(Deposit {
                id: id("acc-1"),
                amount,
            })
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
            times.push(chrono::Utc::now());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }

        let acc = id("acc-1");
        let at = |v| repo.load_at(&acc, v);
        assert_eq!(at(0).await.unwrap().version, 0);
        assert_eq!(at(1).await.unwrap().state.balance, 0);
        assert_eq!(at(1).await.unwrap().state.owner.as_deref(), Some("ada"));
        assert_eq!(at(3).await.unwrap().state.balance, 30);
        let beyond = at(99).await.unwrap();
        assert_eq!((beyond.version, beyond.state.balance), (4, 60));
        assert_eq!(beyond, repo.load(&id("acc-1")).await.unwrap());

        let as_of = |t| repo.load_as_of(&acc, t);
        let empty = as_of(before).await.unwrap();
        assert_eq!((empty.version, empty.state.owner), (0, None));
        let balances: Vec<_> = [times[0], times[1], times[2]]
            .into_iter()
            .map(as_of)
            .collect();
        let mut seen = Vec::new();
        for loaded in balances {
            let loaded = loaded.await.unwrap();
            seen.push((loaded.version, loaded.state.balance));
        }
        assert_eq!(seen, [(2, 10), (3, 30), (4, 60)]);

        // A stream that does not exist is empty at every version and time.
        let none = repo.load_at(&id("nobody"), 5).await.unwrap();
        assert_eq!(none.version, 0);
    }
}
