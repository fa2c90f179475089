//! Projections: read models folded from the global event log, and the queries they answer.
//!
//! `#[projection(...)]` on an `impl` block turns a plain struct into a [`Projection`]: a named,
//! versioned fold of the events of one or several event enums. Every event of those enums is
//! either handled by an `#[on]` method or listed in `ignore(...)`; a new variant that nobody
//! decided about is a compile error naming the projection and the event. `#[query]` methods make
//! the projection answer typed queries ([`Answers`]).
//!
//! A [`ProjectionRunner`] feeds the projection from an [`EventStore`](crate::store::EventStore):
//! catch-up in batches from the stored checkpoint, then live (poll with back-off, plus a wake-up
//! after local commits). Where the read model and the checkpoint live in one store
//! ([`InMemoryReadModel`], or a SQL store implementing [`ReadModelStore`]), each event's effect
//! and the checkpoint commit together: exactly once. Where they cannot ([`AtLeastOnce`]),
//! delivery is at least once and an idempotency guard on the event's cursor drops re-deliveries.
//!
//! ```
//! use cqrs_runtime::prelude::*;
//! use cqrs_runtime::projection::{EventMeta, InMemoryReadModel, ProjectionRunner};
//! use serde::{Deserialize, Serialize};
//! use std::collections::BTreeMap;
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
//! #[event(name = "item_added", version = 1)]
//! pub struct ItemAdded { pub sku: String, pub qty: u32 }
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
//! #[event(name = "cart_checked_out", version = 1)]
//! pub struct CheckedOut {}
//!
//! #[derive(Debug, Clone, PartialEq, EventEnum)]
//! pub enum CartEvent { Added(ItemAdded), CheckedOut(CheckedOut) }
//!
//! /// A query: how many of `sku` were put in carts.
//! pub struct Demand(pub &'static str);
//!
//! #[derive(Debug, Default, Clone, PartialEq)]
//! pub struct DemandBySku { pub qty: BTreeMap<String, u32>, pub last_cart: String }
//!
//! #[projection(name = "demand_by_sku", events = CartEvent, ignore(CheckedOut))]
//! impl DemandBySku {
//!     #[on]
//!     fn added(&mut self, e: &ItemAdded, meta: &EventMeta) {
//!         *self.qty.entry(e.sku.clone()).or_default() += e.qty;
//!         self.last_cart = meta.stream_id.to_owned();
//!     }
//!
//!     #[query]
//!     fn demand(&self, q: Demand) -> u32 {
//!         self.qty.get(q.0).copied().unwrap_or(0)
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! use cqrs_runtime::store::NewEvent;
//! let store = InMemoryEventStore::new();
//! for (cart, qty) in [("cart-1", 2), ("cart-2", 3)] {
//!     let added = CartEvent::Added(ItemAdded { sku: "tea".into(), qty }).encode()?;
//!     store.append("cart", cart, ExpectedVersion::Any, vec![NewEvent::from_encoded(added, Metadata::new())]).await?;
//! }
//! let model = InMemoryReadModel::<DemandBySku>::new();
//! let runner = ProjectionRunner::new(store.clone(), model.clone());
//! runner.catch_up().await?;
//! assert_eq!(model.query(Demand("tea")), 5);
//! assert_eq!(model.read(|m| m.last_cart.clone()), "cart-2");
//! assert_eq!(runner.handle().lag().behind, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod error;
mod model;
mod query;
mod runner;

pub use error::{ProjectionError, WaitError};
pub use model::{AtLeastOnce, Checkpoint, Delivery, InMemoryReadModel, ReadModelStore, Step};
pub use query::Answers;
pub use runner::{
    ErrorPolicy, Lag, ProjectionHandle, ProjectionRunner, RunState, RunningProjection, SkippedEvent,
};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::aggregate::Apply;
use crate::envelope::Metadata;
use crate::event::DecodeError;
use crate::store::{Cursor, StoredEvent};

/// What a handler learns about the event besides its payload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventMeta<'a> {
    /// The event's unique id (UUIDv7).
    pub event_id: Uuid,
    /// The stream type (the aggregate's name).
    pub stream_type: &'a str,
    /// The stream id (the aggregate id's `Display` form).
    pub stream_id: &'a str,
    /// The event's version within its stream, starting at 1.
    pub stream_version: u64,
    /// The event's global position.
    pub position: u64,
    /// The event's cursor in commit order (what checkpoints store).
    pub cursor: Cursor,
    /// When the event was recorded.
    pub recorded_at: DateTime<Utc>,
    /// Correlation, causation and user metadata.
    pub metadata: &'a Metadata,
}

