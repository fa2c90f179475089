//! What the library reports to a monitoring system: metrics through the [`metrics`] facade
//! (the application installs the exporter it wants), and the trace context carried in event
//! metadata, so that a trace follows a command through the projections and reactions that
//! process its events, across processes.
//!
//! # Metrics
//!
//! Install a recorder (`metrics-exporter-prometheus`, or any other) before creating
//! repositories and runners: they register their handles once, when they are built. Call
//! [`describe`] once to give the recorder each metric's unit and help text.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `cqrs_commands_total` | counter | `aggregate`, `outcome` | commands executed, by outcome: `committed`, `rejected`, `conflict`, `claimed`, `not_found`, `already_exists`, `error` |
//! | `cqrs_events_appended_total` | counter | `aggregate` | events appended by commands |
//! | `cqrs_command_retries_total` | counter | `aggregate` | attempts re-run after a version conflict or a claim clash |
//! | `cqrs_command_duration_seconds` | histogram | `aggregate` | one command: load, decide, append, retries included |
//! | `cqrs_load_duration_seconds` | histogram | `aggregate` | one load of an aggregate (snapshot and replay) |
//! | `cqrs_append_duration_seconds` | histogram | `aggregate` | one append of a command's events |
//! | `cqrs_runner_events_total` | counter | `runner`, `partition` | events a runner committed past (dead letters included) |
//! | `cqrs_runner_batches_total` | counter | `runner`, `partition` | batches committed |
//! | `cqrs_runner_position` | gauge | `runner`, `partition` | the global position of the last committed event |
//! | `cqrs_runner_head` | gauge | `runner`, `partition` | the head of the source when last read |
//! | `cqrs_runner_lag` | gauge | `runner`, `partition` | `head - position` (positions, not events: gaps count) |
//! | `cqrs_runner_errors_total` | counter | `runner`, `partition`, `kind` | failures by kind: `transient` (retried), `event` (poison event), `handler`, `superseded`, `store` |
//! | `cqrs_runner_dead_letters_total` | counter | `runner`, `partition` | events skipped and recorded as dead letters |
//!
//! `partition` is `all` for a runner that is not partitioned. The runner of one
//! [`Partition`](crate::processing::Partition) (its handler named `{name}#p{index}/{count}`,
//! as in a [`Fleet`](crate::processing::Fleet)) reports `runner = {name}` and
//! `partition = {index}/{count}`.
//!
//! # Trace context
//!
//! Every event's [`Metadata`](crate::envelope::Metadata) may carry a W3C `traceparent`
//! ([`TraceContext`]). A command takes the *current* context when its
//! [`CommandMetadata`](crate::envelope::CommandMetadata) is made: the one set with
//! [`TraceContext::scope`] (for example from an incoming request's `traceparent` header), or
//! else what the hook installed with [`set_current_hook`] returns (a bridge to OpenTelemetry);
//! its events carry a child of it. A command sent by a reaction continues the trace of the
//! event that caused it, in whatever process the reaction runs; runner spans record the
//! `trace_id` of the events they handle.

use std::fmt;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The metric names, as constants (see the [module docs](self) for kinds and labels).
pub mod names {
    /// Commands executed, by `aggregate` and `outcome`.
    pub const COMMANDS: &str = "cqrs_commands_total";
    /// Events appended by commands, by `aggregate`.
    pub const EVENTS_APPENDED: &str = "cqrs_events_appended_total";
    /// Attempts re-run after a conflict or a claim clash, by `aggregate`.
    pub const COMMAND_RETRIES: &str = "cqrs_command_retries_total";
    /// Seconds per command, by `aggregate`.
    pub const COMMAND_DURATION: &str = "cqrs_command_duration_seconds";
    /// Seconds per aggregate load, by `aggregate`.
    pub const LOAD_DURATION: &str = "cqrs_load_duration_seconds";
    /// Seconds per append, by `aggregate`.
    pub const APPEND_DURATION: &str = "cqrs_append_duration_seconds";
    /// Events taken by a runner's handler, by `runner` and `partition`.
    pub const RUNNER_EVENTS: &str = "cqrs_runner_events_total";
    /// Batches a runner committed, by `runner` and `partition`.
    pub const RUNNER_BATCHES: &str = "cqrs_runner_batches_total";
    /// A runner's committed position, by `runner` and `partition`.
    pub const RUNNER_POSITION: &str = "cqrs_runner_position";
    /// A runner's source head, by `runner` and `partition`.
    pub const RUNNER_HEAD: &str = "cqrs_runner_head";
    /// A runner's lag in positions, by `runner` and `partition`.
    pub const RUNNER_LAG: &str = "cqrs_runner_lag";
    /// A runner's failures, by `runner`, `partition` and `kind`.
    pub const RUNNER_ERRORS: &str = "cqrs_runner_errors_total";
    /// Events a runner recorded as dead letters, by `runner` and `partition`.
    pub const RUNNER_DEAD_LETTERS: &str = "cqrs_runner_dead_letters_total";
}

