//! Given/when/then for reactions: the commands a handler sends are recorded (and answered as
//! the test says), not dispatched; deadlines, the end of an instance and the state are there
//! to check.
//!
//! ```text
//! ProcessTest::<Fulfilment, Shop>::new(shop)
//!     .given_state(Fulfilment { reserved: true, ..Default::default() })
//!     .rejecting::<ChargeCard, _>(|_| PaymentError::Declined)
//!     .when(PaymentRequested { order: "o-1".into(), amount: 500 })
//!     .then_expect_command(ReleaseStock { order: "o-1".into() })
//!     .then_expect_cancelled::<PaymentDue>()
//!     .then_expect_ended();
//! ```

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::block_on;
use crate::aggregate::{Aggregate, Command};
use crate::envelope::Metadata;
use crate::event::Event;
use crate::processing::reaction::{
    Cause, Deadline, DueDeadline, ProcessContext, ProcessManager, ReactionContext, ReactionError,
    Reactor, RecordedCommand, Recorder, Role, Route, Timer,
};
use crate::store::StoredEvent;

type Answer = Box<dyn Fn(&dyn Any) -> Option<Box<dyn Any + Send>> + Send + Sync>;

/// A stored form of `event` for a test: in the stream `stream_type`/`stream_id`, at `at`.
fn stored<E: Event>(
    event: &E,
    stream_type: &str,
    stream_id: &str,
    n: u64,
    at: DateTime<Utc>,
) -> StoredEvent {
    let encoded = match event.encode() {
        Ok(encoded) => encoded,
        Err(error) => panic!("the event `{}` does not encode: {error}", E::NAME),
    };
    StoredEvent {
        global_position: n,
        stream_type: stream_type.to_owned(),
        stream_id: stream_id.to_owned(),
        stream_version: n,
        event_id: Uuid::now_v7(),
        event_type: encoded.name.to_owned(),
        event_version: encoded.version,
        payload: encoded.payload,
        metadata: Metadata::new(),
        recorded_at: at,
    }
}

/// The recorder of a test run: rejections answered per command type.
fn recorder(answers: &std::sync::Arc<HashMap<TypeId, Answer>>) -> Recorder {
    let answers = std::sync::Arc::clone(answers);
    Recorder {
        sent: Vec::new(),
        answer: Box::new(move |recorded: &RecordedCommand| {
            let command: &dyn Any = recorded.command.as_ref();
            answers
                .get(&command.type_id())
                .and_then(|answer| answer(command))
        }),
    }
}

/// What a reactor's handler did, for the `then_*` checks.
pub struct Reacted {
    inner: Run,
}

/// The record of one handler run.
struct Run {
    commands: Vec<RecordedCommand>,
    result: Result<(), ReactionError>,
}

impl fmt::Debug for Reacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reacted")
            .field("commands", &self.inner.commands)
            .field("result", &self.inner.result)
            .finish()
    }
}

/// The `then_*` checks both outcomes share, as functions of the recorded run.
mod checks {
    use super::{Command, Run};

    #[track_caller]
    pub(super) fn command_names(run: &Run, names: &[&str]) {
        let sent: Vec<&str> = run.commands.iter().map(|c| c.name).collect();
        if sent != names {
            panic!(
                "unexpected commands\n  expected: {names:?}\n  sent:     {:?}",
                run.commands
            );
        }
    }

    #[track_caller]
    pub(super) fn command<C: Command + PartialEq>(run: &Run, expected: C) {
        let found = run
            .commands
            .iter()
            .filter_map(|c| c.command.downcast_ref::<C>())
            .any(|c| *c == expected);
        if !found {
            panic!(
                "the command {expected:?} was not sent\n  sent: {:?}",
                run.commands
            );
        }
    }

    #[track_caller]
    pub(super) fn no_commands(run: &Run) {
        if !run.commands.is_empty() {
            panic!("expected no command, but sent: {:?}", run.commands);
        }
    }

    #[track_caller]
    pub(super) fn success(run: &Run) {
        if let Err(error) = &run.result {
            panic!("the handler failed: {error}");
        }
    }

    #[track_caller]
    pub(super) fn failure(
        run: &Run,
        check: impl FnOnce(&crate::processing::reaction::ReactionError) -> bool,
    ) {
        match &run.result {
            Ok(()) => panic!("the handler succeeded, a failure was expected"),
            Err(error) if !check(error) => panic!("the handler failed otherwise: {error}"),
            Err(_) => {}
        }
    }
}

