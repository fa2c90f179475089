//! Projections: read models folded from the global event log, and the queries they answer.
//!
//! `#[projection(...)]` on an `impl` block turns a plain struct into a [`Projection`]: a named,
//! versioned fold of the events of one or several sources, each an event enum or an aggregate
//! (which stands for its event enum and makes its streams strict: see
//! [`Projection::project`]). Every event of those enums is
//! either handled by an `#[on]` method or listed in `ignore(...)`; a new variant that nobody
//! decided about is a compile error naming the projection and the event. `#[query]` methods make
//! the projection answer typed queries ([`Answers`]).
//!
//! A [`ProjectionRunner`] (a [`Runner`](crate::processing::Runner) whose handler is a
//! [`ReadModel`]) feeds the projection from an [`EventStore`](crate::store::EventStore):
//! catch-up in batches from the stored checkpoint, then live (poll with back-off, plus a wake-up
//! after local commits). Where the read model and the checkpoint commit together
//! ([`InMemoryReadModel`], [`SqlReadModel`]), each event's effect is in the model exactly once.
//! Where they cannot ([`CheckpointedReadModel`], whose checkpoint lives in a separate
//! [`CheckpointStore`](crate::store::CheckpointStore)), delivery is at least once and a guard
//! on the event's cursor drops re-deliveries.
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

mod as_of;
mod handler;
mod query;
mod read_model;
mod sql;

pub use as_of::{UpTo, as_of};
pub use query::Answers;
pub use read_model::{
    Applied, Batch, CheckpointedReadModel, Delivery, InMemoryReadModel, ReadModel, Step,
};
pub use sql::{SqlProjection, SqlReadModel};

pub use crate::processing::{
    ErrorPolicy, EventMeta, Lag, RunError, RunState, RunnerHandle, Running, WaitError,
};

// Generated-code support, re-exported here so that compiler messages name them in the DSL's
// words (`ProjectionSource`, not `cqrs_runtime::__private::ProjectionSource`).
#[doc(hidden)]
pub use crate::__private::{ProjectionSource, ResetToDefault, SourceEvent};

use crate::aggregate::Apply;
use crate::event::DecodeError;
use crate::store::{EventFilter, StoredEvent};

/// A [`Runner`](crate::processing::Runner) of the read model `M` fed by the source `S` (an
/// event store), holding leases from `L`: `ProjectionRunner::new(store, model)`.
pub type ProjectionRunner<S, M, L = crate::store::InMemoryLeases> =
    crate::processing::Runner<M, S, L>;

/// What [`Projection::project`] did with one stored event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The event belongs to one of the projection's sources and went through its decision
    /// (an `#[on]` handler, or `ignore(...)`).
    Applied,
    /// The event belongs to no source of the projection: skipped. Only an event outside the
    /// streams of the projection's aggregate sources is foreign (see [`Projection::project`]).
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
    ///
    /// The sources are what `events = ...` names: event enums, or aggregates (standing for
    /// their event enums). An event whose wire name no source knows is
    /// - an error ([`DecodeError::UnknownEventType`], which goes to the runner's
    ///   [`ErrorPolicy`]) when its stream is a stream of an aggregate source: that stream holds
    ///   only the aggregate's events, and loading the aggregate fails on the same row (a newer
    ///   binary wrote an event type this one does not know). The same holds for another
    ///   source's event found in that stream;
    /// - [`Outcome::Foreign`] (skipped) in any other stream. With an event enum as the source,
    ///   every stream is such a stream: name the aggregate (`events = BankAccount` rather than
    ///   `events = AccountEvent`) to make its streams strict.
    fn project(
        &mut self,
        event: &StoredEvent,
        meta: &EventMeta<'_>,
        tx: &mut Self::Transaction,
    ) -> Result<Outcome, DecodeError>;

    /// The reset hook of a rebuild: clears the read model (`Default`, or `reset = path`).
    fn reset(&mut self);

    /// The events of the projection's sources, which its runner reads (see
    /// [`Handler::filter`](crate::processing::Handler::filter)): for each source, every
    /// wire name its event enum decodes, and, for an aggregate source, every event of its
    /// streams. `None` (the default of a hand-written impl): every event. Reading through the
    /// filter gives the same model as reading everything: the events it leaves out are the
    /// ones [`project`](Projection::project) skips as [`Outcome::Foreign`].
    fn filter() -> Option<EventFilter> {
        None
    }
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
pub(crate) const fn fingerprint(name: &str, version: u32, handled: &[&str]) -> u64 {
    let mut sum =
        cqrs_lock::fnv1a(0xcbf2_9ce4_8422_2325, name.as_bytes()) ^ (version as u64).rotate_left(32);
    let mut i = 0;
    while i < handled.len() {
        sum = sum.wrapping_add(cqrs_lock::fnv1a(
            0x8422_2325_cbf2_9ce4,
            handled[i].as_bytes(),
        ));
        i += 1;
    }
    sum
}
