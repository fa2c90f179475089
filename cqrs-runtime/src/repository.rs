//! The repository: load an aggregate, decide a command, append its events.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::aggregate::{Aggregate, Command, CreationPolicy};
use crate::envelope::{CommandMetadata, Envelope};
use crate::error::{Clash, CommandError};
use crate::event::DecodeError;
use crate::event::{EncodedEvent, EventEnum};
use crate::schema::Shape;
use crate::store::{
    ClaimHolder, CorruptEvent, EventStore, ExpectedVersion, NewEvent, SnapshotStore, StoreError,
    StreamEventRef,
};
use crate::telemetry::{CommandMetrics, Outcome};

mod once;
mod retry;
mod snapshots;
pub use once::{DECISIONS_STREAM_TYPE, Once, event_id};
pub use retry::RetryPolicy;
pub use snapshots::{NoSnapshots, SnapshotPolicy, Snapshotting};

/// An aggregate as loaded from its stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<A> {
    /// The state after applying every stored event.
    pub state: A,
    /// The stream's head version (0 when the stream is empty).
    pub version: u64,
}

/// The result of a committed command.
pub struct Committed<A: Aggregate> {
    /// The appended events, in order, with their envelopes (empty if the handler decided
    /// nothing; then nothing was appended).
    pub events: Vec<Envelope<A::Event>>,
    /// The stream's head version after the command.
    pub version: u64,
    /// The state after applying the new events.
    pub state: A,
    /// The global position of the last appended event (`None` when nothing was appended).
    pub position: Option<u64>,
}

impl<A> fmt::Debug for Committed<A>
where
    A: Aggregate + fmt::Debug,
    A::Event: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Committed")
            .field("events", &self.events)
            .field("version", &self.version)
            .field("state", &self.state)
            .field("position", &self.position)
            .finish()
    }
}

/// Loads aggregates from an [`EventStore`] and executes commands against them.
///
/// `P` is the snapshot policy: [`NoSnapshots`] unless [`Repository::with_snapshots`] was
/// called.
pub struct Repository<A: Aggregate, S: EventStore, P: SnapshotPolicy<A> = NoSnapshots> {
    store: S,
    services: Arc<A::Services>,
    retry: RetryPolicy,
    snapshots: P,
    metrics: Arc<CommandMetrics>,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A: Aggregate, S: EventStore + Clone, P: SnapshotPolicy<A> + Clone> Clone
    for Repository<A, S, P>
{
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            services: Arc::clone(&self.services),
            retry: self.retry,
            snapshots: self.snapshots.clone(),
            metrics: Arc::clone(&self.metrics),
            _aggregate: PhantomData,
        }
    }
}

impl<A: Aggregate, S: EventStore + fmt::Debug, P: SnapshotPolicy<A> + fmt::Debug> fmt::Debug
    for Repository<A, S, P>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repository")
            .field("aggregate", &A::TYPE)
            .field("store", &self.store)
            .field("retry", &self.retry)
            .field("snapshots", &self.snapshots)
            .finish_non_exhaustive()
    }
}

impl<A: Aggregate, S: EventStore> Repository<A, S>
where
    A::Services: Default,
{
    /// A repository over `store` with default services.
    pub fn new(store: S) -> Self {
        Self::with_services(store, A::Services::default())
    }
}

/// Where the ids of a command's events come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventIds {
    /// Fresh UUIDv7s.
    Fresh,
    /// Derived from the command id and the event's index ([`Repository::execute_once`]).
    Derived,
}

/// One attempt's result: committed, or lost a race (for the stream's version, or for a
/// claimed value).
enum Attempt<A: Aggregate> {
    Done(Committed<A>),
    Conflict(ExpectedVersion, u64),
    /// A claimed value is held by another stream: (scope, value, holder).
    Claimed(String, String, ClaimHolder),
    /// Refused by the creation policy or the handler, at this aggregate version.
    Refused(CommandError<A::Error>, u64),
}

/// An attempt that lost a race: for the stream's version, or for a claimed value.
enum Lost {
    Conflict(ExpectedVersion, u64),
    /// (scope, value, holder).
    Claimed(String, String, ClaimHolder),
}

impl<A: Aggregate, S: EventStore> Repository<A, S> {
    /// A repository over `store` whose handlers receive `services`.
    pub fn with_services(store: S, services: A::Services) -> Self {
        Self {
            store,
            services: Arc::new(services),
            retry: RetryPolicy::none(),
            snapshots: NoSnapshots,
            metrics: Arc::new(CommandMetrics::new(A::TYPE)),
            _aggregate: PhantomData,
        }
    }

