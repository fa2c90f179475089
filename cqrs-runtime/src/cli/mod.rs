//! A command-line tool to operate an event store, decoding with the application's own types
//! (feature `cli`).
//!
//! The application builds a [`Cli`], registers the event enums it knows (by aggregate or by
//! stream type), and runs it from its own binary, so that `verify`, `events` and `schema`
//! decode stored events exactly as the application does:
//!
//! ```no_run
//! use cqrs_runtime::cli::Cli;
//! # use cqrs_runtime::prelude::*;
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Debug, Clone, Command)]
//! # #[command(aggregate = BankAccount)]
//! # pub struct Deposit { #[id] pub account: String, pub amount: u64 }
//! # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
//! # #[event(name = "deposited", version = 1)]
//! # pub struct Deposited { pub amount: u64 }
//! # #[derive(Debug, Clone, PartialEq, EventEnum)]
//! # pub enum AccountEvent { Deposited(Deposited) }
//! # #[derive(Debug, Default)]
//! # pub struct BankAccount;
//! # #[aggregate(name = "account", id = String, events = AccountEvent, error = std::convert::Infallible)]
//! # impl BankAccount {
//! #     #[command(any)]
//! #     fn deposit(&self, cmd: Deposit) -> Result<Deposited, std::convert::Infallible> { Ok(Deposited { amount: cmd.amount }) }
//! #     #[apply]
//! #     fn deposited(&mut self, _: &Deposited) {}
//! # }
//! # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
//! # #[event(name = "audited", version = 1)]
//! # pub struct Audited { pub by: String }
//! # #[derive(Debug, Clone, PartialEq, EventEnum)]
//! # pub enum AuditEvent { Audited(Audited) }
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     Cli::new("bank")
//!         .aggregate::<BankAccount>() // streams of `BankAccount::TYPE`, decoded with its events
//!         .events::<AuditEvent>("audit") // streams of type "audit"
//!         .run_from_env()
//!         .await
//! }
//! ```
//!
//! `bank --store sqlite:bank.db verify` then reads every stored event in commit order and
//! decodes it. [`Cli::projection`] registers a SQL read model for `rebuild` and
//! `dead-letters retry`. The generic binary of the `cqrs-cli` package runs the same subcommands with no
//! registered types.
//!
//! # Stores
//!
//! `--store` (and `copy`'s `--from` / `--to`) takes `sqlite:<path>`, `sqlite://<path>` or a plain
//! file path (a [`SqliteEventStore`](crate::sqlite::SqliteEventStore)), or
//! `postgres://user@host/db` (a [`PostgresEventStore`](crate::postgres::PostgresEventStore),
//! feature `postgres`); a `schema=<name>` query parameter of a PostgreSQL URL selects the
//! schema holding the tables (`public` by default), and `notify=<channel>` the channel `tail`
//! listens on (see [`PostgresConfig::notify`](crate::postgres::PostgresConfig::notify)).
//! Subcommands that only read open the store without migrating it: a SQLite file or PostgreSQL
//! schema that is not a store at this build's schema version is an error, and is left as it
//! was. Only `import` and `copy`'s target create or migrate a store.
//!
//! # Subcommands
//!
//! | subcommand | what it does | exit code 1 when |
//! |---|---|---|
//! | `verify [--strict]` | decodes every event; counts per type and version, upcasts, failures, unregistered stream types, version gaps and repeats | any failure or integrity problem (or, with `--strict`, an unregistered stream type) |
//! | `streams` | every stream: type, id, version, event count, last write | never |
//! | `events <type> <id>` | one stream's events: payload, metadata, decoded value | never |
//! | `tail [--from P] [--limit N]` | the log live, from the head or after position `P` (`--json`: export lines) | never |
//! | `projections` | every checkpoint: position, head, lag, lease holder, dead letters | never |
//! | `dead-letters list [NAME]` | the dead letters of `NAME`, or of every reader | never |
//! | `dead-letters retry NAME (P... \| --all)` | takes the events again with the registered projection | one fails again, or has no dead letter |
//! | `dead-letters discard NAME (P... \| --all)` | forgets dead letters | one has no dead letter |
//! | `rebuild <projection>` | rebuilds a registered projection under its lease | never (a failure is an error) |
//! | `schema describe` | every stored shape the registered enums decode | never |
//! | `schema diff <events.lock>` | versions missing from the lock, lock lines no enum decodes | a difference |
//! | `export [--stream-type T] [--stream-id ID]` | JSON lines on stdout | never |
//! | `import <file>` | appends an export (idempotent) | never |
//! | `copy --from URL --to URL` | copies a whole store, resumable, verified | the stores differ after the copy |
//!
//! Every subcommand prints a plain table, or one JSON document with `--json`. Errors (a store
//! that cannot be opened, a conflicting append) go to stderr with exit code 2. Long operations
//! print a progress line to stderr every `--progress-every` events, or, on a terminal, a progress
//! bar with the rate and the time left (`--quiet` silences them).
//!
//! # The export format
//!
//! `export` writes one JSON object per line, in commit order:
//!
//! ```text
//! {"event_id":"0192…","stream_type":"account","stream_id":"acc-1","stream_version":1,
//!  "global_position":1,"event_type":"account_opened","event_version":1,
//!  "payload":{"owner":"Ada"},"metadata":{"correlation_id":"0192…","causation_id":null},
//!  "recorded_at":"2026-12-03T15:30:46.123456Z"}
//! ```
//!
//! (one line in the file). `payload` is the stored JSON document as stored; `metadata` is the
//! [`Metadata`](crate::envelope::Metadata) as stored; `recorded_at` is RFC 3339 with
//! microseconds. [`ExportedEvent`] is the line's type. `global_position` is informational: an
//! import appends in file order and the target store assigns its own positions.
//!
//! # Import and copy
//!
//! Both append each stream's events with their original event ids, at the expected version
//! `stream_version - 1`, with their original metadata and `recorded_at`. Event ids are
//! idempotency keys (see [`EventStore`](crate::store::EventStore)): appending events that
//! already landed at the same versions is a no-op, so re-running an import, or resuming an
//! interrupted copy, appends only what is missing. A stream of the target that holds other
//! events at those versions is a conflict, and the command stops there.
//!
//! `copy` reads the source in commit order and stores its cursor as the checkpoint
//! `cqrs-cli.copy` (`--checkpoint NAME`) in the target after each batch, so a second run
//! resumes after it. It then reads both stores and compares, per stream, the event count, the
//! version and a checksum of every event's id, type, version, payload (as canonical JSON, since
//! PostgreSQL normalizes `jsonb`), metadata and `recorded_at`. Claims are not copied: the
//! target's claim table is empty.

