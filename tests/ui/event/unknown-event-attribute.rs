use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(name = "opened", verison = 1)]
pub struct Opened {
    pub at: u64,
}

fn main() {}