    /// Takes snapshots in `snapshots` every `every` events; loads then read the snapshot and
    /// apply only the events after it. See [`Snapshotting`] for when snapshots are written
    /// and ignored.
    pub fn with_snapshots<T: SnapshotStore + Clone>(
        self,
        snapshots: T,
        every: u64,
    ) -> Repository<A, S, Snapshotting<T>>
    where
        A: Serialize + DeserializeOwned + Shape,
    {
        self.with_snapshot_policy(Snapshotting::new(snapshots, every))
    }

    /// Uses a configured snapshot policy (for example `Snapshotting::new(store, 100).inline()`).
    pub fn with_snapshot_policy<P: SnapshotPolicy<A>>(self, policy: P) -> Repository<A, S, P> {
        Repository {
            store: self.store,
            services: self.services,
            retry: self.retry,
            snapshots: policy,
            metrics: self.metrics,
            _aggregate: PhantomData,
        }
    }
}

impl<A: Aggregate, S: EventStore, P: SnapshotPolicy<A>> Repository<A, S, P> {
    /// Re-decides commands that lose an optimistic-concurrency race, per `policy`.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The underlying store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The services handed to handlers.
    pub fn services(&self) -> &A::Services {
        &self.services
    }

    /// The snapshot policy.
    pub fn snapshots(&self) -> &P {
        &self.snapshots
    }

    /// Loads the aggregate `id`: its snapshot if one is usable, then every later event.
    pub async fn load(&self, id: &A::Id) -> Result<Loaded<A>, CommandError<A::Error>> {
        Ok(self.load_stream(&id.to_string()).await?.0)
    }

    /// The aggregate `id` as it was at stream version `version` (its events up to that one;
    /// the whole stream when it is shorter). Snapshots are not used: the state is replayed
    /// from the first event, with today's types and upcasts.
    pub async fn load_at(
        &self,
        id: &A::Id,
        version: u64,
    ) -> Result<Loaded<A>, CommandError<A::Error>> {
        let stream_id = id.to_string();
        let loaded = self
            .replay::<true>(&stream_id, A::default(), 0, version)
            .await?;
        Ok(loaded.unwrap_or(Loaded {
            state: A::default(),
            version: 0,
        }))
    }

    /// The aggregate `id` as it was at `time`: its events recorded at or before `time`
    /// ([`Repository::load_at`] the last such version; the empty state when there is none).
    pub async fn load_as_of(
        &self,
        id: &A::Id,
        time: chrono::DateTime<chrono::Utc>,
    ) -> Result<Loaded<A>, CommandError<A::Error>> {
        let stream_id = id.to_string();
        let events = self.store.read_stream(A::TYPE, &stream_id, 1).await?;
        // Versions run in order; `recorded_at` too, but a clock step back between two
        // commands must not hide a later event that is still before `time`.
        let version = events
            .iter()
            .filter(|e| e.recorded_at <= time)
            .map(|e| e.stream_version)
            .max()
            .unwrap_or(0);
        if version == 0 {
            return Ok(Loaded {
                state: A::default(),
                version: 0,
            });
        }
        self.load_at(id, version).await
    }

    /// The loaded state, and the version of the snapshot it started from (0 for none).
    async fn load_stream(
        &self,
        stream_id: &str,
    ) -> Result<(Loaded<A>, u64), CommandError<A::Error>> {
        let span = tracing::info_span!("cqrs.load", aggregate_type = A::TYPE, id = stream_id);
        let started = Instant::now();
        let loaded = async {
            // From the snapshot if there is one, else (or if it is ahead of its stream) from
            // the start; one `replay` call site, so one replay future inside this one.
            let mut snapshot = self.snapshots.load(stream_id).await;
            loop {
                let (state, base) = snapshot.take().unwrap_or_else(|| (A::default(), 0));
                match self
                    .replay::<false>(stream_id, state, base, u64::MAX)
                    .await?
                {
                    Some(loaded) => return Ok((loaded, base)),
                    None if base > 0 => tracing::warn!(
                        snapshot = base,
                        "the snapshot is ahead of its stream (no event at its version): \
                         ignored, rebuilding from the events"
                    ),
                    // From the start there is no snapshot version to miss: not reached.
                    None => {
                        let empty = Loaded {
                            state: A::default(),
                            version: 0,
                        };
                        return Ok((empty, 0));
                    }
                }
            }
        }
        .instrument(span)
        .await;
        self.metrics.load.record(started.elapsed());
        loaded
    }

