//! Stored events that do not decode fail with their stream context; old versions upcast.

mod common;

use common::*;
use cqrs_runtime::envelope::Metadata;
use cqrs_runtime::error::CommandError;
use cqrs_runtime::event::DecodeError;
use cqrs_runtime::store::{EventStore, ExpectedVersion, NewEvent};

async fn decode_error_after_injecting(
    event_type: &'static str,
    version: u32,
    payload: &[u8],
) -> CommandError<AccountError> {
    let repo = repo();
    open(&repo, "acc-1").await;
    open(&repo, "acc-2").await;
    let bad = NewEvent::new(event_type, version, payload.to_vec(), Metadata::new());
    repo.store()
        .append("account", "acc-1", ExpectedVersion::Exact(1), vec![bad])
        .await
        .unwrap();
    let err = repo.load(&id("acc-1")).await.unwrap_err();
    match &err {
        CommandError::Decode {
            stream_type,
            stream_id,
            stream_version,
            global_position,
            ..
        } => {
            assert_eq!(
                (stream_type.as_str(), stream_id.as_str()),
                ("account", "acc-1")
            );
            assert_eq!((*stream_version, *global_position), (2, 3));
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    // Commands fail the same way, and the other stream is unaffected.
    let exec = repo
        .execute(Deposit {
            id: id("acc-1"),
            amount: 1,
        })
        .await
        .unwrap_err();
    assert!(matches!(exec, CommandError::Decode { .. }), "{exec:?}");
    repo.load(&id("acc-2")).await.unwrap();
    err
}

#[tokio::test]
async fn unknown_event_types_are_decode_errors_with_context() {
    let err = decode_error_after_injecting("account_renamed", 1, b"{}").await;
    assert!(
        matches!(&err, CommandError::Decode { source: DecodeError::UnknownEventType { name }, .. } if name == "account_renamed")
    );
    assert_eq!(
        err.to_string(),
        "cannot decode event at version 2 of account acc-1 (global position 3): unknown event type `account_renamed`"
    );
    assert!(std::error::Error::source(&err).is_some());
}

#[tokio::test]
async fn unknown_versions_are_decode_errors_with_context() {
    let err = decode_error_after_injecting("money_deposited", 3, br#"{"amount":1}"#).await;
    assert!(matches!(
        &err,
        CommandError::Decode {
            source: DecodeError::UnknownVersion {
                version: 3,
                known: 2,
                ..
            },
            ..
        }
    ));
    let message = err.to_string();
    assert!(
        message.contains("version 2 of account acc-1 (global position 3)"),
        "{message}"
    );
    assert!(
        message.contains("`money_deposited` has version 3"),
        "{message}"
    );
}

#[tokio::test]
async fn corrupt_payloads_are_decode_errors_with_context() {
    let err = decode_error_after_injecting("money_deposited", 2, br#"{"amount":"ten"}"#).await;
    assert!(matches!(
        &err,
        CommandError::Decode {
            source: DecodeError::CorruptPayload { version: 2, .. },
            ..
        }
    ));
    let message = err.to_string();
    assert!(
        message.contains("account acc-1 (global position 3)"),
        "{message}"
    );
    assert!(
        message.contains("corrupt payload for event `money_deposited` version 2"),
        "{message}"
    );
}

#[tokio::test]
async fn old_versions_are_upcast_on_load() {
    let repo = repo();
    open(&repo, "acc-1").await;
    let v1 = NewEvent::new(
        "money_deposited",
        1,
        br#"{"amt":"42"}"#.to_vec(),
        Metadata::new(),
    );
    repo.store()
        .append("account", "acc-1", ExpectedVersion::Exact(1), vec![v1])
        .await
        .unwrap();
    assert_eq!(repo.load(&id("acc-1")).await.unwrap().state.balance, 42);
}
