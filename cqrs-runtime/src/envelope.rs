//! Envelopes and metadata: what travels with every event and every command.
//!
//! Correlation and causation ids propagate on their own:
//! - a command carries a [`CommandMetadata`] with a fresh UUIDv7 `command_id`;
//! - every event the command produces gets a [`Metadata`] whose correlation id is the command's
//!   correlation id (or, when it has none, its command id), whose causation id is the command id,
//!   and whose user map is the command's;
//! - a follow-up command built with [`CommandMetadata::caused_by`] keeps the event's correlation
//!   id and names the event as its cause;
//! - the trace context ([`TraceContext`], a W3C `traceparent`) goes the same way: a command
//!   takes the current one ([`TraceContext::current`]), its events carry a child of it, and a
//!   follow-up command continues the trace of the event that caused it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::event::Decoded;
use crate::event::{DecodeError, EventEnum};
use crate::store::StoredEvent;
use crate::telemetry::TraceContext;

/// The user-defined part of metadata: free-form keys and JSON values, sorted by key.
pub type UserMetadata = BTreeMap<String, serde_json::Value>;

/// Metadata stored with every event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// The id shared by every command and event of one logical operation.
    pub correlation_id: Uuid,
    /// The id of the message that caused this event (the command id), if known.
    pub causation_id: Option<Uuid>,
    /// Free-form user metadata (tenant, user id, ...), copied from the command.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user: UserMetadata,
    /// The trace the event belongs to (stored as `traceparent`), if the command had one.
    #[serde(
        default,
        rename = "traceparent",
        skip_serializing_if = "Option::is_none"
    )]
    pub trace: Option<TraceContext>,
}

impl Metadata {
    /// Metadata that starts a new correlation: a fresh UUIDv7 correlation id, no cause, no
    /// user data.
    pub fn new() -> Self {
        Self {
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            user: UserMetadata::new(),
            trace: None,
        }
    }
}

impl Default for Metadata {
    fn default() -> Self {
        Self::new()
    }
}

/// Metadata of one command execution; the source of the [`Metadata`] of the events it produces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandMetadata {
    /// The id of this command execution (UUIDv7). Events it produces name it as their cause.
    pub command_id: Uuid,
    /// The correlation id to continue; `None` starts a new correlation at `command_id`.
    pub correlation_id: Option<Uuid>,
    /// The id of the message (usually an event) that caused this command, if any.
    pub causation_id: Option<Uuid>,
    /// Free-form user metadata, copied onto every produced event.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user: UserMetadata,
    /// The trace this command continues (its events carry a child of it).
    #[serde(
        default,
        rename = "traceparent",
        skip_serializing_if = "Option::is_none"
    )]
    pub trace: Option<TraceContext>,
}

impl CommandMetadata {
    /// Metadata for a command that starts a new correlation: a fresh UUIDv7 command id, and
    /// the current trace context, if any ([`TraceContext::current`]).
    pub fn new() -> Self {
        Self {
            command_id: Uuid::now_v7(),
            correlation_id: None,
            causation_id: None,
            user: UserMetadata::new(),
            trace: TraceContext::current(),
        }
    }

    /// Metadata for a follow-up command caused by `envelope`: it keeps the event's correlation
    /// id and trace, names the event id as its cause, and copies the user map. The command id
    /// is fresh.
    pub fn caused_by<E>(envelope: &Envelope<E>) -> Self {
        Self {
            command_id: Uuid::now_v7(),
            correlation_id: Some(envelope.metadata.correlation_id),
            causation_id: Some(envelope.event_id),
            user: envelope.metadata.user.clone(),
            trace: envelope.metadata.trace.or_else(TraceContext::current),
        }
    }

    /// Continues the trace `trace` (for example from an incoming request's `traceparent`).
    pub fn with_trace(mut self, trace: TraceContext) -> Self {
        self.trace = Some(trace);
        self
    }

    /// Sets one user metadata entry, replacing any previous value of `key`.
    pub fn with_user(
        mut self,
        key: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        self.user.insert(key.into(), value.into());
        self
    }

    /// Continues the correlation `id` instead of starting a new one.
    pub fn with_correlation_id(mut self, id: Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }

    /// Names `id` as the cause of this command.
    pub fn with_causation_id(mut self, id: Uuid) -> Self {
        self.causation_id = Some(id);
        self
    }

