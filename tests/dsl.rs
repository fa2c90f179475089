//! The generated code of the four macros, exercised directly through the runtime traits.

#[path = "../examples/bank_account/domain.rs"]
mod domain;

use std::future::Future;

use cqrs_runtime::prelude::*;
use domain::*;

fn decide(
    state: &BankAccount,
    cmd: impl Into<BankAccountCommand>,
) -> Result<Vec<AccountEvent>, AccountError> {
    let mut fut = std::pin::pin!(state.handle(cmd.into(), &()));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(r) => r.map(cqrs_runtime::aggregate::Events::into_vec),
        std::task::Poll::Pending => panic!("sync handler returned Pending"),
    }
}

#[test]
fn commands_dispatch_and_apply_evolves() {
    let id = AccountId("a-1".into());
    let mut state = BankAccount::default();
    let events = decide(
        &state,
        OpenAccount {
            account: id.clone(),
            owner: "ann".into(),
            initial_balance: 10,
        },
    )
    .unwrap();
    assert_eq!(
        events,
        vec![AccountEvent::Opened(AccountOpened {
            owner: "ann".into(),
            initial_balance: 10
        })]
    );
    for e in &events {
        state.apply(e);
    }
    assert_eq!(state.balance, 10);
    let err = decide(
        &state,
        Withdraw {
            account: id.clone(),
            amount: 11,
        },
    )
    .unwrap_err();
    assert_eq!(
        err,
        AccountError::InsufficientFunds {
            balance: 10,
            requested: 11
        }
    );
}

#[test]
fn encode_decode_round_trip() {
    let e = AccountEvent::Deposited(MoneyDeposited {
        amount: 5,
        balance_after: 15,
    });
    let enc = e.encode().unwrap();
    assert_eq!((enc.name, enc.version), ("money_deposited", 1));
    assert_eq!(
        AccountEvent::decode(enc.name, enc.version, &enc.payload).unwrap(),
        cqrs_runtime::event::Decoded::One(e)
    );
    assert_eq!(AccountEvent::DEPOSITED, "money_deposited");
    assert_eq!(
        AccountEvent::NAMES,
        &[
            "account_opened",
            "money_deposited",
            "money_withdrawn",
            "account_closed"
        ]
    );
    println!("{}", cqrs_runtime::event::describe::<AccountEvent>());
}

#[test]
fn an_event_converts_into_and_out_of_its_enum() {
    use cqrs_runtime::event::EventOf;
    let deposited = MoneyDeposited {
        amount: 5,
        balance_after: 15,
    };
    let wrapped: AccountEvent = deposited.clone().into_enum();
    assert_eq!(MoneyDeposited::from_enum(&wrapped), Some(&deposited));
    assert_eq!(MoneyWithdrawn::from_enum(&wrapped), None);
    assert_eq!(AccountEvent::from_enum(&wrapped), Some(&wrapped));
}

/// Inputs that once broke a macro: raw identifiers, and `#[cfg(...)]` on handlers and variants.
mod awkward_inputs {
    use cqrs_runtime::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, thiserror::Error)]
    #[error("rejected")]
    pub struct Rejected;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
    #[event(name = "gate_opened", version = 1)]
    pub struct Opened {}

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
    #[event(name = "gate_typed", version = 1)]
    pub struct Typed {}

    #[cfg(any())]
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
    #[event(name = "gate_never", version = 1)]
    pub struct Never {}

    // A raw identifier (its constant is `GateEvent::TYPE`), and a variant compiled out.
    #[derive(Debug, Clone, PartialEq, EventEnum)]
    pub enum GateEvent {
        Opened(Opened),
        r#Type(Typed),
        #[cfg(any())]
        Never(Never),
    }

    #[derive(Debug, Clone, Command)]
    #[command(aggregate = Gate)]
    pub struct Open {
        #[id]
        pub r#gate: String,
    }

    #[derive(Debug, Default, PartialEq)]
    pub struct Gate {
        open: bool,
    }

    #[aggregate(name = "gate", id = String, events = GateEvent, error = Rejected)]
    impl Gate {
        // Two handlers for one command, one compiled out: not a duplicate.
        #[cfg(any())]
        #[command(create)]
        fn open(&self, _: Open) -> Result<Opened, Rejected> {
            Err(Rejected)
        }
        #[cfg(not(any()))]
        #[command(create)]
        fn open(&self, _: Open) -> Result<Opened, Rejected> {
            Ok(Opened {})
        }
        #[apply]
        fn opened(&mut self, _: &Opened) {
            self.open = true;
        }
        #[apply]
        fn r#typed(&mut self, _: &Typed) {}
        #[cfg(any())]
        #[apply]
        fn never(&mut self, _: &Never) {}
    }

    /// A query of [`GateLog`].
    pub struct Opens;

    #[derive(Debug, Default, Clone, PartialEq)]
    pub struct GateLog {
        opened: u32,
    }

    // `#[cfg(...)]` on `#[on]` and `#[query]`: a handler compiled out (here one whose event
    // type does not exist) leaves nothing behind, and alternatives are not duplicates.
    #[projection(name = "gate_log", events = Gate)]
    impl GateLog {
        #[cfg(any())]
        #[on]
        fn opened(&mut self, _: &Opened) {}
        #[cfg(not(any()))]
        #[on]
        fn opened(&mut self, _: &Opened) {
            self.opened += 1;
        }
        #[on]
        fn typed(&mut self, _: &Typed) {}
        #[cfg(any())]
        #[on]
        fn never(&mut self, _: &Never) {}
        #[cfg(any())]
        #[query]
        fn opens(&self, _: Opens) -> u32 {
            0
        }
        #[cfg(not(any()))]
        #[query]
        fn opens(&self, _: Opens) -> u32 {
            self.opened
        }
    }

    #[test]
    fn cfg_on_projection_handlers_and_queries() {
        use cqrs_runtime::projection::{Answers, EventMeta, Projection};
        use cqrs_runtime::store::Cursor;
        assert_eq!(GateLog::HANDLED, ["gate_opened", "gate_typed"]);
        let stored = cqrs_runtime::store::StoredEvent {
            global_position: 1,
            stream_type: "gate".into(),
            stream_id: "g".into(),
            stream_version: 1,
            event_id: uuid::Uuid::nil(),
            event_type: "gate_opened".into(),
            event_version: 1,
            payload: b"{}".to_vec(),
            metadata: Metadata::new(),
            recorded_at: chrono::Utc::now(),
        };
        let cursor = Cursor { tx: 0, position: 1 };
        let mut log = GateLog::default();
        log.project(&stored, &EventMeta::new(&stored, cursor), &mut ())
            .unwrap();
        assert_eq!(log.answer(Opens), 1);
    }

    #[test]
    fn raw_identifiers_and_cfg_compile_and_dispatch() {
        assert_eq!(GateEvent::TYPE, "gate_typed");
        assert_eq!(GateEvent::NAMES, ["gate_opened", "gate_typed"]);
        TestFramework::<Gate>::given_no_previous_events()
            .when(Open { gate: "g".into() })
            .then_expect_events([GateEvent::Opened(Opened {})]);
    }
}
