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
