//! What `#[aggregate]` and `#[derive(Command)]` emit.

pub use crate::aggregate::{
    Aggregate, Apply, ApplyAll, Command, CommandOf, CreationPolicy, Emits, Events, HandlerOutput,
    Handles,
};

pub use super::decided::{Decided, decided};

use crate::event::{DecodeError, Decoded, EncodedEvent, EventEnum, EventSchema, Holds};

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
    fn decode(name: &str, _: u32, _: &[u8]) -> Result<Decoded<Self>, DecodeError> {
        Err(DecodeError::UnknownEventType {
            name: name.to_owned(),
        })
    }
    fn schema() -> &'static [EventSchema] {
        &[]
    }
}

/// A placeholder enum holds every event, so that handlers naming events add no errors of their
/// own after the error that put it there.
impl<T> Holds<T> for Unknown {}

impl<T> Emits<T> for Unknown {
    fn emit(_: T) -> Events<Self> {
        Events::None
    }
}