/// What a command ended in, as the `outcome` label of [`names::COMMANDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Committed,
    Rejected,
    Conflict,
    Claimed,
    NotFound,
    AlreadyExists,
    Error,
}

impl Outcome {
    const ALL: [Outcome; 7] = [
        Outcome::Committed,
        Outcome::Rejected,
        Outcome::Conflict,
        Outcome::Claimed,
        Outcome::NotFound,
        Outcome::AlreadyExists,
        Outcome::Error,
    ];

    fn label(self) -> &'static str {
        match self {
            Outcome::Committed => "committed",
            Outcome::Rejected => "rejected",
            Outcome::Conflict => "conflict",
            Outcome::Claimed => "claimed",
            Outcome::NotFound => "not_found",
            Outcome::AlreadyExists => "already_exists",
            Outcome::Error => "error",
        }
    }

    /// The outcome of a command that ended in `result`.
    pub(crate) fn of<T, E>(result: &Result<T, crate::error::CommandError<E>>) -> Self {
        use crate::error::CommandError;
        match result {
            Ok(_) => Outcome::Committed,
            Err(CommandError::Rejected(_)) => Outcome::Rejected,
            Err(CommandError::Conflict { .. }) => Outcome::Conflict,
            Err(CommandError::Claimed(_)) => Outcome::Claimed,
            Err(CommandError::NotFound { .. }) => Outcome::NotFound,
            Err(CommandError::AlreadyExists { .. }) => Outcome::AlreadyExists,
            Err(_) => Outcome::Error,
        }
    }
}

/// The handles a repository records its commands with, registered once per repository
/// (labelled with the aggregate's stream type).
#[derive(Debug)]
pub(crate) struct CommandMetrics {
    outcomes: [metrics::Counter; 7],
    pub(crate) events: metrics::Counter,
    pub(crate) retries: metrics::Counter,
    pub(crate) command: metrics::Histogram,
    pub(crate) load: metrics::Histogram,
    pub(crate) append: metrics::Histogram,
}

impl CommandMetrics {
    /// Registers the handles of `aggregate` with the current recorder.
    pub(crate) fn new(aggregate: &'static str) -> Self {
        let labels = [("aggregate", aggregate)];
        Self {
            outcomes: Outcome::ALL.map(|outcome| {
                metrics::counter!(
                    names::COMMANDS,
                    "aggregate" => aggregate,
                    "outcome" => outcome.label()
                )
            }),
            events: metrics::counter!(names::EVENTS_APPENDED, &labels),
            retries: metrics::counter!(names::COMMAND_RETRIES, &labels),
            command: metrics::histogram!(names::COMMAND_DURATION, &labels),
            load: metrics::histogram!(names::LOAD_DURATION, &labels),
            append: metrics::histogram!(names::APPEND_DURATION, &labels),
        }
    }

    /// Counts one command that ended in `outcome`.
    pub(crate) fn finished(&self, outcome: Outcome) {
        self.outcomes[outcome as usize].increment(1);
    }
}

/// The handles a runner records its progress with, registered once per runner (labelled
/// with its name and partition).
#[derive(Debug)]
pub(crate) struct RunnerMetrics {
    pub(crate) events: metrics::Counter,
    pub(crate) batches: metrics::Counter,
    pub(crate) dead_letters: metrics::Counter,
    position: metrics::Gauge,
    head: metrics::Gauge,
    lag: metrics::Gauge,
    /// By kind: transient, event, handler, superseded, store.
    errors: [metrics::Counter; 5],
}