mod ops;
mod output;
mod store;
mod transfer;
mod verify;
mod view;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::aggregate::Aggregate;
use crate::event::{DecodeError, Decoded, EventEnum, EventSchema};
use crate::store::StoreError;

pub use transfer::ExportedEvent;

/// Why a subcommand could not run (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The arguments do not parse (the message is clap's).
    #[error("{0}")]
    Usage(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A `--store` URL that names no store this build can open.
    #[error("cannot open store `{url}`: {reason}")]
    Open {
        /// The URL as given.
        url: String,
        /// Why.
        reason: String,
    },
    /// Reading a file or writing the output failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being read or written.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A line of an import file is not an exported event.
    #[error("{path} line {line}: {source}")]
    BadLine {
        /// The file.
        path: String,
        /// The line number, from 1.
        line: usize,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// Rendering the JSON output failed.
    #[error("cannot write JSON output: {0}")]
    Json(#[from] serde_json::Error),
    /// A projection's runner failed (a rebuild, a dead letter taken again).
    #[error(transparent)]
    Run(Box<crate::processing::RunError>),
}

impl CliError {
    fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CliError {
        let context = context.into();
        move |source| CliError::Io { context, source }
    }
}

/// What a subcommand found: whether it ran clean (exit code 0) or found problems (exit code 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to report (exit code 0).
    Clean,
    /// The subcommand found problems it reported (exit code 1).
    Findings,
}

impl Outcome {
    /// The process exit code: 0 or 1.
    pub fn code(self) -> i32 {
        match self {
            Outcome::Clean => 0,
            Outcome::Findings => 1,
        }
    }
}

/// How one registered event enum decodes, without its type.
#[derive(Clone)]
pub(crate) struct Registered {
    pub(crate) stream_type: String,
    pub(crate) enum_type: &'static str,
    pub(crate) current: fn() -> &'static [EventSchema],
    pub(crate) history: fn() -> Vec<EventSchema>,
    pub(crate) describe: fn() -> String,
    /// Decodes, answering whether the stored event decoded to nothing (a retired type).
    pub(crate) check: fn(&str, u32, &[u8]) -> Result<bool, DecodeError>,
    /// Decodes, answering the decoded value's `Debug`.
    pub(crate) debug: fn(&str, u32, &[u8]) -> Result<String, DecodeError>,
}

fn check<E: EventEnum>(name: &str, version: u32, payload: &[u8]) -> Result<bool, DecodeError> {
    E::decode(name, version, payload).map(|d| matches!(d, Decoded::Skipped))
}

fn debug<E: EventEnum + std::fmt::Debug>(
    name: &str,
    version: u32,
    payload: &[u8],
) -> Result<String, DecodeError> {
    E::decode(name, version, payload).map(|d| match d {
        Decoded::One(e) => format!("{e:?}"),
        Decoded::Many(es) => format!("{es:?}"),
        Decoded::Skipped => "(retired: decodes to nothing)".to_owned(),
    })
}

impl Registered {
    /// The current version of `name`, if it is a current variant.
    pub(crate) fn current_version(&self, name: &str) -> Option<u32> {
        (self.current)()
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.version)
    }
}

