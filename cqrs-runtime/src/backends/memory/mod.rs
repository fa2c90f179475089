//! The in-memory backend, for tests and demos: an event store, checkpoints, snapshots and
//! leases that live as long as the process.

mod side;

pub use crate::store::{InMemoryLease, InMemoryLeases};
pub use side::{InMemoryCheckpoints, InMemorySnapshots};

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use uuid::Uuid;

use crate::envelope::Metadata;

use super::idempotency::{Slot, classify};
use crate::store::{
    AppendOutcome, Claim, ClaimAction, ClaimHolder, ClaimRebuild, ClaimStore, ClaimsRebuilt,
    Cursor, EventFilter, EventStore, ExpectedVersion, NewEvent, ReadBatch, StoreError, StoredEvent,
    StreamEventRef, check_append, claimed, net,
};

/// An [`EventStore`] held in memory.
///
/// Cloning is cheap and every clone shares the same log. Safe to use from many tokio tasks and
/// threads: each operation takes a short, non-async critical section on a lock. Streams are
/// indexed, so [`EventStore::read_stream`] does not scan the global log.
#[derive(Clone)]
pub struct InMemoryEventStore {
    inner: Arc<Inner>,
}

struct Inner {
    log: RwLock<Log>,
    head: watch::Sender<u64>,
}

/// The log, laid out for replays: each stream keeps its events and their payload bytes in
/// contiguous buffers of its own, so loading a stream walks two arrays instead of chasing one
/// heap allocation per event (and its layout does not depend on what else the process
/// allocated between appends). The global order is an index into the streams.
#[derive(Default)]
struct Log {
    /// Every stream, in order of first append.
    streams: Vec<Stream>,
    /// Per stream type, per stream id: the index in `streams`.
    by_key: HashMap<String, HashMap<String, usize>>,
    /// The global log: the event at position `p` is `order[p - 1]` (stream index, version - 1).
    order: Vec<(usize, usize)>,
    /// Event id → global position.
    ids: HashMap<Uuid, u64>,
    /// Interned wire names: an event's `name` indexes into it.
    names: Vec<Cow<'static, str>>,
    /// Claimed values: (scope, value) → holder.
    claims: HashMap<(String, String), ClaimHolder>,
    name_index: HashMap<Cow<'static, str>, u32>,
}

struct Stream {
    stream_type: String,
    stream_id: String,
    /// What a replay reads, one entry per version (index `v - 1`).
    hot: Vec<Hot>,
    /// The rest of each event, same indexes.
    cold: Vec<Cold>,
    /// The payloads of `hot`, back to back.
    payloads: Vec<u8>,
}

struct Hot {
    global_position: u64,
    name: u32,
    event_version: u32,
    payload_start: usize,
    payload_end: usize,
}

struct Cold {
    event_id: Uuid,
    metadata: Metadata,
    recorded_at: DateTime<Utc>,
}

impl Stream {
    fn payload(&self, hot: &Hot) -> &[u8] {
        self.payloads
            .get(hot.payload_start..hot.payload_end)
            .unwrap_or_default()
    }
}

impl Log {
    fn stream_index(&self, stream_type: &str, stream_id: &str) -> Option<usize> {
        self.by_key.get(stream_type)?.get(stream_id).copied()
    }

    fn stream(&self, stream_type: &str, stream_id: &str) -> Option<&Stream> {
        self.streams.get(self.stream_index(stream_type, stream_id)?)
    }

    fn version(&self, stream_type: &str, stream_id: &str) -> u64 {
        self.stream(stream_type, stream_id)
            .map_or(0, |s| s.hot.len() as u64)
    }

    fn name(&self, index: u32) -> &str {
        self.names.get(index as usize).map_or("", |n| n)
    }

    /// The index of `name`, added if new. The caller checked that there is room
    /// ([`Log::room_for`]), so the index fits.
    fn intern(&mut self, name: Cow<'static, str>) -> u32 {
        if let Some(&index) = self.name_index.get(&name) {
            return index;
        }
        let index = self.names.len() as u32;
        self.names.push(name.clone());
        self.name_index.insert(name, index);
        index
    }

    /// Refuses a batch that could overflow the name table, before anything is stored.
    fn room_for(&self, events: &[NewEvent]) -> Result<(), StoreError> {
        if self.names.len().saturating_add(events.len()) > u32::MAX as usize {
            return Err(StoreError::backend(
                "more than 2^32 event names in one store",
            ));
        }
        Ok(())
    }

