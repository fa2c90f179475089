//! The message format: one NATS message per stored event.
//!
//! # Body
//!
//! A JSON object, the authoritative form of the event:
//!
//! ```json
//! {
//!   "format": 1,
//!   "event_id": "0190b4c2-…",
//!   "event_type": "deposited",
//!   "event_version": 1,
//!   "stream_type": "account",
//!   "stream_id": "acc-1",
//!   "stream_version": 2,
//!   "global_position": 17,
//!   "tx": 0,
//!   "prev": { "tx": 0, "position": 16 },
//!   "recorded_at": "2026-12-03T17:44:49.123456Z",
//!   "metadata": { "correlation_id": "…", "causation_id": "…" },
//!   "payload": { "amount": 100 }
//! }
//! ```
//!
//! - `format`: this layout's version (1).
//! - `global_position` and `tx`: the event's cursor in the store's commit order (`tx` is 0 for
//!   stores that commit in position order; PostgreSQL's transaction id otherwise). A consumer
//!   takes this cursor as its own, so its checkpoint drops redeliveries.
//! - `prev`: the cursor of the event the relay published before this one (`{0, 0}` for the
//!   first). A consumer checks that the chain is unbroken from its checkpoint
//!   ([`SourceConfig::verify_chain`](crate::SourceConfig::verify_chain)).
//! - `metadata`: the runtime's [`Metadata`] as stored (correlation,
//!   causation, user map, `traceparent`).
//! - `payload`: the event's JSON payload, as stored, in the shape of `event_version` (the
//!   consumer's generated decoder upcasts it).
//!
//! # Headers
//!
//! Copies for routing, filtering and tools that do not parse the body; the body wins:
//! `Nats-Msg-Id` (the event id: JetStream drops a second publish within the stream's
//! duplicate window), `Cqrs-Event-Type`, `Cqrs-Event-Version`, `Cqrs-Stream-Type`,
//! `Cqrs-Stream-Id`, `Cqrs-Stream-Version`, `Cqrs-Position`, `Cqrs-Tx`, and `traceparent` when
//! the event has one. Control characters in text header values are replaced by `?`.

use async_nats::HeaderMap;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use cqrs_runtime::Metadata;
use cqrs_runtime::store::{Cursor, StoredEvent};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

/// The version of the body's layout.
pub const FORMAT: u32 = 1;

/// Header: the event's wire name.
pub const EVENT_TYPE: &str = "Cqrs-Event-Type";
/// Header: the version of the payload's shape.
pub const EVENT_VERSION: &str = "Cqrs-Event-Version";
/// Header: the stream type.
pub const STREAM_TYPE: &str = "Cqrs-Stream-Type";
/// Header: the stream id.
pub const STREAM_ID: &str = "Cqrs-Stream-Id";
/// Header: the version within the stream.
pub const STREAM_VERSION: &str = "Cqrs-Stream-Version";
/// Header: the global position in the store's log.
pub const POSITION: &str = "Cqrs-Position";
/// Header: the commit-order key of the cursor (0 for stores that commit in position order).
pub const TX: &str = "Cqrs-Tx";

#[derive(Serialize)]
struct Head<'a> {
    format: u32,
    event_id: Uuid,
    event_type: &'a str,
    event_version: u32,
    stream_type: &'a str,
    stream_id: &'a str,
    stream_version: u64,
    global_position: u64,
    tx: u64,
    prev: Cursor,
    recorded_at: DateTime<Utc>,
    metadata: &'a Metadata,
}

#[derive(Deserialize)]
struct Body {
    format: u32,
    event_id: Uuid,
    event_type: String,
    event_version: u32,
    stream_type: String,
    stream_id: String,
    stream_version: u64,
    global_position: u64,
    tx: u64,
    prev: Cursor,
    recorded_at: DateTime<Utc>,
    metadata: Metadata,
    payload: Box<RawValue>,
}

