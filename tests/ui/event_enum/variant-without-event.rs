use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "opened", version = 1)]
pub struct Opened {}

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "closed", version = 1)]
pub struct Closed {}

#[derive(Debug, Clone, EventEnum)]
pub enum ThingEvent {
    Opened(Opened),
    Closed,
}

fn main() {}
