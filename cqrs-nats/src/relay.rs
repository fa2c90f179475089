//! The relay: the store's log, in commit order, published to JetStream.

use std::sync::{Arc, Mutex};

use async_nats::jetstream::{self, context::PublishErrorKind};
use cqrs_runtime::processing::reaction::ReactionError;
use cqrs_runtime::processing::{ErrorPolicy, Handled, Handler, RunError, Runner, Source, Tick};
use cqrs_runtime::store::{
    Checkpoint, CheckpointCommit, CheckpointStore, Cursor, DeadLetter, StoreError, StoredEvent,
};

use crate::NatsError;
use crate::envelope;
use crate::stream::{StreamConfig, ensure_stream};
use crate::subject::{Subjects, valid_prefix};

/// The identity a relay stamps on its checkpoint (see [`Handler::identity`]): the envelope
/// format, and a fixed fingerprint.
const IDENTITY: (u32, u64) = (envelope::FORMAT, 0x6e61_7473_7265_6c61);

/// What a [`Relay`] publishes, and where.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The relay's name: the key of its checkpoint and lease in the store
    /// (`nats-relay.<stream>` by default). One relay per name is active at a time.
    pub name: String,
    /// The JetStream stream, created or checked when the relay starts.
    pub stream: StreamConfig,
    /// The subject of each event.
    pub subjects: Subjects,
}

impl RelayConfig {
    /// Publishes to `<prefix>.<stream_type>.<event_type>` in the stream `stream` (created with
    /// [`StreamConfig::new`] if it does not exist), under the name `nats-relay.<stream>`.
    pub fn new(stream: impl Into<String>, prefix: impl Into<String>) -> Self {
        let stream = stream.into();
        let prefix = prefix.into();
        Self {
            name: format!("nats-relay.{stream}"),
            stream: StreamConfig::new(stream, &prefix),
            subjects: Subjects::by_type(prefix),
        }
    }

    /// Under another name (two relays of one store into two streams).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// With this stream configuration.
    pub fn stream(mut self, stream: StreamConfig) -> Self {
        self.stream = stream;
        self
    }

    /// With these subjects.
    pub fn subjects(mut self, subjects: Subjects) -> Self {
        self.subjects = subjects;
        self
    }
}

/// Publishes a store's events to JetStream, in the store's commit order, and moves its
/// checkpoint once JetStream acknowledged them.
///
/// A relay is a [`Handler`]: a [`Runner`] drives it from the store (any [`Source`]: the
/// store's log, PostgreSQL's gap-safe commit-order reader), so it catches up, follows the log
/// live, holds a lease (one active relay per name, others [standing by](Runner::standby)),
/// and retries transient failures with back-off like every runner. Build one with
/// [`Relay::start`] and drive it with [`Relay::runner`].
///
/// Each batch is published pipelined: every message is sent before the first acknowledgment
/// is awaited, then the acknowledgments are awaited in order, then the checkpoint is
/// committed in the store (fenced, like every runner's). Each message carries
/// `Nats-Msg-Id` = the event id, so a batch published again (a relay killed between the
/// acknowledgments and its checkpoint, a retried batch) is dropped by JetStream within the
/// stream's duplicate window. Messages go out on one connection in log order, so JetStream
/// stores them in that order; when a batch is published again after a failure, a message
/// whose first publish was lost may land after later ones, and a [`JetStreamSource`]'s chain
/// check puts it back in order.
///
/// [`JetStreamSource`]: crate::JetStreamSource
///
/// An event JetStream refuses for good (larger than the server's `max_payload`, a custom
/// subject that is not valid) goes through the runner's [`ErrorPolicy`]: `Stop` ends the
/// relay before it (the events before it are committed), `SkipAndRecord` records it as a
/// dead letter in the checkpoint store and goes on. Any other failure (the server down or
/// restarting, no acknowledgment in time) is [`StoreError::Unavailable`]: the runner waits
/// and publishes the batch again.
pub struct Relay<C> {
    jetstream: jetstream::Context,
    checkpoints: C,
    name: String,
    subjects: Subjects,
    /// The cursor of the last event published (the envelope's `prev` of the next one).
    prev: Mutex<Cursor>,
    metrics: Arc<Metrics>,
}

