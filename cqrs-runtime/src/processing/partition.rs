//! Partitions: a handler's events split into `N` disjoint parts by a key, each part read and
//! committed on its own (its own checkpoint and lease), in the log's order within the part.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use super::source::Source;
use crate::store::{Cursor, EventFilter, ReadBatch, StoreError, StoredEvent};

/// The key of an event for a custom [`PartitionKey`].
type KeyFn = dyn for<'a> Fn(&'a StoredEvent) -> Cow<'a, str> + Send + Sync;

/// What decides an event's partition: the hash of a key, taken modulo the partition count.
///
/// Events with the same key are in the same partition, so they are handled in the log's
/// order. The default key is the event's stream id: each stream's events stay in order. A
/// custom key (a tenant, an account named in the payload) keeps the order of the events of
/// each key, and nothing else: two events of one stream with different keys may be handled
/// in either order.
#[derive(Clone, Default)]
pub enum PartitionKey {
    /// The event's stream id (the default).
    #[default]
    StreamId,
    /// A key computed from the stored event (see [`PartitionKey::by`]).
    Custom(Arc<KeyFn>),
}

impl fmt::Debug for PartitionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::StreamId => f.write_str("StreamId"),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl PartitionKey {
    /// A key computed from each stored event, e.g.
    /// `PartitionKey::by(|e| Cow::Borrowed(e.metadata.get("tenant").unwrap_or("")))`.
    /// It must depend on the event alone (every worker computes it the same way).
    pub fn by<F>(key: F) -> Self
    where
        F: for<'a> Fn(&'a StoredEvent) -> Cow<'a, str> + Send + Sync + 'static,
    {
        Self::Custom(Arc::new(key))
    }

    /// The key of `event`.
    pub fn key<'a>(&self, event: &'a StoredEvent) -> Cow<'a, str> {
        match self {
            Self::StreamId => Cow::Borrowed(&event.stream_id),
            Self::Custom(key) => key(event),
        }
    }
}

/// The partition, among `count`, of the events whose key is `key`: FNV-1a (64-bit) of the
/// key's UTF-8 bytes, modulo `count` (`count` 0 is taken as 1). Stable across processes,
/// platforms and releases: the assignment of the stored checkpoints depends on it.
pub fn partition_of(key: &str, count: u32) -> u32 {
    let hash = cqrs_lock::fnv1a(cqrs_lock::FNV_OFFSET, key.as_bytes());
    (hash % u64::from(count.max(1))) as u32
}

/// One partition of a handler: its index among `count`, the key that assigns events to it,
/// and its name, `{base}#p{index}/{count}`: the key of its checkpoint, lease and dead letters.
#[derive(Debug, Clone)]
pub struct Partition {
    base: Arc<str>,
    index: u32,
    count: u32,
    key: PartitionKey,
}

impl Partition {
    /// Partition `index` of `count` of the handler named `base`, keyed by `key`.
    ///
    /// `count` is at least 1, and `index` is taken modulo it.
    pub fn new(base: &str, index: u32, count: u32, key: PartitionKey) -> Self {
        let count = count.max(1);
        Self {
            base: Arc::from(base),
            index: index % count,
            count,
            key,
        }
    }

    /// The name of the whole handler (the projection's or reaction's name).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// This partition's index, `0..count`.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// How many partitions the handler has.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The key that assigns events to partitions.
    pub fn key(&self) -> &PartitionKey {
        &self.key
    }

    /// The partition's name, `{base}#p{index}/{count}`: the key of its checkpoint, its lease
    /// and its dead letters.
    pub fn name(&self) -> String {
        partition_name(&self.base, self.index, self.count)
    }

    /// The value of the `partition` label of the partition's runner metrics:
    /// `{index}/{count}`.
    pub fn label(&self) -> String {
        format!("{}/{}", self.index, self.count)
    }

    /// Whether `event` belongs to this partition.
    pub fn owns(&self, event: &StoredEvent) -> bool {
        partition_of(&self.key.key(event), self.count) == self.index
    }

