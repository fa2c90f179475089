use cqrs_runtime::prelude::*;

#[derive(Debug, Clone, Command)]
#[command(aggregate = Bag<u32>)]
pub struct Open {
    #[id]
    pub id: String,
}

#[derive(Default)]
pub struct Bag<T>(Vec<T>);

fn main() {}
