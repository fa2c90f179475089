//! LISTEN/NOTIFY as an opt-in wake-up hint (see [`PostgresConfig::notify`]).
//!
//! [`PostgresConfig::notify`]: super::PostgresConfig::notify

use std::time::Duration;

use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, Client, Connection, Socket};

use super::tls::RustlsStream;
use super::{Connector, PostgresEventStore};
use crate::backends::names::Ident;
use crate::store::StoreError;

/// Why [`PostgresEventStore::listen`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The store's appends do not notify: configure a channel with
    /// [`PostgresConfig::notify`](super::PostgresConfig::notify).
    #[error("this store's appends do not notify: set a channel with `PostgresConfig::notify`")]
    NotConfigured,
    /// The listening connection could not be opened, or `LISTEN` failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The longest wait between two attempts to re-open a broken listening connection.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

/// A connection that runs `LISTEN`, and its client (held: dropping it would close the
/// connection).
struct Listening {
    _client: Client,
    connection: Connection<Socket, RustlsStream>,
}

impl PostgresEventStore {
    /// Listens to the store's notification channel on a dedicated connection and returns a
    /// receiver of the last notified global position: a wake-up hint for
    /// a runner's `wake_on`, which
    /// then reads the log as usual. Each append of any process that uses the same channel
    /// changes it.
    ///
    /// The connection lives as long as a receiver does. If it breaks, it is re-opened (with
    /// back-off) and the receivers are woken once, since notifications may have been missed
    /// meanwhile; until then, runners fall back to their poll interval.
    pub async fn listen(&self) -> Result<watch::Receiver<u64>, ListenError> {
        let channel = self
            .inner
            .config
            .notify
            .clone()
            .ok_or(ListenError::NotConfigured)?;
        self.listen_to(channel).await
    }

    /// Listens to the checkpoint commits of every process that uses the same channel (see
    /// [`PostgresConfig::notify`](super::PostgresConfig::notify)), on a dedicated connection:
    /// the receiver changes (to the committed position) each time a reader commits its
    /// checkpoint. What
    /// [`CheckpointWatch::wake_on`](crate::processing::CheckpointWatch::wake_on) takes, so
    /// that a process waiting for another one's read model wakes as soon as it moves.
    ///
    /// The channel is [`checkpoint_channel`](Self::checkpoint_channel). The connection lives
    /// and is re-opened as for [`listen`](Self::listen).
    pub async fn listen_checkpoints(&self) -> Result<watch::Receiver<u64>, ListenError> {
        let channel = self
            .inner
            .config
            .notify
            .as_ref()
            .map(checkpoint_channel)
            .ok_or(ListenError::NotConfigured)?;
        self.listen_to(channel).await
    }

    /// The channel checkpoint commits notify, when notifications are configured: the
    /// configured channel with `_checkpoints` appended (or, when that would pass PostgreSQL's
    /// 63 bytes, `cqrs_checkpoints_` and a hash of the channel).
    pub fn checkpoint_channel(&self) -> Option<String> {
        self.inner
            .config
            .notify
            .as_ref()
            .map(|channel| checkpoint_channel(channel).as_str().to_owned())
    }

    async fn listen_to(&self, channel: Ident) -> Result<watch::Receiver<u64>, ListenError> {
        let connector = self.inner.connector.clone();
        let listening = listen_on(&connector, &channel).await?;
        let (sender, receiver) = watch::channel(0);
        tokio::spawn(forward(connector, channel, listening, sender));
        Ok(receiver)
    }
}

/// The channel of checkpoint commits, derived from the appends' `channel`.
pub(super) fn checkpoint_channel(channel: &Ident) -> Ident {
    let derived = format!("{}_checkpoints", channel.as_str());
    Ident::new(&derived).unwrap_or_else(|_| {
        let hash = cqrs_lock::fnv1a(0xcbf2_9ce4_8422_2325, channel.as_str().as_bytes());
        // 17 + 16 characters of `[a-z0-9_]`: always a valid identifier.
        Ident::new(&format!("cqrs_checkpoints_{hash:016x}")).unwrap_or_else(|_| channel.clone())
    })
}

/// Opens a connection and runs `LISTEN channel` on it (driving the connection meanwhile).
async fn listen_on(connector: &Connector, channel: &Ident) -> Result<Listening, StoreError> {
    let (client, mut connection) = connector.connect().await?;
    let listen = format!("LISTEN {channel}");
    {
        let mut listening = std::pin::pin!(client.batch_execute(&listen));
        loop {
            tokio::select! {
                done = &mut listening => {
                    done.map_err(StoreError::backend)?;
                    break;
                }
                message = std::future::poll_fn(|cx| connection.poll_message(cx)) => match message {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(StoreError::backend(e)),
                    None => return Err(StoreError::backend("the listening connection closed")),
                },
            }
        }
    }
    Ok(Listening {
        _client: client,
        connection,
    })
}

/// Forwards notifications to `sender` until every receiver is gone, re-opening the
/// connection when it breaks.
async fn forward(
    connector: Connector,
    channel: Ident,
    mut listening: Listening,
    sender: watch::Sender<u64>,
) {
    loop {
        let broken = loop {
            tokio::select! {
                () = sender.closed() => return,
                message = std::future::poll_fn(|cx| listening.connection.poll_message(cx)) => match message {
                    Some(Ok(AsyncMessage::Notification(note))) => {
                        // The payload is a position; anything else still wakes the receivers.
                        let position = note.payload().parse().unwrap_or(0);
                        sender.send_modify(|last| *last = (*last).max(position));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break e.to_string(),
                    None => break "closed".to_owned(),
                },
            }
        };
        tracing::warn!(%broken, channel = channel.as_str(), "PostgreSQL listener broke; re-opening");
        let mut delay = Duration::from_millis(100);
        loop {
            tokio::select! {
                () = sender.closed() => return,
                () = tokio::time::sleep(delay) => {}
            }
            match listen_on(&connector, &channel).await {
                Ok(reopened) => {
                    listening = reopened;
                    // Notifications may have been missed while disconnected.
                    sender.send_modify(|_| {});
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, "re-opening the PostgreSQL listener failed");
                    delay = (delay * 2).min(MAX_RECONNECT_DELAY);
                }
            }
        }
    }
}
