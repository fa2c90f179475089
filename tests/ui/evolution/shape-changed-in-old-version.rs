use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

// Locked while `amount` was a `u32`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "deposited", version = 1, fingerprint = 0x6811776be0d88578)]
pub struct DepositedV1 { pub amount: u32, pub memo: String }

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "deposited", version = 2, upcast_from = DepositedV1)]
pub struct Deposited { pub amount: u64 }

impl From<DepositedV1> for Deposited {
    fn from(v1: DepositedV1) -> Self { Deposited { amount: v1.amount.into() } }
}

fn main() {}
