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
//! Each macro's page lists its keys and the handler shapes it accepts:
//! [`Command`](derive@Command), [`Event`](derive@Event), [`EventEnum`](derive@EventEnum),
//! [`Shape`](derive@Shape), [`Scope`](derive@Scope), [`aggregate`](macro@aggregate),
//! [`projection`](macro@projection), [`reactor`](macro@reactor),
//! [`process_manager`](macro@process_manager), [`CommandBus`](derive@CommandBus),
//! [`Deadline`](derive@Deadline).
//!
//! # Layout
//!
//! - The write side: [`aggregate`](mod@aggregate) (the traits the macros implement),
//!   [`event`] (the codec and its errors), [`schema`] (shapes and the schema lock),
//!   [`repository`] (load, decide, append; retries; snapshots), [`claims`] (values held
//!   exclusively across aggregates), [`testkit`].
//! - The store contract, [`store`]: the event log, checkpoints with dead letters, snapshots,
//!   leases and the SQL read-model backend, as traits with no defaults.
//! - The backends implementing it: [`memory`], `sqlite` (feature `sqlite`, on by default) and
//!   `postgres` (feature `postgres`).
//! - The processing layer, [`processing`]: one [`Runner`](processing::Runner) drives a
//!   [`Handler`](processing::Handler) from a [`Source`](processing::Source);
//!   [`projection`](mod@projection) holds the read models that are such handlers, and
//!   [`reaction`](processing::reaction) the reactors and process managers.
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
//! The one bless workflow: one test lists every event enum of the package,
//! [`schema::lock::assert_locked_all::<(AccountEvent, OrderEvent)>("events.lock")`](schema::lock::assert_locked_all),
//! and fails listing every version that is not recorded and every stale line;
//! `CQRS_BLESS=1 cargo test` records them; commit `events.lock`. A locked version whose shape
//! changed fails to compile, naming the field that changed. Entries are keyed by (name,
//! version); two streams may reuse a wire name, and each shape gets its own line. While
//! `CQRS_BLESS` is set the compile-time check stands aside so that the bless test can run;
//! the crate is rebuilt when the variable or the lock changes. The lock is one file per package
//! by default, shared by all its targets; `#[event(..., lock = "file")]` checks an event against
//! another file, relative to its source file (a per-crate or per-target lock, or a test's).
//! See [`schema::lock`]. [`event::describe`] prints every stored shape an enum decodes, for
//! review.
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
//!         // With only sync handlers the macro returns a future that is ready
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
#![cfg_attr(docsrs, feature(doc_cfg))]

// The layers: the store contract, the backends implementing it, the processing layer built
// on it; the write side (aggregates, repository) and the event codec beside them.
pub mod aggregate;
mod backends;
pub mod claims;
#[cfg(feature = "cli")]
pub mod cli;
pub mod envelope;
pub mod error;
pub mod event;
pub mod processing;
pub mod repository;
pub mod schema;
pub mod store;
pub mod telemetry;
pub mod testkit;

pub use backends::memory;
#[cfg(feature = "postgres")]
pub use backends::postgres;
#[cfg(feature = "sqlite")]
pub use backends::sqlite;
pub use processing::projection;

#[doc(hidden)]
#[path = "private/mod.rs"]
pub mod __private;

