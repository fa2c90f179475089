//! The processing layer: everything that happens to an event after it is stored.
//!
//! One [`Runner`] drives one [`Handler`] from one [`Source`]:
//!
//! - a **source** yields events in an order it guarantees, each with a
//!   [`Cursor`](crate::store::Cursor): any
//!   [`EventStore`](crate::store::EventStore) is one (its log in commit order);
//! - a **handler** takes batches of them and commits its effects together with its
//!   [`Checkpoint`](crate::store::Checkpoint) (a projection's read model; a reaction; a
//!   relay);
//! - the **runner** catches up from the checkpoint, follows the source live, rebuilds, holds the
//!   handler's lease (or stands by for it), retries transient failures with capped,
//!   jittered back-off, applies the [`ErrorPolicy`] to events the handler cannot take, and
//!   reports [`Lag`] and [`RunState`] through a [`RunnerHandle`].
//!
//! Two mechanisms keep every effect exactly once where the handler's store allows it:
//!
//! - the **lease** ([`LeaseStore`](crate::store::LeaseStore)) says who should work: one active
//!   runner per name across the processes that share it, the others standing by;
//! - the **fence** says whose commits count: every runner *claims* the checkpoint when it
//!   starts (a new fence), and a commit carrying an older fence is refused inside its own
//!   transaction ([`StoreError::Fenced`](crate::store::StoreError::Fenced)). A runner that lost
//!   its lease without noticing, or a catch-up racing a rebuild, cannot write.
//!
//! A runner reads only the events its handler takes ([`Handler::filter`]; a projection's are
//! those of its sources), filtered in the store's query, and moves its checkpoint past the
//! others without fetching them.
//!
//! Read-your-writes: [`RunnerHandle::wait_for`] waits for a runner of this process;
//! [`wait_for_checkpoint`] and [`CheckpointWatch`] wait, from any process, for the checkpoint
//! a runner commits in the database.
//!
//! Past one process: a handler split into [`Partition`]s by a [`PartitionKey`] (the stream id
//! by default) runs as one runner per partition, each with its own checkpoint and lease,
//! reading its partition's events ([`PartitionedSource`]) in order; a [`Fleet`] in each worker
//! process claims partitions, spreads them evenly over the live workers and takes over those of
//! a worker that died.
//!
//! Projections (read models) live in [`projection`](mod@crate::projection).
//!
//! # Exactly once, at least once
//!
//! What "once" means depends on where a handler's effects are committed. The tests named
//! below are in `cqrs-runtime/tests/` (`sql_read_model.rs` runs each on SQLite and on
//! PostgreSQL, in its `sqlite` and `postgres` modules) and in the workspace's `tests/`.
//!
//! - **Exactly once** where the effects commit with the checkpoint, in one transaction:
//!   [`SqlReadModel`](crate::projection::SqlReadModel) (the handler's statements and the
//!   checkpoint in one database transaction), [`InMemoryReadModel`](crate::projection::InMemoryReadModel)
//!   (one lock), a process manager's instances and deadlines. A runner killed in the middle of
//!   a batch leaves nothing of it, and the next one resumes after the checkpoint
//!   (`killed_mid_batch_then_resumed_equals_a_clean_rebuild`,
//!   `exactly_once_under_a_crash_mid_batch`). Rebuilds, catch-ups and live runners of one
//!   model started together while events are appended apply each event once and lose none,
//!   with shared leases, without, and with the lease's session ended midway
//!   (`races_with_shared_leases`, `races_without_shared_leases`,
//!   `postgres_races_with_the_lease_session_terminated`).
//! - **At least once** where they cannot: a
//!   [`CheckpointedReadModel`](crate::projection::CheckpointedReadModel), whose checkpoint
//!   lives in another store, gets a batch again after a crash between the two commits (a
//!   guard on the event's cursor drops it: `at_least_once_redelivery_is_dropped_by_the_idempotency_guard`);
//!   a reaction's calls to services are repeated after a crash (see
//!   [`reaction`](mod@crate::processing::reaction), which also says how its commands take
//!   effect once); so is any effect a custom [`Handler`] makes outside its commit.
//!
//! ## Races and faults
//!
//! - **A fenced runner stops.** A runner whose commit is refused for a newer fence ends with
//!   [`RunError::Superseded`], or, with [`Runner::standby`], drops its lease and waits for it
//!   again. It claims the checkpoint again only when it proves that it still holds a lease
//!   that spans processes ([`LeaseStore::spans_processes`](crate::store::LeaseStore::spans_processes),
//!   [`Lease::check`](crate::store::Lease::check) within [`LEASE_CHECK_TIMEOUT`]): the fence
//!   then came from a runner configured without these leases, or from a claim a dead holder
//!   left running on the server. A runner that lost its lease without noticing (a
//!   partitioned or ended PostgreSQL session, a removed SQLite lock file, a revoked in-memory
//!   lease) therefore writes nothing once another runner claimed the checkpoint
//!   (`a_runner_that_lost_its_lease_writes_nothing`,
//!   `a_standby_that_lost_its_lease_writes_nothing`, and the conformance suite's
//!   `a_lost_lease_is_seen_and_its_holder_writes_nothing`). Until another runner claims, it
//!   may still commit: nobody else writes then, and its commits are exact.
//! - **Standby take-over.** A runner standing by takes the lease when its holder dies (the
//!   lease goes with the holder's process or session) and resumes from the checkpoint
//!   (`a_standby_takes_over_from_a_killed_runner`: the holder killed with `SIGKILL` in the
//!   middle of a batch).
//! - **Transient failures are retried** ([`Backoff`]; a lost connection, a busy database, a
//!   serialization failure), on a new connection where one broke
//!   (`postgres_transient_failures_are_retried`).
//! - **Dead letters are committed with the checkpoint** that moves past them, in the
//!   handler's store, so they survive restarts (`dead_letters_are_persisted_with_the_checkpoint`,
//!   `skip_and_record_goes_on_but_a_rebuild_never_skips`).

mod error;
mod fleet;
mod handler;
mod meta;
mod partition;
pub mod reaction;
mod runner;
mod source;
mod task;
mod wait;

pub use error::{RunError, WaitError};
pub use fleet::{Fleet, FleetError, FleetHandle, FleetStatus, RunningFleet};
pub use handler::{Handled, Handler, Tick};
pub use meta::EventMeta;
pub use partition::{Partition, PartitionKey, PartitionedSource, partition_name, partition_of};
pub use runner::{
    Backoff, ErrorPolicy, LEASE_CHECK_TIMEOUT, Lag, RunState, Runner, RunnerHandle, Running,
};
pub use source::Source;
pub use wait::{CheckpointWatch, wait_for_checkpoint};

pub mod projection;
