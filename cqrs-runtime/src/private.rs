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
    IntoEvents,
};
pub use crate::event::{
    DecodeError, EncodedEvent, Event, EventEnum, EventOf, EventSchema, FieldSchema,
};
pub use crate::event::{Decoded, Split, decode_payload, upcast};
pub use crate::schema::{NameSet, Shape, combine};

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

/// A one-element `Vec` (generated `IntoEvents` impls use it).
#[inline]
pub fn vec_of_one<T>(value: T) -> Vec<T> {
    vec![value]
}

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