    /// The correlation id the produced events will carry: the given one, else the command id.
    pub fn effective_correlation_id(&self) -> Uuid {
        self.correlation_id.unwrap_or(self.command_id)
    }

    /// The [`Metadata`] of every event this command produces (the propagation rule).
    pub fn event_metadata(&self) -> Metadata {
        Metadata {
            correlation_id: self.effective_correlation_id(),
            causation_id: Some(self.command_id),
            user: self.user.clone(),
            trace: self.trace.as_ref().map(TraceContext::child),
        }
    }
}

impl Default for CommandMetadata {
    fn default() -> Self {
        Self::new()
    }
}

/// A typed event with everything stored around it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<E> {
    /// The event's unique id (UUIDv7), also the idempotency key of its append.
    pub event_id: Uuid,
    /// The stream type: the aggregate's `TYPE`.
    pub stream_type: String,
    /// The stream id: the aggregate id's `Display` form.
    pub stream_id: String,
    /// The event's version within its stream, starting at 1.
    pub stream_version: u64,
    /// The event's position in the store's global log, starting at 1.
    pub global_position: u64,
    /// When the event was recorded (set by the writer, UTC).
    pub recorded_at: DateTime<Utc>,
    /// Correlation, causation and user metadata.
    pub metadata: Metadata,
    /// The typed event.
    pub event: E,
}

impl<E> Envelope<E> {
    /// Transforms the event, keeping everything around it.
    pub fn map<F>(self, f: impl FnOnce(E) -> F) -> Envelope<F> {
        let (envelope, event) = self.split();
        envelope.with_event(f(event))
    }

    /// Transforms the event fallibly, keeping everything around it.
    pub fn try_map<F, Err>(self, f: impl FnOnce(E) -> Result<F, Err>) -> Result<Envelope<F>, Err> {
        let (envelope, event) = self.split();
        Ok(envelope.with_event(f(event)?))
    }

    /// Borrows the event, keeping (a clone of) everything around it.
    pub fn as_ref(&self) -> Envelope<&E> {
        Envelope {
            event_id: self.event_id,
            stream_type: self.stream_type.clone(),
            stream_id: self.stream_id.clone(),
            stream_version: self.stream_version,
            global_position: self.global_position,
            recorded_at: self.recorded_at,
            metadata: self.metadata.clone(),
            event: &self.event,
        }
    }

    /// Drops the envelope and returns the event.
    pub fn into_event(self) -> E {
        self.event
    }

    /// Separates the event from the rest of the envelope.
    pub fn split(self) -> (Envelope<()>, E) {
        let Envelope {
            event_id,
            stream_type,
            stream_id,
            stream_version,
            global_position,
            recorded_at,
            metadata,
            event,
        } = self;
        let envelope = Envelope {
            event_id,
            stream_type,
            stream_id,
            stream_version,
            global_position,
            recorded_at,
            metadata,
            event: (),
        };
        (envelope, event)
    }

    /// Metadata for a follow-up command caused by this event; see [`CommandMetadata::caused_by`].
    pub fn follow_up(&self) -> CommandMetadata {
        CommandMetadata::caused_by(self)
    }
}

impl Envelope<()> {
    /// Puts `event` into this bare envelope.
    pub fn with_event<E>(self, event: E) -> Envelope<E> {
        Envelope {
            event_id: self.event_id,
            stream_type: self.stream_type,
            stream_id: self.stream_id,
            stream_version: self.stream_version,
            global_position: self.global_position,
            recorded_at: self.recorded_at,
            metadata: self.metadata,
            event,
        }
    }
}

impl<E: EventEnum> Envelope<E> {
    /// Decodes a stored event into typed envelopes (the store's row → the stream's enum):
    /// usually one; several for a split event, each keeping the stored event's id, stream
    /// version and position; none for a retired event type.
    pub fn decode(stored: &StoredEvent) -> Result<Decoded<Self>, DecodeError> {
        let decoded = E::decode(&stored.event_type, stored.event_version, &stored.payload)?;
        Ok(decoded.map(|event| Envelope {
            event_id: stored.event_id,
            stream_type: stored.stream_type.clone(),
            stream_id: stored.stream_id.clone(),
            stream_version: stored.stream_version,
            global_position: stored.global_position,
            recorded_at: stored.recorded_at,
            metadata: stored.metadata.clone(),
            event,
        }))
    }
}
