//! Shapes of serialized types: fingerprints that change when the serde shape changes, and the
//! schema lock that freezes each published event version.
//!
//! A fingerprint covers field names, field types (by their own fingerprints, so a change inside
//! a nested type counts), and the `#[serde(...)]` attributes that change the wire form (renames,
//! defaults, skips, tags). `#[derive(Event)]` and `#[derive(Shape)]` compute it at compile
//! time; [`Shape`] is implemented here for the standard types.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

/// A type whose serialized shape has a stable fingerprint.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no shape fingerprint",
    label = "add `#[derive(Shape)]` to `{Self}`",
    note = "every field type of an event (and a snapshotted state) describes its serialized shape, so that a change to it is caught; for a foreign type, mark the field `#[shape(opaque = \"name-of-its-format\")]`"
)]
pub trait Shape {
    /// The fingerprint of the serialized shape (stable across builds and platforms).
    const FINGERPRINT: u64;
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over `bytes`, continuing from `hash` (a `const fn`, so fingerprints are constants).
pub const fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    hash
}

/// Combines a tag and the fingerprints of parts into one fingerprint.
pub const fn combine(tag: &str, parts: &[u64]) -> u64 {
    combine_seeded(fnv1a(FNV_OFFSET, tag.as_bytes()), parts)
}

/// [`combine`] with the tag already hashed (`fnv1a(FNV_OFFSET, tag)`): the derives hash their
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

macro_rules! leaf_shapes {
    ($($ty:ty => $tag:literal),* $(,)?) => {
        $(impl Shape for $ty {
            const FINGERPRINT: u64 = combine($tag, &[]);
        })*
    };
}

leaf_shapes! {
    bool => "bool", char => "char", String => "string", str => "string",
    u8 => "u8", u16 => "u16", u32 => "u32", u64 => "u64", u128 => "u128", usize => "u64",
    i8 => "i8", i16 => "i16", i32 => "i32", i64 => "i64", i128 => "i128", isize => "i64",
    f32 => "f32", f64 => "f64", () => "unit",
    serde_json::Value => "json", uuid::Uuid => "uuid",
    chrono::DateTime<chrono::Utc> => "datetime-utc", chrono::NaiveDate => "date",
    chrono::NaiveDateTime => "datetime-naive",
}

macro_rules! wrapper_shapes {
    ($($tag:literal => $($ty:ident)::+ <$($p:ident),+>),* $(,)?) => {
        $(impl<$($p: Shape),+> Shape for $($ty)::+<$($p),+> {
            const FINGERPRINT: u64 = combine($tag, &[$($p::FINGERPRINT),+]);
        })*
    };
}

wrapper_shapes! {
    "seq" => Vec<T>, "seq" => VecDeque<T>, "option" => Option<T>,
    "set" => BTreeSet<T>, "set" => HashSet<T>,
    "map" => BTreeMap<K, V>, "map" => HashMap<K, V>,
}

impl<T: Shape + ?Sized> Shape for Box<T> {
    const FINGERPRINT: u64 = T::FINGERPRINT;
}

impl<T: Shape + ?Sized> Shape for std::sync::Arc<T> {
    const FINGERPRINT: u64 = T::FINGERPRINT;
}

impl<T: Shape> Shape for [T] {
    const FINGERPRINT: u64 = combine("seq", &[T::FINGERPRINT]);
}

impl<T: Shape, const N: usize> Shape for [T; N] {
    const FINGERPRINT: u64 = combine("array", &[T::FINGERPRINT, N as u64]);
}

macro_rules! tuple_shapes {
    ($(($($p:ident),+)),* $(,)?) => {
        $(impl<$($p: Shape),+> Shape for ($($p,)+) {
            const FINGERPRINT: u64 = combine("tuple", &[$($p::FINGERPRINT),+]);
        })*
    };
}

tuple_shapes!(
    (A),
    (A, B),
    (A, B, C),
    (A, B, C, D),
    (A, B, C, D, E),
    (A, B, C, D, E, F)
);

/// A small set of wire names known at compile time: the names a current event answers to
/// (its own and those it was renamed from). Built in `const` context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameSet {
    names: [&'static str; NameSet::CAPACITY],
    len: usize,
}

impl NameSet {
    /// The most names one event's history may use.
    pub const CAPACITY: usize = 16;

    /// The empty set.
    pub const EMPTY: NameSet = NameSet {
        names: [""; NameSet::CAPACITY],
        len: 0,
    };

    /// This set plus `name` (a no-op if present). Panics at compile time past the capacity.
    pub const fn with(self, name: &'static str) -> NameSet {
        if self.contains(name) {
            return self;
        }
        assert!(
            self.len < NameSet::CAPACITY,
            "an event's history uses more than 16 wire names"
        );
        let mut names = self.names;
        names[self.len] = name;
        NameSet {
            names,
            len: self.len + 1,
        }
    }

