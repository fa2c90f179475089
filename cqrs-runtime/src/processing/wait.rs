//! Read-your-writes across processes: wait until a named reader's stored checkpoint has
//! reached a position, whichever process runs it.

use std::time::Duration;

use tokio::sync::watch;

use super::error::WaitError;
use crate::store::{Checkpoint, CheckpointStore};

/// Waits, from any process, until the reader `name` (a projection, a reaction) has committed
/// its checkpoint past a position: read-your-writes when the runner lives in another process.
///
/// [`RunnerHandle::wait_for`](super::RunnerHandle::wait_for) watches a runner of this process;
/// this reads the checkpoint row the runner commits
/// ([`CheckpointStore::checkpoint`]), polling with back-off (first after the minimum
/// interval, doubling up to the maximum), and re-reads at once when
/// [`wake_on`](Self::wake_on) changes: on PostgreSQL with notifications configured,
/// [`PostgresEventStore::listen_checkpoints`](crate::postgres::PostgresEventStore::listen_checkpoints)
/// changes on every checkpoint commit of any process. The poll stays the safety net (a
/// notification can be missed while the listening connection is re-opened).
///
/// ```no_run
/// # async fn demo(store: cqrs_runtime::sqlite::SqliteEventStore, position: u64)
/// # -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use cqrs_runtime::processing::wait_for_checkpoint;
///
/// // `position` is what the command returned (`Committed::position`); the projection
/// // `demand_by_sku` runs in another process, with its checkpoint in `store`.
/// wait_for_checkpoint(&store, "demand_by_sku", position, Duration::from_secs(5)).await?;
/// // The read model now holds the command's events.
/// # Ok(()) }
/// ```
///
/// A checkpoint reached a position when its cursor's position is at or past it. On
/// PostgreSQL, where positions can commit out of order, that is the same approximation as
/// `RunnerHandle::wait_for`: a transaction that took a lower position and committed later can
/// still be on its way.
pub struct CheckpointWatch<'a, C> {
    store: &'a C,
    name: String,
    wake: Option<watch::Receiver<u64>>,
    poll_min: Duration,
    poll_max: Duration,
}

impl<'a, C: CheckpointStore> CheckpointWatch<'a, C> {
    /// Watches the checkpoint of `name` in `store`, polling between 5 ms and 250 ms.
    pub fn new(store: &'a C, name: &str) -> Self {
        Self {
            store,
            name: name.to_owned(),
            wake: None,
            poll_min: Duration::from_millis(5),
            poll_max: Duration::from_millis(250),
        }
    }

    /// Re-reads the checkpoint at once when `wake` changes (a checkpoint commit somewhere,
    /// such as
    /// [`PostgresEventStore::listen_checkpoints`](crate::postgres::PostgresEventStore::listen_checkpoints)).
    pub fn wake_on(mut self, wake: watch::Receiver<u64>) -> Self {
        self.wake = Some(wake);
        self
    }

    /// Polling: first after `min`, doubling up to `max`.
    pub fn poll_interval(mut self, min: Duration, max: Duration) -> Self {
        self.poll_min = min;
        self.poll_max = max.max(min);
        self
    }

    /// The reader's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits until the stored checkpoint has reached `position` (a command's
    /// [`Committed::position`](crate::repository::Committed::position)), and returns it.
    ///
    /// [`WaitError::Timeout`] when `timeout` passes first; a transient failure to read the
    /// checkpoint is retried until then, any other is [`WaitError::Unreadable`].
    pub async fn wait_for(
        &self,
        position: u64,
        timeout: Duration,
    ) -> Result<Checkpoint, WaitError> {
        let mut reached = 0;
        let mut wake = self.wake.clone();
        if let Some(wake) = &mut wake {
            wake.mark_unchanged();
        }
        let waiting = async {
            let mut pause = self.poll_min;
            loop {
                match self.store.checkpoint(&self.name).await {
                    Ok(Some(checkpoint)) if checkpoint.cursor.position >= position => {
                        return Ok(checkpoint);
                    }
                    Ok(checkpoint) => {
                        reached = checkpoint.map_or(0, |c| c.cursor.position);
                    }
                    Err(error) if error.is_transient() => {
                        tracing::debug!(%error, name = %self.name, "reading the checkpoint failed: retrying");
                    }
                    Err(error) => {
                        return Err(WaitError::Unreadable {
                            name: self.name.clone(),
                            wanted: position,
                            reason: error.to_string(),
                        });
                    }
                }
                tokio::select! {
                    () = changed(&mut wake) => pause = self.poll_min,
                    () = tokio::time::sleep(pause) => pause = (pause * 2).min(self.poll_max),
                }
            }
        };
        match tokio::time::timeout(timeout, waiting).await {
            Ok(done) => done,
            Err(_) => Err(WaitError::Timeout {
                name: self.name.clone(),
                wanted: position,
                reached,
                timeout,
            }),
        }
    }
}

/// Completes when `wake` changes; never, without one (or once its sender is gone).
async fn changed(wake: &mut Option<watch::Receiver<u64>>) {
    if let Some(rx) = wake {
        if rx.changed().await.is_ok() {
            return;
        }
        *wake = None;
    }
    std::future::pending::<()>().await;
}

/// Read-your-writes across processes: waits until the reader `name` has committed its
/// checkpoint in `store` past `position`, polling (see [`CheckpointWatch`], which also takes
/// a wake-up source), and returns the checkpoint.
pub async fn wait_for_checkpoint<C: CheckpointStore>(
    store: &C,
    name: &str,
    position: u64,
    timeout: Duration,
) -> Result<Checkpoint, WaitError> {
    CheckpointWatch::new(store, name)
        .wait_for(position, timeout)
        .await
}