    /// Applies the events after `base` to `state`, checking that the versions run on from
    /// `base` without a gap or a repeat. With a snapshot (`base > 0`), the event at `base`
    /// is read too, and must exist: `None` when it does not (the snapshot is ahead). Stops
    /// after version `until` when `UNTIL` (a load of the whole stream does not test it).
    async fn replay<const UNTIL: bool>(
        &self,
        stream_id: &str,
        mut state: A,
        base: u64,
        until: u64,
    ) -> Result<Option<Loaded<A>>, CommandError<A::Error>> {
        let mut version = base;
        let mut position = 0;
        let mut at_base = base == 0;
        // Boxed (only on a failure): the error is held across the read's `.await`, and a
        // large field there makes every future around this one larger to move.
        let mut failed: Option<Box<CommandError<A::Error>>> = None;
        // The store lends each event (the in-memory store straight from its log); it is
        // decoded and applied in place.
        self.store
            .replay_stream(A::TYPE, stream_id, base.max(1), |event| {
                if UNTIL && event.stream_version > until {
                    return false;
                }
                if event.stream_version != version + 1 || event.global_position <= position {
                    if !at_base && event.stream_version == base {
                        at_base = true; // the snapshot's own event: it exists
                        position = event.global_position;
                        return true;
                    }
                    failed = Some(Box::new(out_of_sequence::<A>(
                        stream_id, event, version, position,
                    )));
                    return false;
                }
                // The decoder's own result, matched in place: wrapping it in a
                // `CommandError` first moved that larger value for every event.
                match A::Event::decode(event.event_type, event.event_version, event.payload) {
                    Ok(decoded) => {
                        // A split event applies several events; a retired one none.
                        decoded.for_each(|e| apply_events(&mut state, [&e]));
                        version = event.stream_version;
                        position = event.global_position;
                        true
                    }
                    Err(source) => {
                        failed = Some(Box::new(decode_failure::<A>(stream_id, event, source)));
                        false
                    }
                }
            })
            .await?;
        if !at_base {
            return Ok(None);
        }
        if let Some(error) = failed {
            return Err(*error);
        }
        tracing::debug!(version, snapshot = base, "loaded");
        Ok(Some(Loaded { state, version }))
    }

    /// Executes `command` with fresh metadata; see [`Repository::execute_with`].
    ///
    /// The metadata (its command id and the current trace context) is made when the
    /// returned future is first polled.
    pub fn execute(
        &self,
        command: impl Into<A::Command>,
    ) -> impl Future<Output = Result<Committed<A>, CommandError<A::Error>>> {
        // The future returned is `execute_ids`' own: a wrapping `async fn` would move that
        // (large) future into its own at every call.
        self.execute_ids(command.into(), None, EventIds::Fresh)
    }

    /// Executes `command`: load, check the creation policy, decide, append with the expected
    /// version, apply. On a conflict the command is re-loaded and re-decided as long as the
    /// [`RetryPolicy`] allows. Produced events carry `metadata`'s correlation, causation and
    /// user data.
    pub fn execute_with(
        &self,
        command: impl Into<A::Command>,
        metadata: CommandMetadata,
    ) -> impl Future<Output = Result<Committed<A>, CommandError<A::Error>>> {
        self.execute_ids(command.into(), Some(metadata), EventIds::Fresh)
    }

