//! A loop on its own Tokio task that stops when asked (or when its owner is dropped).

use std::future::Future;

use tokio::sync::oneshot;
use tokio::task::{JoinError, JoinHandle};

/// A spawned loop and the signal that stops it: [`stop`](Self::stop) sends the signal,
/// dropping the `Stoppable` drops it, and either ends the shutdown future the loop was given.
pub(crate) struct Stoppable<E> {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), E>>,
}

impl<E: Send + 'static> Stoppable<E> {
    /// Spawns `run(shutdown)`: `shutdown` completes on a stop request.
    pub(crate) fn spawn<F, Fut>(run: F) -> Self
    where
        F: FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(Box::pin(async {
            let _ = stopped.await;
        })));
        Self {
            stop: Some(stop),
            task,
        }
    }

    /// Whether the task has ended.
    pub(crate) fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Asks the loop to stop and waits for it.
    pub(crate) async fn stop(mut self, crashed: impl FnOnce(JoinError) -> E) -> Result<(), E> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.join(crashed).await
    }

    /// Waits for the loop to end on its own; `crashed` maps a panic or a cancellation.
    pub(crate) async fn join(mut self, crashed: impl FnOnce(JoinError) -> E) -> Result<(), E> {
        // Keep the stop signal alive while waiting: dropping it is a stop request.
        let _stop = self.stop.take();
        match (&mut self.task).await {
            Ok(result) => result,
            Err(error) => Err(crashed(error)),
        }
    }
}
