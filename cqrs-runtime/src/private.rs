//! The only door generated code uses. Not public API: names here may change in any release.

pub use core::future::Future;
pub use core::option::Option::{self, None, Some};
pub use core::result::Result::{self, Err, Ok};
pub use std::borrow::ToOwned;
pub use std::convert::From;
pub use std::vec::Vec;

pub use serde_json::Error as JsonError;

pub use serde_json::from_slice as json_from_slice;
pub use serde_json::to_vec as json_to_vec;

pub use crate::aggregate::{
    Aggregate, Apply, ApplyAll, Command, CommandOf, CreationPolicy, HandlerOutput, Handles,
    IntoEvents, decided,
};
pub use crate::event::{
    DecodeError, EncodedEvent, Event, EventEnum, EventOf, EventSchema, FieldSchema,
};
pub use crate::event::{
    Decoded, Split, decode_or_upcast, decode_payload, decoded, histories, history_after, upcast,
};
pub use crate::schema::{NameSet, Shape, combine, combine_seeded};

/// The field list of an `EventSchema` from `(name, type)` pairs (shorter to generate than one
/// `FieldSchema { .. }` literal per field).
pub const fn fields<const N: usize>(pairs: [(&'static str, &'static str); N]) -> [FieldSchema; N] {
    let mut out = [FieldSchema { name: "", ty: "" }; N];
    let mut i = 0;
    while i < N {
        out[i] = FieldSchema {
            name: pairs[i].0,
            ty: pairs[i].1,
        };
        i += 1;
    }
    out
}

/// Compile-time check that `A` has a `#[command]` handler for `C`.
#[inline]
pub const fn assert_handles<A: Handles<C>, C>() {}

/// Compile-time check that `T` is an event of the enum `E`.
#[inline]
pub const fn assert_event_of<E: EventEnum, T: EventOf<E>>() {}

/// `const` string equality (for wire-name checks in `const` items).
pub const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// A compile-time check: fails the `const` it is called in with `message` unless `ok`.
///
/// `#[track_caller]`, so the error points at the call, which the macros span on the user's
/// token; one call replaces a `panic!` (and its `format_args!` expansion) per check.
#[track_caller]
pub const fn check(ok: bool, message: &'static str) {
    if !ok {
        panic!("{}", message)
    }
}

/// The `upcast_from` step check: the previous version has the same wire name and is exactly
/// `version - 1`, else the matching message.
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub const fn check_step(
    previous: (&str, u32),
    name: &str,
    version: u32,
    other_name: &'static str,
    duplicate: &'static str,
    backwards: &'static str,
    gap: &'static str,
) {
    let message = if !str_eq(previous.0, name) {
        other_name
    } else if previous.1 == version {
        duplicate
    } else if previous.1 > version {
        backwards
    } else if previous.1 + 1 < version {
        gap
    } else {
        return;
    };
    panic!("{}", message)
}

/// The event enum's wire-name check of member `j` (see [`name_clash`]).
#[track_caller]
pub const fn check_name(
    sets: &[NameSet],
    current: &[&str],
    j: usize,
    duplicate: &'static str,
    reserved: &'static str,
) {
    match name_clash(sets, current, j) {
        NameClash::Duplicate => panic!("{}", duplicate),
        NameClash::Reserved => panic!("{}", reserved),
        NameClash::None => {}
    }
}

/// Whether `name` occurs in `earlier`.
pub const fn name_taken(name: &str, earlier: &[&str]) -> bool {
    let mut i = 0;
    while i < earlier.len() {
        if str_eq(name, earlier[i]) {
            return true;
        }
        i += 1;
    }
    false
}

pub use crate::aggregate::Events;

/// Compile-time check that the command `C` belongs to the aggregate `A`.
#[inline]
pub const fn assert_command_of<A: Aggregate, C: CommandOf<A>>() {}

/// A placeholder type for the fallback expansion after an error (never constructed): it stands
/// in for a missing `events = ...` or `error = ...` so that the user sees one error, not many.
#[derive(Debug, Clone, PartialEq)]
pub enum Unknown {}

impl core::fmt::Display for Unknown {
    fn fmt(&self, _: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {}
    }
}

impl std::error::Error for Unknown {}

impl EventEnum for Unknown {
    const NAMES: &'static [&'static str] = &[];
    fn event_name(&self) -> &'static str {
        match *self {}
    }
    fn event_version(&self) -> u32 {
        match *self {}
    }
    fn event_any(&self) -> &dyn core::any::Any {
        match *self {}
    }
    fn encode(&self) -> Result<EncodedEvent, serde_json::Error> {
        match *self {}
    }
    fn decode(name: &str, _: u32, _: &[u8]) -> Result<crate::event::Decoded<Self>, DecodeError> {
        Err(DecodeError::UnknownEventType {
            name: name.to_owned(),
        })
    }
    fn schema() -> &'static [EventSchema] {
        &[]
    }
}

/// Whether `fingerprint` is one of the locked ones.
pub const fn fingerprint_in(fingerprint: u64, locked: &[u64]) -> bool {
    let mut i = 0;
    while i < locked.len() {
        if locked[i] == fingerprint {
            return true;
        }
        i += 1;
    }
    false
}