struct Metrics {
    published: metrics::Counter,
    duplicates: metrics::Counter,
}

impl<C: CheckpointStore> Relay<C> {
    /// A relay publishing with `jetstream`, keeping its checkpoint in `checkpoints` (usually
    /// the event store itself). Creates the stream, or checks it
    /// ([`NatsError::StreamMismatch`]).
    pub async fn start(
        jetstream: jetstream::Context,
        checkpoints: C,
        config: RelayConfig,
    ) -> Result<Self, NatsError> {
        if config.name.is_empty() {
            return Err(NatsError::Config("a relay needs a name".to_owned()));
        }
        if let Subjects::ByType { prefix } = &config.subjects
            && !valid_prefix(prefix)
        {
            return Err(NatsError::Config(format!(
                "`{prefix}` is not a subject prefix (tokens separated by `.`, no wildcard or whitespace)"
            )));
        }
        ensure_stream(&jetstream, &config.stream).await?;
        let labels = [("relay", config.name.clone())];
        let metrics = Arc::new(Metrics {
            published: metrics::counter!("cqrs_nats_relay_published_total", &labels),
            duplicates: metrics::counter!("cqrs_nats_relay_duplicates_total", &labels),
        });
        Ok(Self {
            jetstream,
            checkpoints,
            name: config.name,
            subjects: config.subjects,
            prev: Mutex::new(Cursor::START),
            metrics,
        })
    }

    /// A runner that drives this relay from `source` (the event store). Configure it like
    /// any runner: [`with_leases`](Runner::with_leases) (the store's leases, so that one relay
    /// is active across processes), [`standby`](Runner::standby), [`batch_size`](Runner::batch_size)
    /// (how many messages are in flight at once), [`wake_on`](Runner::wake_on).
    pub fn runner<S: Source>(self, source: S) -> Runner<Self, S> {
        Runner::new(source, self)
    }

    fn prev(&self) -> Cursor {
        self.prev.lock().map(|p| *p).unwrap_or(Cursor::START)
    }

    fn set_prev(&self, cursor: Cursor) {
        if let Ok(mut prev) = self.prev.lock() {
            *prev = cursor;
        }
    }

    /// Sends `event`; `Ok(Err(reason))` when JetStream refuses it for good.
    async fn send(
        &self,
        cursor: Cursor,
        prev: Cursor,
        event: &StoredEvent,
    ) -> Result<Result<jetstream::context::PublishAckFuture, String>, StoreError> {
        let subject = self.subjects.subject(event);
        if !valid_subject(&subject) {
            return Ok(Err(format!("`{subject}` is not a valid subject")));
        }
        let (headers, body) = envelope::encode(cursor, prev, event).map_err(StoreError::backend)?;
        let publish = jetstream::message::PublishMessage::build()
            .headers(headers)
            .payload(body);
        match self.jetstream.send_publish(subject, publish).await {
            Ok(ack) => Ok(Ok(ack)),
            Err(error) if error.kind() == PublishErrorKind::MaxPayloadExceeded => {
                Ok(Err(error.to_string()))
            }
            Err(error) => Err(StoreError::unavailable(error)),
        }
    }

    /// Awaits the acknowledgments in order.
    async fn confirm(
        &self,
        acks: Vec<jetstream::context::PublishAckFuture>,
    ) -> Result<(), StoreError> {
        let published = acks.len() as u64;
        let mut duplicates = 0;
        for ack in acks {
            let ack = ack.await.map_err(StoreError::unavailable)?;
            duplicates += u64::from(ack.duplicate);
        }
        self.metrics.published.increment(published);
        self.metrics.duplicates.increment(duplicates);
        Ok(())
    }
}

/// Whether NATS takes `subject`: non-empty tokens, no whitespace, wildcards only as whole
/// tokens (publishing to a wildcard is refused).
fn valid_subject(subject: &str) -> bool {
    !subject.is_empty()
        && subject.split('.').all(|t| {
            !t.is_empty()
                && t != "*"
                && t != ">"
                && !t.chars().any(|c| c.is_whitespace() || c.is_control())
        })
}

impl<C: CheckpointStore> Handler for Relay<C> {
    fn name(&self) -> &str {
        &self.name
    }

