//! The write connection and group commit, without a writer thread.
//!
//! An append queues its request, then tries to take the write connection on the blocking
//! pool. Whoever holds it (the leader) commits every queued append in one transaction, and
//! again until the queue is empty; an append that finds the connection taken returns at once,
//! its request being committed by the leader. Alone, an append therefore runs on its own
//! blocking task, like a hand-written one; under load, appends that queued while the leader
//! was busy share one transaction and one disk sync.

use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

use rusqlite::Connection;

use super::sql::{Request, Sql};
use crate::store::StoreError;

/// The most appends committed in one transaction.
const MAX_GROUP: usize = 256;

/// The write connection and the appends waiting for it.
pub(super) struct Writer {
    conn: Mutex<Connection>,
    queue: Mutex<Vec<Request>>,
}

/// A lock whose holder panicked is still usable: a panic inside a rusqlite transaction rolls
/// it back when the transaction is dropped, and the queue is only pushed to and taken from.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Writer {
    pub(super) fn new(conn: Connection) -> Self {
        Self {
            conn: Mutex::new(conn),
            queue: Mutex::new(Vec::new()),
        }
    }

    /// Queues `request` and commits it, with whatever else queued up, unless another task
    /// holds the connection (that task commits it). Blocking: call it on the blocking pool.
    pub(super) fn append(&self, sql: &Sql, request: Request) {
        lock(&self.queue).push(request);
        self.drain(sql);
    }

    /// Runs `f` on the write connection, waiting for it, then commits the appends that
    /// queued meanwhile. Blocking: call it on the blocking pool.
    pub(super) fn run<T, E>(
        &self,
        sql: &Sql,
        f: impl FnOnce(&mut Connection, &Sql) -> Result<T, E>,
    ) -> Result<T, E> {
        let result = f(&mut lock(&self.conn), sql);
        self.drain(sql);
        result
    }

    /// Commits queued appends while the connection is free. After releasing it, the queue
    /// is looked at again: an append queued after the last group found the connection taken
    /// and counts on its holder.
    fn drain(&self, sql: &Sql) {
        loop {
            let mut conn = match self.conn.try_lock() {
                Ok(conn) => conn,
                Err(TryLockError::WouldBlock) => return,
                Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            };
            loop {
                let group: Vec<Request> = {
                    let mut queue = lock(&self.queue);
                    let n = queue.len().min(MAX_GROUP);
                    queue.drain(..n).collect()
                };
                if group.is_empty() {
                    break;
                }
                sql.append_group(&mut conn, group);
            }
            drop(conn);
            if lock(&self.queue).is_empty() {
                return;
            }
        }
    }
}

pub(super) fn stopped() -> StoreError {
    StoreError::backend("the SQLite append was dropped before it ran (runtime shutting down?)")
}
