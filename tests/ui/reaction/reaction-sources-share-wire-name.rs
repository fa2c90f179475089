use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "placed", version = 1)]
pub struct Placed { pub order: String }

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "cancelled", version = 1)]
pub struct Cancelled { pub order: String }

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum OrderEvent { Placed(Placed), Cancelled(Cancelled) }

pub struct Bus;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Watch { pub order: String }

pub struct Notifier;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "placed", version = 1)]
pub struct AlsoPlaced {}

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum OtherEvent { AlsoPlaced(AlsoPlaced) }

#[reactor(name = "notifier", events = [OrderEvent, OtherEvent], ignore(Placed, Cancelled, AlsoPlaced), bus = Bus)]
impl Notifier {}

fn main() {}
