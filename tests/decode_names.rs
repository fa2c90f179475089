//! Decoding through every kind of history: an event without one, an upcast chain under one
//! name, and a rename followed by upcasts, each asked for every stored (name, version) it
//! answers to and for those it must refuse. The enum's name test and each event's version
//! test together decide; no answer depends on the order of the variants.

use cqrs_runtime::event::DecodeError;
use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "ledger_flag_set", version = 1)]
pub struct FlagSet {
    pub on: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "ledger_amount_set", version = 1)]
pub struct AmountV1 {
    pub cents: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "ledger_amount_set", version = 2, upcast_from = AmountV1)]
pub struct AmountV2 {
    pub cents: u64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "ledger_amount_set", version = 3, upcast_from = AmountV2)]
pub struct AmountSet {
    pub cents: u64,
    pub currency: String,
    pub note: Option<String>,
}

impl From<AmountV1> for AmountV2 {
    fn from(v1: AmountV1) -> Self {
        AmountV2 {
            cents: v1.cents,
            currency: "EUR".into(),
        }
    }
}

impl From<AmountV2> for AmountSet {
    fn from(v2: AmountV2) -> Self {
        AmountSet {
            cents: v2.cents,
            currency: v2.currency,
            note: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "ledger_note_added", version = 1)]
pub struct NoteV1 {
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "ledger_note_added", version = 2, upcast_from = NoteV1)]
pub struct NoteV2 {
    pub text: String,
    pub by: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "ledger_comment_added", version = 1, renamed_from = NoteV2)]
pub struct CommentV1 {
    pub text: String,
    pub by: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "ledger_comment_added", version = 2, upcast_from = CommentV1)]
pub struct CommentAdded {
    pub text: String,
    pub by: String,
    pub pinned: bool,
}

impl From<NoteV1> for NoteV2 {
    fn from(v1: NoteV1) -> Self {
        NoteV2 {
            text: v1.text,
            by: "unknown".into(),
        }
    }
}

impl From<NoteV2> for CommentV1 {
    fn from(v2: NoteV2) -> Self {
        CommentV1 {
            text: v2.text,
            by: v2.by,
        }
    }
}

impl From<CommentV1> for CommentAdded {
    fn from(v1: CommentV1) -> Self {
        CommentAdded {
            text: v1.text,
            by: v1.by,
            pinned: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum LedgerEvent {
    FlagSet(FlagSet),
    AmountSet(AmountSet),
    CommentAdded(CommentAdded),
}

fn decode(name: &str, version: u32, payload: &str) -> Result<LedgerEvent, DecodeError> {
    LedgerEvent::decode(name, version, payload.as_bytes()).map(|d| d.one().expect("one event"))
}

fn unknown_version(result: Result<LedgerEvent, DecodeError>, known: u32) {
    match result {
        Err(DecodeError::UnknownVersion { known: k, .. }) => assert_eq!(k, known),
        other => panic!("expected an unknown version (known {known}), got {other:?}"),
    }
}

#[test]
fn an_event_without_history_takes_its_one_version() {
    assert_eq!(
        decode("ledger_flag_set", 1, r#"{"on":true}"#).expect("v1"),
        LedgerEvent::FlagSet(FlagSet { on: true })
    );
    unknown_version(decode("ledger_flag_set", 2, r#"{"on":true}"#), 1);
    unknown_version(decode("ledger_flag_set", 0, r#"{"on":true}"#), 1);
}

#[test]
fn an_upcast_chain_under_one_name_takes_every_version_up_to_its_own() {
    let current = |note: Option<&str>, currency: &str| {
        LedgerEvent::AmountSet(AmountSet {
            cents: 5,
            currency: currency.into(),
            note: note.map(str::to_owned),
        })
    };
    assert_eq!(
        decode("ledger_amount_set", 1, r#"{"cents":5}"#).expect("v1"),
        current(None, "EUR")
    );
    assert_eq!(
        decode("ledger_amount_set", 2, r#"{"cents":5,"currency":"USD"}"#).expect("v2"),
        current(None, "USD")
    );
    assert_eq!(
        decode(
            "ledger_amount_set",
            3,
            r#"{"cents":5,"currency":"USD","note":"x"}"#
        )
        .expect("v3"),
        current(Some("x"), "USD")
    );
    unknown_version(decode("ledger_amount_set", 4, "{}"), 3);
    // Below version 1: down the chain to the first version, which refuses it.
    unknown_version(decode("ledger_amount_set", 0, "{}"), 1);
}

#[test]
fn a_renamed_chain_takes_the_old_name_at_old_versions_only() {
    let comment = |by: &str, pinned: bool| {
        LedgerEvent::CommentAdded(CommentAdded {
            text: "hi".into(),
            by: by.into(),
            pinned,
        })
    };
    assert_eq!(
        decode("ledger_note_added", 1, r#"{"text":"hi"}"#).expect("old v1"),
        comment("unknown", false)
    );
    assert_eq!(
        decode("ledger_note_added", 2, r#"{"text":"hi","by":"ada"}"#).expect("old v2"),
        comment("ada", false)
    );
    assert_eq!(
        decode("ledger_comment_added", 1, r#"{"text":"hi","by":"ada"}"#).expect("new v1"),
        comment("ada", false)
    );
    assert_eq!(
        decode(
            "ledger_comment_added",
            2,
            r#"{"text":"hi","by":"ada","pinned":true}"#
        )
        .expect("new v2"),
        comment("ada", true)
    );
    unknown_version(decode("ledger_comment_added", 3, "{}"), 2);
    // The old name never reached version 3: its last version is 2.
    unknown_version(decode("ledger_note_added", 3, "{}"), 2);
    assert!(matches!(
        decode("ledger_note_removed", 1, "{}"),
        Err(DecodeError::UnknownEventType { .. })
    ));
}
