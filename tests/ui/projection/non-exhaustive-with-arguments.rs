use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "opened", version = 1)]
pub struct Opened { pub owner: String }

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "closed", version = 1)]
pub struct Closed {}

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum AccountEvent { Opened(Opened), Closed(Closed) }

#[derive(Default)]
pub struct Owners { pub names: Vec<String> }

#[projection(name = "owners", events = AccountEvent, non_exhaustive())]
impl Owners {
    #[on]
    fn opened(&mut self, e: &Opened) { self.names.push(e.owner.clone()); }
}
fn main() {}
