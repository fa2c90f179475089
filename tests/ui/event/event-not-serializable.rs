use cqrs_runtime::prelude::*;

#[derive(Event)]
#[event(name = "opened", version = 1)]
pub struct Opened {
    pub at: u64,
}

fn main() {}
