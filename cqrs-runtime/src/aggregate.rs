//! Aggregates and commands: the write side's traits.
//!
//! `#[aggregate(...)]` implements [`Aggregate`] for a state type from its `#[command]` and
//! `#[apply]` methods; `#[derive(Command)]` implements [`Command`]. The helper traits here
//! ([`Apply`], [`Handles`], [`Emits`], [`HandlerOutput`]) are how the compiler checks the
//! DSL's invariants, so each carries a diagnostic written in the DSL's words.

use std::fmt;
use std::future::Future;

use crate::event::{EventEnum, EventOf, WellFormed};

/// Whether a command may create its aggregate, must find it existing, or either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CreationPolicy {
    /// The stream must not exist yet (`#[command(create)]`).
    Create,
    /// The stream must exist (the default, `#[command]` or `#[command(existing)]`).
    #[default]
    Existing,
    /// Either (`#[command(any)]`).
    Any,
}

/// An event-sourced aggregate: state, pure decisions and infallible evolution.
///
/// Implemented by `#[aggregate(...)]` on the state type's `impl` block. The state starts as
/// [`Default::default`] and changes only through [`Aggregate::apply`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an aggregate",
    label = "put `#[aggregate(name = \"...\", id = ..., events = ..., error = ...)]` on an `impl {Self}` block"
)]
pub trait Aggregate: Default + Send + Sync + Sized + 'static {
    /// The stream type stored with every event (the `name = "..."` of the aggregate).
    const TYPE: &'static str;
    /// The identifier of one instance; its `Display` form is the stream id.
    type Id: fmt::Display + fmt::Debug + Clone + Send + Sync + 'static;
    /// The event enum of this aggregate's stream.
    type Event: EventEnum;
    /// The generated enum of every command this aggregate handles.
    type Command: Command<Aggregate = Self>;
    /// The error a handler returns to reject a command.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Services injected into handlers that need outside information (`()` when none).
    type Services: Send + Sync + 'static;

    /// Evolves the state by one event. This is the only way state changes.
    fn apply(&mut self, event: &Self::Event);

    /// Decides: runs the command's handler against the current state.
    fn handle(
        &self,
        command: Self::Command,
        services: &Self::Services,
    ) -> impl Future<Output = Result<Events<Self::Event>, Self::Error>> + Send;

    /// The creation policy of the handler of `command`.
    fn creation_policy(command: &Self::Command) -> CreationPolicy;
}

/// A command addressed to one aggregate instance, implemented by `#[derive(Command)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a command",
    label = "add `#[derive(Command)]`, `#[command(aggregate = ...)]` and one `#[id]` field to `{Self}`"
)]
pub trait Command: Clone + fmt::Debug + Send + Sync + 'static {
    /// The aggregate that handles this command.
    type Aggregate: Aggregate;
    /// The command's name, for tracing and errors.
    fn command_name(&self) -> &'static str;
    /// The id of the target aggregate instance (the `#[id]` field).
    fn aggregate_id(&self) -> &<Self::Aggregate as Aggregate>::Id;
}

/// `Self` evolves by the event `E`: implemented for each `#[apply]` handler.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no `#[apply]` handler for the event `{E}`",
    label = "`{E}` is an event of this aggregate's stream, but nothing applies it",
    note = "add `#[apply] fn ...(&mut self, event: &{E})` to the `#[aggregate]` impl of `{Self}`"
)]
pub trait Apply<E> {
    /// Applies one event to the state.
    fn apply_event(&mut self, event: &E);
}

/// `Self` has a `#[command]` handler for `C`: implemented for each handler.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no `#[command]` handler for `{C}`",
    label = "`{C}` names `{Self}` as its aggregate",
    note = "add `#[command] fn ...(&self, cmd: {C}) -> Result<_, _>` to the `#[aggregate]` impl of `{Self}`, or fix `#[command(aggregate = ...)]` on `{C}`"
)]
pub trait Handles<C> {
    /// What the generated check names (`<A as Handles<C>>::handles`), so that a missing
    /// handler is reported with this trait's message and nothing else.
    #[doc(hidden)]
    #[inline]
    fn handles() {}
}

/// `Self` is a command whose `#[command(aggregate = A)]` names `A`: implemented by
/// `#[derive(Command)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a command of `{A}`",
    label = "this handler of `{A}` takes `{Self}`, whose `#[command(aggregate = ...)]` names another aggregate",
    note = "move this handler to the aggregate that `{Self}` names, or change `#[command(aggregate = ...)]` on `{Self}`"
)]
pub trait CommandOf<A: Aggregate> {
    /// What the generated check names (`<C as CommandOf<A>>::command_of`).
    #[doc(hidden)]
    #[inline]
    fn command_of() {}

    /// [`Command::command_name`], as the aggregate's command enum dispatches it.
    #[doc(hidden)]
    fn name_of(&self) -> &'static str;

    /// [`Command::aggregate_id`], as the aggregate's command enum dispatches it.
    #[doc(hidden)]
    fn id_of(&self) -> &A::Id;
}