/// Derives [`Command`](aggregate::Command) for a struct: one command, addressed to one
/// instance of one aggregate.
///
/// | attribute | where | meaning |
/// |---|---|---|
/// | `#[command(aggregate = Type)]` | the struct (required) | the aggregate whose `#[command]` handler takes this command; a command without a handler does not compile |
/// | `#[id]` | exactly one field | the target instance; its type is the aggregate's `id = ...` type |
/// | `#[command(name = "...")]` | the struct | the name in traces and errors (default: the type name) |
/// | `#[command(crate = path)]` | the struct | the path to this crate, when it is renamed or re-exported |
///
/// A command is a struct with named fields, without generic parameters or borrowed data. The
/// derive also makes the command convertible into the aggregate's generated command enum
/// (`{Aggregate}Command`, or `command_enum = Name` on the aggregate).
///
/// ```
/// # use cqrs_runtime::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// #[derive(Debug, Clone, Command)]
/// #[command(aggregate = Account)]
/// pub struct Deposit {
///     #[id]
///     pub account: String,
///     pub amount: u64,
/// }
/// # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
/// # #[event(name = "deposited", version = 1)]
/// # pub struct Deposited { pub amount: u64 }
/// # #[derive(Debug, Clone, PartialEq, EventEnum)]
/// # pub enum AccountEvent { Deposited(Deposited) }
/// # #[derive(Debug, Default)]
/// # pub struct Account;
/// # #[aggregate(name = "account", id = String, events = AccountEvent, error = std::convert::Infallible)]
/// # impl Account {
/// #     #[command(any)]
/// #     fn deposit(&self, cmd: Deposit) -> Result<Deposited, std::convert::Infallible> { Ok(Deposited { amount: cmd.amount }) }
/// #     #[apply]
/// #     fn deposited(&mut self, _: &Deposited) {}
/// # }
/// let cmd = Deposit { account: "acc-1".into(), amount: 5 };
/// assert_eq!(cmd.aggregate_id(), "acc-1");
/// assert_eq!(cmd.command_name(), "Deposit");
/// ```
#[doc(inline)]
pub use cqrs_macros::Command;

/// Derives [`Event`](event::Event) for a struct: one version of one event, under a stable wire
/// name that is stored with every event and never derived from the Rust path.
///
/// | attribute | meaning |
/// |---|---|
/// | `name = "..."` (required) | the wire name: one word (no whitespace or control characters) |
/// | `version = N` (required) | the version of this shape under the name, counting from 1 |
/// | `upcast_from = Type` | version N-1 of the same name (required from version 2 on), with a `From` or `TryFrom` step from it to this struct |
/// | `renamed_from = Type` | on version 1 of a new name: the last version of the old name it replaces, with a step |
/// | `fingerprint = 0x...` | an inline schema lock: this version's shape must keep this fingerprint |
/// | `lock = "path"` | the lock file to check against instead of the package's `events.lock`, relative to this source file |
/// | `crate = path` | the path to this crate, when it is renamed or re-exported |
/// | `#[shape(opaque = "tag")]` on a field | the field's type has no [`Shape`](schema::Shape) (a foreign type): the tag stands for its format |
/// | `#[claim(ScopeType)]` on a field | the event takes the field's value in that [scope](claims): refused if another stream holds it |
/// | `#[release(ScopeType)]` on a field | the event gives the field's value back, if its stream holds it |
///
/// The struct has named fields (or none), no generic parameters, and implements serde's
/// `Serialize` and `Deserialize`: the payload is the struct's JSON. A published version is
/// frozen: `events.lock` records its shape's fingerprint, and a change to it fails to compile,
/// naming the field (see [`schema::lock`]). Every field type needs a shape: the std types have
/// one, your own types get it from `#[derive(Shape)]`.
///
/// ```
/// use cqrs_runtime::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
/// #[event(name = "money_deposited", version = 1)]
/// pub struct MoneyDepositedV1 { pub amt: i64 }
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
/// #[event(name = "money_deposited", version = 2, upcast_from = MoneyDepositedV1)]
/// pub struct MoneyDeposited { pub amount: i64, pub currency: String }
///
/// impl From<MoneyDepositedV1> for MoneyDeposited {
///     fn from(v1: MoneyDepositedV1) -> Self {
///         MoneyDeposited { amount: v1.amt, currency: "EUR".into() }
///     }
/// }
///
/// assert_eq!((MoneyDeposited::NAME, MoneyDeposited::VERSION), ("money_deposited", 2));
/// ```
///
/// Versions, renames, splits and retired names are described in the crate docs
/// ([Evolving events](crate#evolving-events)).
#[doc(inline)]
pub use cqrs_macros::Event;

