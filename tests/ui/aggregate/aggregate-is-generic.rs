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

#[derive(Default)]
pub struct Bag<T>(Vec<T>);

#[aggregate(name = "bag", id = String, events = ThingEvent, error = Rejected)]
impl Bag<u32> {
    #[apply]
    fn opened(&mut self, _: &Opened) {}
    #[apply]
    fn renamed(&mut self, _: &Renamed) {}
}

fn main() {}
