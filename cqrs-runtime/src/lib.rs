//! Compile-time checked CQRS and event sourcing.
//!
//! Annotate commands, events and an aggregate; the macros write the command enum, the command
//! dispatch, the exhaustive `apply` dispatch and the event codec, and the compiler checks the
//! rules that other frameworks check at runtime or never: an event that no `#[apply]` handles,
//! a command without a handler, a handler with the wrong shape, two variants with one wire name.
//! The generated code names runtime items only through `::cqrs_runtime::__private` (aliased as
//! `__cqrs` inside the anonymous `const` block that holds the generated items), so it survives
//! users who shadow `Result`, `Option` or the crate name.
//!
//! # The DSL
//!
//! ```
//! use cqrs_runtime::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! // Commands: one struct each, naming their aggregate; `#[id]` marks the target instance.
//! #[derive(Debug, Clone, Command)]
//! #[command(aggregate = Counter)]
//! pub struct Start { #[id] pub counter: String }
//!
//! #[derive(Debug, Clone, Command)]
//! #[command(aggregate = Counter)]
//! pub struct Add { #[id] pub counter: String, pub by: u32 }
//!
//! // Events: one struct per (wire name, version); the wire name is never the Rust path.
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
//! #[event(name = "counter_started", version = 1)]
//! pub struct Started {}
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
//! #[event(name = "counter_added", version = 1)]
//! pub struct Added { pub by: u32, pub total: u32 }
//!
//! // The stream's closed set of events: encode, decode, name constants, schema.
//! #[derive(Debug, Clone, PartialEq, EventEnum)]
//! pub enum CounterEvent { Started(Started), Added(Added) }
//!
//! #[derive(Debug, PartialEq, thiserror::Error)]
//! pub enum CounterError {
//!     #[error("{0} would overflow the counter")]
//!     Overflow(u32),
//! }
//!
//! // The aggregate: state, pure decisions (`&self`), infallible evolution (`&mut self`).
//! #[derive(Debug, Default, PartialEq)]
//! pub struct Counter { pub total: u32 }
//!
//! #[aggregate(name = "counter", id = String, events = CounterEvent, error = CounterError)]
//! impl Counter {
//!     #[command(create)]
//!     fn start(&self, _: Start) -> Result<Started, CounterError> {
//!         Ok(Started {})
//!     }
//!
//!     #[command]
//!     fn add(&self, cmd: Add) -> Result<Option<Added>, CounterError> {
//!         if cmd.by == 0 {
//!             return Ok(None); // nothing to record
//!         }
//!         let total = self.total.checked_add(cmd.by).ok_or(CounterError::Overflow(cmd.by))?;
//!         Ok(Some(Added { by: cmd.by, total }))
//!     }
//!
//!     #[apply]
//!     fn started(&mut self, _: &Started) {}
//!
//!     #[apply]
//!     fn added(&mut self, e: &Added) {
//!         self.total = e.total;
//!     }
//! }
//!
//! // The write side: load, decide, append with optimistic concurrency.
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let counters = Repository::<Counter, _>::new(InMemoryEventStore::new());
//! counters.execute(Start { counter: "c-1".into() }).await?;
//! let committed = counters.execute(Add { counter: "c-1".into(), by: 2 }).await?;
//! assert_eq!(committed.version, 2);
//! assert_eq!(committed.state.total, 2);
//! assert_eq!(committed.events[0].event, CounterEvent::Added(Added { by: 2, total: 2 }));
//!
//! let rejected = counters.execute(Add { counter: "c-1".into(), by: u32::MAX }).await;
//! assert_eq!(rejected.unwrap_err().rejection(), Some(&CounterError::Overflow(u32::MAX)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//!
//! // The test kit: given / when / then, with serialization round trips and a re-sourcing
//! // check on every `when`.
//! TestFramework::<Counter>::given([CounterEvent::Started(Started {})])
//!     .when(Add { counter: "c-1".into(), by: 3 })
//!     .then_expect_events([CounterEvent::Added(Added { by: 3, total: 3 })])
//!     .then_state(&Counter { total: 3 });
//!
//! // Wire names and the schema, for tools and review diffs.
//! assert_eq!(CounterEvent::ADDED, "counter_added");
//! let schema = cqrs_runtime::event::describe::<CounterEvent>();
//! assert!(schema.contains("counter_added v1 0x")); // name, version, shape fingerprint
//! assert!(schema.contains("(Added) { by: u32, total: u32 }"));
//! ```
//!
//! # Evolving events
//!
//! Every stored version stays a struct of its own; the enum holds the current versions, and
//! decoding goes from the stored bytes straight into the stored version's struct, then up a
//! chain of ordinary, typed steps (`From`, or `TryFrom` with a typed error).
//!
//! ```
//! use cqrs_runtime::prelude::*;
//! use cqrs_runtime::event::{Decoded, DecodeError, Split};
//! use serde::{Deserialize, Serialize};
//!
//! // Version 1, frozen: events stored last year have this shape.
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
//! #[event(name = "money_deposited", version = 1)]
//! pub struct MoneyDepositedV1 { pub amt: i64 }
//!
//! // Version 2 names its predecessor; the compiler checks the chain (1, 2, ..., N, no gaps,
//! // one struct per version, same wire name) and that a step exists.
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
//! #[event(name = "money_deposited", version = 2, upcast_from = MoneyDepositedV1)]
//! pub struct MoneyDeposited { pub amount: i64, pub currency: String }
//!
//! impl From<MoneyDepositedV1> for MoneyDeposited {
//!     fn from(v1: MoneyDepositedV1) -> Self {
//!         MoneyDeposited { amount: v1.amt, currency: "EUR".into() }
//!     }
//! }
//!
//! // A rename: a new wire name whose version 1 steps from the old event; the old name stays
//! // reserved in the enum.
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
//! #[event(name = "owner_note_added", version = 1)]
//! pub struct NoteAddedV1 { pub text: String }
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
//! #[event(name = "comment_added", version = 1, renamed_from = NoteAddedV1)]
//! pub struct CommentAdded { pub text: String }
//!
//! impl From<NoteAddedV1> for CommentAdded {
//!     fn from(v1: NoteAddedV1) -> Self { CommentAdded { text: v1.text } }
//! }
//!
//! // A split: one old event becomes several current ones.
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
//! #[event(name = "transfer_booked", version = 1)]
//! pub struct TransferBookedV1 { pub amount: i64 }
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
//! #[event(name = "money_withdrawn", version = 1)]
//! pub struct MoneyWithdrawn { pub amount: i64 }
//!
//! impl Split<AccountEvent> for TransferBookedV1 {
//!     fn split(self) -> Vec<AccountEvent> {
//!         vec![
//!             MoneyWithdrawn { amount: self.amount }.into(),
//!             MoneyDeposited { amount: self.amount, currency: "EUR".into() }.into(),
//!         ]
//!     }
//! }
//!
//! #[derive(Debug, Clone, PartialEq, EventEnum)]
//! #[event_enum(split(TransferBookedV1), retired("account_frozen"))]
//! pub enum AccountEvent {
//!     Deposited(MoneyDeposited),
//!     Withdrawn(MoneyWithdrawn),
//!     Commented(CommentAdded),
//! }
//!
//! let v1 = AccountEvent::decode("money_deposited", 1, br#"{"amt":5}"#).unwrap();
//! assert_eq!(v1, Decoded::One(MoneyDeposited { amount: 5, currency: "EUR".into() }.into()));
//!
//! let renamed = AccountEvent::decode("owner_note_added", 1, br#"{"text":"hi"}"#).unwrap();
//! assert_eq!(renamed, Decoded::One(CommentAdded { text: "hi".into() }.into()));
//!
//! let split = AccountEvent::decode("transfer_booked", 1, br#"{"amount":3}"#).unwrap();
//! assert_eq!(split.into_iter().count(), 2);
//!
//! // A retired type decodes to nothing and never reaches aggregates or projections.
//! assert_eq!(AccountEvent::decode("account_frozen", 4, b"{}").unwrap(), Decoded::Skipped);
//!
//! // An event newer than this binary is a typed error, never a panic or a silent drop.
//! let newer = AccountEvent::decode("money_deposited", 3, b"{}").unwrap_err();
//! assert!(matches!(newer, DecodeError::UnknownVersion { version: 3, known: 2, .. }));
//! ```
//!
//! ## The schema lock
//!
//! Each event version's serialized shape (field names and types, `#[serde(...)]` renames and
//! defaults, and the shapes of nested types, which `#[derive(Shape)]` describes) has a
//! fingerprint. `events.lock`, next to the crate's `Cargo.toml`, records the fingerprint of
//! every published version; `#[derive(Event)]` reads it at compile time, and a locked version
//! whose shape changed **does not compile**, naming the event and telling you to add a
//! version and a step. Old versions are frozen the same way. An event can also carry its lock
//! inline: `#[event(name = "...", version = 1, fingerprint = 0x...)]`.
//!
//! The one bless workflow: a test calls
//! [`schema::lock::assert_locked::<YourEvents>("events.lock")`](schema::lock::assert_locked),
//! which fails while a version is not recorded; `CQRS_BLESS=1 cargo test` records it; commit
//! `events.lock`. Entries are keyed by (name, version); two streams may reuse a wire name, and
//! each shape gets its own line. While `CQRS_BLESS` is set the compile-time check stands aside
//! so that the bless test can run; the lock diff is what review looks at. [`event::describe`] prints every stored shape an enum decodes, for review.
//!
//! ## Steps that need stream context
//!
//! A step sees one stored event, never the events before it. This is deliberate: every reader
//! (aggregate replay, projections reading the global log in commit order, tooling) then gets
//! the same answer from the same bytes, and decoding stays a pure, cacheable function. A value
//! that depends on history, such as a `balance_after` missing from old deposits, belongs to
//! the readers that have the history: make the field an `Option` in the new version (the step
//! fills `None`) and let `#[apply]` or the projection compute it from its own state, or run a
//! one-off migration that copies the stream with the value filled in.
//!
//! # Handlers
//!
//! | attribute | signature | notes |
//! |---|---|---|
//! | `#[command]`, `#[command(existing)]` | `fn(&self, cmd: C) -> Result<T, E>` | the stream must exist |
//! | `#[command(create)]` | same | the stream must not exist |
//! | `#[command(any)]` | same | either |
//! | with `services = S` | `[async] fn(&self, cmd: C, services: &S) -> Result<T, E>` | the only handlers that may be `async` |
//! | `#[apply]` | `fn(&mut self, event: &Ev)` | sync, infallible, one per event |
//!
//! `T` is an event of the enum, the enum itself, `Vec<_>`, `Option<_>` or `[_; N]` of those,
//! or `()` for no event. `E` is the aggregate's `error = ...` type or converts into it (as
//! with `?`).
//!
//! # Injected services
//!
//! Handlers are pure by default. A decision that needs outside information ("is this email
//! taken?") declares `services = S` on the aggregate and takes `&S` as a third argument; such
//! a handler may be `async`. The repository holds the services
//! ([`Repository::with_services`]), and the test kit takes them with
//! [`TestFramework::with_services`](testkit::TestFramework::with_services), so a test can hand
//! in a fake:
//!
//! ```
//! use cqrs_runtime::prelude::*;
//! use serde::{Deserialize, Serialize};
//! use std::collections::HashSet;
//!
//! /// What registration needs to know from outside the aggregate.
//! pub struct Directory { pub taken: HashSet<String> }
//!
//! impl Directory {
//!     async fn is_taken(&self, email: &str) -> bool { self.taken.contains(email) }
//! }
//!
//! #[derive(Debug, Clone, Command)]
//! #[command(aggregate = User)]
//! pub struct Register { #[id] pub user: String, pub email: String }
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
//! #[event(name = "user_registered", version = 1)]
//! pub struct Registered { pub email: String }
//!
//! #[derive(Debug, Clone, PartialEq, EventEnum)]
//! pub enum UserEvent { Registered(Registered) }
//!
//! #[derive(Debug, PartialEq, thiserror::Error)]
//! #[error("{0} is already taken")]
//! pub struct EmailTaken(String);
//!
//! #[derive(Debug, Default, PartialEq)]
//! pub struct User { email: String }
//!
//! #[aggregate(name = "user", id = String, events = UserEvent, error = EmailTaken, services = Directory)]
//! impl User {
//!     #[command(create)]
//!     async fn register(&self, cmd: Register, dir: &Directory) -> Result<Registered, EmailTaken> {
//!         if dir.is_taken(&cmd.email).await {
//!             return Err(EmailTaken(cmd.email));
//!         }
//!         Ok(Registered { email: cmd.email })
//!     }
//!
//!     #[apply]
//!     fn registered(&mut self, e: &Registered) { self.email = e.email.clone(); }
//! }
//!
//! let directory = Directory { taken: HashSet::from(["ann@example.com".to_string()]) };
//! TestFramework::<User>::given_no_previous_events()
//!     .with_services(directory)
//!     .when(Register { user: "u-1".into(), email: "ann@example.com".into() })
//!     .then_expect_error(EmailTaken("ann@example.com".into()));
//! ```
//!
//! # What the macros expand to
//!
//! The aggregate above is equivalent to this hand-written code (names simplified; the
//! generated code also emits the compile-time checks). The hand-written form is also the
//! baseline the benchmarks compare against.
//!
//! ```
//! # use cqrs_runtime::prelude::*;
//! # use cqrs_runtime::aggregate::{Apply, ApplyAll, Events, Handles};
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Debug, Clone, Command)]
//! # #[command(aggregate = Counter)]
//! # pub struct Start { #[id] pub counter: String }
//! # #[derive(Debug, Clone, Command)]
//! # #[command(aggregate = Counter)]
//! # pub struct Add { #[id] pub counter: String, pub by: u32 }
//! # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
//! # #[event(name = "counter_started", version = 1)]
//! # pub struct Started {}
//! # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
//! # #[event(name = "counter_added", version = 1)]
//! # pub struct Added { pub by: u32, pub total: u32 }
//! # #[derive(Debug, Clone, PartialEq, EventEnum)]
//! # pub enum CounterEvent { Started(Started), Added(Added) }
//! # #[derive(Debug, PartialEq, thiserror::Error)]
//! # #[error("overflow")]
//! # pub struct CounterError;
//! #[derive(Debug, Default, PartialEq)]
//! pub struct Counter { pub total: u32 }
//!
//! #[derive(Debug, Clone)]
//! pub enum CounterCommand { Start(Start), Add(Add) }
//!
//! impl From<Start> for CounterCommand { fn from(c: Start) -> Self { Self::Start(c) } }
//! impl From<Add> for CounterCommand { fn from(c: Add) -> Self { Self::Add(c) } }
//!
//! impl Command for CounterCommand {
//!     type Aggregate = Counter;
//!     fn command_name(&self) -> &'static str {
//!         match self { Self::Start(c) => c.command_name(), Self::Add(c) => c.command_name() }
//!     }
//!     fn aggregate_id(&self) -> &String {
//!         match self { Self::Start(c) => c.aggregate_id(), Self::Add(c) => c.aggregate_id() }
//!     }
//! }
//!
//! impl Handles<Start> for Counter {}
//! impl Handles<Add> for Counter {}
//! impl Apply<Started> for Counter { fn apply_event(&mut self, _: &Started) {} }
//! impl Apply<Added> for Counter { fn apply_event(&mut self, e: &Added) { self.total = e.total; } }
//!
//! impl Aggregate for Counter {
//!     const TYPE: &'static str = "counter";
//!     type Id = String;
//!     type Event = CounterEvent;
//!     type Command = CounterCommand;
//!     type Error = CounterError;
//!     type Services = ();
//!
//!     fn apply(&mut self, event: &CounterEvent) {
//!         event.apply_to(self) // the enum's exhaustive `match`, one arm per variant
//!     }
//!
//!     fn handle(&self, command: CounterCommand, _: &())
//!         -> impl Future<Output = Result<Events<CounterEvent>, CounterError>> + Send
//!     {
//!         // With only sync handlers the macro returns `aggregate::decided(..)`, a future ready
//!         // at once, rather than an `async` block; the decisions are the same.
//!         async move {
//!             match command {
//!                 CounterCommand::Start(_) => Ok(Events::One(Started {}.into())),
//!                 CounterCommand::Add(c) => {
//!                     let total = self.total.checked_add(c.by).ok_or(CounterError)?;
//!                     Ok(Events::One(Added { by: c.by, total }.into()))
//!                 }
//!             }
//!         }
//!     }
//!
//!     fn creation_policy(command: &CounterCommand) -> CreationPolicy {
//!         match command {
//!             CounterCommand::Start(_) => CreationPolicy::Create,
//!             CounterCommand::Add(_) => CreationPolicy::Existing,
//!         }
//!     }
//! }
//! # TestFramework::<Counter>::given([Started {}.into()])
//! #     .when(Add { counter: "c".into(), by: 1 })
//! #     .then_state(&Counter { total: 1 });
//! ```
#![warn(missing_docs)]

