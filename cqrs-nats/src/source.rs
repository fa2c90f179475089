//! The consumer side: a durable JetStream pull consumer as a runner's [`Source`].

use std::collections::VecDeque;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use cqrs_runtime::processing::Source;
use cqrs_runtime::store::{CorruptEvent, Cursor, EventFilter, ReadBatch, StoreError, StoredEvent};
use futures_util::StreamExt;
use tokio::sync::Mutex;

use crate::NatsError;
use crate::envelope::{self, Decoded};
use crate::setup::{Refusal, passing, patiently};

/// What a [`JetStreamSource`] does with a message that names no cursor (not written by a
/// relay: a foreign publisher on the stream's subjects).
///
/// A message that names its cursor but cannot be read otherwise goes to the runner as an
/// unreadable event ([`StoreError::Corrupt`]), through its
/// [`ErrorPolicy`](cqrs_runtime::processing::ErrorPolicy): `Stop` halts before it,
/// `SkipAndRecord` records a dead letter and goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Foreign {
    /// Stop the runner with [`StoreError::Corrupt`] (the message stays unacknowledged). The
    /// default.
    #[default]
    Stop,
    /// Terminate the message (JetStream delivers it no more; it stays in the stream), log a
    /// warning, count it in `cqrs_nats_source_foreign_total`, and go on.
    Terminate,
}

/// The durable consumer a [`JetStreamSource`] reads through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceConfig {
    /// The durable consumer's name: every instance of one read model (or reaction) uses the
    /// same one; different read models use different ones.
    pub durable: String,
    /// Only the messages on this subject (wildcards allowed); `None`: the whole stream. A
    /// filter that leaves out events of the relay needs [`verify_chain`](Self::verify_chain)
    /// off.
    pub filter_subject: Option<String>,
    /// How long JetStream waits for an acknowledgment before delivering a message again:
    /// longer than the slowest batch takes to commit.
    pub ack_wait: Duration,
    /// The most messages delivered and not yet acknowledged (at least the runner's batch
    /// size).
    pub max_ack_pending: i64,
    /// Check that the messages continue the relay's chain from the runner's checkpoint (each
    /// envelope names the event published before it): a message whose predecessor was not
    /// seen is held back (negatively acknowledged with [`gap_retry`](Self::gap_retry)) until
    /// the predecessor is delivered, so that no event is passed over, even when a standby
    /// instance takes over while the messages delivered to its killed predecessor wait for
    /// redelivery. On by default; turn it off for a consumer that sees only part of the
    /// relay's subjects, or a stream that no longer holds the relay's first events (such a
    /// consumer may skip the messages a killed instance held).
    pub verify_chain: bool,
    /// How long a message held back by the chain check waits before its next delivery.
    pub gap_retry: Duration,
    /// What to do with a message that names no cursor.
    pub foreign: Foreign,
    /// How long a pull may take before it is given up as a transient failure (a request
    /// lost with its connection is never answered).
    pub fetch_timeout: Duration,
}

impl SourceConfig {
    /// The durable consumer `durable` on the whole stream: acknowledgments within 30 s, at
    /// most 10 000 pending, the chain checked, held-back messages retried after 1 s, foreign
    /// messages stopping the runner, pulls given up after 5 s.
    pub fn new(durable: impl Into<String>) -> Self {
        Self {
            durable: durable.into(),
            filter_subject: None,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 10_000,
            verify_chain: true,
            gap_retry: Duration::from_secs(1),
            foreign: Foreign::Stop,
            fetch_timeout: Duration::from_secs(5),
        }
    }

    /// Only the messages on `subject`.
    pub fn filter_subject(mut self, subject: impl Into<String>) -> Self {
        self.filter_subject = Some(subject.into());
        self
    }

    /// With this acknowledgment deadline.
    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    /// With or without the chain check.
    pub fn verify_chain(mut self, verify: bool) -> Self {
        self.verify_chain = verify;
        self
    }

