//! Given/when/then test kits for aggregates ([`TestFramework`]) and reactions
//! ([`ReactorTest`], [`ProcessTest`]).
//!
//! ```text
//! TestFramework::<BankAccount>::given([AccountEvent::Opened(opened)])
//!     .when(Deposit { account, amount: 5 })
//!     .then_expect_events([AccountEvent::Deposited(MoneyDeposited { amount: 5 })]);
//! ```
//!
//! Every `when` also checks, on its own, that each given and produced event survives
//! `encode` → `decode` unchanged, and that the aggregate re-sourced from those decoded events
//! equals the live state: a handler that changes state outside `apply` (through a `Cell`, an
//! atomic, ...) fails the test. `when` works in plain `#[test]` functions; use
//! [`TestFramework::when_async`] in `#[tokio::test]` functions whose handlers really await.
//!
//! This is a test tool: failed expectations panic with expected and actual values.

use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

mod reaction;

pub use reaction::{ProcessTest, Processed, Reacted, ReactorTest};

use crate::aggregate::{Aggregate, Command, Events};
use crate::error::CommandError;
use crate::event::{Decoded, EventEnum};
use crate::repository::{apply_events, check_policy};

/// Services taken from `A::Services::default()` (the state before `.with_services`).
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultServices;

/// Services given with [`TestFramework::with_services`].
#[derive(Debug, Clone)]
pub struct WithServices<S>(pub S);

/// Where a [`TestFramework`] gets the services handed to handlers.
#[diagnostic::on_unimplemented(
    message = "the services of `{A}` are not `Default`",
    label = "call `.with_services(...)` before `.when(...)`"
)]
pub trait ServicesSource<A: Aggregate> {
    /// The services.
    fn into_services(self) -> A::Services;
}

impl<A: Aggregate> ServicesSource<A> for DefaultServices
where
    A::Services: Default,
{
    fn into_services(self) -> A::Services {
        A::Services::default()
    }
}

impl<A: Aggregate> ServicesSource<A> for WithServices<A::Services> {
    fn into_services(self) -> A::Services {
        self.0
    }
}

/// Given events, when a command, then expectations. See the [module docs](self).
pub struct TestFramework<A: Aggregate, P = DefaultServices> {
    given: Vec<A::Event>,
    services: P,
}

impl<A: Aggregate> TestFramework<A> {
    /// Starts from the aggregate's stream holding `events`, in order.
    pub fn given(events: impl IntoIterator<Item = A::Event>) -> Self {
        Self {
            given: events.into_iter().collect(),
            services: DefaultServices,
        }
    }

    /// Starts from an empty stream.
    pub fn given_no_previous_events() -> Self {
        Self::given(Vec::new())
    }
}

impl<A: Aggregate, P> TestFramework<A, P> {
    /// Hands `services` to the handler instead of `A::Services::default()`.
    pub fn with_services(
        self,
        services: A::Services,
    ) -> TestFramework<A, WithServices<A::Services>> {
        TestFramework {
            given: self.given,
            services: WithServices(services),
        }
    }
}

/// The state after the given events, ready for a command.
struct Prepared<A: Aggregate> {
    state: A,
    version: u64,
    /// The given events, each decoded from its encoded form.
    history: Vec<A::Event>,
    services: A::Services,
}

impl<A, P> TestFramework<A, P>
where
    A: Aggregate + PartialEq + fmt::Debug,
    A::Event: PartialEq + fmt::Debug,
    P: ServicesSource<A>,
{
    /// Runs the command's handler and returns the outcome to check.
    ///
    /// Works in plain `#[test]` functions: a handler that completes without waiting runs
    /// inline; one that really awaits runs on a fresh current-thread Tokio runtime.
    ///
    /// # Panics
    /// Inside a Tokio runtime, when the handler does not complete at once: use
    /// [`TestFramework::when_async`] there. Also when an automatic check fails.
    #[track_caller]
    pub fn when(self, command: impl Into<A::Command>) -> TestOutcome<A> {
        let command = command.into();
        let name = command.command_name();
        let prepared = match self.start(&command) {
            Ok(prepared) => prepared,
            Err(refused) => return refused,
        };
        let decision = block_on(name, prepared.state.handle(command, &prepared.services));
        prepared.finish(decision)
    }

    /// Runs the command's handler, awaiting it: for `#[tokio::test]` functions.
    ///
    /// # Panics
    /// When an automatic check fails.
    pub async fn when_async(self, command: impl Into<A::Command>) -> TestOutcome<A> {
        let command = command.into();
        let prepared = match self.start(&command) {
            Ok(prepared) => prepared,
            Err(refused) => return refused,
        };
        let decision = prepared.state.handle(command, &prepared.services).await;
        prepared.finish(decision)
    }

    /// Sources the given events, then checks the command's creation policy like the repository.
    #[track_caller]
    fn start(self, command: &A::Command) -> Result<Prepared<A>, TestOutcome<A>> {
        let prepared = self.prepare();
        let stream_id = command.aggregate_id().to_string();
        match check_policy::<A>(command, &stream_id, prepared.version) {
            Ok(()) => Ok(prepared),
            Err(error) => Err(prepared.fail(error)),
        }
    }

    #[track_caller]
    fn prepare(self) -> Prepared<A> {
        let mut history = Vec::with_capacity(self.given.len());
        for event in &self.given {
            history.push(round_trip::<A>("given", event));
        }
        let mut state = A::default();
        apply_events(&mut state, &history);
        Prepared {
            state,
            version: history.len() as u64,
            history,
            services: self.services.into_services(),
        }
    }
}