    /// The union of two sets.
    pub const fn union(self, other: NameSet) -> NameSet {
        let mut out = self;
        let mut i = 0;
        while i < other.len {
            out = out.with(other.names[i]);
            i += 1;
        }
        out
    }

    /// Whether `name` is in the set, at run time: `==` on `str` (a length check and a `memcmp`)
    /// over the names in order, the current name first. What decoding uses; [`NameSet::contains`]
    /// is the `const` twin for compile-time checks.
    #[inline]
    pub fn has(&self, name: &str) -> bool {
        self.names.iter().take(self.len).any(|n| *n == name)
    }

    /// Whether `name` is in the set.
    pub const fn contains(&self, name: &str) -> bool {
        let mut i = 0;
        while i < self.len {
            if crate::__private::str_eq(self.names[i], name) {
                return true;
            }
            i += 1;
        }
        false
    }

    /// Whether the two sets share a name.
    pub const fn intersects(&self, other: &NameSet) -> bool {
        let mut i = 0;
        while i < other.len {
            if self.contains(other.names[i]) {
                return true;
            }
            i += 1;
        }
        false
    }

    /// The names, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.names[..self.len].iter().copied()
    }
}

/// The schema lock file: one line per published event version, `name version 0xfingerprint`
/// followed by a readable description. `#[derive(Event)]` reads the crate's `events.lock` at
/// compile time and fails the build when a locked version's shape changed; these functions
/// record new versions ("bless") and check that every version an enum decodes is recorded.
pub mod lock {
    use std::fmt::Write as _;
    use std::path::Path;

    use crate::event::{EventEnum, EventSchema};

    /// The environment variable that makes [`assert_locked`] record instead of check.
    pub const BLESS_VAR: &str = "CQRS_BLESS";

    /// One lock line.
    fn line(schema: &EventSchema) -> String {
        let mut out = format!(
            "{} {} {:#018x} {} {{",
            schema.name, schema.version, schema.fingerprint, schema.rust_type
        );
        for (i, field) in schema.fields.iter().enumerate() {
            let _ = write!(
                out,
                "{}{}: {}",
                if i == 0 { " " } else { ", " },
                field.name,
                field.ty
            );
        }
        out.push_str(if schema.fields.is_empty() { "}" } else { " }" });
        out
    }

    fn key(line: &str) -> Option<(String, u32, u64)> {
        let mut words = line.split_whitespace();
        let name = words.next()?.to_owned();
        let version = words.next()?.parse().ok()?;
        let fp = u64::from_str_radix(words.next()?.strip_prefix("0x")?, 16).ok()?;
        Some((name, version, fp))
    }

    /// The event versions `E` decodes that `lock_text` does not record, as lock lines.
    pub fn missing<E: EventEnum>(lock_text: &str) -> Vec<String> {
        let recorded: Vec<_> = lock_text.lines().filter_map(key).collect();
        E::history()
            .iter()
            .filter(|s| !recorded.contains(&(s.name.to_owned(), s.version, s.fingerprint)))
            .map(line)
            .collect()
    }

    /// `lock_text` with every version of `E` recorded: a line with the same name, version and
    /// Rust type is replaced, others are added; lines are kept sorted by name and version.
    pub fn blessed<E: EventEnum>(lock_text: &str) -> String {
        let mut lines: Vec<String> = lock_text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .map(str::to_owned)
            .collect();
        for schema in E::history() {
            let new = line(&schema);
            let same_type = |l: &String| {
                key(l).is_some_and(|(n, v, _)| n == schema.name && v == schema.version)
                    && l.split_whitespace().nth(3) == Some(schema.rust_type)
            };
            lines.retain(|l| !same_type(l));
            lines.push(new);
        }
        lines.sort_by_key(|l| key(l).map(|(n, v, _)| (n, v)));
        lines.dedup();
        let mut out = String::from(
            "# Schema lock: one line per published event version (name, version, shape fingerprint).\n\
             # A locked version whose shape changes fails to compile. Record new versions with\n\
             # `CQRS_BLESS=1 cargo test` and commit this file.\n",
        );
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
        out
    }

    /// Test helper: checks that the lock at `path` records every event version `E` decodes,
    /// or, with `CQRS_BLESS=1`, records them.
    ///
    /// # Panics
    /// When a version is missing (and not blessing), or the file cannot be read or written.
    #[track_caller]
    pub fn assert_locked<E: EventEnum>(path: impl AsRef<Path>) {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if std::env::var_os(BLESS_VAR).is_some() {
            let blessed = blessed::<E>(&text);
            if blessed != text
                && let Err(e) = std::fs::write(path, blessed)
            {
                panic!("cannot write the schema lock {}: {e}", path.display());
            }
            return;
        }
        let missing = missing::<E>(&text);
        assert!(
            missing.is_empty(),
            "the schema lock {} does not record these event versions:\n  {}\nRecord them with `{BLESS_VAR}=1 cargo test` and commit the file.",
            path.display(),
            missing.join("\n  ")
        );
    }
}