/// Derives [`EventEnum`](event::EventEnum) for an enum: the closed set of events of one stream.
///
/// Each variant is `Name(EventStruct)`, each struct appears once, and no two variants share a
/// wire name (renamed-from names included). The derive writes the codec (encode to name,
/// version and JSON; decode straight into the stored version's struct, then up its steps),
/// `From<EventStruct>` for each variant, a wire-name constant per variant (`Deposited` gives
/// `AccountEvent::DEPOSITED`), the schema listing ([`event::describe`]) and the exhaustive
/// dispatch that `#[aggregate]` and `#[projection]` rely on.
///
/// | attribute | meaning |
/// |---|---|
/// | `#[event_enum(split(OldStruct, ...))]` | stored events of a struct that is no longer a variant; each splits into current events through `impl Split<Enum> for OldStruct` |
/// | `#[event_enum(retired("name", ...))]` | wire names of removed events: their stored events decode to nothing |
/// | `#[event_enum(crate = path)]` | the path to this crate, when it is renamed or re-exported |
///
/// ```
/// use cqrs_runtime::prelude::*;
/// use cqrs_runtime::event::Decoded;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
/// #[event(name = "cart_opened", version = 1)]
/// pub struct Opened {}
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
/// #[event(name = "item_added", version = 1)]
/// pub struct ItemAdded { pub sku: String }
///
/// #[derive(Debug, Clone, PartialEq, EventEnum)]
/// #[event_enum(retired("cart_frozen"))]
/// pub enum CartEvent { Opened(Opened), ItemAdded(ItemAdded) }
///
/// assert_eq!(CartEvent::ITEM_ADDED, "item_added");
/// let added = CartEvent::decode("item_added", 1, br#"{"sku":"tea"}"#).unwrap();
/// assert_eq!(added, Decoded::One(ItemAdded { sku: "tea".into() }.into()));
/// assert_eq!(CartEvent::decode("cart_frozen", 1, b"{}").unwrap(), Decoded::Skipped);
/// ```
#[doc(inline)]
pub use cqrs_macros::EventEnum;

/// Derives [`Shape`](schema::Shape) for a type used inside events or snapshot states: the
/// fingerprint of its serialized shape, which the schema lock of every event holding it
/// includes.
///
/// | attribute | meaning |
/// |---|---|
/// | `#[shape(opaque = "tag")]` on a field | the field's type has no shape (a foreign type): the tag stands for its format; change the tag when the format changes |
/// | `#[shape(crate = path)]` on the type | the path to this crate, when it is renamed or re-exported |
///
/// Field names and types, serde's renames and defaults, and the variants of enums all count. A
/// type that contains itself cannot be fingerprinted: mark the recursive field opaque.
///
/// ```
/// use cqrs_runtime::prelude::*;
/// use cqrs_runtime::schema::Shape as _;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Shape)]
/// pub struct Money { pub cents: i64, pub currency: String }
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
/// #[event(name = "paid", version = 1)]
/// pub struct Paid { pub amount: Money }
///
/// // A field added to `Money` changes the fingerprint of `paid` v1 too.
/// assert_ne!(Money::FINGERPRINT, 0);
/// ```
#[doc(inline)]
pub use cqrs_macros::Shape;

/// Derives [`claims::Scope`] for a type: a named scope of values held exclusively (one account
/// per email), which event fields claim and release (`#[claim(UserEmail)]`).
///
/// | attribute | meaning |
/// |---|---|
/// | `#[scope(name = "...")]` (required) | the stable name stored with every claim: one word |
/// | `normalize = "rule"` | how values are compared: `"none"` (the default), `"lowercase"`, `"trim"` or `"trim_lowercase"` |
/// | `normalize_with = path` | your own rule instead: a `fn(&str) -> Cow<'_, str>` |
/// | `crate = path` | the path to this crate, when it is renamed or re-exported |
///
/// ```
/// use cqrs_runtime::prelude::*;
/// use cqrs_runtime::claims::Scope as _;
///
/// #[derive(Scope)]
/// #[scope(name = "user_email", normalize = "trim_lowercase")]
/// pub struct UserEmail;
///
/// assert_eq!(UserEmail::NAME, "user_email");
/// assert_eq!(UserEmail::normalize(" Ann@Example.COM "), "ann@example.com");
/// ```
#[doc(inline)]
pub use cqrs_macros::Scope;