impl<A> Prepared<A>
where
    A: Aggregate + PartialEq + fmt::Debug,
    A::Event: PartialEq + fmt::Debug,
{
    fn fail(self, error: CommandError<A::Error>) -> TestOutcome<A> {
        TestOutcome {
            result: Err(error),
            state: self.state,
        }
    }

    #[track_caller]
    fn finish(self, decision: Result<Events<A::Event>, A::Error>) -> TestOutcome<A> {
        let decision = decision.map(Events::into_vec);
        let Prepared {
            mut state,
            mut history,
            ..
        } = self;
        let result = match decision {
            Ok(events) => {
                for event in &events {
                    history.push(round_trip::<A>("produced", event));
                }
                apply_events(&mut state, &events);
                Ok(events)
            }
            Err(error) => Err(CommandError::Rejected(error)),
        };
        let mut resourced = A::default();
        apply_events(&mut resourced, &history);
        if resourced != state {
            panic!(
                "state changed outside `apply`: the aggregate re-sourced from the given and \
                 produced events differs from the live state after `when`\n  \
                 re-sourced: {resourced:?}\n  live:       {state:?}"
            );
        }
        TestOutcome { result, state }
    }
}

/// Encodes then decodes `event`, panicking unless the result equals it.
#[track_caller]
fn round_trip<A: Aggregate>(role: &str, event: &A::Event) -> A::Event
where
    A::Event: PartialEq + fmt::Debug,
{
    let encoded = match event.encode() {
        Ok(encoded) => encoded,
        Err(error) => panic!("{role} event {event:?} does not encode: {error}"),
    };
    let decoded = match A::Event::decode(encoded.name, encoded.version, &encoded.payload) {
        Ok(Decoded::One(decoded)) => decoded,
        Ok(other) => panic!(
            "{role} event {event:?} decodes from its own encoding to {other:?}, not to one event"
        ),
        Err(error) => panic!(
            "{role} event {event:?} does not decode from its own encoding \
             (`{}` v{}, payload {}): {error}",
            encoded.name,
            encoded.version,
            String::from_utf8_lossy(&encoded.payload)
        ),
    };
    if decoded != *event {
        panic!(
            "{role} event `{}` v{} does not round-trip through its encoding\n  \
             original: {event:?}\n  decoded:  {decoded:?}\n  payload:  {}",
            encoded.name,
            encoded.version,
            String::from_utf8_lossy(&encoded.payload)
        );
    }
    decoded
}

/// Runs `future` to completion outside async code; see [`TestFramework::when`].
#[track_caller]
fn block_on<F: Future>(command: &str, future: F) -> F::Output {
    let mut future = pin!(future);
    if let Poll::Ready(output) = future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        return output;
    }
    if tokio::runtime::Handle::try_current().is_ok() {
        panic!(
            "the handler of `{command}` awaits, and `.when(...)` cannot block inside a Tokio \
             runtime: use `.when_async(cmd).await` in this test"
        );
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => panic!("cannot start a Tokio runtime for `{command}`: {error}"),
    };
    runtime.block_on(future)
}

/// How a [`TestOutcome::then_state_matches`] closure reports: `bool`, or `()` when it asserts.
pub trait StateCheck {
    /// Whether the check passed.
    fn passed(self) -> bool;
}

impl StateCheck for bool {
    fn passed(self) -> bool {
        self
    }
}

impl StateCheck for () {
    fn passed(self) -> bool {
        true
    }
}

/// The outcome of [`TestFramework::when`], with chainable expectations.
pub struct TestOutcome<A: Aggregate> {
    result: Result<Vec<A::Event>, CommandError<A::Error>>,
    state: A,
}

impl<A: Aggregate + fmt::Debug> fmt::Debug for TestOutcome<A>
where
    A::Event: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestOutcome")
            .field("result", &self.result)
            .field("state", &self.state)
            .finish()
    }
}

