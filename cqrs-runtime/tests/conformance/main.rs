//! One conformance suite, written once and run against every store: in-memory, SQLite and
//! PostgreSQL (the last with `--features postgres`; see `backends.rs` for `DATABASE_URL`).
//!
//! Every loop is bounded in count and in time, so a broken store fails instead of hanging.
#![allow(missing_docs, reason = "test fixtures")]

mod backends;
mod concurrency;
mod filtered;
mod projections;
mod reactions;
#[path = "../shop/mod.rs"]
mod shop;
mod snapshots;
mod suite;
mod tables;

use std::future::Future;
use std::time::Duration;

/// How long a test waits for events to become visible to `read_after`. PostgreSQL holds an
/// event back while any older transaction in the server is open (the gap tests of this suite
/// hold some on purpose, other test binaries too), so on a loaded machine this is generous; a
/// test that passes returns as soon as the events show.
pub const VISIBLE_WITHIN: Duration = Duration::from_secs(90);

use cqrs_runtime::envelope::Metadata;
use cqrs_runtime::processing::reaction::ReactionStore;
use cqrs_runtime::store::{CheckpointStore, EventStore, LeaseStore, NewEvent, SnapshotStore};

/// A store under test: fresh and isolated per test.
pub trait Backend: Sized + Send + Sync + 'static {
    type Events: EventStore + cqrs_runtime::store::ClaimStore + Clone;
    type Checkpoints: CheckpointStore + Clone;
    type Snapshots: SnapshotStore + Clone;
    type Leases: LeaseStore + Clone;
    type Reactions: ReactionStore;

    /// A fresh, isolated store; `None` skips the test (with a printed reason).
    fn setup() -> impl Future<Output = Option<Self>> + Send;
    fn events(&self) -> Self::Events;
    fn checkpoints(&self) -> Self::Checkpoints;
    fn snapshots(&self) -> Self::Snapshots;
    fn reactions(&self) -> Self::Reactions;
    /// The leases of this handle.
    fn leases(&self) -> Self::Leases;
    /// The leases of a second, independent handle on the same data (another connection, or
    /// what another process would open).
    fn other_leases(&self) -> impl Future<Output = Self::Leases> + Send;
    /// Takes the lease on `name` from its holder without telling it: in memory, revoked;
    /// SQLite, the lock files removed; PostgreSQL, the holder's session ended on the server.
    fn lose_lease(&self, name: &str) -> impl Future<Output = ()> + Send;
    /// Appends one event at `version` in a transaction that stays open for `hold` before it
    /// commits (where the backend has such transactions; otherwise waits, then appends).
    fn append_held_open(
        &self,
        stream_type: &str,
        stream_id: &str,
        version: u64,
        event: NewEvent,
        hold: Duration,
    ) -> impl Future<Output = ()> + Send;
    fn teardown(self) -> impl Future<Output = ()> + Send;
}

pub fn event(n: u64) -> NewEvent {
    NewEvent::new(
        "thing_happened",
        1,
        format!("{{\"n\": {n}, \"text\": \"é\\\"x\"}}").into_bytes(),
        Metadata::new().with_user_entry("tenant", n),
    )
}

pub fn events(range: std::ops::Range<u64>) -> Vec<NewEvent> {
    range.map(event).collect()
}

trait MetadataExt {
    fn with_user_entry(self, key: &str, value: u64) -> Self;
}

impl MetadataExt for Metadata {
    fn with_user_entry(mut self, key: &str, value: u64) -> Self {
        self.user.insert(key.to_owned(), value.into());
        self
    }
}

/// JSON equality: stores may normalize whitespace and key order (PostgreSQL's `jsonb`).
pub fn same_json(a: &[u8], b: &[u8]) -> bool {
    let parse = |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).ok();
    parse(a).is_some() && parse(a) == parse(b)
}

macro_rules! conformance {
    ($module:ident, $backend:ty) => {
        mod $module {
            use super::Backend;
            conformance!(@tests $backend:
                append_and_read, read_stream_from_version, replay_stream_lends_every_event_and_stops, conflicts_report_the_actual_version,
                empty_batch_checks_the_expected_version, reappend_is_idempotent,
                clashing_ids_are_duplicates, read_after_is_in_commit_order,
                the_store_refuses_what_it_could_not_give_back, read_event_and_head,
                claims_are_exclusive_and_atomic,
                snapshots_keep_the_newest, checkpoints_are_claimed_fenced_and_reset,
                one_lease_holder_and_takeover, a_lost_lease_is_seen_and_its_holder_writes_nothing,
                concurrent_commands_with_retry_lose_nothing,
                catch_up_reader_sees_every_event_once,
                repository_loads_snapshot_plus_tail,
                projection_live_and_rebuild_agree, one_projection_runner_at_a_time,
                a_process_manager_reserves_compensates_and_times_out,
                filtered_reads_return_the_matching_events,
                filtered_reads_do_not_pass_open_transactions, a_projection_reads_only_its_events);
        }
    };
    (@tests $backend:ty: $($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let Some(backend) = <$backend as Backend>::setup().await else { return };
            let backend = std::sync::Arc::new(backend);
            super::$name::<$backend>(&backend).await;
            if let Ok(backend) = std::sync::Arc::try_unwrap(backend) {
                backend.teardown().await;
            }
        }
    )*};
}

use concurrency::*;
use filtered::*;
use projections::*;
use reactions::*;
use snapshots::*;
use suite::*;
use tables::*;

conformance!(memory, super::backends::Memory);
#[cfg(feature = "sqlite")]
conformance!(sqlite, super::backends::Sqlite);
#[cfg(feature = "postgres")]
conformance!(postgres, super::backends::Postgres);
#[cfg(feature = "postgres")]
conformance!(postgres_notify, super::backends::Postgres<true>);
