//! Events, event enums and their wire format.
//!
//! An [`Event`] is one struct per (wire name, version). An [`EventEnum`] is the closed set of
//! events of one stream (one aggregate type); it encodes to and decodes from
//! `(name, version, payload)` without a `serde_json::Value` detour.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::schema::names::NameSet;

/// One event struct: a stable wire name and a version, decoupled from the Rust type name.
///
/// Implemented by `#[derive(Event)]`; do not implement it by hand unless you also keep
/// [`Event::SCHEMA`] true.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event",
    label = "add `#[derive(Event)]` and `#[event(name = \"...\", version = N)]` to `{Self}`"
)]
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The wire name, stored next to the payload (never the Rust path).
    const NAME: &'static str;
    /// The version of this struct's shape under [`Event::NAME`], starting at 1.
    const VERSION: u32;
    /// The described shape of this version: name, version, Rust type, fields, fingerprint.
    const SCHEMA: EventSchema;
    /// Every wire name this event's history answers to: its own, plus the names it was
    /// renamed from (with `renamed_from`). Those names stay reserved in its event enum.
    #[doc(hidden)]
    const NAMES: NameSet = NameSet::EMPTY.with(Self::NAME);

    /// Decodes a stored `(name, version, payload)` of this event's history into this struct:
    /// straight into the stored version's struct, then up the typed chain of steps.
    ///
    /// The default (an event without history) accepts exactly [`Event::NAME`] at
    /// [`Event::VERSION`]; a newer version is [`DecodeError::UnknownVersion`].
    fn decode_stored(name: &str, version: u32, payload: &[u8]) -> Result<Self, DecodeError> {
        if name == Self::NAME {
            Self::decode_own_version(name, version, payload)
        } else {
            Err(unknown_version::<Self>(name, version))
        }
    }

    /// [`Event::decode_stored`] for a `name` the caller has found in [`Event::NAMES`] (what a
    /// derived `EventEnum::decode` and a projection's dispatch call): the same result. The
    /// derive overrides it to skip testing the name again where the history has one name.
    #[doc(hidden)]
    #[inline]
    fn decode_named(name: &str, version: u32, payload: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_stored(name, version, payload)
    }

    /// The derived [`Event::decode_named`] of an event without history: `name` is
    /// [`Event::NAME`], so only the version is tested.
    #[doc(hidden)]
    #[inline]
    fn decode_own_version(name: &str, version: u32, payload: &[u8]) -> Result<Self, DecodeError> {
        if version == Self::VERSION {
            decode_payload(name, version, payload)
        } else {
            Err(unknown_version::<Self>(name, version))
        }
    }

    /// The decoder of an event with history, `decode_stored` (`named` false) and
    /// `decode_named` (`named` true) in one: the derive's only call of
    /// [`Event::decode_after`], so that a missing step is reported once. The default (an
    /// event without history) is `decode_stored`.
    #[doc(hidden)]
    #[inline]
    fn decode_chain(
        name: &str,
        version: u32,
        payload: &[u8],
        named: bool,
    ) -> Result<Self, DecodeError> {
        let _ = named;
        Self::decode_stored(name, version, payload)
    }

    /// The decoder of a version whose predecessor is `P` (`upcast_from = P` or
    /// `renamed_from = P`): this version's own (name, version) decodes straight into `Self`, and
    /// a newer version of its name is [`DecodeError::UnknownVersion`]; anything else decodes as
    /// `P` (down `P`'s own chain) and takes the step from `P` to `Self` (a failing `TryFrom` is
    /// [`DecodeError::UpcastFailed`]). With `named`, the caller has found `name` in
    /// [`Event::NAMES`]: where the history has one name (no rename anywhere down the chain),
    /// `name` is that name and is not tested again.
    ///
    /// What the derive's `decode_chain` calls. The step is a bound here, so that a missing
    /// step is reported with [`UpcastFrom`]'s message, at `upcast_from = P`.
    #[doc(hidden)]
    #[inline]
    fn decode_after<P: Event>(
        name: &str,
        version: u32,
        payload: &[u8],
        named: bool,
    ) -> Result<Self, DecodeError>
    where
        Self: UpcastFrom<P>,
    {
        // With one name, `P` has the same one (a rename would have added its own).
        let known_name = named && Self::NAMES.len() == 1;
        if known_name || name == Self::NAME {
            if version == Self::VERSION {
                return decode_payload(name, version, payload);
            }
            if version > Self::VERSION {
                return Err(unknown_version::<Self>(name, version));
            }
        }
        let previous = if known_name {
            P::decode_named(name, version, payload)?
        } else {
            P::decode_stored(name, version, payload)?
        };
        Self::try_from(previous).map_err(|source| DecodeError::UpcastFailed {
            name: name.to_owned(),
            version,
            source: Box::new(source),
        })
    }

    /// The schema of every version in this event's history, oldest first.
    fn history() -> Vec<EventSchema> {
        vec![Self::SCHEMA]
    }

    /// The scopes this event's fields claim (`#[claim(Scope)]`).
    const CLAIMS: &'static [&'static str] = &[];
    /// The scopes this event's fields release (`#[release(Scope)]`).
    const RELEASES: &'static [&'static str] = &[];

    /// The values this event claims and releases, in field order (see
    /// [`claims`](crate::claims)); none by default.
    #[inline]
    fn claims(&self) -> Vec<crate::store::Claim> {
        Vec::new()
    }

    /// Serializes this event with its wire name and version (what each arm of a derived
    /// [`EventEnum::encode`] calls), under the store's rule
    /// ([`store::json::to_vec`](crate::store::json::to_vec)): a non-finite float, a NUL
    /// character or nesting deeper than the store reads back is an error, never a payload
    /// that cannot be loaded again.
    #[inline]
    fn encode(&self) -> Result<EncodedEvent, serde_json::Error> {
        Ok(EncodedEvent {
            name: Self::NAME,
            version: Self::VERSION,
            payload: crate::store::json::to_vec(self)?,
        })
    }
}

