//! The repository: load an aggregate, decide a command, append its events.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::aggregate::{Aggregate, Command, CreationPolicy};
use crate::envelope::{CommandMetadata, Envelope};
use crate::error::CommandError;
use crate::event::DecodeError;
use crate::event::{EncodedEvent, EventEnum};
use crate::schema::Shape;
use crate::store::{
    EventStore, ExpectedVersion, NewEvent, SnapshotStore, StoreError, StreamEventRef,
};

mod retry;
mod snapshots;
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

/// One attempt's result: committed, or lost the race at (expected, actual).
enum Attempt<A: Aggregate> {
    Done(Committed<A>),
    Conflict(ExpectedVersion, u64),
}

impl<A: Aggregate, S: EventStore> Repository<A, S> {
    /// A repository over `store` whose handlers receive `services`.
    pub fn with_services(store: S, services: A::Services) -> Self {
        Self {
            store,
            services: Arc::new(services),
            retry: RetryPolicy::none(),
            snapshots: NoSnapshots,
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
            _aggregate: PhantomData,
        }
    }
}

impl<A: Aggregate, S: EventStore, P: SnapshotPolicy<A>> Repository<A, S, P> {
    /// Re-decides commands that lose an optimistic-concurrency race, per `policy`.
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
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

    /// The loaded state, and the version of the snapshot it started from (0 for none).
    async fn load_stream(
        &self,
        stream_id: &str,
    ) -> Result<(Loaded<A>, u64), CommandError<A::Error>> {
        let span = tracing::info_span!("cqrs.load", aggregate_type = A::TYPE, id = stream_id);
        async {
            let (mut state, base) = match self.snapshots.load(stream_id).await {
                Some((state, version)) => (state, version),
                None => (A::default(), 0),
            };
            let mut version = base;
            let mut failed = None;
            // The store lends each event (the in-memory store straight from its log); it is
            // decoded and applied in place.
            self.store
                .replay_stream(A::TYPE, stream_id, base + 1, |event| {
                    // The decoder's own result, matched in place: wrapping it in a
                    // `CommandError` first moved that larger value for every event.
                    match A::Event::decode(event.event_type, event.event_version, event.payload) {
                        Ok(decoded) => {
                            // A split event applies several events; a retired one none.
                            decoded.for_each(|e| apply_events(&mut state, [&e]));
                            version = event.stream_version;
                            true
                        }
                        Err(source) => {
                            failed = Some(decode_failure::<A>(stream_id, event, source));
                            false
                        }
                    }
                })
                .await?;
            if let Some(error) = failed {
                return Err(error);
            }
            tracing::debug!(version, snapshot = base, "loaded");
            Ok((Loaded { state, version }, base))
        }
        .instrument(span)
        .await
    }

    /// Executes `command` with fresh metadata; see [`Repository::execute_with`].
    pub async fn execute(
        &self,
        command: impl Into<A::Command>,
    ) -> Result<Committed<A>, CommandError<A::Error>> {
        self.execute_with(command, CommandMetadata::new()).await
    }

    /// Executes `command`: load, check the creation policy, decide, append with the expected
    /// version, apply. On a conflict the command is re-loaded and re-decided as long as the
    /// [`RetryPolicy`] allows. Produced events carry `metadata`'s correlation, causation and
    /// user data.
    pub async fn execute_with(
        &self,
        command: impl Into<A::Command>,
        metadata: CommandMetadata,
    ) -> Result<Committed<A>, CommandError<A::Error>> {
        let command = command.into();
        let stream_id = command.aggregate_id().to_string();
        let span = tracing::info_span!(
            "cqrs.execute",
            aggregate_type = A::TYPE,
            id = %stream_id,
            command = command.command_name(),
            command_id = %metadata.command_id,
        );
        async {
            let max = self.retry.max_attempts();
            let mut attempt = 1;
            while attempt < max {
                match self.attempt(command.clone(), &stream_id, &metadata).await? {
                    Attempt::Done(committed) => return Ok(committed),
                    Attempt::Conflict(expected, actual) => {
                        tracing::debug!(attempt, %expected, actual, "conflict, retrying");
                        let pause = self.retry.backoff(attempt);
                        if pause.is_zero() {
                            tokio::task::yield_now().await;
                        } else {
                            tokio::time::sleep(pause).await;
                        }
                    }
                }
                attempt += 1;
            }
            match self.attempt(command, &stream_id, &metadata).await? {
                Attempt::Done(committed) => Ok(committed),
                Attempt::Conflict(expected, actual) => Err(CommandError::Conflict {
                    stream_type: A::TYPE.to_owned(),
                    stream_id: stream_id.clone(),
                    expected,
                    actual,
                    attempts: attempt,
                }),
            }
        }
        .instrument(span)
        .await
    }

    async fn attempt(
        &self,
        command: A::Command,
        stream_id: &str,
        metadata: &CommandMetadata,
    ) -> Result<Attempt<A>, CommandError<A::Error>> {
        let (Loaded { mut state, version }, base) = self.load_stream(stream_id).await?;
        check_policy::<A>(A::creation_policy(&command), stream_id, version)?;
        let events = state
            .handle(command, &self.services)
            .await
            .map_err(CommandError::Rejected)?;
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
        for event in &events {
            // Every event of the command shares the one timestamp read above.
            new_events.push(NewEvent::encoded_at(
                encode_event::<A>(event)?,
                event_metadata.clone(),
                recorded_at,
            ));
        }
        let ids: Vec<_> = new_events.iter().map(|e| e.event_id).collect();
        let expected = ExpectedVersion::from_version(version);

        let span = tracing::info_span!("cqrs.append", events = new_events.len(), %expected);
        let appended = self
            .store
            .append(A::TYPE, stream_id, expected, new_events)
            .instrument(span)
            .await;
        let outcome = match appended {
            Ok(outcome) => outcome,
            Err(StoreError::Conflict {
                expected, actual, ..
            }) => {
                return Ok(Attempt::Conflict(expected, actual));
            }
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
        let numbered = ids.into_iter().zip(outcome.positions).zip(first_version..);
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

/// Checks a command's creation policy against the stream's current version.
pub(crate) fn check_policy<A: Aggregate>(
    policy: CreationPolicy,
    stream_id: &str,
    version: u64,
) -> Result<(), CommandError<A::Error>> {
    match policy {
        CreationPolicy::Create if version > 0 => Err(CommandError::AlreadyExists {
            stream_type: A::TYPE.to_owned(),
            stream_id: stream_id.to_owned(),
            version,
        }),
        CreationPolicy::Existing if version == 0 => Err(CommandError::NotFound {
            stream_type: A::TYPE.to_owned(),
            stream_id: stream_id.to_owned(),
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
