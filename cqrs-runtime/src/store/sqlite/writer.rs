//! The writer thread: owns the write connection, and commits every append that queued up
//! while it was busy in one transaction (group commit).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::sql::{Request, Sql};
use crate::store::StoreError;

/// A write other than an append, run on the writer connection.
pub(super) type WriteFn = Box<dyn FnOnce(&mut Connection, &Sql) + Send>;

/// Work for the writer thread.
pub(super) enum Job {
    /// An append, grouped with the other queued appends.
    Append(Request),
    /// Any other write (checkpoints, snapshots), run on its own.
    Run(WriteFn),
}

/// The most appends committed in one transaction.
const MAX_GROUP: usize = 256;

/// Starts the writer thread; it stops when every [`Sender`] is dropped.
pub(super) fn start(conn: Connection, sql: Arc<Sql>) -> Result<Sender<Job>, StoreError> {
    let (jobs, inbox) = channel();
    std::thread::Builder::new()
        .name("cqrs-sqlite-writer".into())
        .spawn(move || run(conn, &sql, &inbox))
        .map_err(StoreError::backend)?;
    Ok(jobs)
}

fn run(mut conn: Connection, sql: &Sql, inbox: &Receiver<Job>) {
    let mut group = Vec::new();
    while let Ok(first) = inbox.recv() {
        let mut next = Some(first);
        loop {
            match next.take() {
                Some(Job::Append(request)) => group.push(request),
                Some(Job::Run(job)) => job(&mut conn, sql),
                None => {}
            }
            if group.len() >= MAX_GROUP {
                break;
            }
            match inbox.try_recv() {
                Ok(job) => next = Some(job),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        if !group.is_empty() {
            sql.append_group(&mut conn, std::mem::take(&mut group));
        }
    }
}

/// Sends `job` and waits for its reply.
pub(super) async fn call<T: Send + 'static>(
    jobs: &Sender<Job>,
    f: impl FnOnce(&mut Connection, &Sql) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let (reply, result) = oneshot::channel();
    let job = Job::Run(Box::new(move |conn, sql| {
        let _ = reply.send(f(conn, sql));
    }));
    jobs.send(job).map_err(|_| stopped())?;
    result.await.map_err(|_| stopped())?
}

pub(super) fn stopped() -> StoreError {
    StoreError::backend("the SQLite writer thread stopped")
}