    /// The event at global position `position`: its stream and version index.
    fn at(&self, position: u64) -> Option<(&Stream, usize)> {
        let index = usize::try_from(position.checked_sub(1)?).ok()?;
        let &(stream, version) = self.order.get(index)?;
        Some((self.streams.get(stream)?, version))
    }

    fn slot(&self, id: &Uuid) -> Option<Slot<'_>> {
        let position = *self.ids.get(id)?;
        let (stream, version) = self.at(position)?;
        Some(Slot {
            stream_type: &stream.stream_type,
            stream_id: &stream.stream_id,
            stream_version: version as u64 + 1,
            global_position: position,
        })
    }

    /// The owned event at version index `version` of `stream`.
    fn stored(&self, stream: &Stream, version: usize) -> Option<StoredEvent> {
        let (hot, cold) = (stream.hot.get(version)?, stream.cold.get(version)?);
        Some(StoredEvent {
            global_position: hot.global_position,
            stream_type: stream.stream_type.clone(),
            stream_id: stream.stream_id.clone(),
            stream_version: version as u64 + 1,
            event_id: cold.event_id,
            event_type: self.name(hot.name).to_owned(),
            event_version: hot.event_version,
            payload: stream.payload(hot).to_vec(),
            metadata: cold.metadata.clone(),
            recorded_at: cold.recorded_at,
        })
    }

    fn append(
        &mut self,
        stream_type: &str,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        let actual = self.version(stream_type, stream_id);
        if let Some(outcome) = classify(stream_type, stream_id, expected, &events, actual, |id| {
            self.slot(id)
        })? {
            return Ok(outcome);
        }
        if events.is_empty() {
            return Ok(AppendOutcome {
                stream_version: actual,
                positions: Vec::new(),
            });
        }
        self.room_for(&events)?;
        let claims = self.check_claims(stream_type, stream_id, &events)?;
        let first_position = self.order.len() as u64 + 1;

        let index = match self.stream_index(stream_type, stream_id) {
            Some(index) => index,
            None => {
                let index = self.streams.len();
                self.streams.push(Stream {
                    stream_type: stream_type.to_owned(),
                    stream_id: stream_id.to_owned(),
                    hot: Vec::new(),
                    cold: Vec::new(),
                    payloads: Vec::new(),
                });
                self.by_key
                    .entry(stream_type.to_owned())
                    .or_default()
                    .insert(stream_id.to_owned(), index);
                index
            }
        };
        let mut positions = Vec::with_capacity(events.len());
        for event in events {
            let global_position = self.order.len() as u64 + 1;
            let name = self.intern(event.event_type);
            let Some(stream) = self.streams.get_mut(index) else {
                return Err(StoreError::backend("in-memory stream index out of range"));
            };
            let version = stream.hot.len();
            let payload_start = stream.payloads.len();
            stream.payloads.extend_from_slice(&event.payload);
            stream.hot.push(Hot {
                global_position,
                name,
                event_version: event.event_version,
                payload_start,
                payload_end: stream.payloads.len(),
            });
            stream.cold.push(Cold {
                event_id: event.event_id,
                metadata: event.metadata,
                recorded_at: event.recorded_at,
            });
            self.order.push((index, version));
            self.ids.insert(event.event_id, global_position);
            positions.push(global_position);
        }
        self.apply_claims(stream_type, stream_id, first_position, claims);
        Ok(AppendOutcome {
            stream_version: self.streams.get(index).map_or(0, |s| s.hot.len() as u64),
            positions,
        })
    }

    /// The batch's net claims, refused if another stream holds one of them.
    fn check_claims(
        &self,
        stream_type: &str,
        stream_id: &str,
        events: &[NewEvent],
    ) -> Result<Vec<(usize, Claim)>, StoreError> {
        let batch = events
            .iter()
            .enumerate()
            .flat_map(|(i, e)| e.claims.iter().map(move |c| (i, c)));
        let net = net(batch);
        for (_, claim) in &net {
            if claim.action != ClaimAction::Claim {
                continue;
            }
            let key = (claim.scope.to_string(), claim.value.clone());
            if let Some(holder) = self.claims.get(&key)
                && (holder.stream_type != stream_type || holder.stream_id != stream_id)
            {
                return Err(claimed(claim, holder.clone()));
            }
        }
        Ok(net.into_iter().map(|(i, c)| (i, c.clone())).collect())
    }

    fn apply_claims(
        &mut self,
        stream_type: &str,
        stream_id: &str,
        first_position: u64,
        claims: Vec<(usize, Claim)>,
    ) {
        for (event, claim) in claims {
            let key = (claim.scope.into_owned(), claim.value);
            match claim.action {
                ClaimAction::Claim => {
                    self.claims.entry(key).or_insert_with(|| ClaimHolder {
                        stream_type: stream_type.to_owned(),
                        stream_id: stream_id.to_owned(),
                        position: first_position + event as u64,
                    });
                }
                ClaimAction::Release => {
                    if self
                        .claims
                        .get(&key)
                        .is_some_and(|h| h.stream_type == stream_type && h.stream_id == stream_id)
                    {
                        self.claims.remove(&key);
                    }
                }
            }
        }
    }
}

