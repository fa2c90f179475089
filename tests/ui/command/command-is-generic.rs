use cqrs_runtime::prelude::*;

#[derive(Debug, Clone, Command)]
#[command(aggregate = Thing)]
pub struct Open<'a> {
    #[id]
    pub id: String,
    pub note: &'a str,
}

#[derive(Default)]
pub struct Thing;

fn main() {}
