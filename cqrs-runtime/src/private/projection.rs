//! What `#[projection]` emits.

pub use crate::projection::{Answers, EventMeta, On, Outcome, Projecting, Projection};
pub use crate::store::{EventFilter, StoredEvent};

use crate::event::{DecodeError, Decoded, Event, EventEnum};

/// What `events = X` of a projection names: an event enum (`#[derive(EventEnum)]`), or an
/// aggregate (`#[aggregate]`), which stands for its event enum and makes its streams strict.
///
/// The generated `project` decodes with `<X as ProjectionSource>::Events`. When no source knows
/// a stored event, it is an error if the event's stream type is the [`STREAM_TYPE`] of a
/// source (an aggregate's stream holds only that aggregate's events, and loading the aggregate
/// fails on that row too), and a foreign event (skipped) otherwise.
///
/// [`STREAM_TYPE`]: ProjectionSource::STREAM_TYPE
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a source of a projection",
    label = "`events = ...` names `#[derive(EventEnum)]` enums or `#[aggregate]` types",
    note = "name the event enum, such as `events = AccountEvent`, or the aggregate whose streams the projection reads strictly, such as `events = BankAccount`"
)]
pub trait ProjectionSource {
    /// The event enum the projection decodes with.
    type Events: EventEnum;
    /// The stream type of an aggregate source (`Aggregate::TYPE`); `None` for an event enum.
    const STREAM_TYPE: Option<&'static str>;
}

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

/// Whether `stored` sits in a stream of the aggregate source whose stream type is
/// `stream_type` (always `false` for an event enum source, whose `STREAM_TYPE` is `None`: the
/// test folds away).
#[inline]
pub fn in_stream(stored: &StoredEvent, stream_type: Option<&'static str>) -> bool {
    match stream_type {
        Some(stream_type) => stored.stream_type == stream_type,
        None => false,
    }
}

/// What `project` returns for an event that no source decoded: an error if its stream is a
/// source aggregate's (`streams` lists every source's `STREAM_TYPE`), else [`Outcome::Foreign`].
#[inline]
pub fn undecoded(
    stored: &StoredEvent,
    streams: &[Option<&'static str>],
) -> Result<Outcome, DecodeError> {
    let mut i = 0;
    while i < streams.len() {
        if in_stream(stored, streams[i]) {
            return Err(unknown_in_stream(stored));
        }
        i += 1;
    }
    Ok(Outcome::Foreign)
}

/// The error of an event in a source aggregate's stream that the aggregate's events do not
/// include: the error loading the aggregate gives for the same row.
#[cold]
#[inline(never)]
pub fn unknown_in_stream(stored: &StoredEvent) -> DecodeError {
    DecodeError::UnknownEventType {
        name: stored.event_type.clone(),
    }
}

/// Whether `stored` carries a wire name of `E`'s history (the dispatch of `non_exhaustive`
/// projections): its own name or one it was renamed from.
#[inline]
pub fn is_named<E: Event>(stored: &StoredEvent) -> bool {
    E::NAMES.has(&stored.event_type)
}

/// Decodes `stored`, whose name [`is_named`] found in `E`'s history, straight into the event
/// struct `E`.
#[inline]
pub fn decode_event<E: Event>(stored: &StoredEvent) -> Result<E, DecodeError> {
    E::decode_named(&stored.event_type, stored.event_version, &stored.payload)
}

/// `filter` widened by the events of a source whose event enum is `E` and whose stream type
/// is `stream_type` (`ProjectionSource::STREAM_TYPE`): every wire name `E` decodes (current,
/// renamed, split and retired), and, for an aggregate, every event of its streams (so that an
/// unknown event there still reaches the projection, which refuses it).
pub fn source_filter<E: EventEnum>(
    filter: EventFilter,
    stream_type: Option<&'static str>,
) -> EventFilter {
    let mut filter = filter
        .with_event_types(E::NAMES.iter().copied())
        .with_event_types(E::history().iter().map(|s| s.name))
        .with_event_types(E::RETIRED.iter().copied());
    if let Some(stream_type) = stream_type {
        filter = filter.with_stream_type(stream_type);
    }
    filter
}