/// `(name, version)` is not a version `E` decodes: it knows up to `E::VERSION`.
fn unknown_version<E: Event>(name: &str, version: u32) -> DecodeError {
    DecodeError::UnknownVersion {
        name: name.to_owned(),
        version,
        known: E::VERSION,
    }
}

/// Deserializes `payload` into `T`, the struct of `(name, version)`.
#[inline]
pub(crate) fn decode_payload<T: DeserializeOwned>(
    name: &str,
    version: u32,
    payload: &[u8],
) -> Result<T, DecodeError> {
    serde_json::from_slice(payload).map_err(|source| DecodeError::CorruptPayload {
        name: name.to_owned(),
        version,
        source,
    })
}

/// A typed step from the previous version `P` to `Self`: implemented for every
/// `TryFrom<P>` (and so every `From<P>`) whose error is a `std::error::Error`.
#[diagnostic::on_unimplemented(
    message = "there is no step from `{P}` to `{Self}`",
    label = "`{Self}` names `{P}` as the version it upcasts from",
    note = "implement `From<{P}> for {Self}` (or `TryFrom<{P}>` with an error type that implements `std::error::Error`)"
)]
pub trait UpcastFrom<P>: TryFrom<P, Error = Self::StepError> {
    /// The step's error (`Infallible` for `From`).
    type StepError: std::error::Error + Send + Sync + 'static;
}

impl<P, T> UpcastFrom<P> for T
where
    T: TryFrom<P>,
    T::Error: std::error::Error + Send + Sync + 'static,
{
    type StepError = T::Error;
}

/// How a stored event that is no longer a variant (it was split) becomes events of `E`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is listed in `split(...)` of `{E}`, but does not say how it splits",
    label = "implement `Split<{E}> for {Self}`",
    note = "`fn split(self) -> Vec<{E}>` returns the current events, in order, that replace one stored `{Self}`"
)]
pub trait Split<E>: Event {
    /// The current events that replace one stored event of this struct, in order.
    fn split(self) -> Vec<E>;
}

/// What one stored event decodes to: one current event, several (it was split), or none (its
/// type was retired).
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded<E> {
    /// The usual case: one event.
    One(E),
    /// A split event: the events that replace it, in order.
    Many(Vec<E>),
    /// A retired event type: nothing reaches aggregates or projections.
    Skipped,
}

impl<E> Decoded<E> {
    /// Maps each event.
    pub fn map<F>(self, mut f: impl FnMut(E) -> F) -> Decoded<F> {
        match self {
            Decoded::One(e) => Decoded::One(f(e)),
            Decoded::Many(es) => Decoded::Many(es.into_iter().map(f).collect()),
            Decoded::Skipped => Decoded::Skipped,
        }
    }

