//! The given/when/then test kit, in sync and async tests.

mod common;

use common::*;
use cqrs_runtime::testkit::{TestFramework, assert_decodes_to};

type Kit = TestFramework<Account>;

fn open_cmd() -> OpenAccount {
    OpenAccount {
        id: id("acc-1"),
        owner: "ada".into(),
    }
}

fn deposit(amount: u64) -> Deposit {
    Deposit {
        id: id("acc-1"),
        amount,
    }
}

#[test]
fn sync_given_when_then() {
    Kit::given_no_previous_events()
        .when(open_cmd())
        .then_expect_events([opened("ada")])
        .then_state(&Account {
            owner: Some("ada".into()),
            balance: 0,
            closed: false,
        });

    let outcome = Kit::given([opened("ada"), deposited(5)]).when(deposit(3));
    outcome
        .then_expect_events(vec![deposited(3)])
        .then_state_matches(|state| state.balance == 8)
        .then_state_matches(|state| assert_eq!(state.owner.as_deref(), Some("ada")));
    assert_eq!(outcome.events(), [deposited(3)]);
    assert_eq!(outcome.state().balance, 8);
    assert!(outcome.result().is_ok());
}

#[test]
fn sync_rejections_and_policies() {
    Kit::given([opened("ada"), deposited(2)])
        .when(Withdraw {
            id: id("acc-1"),
            amount: 5,
        })
        .then_expect_error(AccountError::InsufficientFunds {
            balance: 2,
            requested: 5,
        })
        .then_expect_error_message("insufficient funds: balance 2, requested 5")
        .then_state_matches(|state| state.balance == 2);

    Kit::given_no_previous_events()
        .when(deposit(1))
        .then_expect_not_found()
        .then_expect_error_message(
            "account acc-1 not found: the handler of `Deposit` needs an existing account \
             (creation policy `existing`, the default); write `#[command(create)]` on a handler \
             that creates it, or `#[command(any)]` to accept both",
        );
    Kit::given([opened("ada")])
        .when(open_cmd())
        .then_expect_already_exists();
    Kit::given_no_previous_events()
        .when(Ping { id: id("acc-1") })
        .then_expect_no_events()
        .then_state(&Account::default());
    Kit::given([opened("ada"), AccountClosed {}.into()])
        .when(Close { id: id("acc-1") })
        .then_expect_no_events();
}

#[test]
fn services_are_default_unless_given() {
    Kit::given([opened("ada")])
        .when(deposit(1_000))
        .then_expect_events([deposited(1_000)]);
    Kit::given([opened("ada")])
        .with_services(AccountServices {
            deposit_limit: Some(10),
        })
        .when(deposit(1_000))
        .then_expect_error(AccountError::OverLimit {
            amount: 1_000,
            limit: 10,
        });
}

#[test]
fn sync_test_runs_a_handler_that_really_awaits() {
    Kit::given([opened("ada")])
        .when(AuditedDeposit {
            id: id("acc-1"),
            amount: 4,
        })
        .then_expect_events([deposited(4)]);
}

#[tokio::test]
async fn async_test_awaits_the_handler() {
    Kit::given([opened("ada")])
        .when_async(AuditedDeposit {
            id: id("acc-1"),
            amount: 4,
        })
        .await
        .then_expect_events([deposited(4)])
        .then_state_matches(|state| state.balance == 4);
    // A handler that completes at once may use `when` inside a runtime too.
    Kit::given([opened("ada")])
        .when(deposit(1))
        .then_expect_events([deposited(1)]);
}

#[tokio::test]
#[should_panic(expected = "use `.when_async(cmd).await`")]
async fn when_inside_a_runtime_with_an_awaiting_handler_panics() {
    Kit::given([opened("ada")]).when(AuditedDeposit {
        id: id("acc-1"),
        amount: 4,
    });
}

#[test]
fn old_payloads_decode_to_current_values() {
    assert_decodes_to(
        "money_deposited",
        1,
        br#"{"amt":"12"}"#,
        &AccountEvent::Deposited(MoneyDeposited { amount: 12 }),
    );
}

#[test]
#[should_panic(expected = "does not decode")]
fn assert_decodes_to_reports_failures() {
    assert_decodes_to("money_deposited", 1, br#"{"amt":"x"}"#, &deposited(1));
}

#[test]
#[should_panic(expected = "unexpected events")]
fn wrong_events_fail() {
    Kit::given([opened("ada")])
        .when(deposit(3))
        .then_expect_events([deposited(4)]);
}

#[test]
#[should_panic(expected = "expected no events, but the command produced")]
fn unexpected_events_fail() {
    Kit::given([opened("ada")])
        .when(deposit(3))
        .then_expect_no_events();
}

#[test]
#[should_panic(expected = "but the command succeeded")]
fn expected_error_but_success_fails() {
    Kit::given([opened("ada")])
        .when(deposit(3))
        .then_expect_error(AccountError::Closed);
}

#[test]
#[should_panic(expected = "expected a not-found error")]
fn wrong_error_kind_fails() {
    Kit::given([opened("ada")])
        .when(Withdraw {
            id: id("acc-1"),
            amount: 1,
        })
        .then_expect_not_found();
}

#[test]
#[should_panic(expected = "the state does not match")]
fn state_predicate_failure_fails() {
    Kit::given([opened("ada")])
        .when(deposit(3))
        .then_state_matches(|state| state.balance == 4);
}

#[test]
fn a_well_behaved_sneaky_handler_passes() {
    TestFramework::<Sneaky>::given_no_previous_events()
        .when(Poke {
            id: id("s"),
            mutate: false,
            lossy: false,
        })
        .then_state_matches(|state| state.pokes == 1);
}

#[test]
#[should_panic(expected = "state changed outside `apply`")]
fn state_changed_outside_apply_is_caught() {
    TestFramework::<Sneaky>::given_no_previous_events().when(Poke {
        id: id("s"),
        mutate: true,
        lossy: false,
    });
}

#[tokio::test]
#[should_panic(expected = "state changed outside `apply`")]
async fn state_changed_outside_apply_is_caught_in_async_tests() {
    TestFramework::<Sneaky>::given_no_previous_events()
        .when_async(Poke {
            id: id("s"),
            mutate: true,
            lossy: false,
        })
        .await;
}

#[test]
#[should_panic(expected = "produced event `poked` v1 does not round-trip")]
fn produced_events_that_do_not_round_trip_are_caught() {
    TestFramework::<Sneaky>::given_no_previous_events().when(Poke {
        id: id("s"),
        mutate: false,
        lossy: true,
    });
}

#[test]
#[should_panic(expected = "given event `poked` v1 does not round-trip")]
fn given_events_that_do_not_round_trip_are_caught() {
    let lossy = SneakyEvent::Poked(Poked { by: 1, secret: 9 });
    TestFramework::<Sneaky>::given([lossy]).when(Poke {
        id: id("s"),
        mutate: false,
        lossy: false,
    });
}
