use cqrs_runtime::prelude::*;

#[derive(Event)]
#[event(name = "opened", version = 1)]
pub union Opened {
    pub a: u64,
    pub b: f64,
}

fn main() {}