    /// With this wait before a held-back message is delivered again.
    pub fn gap_retry(mut self, wait: Duration) -> Self {
        self.gap_retry = wait;
        self
    }

    /// With this treatment of foreign messages.
    pub fn foreign(mut self, foreign: Foreign) -> Self {
        self.foreign = foreign;
        self
    }
}

/// A message delivered to this source and not yet acknowledged.
struct Held {
    cursor: Cursor,
    message: jetstream::Message,
    /// The event, or why it cannot be read.
    event: Result<StoredEvent, String>,
}

#[derive(Default)]
struct State {
    /// In cursor order: what the runner was given (or will be) and has not committed.
    held: VecDeque<Held>,
    /// The newest cursor delivered.
    last: Cursor,
    /// How many messages JetStream had left for the consumer at the last delivery.
    pending: u64,
    /// A foreign message that stops the runner once the messages before it are taken.
    foreign: Option<StoreError>,
}

/// A durable JetStream pull consumer as a [`Source`]: a [`ProjectionRunner`] or a reaction's
/// runner in another service reads the events a [`Relay`](crate::Relay) published, decoded
/// by the same generated decoders (upcasts included), with the cursor of the publishing
/// store.
///
/// - [`read`](Source::read) pulls at most `limit` messages (without waiting: the runner
///   polls, see [`Runner::poll_interval`](cqrs_runtime::processing::Runner::poll_interval))
///   and gives them to the runner in cursor order. A message at or before the runner's
///   checkpoint (a redelivery of an event already committed) is acknowledged and dropped.
/// - [`committed`](Source::committed) acknowledges the messages up to the cursor the runner
///   committed, after the handler's transaction: a process killed between the two gets them
///   again, and its checkpoint drops them. A SQL read model stays exactly once.
/// - [`head`](Source::head) is the newest cursor delivered plus the messages JetStream has
///   left for the consumer (an estimate: positions of the store's log are not dense in
///   every store).
///
/// Several instances may share one durable consumer: with the runner's leases in a shared
/// database (a [`SqlReadModel`](cqrs_runtime::projection::SqlReadModel) on PostgreSQL, the
/// same database's leases), one reads and the others stand by; the messages a killed
/// instance held are delivered again after [`SourceConfig::ack_wait`], and the chain check
/// keeps the order. Instances that each keep their own read model use one durable consumer
/// each.
///
/// The source cannot filter: the handler skips what is not its own. It cannot replay either:
/// a rebuild needs a new durable consumer (see [`JetStreamSource::delete_consumer`]), and a
/// dead letter is retried from the publishing store, not from here.
///
/// [`ProjectionRunner`]: cqrs_runtime::projection::ProjectionRunner
pub struct JetStreamSource {
    consumer: jetstream::consumer::PullConsumer,
    config: SourceConfig,
    state: Mutex<State>,
    foreign: metrics::Counter,
    held_back: metrics::Counter,
}

impl JetStreamSource {
    /// The durable consumer `config.durable` on the stream `stream`, created (delivering the
    /// whole stream, explicit acknowledgments) if it does not exist.
    pub async fn connect(
        jetstream: &jetstream::Context,
        stream: &str,
        config: SourceConfig,
    ) -> Result<Self, NatsError> {
        if config.durable.is_empty() {
            return Err(NatsError::Config(
                "a durable consumer needs a name".to_owned(),
            ));
        }
        let consumer = patiently(
            || Self::consumer(jetstream, stream, &config),
            |r: &Refusal| r.passing,
        )
        .await
        .map_err(|r| r.error)?;
        let labels = [("consumer", config.durable.clone())];
        Ok(Self {
            consumer,
            foreign: metrics::counter!("cqrs_nats_source_foreign_total", &labels),
            held_back: metrics::counter!("cqrs_nats_source_held_back_total", &labels),
            config,
            state: Mutex::new(State::default()),
        })
    }

