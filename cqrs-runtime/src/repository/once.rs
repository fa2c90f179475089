//! Commands with a deterministic identity: executed at most once per command id, whatever
//! redelivers them (a reaction handling an event again after a crash).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Committed, EventIds, Loaded, Repository, SnapshotPolicy, check_policy};
use crate::aggregate::Aggregate;
use crate::envelope::{CommandMetadata, Metadata};
use crate::error::CommandError;
use crate::store::{CorruptEvent, EventStore, ExpectedVersion, NewEvent, StoreError, StoredEvent};

/// The stream type of the records [`Repository::execute_once`] keeps of commands decided
/// without effect (one stream per command id, one event each). Runners skip these streams
/// like any stream no source declares.
pub const DECISIONS_STREAM_TYPE: &str = "$decisions";

/// The event name of such a record.
const DECIDED_WITHOUT_EFFECT: &str = "decided_without_effect";

/// A command decided without effect: where, at which version, and how.
#[derive(Debug, Serialize, Deserialize)]
struct Decision {
    stream_type: String,
    stream_id: String,
    version: u64,
    /// `rejected`, `not_found`, `already_exists` or `no_events` (for operators: a redelivery
    /// decides again at `version`).
    outcome: String,
    /// The rejection's text, for operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// What [`Repository::execute_once`] did.
pub enum Once<A: Aggregate> {
    /// The command was decided and its events appended now.
    Committed(Committed<A>),
    /// The command had taken effect before (its first event is stored): nothing was decided
    /// or appended again.
    AlreadyApplied {
        /// The stream version of the command's first event.
        stream_version: u64,
        /// The global position of the command's first event.
        position: u64,
    },
    /// The command was decided before and produced no event; deciding it again at the
    /// aggregate version of that decision produced none either. Nothing was appended.
    AlreadyDecided {
        /// The aggregate version the command was decided at.
        version: u64,
    },
}

impl<A: Aggregate> Once<A> {
    /// The global position of the command's last event now known (`None` when the command
    /// decided no event).
    pub fn position(&self) -> Option<u64> {
        match self {
            Once::Committed(committed) => committed.position,
            Once::AlreadyApplied { position, .. } => Some(*position),
            Once::AlreadyDecided { .. } => None,
        }
    }

    /// Whether the command was executed before this call.
    pub fn already_applied(&self) -> bool {
        matches!(
            self,
            Once::AlreadyApplied { .. } | Once::AlreadyDecided { .. }
        )
    }
}

impl<A> std::fmt::Debug for Once<A>
where
    A: Aggregate + std::fmt::Debug,
    A::Event: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Once::Committed(committed) => f.debug_tuple("Committed").field(committed).finish(),
            Once::AlreadyApplied {
                stream_version,
                position,
            } => f
                .debug_struct("AlreadyApplied")
                .field("stream_version", stream_version)
                .field("position", position)
                .finish(),
            Once::AlreadyDecided { version } => f
                .debug_struct("AlreadyDecided")
                .field("version", version)
                .finish(),
        }
    }
}

/// The id of the `index`-th event (0-based) of the command `command_id` under
/// [`Repository::execute_once`]: a name-based UUID (version 5) in the command id's namespace,
/// the same on every run.
pub fn event_id(command_id: Uuid, index: u32) -> Uuid {
    Uuid::new_v5(&command_id, &index.to_le_bytes())
}

impl<A: Aggregate, S: EventStore, P: SnapshotPolicy<A>> Repository<A, S, P> {
    /// Executes `command` at most once for `metadata.command_id`.
    ///
    /// The events it produces get ids derived from the command id ([`event_id`]). If the
    /// first of them is already stored, the command took effect before (a retry after a
    /// crash, a redelivered cause) and is not decided again: [`Once::AlreadyApplied`].
    ///
    /// A decision without effect is recorded too (in a stream of type
    /// [`DECISIONS_STREAM_TYPE`], under the same event id): a rejection, a refusal of the
    /// creation policy, or no event. Executed again, such a command is decided again against
    /// the aggregate *as it was then* (its events up to the recorded version), so it gets the
    /// same typed answer whatever happened to the aggregate since: the same
    /// `CommandError::Rejected` (or `NotFound`, `AlreadyExists`), or [`Once::AlreadyDecided`].
    /// A handler that now decides events there is not deterministic:
    /// `CommandError::NotReproducible`, nothing stored.
    ///
    /// Give each logical command its own stable id (reactions derive it from the causing
    /// event), and decide from the state and the command only.
    pub async fn execute_once(
        &self,
        command: impl Into<A::Command>,
        metadata: CommandMetadata,
    ) -> Result<Once<A>, CommandError<A::Error>> {
        let command = command.into();
        let first = event_id(metadata.command_id, 0);
        if let Some(stored) = self.store().read_event(first).await? {
            return self.executed(stored, command, &metadata).await;
        }
        let result = self
            .execute_ids(command.clone(), Some(metadata.clone()), EventIds::Derived)
            .await;
        match result {
            Ok(committed) => Ok(Once::Committed(committed)),
            // Stored between the look and the append (a concurrent delivery): its outcome.
            Err(CommandError::Store(StoreError::DuplicateEventId { event_id })) => {
                match self.store().read_event(first).await? {
                    Some(stored) => self.executed(stored, command, &metadata).await,
                    None => Err(CommandError::Store(StoreError::DuplicateEventId {
                        event_id,
                    })),
                }
            }
            Err(other) => Err(other),
        }
    }

