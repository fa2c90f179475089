//! Reactions: handlers that turn events into commands (and calls to services), across
//! aggregates.
//!
//! - A **reactor** ([`Reactor`]) is stateless: each event of its sources is handled or
//!   ignored, and a handler sends commands through the application's command bus.
//! - A **process manager** ([`ProcessManager`], a saga) keeps typed state per correlation key
//!   (an order id across order, payment and inventory events): an event *starts* an instance,
//!   *continues* one, or *ends* it; a handler sends commands, sees their typed outcome (a
//!   rejection to compensate), schedules and cancels [`Deadline`]s, and ends the instance.
//!
//! Both run under the same [`Runner`](crate::processing::Runner) as projections (checkpoint,
//! fence, lease, standby, retries, error policy, lag). Write them with
//! [`#[reactor]`](macro@crate::reactor) and [`#[process_manager]`](macro@crate::process_manager),
//! their command bus with [`#[derive(CommandBus)]`](macro@crate::CommandBus) and their timers
//! with [`#[derive(Deadline)]`](macro@crate::Deadline): the traits below are what those
//! generate.
//!
//! # Delivery
//!
//! - **Commands take effect exactly once.** A command's id derives from the reaction's name,
//!   the causing event's id and the command's index in the handler; its events' ids derive
//!   from the command id ([`Repository::execute_once`](crate::repository::Repository::execute_once)).
//!   A cause delivered again (a crash before the checkpoint) sends the same commands, and
//!   those that took effect are not decided again. Handlers must decide from their state and
//!   the cause only (use [`ReactionContext::now`], not the wall clock).
//! - **State, checkpoint and deadlines commit together** (one transaction on SQLite and
//!   PostgreSQL, one lock in memory). A handler that failed, or a process killed before the
//!   commit, leaves no trace of the batch but the commands' effects, which a redelivery finds.
//! - **Deadlines fire exactly once**, after restarts too, through the same runner and fence
//!   as the events (a deadline and an event of one instance never race). A firing killed
//!   after some of its commands took effect fires again before the events those commands
//!   caused are handled, so its commands are found applied.
//! - **A rejection is an answer too.** A command that was rejected, refused by its creation
//!   policy, or decided no event, is recorded (a stream of type
//!   [`DECISIONS_STREAM_TYPE`](crate::repository::DECISIONS_STREAM_TYPE)); sent again by a
//!   redelivered cause, it is decided again against the aggregate *as it was then*, so the
//!   handler gets the same typed rejection it compensated the first time, whatever happened
//!   to the aggregate since.
//! - **Service calls are at least once**: [`ReactionContext::idempotency_key`] gives the key
//!   a service needs to take a repeated call once.
//! - **Rebuild**: a reaction's effects are commands already in the log, so a rebuild does not
//!   replay history: it clears the instances and deadlines and starts afresh at the head of
//!   the log. No past command is issued again.

mod clock;
mod context;
mod handler;
mod store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use context::{
    Cause, Deadline, Dispatch, HandledBy, ProcessContext, ReactionContext, RecordedCommand, Sent,
};
pub use handler::{ProcessManagerHandler, ReactorHandler, process_key, process_manager, reactor};
pub use store::{DueDeadline, InMemoryReactions, InstanceChange, ReactionStore};

pub(crate) use context::{Recorder, Timer};

use std::future::Future;

use crate::aggregate::Aggregate;
use crate::error::CommandError;
use crate::event::DecodeError;
use crate::processing::projection::Outcome;
use crate::store::{StoreError, StoredEvent};