/// Makes an `impl` block an event-sourced [`Aggregate`](aggregate::Aggregate): its
/// `#[command]` methods decide, its `#[apply]` methods evolve the state.
///
/// | key | meaning |
/// |---|---|
/// | `name = "..."` (required) | the stream type stored with every event: one word (no whitespace or control characters) |
/// | `id = Type` (required) | the type that identifies one instance (each command's `#[id]` field) |
/// | `events = Enum` (required) | the stream's event enum (`#[derive(EventEnum)]`); one enum, not a list |
/// | `error = Type` (required) | the error handlers reject commands with; a handler's own error type converts into it with `Into`, as with `?` |
/// | `services = Type` | what handlers may take as a third argument (`&Type`); such handlers may be `async` |
/// | `command_enum = Name` | the name of the generated command enum (default `{Type}Command`) |
/// | `crate = path` | the path to this crate, when it is renamed or re-exported |
///
/// Methods:
///
/// - `#[command]` (or `#[command(existing)]`, `#[command(create)]`, `#[command(any)]`):
///   `fn(&self, cmd: C) -> Result<T, E>`, one per command of the aggregate. `T` is an event of
///   the enum, the enum, `Vec<_>`, `Option<_>` or `[_; N]` of those, or `()` for no event.
/// - `#[apply]`: `fn(&mut self, event: &Ev)`, sync and infallible, exactly one per event of the
///   enum.
/// - Other methods pass through untouched. `#[cfg(...)]` on a handler applies to everything
///   the macro generates for it.
///
/// The creation policy says what the [`Repository`] checks before the handler runs:
///
/// - `existing` (the default): the stream must have events; on an empty one the command fails
///   with [`CommandError::NotFound`], whose message names the command and the policy.
/// - `create`: the stream must be empty; otherwise [`CommandError::AlreadyExists`] (with the
///   stream's version). Two concurrent creations of one id: one wins, the other gets
///   `AlreadyExists` (with retries) or a conflict.
/// - `any`: either; the handler sees the default state on an empty stream.
///
/// ```
/// use cqrs_runtime::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, Command)]
/// #[command(aggregate = Door)]
/// pub struct Install { #[id] pub door: String }
///
/// #[derive(Debug, Clone, Command)]
/// #[command(aggregate = Door)]
/// pub struct Open { #[id] pub door: String }
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
/// #[event(name = "door_installed", version = 1)]
/// pub struct Installed {}
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
/// #[event(name = "door_opened", version = 1)]
/// pub struct Opened {}
///
/// #[derive(Debug, Clone, PartialEq, EventEnum)]
/// pub enum DoorEvent { Installed(Installed), Opened(Opened) }
///
/// #[derive(Debug, PartialEq, thiserror::Error)]
/// #[error("the door is already open")]
/// pub struct AlreadyOpen;
///
/// #[derive(Debug, Default)]
/// pub struct Door { open: bool }
///
/// #[aggregate(name = "door", id = String, events = DoorEvent, error = AlreadyOpen)]
/// impl Door {
///     #[command(create)]
///     fn install(&self, _: Install) -> Result<Installed, AlreadyOpen> {
///         Ok(Installed {})
///     }
///
///     #[command]
///     fn open(&self, _: Open) -> Result<Option<Opened>, AlreadyOpen> {
///         if self.open { Err(AlreadyOpen) } else { Ok(Some(Opened {})) }
///     }
///
///     #[apply]
///     fn installed(&mut self, _: &Installed) {}
///
///     #[apply]
///     fn opened(&mut self, _: &Opened) { self.open = true; }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let doors = Repository::<Door, _>::new(InMemoryEventStore::new());
/// let missing = doors.execute(Open { door: "d-1".into() }).await.unwrap_err();
/// assert!(missing.is_not_found()); // `existing`: install it first
/// doors.execute(Install { door: "d-1".into() }).await?;
/// doors.execute(Open { door: "d-1".into() }).await?;
/// let again = doors.execute(Install { door: "d-1".into() }).await.unwrap_err();
/// assert!(again.is_already_exists());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
///
/// What it expands to is shown in the crate docs
/// ([What the macros expand to](crate#what-the-macros-expand-to)).
#[doc(inline)]
pub use cqrs_macros::aggregate;