impl InMemoryEventStore {
    /// An empty store.
    pub fn new() -> Self {
        let (head, _) = watch::channel(0);
        Self {
            inner: Arc::new(Inner {
                log: RwLock::new(Log::default()),
                head,
            }),
        }
    }

    /// A receiver of the global head position, updated after every append that stores events.
    ///
    /// Cheap change notification for runners: `changed().await`, then read with
    /// [`EventStore::read_after`]. The value is a hint; the log is the truth.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.head.subscribe()
    }

    /// The global position of the last stored event (0 when the store is empty).
    pub fn head_position(&self) -> Result<u64, StoreError> {
        Ok(self.read()?.order.len() as u64)
    }

    /// The number of stored events.
    pub fn len(&self) -> Result<usize, StoreError> {
        Ok(self.read()?.order.len())
    }

    /// Whether the store holds no event.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.read()?.order.is_empty())
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, Log>, StoreError> {
        self.inner.log.read().map_err(|_| poisoned())
    }

    fn write(&self) -> Result<RwLockWriteGuard<'_, Log>, StoreError> {
        self.inner.log.write().map_err(|_| poisoned())
    }

    fn append_now(
        &self,
        stream_type: &str,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        check_append(stream_type, stream_id, &events)?;
        let mut log = self.write()?;
        let before = log.order.len();
        let outcome = log.append(stream_type, stream_id, expected, events)?;
        let head = log.order.len();
        if head != before {
            // Sent under the lock, so receivers observe heads in order.
            self.inner.head.send_replace(head as u64);
        }
        Ok(outcome)
    }

    /// The stream's events from `from_version`, each turned into `T` under the read lock.
    fn read_stream_with<T>(
        &self,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
        f: impl Fn(&Log, &Stream, usize) -> Option<T>,
    ) -> Result<Vec<T>, StoreError> {
        let log = self.read()?;
        let Some(stream) = log.stream(stream_type, stream_id) else {
            return Ok(Vec::new());
        };
        let skip = usize::try_from(from_version.saturating_sub(1)).unwrap_or(usize::MAX);
        Ok((skip..stream.hot.len())
            .filter_map(|version| f(&log, stream, version))
            .collect())
    }

    /// At most `limit` events after `after_position`, each turned into `T` under the read lock.
    fn read_all_with<T>(
        &self,
        after_position: u64,
        limit: usize,
        f: impl Fn(StoredEvent) -> T,
    ) -> Result<Vec<T>, StoreError> {
        let log = self.read()?;
        let start = usize::try_from(after_position).unwrap_or(usize::MAX);
        let order = log.order.get(start..).unwrap_or_default();
        let mut events = Vec::with_capacity(order.len().min(limit));
        for &(stream, version) in order.iter().take(limit) {
            if let Some(event) = log
                .streams
                .get(stream)
                .and_then(|stream| log.stored(stream, version))
            {
                events.push(f(event));
            }
        }
        Ok(events)
    }
}

impl Default for InMemoryEventStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for InMemoryEventStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("InMemoryEventStore");
        match self.inner.log.read() {
            Ok(log) => out
                .field("events", &log.order.len())
                .field("streams", &log.streams.len()),
            Err(_) => out.field("state", &"poisoned"),
        };
        out.finish()
    }
}

fn poisoned() -> StoreError {
    StoreError::backend("in-memory event store lock poisoned by a panic")
}

impl EventStore for InMemoryEventStore {
    async fn append(
        &self,
        stream_type: &str,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        self.append_now(stream_type, stream_id, expected, events)
    }

    async fn read_stream(
        &self,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.read_stream_with(
            stream_type,
            stream_id,
            from_version,
            |log, stream, version| log.stored(stream, version),
        )
    }

