//! Shapes of serialized types: fingerprints that change when the serde shape changes, and the
//! schema lock that freezes each published event version.
//!
//! A fingerprint covers field names, field types (by their own fingerprints, so a change inside
//! a nested type counts), and the `#[serde(...)]` attributes that change the wire form (renames,
//! defaults, skips, tags). `#[derive(Event)]` and `#[derive(Shape)]` compute it at compile
//! time; [`Shape`] is implemented here for the standard types.

pub(crate) mod fingerprint;
pub mod lock;
pub(crate) mod names;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use fingerprint::combine;

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
