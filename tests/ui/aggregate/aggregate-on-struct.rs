use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
#[error("rejected")]
pub struct Rejected;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "opened", version = 1)]
pub struct Opened {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "renamed", version = 1)]
pub struct Renamed { pub name: String }

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum ThingEvent { Opened(Opened), Renamed(Renamed) }

#[derive(Debug, Clone, Command)]
#[command(aggregate = Thing)]
pub struct Open { #[id] pub id: String }


#[aggregate(name = "thing", id = String, events = ThingEvent, error = Rejected)]
#[derive(Default)]
pub struct Thing;

fn main() {}