/// The `then_*` checks of sent commands and the handler's result, on an outcome type.
macro_rules! command_checks {
    ($($generics:ident)?; $outcome:ty, $reacted:ident) => {
        impl$(<$generics: fmt::Debug>)? $outcome {
            /// The commands sent, in order.
            pub fn commands(&self) -> &[RecordedCommand] {
                &self.$reacted.commands
            }

            /// Expects exactly these command names, in order.
            #[track_caller]
            pub fn then_expect_command_names(&self, names: &[&str]) -> &Self {
                checks::command_names(&self.$reacted, names);
                self
            }

            /// Expects `expected` among the commands sent.
            #[track_caller]
            pub fn then_expect_command<C: Command + PartialEq>(&self, expected: C) -> &Self {
                checks::command(&self.$reacted, expected);
                self
            }

            /// Expects no command.
            #[track_caller]
            pub fn then_expect_no_commands(&self) -> &Self {
                checks::no_commands(&self.$reacted);
                self
            }

            /// Expects the handler to have succeeded.
            #[track_caller]
            pub fn then_expect_success(&self) -> &Self {
                checks::success(&self.$reacted);
                self
            }

            /// Expects the handler to have failed, and checks why.
            #[track_caller]
            pub fn then_expect_failure(&self, check: impl FnOnce(&ReactionError) -> bool) -> &Self {
                checks::failure(&self.$reacted, check);
                self
            }
        }
    };
}

command_checks!(; Reacted, inner);
command_checks!(P; Processed<P>, run);

/// Given/when/then for a reactor `R` whose handlers send through the bus `B`.
pub struct ReactorTest<R, B> {
    reactor: R,
    bus: B,
    answers: HashMap<TypeId, Answer>,
}

impl<R: Reactor<B>, B: Send + Sync + 'static> ReactorTest<R, B> {
    /// `reactor`, with `bus` for what handlers read from it (commands are recorded, not
    /// dispatched).
    pub fn new(reactor: R, bus: B) -> Self {
        Self {
            reactor,
            bus,
            answers: HashMap::new(),
        }
    }

    /// Answers sends of `C` with the rejection `reject` returns (`None`: accepted).
    pub fn rejecting<C, F>(mut self, reject: F) -> Self
    where
        C: Command,
        F: Fn(&C) -> Option<<C::Aggregate as Aggregate>::Error> + Send + Sync + 'static,
    {
        self.answers.insert(TypeId::of::<C>(), answer(reject));
        self
    }

    /// Runs the reactor on `event` (in a stream `test`/`test-1`).
    #[track_caller]
    pub fn when<E: Event>(self, event: E) -> Reacted {
        self.when_in("test", "test-1", event)
    }

    /// Runs the reactor on `event` in the stream `stream_type`/`stream_id`.
    #[track_caller]
    pub fn when_in<E: Event>(self, stream_type: &str, stream_id: &str, event: E) -> Reacted {
        let stored = stored(&event, stream_type, stream_id, 1, crate::store::now());
        let answers = std::sync::Arc::new(self.answers);
        let mut recorder = recorder(&answers);
        let result = {
            let mut ctx = ReactionContext::new(&self.bus, R::NAME, Cause::of_event(&stored))
                .recording(&mut recorder);
            block_on(E::NAME, self.reactor.react(&stored, &mut ctx)).map(|_| ())
        };
        Reacted {
            inner: Run {
                commands: recorder.sent,
                result,
            },
        }
    }
}

fn answer<C, F>(reject: F) -> Answer
where
    C: Command,
    F: Fn(&C) -> Option<<C::Aggregate as Aggregate>::Error> + Send + Sync + 'static,
{
    Box::new(move |command: &dyn Any| {
        let command = command.downcast_ref::<C>()?;
        reject(command).map(|error| Box::new(error) as Box<dyn Any + Send>)
    })
}

/// What a process manager's handler did, for the `then_*` checks.
pub struct Processed<P> {
    run: Run,
    route: Route,
    state: Option<P>,
    timers: Vec<Timer>,
    ended: bool,
}

impl<P: fmt::Debug> fmt::Debug for Processed<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Processed")
            .field("route", &self.route)
            .field("commands", &self.run.commands)
            .field("result", &self.run.result)
            .field("timers", &self.timers)
            .field("ended", &self.ended)
            .field("state", &self.state)
            .finish()
    }
}

