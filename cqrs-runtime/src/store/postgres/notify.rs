//! LISTEN/NOTIFY as an opt-in wake-up hint (see [`PostgresConfig::notify`]).
//!
//! [`PostgresConfig::notify`]: super::PostgresConfig::notify

use std::time::Duration;

use tokio::sync::watch;
use tokio_postgres::tls::NoTlsStream;
use tokio_postgres::{AsyncMessage, Client, Connection, NoTls, Socket};

use super::PostgresEventStore;
use crate::store::StoreError;
use crate::store::names::Ident;

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
    connection: Connection<Socket, NoTlsStream>,
}

impl PostgresEventStore {
    /// Listens to the store's notification channel on a dedicated connection and returns a
    /// receiver of the last notified global position: a wake-up hint for
    /// [`ProjectionRunner::wake_on`](crate::projection::ProjectionRunner::wake_on), which
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
        let pg = self.inner.config.pg.clone();
        let listening = listen_on(&pg, &channel).await?;
        let (sender, receiver) = watch::channel(0);
        tokio::spawn(forward(pg, channel, listening, sender));
        Ok(receiver)
    }
}

/// Opens a connection and runs `LISTEN channel` on it (driving the connection meanwhile).
async fn listen_on(pg: &tokio_postgres::Config, channel: &Ident) -> Result<Listening, StoreError> {
    let (client, mut connection) = pg.connect(NoTls).await.map_err(StoreError::backend)?;
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
    pg: tokio_postgres::Config,
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
            match listen_on(&pg, &channel).await {
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
