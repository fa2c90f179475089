//! The backends: each implements the store contract ([`crate::store`]) — the event log, the
//! side tables (checkpoints with dead letters, snapshots, leases) and, for the SQL databases,
//! the read-model backend ([`SqlBackend`](crate::store::SqlBackend)).
//!
//! The rules every backend shares (idempotent re-appends, table names, the outcome of an
//! append in the caller's transaction) are written once here, so the backends cannot drift.

pub(crate) mod idempotency;
pub mod memory;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod names;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod transaction;