/// Makes an `impl` block a [`Projection`](projection::Projection): a named, versioned read
/// model folded from the events of one or several event enums, answering typed queries.
///
/// | key | meaning |
/// |---|---|
/// | `name = "..."` (required) | the identity: the key of its checkpoint and of its runner's lease |
/// | `events = Enum` or `events = [A, B]` (required) | the source enums; two sources may not share a wire name |
/// | `ignore(Ev, ...)` | events of the sources it deliberately does not handle |
/// | `non_exhaustive` | skip unhandled events without a decision (instead of `ignore`) |
/// | `version = N` | bump it when the model's meaning changes: the stored checkpoint then asks for a rebuild (default 1) |
/// | `transaction = Type` | what handlers write through besides `self`: [`SqlBatch`](store::SqlBatch) for SQL read models (default `()`) |
/// | `reset = path` | the reset hook of a rebuild, `fn(&mut Self)` (default: `Default::default()`) |
/// | `crate = path` | the path to this crate, when it is renamed or re-exported |
///
/// Methods:
///
/// - `#[on]`: `fn(&mut self, event: &Ev)`, optionally followed by
///   `meta: &EventMeta<'_>` ([`EventMeta`](projection::EventMeta): stream, version, position,
///   event id, times, correlation) and by `tx: &mut Transaction`. Sync, returns nothing. Every
///   event of the sources has an `#[on]` handler or an `ignore(...)` entry, or the projection
///   does not compile, naming the event.
/// - `#[query]`: `fn(&self, query: Q) -> Answer`, one per query type; implements
///   [`Answers<Q>`](projection::Answers).
///
/// ```
/// use cqrs_runtime::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
/// #[event(name = "visit_recorded", version = 1)]
/// pub struct Visited { pub page: String }
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
/// #[event(name = "visits_purged", version = 1)]
/// pub struct Purged {}
///
/// #[derive(Debug, Clone, PartialEq, EventEnum)]
/// pub enum SiteEvent { Visited(Visited), Purged(Purged) }
///
/// /// A query: the visits of one page.
/// pub struct VisitsOf<'a>(pub &'a str);
///
/// #[derive(Debug, Default)]
/// pub struct PageViews { views: std::collections::HashMap<String, u64> }
///
/// #[projection(name = "page_views", events = SiteEvent, ignore(Purged))]
/// impl PageViews {
///     #[on]
///     fn visited(&mut self, e: &Visited) {
///         *self.views.entry(e.page.clone()).or_default() += 1;
///     }
///
///     #[query]
///     fn visits(&self, q: VisitsOf<'_>) -> u64 {
///         self.views.get(q.0).copied().unwrap_or(0)
///     }
/// }
/// ```
///
/// Running it, in memory or in SQL tables: see [`projection`](mod@projection).
#[doc(inline)]
pub use cqrs_macros::projection;

