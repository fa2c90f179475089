use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "withdrawn", version = 1)]
pub struct WithdrawnV1 { pub amount: u32 }

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "deposited", version = 2, upcast_from = WithdrawnV1)]
pub struct Deposited { pub amount: u32 }

impl From<WithdrawnV1> for Deposited {
    fn from(e: WithdrawnV1) -> Self { Deposited { amount: e.amount } }
}

fn main() {}