    /// The outcome of a command executed before, whose first event id is `stored`'s.
    async fn executed(
        &self,
        stored: StoredEvent,
        command: A::Command,
        metadata: &CommandMetadata,
    ) -> Result<Once<A>, CommandError<A::Error>> {
        if stored.stream_type != DECISIONS_STREAM_TYPE {
            return Ok(Once::AlreadyApplied {
                stream_version: stored.stream_version,
                position: stored.global_position,
            });
        }
        let decision: Decision = serde_json::from_slice(&stored.payload).map_err(|error| {
            CommandError::Store(StoreError::Corrupt(Box::new(CorruptEvent::of(
                &stored,
                format!("unreadable record of a decision: {error}"),
            ))))
        })?;
        // Decide again against the aggregate as it was at the first decision.
        let loaded = self
            .replay::<true>(&decision.stream_id, A::default(), 0, decision.version)
            .await?;
        let Loaded { state, version } = loaded.unwrap_or(Loaded {
            state: A::default(),
            version: 0,
        });
        check_policy::<A>(&command, &decision.stream_id, version)?;
        let events = state
            .handle(command, self.services())
            .await
            .map_err(CommandError::Rejected)?;
        if events.is_empty() {
            return Ok(Once::AlreadyDecided { version });
        }
        Err(CommandError::NotReproducible {
            command_id: metadata.command_id,
            stream_type: decision.stream_type,
            stream_id: decision.stream_id,
            version: decision.version,
        })
    }

    /// A command decided under [`Repository::execute_once`]: a decision of no event is
    /// recorded.
    pub(super) async fn decided(
        &self,
        committed: Committed<A>,
        stream_id: &str,
        metadata: &CommandMetadata,
    ) -> Result<Committed<A>, CommandError<A::Error>> {
        if committed.events.is_empty() {
            self.record(stream_id, metadata, committed.version, "no_events", None)
                .await?;
        }
        Ok(committed)
    }

    /// A command refused (by its creation policy or its handler) at `version` under
    /// [`Repository::execute_once`]: the refusal is recorded.
    pub(super) async fn refused<T>(
        &self,
        error: CommandError<A::Error>,
        version: u64,
        stream_id: &str,
        metadata: &CommandMetadata,
    ) -> Result<T, CommandError<A::Error>> {
        let outcome = match &error {
            CommandError::NotFound { .. } => "not_found",
            CommandError::AlreadyExists { .. } => "already_exists",
            _ => "rejected",
        };
        let text = error.to_string();
        self.record(stream_id, metadata, version, outcome, Some(text))
            .await?;
        Err(error)
    }

    /// Appends the record of a decision without effect, under the id the command's first
    /// event would have had. Already taken (a concurrent delivery stored its own outcome):
    /// `DuplicateEventId`, which [`Repository::execute_once`] resolves by reading it.
    async fn record(
        &self,
        stream_id: &str,
        metadata: &CommandMetadata,
        version: u64,
        outcome: &str,
        error: Option<String>,
    ) -> Result<(), CommandError<A::Error>> {
        let decision = Decision {
            stream_type: A::TYPE.to_owned(),
            stream_id: stream_id.to_owned(),
            version,
            outcome: outcome.to_owned(),
            error,
        };
        let payload = serde_json::to_vec(&decision).map_err(|source| CommandError::Encode {
            event_type: DECIDED_WITHOUT_EFFECT,
            source,
        })?;
        let event_metadata: Metadata = metadata.event_metadata();
        let first = event_id(metadata.command_id, 0);
        let record =
            NewEvent::new(DECIDED_WITHOUT_EFFECT, 1, payload, event_metadata).with_id(first);
        let appended = self
            .store()
            .append(
                DECISIONS_STREAM_TYPE,
                &metadata.command_id.to_string(),
                ExpectedVersion::NoStream,
                vec![record],
            )
            .await;
        match appended {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict { .. } | StoreError::DuplicateEventId { .. }) => {
                Err(CommandError::Store(StoreError::DuplicateEventId {
                    event_id: first,
                }))
            }
            Err(other) => Err(other.into()),
        }
    }
}
