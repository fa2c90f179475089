//! The store contract: what every backend implements and what the repository and the
//! processing layer rely on.
//!
//! This module holds traits and data types only; the backends live in
//! [`memory`](crate::memory), [`sqlite`](crate::sqlite) and [`postgres`](crate::postgres), and
//! each of them passes one conformance suite (`cqrs-runtime/tests/conformance`).
//!
//! - [`EventStore`]: one global, totally ordered log of [`StoredEvent`]s, each also belonging
//!   to one stream `(stream_type, stream_id)` at a 1-based stream version. Appends are
//!   optimistic: the caller says which [`ExpectedVersion`] the stream must be at, and the store
//!   refuses with [`StoreError::Conflict`] otherwise. Event ids are idempotency keys.
//! - [`CheckpointStore`]: how far a named reader of the log has got ([`Checkpoint`]), fenced so
//!   that a reader that was taken over can no longer commit, plus its dead letters.
//! - [`SnapshotStore`]: the newest serialized state of a stream.
//! - [`LeaseStore`]: one active holder of a name across every process that shares the store.
//! - [`ClaimStore`]: values held exclusively in a named scope (a unique email), taken and given
//!   back by appended events in the same transaction.
//! - [`SqlBackend`]: a SQL database in which read models keep their tables, and commit their
//!   statements together with their checkpoint.
//!
//! Every method of these traits is required: a default that forwards to another method could
//! break a guarantee of a backend (a reader of PostgreSQL's log must read in commit order, not
//! in position order), so a wrapper store forwards each method explicitly.

mod checkpoint;
mod claim;
mod error;
mod event;
mod event_store;
mod filter;
pub mod json;
mod lease;
mod snapshot;
pub mod sql;

pub(crate) use checkpoint::apply_change;
pub use checkpoint::{
    Checkpoint, CheckpointChange, CheckpointCommit, CheckpointStore, Cursor, DeadLetter,
    NamedCheckpoint,
};
pub(crate) use checkpoint::{already_committed, commit_in_memory, fenced};
pub use claim::{
    Claim, ClaimAction, ClaimChanges, ClaimHolder, ClaimRebuild, ClaimStore, ClaimsRebuilt, Derive,
    Derived,
};
pub(crate) use claim::{claimed, net};
pub(crate) use error::clip;
pub use error::{CorruptEvent, StoreError};
pub use event::{
    AppendOutcome, ExpectedVersion, NewEvent, StoredEvent, StreamAppend, StreamEventRef,
};
pub use event_store::EventStore;
pub use filter::{EventFilter, ReadBatch};
#[doc(hidden)] // Public as `memory::InMemoryLeases`; the runners' default lease table.
pub use lease::{InMemoryLease, InMemoryLeases};
pub use lease::{Lease, LeaseStore};
pub use snapshot::{Snapshot, SnapshotStore};
pub use sql::{SqlBackend, SqlBatch, SqlDialect, SqlError, SqlStatement, SqlValue};

pub(crate) use event::{check_append, now};
