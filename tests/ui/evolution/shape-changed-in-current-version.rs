use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

// Locked while `amount` was a `u32`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "deposited", version = 1, fingerprint = 0x6811776be0d88578)]
pub struct Deposited { pub amount: u64 }

fn main() {}
