//! Checkpoints: how far a named reader of the log has got, fenced against readers that were
//! taken over, and the dead letters it set aside.

use std::collections::BTreeMap;
use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{StoreError, StoredEvent};

/// A place in the log, ordered by `(tx, position)`.
///
/// `position` is the event's global position. `tx` orders commits for stores whose positions
/// can become visible out of order under concurrent writers (PostgreSQL: the writing
/// transaction's id); stores that commit in position order (in-memory, SQLite) use `tx = 0`.
/// A reader that resumes after a cursor sees every event committed after it exactly once.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Cursor {
    /// The commit-order key (0 for stores that commit in position order).
    pub tx: u64,
    /// The global position of the last event read.
    pub position: u64,
}

impl Cursor {
    /// The cursor before the first event.
    pub const START: Cursor = Cursor { tx: 0, position: 0 };

    /// The cursor just before this one: reading after it gives this cursor's event first.
    pub fn before(self) -> Cursor {
        Cursor {
            tx: self.tx,
            position: self.position.saturating_sub(1),
        }
    }
}

/// A named reader's checkpoint: where it got, which code wrote it, and who may move it.
///
/// - `cursor`: the last event whose effect is committed.
/// - `version` and `fingerprint`: the identity of the code that committed it (a projection's
///   `version = N` and the fingerprint of its handled events); a reader refuses a checkpoint
///   written by other code and asks for a rebuild.
/// - `generation`: how many times the reader was reset (rebuilt from the start).
/// - `fence`: the claim that may commit. Every [`CheckpointStore::claim`] takes a new fence,
///   and a commit carrying an older one is refused with [`StoreError::Fenced`], inside the
///   transaction that would have written it: a runner that lost its lease, or a catch-up
///   racing a rebuild, can no longer write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The cursor of the last event whose effect is committed ([`Cursor::START`]: none).
    pub cursor: Cursor,
    /// The reader's version when the checkpoint was written (0: unknown).
    pub version: u32,
    /// The reader's fingerprint when the checkpoint was written (0: unknown).
    pub fingerprint: u64,
    /// How many resets the checkpoint went through.
    pub generation: u64,
    /// The fence of the latest claim.
    pub fence: u64,
}

impl Checkpoint {
    /// Whether code of this `version` and `fingerprint` wrote the checkpoint, or nobody did
    /// yet (a fresh claim: nothing committed, identity unknown).
    pub fn written_by(&self, version: u32, fingerprint: u64) -> bool {
        (self.version == version && self.fingerprint == fingerprint)
            || (self.cursor == Cursor::START && self.version == 0 && self.fingerprint == 0)
    }
}

/// A stored checkpoint with its name, as a store lists them for tools
/// (`SqliteEventStore::checkpoints`, `PostgresEventStore::checkpoints`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedCheckpoint {
    /// The reader's name (a projection's, a reaction's; a partition's is `{name}#p{i}/{n}`).
    pub name: String,
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// When it was last claimed or committed.
    pub updated_at: DateTime<Utc>,
    /// How many dead letters the reader set aside and still keeps.
    pub dead_letters: u64,
}

/// How a commit changes the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointChange {
    /// Moves the cursor to `cursor`, stamping the reader's identity.
    Advance {
        /// The cursor of the last event of the commit.
        cursor: Cursor,
        /// The reader's version.
        version: u32,
        /// The reader's fingerprint.
        fingerprint: u64,
    },
    /// A new start (a rebuild): the cursor `at` ([`Cursor::START`] to replay everything, the
    /// head to start afresh from now), the next generation, the reader's identity, and every
    /// dead letter of the name forgotten.
    Reset {
        /// Where the reader starts again.
        at: Cursor,
        /// The reader's version.
        version: u32,
        /// The reader's fingerprint.
        fingerprint: u64,
    },
    /// Leaves the cursor where it is (a commit that only records or removes dead letters).
    Keep,
}

/// One commit of a named reader: the fence it claimed, the change, and dead letters to record
/// or remove, all written in one transaction (or not at all).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointCommit {
    /// The fence of the claim this commit belongs to.
    pub fence: u64,
    /// How the checkpoint changes.
    pub change: CheckpointChange,
    /// Dead letters to record.
    pub record: Vec<DeadLetter>,
    /// Positions of dead letters to remove (retried or discarded).
    pub remove: Vec<u64>,
}

impl CheckpointCommit {
    /// A commit that moves the cursor to `cursor` with the reader's identity.
    pub fn advance(fence: u64, cursor: Cursor, version: u32, fingerprint: u64) -> Self {
        Self {
            fence,
            change: CheckpointChange::Advance {
                cursor,
                version,
                fingerprint,
            },
            record: Vec::new(),
            remove: Vec::new(),
        }
    }

    /// A commit that moves the cursor back to `at` (a rebuild) with the reader's identity;
    /// the reset's generation is counted by the store.
    pub fn reset(fence: u64, at: Cursor, version: u32, fingerprint: u64) -> Self {
        Self {
            fence,
            change: CheckpointChange::Reset {
                at,
                version,
                fingerprint,
            },
            record: Vec::new(),
            remove: Vec::new(),
        }
    }

