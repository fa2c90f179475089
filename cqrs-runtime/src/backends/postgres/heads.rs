//! Stream versions this store has seen committed, so that an append at an exact expected
//! version can skip the statement's existence check.
//!
//! An append at `Exact(v)` must refuse a stream that is *behind* `v` (the batch would leave a
//! gap); the unique key alone only refuses a stream that is ahead. The check costs the append
//! statement a sub-select on the stream key. Measured with one writer, that sub-select costs
//! about 10% of the append throughput (`cargo bench -p cqrs-runtime --all-features --bench
//! stores`, `postgres/append/1ev`), far more than the few microseconds `EXPLAIN ANALYZE`
//! shows for it; the cause on the server side is not pinned down.
//!
//! Events are never deleted, so once this store has read or appended version `n` of a stream,
//! every `Exact(v)` with `v <= n` is known to exist and the unique key is the only check left.
//! That is the usual case: a repository loads a stream, then appends at the version it read.
//! The cache is a fixed table of [`SLOTS`] entries indexed by a hash of the stream key; an
//! entry holds the full key, so a collision only evicts (the append then runs the check), it
//! never answers for the wrong stream.

use std::hash::BuildHasher;
use std::sync::{Mutex, PoisonError};

/// How many streams the cache remembers at most (a power of two).
const SLOTS: usize = 4096;

struct Known {
    stream_type: Box<str>,
    stream_id: Box<str>,
    version: u64,
}

/// The highest committed version this store saw per stream, for recently used streams.
pub(super) struct KnownHeads {
    hasher: std::hash::RandomState,
    slots: Box<[Mutex<Option<Known>>]>,
}

impl KnownHeads {
    pub(super) fn new() -> Self {
        Self {
            hasher: std::hash::RandomState::new(),
            slots: (0..SLOTS).map(|_| Mutex::new(None)).collect(),
        }
    }

    fn slot(&self, stream_type: &str, stream_id: &str) -> Option<&Mutex<Option<Known>>> {
        let hash = self.hasher.hash_one((stream_type, stream_id));
        // Truncation is the point: the low bits pick the slot.
        self.slots.get(hash as usize & (SLOTS - 1))
    }

    /// Whether version `version` of the stream is known to be stored (version 0, the empty
    /// stream, always is).
    pub(super) fn covers(&self, stream_type: &str, stream_id: &str, version: u64) -> bool {
        if version == 0 {
            return true;
        }
        let Some(slot) = self.slot(stream_type, stream_id) else {
            return false;
        };
        let known = slot.lock().unwrap_or_else(PoisonError::into_inner);
        known.as_ref().is_some_and(|k| {
            k.version >= version && *k.stream_type == *stream_type && *k.stream_id == *stream_id
        })
    }

    /// Records that version `version` of the stream is committed.
    pub(super) fn saw(&self, stream_type: &str, stream_id: &str, version: u64) {
        if version == 0 {
            return;
        }
        let Some(slot) = self.slot(stream_type, stream_id) else {
            return;
        };
        let mut known = slot.lock().unwrap_or_else(PoisonError::into_inner);
        match known.as_mut() {
            Some(k) if *k.stream_type == *stream_type && *k.stream_id == *stream_id => {
                k.version = k.version.max(version);
            }
            _ => {
                *known = Some(Known {
                    stream_type: stream_type.into(),
                    stream_id: stream_id.into(),
                    version,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_only_what_it_saw() {
        let heads = KnownHeads::new();
        assert!(heads.covers("t", "a", 0));
        assert!(!heads.covers("t", "a", 1));
        heads.saw("t", "a", 5);
        assert!(heads.covers("t", "a", 5));
        assert!(heads.covers("t", "a", 3));
        assert!(!heads.covers("t", "a", 6));
        assert!(!heads.covers("t", "b", 1));
        assert!(!heads.covers("u", "a", 1));
        // A lower version never lowers what is known.
        heads.saw("t", "a", 2);
        assert!(heads.covers("t", "a", 5));
    }

    #[test]
    fn a_colliding_stream_evicts_but_never_answers_for_another() {
        let heads = KnownHeads::new();
        for i in 0..(SLOTS * 4) {
            heads.saw("t", &i.to_string(), 10);
        }
        // Every answer is either true for a stream that was seen, or false.
        for i in 0..(SLOTS * 4) {
            let id = i.to_string();
            if heads.covers("t", &id, 10) {
                assert!(heads.covers("t", &id, 1));
            }
        }
        assert!(!heads.covers("t", "never", 1));
        let kept = (0..(SLOTS * 4))
            .filter(|i| heads.covers("t", &i.to_string(), 10))
            .count();
        assert!(kept > SLOTS / 2 && kept <= SLOTS, "kept {kept}");
    }
}