/// The command-line tool: a name, the event enums it decodes with, and the subcommands
/// (see the [module docs](self)).
#[derive(Clone)]
pub struct Cli {
    name: String,
    types: Vec<Registered>,
    projections: Vec<std::sync::Arc<dyn ops::ProjectionOps>>,
}

impl std::fmt::Debug for Cli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cli")
            .field("name", &self.name)
            .field(
                "types",
                &self
                    .types
                    .iter()
                    .map(|t| (&t.stream_type, t.enum_type))
                    .collect::<Vec<_>>(),
            )
            .field(
                "projections",
                &self
                    .projections
                    .iter()
                    .map(|p| p.name())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Events read per batch, unless `--batch` says otherwise.
const READ_BATCH: usize = 1000;

/// Events `copy` and `import` write per transaction, unless `--batch` says otherwise: ten
/// times fewer commits than `READ_BATCH`, about twice the rate (see OPERATING.md).
const WRITE_BATCH: usize = 10_000;

/// The options every subcommand shares.
pub(crate) struct Options {
    pub(crate) json: bool,
    pub(crate) quiet: bool,
    pub(crate) batch: usize,
    pub(crate) progress_every: u64,
}

impl Cli {
    /// A tool named `name` (the program name in its help) with no registered types.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            types: Vec::new(),
            projections: Vec::new(),
        }
    }

    /// Knows the SQL projection `P`, whose tables live in the store's own database
    /// ([`SqlReadModel`](crate::projection::SqlReadModel) over the `--store`): `rebuild
    /// <P::NAME>` rebuilds it and `dead-letters retry` takes its dead letters again (a later
    /// registration of the same name replaces an earlier one).
    pub fn projection<P: crate::projection::SqlProjection + Default>(mut self) -> Self {
        self.projections.retain(|p| p.name() != P::NAME);
        self.projections.push(std::sync::Arc::new(ops::SqlOps::<P>(
            std::marker::PhantomData,
        )));
        self
    }

    fn projection_ops(&self, name: &str) -> Option<&dyn ops::ProjectionOps> {
        self.projections
            .iter()
            .find(|p| p.name() == name)
            .map(|p| &**p)
    }

    /// Decodes streams of `A::TYPE` with `A::Event`.
    pub fn aggregate<A: Aggregate>(self) -> Self
    where
        A::Event: std::fmt::Debug,
    {
        self.events::<A::Event>(A::TYPE)
    }

    /// Decodes streams of `stream_type` with the event enum `E` (a later registration of the
    /// same stream type replaces an earlier one).
    pub fn events<E: EventEnum + std::fmt::Debug>(mut self, stream_type: &str) -> Self {
        self.types.retain(|t| t.stream_type != stream_type);
        self.types.push(Registered {
            stream_type: stream_type.to_owned(),
            enum_type: std::any::type_name::<E>(),
            current: E::schema,
            history: E::history,
            describe: crate::event::describe::<E>,
            check: check::<E>,
            debug: debug::<E>,
        });
        self
    }

    pub(crate) fn registered(&self, stream_type: &str) -> Option<&Registered> {
        self.types.iter().find(|t| t.stream_type == stream_type)
    }

    /// The clap command: every subcommand and option.
    pub fn command(&self) -> Command {
        let number = |name: &'static str, default: &'static str, help: &'static str| {
            Arg::new(name)
                .long(name)
                .value_name("N")
                .default_value(default)
                .value_parser(clap::value_parser!(u64).range(1..))
                .global(true)
                .help(help)
        };
        Command::new(self.name.clone())
            .about("Operate an event store: verify, inspect, tail, projections, dead letters, rebuild, export, import, copy")
            .subcommand_required(true)
            .arg_required_else_help(true)
            .arg(
                Arg::new("store")
                    .long("store")
                    .value_name("URL")
                    .global(true)
                    .help("The event store: sqlite:<path>, a file path, or postgres://... (?schema=<name>)"),
            )
            .arg(
                Arg::new("json")
                    .long("json")
                    .action(ArgAction::SetTrue)
                    .global(true)
                    .help("Print one JSON document instead of a table"),
            )
            .arg(
                Arg::new("quiet")
                    .long("quiet")
                    .short('q')
                    .action(ArgAction::SetTrue)
                    .global(true)
                    .help("No progress lines on stderr"),
            )
            .arg(
                Arg::new("batch")
                    .long("batch")
                    .value_name("N")
                    .value_parser(clap::value_parser!(u64).range(1..))
                    .global(true)
                    .help(
                        "Events read per batch; copy and import write each batch in one \
                         transaction [default: 1000; copy and import: 10000]",
                    ),
            )
            .arg(number(
                "progress-every",
                "10000",
                "Print a progress line every N events",
            ))
            .subcommand(
                Command::new("verify")
                    .about("Decode every stored event; check every stream's versions")
                    .arg(
                        Arg::new("strict")
                            .long("strict")
                            .action(ArgAction::SetTrue)
                            .help("Fail on streams of unregistered types"),
                    ),
            )
            .subcommand(
                Command::new("streams")
                    .about("List every stream: type, id, version, event count, last write"),
            )
            .subcommand(
                Command::new("events")
                    .about("Show one stream's events")
                    .arg(Arg::new("stream_type").required(true).value_name("STREAM_TYPE"))
                    .arg(Arg::new("stream_id").required(true).value_name("STREAM_ID")),
            )
            .subcommand(
                Command::new("tail")
                    .about("Follow the log live: every new event, in commit order")
                    .arg(
                        Arg::new("from")
                            .long("from")
                            .value_name("POSITION")
                            .value_parser(clap::value_parser!(u64))
                            .help("Start after this global position (default: the head)"),
                    )
                    .arg(
                        Arg::new("limit")
                            .long("limit")
                            .value_name("N")
                            .value_parser(clap::value_parser!(u64).range(1..))
                            .help("Stop after N events"),
                    )
                    .arg(
                        Arg::new("stream_type")
                            .long("stream-type")
                            .value_name("T")
                            .help("Only streams of this type"),
                    )
                    .arg(
                        Arg::new("poll_ms")
                            .long("poll-ms")
                            .value_name("MS")
                            .default_value("250")
                            .value_parser(clap::value_parser!(u64).range(1..))
                            .help("Poll interval without notifications (PostgreSQL: notify=<channel> in the URL)"),
                    ),
            )
            .subcommand(
                Command::new("projections").about(
                    "Every checkpoint (projections, reactions, partitions): position, head, lag, lease holder, dead letters",
                ),
            )
            .subcommand(
                Command::new("dead-letters")
                    .about("Events readers set aside: list, retry, discard")
                    .subcommand_required(true)
                    .subcommand(
                        Command::new("list")
                            .about("Every dead letter (of NAME, or of every reader)")
                            .arg(Arg::new("name").value_name("NAME")),
                    )
                    .subcommand(letters_command(
                        "retry",
                        "Take the events again with the registered projection (the dead letter goes when it succeeds)",
                    ))
                    .subcommand(letters_command(
                        "discard",
                        "Forget dead letters without taking their events",
                    )),
            )
            .subcommand(
                Command::new("rebuild")
                    .about("Rebuild a registered projection from the start, under its lease")
                    .arg(Arg::new("projection").required(true).value_name("PROJECTION")),
            )
            .subcommand(
                Command::new("schema")
                    .about("The registered event enums' stored shapes")
                    .subcommand_required(true)
                    .subcommand(
                        Command::new("describe").about("Every stored shape of every version"),
                    )
                    .subcommand(
                        Command::new("diff")
                            .about("Compare with a schema lock file")
                            .arg(Arg::new("lock").required(true).value_name("EVENTS_LOCK")),
                    ),
            )
            .subcommand(
                Command::new("export")
                    .about("Write events as JSON lines to stdout, in commit order")
                    .arg(
                        Arg::new("stream_type")
                            .long("stream-type")
                            .value_name("T")
                            .help("Only streams of this type"),
                    )
                    .arg(
                        Arg::new("stream_id")
                            .long("stream-id")
                            .value_name("ID")
                            .help("Only streams with this id"),
                    ),
            )
            .subcommand(
                Command::new("import")
                    .about("Append an export's events with their ids (idempotent)")
                    .arg(
                        Arg::new("file")
                            .required(true)
                            .value_name("FILE")
                            .help("The JSON lines file (- for stdin)"),
                    ),
            )
            .subcommand(
                Command::new("copy")
                    .about("Copy a whole store, resumably, and verify the copy")
                    .arg(Arg::new("from").long("from").value_name("URL").required(true))
                    .arg(Arg::new("to").long("to").value_name("URL").required(true))
                    .arg(
                        Arg::new("checkpoint")
                            .long("checkpoint")
                            .value_name("NAME")
                            .default_value(transfer::COPY_CHECKPOINT)
                            .help("The checkpoint in the target that records the source cursor"),
                    )
                    .arg(
                        Arg::new("limit")
                            .long("limit")
                            .value_name("N")
                            .value_parser(clap::value_parser!(u64))
                            .help("Stop after copying N events (resume with another run)"),
                    )
                    .arg(
                        Arg::new("no_verify")
                            .long("no-verify")
                            .action(ArgAction::SetTrue)
                            .help("Skip comparing the stores at the end"),
                    ),
            )
    }

    /// Runs with the process's arguments, printing to stdout (errors to stderr): the exit code
    /// to return from `main`.
    pub async fn run_from_env(&self) -> ExitCode {
        let mut stdout = std::io::stdout();
        let code = self.run_with_args(std::env::args_os(), &mut stdout).await;
        ExitCode::from(u8::try_from(code).unwrap_or(2))
    }

    /// Runs with `args` (the first one is the program name), printing the output to `out` and
    /// errors to stderr. Returns the exit code: 0 clean, 1 problems found (see the [module
    /// docs](self)), 2 an error.
    pub async fn run_with_args<I, T>(&self, args: I, out: &mut (dyn Write + Send)) -> i32
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let matches = match self.command().try_get_matches_from(args) {
            Ok(matches) => matches,
            Err(e) => {
                use clap::error::ErrorKind;
                return match e.kind() {
                    ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                        let _ = write!(out, "{}", e.render());
                        0
                    }
                    _ => {
                        eprint!("{}", e.render());
                        2
                    }
                };
            }
        };
        match self.run_matches(&matches, out).await {
            Ok(outcome) => outcome.code(),
            Err(e) => {
                eprintln!("error: {e}");
                2
            }
        }
    }

    /// Runs with `args` (the first one is the program name), printing the output to `out`:
    /// what [`run_with_args`](Self::run_with_args) does, with the error typed.
    pub async fn try_run_with_args<I, T>(
        &self,
        args: I,
        out: &mut (dyn Write + Send),
    ) -> Result<Outcome, CliError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let matches = self
            .command()
            .try_get_matches_from(args)
            .map_err(|e| CliError::Usage(e.render().to_string()))?;
        self.run_matches(&matches, out).await
    }

    async fn run_matches(
        &self,
        matches: &ArgMatches,
        out: &mut (dyn Write + Send),
    ) -> Result<Outcome, CliError> {
        let options = Options {
            json: matches.get_flag("json"),
            quiet: matches.get_flag("quiet"),
            batch: matches.get_one::<u64>("batch").map_or_else(
                || match matches.subcommand_name() {
                    Some("copy" | "import") => WRITE_BATCH,
                    _ => READ_BATCH,
                },
                |&n| usize::try_from(n).unwrap_or(usize::MAX),
            ),
            progress_every: matches
                .get_one::<u64>("progress-every")
                .copied()
                .unwrap_or(10_000),
        };
        let string = |m: &ArgMatches, name: &str| m.get_one::<String>(name).cloned();
        let Some((name, sub)) = matches.subcommand() else {
            return Err(CliError::Usage("a subcommand is required".to_owned()));
        };
        match name {
            "verify" => {
                let store = store::open(&required(sub, "store")?, false).await?;
                verify::run(self, &store, sub.get_flag("strict"), &options, out).await
            }
            "streams" => {
                let store = store::open(&required(sub, "store")?, false).await?;
                view::streams(&store, &options, out).await
            }
            "events" => {
                let store = store::open(&required(sub, "store")?, false).await?;
                let stream_type = required(sub, "stream_type")?;
                let stream_id = required(sub, "stream_id")?;
                view::events(self, &store, &stream_type, &stream_id, &options, out).await
            }
            "tail" => {
                let store = store::open(&required(sub, "store")?, false).await?;
                let args = ops::TailArgs {
                    from: sub.get_one::<u64>("from").copied(),
                    limit: sub.get_one::<u64>("limit").copied(),
                    stream_type: string(sub, "stream_type"),
                    poll: std::time::Duration::from_millis(
                        sub.get_one::<u64>("poll_ms").copied().unwrap_or(250),
                    ),
                };
                ops::tail(&store, &args, &options, out).await
            }
            "projections" => {
                let store = store::open(&required(sub, "store")?, false).await?;
                let names: Vec<&'static str> = self.projections.iter().map(|p| p.name()).collect();
                ops::projections(&store, &names, &options, out).await
            }
            "dead-letters" => {
                let store = store::open(&required(sub, "store")?, false).await?;
                match sub.subcommand() {
                    Some(("list", list)) => {
                        ops::list_dead_letters(
                            &store,
                            string(list, "name").as_deref(),
                            &options,
                            out,
                        )
                        .await
                    }
                    Some((verb @ ("retry" | "discard"), m)) => {
                        let name = required(m, "name")?;
                        let positions: Option<Vec<u64>> = if m.get_flag("all") {
                            None
                        } else {
                            let given: Vec<u64> = m
                                .get_many::<u64>("positions")
                                .map(|p| p.copied().collect())
                                .unwrap_or_default();
                            if given.is_empty() {
                                return Err(CliError::Usage(format!(
                                    "dead-letters {verb} {name}: name positions, or --all"
                                )));
                            }
                            Some(given)
                        };
                        let action = if verb == "retry" {
                            ops::LetterAction::Retry
                        } else {
                            ops::LetterAction::Discard
                        };
                        ops::settle_dead_letters(
                            &store,
                            self.projection_ops(&name),
                            &name,
                            positions,
                            action,
                            &options,
                            out,
                        )
                        .await
                    }
                    _ => Err(CliError::Usage(
                        "dead-letters list | retry | discard".into(),
                    )),
                }
            }
            "rebuild" => {
                let name = required(sub, "projection")?;
                let Some(ops) = self.projection_ops(&name) else {
                    let known: Vec<&str> = self.projections.iter().map(|p| p.name()).collect();
                    return Err(CliError::Usage(format!(
                        "`{name}` is not a registered projection (this tool knows: {}); \
                         register it with `Cli::projection::<P>()`",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    )));
                };
                let store = store::open(&required(sub, "store")?, false).await?;
                ops::rebuild(&store, ops, &options, out).await
            }
            "schema" => match sub.subcommand() {
                Some(("describe", _)) => view::describe(self, &options, out),
                Some(("diff", diff)) => view::diff(self, &required(diff, "lock")?, &options, out),
                _ => Err(CliError::Usage(
                    "schema describe | schema diff <lock>".into(),
                )),
            },
            "export" => {
                let store = store::open(&required(sub, "store")?, false).await?;
                transfer::export(
                    &store,
                    string(sub, "stream_type").as_deref(),
                    string(sub, "stream_id").as_deref(),
                    &options,
                    out,
                )
                .await
            }
            "import" => {
                let store = store::open(&required(sub, "store")?, true).await?;
                transfer::import(&store, &required(sub, "file")?, &options, out).await
            }
            "copy" => {
                let from = store::open(&required(sub, "from")?, false).await?;
                let to = store::open(&required(sub, "to")?, true).await?;
                let copy = transfer::CopyArgs {
                    checkpoint: required(sub, "checkpoint")?,
                    limit: sub.get_one::<u64>("limit").copied(),
                    verify: !sub.get_flag("no_verify"),
                };
                transfer::copy(&from, &to, &copy, &options, out).await
            }
            other => Err(CliError::Usage(format!("unknown subcommand `{other}`"))),
        }
    }
}