    /// A commit that keeps the cursor and removes the dead letters at `positions` (retried
    /// or discarded); with none, it only proves the fence.
    pub fn keep(fence: u64, positions: Vec<u64>) -> Self {
        Self {
            fence,
            change: CheckpointChange::Keep,
            record: Vec::new(),
            remove: positions,
        }
    }
}

/// An event a reader could not take and set aside under its error policy
/// (`ErrorPolicy::SkipAndRecord`), recorded with the checkpoint that moved past it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Where the event is in the log.
    pub cursor: Cursor,
    /// The event's id (`None` when the stored row could not be read).
    pub event_id: Option<Uuid>,
    /// The event's stream type (empty when unknown).
    pub stream_type: String,
    /// The event's stream id (empty when unknown).
    pub stream_id: String,
    /// The event's version within its stream (0 when unknown).
    pub stream_version: u64,
    /// The event's wire name (empty when unknown).
    pub event_type: String,
    /// The stored version of the event's shape (0 when unknown).
    pub event_version: u32,
    /// Why it could not be taken.
    pub error: String,
    /// When it was set aside.
    pub recorded_at: DateTime<Utc>,
}

impl DeadLetter {
    /// The dead letter of `event`, read at `cursor`, refused with `error`.
    pub fn of(cursor: Cursor, event: &StoredEvent, error: impl ToString) -> Self {
        Self {
            cursor,
            event_id: Some(event.event_id),
            stream_type: event.stream_type.clone(),
            stream_id: event.stream_id.clone(),
            stream_version: event.stream_version,
            event_type: event.event_type.clone(),
            event_version: event.event_version,
            error: error.to_string(),
            recorded_at: super::now(),
        }
    }
}

/// Durable, fenced checkpoints of named readers of the log, and their dead letters.
///
/// The protocol: a runner [`claim`](CheckpointStore::claim)s the name (a new fence, which
/// fences out every earlier claim), resumes after the returned cursor, and
/// [`commit`](CheckpointStore::commit)s with its fence; a commit whose fence is no longer the
/// stored one is refused with [`StoreError::Fenced`] and changes nothing.
pub trait CheckpointStore: Send + Sync + 'static {
    /// The stored checkpoint of `name`, if it has one (read only: lag, read-your-writes, tools).
    fn checkpoint(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Checkpoint>, StoreError>> + Send;

    /// Takes `name` over: stores a new fence (creating the checkpoint at [`Cursor::START`]
    /// if there is none) and returns the checkpoint with it.
    fn claim(&self, name: &str) -> impl Future<Output = Result<Checkpoint, StoreError>> + Send;

    /// Applies `commit` if `name`'s fence is still `commit.fence`, else refuses with
    /// [`StoreError::Fenced`]. Returns the checkpoint as committed.
    fn commit(
        &self,
        name: &str,
        commit: CheckpointCommit,
    ) -> impl Future<Output = Result<Checkpoint, StoreError>> + Send;

    /// The dead letters of `name`, oldest first.
    fn dead_letters(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Vec<DeadLetter>, StoreError>> + Send;
}

/// The checkpoint after `commit` is applied to `stored` (the fence already checked): the rule
/// every backend applies, written once.
pub(crate) fn apply_change(stored: Checkpoint, change: CheckpointChange) -> Checkpoint {
    match change {
        CheckpointChange::Advance {
            cursor,
            version,
            fingerprint,
        } => Checkpoint {
            cursor,
            version,
            fingerprint,
            ..stored
        },
        CheckpointChange::Reset {
            at,
            version,
            fingerprint,
        } => Checkpoint {
            cursor: at,
            version,
            fingerprint,
            generation: stored.generation + 1,
            fence: stored.fence,
        },
        CheckpointChange::Keep => stored,
    }
}

/// Whether `commit` was committed already (a retry of a commit whose answer was lost): it
/// advances to a cursor the stored checkpoint has reached. Nothing of it runs again.
pub(crate) fn already_committed(stored: &Checkpoint, commit: &CheckpointCommit) -> bool {
    matches!(commit.change, CheckpointChange::Advance { cursor, .. } if stored.cursor >= cursor)
}

/// The refusal of a commit carrying `fence` when `current` is stored.
pub(crate) fn fenced(name: &str, fence: u64, current: u64) -> StoreError {
    StoreError::Fenced {
        name: name.to_owned(),
        fence,
        current,
    }
}

/// Applies `commit` to an in-process checkpoint and its dead letters if its fence matches:
/// the rule of the in-memory checkpoint table and of the in-memory read model.
pub(crate) fn commit_in_memory(
    name: &str,
    checkpoint: &mut Checkpoint,
    dead: &mut BTreeMap<u64, DeadLetter>,
    commit: CheckpointCommit,
) -> Result<Checkpoint, StoreError> {
    if checkpoint.fence != commit.fence {
        return Err(fenced(name, commit.fence, checkpoint.fence));
    }
    if already_committed(checkpoint, &commit) {
        return Ok(*checkpoint);
    }
    if matches!(commit.change, CheckpointChange::Reset { .. }) {
        dead.clear();
    }
    for position in commit.remove {
        dead.remove(&position);
    }
    for letter in commit.record {
        dead.insert(letter.cursor.position, letter);
    }
    *checkpoint = apply_change(*checkpoint, commit.change);
    Ok(*checkpoint)
}