/// `E: Emits<T>`: a `#[command]` handler of an aggregate whose events are `E` may return
/// `Ok(T)`, where `T` is one event of `E`, `E` itself, `Vec<_>`, `Option<_>` or an array of
/// either, [`Events<E>`], or `()` for no event.
///
/// Keyed on the event enum (not on `T`), so that `#[derive(EventEnum)]` can accept every `T`
/// for an enum it refused to derive, and one mistake in the enum stays one error.
#[diagnostic::on_unimplemented(
    message = "a `#[command]` handler cannot emit `{T}` into `{Self}`",
    label = "not an event of `{Self}`",
    note = "return `Result<T, Error>` where `T` is an event of `{Self}`, `{Self}` itself, `Vec<_>`, `Option<_>` or `[_; N]` of those, `Events<{Self}>`, or `()` for no event"
)]
pub trait Emits<T>: Sized {
    /// Converts the handler's output into the events to append, in order.
    fn emit(output: T) -> Events<Self>;
}

impl<E: WellFormed> Emits<()> for E {
    #[inline]
    fn emit(_: ()) -> Events<E> {
        Events::None
    }
}

impl<E: WellFormed> Emits<E> for E {
    #[inline]
    fn emit(event: E) -> Events<E> {
        Events::One(event)
    }
}

impl<E: WellFormed, T: EventOf<E>> Emits<Vec<T>> for E {
    #[inline]
    fn emit(events: Vec<T>) -> Events<E> {
        Events::Many(events.into_iter().map(EventOf::into_enum).collect())
    }
}

impl<E: WellFormed, T: EventOf<E>> Emits<Option<T>> for E {
    #[inline]
    fn emit(event: Option<T>) -> Events<E> {
        match event {
            Some(event) => Events::One(event.into_enum()),
            None => Events::None,
        }
    }
}

impl<E: WellFormed, T: EventOf<E>, const N: usize> Emits<[T; N]> for E {
    #[inline]
    fn emit(events: [T; N]) -> Events<E> {
        Events::Many(events.into_iter().map(EventOf::into_enum).collect())
    }
}

impl<E: WellFormed> Emits<Events<E>> for E {
    #[inline]
    fn emit(events: Events<E>) -> Events<E> {
        events
    }
}

/// The events a command handler decided, in order: none, one (held inline, so the common
/// single-event decision allocates nothing), or several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Events<E> {
    /// No event: the command changes nothing.
    None,
    /// Exactly one event.
    One(E),
    /// Several events (or, from a `Vec`, any number).
    Many(Vec<E>),
}

impl<E> Events<E> {
    /// The events as a slice.
    #[inline]
    pub fn as_slice(&self) -> &[E] {
        match self {
            Events::None => &[],
            Events::One(event) => std::slice::from_ref(event),
            Events::Many(events) => events,
        }
    }

    /// The events in a `Vec`.
    pub fn into_vec(self) -> Vec<E> {
        match self {
            Events::None => Vec::new(),
            Events::One(event) => vec![event],
            Events::Many(events) => events,
        }
    }
}

impl<E> std::ops::Deref for Events<E> {
    type Target = [E];

    #[inline]
    fn deref(&self) -> &[E] {
        self.as_slice()
    }
}

impl<E> IntoIterator for Events<E> {
    type Item = E;
    type IntoIter = crate::event::EventsIter<E>;

    #[inline]
    fn into_iter(self) -> Self::IntoIter {
        match self {
            Events::None => crate::event::EventsIter::One(None),
            Events::One(event) => crate::event::EventsIter::One(Some(event)),
            Events::Many(events) => crate::event::EventsIter::Many(events.into_iter()),
        }
    }
}

impl<'a, E> IntoIterator for &'a Events<E> {
    type Item = &'a E;
    type IntoIter = std::slice::Iter<'a, E>;

    #[inline]
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The whole return type of a `#[command]` handler: `Result<T, E>` where the aggregate's event
/// enum [`Emits<T>`](Emits) and `E` converts into the aggregate's error type (as with `?`).
#[diagnostic::on_unimplemented(
    message = "a `#[command]` handler of `{A}` returns `{Self}`, which is not a decision",
    label = "expected `Result<_, _>`",
    note = "return `Result<T, E>` where `E` is (or converts into) the aggregate's `error = ...` type and `T` is an event, `Vec<_>`, `Option<_>` or `()`"
)]
pub trait HandlerOutput<A: Aggregate> {
    /// Converts the handler's result into the events to append.
    fn into_decision(self) -> Result<Events<A::Event>, A::Error>;
}

impl<A, T, E> HandlerOutput<A> for Result<T, E>
where
    A: Aggregate,
    A::Event: Emits<T>,
    E: Into<A::Error>,
{
    #[inline]
    fn into_decision(self) -> Result<Events<A::Event>, A::Error> {
        match self {
            Ok(output) => Ok(<A::Event as Emits<T>>::emit(output)),
            Err(error) => Err(error.into()),
        }
    }
}

/// Exhaustive dispatch of an event enum to an aggregate's [`Apply`] impls.
///
/// `#[derive(EventEnum)]` implements it for every `A` that applies every variant, so a missing
/// `#[apply]` is a compile error naming the event.
pub trait ApplyAll<A> {
    /// Applies `self` to `aggregate` through the matching `#[apply]` handler.
    fn apply_to(&self, aggregate: &mut A);
}
