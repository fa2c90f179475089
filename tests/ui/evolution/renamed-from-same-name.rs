use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "deposited", version = 1)]
pub struct DepositedV1 { pub amount: u32 }

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "deposited", version = 1, renamed_from = DepositedV1)]
pub struct Deposited { pub amount: u32 }

impl From<DepositedV1> for Deposited {
    fn from(e: DepositedV1) -> Self { Deposited { amount: e.amount } }
}

fn main() {}