    /// Calls `f` on each event, in order (cheaper than iterating in hot loops such as replay).
    #[inline]
    pub fn for_each(self, mut f: impl FnMut(E)) {
        match self {
            Decoded::One(e) => f(e),
            Decoded::Many(es) => es.into_iter().for_each(f),
            Decoded::Skipped => {}
        }
    }

    /// The single event, if this is exactly one.
    pub fn one(self) -> Option<E> {
        match self {
            Decoded::One(e) => Some(e),
            Decoded::Many(mut es) if es.len() == 1 => es.pop(),
            _ => None,
        }
    }
}

impl<E> IntoIterator for Decoded<E> {
    type Item = E;
    type IntoIter = EventsIter<E>;

    fn into_iter(self) -> EventsIter<E> {
        match self {
            Decoded::One(e) => EventsIter::One(Some(e)),
            Decoded::Many(es) => EventsIter::Many(es.into_iter()),
            Decoded::Skipped => EventsIter::One(None),
        }
    }
}

/// The events of a [`Decoded`] or an [`Events`](crate::aggregate::Events), in order.
#[derive(Debug)]
pub enum EventsIter<E> {
    /// Zero or one event.
    One(Option<E>),
    /// Several events.
    Many(std::vec::IntoIter<E>),
}

impl<E> Iterator for EventsIter<E> {
    type Item = E;

    #[inline]
    fn next(&mut self) -> Option<E> {
        match self {
            EventsIter::One(e) => e.take(),
            EventsIter::Many(it) => it.next(),
        }
    }
}

/// The closed set of events of one stream type, implemented by `#[derive(EventEnum)]`.
pub trait EventEnum: Sized + Send + Sync + 'static {
    /// The wire names of all variants, in declaration order.
    const NAMES: &'static [&'static str];

    /// The wire name of this value's variant.
    fn event_name(&self) -> &'static str;
    /// The version of this value's variant.
    fn event_version(&self) -> u32;
    /// The event struct inside this value, for dispatch by type (`downcast_ref::<T>()`).
    fn event_any(&self) -> &dyn std::any::Any;
    /// Serializes the payload of this value, giving (name, version, JSON bytes).
    fn encode(&self) -> Result<EncodedEvent, serde_json::Error>;
    /// Decodes a stored `(name, version, payload)`: into the matching variant (after any
    /// upcasting steps), into several events (a split), or into nothing (a retired type).
    fn decode(name: &str, version: u32, payload: &[u8]) -> Result<Decoded<Self>, DecodeError>;
    /// The schema of every variant's current version, in declaration order.
    fn schema() -> &'static [EventSchema];
    /// The schema of every stored shape this enum decodes: all versions of every variant's
    /// history, then the split event types.
    fn history() -> Vec<EventSchema> {
        Self::schema().to_vec()
    }
    /// Wire names whose stored events decode to nothing ([`Decoded::Skipped`]).
    const RETIRED: &'static [&'static str] = &[];

    /// The values this event claims and releases (see [`claims`](crate::claims)): its
    /// variant's, none by default.
    #[inline]
    fn claims(&self) -> Vec<crate::store::Claim> {
        Vec::new()
    }

    /// The scopes this enum's events claim or release, each once.
    fn scopes() -> Vec<&'static str> {
        Vec::new()
    }
}

/// Implemented for each event struct held by an [`EventEnum`] variant (and for the enum itself).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event of `{E}`",
    label = "`{E}` has no variant holding `{Self}`",
    note = "add a variant holding `{Self}` to `{E}`, or remove the handler (or `ignore(...)` entry) that names it"
)]
pub trait EventOf<E: EventEnum>: Sized + 'static {
    /// Wraps this event into its enum variant.
    fn into_enum(self) -> E;
    /// Borrows this event out of the enum if the enum holds it (by default through
    /// [`EventEnum::event_any`]: the held event, if it is a `Self`).
    #[inline]
    fn from_enum(event: &E) -> Option<&Self> {
        event.event_any().downcast_ref::<Self>()
    }
}

impl<E: EventEnum> EventOf<E> for E {
    #[inline]
    fn into_enum(self) -> E {
        self
    }

    #[inline]
    fn from_enum(event: &E) -> Option<&Self> {
        Some(event)
    }
}