impl<P: fmt::Debug> Processed<P> {
    /// The instance's state after the handler (`None` when it ended, or never started).
    pub fn state(&self) -> Option<&P> {
        self.state.as_ref()
    }

    /// Checks the instance's state.
    #[track_caller]
    pub fn then_state(&self, check: impl FnOnce(&P) -> bool) -> &Self {
        match &self.state {
            None => panic!("no instance (it ended, or the event did not start one): {self:?}"),
            Some(state) if !check(state) => panic!("unexpected state: {state:?}"),
            Some(_) => self,
        }
    }

    /// The deadline `D` scheduled by the handler, with its due time, if any.
    pub fn scheduled<D: Deadline>(&self) -> Option<(DateTime<Utc>, D)> {
        self.timers.iter().rev().find_map(|t| match t {
            Timer::Schedule { name, due, payload } if *name == D::NAME => {
                serde_json::from_slice(payload).ok().map(|d| (*due, d))
            }
            _ => None,
        })
    }

    /// Expects the deadline `D` scheduled at `due` (events happen at the test's
    /// [`ProcessTest::at`]).
    #[track_caller]
    pub fn then_expect_scheduled<D: Deadline>(&self, due: DateTime<Utc>) -> &Self {
        let found = self.timers.iter().any(|t| {
            matches!(t, Timer::Schedule { name, due: at, .. } if *name == D::NAME && *at == due)
        });
        if !found {
            panic!(
                "the deadline `{}` was not scheduled at {due}: {:?}",
                D::NAME,
                self.timers
            );
        }
        self
    }

    /// Expects the deadline `D` cancelled.
    #[track_caller]
    pub fn then_expect_cancelled<D: Deadline>(&self) -> &Self {
        let found = self
            .timers
            .iter()
            .any(|t| matches!(t, Timer::Cancel { name } if *name == D::NAME));
        if !found {
            panic!(
                "the deadline `{}` was not cancelled: {:?}",
                D::NAME,
                self.timers
            );
        }
        self
    }

    /// Expects the instance to have ended.
    #[track_caller]
    pub fn then_expect_ended(&self) -> &Self {
        if !self.ended {
            panic!("the instance did not end: {self:?}");
        }
        self
    }

    /// Expects the event to be an orphan: it continues an instance that does not exist.
    #[track_caller]
    pub fn then_expect_orphan(&self) -> &Self {
        let orphan = self.state.is_none()
            && matches!(self.route, Route::Handle { role, .. } if role != Role::Start)
            && self.run.commands.is_empty();
        if !orphan {
            panic!("the event was not an orphan: {self:?}");
        }
        self
    }
}

/// Given/when/then for a process manager `P` whose handlers send through the bus `B`.
pub struct ProcessTest<P, B> {
    bus: B,
    state: Option<P>,
    answers: HashMap<TypeId, Answer>,
    n: u64,
    at: DateTime<Utc>,
}