    /// The events of this partition in `source` (see [`PartitionedSource`]).
    pub fn source<S: Source>(&self, source: S) -> PartitionedSource<S> {
        PartitionedSource {
            inner: source,
            partition: self.clone(),
        }
    }
}

/// The name of partition `index` of `count` of the handler `base`: `{base}#p{index}/{count}`.
pub fn partition_name(base: &str, index: u32, count: u32) -> String {
    format!("{base}#p{index}/{count}")
}

/// The labels of a runner's metrics for the handler `name`: `(runner, partition)`, that is
/// `(base, "{index}/{count}")` for a partition's name (`{base}#p{index}/{count}`), else
/// `(name, "all")`.
pub(crate) fn metric_labels(name: &str) -> (&str, String) {
    let split = name.rsplit_once("#p").and_then(|(base, tail)| {
        let (index, count) = tail.split_once('/')?;
        let index: u32 = index.parse().ok()?;
        let count: u32 = count.parse().ok()?;
        (index < count).then(|| (base, format!("{index}/{count}")))
    });
    split.unwrap_or((name, "all".to_owned()))
}

/// The events of one [`Partition`] of a source: the source's reads, keeping the partition's
/// events only, in the source's order.
///
/// A read that keeps none of the events it examined still reports how far it looked
/// ([`ReadBatch::through`]), so a runner moves its partition's checkpoint past the other
/// partitions' events without handling them. An unreadable row of the source is skipped
/// when its stream id says it belongs to another partition (keyed by stream id), and goes to
/// every partition's error policy otherwise.
#[derive(Debug, Clone)]
pub struct PartitionedSource<S> {
    inner: S,
    partition: Partition,
}

impl<S> PartitionedSource<S> {
    /// The partition read.
    pub fn partition(&self) -> &Partition {
        &self.partition
    }

    /// The whole source.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: Source> Source for PartitionedSource<S> {
    async fn read(
        &self,
        after: Cursor,
        limit: usize,
        filter: Option<&EventFilter>,
    ) -> Result<ReadBatch, StoreError> {
        let mut batch = match self.inner.read(after, limit, filter).await {
            Ok(batch) => batch,
            Err(StoreError::Corrupt(corrupt)) => {
                let elsewhere = matches!(self.partition.key, PartitionKey::StreamId)
                    && corrupt.stream_id.as_deref().is_some_and(|id| {
                        partition_of(id, self.partition.count) != self.partition.index
                    });
                return match corrupt.cursor {
                    Some(at) if elsewhere && at > after => Ok(ReadBatch {
                        events: Vec::new(),
                        through: at,
                    }),
                    _ => Err(StoreError::Corrupt(corrupt)),
                };
            }
            Err(error) => return Err(error),
        };
        batch.events.retain(|(_, event)| self.partition.owns(event));
        Ok(batch)
    }

    fn head(&self) -> impl Future<Output = Result<Cursor, StoreError>> + Send {
        self.inner.head()
    }

    fn committed(&self, through: Cursor) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.committed(through)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fnv1a_and_stable() {
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c.
        assert_eq!(
            partition_of("a", 1 << 31),
            (0xaf63_dc4c_8601_ec8c_u64 % (1 << 31)) as u32
        );
        assert_eq!(partition_of("anything", 1), 0);
        assert_eq!(partition_of("anything", 0), 0);
    }

    #[test]
    fn metric_labels_split_partition_names() {
        assert_eq!(metric_labels("demand#p3/8"), ("demand", "3/8".to_owned()));
        assert_eq!(metric_labels("demand"), ("demand", "all".to_owned()));
        assert_eq!(metric_labels("odd#px/8"), ("odd#px/8", "all".to_owned()));
    }

    #[test]
    fn names_say_index_and_count() {
        let p = Partition::new("demand", 9, 8, PartitionKey::StreamId);
        assert_eq!(p.index(), 1);
        assert_eq!(p.name(), "demand#p1/8");
        assert_eq!(p.label(), "1/8");
    }
}