    fn identity(&self) -> (u32, u64) {
        IDENTITY
    }

    async fn checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        self.checkpoints.checkpoint(&self.name).await
    }

    async fn claim(&self) -> Result<Checkpoint, StoreError> {
        let claim = self.checkpoints.claim(&self.name).await?;
        self.set_prev(claim.cursor);
        Ok(claim)
    }

    async fn handle(
        &self,
        fence: u64,
        batch: &[(Cursor, StoredEvent)],
        policy: ErrorPolicy,
    ) -> Result<Handled, StoreError> {
        let mut prev = self.prev();
        let mut acks = Vec::with_capacity(batch.len());
        let mut letters = Vec::new();
        let mut reached = None;
        let mut stopped = None;
        for (cursor, event) in batch {
            match self.send(*cursor, prev, event).await? {
                Ok(ack) => {
                    acks.push(ack);
                    prev = *cursor;
                }
                Err(reason) if policy == ErrorPolicy::SkipAndRecord => {
                    tracing::warn!(position = cursor.position, %reason, "not published: dead letter");
                    letters.push(DeadLetter::of(*cursor, event, &reason));
                }
                Err(reason) => {
                    stopped = Some(RunError::handler(
                        &self.name,
                        event,
                        ReactionError::failed(reason),
                    ));
                    break;
                }
            }
            reached = Some(*cursor);
        }
        self.confirm(acks).await?;
        let processed = batch
            .iter()
            .take_while(|(c, _)| reached.is_some_and(|r| *c <= r))
            .count() as u64;
        let dead_lettered = letters.len() as u64;
        if let Some(cursor) = reached {
            let (version, fingerprint) = IDENTITY;
            let mut commit = CheckpointCommit::advance(fence, cursor, version, fingerprint);
            commit.record = letters;
            self.checkpoints.commit(&self.name, commit).await?;
            self.set_prev(prev);
        }
        Ok(Handled {
            reached,
            processed,
            dead_lettered,
            orphans: 0,
            stopped,
        })
    }

    async fn retry(
        &self,
        fence: u64,
        event: &(Cursor, StoredEvent),
    ) -> Result<Handled, StoreError> {
        let (cursor, stored) = event;
        // Published out of the log's order: its `prev` is the event before it, so a consumer
        // whose checkpoint is past it drops it.
        match self.send(*cursor, cursor.before(), stored).await? {
            Ok(ack) => self.confirm(vec![ack]).await?,
            Err(reason) => {
                return Ok(Handled {
                    stopped: Some(RunError::handler(
                        &self.name,
                        stored,
                        ReactionError::failed(reason),
                    )),
                    ..Handled::default()
                });
            }
        }
        self.checkpoints
            .commit(
                &self.name,
                CheckpointCommit::keep(fence, vec![cursor.position]),
            )
            .await?;
        Ok(Handled {
            reached: Some(*cursor),
            processed: 1,
            ..Handled::default()
        })
    }

    async fn commit(&self, commit: CheckpointCommit) -> Result<Checkpoint, StoreError> {
        self.checkpoints.commit(&self.name, commit).await
    }

    /// Publishes the whole log again from the start (JetStream drops what it still holds
    /// within the duplicate window).
    async fn reset(&self, fence: u64, _head: Cursor) -> Result<Checkpoint, StoreError> {
        let (version, fingerprint) = IDENTITY;
        let checkpoint = self
            .checkpoints
            .commit(
                &self.name,
                CheckpointCommit::reset(fence, Cursor::START, version, fingerprint),
            )
            .await?;
        self.set_prev(checkpoint.cursor);
        Ok(checkpoint)
    }

    async fn tick(&self, _fence: u64, _policy: ErrorPolicy) -> Result<Tick, StoreError> {
        Ok(Tick::default())
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.checkpoints.dead_letters(&self.name).await
    }
}

#[cfg(test)]
mod tests {
    use super::valid_subject;

    #[test]
    fn subjects_are_checked() {
        assert!(valid_subject("a.b.c"));
        assert!(!valid_subject("a..b"));
        assert!(!valid_subject("a.*"));
        assert!(!valid_subject("a b"));
        assert!(!valid_subject(""));
    }
}
