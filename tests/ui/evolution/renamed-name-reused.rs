use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "credited", version = 1)]
pub struct CreditedV1 { pub amount: u32 }

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "deposited", version = 1, renamed_from = CreditedV1)]
pub struct Deposited { pub amount: u32 }

impl From<CreditedV1> for Deposited {
    fn from(e: CreditedV1) -> Self { Deposited { amount: e.amount } }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "credited", version = 1)]
pub struct Credited { pub amount: u32 }

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum AccountEvent {
    Deposited(Deposited),
    Credited(Credited),
}

fn main() {}