// Generated-code support, re-exported so that compiler messages name them (`Holds<T>`, not
// `cqrs_runtime::event::checked::Holds<T>`); not public API.
#[doc(hidden)]
pub use checked::{Holds, WellFormed};

mod checked {
    use super::EventEnum;

    /// `Self` (an event enum) has a variant holding the event `T`: what the macros check a
    /// handler's event type (or an `ignore(...)` entry) against, as `<E as Holds<T>>::holds()`.
    ///
    /// Keyed on the enum, so that the fallback of an enum that `#[derive(EventEnum)]` refused
    /// can hold every `T`, and handlers naming its events add no errors of their own.
    /// Implemented by `#[derive(EventEnum)]`.
    #[diagnostic::on_unimplemented(
        message = "`{T}` is not an event of `{Self}`",
        label = "`{Self}` has no variant holding `{T}`",
        note = "add a variant holding `{T}` to `{Self}`, or remove the handler (or `ignore(...)` entry) that names it"
    )]
    pub trait Holds<T> {
        /// What the generated check names.
        #[inline]
        fn holds() {}
    }

    /// `Self` is an event enum that `#[derive(EventEnum)]` accepted: the enums the general
    /// [`Emits`](crate::aggregate::Emits) impls (`()`, `Vec<_>`, `Option<_>`, ...) are for. An
    /// enum the derive refused emits anything instead, so that its one error stays one.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is not an event enum derived with `#[derive(EventEnum)]`",
        label = "`#[aggregate]` handlers emit into an enum with `#[derive(EventEnum)]`"
    )]
    pub trait WellFormed: EventEnum {}
}

/// An event serialized for storage: wire name, version and JSON payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedEvent {
    /// The wire name.
    pub name: &'static str,
    /// The version of the payload's shape.
    pub version: u32,
    /// The JSON payload.
    pub payload: Vec<u8>,
}

/// Why a stored event could not be turned into a typed event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The wire name is not a variant of the event enum.
    #[error("unknown event type `{name}`")]
    UnknownEventType {
        /// The stored wire name.
        name: String,
    },
    /// The version is not one this binary knows for the name (for example newer than it).
    #[error("event `{name}` has version {version}, but this binary knows versions up to {known}")]
    UnknownVersion {
        /// The stored wire name.
        name: String,
        /// The stored version.
        version: u32,
        /// The newest version this binary knows.
        known: u32,
    },
    /// A fallible step of the upcaster chain refused the stored event.
    #[error("cannot upcast event `{name}` version {version}: {source}")]
    UpcastFailed {
        /// The stored wire name.
        name: String,
        /// The stored version.
        version: u32,
        /// The failing step's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The payload did not deserialize into the struct of its version.
    #[error("corrupt payload for event `{name}` version {version}: {source}")]
    CorruptPayload {
        /// The stored wire name.
        name: String,
        /// The stored version.
        version: u32,
        /// The deserializer's error.
        #[source]
        source: serde_json::Error,
    },
}

/// The described shape of one event version, for tools, docs and review diffs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSchema {
    /// The wire name.
    pub name: &'static str,
    /// The version.
    pub version: u32,
    /// The Rust type name of the struct.
    pub rust_type: &'static str,
    /// The fields, in declaration order.
    pub fields: &'static [FieldSchema],
    /// The fingerprint of the serialized shape (see [`crate::schema`]).
    pub fingerprint: u64,
}

/// One field of an [`EventSchema`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSchema {
    /// The field name as written in Rust.
    pub name: &'static str,
    /// The field's type as written in Rust.
    pub ty: &'static str,
}

impl fmt::Display for EventSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} v{} {:#018x} ({}) {{",
            self.name, self.version, self.fingerprint, self.rust_type
        )?;
        for (i, field) in self.fields.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            write!(f, "{sep}{}: {}", field.name, field.ty)?;
        }
        if self.fields.is_empty() {
            f.write_str("}")
        } else {
            f.write_str(" }")
        }
    }
}

/// Renders the schema of an event enum, one stored shape per line (every version of every
/// event, oldest first, then the retired names), for review diffs.
pub fn describe<E: EventEnum>() -> String {
    let mut out = String::new();
    for schema in E::history() {
        out.push_str(&schema.to_string());
        out.push('\n');
    }
    for name in E::RETIRED {
        out.push_str(name);
        out.push_str(" retired\n");
    }
    out
}
