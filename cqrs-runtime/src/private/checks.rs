//! The compile-time checks the macros emit.
//!
//! Two kinds: `const fn`s that fail the `const` item they run in with a message written for
//! the user (`#[track_caller]`, so the error lands on the user's token the call is spanned at),
//! and trait paths such as `<E as Holds<T>>::holds` whose failing bound is reported with
//! the trait's `#[diagnostic::on_unimplemented]` text. The macros name a trait's own item
//! rather than calling a function bounded by the trait, so that rustc's error has no "required
//! by a bound in `__private::...`" tail.

pub use crate::schema::names::str_eq;

use super::evolution::NameSet;
use crate::event::Holds;

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

/// The schema-lock check of one event version: passes when `fingerprint` is one of the
/// `locked` ones, else fails with `message`.
#[track_caller]
pub const fn check_locked(fingerprint: u64, locked: &[u64], message: &'static str) {
    let mut i = 0;
    while i < locked.len() {
        if locked[i] == fingerprint {
            return;
        }
        i += 1;
    }
    panic!("{}", message)
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

/// `T` is an event of the `I`-th enum of the tuple of source enums `S`. The macros check it as
/// `<T as SourceEvent<<S as Sources<{ checked }>>::Checked, _>>::source_event()`, `checked`
/// being [`sources_checkable`]: when two sources share events, the index would be ambiguous,
/// and that mistake is already reported once (by the overlap check), so the handlers are not
/// checked against them.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event of any source of this projection",
    label = "none of the sources in `events = [...]` has an event `{Self}`",
    note = "add `{Self}`'s enum (or its aggregate) to `events = [...]`, or remove the handler for it"
)]
pub trait SourceEvent<S, I> {
    /// What the check names.
    #[inline]
    fn source_event() {}
}

/// The tuple of source enums that handlers are checked against: `Self` when `CHECKED`, else
/// [`Unchecked`] (see [`SourceEvent`]).
pub trait Sources<const CHECKED: bool> {
    /// What [`SourceEvent`] is checked against.
    type Checked;
}

impl<S> Sources<true> for S {
    type Checked = S;
}

impl<S> Sources<false> for S {
    type Checked = Unchecked;
}

/// Sources whose handlers are not checked (see [`SourceEvent`]).
pub enum Unchecked {}

impl<T> SourceEvent<Unchecked, Source0> for T {}

/// Whether handlers can be checked against the sources whose wire names are `names`: no two
/// share a name (each event belongs to one source) and none is empty (an enum the derive
/// refused, which holds every event).
pub const fn sources_checkable(names: &[&[&str]]) -> bool {
    let mut i = 0;
    while i < names.len() {
        if names[i].is_empty() {
            return false;
        }
        let mut j = 0;
        while j < i {
            if names_overlap(names[i], names[j]) {
                return false;
            }
            j += 1;
        }
        i += 1;
    }
    true
}

/// The check of a projection's later source `later` against an earlier one: fails with
/// `same` when both have the same events (an aggregate and its own event enum), with `overlap`
/// when they share a wire name.
#[track_caller]
pub const fn check_sources(
    later: &[&str],
    earlier: &[&str],
    same: &'static str,
    overlap: &'static str,
) {
    if later.is_empty() || earlier.is_empty() {
        return;
    }
    if later.len() == earlier.len() && !names_differ(later, earlier) {
        panic!("{}", same)
    }
    if names_overlap(later, earlier) {
        panic!("{}", overlap)
    }
}

/// Whether some name of `a` is not in `b`.
const fn names_differ(a: &[&str], b: &[&str]) -> bool {
    let mut i = 0;
    while i < a.len() {
        if !name_taken(a[i], b) {
            return true;
        }
        i += 1;
    }
    false
}

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
        impl<T, $($all),+> SourceEvent<($($all,)+), $marker> for T where $pick: Holds<T> {}
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
