use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "deposited", version = 1)]
pub struct Deposited { pub amount: u32 }

#[derive(Debug, Clone, PartialEq, EventEnum)]
#[event_enum(retire("frozen"))]
pub enum AccountEvent {
    Deposited(Deposited),
}

fn main() {}