impl<P, B> ProcessTest<P, B>
where
    P: ProcessManager<B> + fmt::Debug,
    B: Send + Sync + 'static,
{
    /// No instance yet, `bus` for what handlers read from it (commands are recorded, not
    /// dispatched).
    pub fn new(bus: B) -> Self {
        Self {
            bus,
            state: None,
            answers: HashMap::new(),
            n: 0,
            at: crate::store::now(),
        }
    }

    /// The events that follow happen at `at` (their `recorded_at`, the handlers' `now()`).
    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.at = at;
        self
    }

    /// An existing instance with `state`.
    pub fn given_state(mut self, state: P) -> Self {
        self.state = Some(state);
        self
    }

    /// Runs `event` (in the stream `stream_type`/`stream_id`) through the process manager
    /// first (its commands are accepted and dropped), keeping the state it leaves.
    #[track_caller]
    pub fn given_in<E: Event>(mut self, stream_type: &str, stream_id: &str, event: E) -> Self {
        let state = self.state.take();
        let processed = self.process(state, stream_type, stream_id, &event);
        if let Err(error) = &processed.run.result {
            panic!("the given event `{}` failed: {error}", E::NAME);
        }
        self.state = processed.state;
        self
    }

    /// Answers sends of `C` with the rejection `reject` returns (`None`: accepted).
    pub fn rejecting<C, F>(mut self, reject: F) -> Self
    where
        C: Command,
        F: Fn(&C) -> Option<<C::Aggregate as Aggregate>::Error> + Send + Sync + 'static,
    {
        self.answers.insert(TypeId::of::<C>(), answer(reject));
        self
    }

    /// Runs the process manager on `event` (in a stream `test`/`test-1`).
    #[track_caller]
    pub fn when<E: Event>(self, event: E) -> Processed<P> {
        self.when_in("test", "test-1", event)
    }

    /// Runs the process manager on `event` in the stream `stream_type`/`stream_id` (where
    /// routing reads the stream: a key taken from the stream id, an aggregate source).
    #[track_caller]
    pub fn when_in<E: Event>(
        mut self,
        stream_type: &str,
        stream_id: &str,
        event: E,
    ) -> Processed<P> {
        let state = self.state.take();
        self.process(state, stream_type, stream_id, &event)
    }

    /// Fires the deadline `deadline` of the instance, due at `due`.
    #[track_caller]
    pub fn when_deadline<D: Deadline>(mut self, due: DateTime<Utc>, deadline: D) -> Processed<P> {
        let Some(mut state) = self.state.take() else {
            panic!(
                "no instance to fire `{}` on: use `given` or `given_state`",
                D::NAME
            );
        };
        let payload = match crate::store::json::to_vec(&deadline) {
            Ok(payload) => payload,
            Err(error) => panic!("the deadline `{}` does not serialize: {error}", D::NAME),
        };
        let due_deadline = DueDeadline {
            key: "test".to_owned(),
            name: D::NAME.to_owned(),
            due,
            payload,
        };
        let answers = std::sync::Arc::new(std::mem::take(&mut self.answers));
        let mut recorder = recorder(&answers);
        let cause = Cause {
            id: Uuid::now_v7(),
            correlation_id: Uuid::now_v7(),
            user: Default::default(),
            now: due,
            trace: None,
        };
        let (result, timers, ended) = {
            let mut ctx =
                ProcessContext::new(&self.bus, P::NAME, "test", cause).recording(&mut recorder);
            let result = block_on(D::NAME, state.on_deadline(&due_deadline, &mut ctx));
            (result, std::mem::take(&mut ctx.timers), ctx.ended)
        };
        Processed {
            run: Run {
                commands: recorder.sent,
                result,
            },
            route: Route::Handle {
                key: "test".to_owned(),
                role: Role::Continue,
            },
            state: (!ended).then_some(state),
            timers,
            ended,
        }
    }

    #[track_caller]
    fn process<E: Event>(
        &mut self,
        state: Option<P>,
        stream_type: &str,
        stream_id: &str,
        event: &E,
    ) -> Processed<P> {
        self.n += 1;
        let stored = stored(event, stream_type, stream_id, self.n, self.at);
        let route = match P::route(&stored) {
            Ok(route) => route,
            Err(error) => panic!("the event `{}` does not decode: {error}", E::NAME),
        };
        let Route::Handle { key, role } = route.clone() else {
            return Processed {
                run: Run {
                    commands: Vec::new(),
                    result: Ok(()),
                },
                route,
                state,
                timers: Vec::new(),
                ended: false,
            };
        };
        if state.is_none() && role != Role::Start {
            return Processed {
                run: Run {
                    commands: Vec::new(),
                    result: Ok(()),
                },
                route,
                state: None,
                timers: Vec::new(),
                ended: false,
            };
        }
        let mut instance = state.unwrap_or_default();
        let answers = std::sync::Arc::new(std::mem::take(&mut self.answers));
        let mut recorder = recorder(&answers);
        let (result, timers, ended) = {
            let mut ctx = ProcessContext::new(&self.bus, P::NAME, &key, Cause::of_event(&stored))
                .recording(&mut recorder);
            let result = block_on(E::NAME, instance.handle(&stored, &mut ctx));
            (
                result,
                std::mem::take(&mut ctx.timers),
                ctx.ended || role == Role::End,
            )
        };
        if let Ok(answers) = std::sync::Arc::try_unwrap(answers) {
            self.answers = answers;
        }
        Processed {
            run: Run {
                commands: recorder.sent,
                result,
            },
            route,
            state: (!ended).then_some(instance),
            timers,
            ended,
        }
    }
}
