use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "deposited", version = 1)]
pub struct Deposited { pub amount: u32 }

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "frozen", version = 1)]
pub struct Frozen { pub amount: u32 }

#[derive(Debug, Clone, PartialEq, EventEnum)]
#[event_enum(retired("frozen"))]
pub enum AccountEvent {
    Deposited(Deposited),
    Frozen(Frozen),
}

fn main() {}
