use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(name = "opened", version = 1)]
pub struct Opened(pub u64);

fn main() {}