    /// [`Repository::execute_with`], the events' ids coming from `ids`; without `metadata`,
    /// fresh metadata ([`CommandMetadata::new`]).
    async fn execute_ids(
        &self,
        command: A::Command,
        metadata: Option<CommandMetadata>,
        ids: EventIds,
    ) -> Result<Committed<A>, CommandError<A::Error>> {
        let metadata = metadata.unwrap_or_default();
        let stream_id = command.aggregate_id().to_string();
        let span = tracing::info_span!(
            "cqrs.execute",
            aggregate_type = A::TYPE,
            id = %stream_id,
            command = command.command_name(),
            command_id = %metadata.command_id,
        );
        let started = Instant::now();
        let result = async {
            let max = self.retry.max_attempts();
            let mut attempt = 1;
            let mut command = command;
            // One call site for `attempt`: each `.await` of it is a (large) future of its
            // own inside this one.
            loop {
                // Every attempt but the last keeps a copy of the command for the next one.
                let spare = (attempt < max).then(|| command.clone());
                let lost = match self.attempt(command, &stream_id, &metadata, ids).await? {
                    Attempt::Done(committed) => {
                        if ids == EventIds::Derived {
                            // Boxed: the record's future stays out of this one.
                            return Box::pin(self.decided(committed, &stream_id, &metadata)).await;
                        }
                        return Ok(committed);
                    }
                    Attempt::Refused(error, version) => {
                        if ids == EventIds::Derived {
                            return Box::pin(self.refused(error, version, &stream_id, &metadata))
                                .await;
                        }
                        return Err(error);
                    }
                    Attempt::Conflict(expected, actual) => Lost::Conflict(expected, actual),
                    Attempt::Claimed(scope, value, holder) => Lost::Claimed(scope, value, holder),
                };
                let Some(spare) = spare else {
                    return Err(exhausted::<A>(lost, &stream_id, attempt));
                };
                match &lost {
                    Lost::Conflict(expected, actual) => {
                        tracing::debug!(attempt, %expected, actual, "conflict, retrying");
                    }
                    Lost::Claimed(scope, value, _) => {
                        tracing::debug!(attempt, scope, value, "claimed elsewhere, re-deciding");
                    }
                }
                let pause = self.retry.backoff(attempt);
                if pause.is_zero() {
                    tokio::task::yield_now().await;
                } else {
                    // Boxed: a timer is a large future, kept out of this one.
                    Box::pin(tokio::time::sleep(pause)).await;
                }
                command = spare;
                attempt += 1;
                self.metrics.retries.increment(1);
            }
        }
        .instrument(span)
        .await;
        self.metrics.finished(Outcome::of(&result));
        self.metrics.command.record(started.elapsed());
        result
    }

    async fn attempt(
        &self,
        command: A::Command,
        stream_id: &str,
        metadata: &CommandMetadata,
        ids: EventIds,
    ) -> Result<Attempt<A>, CommandError<A::Error>> {
        let (Loaded { mut state, version }, base) = self.load_stream(stream_id).await?;
        if let Err(refused) = check_policy::<A>(&command, stream_id, version) {
            return Ok(Attempt::Refused(refused, version));
        }
        let events = match state.handle(command, &self.services).await {
            Ok(events) => events,
            Err(rejected) => {
                return Ok(Attempt::Refused(CommandError::Rejected(rejected), version));
            }
        };
        if events.is_empty() {
            return Ok(Attempt::Done(Committed {
                events: Vec::new(),
                version,
                state,
                position: None,
            }));
        }

        let event_metadata = metadata.event_metadata();
        let recorded_at = crate::store::now();
        let mut new_events = Vec::with_capacity(events.len());
        for (index, event) in (0..).zip(&events) {
            // Every event of the command shares the one timestamp read above.
            let new = NewEvent::encoded_at(
                encode_event::<A>(event)?,
                event_metadata.clone(),
                recorded_at,
            );
            let new = match ids {
                EventIds::Fresh => new,
                EventIds::Derived => new.with_id(event_id(metadata.command_id, index)),
            };
            let claims = event.claims();
            new_events.push(if claims.is_empty() {
                new
            } else {
                new.with_claims(claims)
            });
        }
        // The first id apart: the rest of a one-event command is empty, and allocates nothing.
        let mut event_ids = new_events.iter().map(|e| e.event_id);
        let first_id = event_ids.next();
        let ids = first_id.into_iter().chain(event_ids.collect::<Vec<_>>());
        let expected = ExpectedVersion::from_version(version);

        let span = tracing::info_span!("cqrs.append", events = new_events.len(), %expected);
        let count = new_events.len() as u64;
        let started = Instant::now();
        let appended = self
            .store
            .append(A::TYPE, stream_id, expected, new_events)
            .instrument(span)
            .await;
        self.metrics.append.record(started.elapsed());
        if appended.is_ok() {
            self.metrics.events.increment(count);
        }
        let outcome = match appended {
            Ok(outcome) => outcome,
            Err(StoreError::Conflict {
                expected, actual, ..
            }) => {
                return Ok(Attempt::Conflict(expected, actual));
            }
            Err(StoreError::Claimed {
                scope,
                value,
                holder,
            }) => return Ok(Attempt::Claimed(scope, value, holder)),
            Err(other) => return Err(other.into()),
        };
        if outcome.positions.len() != events.len() {
            return Err(CommandError::Store(StoreError::backend(format!(
                "store reported {} positions for {} appended events",
                outcome.positions.len(),
                events.len()
            ))));
        }

        apply_events(&mut state, &events);
        self.snapshots
            .committed(stream_id, &state, base, outcome.stream_version)
            .await;
        let first_version = version + 1;
        let position = outcome.last_position();
        // Exactly sized: collecting the zip below would reserve at least four envelopes.
        let mut envelopes = Vec::with_capacity(events.len());
        let numbered = ids.zip(outcome.positions).zip(first_version..);
        for (event, ((event_id, global_position), stream_version)) in
            events.into_iter().zip(numbered)
        {
            envelopes.push(Envelope {
                event_id,
                stream_type: A::TYPE.to_owned(),
                stream_id: stream_id.to_owned(),
                stream_version,
                global_position,
                recorded_at,
                metadata: event_metadata.clone(),
                event,
            });
        }
        Ok(Attempt::Done(Committed {
            events: envelopes,
            version: outcome.stream_version,
            state,
            position,
        }))
    }
}