/// What a runner failure was, as the `kind` label of [`names::RUNNER_ERRORS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunnerFailure {
    /// Retried: a lost connection, a busy database.
    Transient,
    /// An event that could not be decoded or read.
    Event,
    /// The handler failed.
    Handler,
    /// Another runner took over.
    Superseded,
    /// Any other store failure.
    Store,
}

impl RunnerFailure {
    const LABELS: [&'static str; 5] = ["transient", "event", "handler", "superseded", "store"];
}

impl RunnerMetrics {
    /// Registers the handles of the runner `runner` (partition `partition`) with the current
    /// recorder.
    pub(crate) fn new(runner: &str, partition: &str) -> Self {
        let labels = [
            ("runner", runner.to_owned()),
            ("partition", partition.to_owned()),
        ];
        let error = |kind: &'static str| {
            metrics::counter!(
                names::RUNNER_ERRORS,
                "runner" => runner.to_owned(),
                "partition" => partition.to_owned(),
                "kind" => kind
            )
        };
        Self {
            events: metrics::counter!(names::RUNNER_EVENTS, &labels),
            batches: metrics::counter!(names::RUNNER_BATCHES, &labels),
            dead_letters: metrics::counter!(names::RUNNER_DEAD_LETTERS, &labels),
            position: metrics::gauge!(names::RUNNER_POSITION, &labels),
            head: metrics::gauge!(names::RUNNER_HEAD, &labels),
            lag: metrics::gauge!(names::RUNNER_LAG, &labels),
            errors: RunnerFailure::LABELS.map(error),
        }
    }

    /// Sets the position, head and lag gauges.
    pub(crate) fn progress(&self, position: u64, head: u64) {
        self.position.set(position as f64);
        self.head.set(head as f64);
        self.lag.set(head.saturating_sub(position) as f64);
    }

    /// Counts one failure.
    pub(crate) fn failed(&self, kind: RunnerFailure) {
        self.errors[kind as usize].increment(1);
    }
}

/// Gives the installed recorder the unit and help text of every metric (call once, after
/// installing it).
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        names::COMMANDS,
        Unit::Count,
        "Commands executed, by outcome."
    );
    describe_counter!(
        names::EVENTS_APPENDED,
        Unit::Count,
        "Events appended by commands."
    );
    describe_counter!(
        names::COMMAND_RETRIES,
        Unit::Count,
        "Command attempts re-run after a version conflict or a claim clash."
    );
    describe_histogram!(
        names::COMMAND_DURATION,
        Unit::Seconds,
        "One command: load, decide, append, retries included."
    );
    describe_histogram!(
        names::LOAD_DURATION,
        Unit::Seconds,
        "One load of an aggregate."
    );
    describe_histogram!(
        names::APPEND_DURATION,
        Unit::Seconds,
        "One append of a command's events."
    );
    describe_counter!(
        names::RUNNER_EVENTS,
        Unit::Count,
        "Events a runner's handler took."
    );
    describe_counter!(
        names::RUNNER_BATCHES,
        Unit::Count,
        "Batches a runner committed."
    );
    describe_gauge!(
        names::RUNNER_POSITION,
        Unit::Count,
        "The global position of a runner's last committed event."
    );
    describe_gauge!(
        names::RUNNER_HEAD,
        Unit::Count,
        "The head of a runner's source when last read."
    );
    describe_gauge!(
        names::RUNNER_LAG,
        Unit::Count,
        "Head minus position, in global positions."
    );
    describe_counter!(
        names::RUNNER_ERRORS,
        Unit::Count,
        "Runner failures by kind."
    );
    describe_counter!(
        names::RUNNER_DEAD_LETTERS,
        Unit::Count,
        "Events a runner skipped and recorded as dead letters."
    );
}

