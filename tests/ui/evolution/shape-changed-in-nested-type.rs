use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

// Locked while `Money::cents` was a `u32`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Shape)]
pub struct Money { pub cents: u64 }

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "deposited", version = 1, fingerprint = 0x4dc4b79f051cf811)]
pub struct Deposited { pub amount: Money }

fn main() {}