    /// Lends each event of the stream straight from the log, under the read lock: a load
    /// decodes from the stored bytes without copying them.
    async fn replay_stream<F>(
        &self,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
        mut visit: F,
    ) -> Result<(), StoreError>
    where
        F: FnMut(StreamEventRef<'_>) -> bool + Send,
    {
        let log = self.read()?;
        let Some(stream) = log.stream(stream_type, stream_id) else {
            return Ok(());
        };
        let skip = usize::try_from(from_version.saturating_sub(1)).unwrap_or(usize::MAX);
        for (version, hot) in (1_u64..).zip(&stream.hot).skip(skip) {
            let event = StreamEventRef {
                global_position: hot.global_position,
                stream_version: version,
                event_type: log.name(hot.name),
                event_version: hot.event_version,
                payload: stream.payload(hot),
            };
            if !visit(event) {
                break;
            }
        }
        Ok(())
    }

    /// The in-memory store commits in position order: the cursor is `(0, position)`.
    async fn read_after(
        &self,
        after: Cursor,
        limit: usize,
    ) -> Result<Vec<(Cursor, StoredEvent)>, StoreError> {
        self.read_all_with(after.position, limit, |event| {
            let at = Cursor {
                tx: 0,
                position: event.global_position,
            };
            (at, event)
        })
    }

    /// Examines the log from `after` in position order, testing each event's stream type and
    /// name before copying it out.
    async fn read_filtered(
        &self,
        after: Cursor,
        limit: usize,
        filter: &EventFilter,
    ) -> Result<ReadBatch, StoreError> {
        let log = self.read()?;
        let start = usize::try_from(after.position).unwrap_or(usize::MAX);
        let order = log.order.get(start..).unwrap_or_default();
        let mut events = Vec::with_capacity(order.len().min(limit));
        let mut through = after;
        // The filter's answer per interned name, decided on first sight (0: not yet, 1: no,
        // 2: yes): one string search per name and read, not per event.
        let mut by_name = vec![0u8; log.names.len()];
        let by_stream_type = !filter.stream_types().is_empty();
        for (&(stream, version), position) in order.iter().zip(after.position + 1..) {
            if events.len() >= limit {
                break;
            }
            through = Cursor { tx: 0, position };
            let Some(s) = log.streams.get(stream) else {
                continue;
            };
            let Some(hot) = s.hot.get(version) else {
                continue;
            };
            let named = match by_name.get_mut(hot.name as usize) {
                Some(answer @ 0) => {
                    let yes = filter.matches_event_type(log.name(hot.name));
                    *answer = 1 + u8::from(yes);
                    yes
                }
                Some(answer) => *answer == 2,
                None => filter.matches_event_type(log.name(hot.name)),
            };
            if !(named || by_stream_type && filter.matches_stream_type(&s.stream_type)) {
                continue;
            }
            if let Some(event) = log.stored(s, version) {
                events.push((through, event));
            }
        }
        Ok(ReadBatch { events, through })
    }

    async fn head(&self) -> Result<Cursor, StoreError> {
        Ok(Cursor {
            tx: 0,
            position: self.read()?.order.len() as u64,
        })
    }

    async fn read_event(&self, event_id: Uuid) -> Result<Option<StoredEvent>, StoreError> {
        let log = self.read()?;
        let Some(&position) = log.ids.get(&event_id) else {
            return Ok(None);
        };
        Ok(log
            .at(position)
            .and_then(|(stream, version)| log.stored(stream, version)))
    }
}

impl ClaimStore for InMemoryEventStore {
    async fn holder(&self, scope: &str, value: &str) -> Result<Option<ClaimHolder>, StoreError> {
        Ok(self
            .read()?
            .claims
            .get(&(scope.to_owned(), value.to_owned()))
            .cloned())
    }

    async fn rebuild_claims(&self, mut rebuild: ClaimRebuild) -> Result<ClaimsRebuilt, StoreError> {
        // One write lock for the whole rebuild: appends wait, and nothing can slip between
        // the log read and the claims written.
        let mut log = self.write()?;
        for &(stream, version) in &log.order {
            if let Some(event) = log
                .streams
                .get(stream)
                .and_then(|stream| log.stored(stream, version))
            {
                let cursor = Cursor {
                    tx: 0,
                    position: event.global_position,
                };
                rebuild.feed(cursor, &event)?;
            }
        }
        let live = log
            .claims
            .iter()
            .filter(|((scope, _), _)| rebuild.scopes().contains(scope))
            .map(|((scope, value), holder)| (scope.clone(), value.clone(), holder.clone()))
            .collect();
        let dry_run = rebuild.is_dry_run();
        let changes = rebuild.finish(live);
        if !dry_run {
            for key in changes.remove {
                log.claims.remove(&key);
            }
            for (scope, value, holder) in changes.upsert {
                log.claims.insert((scope, value), holder);
            }
        }
        Ok(changes.report)
    }
}
