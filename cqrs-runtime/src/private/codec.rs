//! What `#[derive(Event)]` and `#[derive(EventEnum)]` emit to encode and decode.

pub use crate::event::{
    DecodeError, Decoded, EncodedEvent, Event, EventEnum, EventOf, EventSchema, FieldSchema, Holds,
    Split, UpcastFrom, WellFormed,
};

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

/// A member's decoded event as its enum's [`Decoded::One`] (each arm of a derived
/// [`EventEnum::decode`]; `variant` is the variant's constructor).
#[inline]
pub fn decoded<T, E>(
    event: Result<T, DecodeError>,
    variant: impl FnOnce(T) -> E,
) -> Result<Decoded<E>, DecodeError> {
    event.map(|event| Decoded::One(variant(event)))
}

/// The `history` of an event enum: the histories of its members, in order.
pub fn histories(members: &[fn() -> Vec<EventSchema>]) -> Vec<EventSchema> {
    members.iter().flat_map(|history| history()).collect()
}

/// The `history` of a version whose predecessor is `P`: `P`'s history, then `schema`.
pub fn history_after<P: Event>(schema: EventSchema) -> Vec<EventSchema> {
    let mut history = P::history();
    history.push(schema);
    history
}
