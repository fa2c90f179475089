//! The in-memory event store, for tests and demos.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::watch;
use uuid::Uuid;

use super::idempotency::{Slot, classify};
use super::{
    AppendOutcome, EventStore, ExpectedVersion, NewEvent, StoreError, StoredEvent, StreamEvent,
    StreamEventRef,
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

#[derive(Default)]
struct Log {
    /// Every event; the event at index `i` has global position `i + 1`.
    events: Vec<StoredEvent>,
    /// Per stream type, per stream id: the log index of each version (index `v - 1`).
    streams: HashMap<String, HashMap<String, Vec<usize>>>,
    /// Event id → log index.
    ids: HashMap<Uuid, usize>,
}

impl Log {
    fn stream(&self, stream_type: &str, stream_id: &str) -> &[usize] {
        self.streams
            .get(stream_type)
            .and_then(|ids| ids.get(stream_id))
            .map_or(&[], Vec::as_slice)
    }

    fn slot(&self, id: &Uuid) -> Option<Slot<'_>> {
        let stored = self.events.get(*self.ids.get(id)?)?;
        Some(Slot {
            stream_type: &stored.stream_type,
            stream_id: &stored.stream_id,
            stream_version: stored.stream_version,
            global_position: stored.global_position,
        })
    }

    fn append(
        &mut self,
        stream_type: &str,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        let actual = self.stream(stream_type, stream_id).len() as u64;
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

        let stream = self
            .streams
            .entry(stream_type.to_owned())
            .or_default()
            .entry(stream_id.to_owned())
            .or_default();
        let mut positions = Vec::with_capacity(events.len());
        for event in events {
            let index = self.events.len();
            let global_position = index as u64 + 1;
            stream.push(index);
            self.ids.insert(event.event_id, index);
            self.events.push(StoredEvent {
                global_position,
                stream_type: stream_type.to_owned(),
                stream_id: stream_id.to_owned(),
                stream_version: stream.len() as u64,
                event_id: event.event_id,
                event_type: event.event_type.into_owned(),
                event_version: event.event_version,
                payload: event.payload,
                metadata: event.metadata,
                recorded_at: event.recorded_at,
            });
            positions.push(global_position);
        }
        Ok(AppendOutcome {
            stream_version: stream.len() as u64,
            positions,
        })
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
    /// Cheap change notification for projection runners: `changed().await`, then read with
    /// [`EventStore::read_all`]. The value is a hint; the log is the truth.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.head.subscribe()
    }

    /// The number of stored events.
    pub fn len(&self) -> Result<usize, StoreError> {
        Ok(self.read()?.events.len())
    }

    /// Whether the store holds no event.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.read()?.events.is_empty())
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
        let mut log = self.write()?;
        let before = log.events.len();
        let outcome = log.append(stream_type, stream_id, expected, events)?;
        let head = log.events.len();
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
        f: impl Fn(&StoredEvent) -> T,
    ) -> Result<Vec<T>, StoreError> {
        let log = self.read()?;
        let indexes = log.stream(stream_type, stream_id);
        let skip = usize::try_from(from_version.saturating_sub(1)).unwrap_or(usize::MAX);
        Ok(indexes
            .iter()
            .skip(skip)
            .filter_map(|&index| log.events.get(index).map(&f))
            .collect())
    }

    fn read_all_now(
        &self,
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let log = self.read()?;
        let start = usize::try_from(after_position).unwrap_or(usize::MAX);
        Ok(log.events.iter().skip(start).take(limit).cloned().collect())
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
            Ok(log) => out.field("events", &log.events.len()).field(
                "streams",
                &log.streams.values().map(HashMap::len).sum::<usize>(),
            ),
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
        self.read_stream_with(stream_type, stream_id, from_version, StoredEvent::clone)
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
        let skip = usize::try_from(from_version.saturating_sub(1)).unwrap_or(usize::MAX);
        for &index in log.stream(stream_type, stream_id).iter().skip(skip) {
            let Some(e) = log.events.get(index) else {
                continue;
            };
            let event = StreamEventRef {
                global_position: e.global_position,
                stream_version: e.stream_version,
                event_type: &e.event_type,
                event_version: e.event_version,
                payload: &e.payload,
            };
            if !visit(event) {
                break;
            }
        }
        Ok(())
    }

    /// What a load needs, copied straight from the log (no ids, metadata or stream names).
    async fn read_stream_events(
        &self,
        stream_type: &str,
        stream_id: &str,
        from_version: u64,
    ) -> Result<Vec<StreamEvent>, StoreError> {
        self.read_stream_with(stream_type, stream_id, from_version, |e| StreamEvent {
            global_position: e.global_position,
            stream_version: e.stream_version,
            event_type: e.event_type.clone(),
            event_version: e.event_version,
            payload: e.payload.clone(),
        })
    }

    async fn read_all(
        &self,
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.read_all_now(after_position, limit)
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        Ok(self.read()?.events.len() as u64)
    }
}