/// `#[reactor(...)]` on an `impl` block: a stateless reaction, implementing
/// [`Reactor<Bus>`](processing::reaction::Reactor), run by
/// [`reaction::reactor`](processing::reaction::reactor) under a
/// [`Runner`](processing::Runner).
///
/// | key | meaning |
/// |---|---|
/// | `name = "..."` (required) | the identity: the key of its checkpoint and of its runner's lease |
/// | `events = Enum` or `events = [A, B]` (required) | the sources: `#[derive(EventEnum)]` enums or `#[aggregate]` types; two sources may not share a wire name |
/// | `ignore(Ev, ...)` | events of the sources it deliberately does not handle |
/// | `version = N` | bump it when the reactor's meaning changes (default 1) |
/// | `bus = Type` | the command bus (default: the one the handlers' `ReactionContext<'_, Bus>` names) |
/// | `crate = path` | the path to this crate, when it is renamed or re-exported |
///
/// Handlers, marked `#[on]`: `async fn(&self, event: &Ev, ctx: &mut ReactionContext<'_, Bus>)
/// -> Result<(), E>` with `ReactionError: From<E>` (so `?` on a send works), optionally taking
/// `stored: &StoredEvent` (stream, position, metadata) before `ctx`. Every event of the sources
/// has an `#[on]` handler or an `ignore(...)` entry, or the reactor does not compile, naming the
/// event. `ctx.send(command)` returns the command's typed outcome; a command of an aggregate the
/// bus has no repository for does not compile (see [`CommandBus`]). The `impl` may be generic
/// over the bus's parameters (`impl<S: EventStore> Reactor`): they move onto the methods.
///
/// A redelivered event sends the same commands under the same ids, which take effect once; see
/// [`reaction`](processing::reaction) for the delivery guarantees.
///
/// ```
/// use cqrs_runtime::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, PartialEq, Command)]
/// #[command(aggregate = Order)]
/// pub struct CancelOrder { #[id] pub order: String, pub reason: String }
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
/// #[event(name = "doc_order_placed", version = 1)]
/// pub struct OrderPlaced { pub order: String }
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
/// #[event(name = "doc_order_paid", version = 1)]
/// pub struct OrderPaid { pub order: String }
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
/// #[event(name = "doc_order_cancelled", version = 1)]
/// pub struct OrderCancelled { pub order: String }
///
/// #[derive(Debug, Clone, PartialEq, EventEnum)]
/// pub enum OrderEvent { Placed(OrderPlaced), Paid(OrderPaid), Cancelled(OrderCancelled) }
///
/// #[derive(Debug, thiserror::Error)]
/// pub enum OrderError { #[error("the order is paid")] Paid }
///
/// #[derive(Debug, Default)]
/// pub struct Order { paid: bool, cancelled: bool }
///
/// #[aggregate(name = "order", id = String, events = OrderEvent, error = OrderError)]
/// impl Order {
///     #[command]
///     fn cancel(&self, cmd: CancelOrder) -> Result<Option<OrderCancelled>, OrderError> {
///         if self.paid { return Err(OrderError::Paid); }
///         Ok((!self.cancelled).then(|| OrderCancelled { order: cmd.order }))
///     }
///     #[apply] fn placed(&mut self, _: &OrderPlaced) {}
///     #[apply] fn paid(&mut self, _: &OrderPaid) { self.paid = true; }
///     #[apply] fn cancelled(&mut self, _: &OrderCancelled) { self.cancelled = true; }
/// }
///
/// /// The aggregates reactions command.
/// #[derive(CommandBus)]
/// pub struct Shop<S: EventStore> { pub orders: Repository<Order, S> }
///
/// /// Cancels every order as soon as it is placed (a paid order is left alone).
/// pub struct Canceller;
///
/// #[reactor(name = "canceller", events = OrderEvent, ignore(OrderPaid, OrderCancelled))]
/// impl<S: EventStore> Canceller {
///     #[on]
///     async fn placed(
///         &self,
///         event: &OrderPlaced,
///         ctx: &mut ReactionContext<'_, Shop<S>>,
///     ) -> Result<(), ReactionError> {
///         let cancel = CancelOrder { order: event.order.clone(), reason: "test".into() };
///         match ctx.send(cancel).await {
///             Ok(_) | Err(CommandError::Rejected(OrderError::Paid)) => Ok(()),
///             Err(other) => Err(other.into()),
///         }
///     }
/// }
/// ```
#[doc(inline)]
pub use cqrs_macros::reactor;

