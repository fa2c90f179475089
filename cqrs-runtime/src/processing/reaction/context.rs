//! What a reaction's handler works with: the command bus, the cause, identities derived from
//! it, and (for process managers) the instance's deadlines and end.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::ReactionError;
use crate::aggregate::{Aggregate, Command};
use crate::envelope::{CommandMetadata, UserMetadata};
use crate::error::CommandError;
use crate::repository::{Once, Repository, SnapshotPolicy};
use crate::store::{EventStore, StoredEvent};
use crate::telemetry::TraceContext;

/// The namespace of every identity a reaction derives (command ids, idempotency keys,
/// deadline firings).
const NAMESPACE: Uuid = Uuid::from_u128(0x5d0c_7a1e_9b3f_4c2a_8e61_0f4d_2b7c_9a13);

/// The command bus of reactions: dispatches commands of the aggregate `A`, each at most once
/// for its command id ([`Repository::execute_once`]).
///
/// A [`Repository`] of `A` is one; an application's bus holds one repository per aggregate
/// its reactions command, and implements this for each (`#[derive(CommandBus)]` writes it).
/// A reaction that sends a command of an aggregate its bus does not hold does not compile.
#[diagnostic::on_unimplemented(
    message = "the command bus `{Self}` has no repository of the aggregate `{A}`",
    label = "a command of `{A}` is sent through `{Self}`",
    note = "add a field `Repository<{A}, _>` to `{Self}` (with `#[derive(CommandBus)]`), or send the command through a bus that holds one"
)]
pub trait Dispatch<A: Aggregate>: Send + Sync + 'static {
    /// Executes `command` at most once for `metadata.command_id`.
    fn execute_once(
        &self,
        command: A::Command,
        metadata: CommandMetadata,
    ) -> impl Future<Output = Result<Once<A>, CommandError<A::Error>>> + Send;
}

impl<A, S, P> Dispatch<A> for Repository<A, S, P>
where
    A: Aggregate,
    S: EventStore,
    P: SnapshotPolicy<A> + 'static,
{
    fn execute_once(
        &self,
        command: A::Command,
        metadata: CommandMetadata,
    ) -> impl Future<Output = Result<Once<A>, CommandError<A::Error>>> + Send {
        Repository::execute_once(self, command, metadata)
    }
}

/// A command a reaction sent, as its handler sees the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// The command's id (derived from the reaction, the cause and the command's index).
    pub command_id: Uuid,
    /// A global position up to which the command's effect is stored (`None` when the
    /// command decided no event).
    pub position: Option<u64>,
    /// The command had taken effect before (a redelivered cause): nothing happened now.
    pub already_applied: bool,
}

/// What caused a handler to run: an event, or a due deadline.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    /// The id that derived identities start from: the event's id, or the deadline firing's.
    pub id: Uuid,
    /// The correlation to carry on.
    pub correlation_id: Uuid,
    /// The user metadata to carry on.
    pub user: UserMetadata,
    /// The handler's "now": the event's `recorded_at`, or the deadline's due time (the same
    /// on every delivery, so that decisions repeat).
    pub now: DateTime<Utc>,
    /// The trace to continue: the event's.
    pub trace: Option<TraceContext>,
}

impl Cause {
    /// The cause of `event`.
    pub fn of_event(event: &StoredEvent) -> Self {
        Self {
            id: event.event_id,
            correlation_id: event.metadata.correlation_id,
            user: event.metadata.user.clone(),
            now: event.recorded_at,
            trace: event.metadata.trace,
        }
    }
}

/// A command a test kit recorded instead of dispatching.
pub struct RecordedCommand {
    /// The command's name.
    pub name: &'static str,
    /// Its `Debug` form.
    pub debug: String,
    /// The command itself (downcast to compare).
    pub command: Box<dyn Any + Send>,
    /// The metadata it would have been dispatched with.
    pub metadata: CommandMetadata,
}

impl fmt::Debug for RecordedCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.debug)
    }
}

/// How a test answers a recorded command: a typed error to feed back, or `None` for an
/// accepted command.
pub(crate) type Answer = Box<dyn FnMut(&RecordedCommand) -> Option<Box<dyn Any + Send>> + Send>;

/// Where sends go in a test: recorded, and answered.
pub(crate) struct Recorder {
    pub(crate) sent: Vec<RecordedCommand>,
    pub(crate) answer: Answer,
}

/// The context of a reaction's handler: sends commands through the bus `B`, with identities
/// derived from the cause, so that a redelivered event issues the same commands (which then
/// take effect once).
pub struct ReactionContext<'a, B> {
    bus: &'a B,
    reaction: &'a str,
    cause: Cause,
    sends: u32,
    calls: u32,
    recorder: Option<&'a mut Recorder>,
}

