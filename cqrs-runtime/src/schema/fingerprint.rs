//! Combining fingerprints: the runtime half of the shape fingerprint, whose hash
//! ([`cqrs_lock::fnv1a`]) the macros share.

use cqrs_lock::{FNV_OFFSET, fnv1a};

/// Combines a tag and the fingerprints of parts into one fingerprint.
pub const fn combine(tag: &str, parts: &[u64]) -> u64 {
    combine_seeded(fnv1a(FNV_OFFSET, tag.as_bytes()), parts)
}

/// `combine` with the tag already hashed (`fnv1a(FNV_OFFSET, tag)`): the derives hash their
/// static description while expanding, so the compiler only folds in the parts.
pub const fn combine_seeded(seed: u64, parts: &[u64]) -> u64 {
    let mut hash = seed;
    let mut i = 0;
    while i < parts.len() {
        hash = fnv1a(hash, &parts[i].to_le_bytes());
        i += 1;
    }
    hash
}
