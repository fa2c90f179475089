use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
#[error("rejected")]
pub struct Rejected;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "opened", version = 1)]
pub struct Opened {}

#[derive(Debug, Clone, Command)]
#[command(aggregate = Thing)]
pub struct Open { #[id] pub id: String }

#[derive(Default)]
pub struct Thing;

#[aggregate(name = "thing", id = String, events = Opened, error = Rejected)]
impl Thing {
    #[command(create)]
    fn open(&self, _: Open) -> Result<Opened, Rejected> { Ok(Opened {}) }
    #[apply]
    fn opened(&mut self, _: &Opened) {}
}

fn main() {}