impl<'a> EventMeta<'a> {
    /// The metadata of `stored`, read at `cursor`.
    pub fn new(stored: &'a StoredEvent, cursor: Cursor) -> Self {
        Self {
            event_id: stored.event_id,
            stream_type: &stored.stream_type,
            stream_id: &stored.stream_id,
            stream_version: stored.stream_version,
            position: stored.global_position,
            cursor,
            recorded_at: stored.recorded_at,
            metadata: &stored.metadata,
        }
    }

    /// The id shared by every command and event of one logical operation.
    pub fn correlation_id(&self) -> Uuid {
        self.metadata.correlation_id
    }

    /// The id of the message that caused this event, if known.
    pub fn causation_id(&self) -> Option<Uuid> {
        self.metadata.causation_id
    }
}

/// What [`Projection::project`] did with one stored event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The event belongs to one of the projection's sources and went through its decision
    /// (an `#[on]` handler, or `ignore(...)`).
    Applied,
    /// The event belongs to no source of the projection (another aggregate's stream).
    Foreign,
}

/// A named, versioned read model folded from events. Implemented by `#[projection(...)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a projection",
    label = "put `#[projection(name = \"...\", events = ...)]` on an `impl {Self}` block"
)]
pub trait Projection: Send + Sync + 'static {
    /// The stable identity: the key of the checkpoint and of the runner's lease.
    const NAME: &'static str;
    /// The version the user bumps when the read model's shape or meaning changes.
    const VERSION: u32;
    /// The wire names of the handled events (what a change to calls for a rebuild).
    const HANDLED: &'static [&'static str];
    /// The fingerprint of [`Projection::NAME`], [`Projection::VERSION`] and
    /// [`Projection::HANDLED`] (order-independent). A checkpoint written under another
    /// fingerprint means the read model must be rebuilt.
    const FINGERPRINT: u64 = fingerprint(Self::NAME, Self::VERSION, Self::HANDLED);

    /// What handlers write through besides `self`: `()` for in-memory models, the store's
    /// transaction (in which the checkpoint is written too) for SQL models.
    type Transaction: Send;

    /// Decodes `event` if it belongs to a source and runs the projection's decision about it.
    fn project(
        &mut self,
        event: &StoredEvent,
        meta: &EventMeta<'_>,
        tx: &mut Self::Transaction,
    ) -> Result<Outcome, DecodeError>;

    /// The reset hook of a rebuild: clears the read model (`Default`, or `reset = path`).
    fn reset(&mut self);
}

/// The projection has decided about the event `E`: an `#[on]` handler, or `ignore(E)`.
#[diagnostic::on_unimplemented(
    message = "projection `{Self}` has not decided about the event `{E}`",
    label = "`{E}` is an event of this projection's source, but it is neither handled nor ignored",
    note = "add `#[on] fn ...(&mut self, event: &{E}, meta: &EventMeta)` to the `#[projection]` impl of `{Self}`, or list `{E}` in its `ignore(...)`"
)]
pub trait On<E>: Projection {
    /// Runs the decision about one event.
    fn on(&mut self, event: &E, meta: &EventMeta<'_>, tx: &mut Self::Transaction);
}

/// A projection in the middle of one event: how the event enum's exhaustive dispatch reaches
/// the projection's [`On`] impls (one per variant, or it does not compile).
pub struct Projecting<'a, 'm, P: Projection> {
    projection: &'a mut P,
    meta: &'a EventMeta<'m>,
    tx: &'a mut P::Transaction,
}

impl<'a, 'm, P: Projection> Projecting<'a, 'm, P> {
    /// Bundles a projection with the event's metadata and the transaction.
    #[inline]
    pub fn new(projection: &'a mut P, meta: &'a EventMeta<'m>, tx: &'a mut P::Transaction) -> Self {
        Self {
            projection,
            meta,
            tx,
        }
    }
}

impl<P: On<E>, E> Apply<E> for Projecting<'_, '_, P> {
    #[inline]
    fn apply_event(&mut self, event: &E) {
        self.projection.on(event, self.meta, self.tx);
    }
}

/// The order-independent fingerprint of a projection's identity (FNV-1a per part, summed).
pub const fn fingerprint(name: &str, version: u32, handled: &[&str]) -> u64 {
    let mut sum = fnv1a(name.as_bytes(), 0xcbf2_9ce4_8422_2325) ^ (version as u64).rotate_left(32);
    let mut i = 0;
    while i < handled.len() {
        sum = sum.wrapping_add(fnv1a(handled[i].as_bytes(), 0x8422_2325_cbf2_9ce4));
        i += 1;
    }
    sum
}

const fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    let mut hash = seed;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}