impl<'a, B> ReactionContext<'a, B> {
    /// A context for the reaction `reaction` handling `cause`, dispatching through `bus`.
    pub fn new(bus: &'a B, reaction: &'a str, cause: Cause) -> Self {
        Self {
            bus,
            reaction,
            cause,
            sends: 0,
            calls: 0,
            recorder: None,
        }
    }

    pub(crate) fn recording(mut self, recorder: &'a mut Recorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// The command bus (and whatever services it holds).
    pub fn bus(&self) -> &B {
        self.bus
    }

    /// What caused this handler to run.
    pub fn cause(&self) -> &Cause {
        &self.cause
    }

    /// The handler's "now": the causing event's `recorded_at`, or the deadline's due time.
    /// Use it (not the wall clock) in decisions, so that a redelivery decides the same.
    pub fn now(&self) -> DateTime<Utc> {
        self.cause.now
    }

    /// The id the `index`-th command (0-based) of this handler gets.
    pub fn command_id(&self, index: u32) -> Uuid {
        derive(self.reaction, self.cause.id, "command", index)
    }

    /// An idempotency key for the next call to a service outside the store (a payment
    /// provider, a mailer): the same on every delivery of the cause. Such calls are at least
    /// once; a service that honours the key makes them take effect once.
    pub fn idempotency_key(&mut self) -> Uuid {
        let key = derive(self.reaction, self.cause.id, "call", self.calls);
        self.calls += 1;
        key
    }

    /// Sends `command` through the bus and waits for its outcome: accepted ([`Sent`]), or the
    /// aggregate's typed rejection (`CommandError::Rejected`) for the handler to handle.
    ///
    /// The command's id derives from the reaction's name, the cause's id and the command's
    /// index in this handler; correlation and user metadata carry over, and the cause is its
    /// causation. A redelivered cause sends the same commands with the same ids, and those
    /// that took effect are not decided again.
    pub async fn send<C>(
        &mut self,
        command: C,
    ) -> Result<Sent, CommandError<<C::Aggregate as Aggregate>::Error>>
    where
        C: Command + Into<<C::Aggregate as Aggregate>::Command>,
        B: Dispatch<C::Aggregate>,
    {
        let command_id = self.command_id(self.sends);
        self.sends += 1;
        let metadata = CommandMetadata {
            command_id,
            correlation_id: Some(self.cause.correlation_id),
            causation_id: Some(self.cause.id),
            user: self.cause.user.clone(),
            trace: self.cause.trace,
        };
        if let Some(recorder) = self.recorder.as_deref_mut() {
            return record(recorder, command, metadata);
        }
        let once = self.bus.execute_once(command.into(), metadata).await?;
        Ok(Sent {
            command_id,
            position: once.position(),
            already_applied: once.already_applied(),
        })
    }
}

fn record<C>(
    recorder: &mut Recorder,
    command: C,
    metadata: CommandMetadata,
) -> Result<Sent, CommandError<<C::Aggregate as Aggregate>::Error>>
where
    C: Command,
{
    let command_id = metadata.command_id;
    let recorded = RecordedCommand {
        name: command.command_name(),
        debug: format!("{command:?}"),
        command: Box::new(command),
        metadata,
    };
    let answer = (recorder.answer)(&recorded);
    recorder.sent.push(recorded);
    match answer {
        None => Ok(Sent {
            command_id,
            position: None,
            already_applied: false,
        }),
        Some(error) => match error.downcast::<<C::Aggregate as Aggregate>::Error>() {
            Ok(error) => Err(CommandError::Rejected(*error)),
            Err(_) => Ok(Sent {
                command_id,
                position: None,
                already_applied: false,
            }),
        },
    }
}

/// A name-based id under the reaction namespace.
pub(crate) fn derive(reaction: &str, cause: Uuid, what: &str, index: u32) -> Uuid {
    let mut name = Vec::with_capacity(reaction.len() + what.len() + 24);
    name.extend_from_slice(reaction.as_bytes());
    name.push(0);
    name.extend_from_slice(cause.as_bytes());
    name.extend_from_slice(what.as_bytes());
    name.extend_from_slice(&index.to_le_bytes());
    Uuid::new_v5(&NAMESPACE, &name)
}

/// The id of one firing of the deadline `deadline` of instance `key` of `reaction`, due at
/// `due`: the cause of the commands its handler sends.
pub(crate) fn firing_id(reaction: &str, key: &str, deadline: &str, due: DateTime<Utc>) -> Uuid {
    let mut name = Vec::with_capacity(reaction.len() + key.len() + deadline.len() + 11);
    for part in [reaction, key, deadline] {
        name.extend_from_slice(part.as_bytes());
        name.push(0);
    }
    name.extend_from_slice(&due.timestamp_micros().to_le_bytes());
    Uuid::new_v5(&NAMESPACE, &name)
}

/// A timer a process manager schedules: a type of its own, named, serializable.
///
/// One deadline of each type is pending per instance at most: scheduling it again moves it.
/// `#[derive(Deadline)]` implements it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a deadline",
    label = "a `#[deadline]` handler takes a deadline type",
    note = "derive it: `#[derive(Deadline, Serialize, Deserialize)]` on `{Self}`"
)]
pub trait Deadline: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The deadline's stable name (stored with it).
    const NAME: &'static str;
}