/// The body and headers of `event`, read at `cursor`, published after `prev`.
pub fn encode(
    cursor: Cursor,
    prev: Cursor,
    event: &StoredEvent,
) -> Result<(HeaderMap, Bytes), serde_json::Error> {
    let head = Head {
        format: FORMAT,
        event_id: event.event_id,
        event_type: &event.event_type,
        event_version: event.event_version,
        stream_type: &event.stream_type,
        stream_id: &event.stream_id,
        stream_version: event.stream_version,
        global_position: cursor.position,
        tx: cursor.tx,
        prev,
        recorded_at: event.recorded_at,
        metadata: &event.metadata,
    };
    let mut body = Vec::with_capacity(event.payload.len() + 512);
    serde_json::to_writer(&mut body, &head)?;
    // `{...}` → `{...,"payload":<payload>}`: the stored payload is one JSON document already.
    body.pop();
    body.extend_from_slice(b",\"payload\":");
    body.extend_from_slice(&event.payload);
    body.push(b'}');

    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", event.event_id.to_string().as_str());
    headers.insert(EVENT_TYPE, header_text(&event.event_type).as_str());
    headers.insert(EVENT_VERSION, event.event_version.to_string().as_str());
    headers.insert(STREAM_TYPE, header_text(&event.stream_type).as_str());
    headers.insert(STREAM_ID, header_text(&event.stream_id).as_str());
    headers.insert(STREAM_VERSION, event.stream_version.to_string().as_str());
    headers.insert(POSITION, cursor.position.to_string().as_str());
    headers.insert(TX, cursor.tx.to_string().as_str());
    if let Some(trace) = &event.metadata.trace {
        headers.insert("traceparent", header_text(&trace.to_string()).as_str());
    }
    Ok((headers, Bytes::from(body)))
}

/// A message body that could not be taken as an event: why, and the cursor when it could be
/// read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The event's cursor, when the body names one.
    pub cursor: Option<Cursor>,
    /// What is wrong.
    pub reason: String,
}

/// A decoded message: the event, its cursor, and the cursor published before it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The event's cursor in the publishing store's commit order.
    pub cursor: Cursor,
    /// The cursor of the event published before it.
    pub prev: Cursor,
    /// The event, as the store holds it.
    pub event: StoredEvent,
}

/// Reads a message body written by [`encode`].
pub fn decode(body: &[u8]) -> Result<Decoded, Unreadable> {
    match serde_json::from_slice::<Body>(body) {
        Ok(body) if body.format == FORMAT => Ok(Decoded {
            cursor: Cursor {
                tx: body.tx,
                position: body.global_position,
            },
            prev: body.prev,
            event: StoredEvent {
                global_position: body.global_position,
                stream_type: body.stream_type,
                stream_id: body.stream_id,
                stream_version: body.stream_version,
                event_id: body.event_id,
                event_type: body.event_type,
                event_version: body.event_version,
                payload: body.payload.get().as_bytes().to_vec(),
                metadata: body.metadata,
                recorded_at: body.recorded_at,
            },
        }),
        Ok(body) => Err(Unreadable {
            cursor: Some(Cursor {
                tx: body.tx,
                position: body.global_position,
            }),
            reason: format!("unknown envelope format {}", body.format),
        }),
        Err(error) => Err(Unreadable {
            cursor: cursor_of(body),
            reason: format!("not an event envelope: {error}"),
        }),
    }
}

/// The cursor of a body that is not a whole envelope, if it names one.
fn cursor_of(body: &[u8]) -> Option<Cursor> {
    #[derive(Deserialize)]
    struct Position {
        global_position: u64,
        #[serde(default)]
        tx: u64,
    }
    serde_json::from_slice::<Position>(body)
        .ok()
        .map(|p| Cursor {
            tx: p.tx,
            position: p.global_position,
        })
}

/// `text` without control characters (a header value holds none).
fn header_text(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> StoredEvent {
        StoredEvent {
            global_position: 7,
            stream_type: "account".into(),
            stream_id: "a\r\nb".into(),
            stream_version: 2,
            event_id: Uuid::now_v7(),
            event_type: "deposited".into(),
            event_version: 3,
            payload: br#"{"amount": 5, "note": "x"}"#.to_vec(),
            metadata: Metadata::new(),
            recorded_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap_or_default(),
        }
    }

    #[test]
    fn an_event_round_trips() {
        let event = event();
        let cursor = Cursor { tx: 9, position: 7 };
        let prev = Cursor { tx: 8, position: 5 };
        let (headers, body) = encode(cursor, prev, &event).expect("encode");
        let decoded = decode(&body).expect("decode");
        assert_eq!(decoded.cursor, cursor);
        assert_eq!(decoded.prev, prev);
        assert_eq!(decoded.event, event);
        let id = event.event_id.to_string();
        assert_eq!(
            headers.get("Nats-Msg-Id").map(|v| v.as_str()),
            Some(id.as_str())
        );
        assert_eq!(headers.get(STREAM_ID).map(|v| v.as_str()), Some("a??b"));
    }

    #[test]
    fn a_foreign_body_is_unreadable_with_its_cursor_when_it_has_one() {
        let no_cursor = decode(b"hello").expect_err("not json");
        assert_eq!(no_cursor.cursor, None);
        let with_cursor = decode(br#"{"global_position": 4, "tx": 1}"#).expect_err("partial");
        assert_eq!(with_cursor.cursor, Some(Cursor { tx: 1, position: 4 }));
    }
}
