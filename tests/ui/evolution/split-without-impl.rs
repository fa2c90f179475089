use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "details_changed", version = 1)]
pub struct DetailsChangedV1 { pub amount: u32 }

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "deposited", version = 1)]
pub struct Deposited { pub amount: u32 }

#[derive(Debug, Clone, PartialEq, EventEnum)]
#[event_enum(split(DetailsChangedV1))]
pub enum AccountEvent {
    Deposited(Deposited),
}

fn main() {}