    /// One try at the durable consumer of [`connect`](Self::connect).
    async fn consumer(
        jetstream: &jetstream::Context,
        stream: &str,
        config: &SourceConfig,
    ) -> Result<jetstream::consumer::Consumer<pull::Config>, Refusal> {
        use jetstream::stream::ConsumerErrorKind;
        let stream = jetstream
            .get_stream(stream)
            .await
            .map_err(Refusal::get_stream)?;
        stream
            .get_or_create_consumer(
                &config.durable,
                pull::Config {
                    durable_name: Some(config.durable.clone()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: config.ack_wait,
                    max_ack_pending: config.max_ack_pending,
                    deliver_policy: jetstream::consumer::DeliverPolicy::All,
                    filter_subject: config.filter_subject.clone().unwrap_or_default(),
                    ..Default::default()
                },
            )
            .await
            .map_err(|error| {
                let passing = match error.kind() {
                    ConsumerErrorKind::TimedOut | ConsumerErrorKind::Request => true,
                    ConsumerErrorKind::JetStream(e) => passing(&e),
                    _ => false,
                };
                Refusal::new(error, passing)
            })
    }

    /// Deletes the durable consumer `durable` of `stream` (to rebuild a read model from the
    /// stream's start: delete it, then [`connect`](Self::connect) again and rebuild).
    pub async fn delete_consumer(
        jetstream: &jetstream::Context,
        stream: &str,
        durable: &str,
    ) -> Result<(), NatsError> {
        let stream = jetstream
            .get_stream(stream)
            .await
            .map_err(NatsError::jetstream)?;
        stream
            .delete_consumer(durable)
            .await
            .map_err(NatsError::jetstream)?;
        Ok(())
    }

    /// The configuration.
    pub fn config(&self) -> &SourceConfig {
        &self.config
    }

    /// Pulls what JetStream has (at most `limit`) into `state.held`, in the chain from
    /// `after`.
    async fn fetch(
        &self,
        state: &mut State,
        after: Cursor,
        limit: usize,
    ) -> Result<(), StoreError> {
        // A pull request lost with a connection is never answered: the fetch gives up after
        // `fetch_timeout` (the messages it got are delivered again after `ack_wait`).
        let pull = async {
            let mut batch = self
                .consumer
                .fetch()
                .max_messages(limit)
                .messages()
                .await
                .map_err(StoreError::unavailable)?;
            let mut delivered = Vec::new();
            while let Some(message) = batch.next().await {
                delivered.push(message.map_err(StoreError::unavailable)?);
            }
            Ok::<_, StoreError>(delivered)
        };
        let delivered = tokio::time::timeout(self.config.fetch_timeout, pull)
            .await
            .map_err(|_| {
                StoreError::unavailable(NatsError::JetStream(format!(
                    "no answer to a pull request within {:?}",
                    self.config.fetch_timeout
                )))
            })??;
        let mut candidates = Vec::with_capacity(delivered.len());
        let mut delivered = delivered.into_iter();
        while let Some(message) = delivered.next() {
            if let Ok(info) = message.info() {
                state.pending = info.pending;
            }
            let (cursor, prev, event) = match envelope::decode(&message.payload) {
                Ok(Decoded {
                    cursor,
                    prev,
                    event,
                }) => (cursor, Some(prev), Ok(event)),
                Err(unreadable) => match unreadable.cursor {
                    Some(cursor) => (cursor, None, Err(unreadable.reason)),
                    None => {
                        if let Some(stop) = self.foreign_message(&message, unreadable.reason).await
                        {
                            // The messages before it go to the runner first; it and the ones
                            // after it are delivered again.
                            state.foreign = Some(stop);
                            for later in std::iter::once(message).chain(delivered.by_ref()) {
                                ack(&later, AckKind::Nak(None)).await;
                            }
                        }
                        continue;
                    }
                },
            };
            state.last = state.last.max(cursor);
            if cursor <= after {
                // Committed already: a redelivery, or a copy published again outside the
                // duplicate window.
                ack(&message, AckKind::Ack).await;
                continue;
            }
            candidates.push((cursor, prev, message, event));
        }
        candidates.sort_by_key(|(cursor, ..)| *cursor);
        let mut expect = after;
        for (cursor, prev, message, event) in candidates {
            if cursor <= expect {
                // A second copy of an event in this delivery: the first one stands for it.
                continue;
            }
            let continues = !self.config.verify_chain || prev.is_none_or(|prev| prev <= expect);
            if continues {
                expect = cursor;
                state.held.push_back(Held {
                    cursor,
                    message,
                    event,
                });
            } else {
                // An event between `expect` and this one was delivered elsewhere (to a killed
                // instance) or is late: this one waits for it.
                tracing::debug!(
                    position = cursor.position,
                    expected_after = expect.position,
                    "holding back a message whose predecessor was not delivered yet"
                );
                self.held_back.increment(1);
                ack(&message, AckKind::Nak(Some(self.config.gap_retry))).await;
            }
        }
        Ok(())
    }

    /// Terminates a foreign message, or returns the error that stops the runner.
    #[cold]
    async fn foreign_message(
        &self,
        message: &jetstream::Message,
        reason: String,
    ) -> Option<StoreError> {
        match self.config.foreign {
            Foreign::Terminate => {
                tracing::warn!(subject = %message.subject, %reason, "terminating a foreign message");
                self.foreign.increment(1);
                ack(message, AckKind::Term).await;
                None
            }
            Foreign::Stop => Some(StoreError::from(CorruptEvent {
                global_position: 0,
                cursor: None,
                stream_type: None,
                stream_id: None,
                stream_version: None,
                reason: format!("a message on `{}`: {reason}", message.subject),
            })),
        }
    }
}

/// Sends an acknowledgment; a lost one means a redelivery, which the checkpoint drops.
async fn ack(message: &jetstream::Message, kind: AckKind) {
    if let Err(error) = message.ack_with(kind).await {
        tracing::debug!(%error, "acknowledgment not sent: the message will be delivered again");
    }
}

impl Source for JetStreamSource {
    async fn read(
        &self,
        after: Cursor,
        limit: usize,
        _filter: Option<&EventFilter>,
    ) -> Result<ReadBatch, StoreError> {
        let mut state = self.state.lock().await;
        while state.held.front().is_some_and(|h| h.cursor <= after) {
            if let Some(held) = state.held.pop_front() {
                ack(&held.message, AckKind::Ack).await;
            }
        }
        if state.held.is_empty() {
            if let Some(stop) = state.foreign.take() {
                return Err(stop);
            }
            self.fetch(&mut state, after, limit.max(1)).await?;
        }
        let mut events = Vec::new();
        for held in state.held.iter().take(limit.max(1)) {
            match &held.event {
                Ok(event) => events.push((held.cursor, event.clone())),
                Err(reason) if events.is_empty() => {
                    return Err(StoreError::from(CorruptEvent {
                        global_position: held.cursor.position,
                        cursor: Some(held.cursor),
                        stream_type: None,
                        stream_id: None,
                        stream_version: None,
                        reason: reason.clone(),
                    }));
                }
                Err(_) => break,
            }
        }
        Ok(ReadBatch::unfiltered(after, events))
    }

    async fn head(&self) -> Result<Cursor, StoreError> {
        let state = self.state.lock().await;
        Ok(Cursor {
            tx: state.last.tx,
            position: state.last.position + state.pending,
        })
    }

    async fn committed(&self, through: Cursor) -> Result<(), StoreError> {
        let mut state = self.state.lock().await;
        while state.held.front().is_some_and(|h| h.cursor <= through) {
            if let Some(held) = state.held.pop_front() {
                ack(&held.message, AckKind::Ack).await;
            }
        }
        Ok(())
    }
}