fn letters_command(name: &'static str, about: &'static str) -> Command {
    Command::new(name)
        .about(about)
        .arg(Arg::new("name").required(true).value_name("NAME"))
        .arg(
            Arg::new("positions")
                .value_name("POSITION")
                .num_args(0..)
                .value_parser(clap::value_parser!(u64)),
        )
        .arg(
            Arg::new("all")
                .long("all")
                .action(ArgAction::SetTrue)
                .conflicts_with("positions")
                .help("Every dead letter of NAME"),
        )
}

fn required(matches: &ArgMatches, name: &str) -> Result<String, CliError> {
    matches.get_one::<String>(name).cloned().ok_or_else(|| {
        CliError::Usage(if name == "store" {
            "this subcommand needs `--store <URL>`".to_owned()
        } else {
            format!("missing argument <{name}>")
        })
    })
}

/// Progress on stderr: on a terminal, a bar redrawn in place with the rate and the time left;
/// otherwise a plain line every `every` events (with the share done and the time left when
/// the total is known).
pub(crate) struct Progress {
    label: &'static str,
    every: u64,
    quiet: bool,
    bar: bool,
    count: u64,
    total: Option<u64>,
    next: u64,
    printed: u64,
    drawn: Option<Instant>,
    started: Instant,
}

/// How often the bar is redrawn.
const REDRAW: std::time::Duration = std::time::Duration::from_millis(100);