/// Why a reaction's handler failed.
#[derive(Debug, thiserror::Error)]
pub enum ReactionError {
    /// The event could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A store failed (a transient failure is retried by the runner).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A command was not committed, and the handler did not handle why (a rejection, a
    /// conflict after the repository's retries, a missing aggregate).
    #[error("a command failed: {0}")]
    Command(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The handler failed otherwise (a service call, a state that does not serialize).
    #[error("the handler failed: {0}")]
    Failed(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl ReactionError {
    /// Wraps a failure of the handler's own (a service call).
    pub fn failed(error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Self::Failed(error.into())
    }

    /// Whether the runner should retry the handler (a transient store failure).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Store(error) if error.is_transient())
    }
}

/// `?` on a send: a store failure stays a store failure (retried when transient); anything
/// else fails the handler as a command failure.
impl<E: std::error::Error + Send + Sync + 'static> From<CommandError<E>> for ReactionError {
    fn from(error: CommandError<E>) -> Self {
        match error {
            CommandError::Store(store) => Self::Store(store),
            other => Self::Command(Box::new(other)),
        }
    }
}

/// A stateless reaction: implemented by `#[reactor(...)]`.
///
/// `B` is the command bus its handlers send through.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a reactor of the command bus `{B}`",
    label = "put `#[reactor(name = \"...\", events = ...)]` on an `impl {Self}` block whose handlers take `&mut ReactionContext<'_, {B}>`"
)]
pub trait Reactor<B>: Send + Sync + 'static {
    /// The stable identity: the key of the checkpoint and of the runner's lease.
    const NAME: &'static str;
    /// The version the user bumps when the reactor's meaning changes.
    const VERSION: u32;
    /// The wire names of the handled events.
    const HANDLED: &'static [&'static str];
    /// The fingerprint of the name, version and handled events.
    const FINGERPRINT: u64 =
        crate::processing::projection::fingerprint(Self::NAME, Self::VERSION, Self::HANDLED);

    /// Decodes `event` if it belongs to a source and runs the reactor's decision about it.
    fn react(
        &self,
        event: &StoredEvent,
        ctx: &mut ReactionContext<'_, B>,
    ) -> impl Future<Output = Result<Outcome, ReactionError>> + Send;
}

/// What an event means to a process manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Not an event of its sources.
    Foreign,
    /// An event of its sources it ignores.
    Ignored,
    /// An event its handler takes, for the instance `key`, in the given role.
    Handle {
        /// The instance's correlation key.
        key: String,
        /// Whether the event starts, continues or ends the instance.
        role: Role,
    },
}

/// What an event does to a process manager's instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Starts an instance (or continues the one that exists).
    Start,
    /// Continues an instance; for a key with no instance, the event is an orphan (counted
    /// and reported, not handled).
    Continue,
    /// Continues an instance, then ends it.
    End,
}

/// A stateful reaction keyed by a correlation key: implemented by `#[process_manager(...)]`
/// on its state type.
///
/// `B` is the command bus its handlers send through.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a process manager of the command bus `{B}`",
    label = "put `#[process_manager(name = \"...\", events = ...)]` on an `impl {Self}` block whose `#[on(start, key = ...)]` handlers take `&mut ProcessContext<'_, {B}>`"
)]
pub trait ProcessManager<B>:
    Default + serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static
{
    /// The stable identity: the key of the checkpoint, the lease and the stored instances.
    const NAME: &'static str;
    /// The version the user bumps when the state's meaning changes.
    const VERSION: u32;
    /// The wire names of the handled events.
    const HANDLED: &'static [&'static str];
    /// The names of the deadlines it handles.
    const DEADLINES: &'static [&'static str];
    /// The fingerprint of the name, version and handled events.
    const FINGERPRINT: u64 =
        crate::processing::projection::fingerprint(Self::NAME, Self::VERSION, Self::HANDLED);

    /// What `event` means to this process manager: foreign, ignored, or which instance it
    /// starts, continues or ends.
    fn route(event: &StoredEvent) -> Result<Route, DecodeError>;

    /// Runs the handler of `event` on this instance.
    fn handle(
        &mut self,
        event: &StoredEvent,
        ctx: &mut ProcessContext<'_, B, Self>,
    ) -> impl Future<Output = Result<(), ReactionError>> + Send;

    /// Runs the handler of a due deadline on this instance.
    fn on_deadline(
        &mut self,
        deadline: &DueDeadline,
        ctx: &mut ProcessContext<'_, B, Self>,
    ) -> impl Future<Output = Result<(), ReactionError>> + Send;
}

/// Checks at compile time that the bus `B` can send commands of `A` (generated checks).
#[doc(hidden)]
pub const fn assert_dispatch<B: Dispatch<A>, A: Aggregate>() {}