/// A W3C trace context: the trace, the span that caused what carries it, and whether the trace
/// is sampled. Stored in event metadata as its `traceparent` text,
/// `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    /// The trace id (never zero).
    pub trace_id: u128,
    /// The parent span id (never zero).
    pub span_id: u64,
    /// The trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceContext {
    /// A new trace (random ids), sampled.
    pub fn new_root() -> Self {
        let id = uuid::Uuid::new_v4().as_u128();
        Self {
            trace_id: id.max(1),
            span_id: new_span_id(),
            flags: 1,
        }
    }

    /// Parses a `traceparent` header value (version `00`, or a later version read as `00`
    /// as the W3C specification asks); `None` if it is malformed or its ids are zero.
    pub fn parse(traceparent: &str) -> Option<Self> {
        let text = traceparent.trim();
        let mut parts = text.split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        fn hex(s: &str, len: usize) -> Option<&str> {
            (s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
                .then_some(s)
        }
        let version = u8::from_str_radix(hex(version, 2)?, 16).ok()?;
        // Version ff is invalid; version 00 has exactly four fields.
        if version == 0xff || (version == 0 && parts.next().is_some()) {
            return None;
        }
        let trace_id = u128::from_str_radix(hex(trace, 32)?, 16).ok()?;
        let span_id = u64::from_str_radix(hex(span, 16)?, 16).ok()?;
        let flags = u8::from_str_radix(hex(flags, 2)?, 16).ok()?;
        (trace_id != 0 && span_id != 0).then_some(Self {
            trace_id,
            span_id,
            flags,
        })
    }

    /// The `traceparent` text.
    pub fn traceparent(&self) -> String {
        self.to_string()
    }

    /// The same trace with a new span id: the context of work this one causes.
    pub fn child(&self) -> Self {
        Self {
            span_id: new_span_id(),
            ..*self
        }
    }

    /// Whether the trace is sampled.
    pub fn is_sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The trace id as 32 hex digits (what a span's `trace_id` field records).
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The current context: the innermost [`scope`](Self::scope), else the
    /// [hook](set_current_hook)'s answer, else none.
    pub fn current() -> Option<Self> {
        CURRENT
            .try_with(|current| *current)
            .ok()
            .or_else(|| HOOK.get().and_then(|hook| hook()))
    }

    /// Runs `future` with this context as the current one: commands made inside it carry a
    /// child of it.
    pub async fn scope<F: Future>(self, future: F) -> F::Output {
        CURRENT.scope(self, future).await
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.span_id, self.flags
        )
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceContext({self})")
    }
}

impl Serialize for TraceContext {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TraceContext {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{}` is not a W3C traceparent",
                crate::store::clip(&text)
            ))
        })
    }
}

tokio::task_local! {
    static CURRENT: TraceContext;
}

/// Where the current context comes from outside a [`TraceContext::scope`].
static HOOK: OnceLock<fn() -> Option<TraceContext>> = OnceLock::new();

/// Installs the function [`TraceContext::current`] asks when no scope is set (for example a
/// bridge that reads the current OpenTelemetry span). Once per process: `false` if a hook was
/// already installed.
pub fn set_current_hook(hook: fn() -> Option<TraceContext>) -> bool {
    HOOK.set(hook).is_ok()
}

/// A random non-zero span id.
fn new_span_id() -> u64 {
    let id = uuid::Uuid::new_v4().as_u64_pair().0;
    id.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips() {
        let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = TraceContext::parse(text).expect("valid");
        assert_eq!(ctx.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(ctx.span_id, 0x00f067aa0ba902b7);
        assert!(ctx.is_sampled());
        assert_eq!(ctx.to_string(), text);
        let child = ctx.child();
        assert_eq!(child.trace_id, ctx.trace_id);
        assert_ne!(child.span_id, ctx.span_id);
    }

    #[test]
    fn malformed_traceparents_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
        // A later version may add fields; its first four are read.
        assert!(
            TraceContext::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz")
                .is_some()
        );
    }

    #[tokio::test]
    async fn a_scope_sets_the_current_context() {
        assert_eq!(TraceContext::current(), None);
        let ctx = TraceContext::new_root();
        let seen = ctx.scope(async { TraceContext::current() }).await;
        assert_eq!(seen, Some(ctx));
    }
}