/// The error of a command whose last attempt lost a race.
fn exhausted<A: Aggregate>(lost: Lost, stream_id: &str, attempts: u32) -> CommandError<A::Error> {
    match lost {
        Lost::Conflict(expected, actual) => CommandError::Conflict {
            stream_type: A::TYPE.to_owned(),
            stream_id: stream_id.to_owned(),
            expected,
            actual,
            attempts,
        },
        Lost::Claimed(scope, value, holder) => CommandError::Claimed(Box::new(Clash {
            stream_type: A::TYPE.to_owned(),
            stream_id: stream_id.to_owned(),
            scope,
            value,
            holder,
            attempts,
        })),
    }
}

/// Checks a command's creation policy against the stream's current version.
pub(crate) fn check_policy<A: Aggregate>(
    command: &A::Command,
    stream_id: &str,
    version: u64,
) -> Result<(), CommandError<A::Error>> {
    match A::creation_policy(command) {
        CreationPolicy::Create if version > 0 => Err(CommandError::AlreadyExists {
            stream_type: A::TYPE.to_owned(),
            stream_id: stream_id.to_owned(),
            version,
            command: command.command_name(),
        }),
        CreationPolicy::Existing if version == 0 => Err(CommandError::NotFound {
            stream_type: A::TYPE.to_owned(),
            stream_id: stream_id.to_owned(),
            command: command.command_name(),
        }),
        _ => Ok(()),
    }
}

/// The one code path that applies events to an aggregate (load, execute and the test kit).
pub(crate) fn apply_events<'a, A: Aggregate>(
    state: &mut A,
    events: impl IntoIterator<Item = &'a A::Event>,
) {
    for event in events {
        state.apply(event);
    }
}

/// Encodes one produced event for storage.
pub(crate) fn encode_event<A: Aggregate>(
    event: &A::Event,
) -> Result<EncodedEvent, CommandError<A::Error>> {
    event.encode().map_err(|source| CommandError::Encode {
        event_type: event.event_name(),
        source,
    })
}

/// A stored event of `A`'s stream `stream_id` whose version does not follow `previous`: a
/// deleted, repeated or reordered event (a damaged or tampered stream).
#[cold]
#[inline(never)]
fn out_of_sequence<A: Aggregate>(
    stream_id: &str,
    stored: StreamEventRef<'_>,
    previous: u64,
    previous_position: u64,
) -> CommandError<A::Error> {
    let reason = if stored.stream_version == previous + 1 {
        format!(
            "the stream is damaged: version {} is at global position {}, not after version \
             {previous}'s position {previous_position}",
            stored.stream_version, stored.global_position
        )
    } else {
        format!(
            "the stream is damaged: version {} follows version {previous} (expected {})",
            stored.stream_version,
            previous + 1
        )
    };
    CommandError::Store(
        CorruptEvent {
            global_position: stored.global_position,
            cursor: None,
            stream_type: Some(A::TYPE.to_owned()),
            stream_id: Some(stream_id.to_owned()),
            stream_version: Some(stored.stream_version),
            reason,
        }
        .into(),
    )
}

/// A stored event of `A`'s stream `stream_id` that did not decode, with the stream context.
#[cold]
#[inline(never)]
fn decode_failure<A: Aggregate>(
    stream_id: &str,
    stored: StreamEventRef<'_>,
    source: DecodeError,
) -> CommandError<A::Error> {
    CommandError::Decode {
        stream_type: A::TYPE.to_owned(),
        stream_id: stream_id.to_owned(),
        stream_version: stored.stream_version,
        global_position: stored.global_position,
        source,
    }
}
