use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "deposited", version = 1)]
pub struct DepositedV1 { pub amount: u32 }

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "deposited", version = 2, upcast_from = DepositedV1)]
pub struct DepositedV2 { pub amount: u32 }

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "deposited", version = 4, upcast_from = DepositedV2)]
pub struct Deposited { pub amount: u32 }

impl From<DepositedV1> for DepositedV2 {
    fn from(e: DepositedV1) -> Self { DepositedV2 { amount: e.amount } }
}

impl From<DepositedV2> for Deposited {
    fn from(e: DepositedV2) -> Self { Deposited { amount: e.amount } }
}

fn main() {}