impl<A> TestOutcome<A>
where
    A: Aggregate + PartialEq + fmt::Debug,
    A::Event: PartialEq + fmt::Debug,
{
    /// The produced events (empty when the command failed).
    pub fn events(&self) -> &[A::Event] {
        self.result.as_deref().unwrap_or(&[])
    }

    /// The state after the command (after the given events only, when it failed).
    pub fn state(&self) -> &A {
        &self.state
    }

    /// The produced events, or why the command failed.
    pub fn result(&self) -> &Result<Vec<A::Event>, CommandError<A::Error>> {
        &self.result
    }

    #[track_caller]
    fn produced(&self) -> &[A::Event] {
        match &self.result {
            Ok(events) => events,
            Err(error) => {
                panic!("expected the command to succeed, but it failed: {error}\n  {error:?}")
            }
        }
    }

    #[track_caller]
    fn failure(&self, expected: &dyn fmt::Display) -> &CommandError<A::Error> {
        match &self.result {
            Err(error) => error,
            Ok(events) => {
                panic!("expected {expected}, but the command succeeded with events {events:#?}")
            }
        }
    }

    /// Expects exactly `expected`, in order.
    #[track_caller]
    pub fn then_expect_events(&self, expected: impl IntoIterator<Item = A::Event>) -> &Self {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        let actual = self.produced();
        if actual != expected.as_slice() {
            panic!("unexpected events\n  expected: {expected:#?}\n  actual:   {actual:#?}");
        }
        self
    }

    /// Expects success with no event.
    #[track_caller]
    pub fn then_expect_no_events(&self) -> &Self {
        let actual = self.produced();
        if !actual.is_empty() {
            panic!("expected no events, but the command produced {actual:#?}");
        }
        self
    }

    /// Expects the handler to reject the command with `expected`.
    #[track_caller]
    pub fn then_expect_error(&self, expected: A::Error) -> &Self
    where
        A::Error: PartialEq,
    {
        match self.failure(&format_args!("the error {expected:?}")) {
            CommandError::Rejected(actual) if *actual == expected => self,
            actual => panic!("unexpected error\n  expected: {expected:?}\n  actual:   {actual:?}"),
        }
    }

    /// Expects the command to fail with this `Display` message.
    #[track_caller]
    pub fn then_expect_error_message(&self, expected: &str) -> &Self {
        let actual = self
            .failure(&format_args!("the error message {expected:?}"))
            .to_string();
        if actual != expected {
            panic!("unexpected error message\n  expected: {expected:?}\n  actual:   {actual:?}");
        }
        self
    }

    /// Expects the creation policy to refuse the command: the aggregate does not exist.
    #[track_caller]
    pub fn then_expect_not_found(&self) -> &Self {
        let error = self.failure(&"a not-found error");
        if !error.is_not_found() {
            panic!("expected a not-found error, but got: {error}\n  {error:?}");
        }
        self
    }

    /// Expects the creation policy to refuse the command: the aggregate already exists.
    #[track_caller]
    pub fn then_expect_already_exists(&self) -> &Self {
        let error = self.failure(&"an already-exists error");
        if !error.is_already_exists() {
            panic!("expected an already-exists error, but got: {error}\n  {error:?}");
        }
        self
    }

    /// Expects the state to equal `expected`.
    #[track_caller]
    pub fn then_state(&self, expected: &A) -> &Self {
        if self.state != *expected {
            panic!(
                "unexpected state\n  expected: {expected:#?}\n  actual:   {:#?}",
                self.state
            );
        }
        self
    }

    /// Checks the state with `check`, which returns `bool` or asserts and returns `()`.
    #[track_caller]
    pub fn then_state_matches<R: StateCheck>(&self, check: impl FnOnce(&A) -> R) -> &Self {
        if !check(&self.state).passed() {
            panic!("the state does not match\n  state: {:#?}", self.state);
        }
        self
    }
}

/// Asserts that a stored payload of `(name, version)` decodes to `expected`: for tests of old
/// event versions and their upcasters.
///
/// # Panics
/// When decoding fails or gives another value.
#[track_caller]
pub fn assert_decodes_to<E>(name: &str, version: u32, payload: &[u8], expected: &E)
where
    E: EventEnum + PartialEq + fmt::Debug,
{
    match E::decode(name, version, payload).map(Decoded::one) {
        Ok(Some(actual)) if actual == *expected => {}
        Ok(None) => panic!("`{name}` v{version} does not decode to exactly one event"),
        Ok(Some(actual)) => panic!(
            "`{name}` v{version} decodes to another value\n  expected: {expected:?}\n  actual:   {actual:?}"
        ),
        Err(error) => panic!("`{name}` v{version} does not decode: {error}"),
    }
}
