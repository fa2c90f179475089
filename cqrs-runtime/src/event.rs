//! Events, event enums and their wire format.
//!
//! An [`Event`] is one struct per (wire name, version). An [`EventEnum`] is the closed set of
//! events of one stream (one aggregate type); it encodes to and decodes from
//! `(name, version, payload)` without a `serde_json::Value` detour.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

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
    /// The described shape of this version: name, version, Rust type and fields.
    const SCHEMA: EventSchema;

    /// Decodes a stored payload of `version` into this (current) event struct.
    ///
    /// The default accepts exactly [`Event::VERSION`]; any other version is
    /// [`DecodeError::UnknownVersion`].
    fn decode_stored(version: u32, payload: &[u8]) -> Result<Self, DecodeError> {
        if version == Self::VERSION {
            serde_json::from_slice(payload).map_err(|source| DecodeError::CorruptPayload {
                name: Self::NAME.to_owned(),
                version,
                source,
            })
        } else {
            Err(DecodeError::UnknownVersion {
                name: Self::NAME.to_owned(),
                version,
                known: Self::VERSION,
            })
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
    /// Serializes the payload of this value, giving (name, version, JSON bytes).
    fn encode(&self) -> Result<EncodedEvent, serde_json::Error>;
    /// Decodes a stored `(name, version, payload)` into the matching variant.
    fn decode(name: &str, version: u32, payload: &[u8]) -> Result<Self, DecodeError>;
    /// The schema of every variant, in declaration order.
    fn schema() -> &'static [EventSchema];
}

/// Implemented for each event struct held by an [`EventEnum`] variant (and for the enum itself).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event of `{E}`",
    label = "`{E}` has no variant holding `{Self}`",
    note = "add a variant holding `{Self}` to `{E}`, or remove the handler for it"
)]
pub trait EventOf<E: EventEnum> {
    /// Wraps this event into its enum variant.
    fn into_enum(self) -> E;
    /// Borrows this event out of the enum if the enum holds it.
    fn from_enum(event: &E) -> Option<&Self>;
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
        write!(f, "{} v{} ({}) {{", self.name, self.version, self.rust_type)?;
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

/// Renders the schema of an event enum, one event per line, for review diffs.
pub fn describe<E: EventEnum>() -> String {
    let mut out = String::new();
    for schema in E::schema() {
        out.push_str(&schema.to_string());
        out.push('\n');
    }
    out
}
