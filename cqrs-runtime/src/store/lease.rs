//! Leases: at most one holder of a name at a time, across every process that shares a store.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::StoreError;

/// Exclusive, named leases: at most one holder of a name at a time, across every process that
/// shares the store (one active runner per projection, reaction or relay). A lease is released
/// when dropped, and when its holder's process dies.
///
/// A lease decides who *should* work; the checkpoint's fence decides whose commits count (see
/// [`Checkpoint`](super::Checkpoint)). A holder that lost its lease without noticing (a
/// dropped connection) is refused at its next commit, and may claim the checkpoint again
/// only after [`Lease::check`] proved that it still holds the lease.
pub trait LeaseStore: Send + Sync + 'static {
    /// The held lease; dropping it releases the name.
    type Lease: Lease;

    /// Takes the lease on `name` if nobody holds it; `None` if somebody does.
    fn try_acquire(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Self::Lease>, StoreError>> + Send;

    /// Whether the leases exclude holders in every process that opens the same store (a
    /// database's leases: `true`), or only the holders that share this value (in-memory
    /// leases: `false`).
    ///
    /// A runner whose commit is fenced while it holds a lease that spans processes, and that
    /// proves it with [`Lease::check`], claims the checkpoint again: the fence came from a
    /// runner configured without these leases, or from a claim a dead holder left running on
    /// the server. A runner whose leases do not span processes stops instead: whoever fenced
    /// it is outside its lease table, and the newer claim wins.
    fn spans_processes(&self) -> bool;

    /// Whether somebody holds the lease on `name` (a look that takes nothing: a fleet counts
    /// its live workers and finds free partitions with it). The answer may be out of date
    /// when it arrives. The default takes the lease and releases it at once; a store that can
    /// look without taking overrides it.
    fn is_taken(&self, name: &str) -> impl Future<Output = Result<bool, StoreError>> + Send {
        async move { Ok(self.try_acquire(name).await?.is_none()) }
    }
}

/// A held lease.
pub trait Lease: Send + Sync + 'static {
    /// The leased name.
    fn name(&self) -> &str;

    /// Whether the lease may still be held, as far as this process can tell without asking
    /// the database (a PostgreSQL lease whose connection closed is lost). A `true` is not a
    /// guarantee: the fence of the next commit is.
    fn is_held(&self) -> bool;

    /// Asks the store whether this holder still holds the lease: `Ok(false)` when the lease
    /// was lost (a PostgreSQL session that ended or no longer holds its advisory lock; a
    /// SQLite lock file that was removed or replaced; an in-memory lease that was revoked).
    /// It may wait on the network: a caller bounds it with a timeout, and takes an error or a
    /// timeout as "not held".
    fn check(&self) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// In-memory leases: exclusive among the holders that share the table (clones share it).
/// Cloning is cheap.
#[derive(Debug, Clone, Default)]
pub struct InMemoryLeases {
    table: Arc<Table>,
}

/// The held names, each with the token of its holder.
#[derive(Debug, Default)]
struct Table {
    held: Mutex<HashMap<String, u64>>,
    next: AtomicU64,
}

impl Table {
    fn holds(&self, name: &str, token: u64) -> bool {
        self.held
            .lock()
            .is_ok_and(|held| held.get(name) == Some(&token))
    }
}

impl InMemoryLeases {
    /// No lease held.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the lease on `name` away from its holder without telling it, as a dropped
    /// connection does to a database lease: the name is free, and the old holder's
    /// [`Lease::check`] and [`Lease::is_held`] say `false`. For tests of lost leases.
    pub fn revoke(&self, name: &str) {
        if let Ok(mut held) = self.table.held.lock() {
            held.remove(name);
        }
    }
}

/// A lease of [`InMemoryLeases`]; dropping it releases the name.
#[derive(Debug)]
pub struct InMemoryLease {
    name: String,
    token: u64,
    table: Arc<Table>,
}

impl Lease for InMemoryLease {
    fn name(&self) -> &str {
        &self.name
    }

    /// Whether the lease is still this holder's in its table (not revoked).
    fn is_held(&self) -> bool {
        self.table.holds(&self.name, self.token)
    }

    async fn check(&self) -> Result<bool, StoreError> {
        Ok(self.is_held())
    }
}

impl Drop for InMemoryLease {
    fn drop(&mut self) {
        if let Ok(mut held) = self.table.held.lock()
            && held.get(&self.name) == Some(&self.token)
        {
            held.remove(&self.name);
        }
    }
}

impl LeaseStore for InMemoryLeases {
    type Lease = InMemoryLease;

    async fn try_acquire(&self, name: &str) -> Result<Option<InMemoryLease>, StoreError> {
        let mut held = self
            .table
            .held
            .lock()
            .map_err(|_| StoreError::backend("the in-memory lease table is poisoned"))?;
        if held.contains_key(name) {
            return Ok(None);
        }
        let token = self.table.next.fetch_add(1, Ordering::Relaxed);
        held.insert(name.to_owned(), token);
        Ok(Some(InMemoryLease {
            name: name.to_owned(),
            token,
            table: self.table.clone(),
        }))
    }

    /// `false`: the table is this process's (and only its sharers').
    fn spans_processes(&self) -> bool {
        false
    }
}