/// A change a process manager's handler asked for besides its state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Timer {
    Schedule {
        name: &'static str,
        due: DateTime<Utc>,
        payload: Vec<u8>,
    },
    Cancel {
        name: &'static str,
    },
}

/// The context of a process manager's handler: a [`ReactionContext`] for its commands, plus
/// its instance's deadlines and end.
///
/// `M` is the process manager. A handler in a `#[process_manager]` impl writes its context as
/// `&mut ProcessContext<'_, Bus>` and the macro completes it to
/// `ProcessContext<'_, Bus, Self>`; a helper function that takes the context names the
/// manager: `ctx: &mut ProcessContext<'_, Bus, MyManager>`. Knowing the manager, the context
/// schedules and cancels only the deadlines that one of its `#[deadline]` handlers takes
/// ([`HandledBy`]): any other does not compile.
pub struct ProcessContext<'a, B, M> {
    reaction: ReactionContext<'a, B>,
    key: &'a str,
    pub(crate) timers: Vec<Timer>,
    pub(crate) ended: bool,
    manager: PhantomData<fn() -> M>,
}

/// `D: HandledBy<M>`: a `#[deadline]` handler of the process manager `M` takes the deadline
/// `D`, so [`ProcessContext::schedule`] and [`ProcessContext::cancel`] of `M` accept it.
/// `#[process_manager]` implements it for each of the manager's `#[deadline]` handlers.
#[diagnostic::on_unimplemented(
    message = "`{M}` has no `#[deadline]` handler for `{Self}`, so it cannot schedule or cancel it",
    label = "no `#[deadline]` handler of `{M}` takes `{Self}`",
    note = "add `#[deadline] async fn ...(&mut self, deadline: {Self}, ctx: &mut ProcessContext<'_, YourBus>) -> Result<(), ReactionError>` to the `#[process_manager]` impl of `{M}`: a deadline that fires with no handler would fail the instance"
)]
pub trait HandledBy<M> {}

impl<'a, B, M> ProcessContext<'a, B, M> {
    /// The context of the instance `key` of the process manager `reaction`.
    pub fn new(bus: &'a B, reaction: &'a str, key: &'a str, cause: Cause) -> Self {
        Self {
            reaction: ReactionContext::new(bus, reaction, cause),
            key,
            timers: Vec::new(),
            ended: false,
            manager: PhantomData,
        }
    }

    pub(crate) fn recording(mut self, recorder: &'a mut Recorder) -> Self {
        self.reaction = self.reaction.recording(recorder);
        self
    }

    /// The instance's correlation key.
    pub fn key(&self) -> &str {
        self.key
    }

    /// Schedules `deadline` at `due` (replacing a pending one of the same type); it fires
    /// once, after restarts too, through the process manager's `#[deadline]` handler.
    pub fn schedule<D: Deadline + HandledBy<M>>(
        &mut self,
        due: DateTime<Utc>,
        deadline: &D,
    ) -> Result<(), ReactionError> {
        let payload =
            crate::store::json::to_vec(deadline).map_err(|e| ReactionError::Failed(Box::new(e)))?;
        self.timers.push(Timer::Schedule {
            name: D::NAME,
            due,
            payload,
        });
        Ok(())
    }

    /// Cancels the pending deadline of type `D`, if any.
    pub fn cancel<D: Deadline + HandledBy<M>>(&mut self) {
        self.timers.push(Timer::Cancel { name: D::NAME });
    }

    /// Ends the instance after this handler: its state and pending deadlines go.
    pub fn end(&mut self) {
        self.ended = true;
    }
}

impl<'a, B, M> std::ops::Deref for ProcessContext<'a, B, M> {
    type Target = ReactionContext<'a, B>;

    fn deref(&self) -> &ReactionContext<'a, B> {
        &self.reaction
    }
}

impl<B, M> std::ops::DerefMut for ProcessContext<'_, B, M> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.reaction
    }
}
