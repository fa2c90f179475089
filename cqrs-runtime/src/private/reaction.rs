//! What `#[reactor]`, `#[process_manager]`, `#[derive(CommandBus)]` and `#[derive(Deadline)]`
//! emit.

use std::marker::PhantomData;

pub use crate::envelope::CommandMetadata;
pub use crate::error::CommandError;
pub use crate::processing::reaction::{
    Deadline, Dispatch, DueDeadline, HandledBy, ProcessContext, ProcessManager, ReactionContext,
    ReactionError, Reactor, Role, Route,
};
pub use crate::repository::Once;
pub use std::string::{String, ToString};

use crate::aggregate::Apply;
use crate::event::DecodeError;

/// The reactor has decided about the event `E` (an `#[on]` handler, or `ignore(E)`), as a
/// reactor of the command bus `B`.
#[diagnostic::on_unimplemented(
    message = "reactor `{Self}` has not decided about the event `{E}`",
    label = "`{E}` is an event of this reactor's source, but it is neither handled nor ignored",
    note = "add `#[on] async fn ...(&self, event: &{E}, ctx: &mut ReactionContext<'_, {B}>) -> Result<(), ReactionError>` to the `#[reactor]` impl of `{Self}`, or list `{E}` in its `ignore(...)`"
)]
pub trait ReactorOn<E, B> {
    /// Whether an `#[on]` handler takes `E` (else it is ignored).
    fn handles() -> bool;
}

/// The process manager has decided about the event `E` (an `#[on(key = ...)]` handler, or
/// `ignore(E)`), as a process manager of the command bus `B`.
#[diagnostic::on_unimplemented(
    message = "process manager `{Self}` has not decided about the event `{E}`",
    label = "`{E}` is an event of this process manager's source, but it is neither handled nor ignored",
    note = "add `#[on(key = field)] async fn ...(&mut self, event: &{E}, ctx: &mut ProcessContext<'_, {B}>) -> Result<(), ReactionError>` to the `#[process_manager]` impl of `{Self}`, or list `{E}` in its `ignore(...)`"
)]
pub trait ProcessOn<E, B> {
    /// The instance `event` is for and what it does to it; `None` for an ignored event.
    fn route(event: &E) -> Option<(String, Role)>;
}

/// A reactor in the middle of one event: how the event enum's exhaustive dispatch reaches its
/// [`ReactorOn`] impls (one per variant, or it does not compile).
pub struct Deciding<R, B> {
    handled: bool,
    _reactor: PhantomData<fn() -> (R, B)>,
}

impl<R, B> Deciding<R, B> {
    /// Nothing decided yet.
    #[inline]
    pub fn new() -> Self {
        Self {
            handled: false,
            _reactor: PhantomData,
        }
    }

    /// Whether a decided event is handled (not ignored).
    #[inline]
    pub fn handled(&self) -> bool {
        self.handled
    }
}

impl<R, B> Default for Deciding<R, B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: ReactorOn<E, B>, E, B> Apply<E> for Deciding<R, B> {
    #[inline]
    fn apply_event(&mut self, _: &E) {
        self.handled |= R::handles();
    }
}

/// A process manager routing one stored event: how the event enum's exhaustive dispatch
/// reaches its [`ProcessOn`] impls. The first handled event of a decoded batch (a split gives
/// several) decides the route.
pub struct Routing<P, B> {
    route: Option<(String, Role)>,
    _manager: PhantomData<fn() -> (P, B)>,
}

impl<P, B> Routing<P, B> {
    /// Nothing routed yet.
    #[inline]
    pub fn new() -> Self {
        Self {
            route: None,
            _manager: PhantomData,
        }
    }

    /// The route of the events seen: the first handled one's, else ignored.
    #[inline]
    pub fn finish(self) -> Route {
        match self.route {
            Some((key, role)) => Route::Handle { key, role },
            None => Route::Ignored,
        }
    }
}

impl<P, B> Default for Routing<P, B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: ProcessOn<E, B>, E, B> Apply<E> for Routing<P, B> {
    #[inline]
    fn apply_event(&mut self, event: &E) {
        if self.route.is_none() {
            self.route = P::route(event);
        }
    }
}

/// The correlation key of an event, from what `key = ...` names (a field, or what a method
/// returns): its `Display` form.
#[inline]
pub fn key_of<K: core::fmt::Display + ?Sized>(key: &K) -> String {
    key.to_string()
}

/// The error of a deadline no `#[deadline]` handler takes (a deadline scheduled by another
/// version of the process manager).
#[cold]
pub fn unknown_deadline(manager: &str, deadline: &DueDeadline) -> ReactionError {
    ReactionError::failed(UnknownDeadline {
        manager: manager.to_owned(),
        deadline: deadline.name.clone(),
    })
}

/// A due deadline of a name the process manager has no handler for.
#[derive(Debug, thiserror::Error)]
#[error("process manager `{manager}` has no `#[deadline]` handler for the deadline `{deadline}`")]
pub struct UnknownDeadline {
    manager: String,
    deadline: String,
}

/// A decode error as a reaction's error.
#[inline]
pub fn decode_failed(error: DecodeError) -> ReactionError {
    ReactionError::Decode(error)
}

/// Names the handler's result type so that `?` converts its error: the result of a
/// reaction's handler is `Result<(), E>` with `ReactionError: From<E>`.
#[inline]
pub fn handler_result<E>(result: Result<(), E>) -> Result<(), ReactionError>
where
    ReactionError: From<E>,
{
    result.map_err(ReactionError::from)
}

/// The event struct `T` inside `event`, if it holds one: a sync step, so that no `&dyn Any`
/// lives across the handler's awaits (it is not `Send`).
#[inline]
pub fn downcast<T: 'static, E: crate::event::EventEnum>(event: &E) -> Option<&T> {
    event.event_any().downcast_ref::<T>()
}
