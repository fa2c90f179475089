use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "deposited", version = 1)]
pub struct DepositedV1 { pub amount: u32 }

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "deposited", version = 2)]
pub struct Deposited { pub amount: u32 }

fn main() {}
