//! Events beyond the service: a store's log published to NATS JetStream, and projections
//! and reactions of other services fed from it.
//!
//! - [`Relay`] (the outbox relay): follows an event store's log in commit order (on
//!   PostgreSQL, the gap-safe reader), publishes each event to JetStream with its envelope
//!   ([`envelope`]) and `Nats-Msg-Id` = the event id, awaits the acknowledgments, then moves
//!   its checkpoint in the store. A [`Runner`](cqrs_runtime::processing::Runner) drives it:
//!   one active relay per store through the store's leases, others standing by, transient
//!   failures retried with back-off. [`ensure_stream`] creates the stream from a
//!   [`StreamConfig`] or checks it.
//! - [`JetStreamSource`]: a durable pull consumer as the [`Source`](cqrs_runtime::processing::Source)
//!   of a [`ProjectionRunner`](cqrs_runtime::projection::ProjectionRunner) or a reaction's
//!   runner in another service. Its events carry the publishing store's cursors, so the
//!   runner's checkpoint drops redeliveries; messages are acknowledged after the handler's
//!   transaction committed.
//!
//! # Failure semantics
//!
//! - **Relay killed between the acknowledgments and its checkpoint**: the next relay
//!   publishes the batch again; JetStream drops the copies whose `Nats-Msg-Id` it saw within
//!   the stream's duplicate window ([`StreamConfig::duplicate_window`]). A copy published
//!   after the window is stored again, and a consumer's checkpoint drops it.
//! - **NATS down or restarted**: publishing and pulling fail with
//!   [`StoreError::Unavailable`](cqrs_runtime::store::StoreError::Unavailable); the runners
//!   wait (their [`Backoff`](cqrs_runtime::processing::Backoff)) and go on where they were.
//!   Nothing is checkpointed before JetStream acknowledged it.
//! - **Consumer killed between its commit and its acknowledgments**: the messages are
//!   delivered again after [`SourceConfig::ack_wait`]; the checkpoint drops them.
//! - **Consumer killed in the middle of a batch**: nothing of the batch was committed; the
//!   messages are delivered again, and the chain check ([`SourceConfig::verify_chain`]) holds
//!   back the later messages until they are.
//! - **A message that cannot be read**: with a readable cursor, it goes through the runner's
//!   [`ErrorPolicy`](cqrs_runtime::processing::ErrorPolicy) (a dead letter under
//!   `SkipAndRecord`); a payload the generated decoder refuses goes the same way. A message
//!   that names no cursor is a [`Foreign`] one.
//!
//! # Example
//!
//! ```no_run
//! use cqrs_nats::{JetStreamSource, Relay, RelayConfig, SourceConfig};
//! use cqrs_runtime::sqlite::SqliteEventStore;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = SqliteEventStore::open("bank.sqlite").await?;
//! let jetstream = async_nats::jetstream::new(async_nats::connect("127.0.0.1:4222").await?);
//!
//! // Service A: publish the store's events to the stream `BANK`, subjects `bank.>`.
//! let relay = Relay::start(jetstream.clone(), store.clone(), RelayConfig::new("BANK", "bank")).await?;
//! let relay = relay
//!     .runner(store.clone())
//!     .with_leases(store.clone())
//!     .standby()
//!     .spawn();
//!
//! // Service B: a durable consumer as a projection runner's source.
//! let source = JetStreamSource::connect(&jetstream, "BANK", SourceConfig::new("balances")).await?;
//! // ProjectionRunner::new(source, model).spawn();
//! # drop((relay, source));
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

pub mod envelope;
mod error;
mod relay;
mod setup;
mod source;
mod stream;
mod subject;

pub use error::NatsError;
pub use relay::{Relay, RelayConfig};
pub use setup::SETUP_PATIENCE;
pub use source::{Foreign, JetStreamSource, SourceConfig};
pub use stream::{Retention, Storage, StreamConfig, ensure_stream};
pub use subject::{SubjectFn, Subjects, token};