/// `#[process_manager(...)]` on the `impl` block of a state type: a reaction that keeps one
/// instance of that state per correlation key, implementing
/// [`ProcessManager<Bus>`](processing::reaction::ProcessManager), run by
/// [`reaction::process_manager`](processing::reaction::process_manager) under a
/// [`Runner`](processing::Runner). The state is `Default + Serialize + Deserialize`.
///
/// Keys: as [`reactor`] (`name`, `events`, `ignore(...)`, `version`, `bus`, `crate`).
///
/// Handlers:
///
/// - `#[on(start, key = k)]`, `#[on(key = k)]` (continue) and `#[on(end, key = k)]`:
///   `async fn(&mut self, event: &Ev, ctx: &mut ProcessContext<'_, Bus>) -> Result<(), E>`,
///   optionally with `stored: &StoredEvent` before `ctx`. A `start` event creates the instance
///   (or continues it); a `continue` or `end` event for a key with no instance is an orphan,
///   passed over; after an `end` handler the instance and its deadlines are removed (as after
///   `ctx.end()`). The key is `key = field` (the event's field), `key = method()` (a method of
///   the event) or `key = path::to_fn` (a function of `&Ev`), whatever its `Display` form is.
/// - `#[deadline]`: `async fn(&mut self, deadline: D, ctx: &mut ProcessContext<'_, Bus>)
///   -> Result<(), E>`, where `D` derives [`Deadline`](macro@Deadline): `ctx.schedule(due,
///   &D { .. })` makes it fire once at `due`, as a typed value into this handler.
///
/// The macro completes each handler's context to `ProcessContext<'_, Bus, Self>`, so the
/// context knows its manager; a helper function outside the impl that takes the context writes
/// `&mut ProcessContext<'_, Bus, MyManager>`.
///
/// Compile errors: an event of the sources neither handled nor ignored, a handler without a
/// key, a key field the event does not have, no `start` handler, a deadline handler whose type
/// is not a deadline, scheduling or cancelling a deadline that no `#[deadline]` handler takes,
/// a command of an aggregate the bus does not hold.
///
/// ```
/// use cqrs_runtime::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, PartialEq, Command)]
/// #[command(aggregate = Order)]
/// pub struct CancelOrder { #[id] pub order: String, pub reason: String }
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
/// #[event(name = "doc_order_placed", version = 1)]
/// pub struct OrderPlaced { pub order: String }
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
/// #[event(name = "doc_order_paid", version = 1)]
/// pub struct OrderPaid { pub order: String }
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
/// #[event(name = "doc_order_cancelled", version = 1)]
/// pub struct OrderCancelled { pub order: String }
///
/// #[derive(Debug, Clone, PartialEq, EventEnum)]
/// pub enum OrderEvent { Placed(OrderPlaced), Paid(OrderPaid), Cancelled(OrderCancelled) }
///
/// #[derive(Debug, thiserror::Error)]
/// pub enum OrderError { #[error("the order is paid")] Paid }
///
/// #[derive(Debug, Default)]
/// pub struct Order { paid: bool, cancelled: bool }
///
/// #[aggregate(name = "order", id = String, events = OrderEvent, error = OrderError)]
/// impl Order {
///     #[command]
///     fn cancel(&self, cmd: CancelOrder) -> Result<Option<OrderCancelled>, OrderError> {
///         if self.paid { return Err(OrderError::Paid); }
///         Ok((!self.cancelled).then(|| OrderCancelled { order: cmd.order }))
///     }
///     #[apply] fn placed(&mut self, _: &OrderPlaced) {}
///     #[apply] fn paid(&mut self, _: &OrderPaid) { self.paid = true; }
///     #[apply] fn cancelled(&mut self, _: &OrderCancelled) { self.cancelled = true; }
/// }
///
/// /// The aggregates reactions command.
/// #[derive(CommandBus)]
/// pub struct Shop<S: EventStore> { pub orders: Repository<Order, S> }
///
/// /// Fires an hour after the order was placed.
/// #[derive(Debug, Serialize, Deserialize, Deadline)]
/// pub struct PaymentDue { pub order: String }
///
/// /// Cancels an order unpaid after an hour.
/// #[derive(Debug, Default, Serialize, Deserialize)]
/// pub struct PaymentWatch { order: String }
///
/// #[process_manager(name = "payment_watch", events = OrderEvent)]
/// impl<S: EventStore> PaymentWatch {
///     #[on(start, key = order)]
///     async fn placed(
///         &mut self,
///         event: &OrderPlaced,
///         ctx: &mut ProcessContext<'_, Shop<S>>,
///     ) -> Result<(), ReactionError> {
///         self.order = event.order.clone();
///         let due = ctx.now() + chrono::Duration::hours(1);
///         ctx.schedule(due, &PaymentDue { order: event.order.clone() })
///     }
///
///     #[on(end, key = order)]
///     async fn paid(&mut self, _: &OrderPaid, _: &mut ProcessContext<'_, Shop<S>>)
///         -> Result<(), ReactionError> {
///         Ok(())
///     }
///
///     #[on(end, key = order)]
///     async fn cancelled(&mut self, _: &OrderCancelled, _: &mut ProcessContext<'_, Shop<S>>)
///         -> Result<(), ReactionError> {
///         Ok(())
///     }
///
///     #[deadline]
///     async fn payment_due(
///         &mut self,
///         due: PaymentDue,
///         ctx: &mut ProcessContext<'_, Shop<S>>,
///     ) -> Result<(), ReactionError> {
///         match ctx.send(CancelOrder { order: due.order, reason: "unpaid".into() }).await {
///             Ok(_) | Err(CommandError::Rejected(OrderError::Paid)) => Ok(()),
///             Err(other) => Err(other.into()),
///         }
///     }
/// }
/// ```
#[doc(inline)]
pub use cqrs_macros::process_manager;