pub mod aggregate;
pub mod envelope;
pub mod error;
pub mod event;
pub mod projection;
pub mod repository;
pub mod schema;
pub mod store;
pub mod testkit;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use cqrs_macros::projection;
pub use cqrs_macros::{Command, Event, EventEnum, Shape, aggregate};

pub use envelope::{CommandMetadata, Envelope, Metadata};
pub use error::CommandError;
pub use repository::{Committed, Loaded, Repository, RetryPolicy};
pub use store::{EventStore, ExpectedVersion, InMemoryEventStore, StoreError};
pub use testkit::TestFramework;

/// Everything a domain module needs: the traits, the macros, the envelope, the stores.
pub mod prelude {
    pub use crate::aggregate::{Aggregate, Command, CreationPolicy};
    pub use crate::envelope::{CommandMetadata, Envelope, Metadata};
    pub use crate::error::CommandError;
    pub use crate::event::{Event, EventEnum};
    pub use crate::repository::{Committed, Repository, RetryPolicy};
    pub use crate::store::{EventStore, ExpectedVersion, InMemoryEventStore};
    pub use crate::testkit::TestFramework;
    pub use cqrs_macros::{Command, Event, EventEnum, Shape, aggregate};
    // Projections and queries.
    pub use crate::projection::{
        Answers, ErrorPolicy, EventMeta, InMemoryReadModel, Projection, ProjectionRunner,
    };
    pub use cqrs_macros::projection;
}
