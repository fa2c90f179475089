//! A deliberately broken aggregate, for the test kit's automatic checks.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use cqrs_runtime::aggregate::{Aggregate, Command, CreationPolicy, Events};
use cqrs_runtime::event::{
    DecodeError, Decoded, EncodedEvent, Event, EventEnum, EventOf, EventSchema, FieldSchema,
};
use serde::{Deserialize, Serialize};

use super::{AccountError, AccountId, encode};

/// An event that loses a field through serialization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Poked {
    pub by: u64,
    #[serde(skip)]
    pub secret: u64,
}
event!(Poked, "poked", 1, ["by": "u64"]);

#[derive(Debug, Clone, PartialEq)]
pub enum SneakyEvent {
    Poked(Poked),
}
event_of!(SneakyEvent::Poked(Poked));

impl EventEnum for SneakyEvent {
    const NAMES: &'static [&'static str] = &[Poked::NAME];
    fn event_name(&self) -> &'static str {
        Poked::NAME
    }
    fn event_version(&self) -> u32 {
        Poked::VERSION
    }
    fn event_any(&self) -> &dyn std::any::Any {
        let Self::Poked(e) = self;
        e
    }
    fn encode(&self) -> Result<EncodedEvent, serde_json::Error> {
        let Self::Poked(e) = self;
        encode(e)
    }
    fn decode(name: &str, version: u32, payload: &[u8]) -> Result<Decoded<Self>, DecodeError> {
        match name {
            Poked::NAME => {
                Poked::decode_stored(name, version, payload).map(|e| Decoded::One(Self::Poked(e)))
            }
            other => Err(DecodeError::UnknownEventType {
                name: other.to_owned(),
            }),
        }
    }
    fn schema() -> &'static [EventSchema] {
        const SCHEMA: &[EventSchema] = &[Poked::SCHEMA];
        SCHEMA
    }
}

/// Counts pokes in `apply`, but also (wrongly) counts handled commands in `handle`.
#[derive(Debug, Default)]
pub struct Sneaky {
    pub pokes: u64,
    pub handled: AtomicU64,
}

impl PartialEq for Sneaky {
    fn eq(&self, other: &Self) -> bool {
        self.pokes == other.pokes
            && self.handled.load(Ordering::SeqCst) == other.handled.load(Ordering::SeqCst)
    }
}

/// Pokes; `mutate` makes the handler change state outside `apply`, `lossy` emits an event
/// that does not survive serialization.
#[derive(Debug, Clone)]
pub struct Poke {
    pub id: AccountId,
    pub mutate: bool,
    pub lossy: bool,
}

commands!(SneakyCommand for Sneaky { Poke(Poke) = Any });

impl Aggregate for Sneaky {
    const TYPE: &'static str = "sneaky";
    type Id = AccountId;
    type Event = SneakyEvent;
    type Command = SneakyCommand;
    type Error = AccountError;
    type Services = ();

    fn apply(&mut self, event: &SneakyEvent) {
        let SneakyEvent::Poked(_) = event;
        self.pokes += 1;
    }

    fn handle(
        &self,
        command: SneakyCommand,
        _: &(),
    ) -> impl Future<Output = Result<Events<SneakyEvent>, AccountError>> + Send {
        let SneakyCommand::Poke(poke) = command;
        if poke.mutate {
            self.handled.fetch_add(1, Ordering::SeqCst);
        }
        let secret = u64::from(poke.lossy);
        std::future::ready(Ok(Events::One(Poked { by: 1, secret }.into())))
    }

    fn creation_policy(command: &SneakyCommand) -> CreationPolicy {
        command.policy()
    }
}
