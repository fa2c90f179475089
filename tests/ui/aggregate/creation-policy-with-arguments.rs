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

#[derive(Debug, Clone, Command)]
#[command(aggregate = Thing)]
pub struct Rename { #[id] pub id: String, pub name: String }

#[derive(Default)]
pub struct Thing;

#[aggregate(name = "thing", id = String, events = ThingEvent, error = Rejected)]
impl Thing {
    #[command(create())]
    fn open(&self, _: Open) -> Result<Opened, Rejected> { Ok(Opened {}) }
    #[command]
    fn rename(&self, cmd: Rename) -> Result<Renamed, Rejected> { Ok(Renamed { name: cmd.name }) }
    #[apply]
    fn opened(&mut self, _: &Opened) {}
    #[apply]
    fn renamed(&mut self, _: &Renamed) {}
}

fn main() {}