impl Progress {
    pub(crate) fn new(label: &'static str, options: &Options) -> Self {
        use std::io::IsTerminal;
        Self {
            label,
            every: options.progress_every,
            quiet: options.quiet,
            bar: !options.quiet && std::io::stderr().is_terminal(),
            count: 0,
            total: None,
            next: options.progress_every,
            printed: 0,
            drawn: None,
            started: Instant::now(),
        }
    }

    /// The number of events expected in all (an estimate: shown as the share done and the
    /// time left).
    pub(crate) fn total(&mut self, total: u64) {
        self.total = Some(total);
    }

    /// Counts `n` more events.
    pub(crate) fn add(&mut self, n: u64) {
        self.set(self.count + n);
    }

    /// Sets the number of events done.
    pub(crate) fn set(&mut self, count: u64) {
        self.count = count;
        if self.bar {
            if self.drawn.is_none_or(|at| at.elapsed() >= REDRAW) {
                self.draw();
            }
        } else if self.count >= self.next {
            while self.next <= self.count {
                self.next += self.every;
            }
            self.print("");
        }
    }

    fn rate(&self) -> (f64, f64) {
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            self.count as f64 / secs
        } else {
            0.0
        };
        (secs, rate)
    }

    /// `" 45%, ETA 12s"` when the total is known.
    fn eta(&self, rate: f64) -> String {
        match self.total {
            Some(total) if total > 0 => {
                let left = total.saturating_sub(self.count);
                let pct = (self.count.min(total) as f64 * 100.0 / total as f64).floor();
                if rate > 0.0 {
                    format!(", {pct:.0}%, ETA {}", duration(left as f64 / rate))
                } else {
                    format!(", {pct:.0}%")
                }
            }
            _ => String::new(),
        }
    }

    fn draw(&mut self) {
        self.drawn = Some(Instant::now());
        let (_, rate) = self.rate();
        let width = 30;
        let bar = match self.total {
            Some(total) if total > 0 => {
                let filled = (self.count.min(total) * width / total) as usize;
                format!(
                    "[{}{}] ",
                    "#".repeat(filled),
                    "-".repeat(width as usize - filled)
                )
            }
            _ => String::new(),
        };
        let of = self.total.map_or_else(String::new, |t| format!("/{t}"));
        eprint!(
            "\r{} {bar}{}{of} events, {:.0} events/s{}\x1b[K",
            self.label,
            self.count,
            rate,
            self.eta(rate)
        );
    }

    fn print(&mut self, suffix: &str) {
        self.printed = self.count;
        if self.quiet {
            return;
        }
        let (secs, rate) = self.rate();
        eprintln!(
            "{}: {} events, {:.1}s, {:.0} events/s{}{suffix}",
            self.label,
            self.count,
            secs,
            rate,
            if suffix.is_empty() {
                self.eta(rate)
            } else {
                String::new()
            }
        );
    }

    /// Prints the final state: the bar with a newline, or a last line (when a progress line
    /// was printed and more events came since).
    pub(crate) fn finish(&mut self) {
        if self.bar {
            if self.drawn.is_some() {
                self.draw();
                eprintln!();
                self.drawn = None;
            }
        } else if self.count >= self.every && self.printed != self.count {
            self.print(" (done)");
        }
    }
}

/// `1h02m`, `3m05s`, `12s`.
fn duration(secs: f64) -> String {
    let secs = secs.max(0.0).round() as u64;
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}