/// Derives [`Dispatch<A>`](processing::reaction::Dispatch) for a struct holding the
/// application's repositories: the command bus reactions send through.
///
/// Each field typed `Repository<A, S, ..>` routes the commands of `A` (one field per
/// aggregate); other fields (services, clients) are left alone and reachable from handlers
/// through `ctx.bus()`. `ctx.send(cmd)` compiles only for a command whose aggregate the bus
/// holds: another one is a compile error naming the bus and the aggregate. The struct may be
/// generic (over the store). `#[command_bus(crate = path)]` names this crate when it is renamed.
///
/// ```
/// # use cqrs_runtime::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Clone, Command)]
/// # #[command(aggregate = Order)]
/// # pub struct PlaceOrder { #[id] pub order: String }
/// # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
/// # #[event(name = "bus_doc_placed", version = 1)]
/// # pub struct Placed {}
/// # #[derive(Debug, Clone, PartialEq, EventEnum)]
/// # pub enum OrderEvent { Placed(Placed) }
/// # #[derive(Debug, Default)]
/// # pub struct Order;
/// # #[aggregate(name = "order", id = String, events = OrderEvent, error = std::convert::Infallible)]
/// # impl Order {
/// #     #[command(create)]
/// #     fn place(&self, _: PlaceOrder) -> Result<Placed, std::convert::Infallible> { Ok(Placed {}) }
/// #     #[apply] fn placed(&mut self, _: &Placed) {}
/// # }
/// #[derive(CommandBus)]
/// pub struct Shop<S: EventStore> {
///     pub orders: Repository<Order, S>,
///     pub mailer_url: String,
/// }
///
/// fn sends_orders<B: Dispatch<Order>>(_: &B) {}
/// let store = InMemoryEventStore::new();
/// sends_orders(&Shop { orders: Repository::new(store), mailer_url: "smtp://".into() });
/// ```
#[doc(inline)]
pub use cqrs_macros::CommandBus;

/// Derives [`Deadline`](processing::reaction::Deadline) for a type a process manager
/// schedules (`ctx.schedule(due, &value)`) and receives, typed, in its `#[deadline]` handler.
///
/// The stored name is the type's name in snake case (`PaymentDue`: `payment_due`), or
/// `#[deadline(name = "...")]`; it is stored with every pending deadline, so renaming it
/// orphans the pending ones. The type also derives `Serialize` and `Deserialize` (its value is
/// stored as JSON). `#[deadline(crate = path)]` names this crate when it is renamed.
///
/// ```
/// use cqrs_runtime::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Serialize, Deserialize, Deadline)]
/// pub struct PaymentDue { pub order: String }
///
/// #[derive(Debug, Serialize, Deserialize, Deadline)]
/// #[deadline(name = "reminder_v1")]
/// pub struct Reminder;
///
/// assert_eq!(<PaymentDue as cqrs_runtime::processing::reaction::Deadline>::NAME, "payment_due");
/// assert_eq!(<Reminder as cqrs_runtime::processing::reaction::Deadline>::NAME, "reminder_v1");
/// ```
#[doc(inline)]
pub use cqrs_macros::Deadline;

pub use envelope::{CommandMetadata, Envelope, Metadata};
pub use error::CommandError;
pub use memory::InMemoryEventStore;
pub use repository::{Committed, Loaded, Repository, RetryPolicy};
pub use store::{EventStore, ExpectedVersion, StoreError};
pub use testkit::TestFramework;

/// Everything a domain module needs: the traits, the macros, the envelope, the stores.
pub mod prelude {
    pub use crate::aggregate::{Aggregate, Command, CreationPolicy};
    pub use crate::envelope::{CommandMetadata, Envelope, Metadata};
    pub use crate::error::CommandError;
    pub use crate::event::{Event, EventEnum};
    pub use crate::memory::InMemoryEventStore;
    pub use crate::repository::{Committed, Repository, RetryPolicy};
    pub use crate::store::{EventStore, ExpectedVersion};
    pub use crate::testkit::TestFramework;
    #[doc(no_inline)]
    pub use cqrs_macros::{Command, Event, EventEnum, Scope, Shape, aggregate};
    // Claims.
    pub use crate::claims::ClaimView;
    // Projections and queries.
    pub use crate::projection::{
        Answers, ErrorPolicy, EventMeta, InMemoryReadModel, Projection, ProjectionRunner,
    };
    #[doc(no_inline)]
    pub use cqrs_macros::projection;
    // Reactions.
    pub use crate::processing::reaction::{
        Deadline, Dispatch, ProcessContext, ReactionContext, ReactionError,
    };
    #[doc(no_inline)]
    pub use cqrs_macros::{CommandBus, Deadline, process_manager, reactor};
}
