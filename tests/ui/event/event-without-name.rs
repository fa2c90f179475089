use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
pub struct Opened {
    pub at: u64,
}

fn main() {}
