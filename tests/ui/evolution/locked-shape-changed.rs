use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

// `locked-shape-changed.lock` (next to this file) records version 1 with `amount: u32`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "deposited", version = 1, lock = "locked-shape-changed.lock")]
pub struct Deposited { pub amount: u64, pub note: String }

fn main() {}
