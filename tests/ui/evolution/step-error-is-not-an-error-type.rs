use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "deposited", version = 1)]
pub struct DepositedV1 { pub amount: u32 }

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "deposited", version = 2, upcast_from = DepositedV1)]
pub struct Deposited { pub amount: u32 }

impl TryFrom<DepositedV1> for Deposited {
    type Error = String;
    fn try_from(e: DepositedV1) -> Result<Self, String> { Ok(Deposited { amount: e.amount }) }
}

fn main() {}