// ---- projections (`#[projection]`) ----------------------------------------------------------

pub use crate::projection::{Answers, EventMeta, On, Outcome, Projecting, Projection};
pub use crate::store::StoredEvent;

/// Decodes `stored` as an event of the source enum `E`: `None` when the wire name is not one
/// of `E`'s (another source's or another aggregate's event).
#[inline]
pub fn decode_source<E: EventEnum>(
    stored: &StoredEvent,
) -> Option<Result<Decoded<E>, DecodeError>> {
    match E::decode(&stored.event_type, stored.event_version, &stored.payload) {
        Err(DecodeError::UnknownEventType { .. }) => None,
        other => Some(other),
    }
}

/// Whether `stored` carries a wire name of `E`'s history (the dispatch of `non_exhaustive`
/// projections): its own name or one it was renamed from.
#[inline]
pub fn is_named<E: Event>(stored: &StoredEvent) -> bool {
    E::NAMES.has(&stored.event_type)
}

/// Decodes `stored` straight into the event struct `E`.
#[inline]
pub fn decode_event<E: Event>(stored: &StoredEvent) -> Result<E, DecodeError> {
    E::decode_stored(&stored.event_type, stored.event_version, &stored.payload)
}

/// Whether two name lists share a name (two sources of one projection must not).
pub const fn names_overlap(a: &[&str], b: &[&str]) -> bool {
    let mut i = 0;
    while i < a.len() {
        if name_taken(a[i], b) {
            return true;
        }
        i += 1;
    }
    false
}

/// The default reset hook of a projection: back to `Default::default()`.
#[diagnostic::on_unimplemented(
    message = "projection `{Self}` has no reset hook",
    label = "a rebuild clears the read model first: derive or implement `Default` for `{Self}`",
    note = "or name a hook: `#[projection(..., reset = Self::clear)]` with `fn clear(&mut self)`"
)]
pub trait ResetToDefault {
    /// Replaces `self` with the default value.
    fn reset_to_default(&mut self);
}

impl<T: Default> ResetToDefault for T {
    #[inline]
    fn reset_to_default(&mut self) {
        *self = T::default();
    }
}

/// `T` is an event of the `I`-th enum of the tuple of sources `S`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event of any source of this projection",
    label = "none of the enums in `events = [...]` has a variant holding `{Self}`",
    note = "add `{Self}`'s enum to `events = [...]`, or remove the handler for it"
)]
pub trait SourceEvent<S, I> {}

/// Index markers for [`SourceEvent`].
pub struct Source0;
/// Index marker.
pub struct Source1;
/// Index marker.
pub struct Source2;
/// Index marker.
pub struct Source3;
/// Index marker.
pub struct Source4;
/// Index marker.
pub struct Source5;

macro_rules! source_event {
    ($($marker:ident => $pick:ident in ($($all:ident),+);)*) => {$(
        impl<T: EventOf<$pick>, $($all: EventEnum),+> SourceEvent<($($all,)+), $marker> for T {}
    )*};
}

source_event! {
    Source0 => A in (A, B);
    Source1 => B in (A, B);
    Source0 => A in (A, B, C);
    Source1 => B in (A, B, C);
    Source2 => C in (A, B, C);
    Source0 => A in (A, B, C, D);
    Source1 => B in (A, B, C, D);
    Source2 => C in (A, B, C, D);
    Source3 => D in (A, B, C, D);
    Source0 => A in (A, B, C, D, F);
    Source1 => B in (A, B, C, D, F);
    Source2 => C in (A, B, C, D, F);
    Source3 => D in (A, B, C, D, F);
    Source4 => F in (A, B, C, D, F);
    Source0 => A in (A, B, C, D, F, G);
    Source1 => B in (A, B, C, D, F, G);
    Source2 => C in (A, B, C, D, F, G);
    Source3 => D in (A, B, C, D, F, G);
    Source4 => F in (A, B, C, D, F, G);
    Source5 => G in (A, B, C, D, F, G);
}

/// Compile-time check that `T` is an event of one of the sources `S` (a tuple of enums).
#[inline]
pub const fn assert_source_event<S, T: SourceEvent<S, I>, I>() {}

/// How the `j`-th member of an event enum clashes with an earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameClash {
    /// No clash.
    None,
    /// The same current wire name as an earlier member.
    Duplicate,
    /// A name reserved by an earlier member's history (or reserving one of its names).
    Reserved,
}

/// Compares member `j` of an event enum with every earlier member.
pub const fn name_clash(sets: &[NameSet], current: &[&str], j: usize) -> NameClash {
    let mut i = 0;
    while i < j {
        if str_eq(current[i], current[j]) {
            return NameClash::Duplicate;
        }
        i += 1;
    }
    let mut i = 0;
    while i < j {
        if sets[i].intersects(&sets[j]) {
            return NameClash::Reserved;
        }
        i += 1;
    }
    NameClash::None
}

/// Whether any member's names contain `name`.
pub const fn names_contain(sets: &[NameSet], name: &str) -> bool {
    let mut i = 0;
    while i < sets.len() {
        if sets[i].contains(name) {
            return true;
        }
        i += 1;
    }
    false
}
