use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
#[error("rejected")]
pub struct Rejected;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "opened", version = 1)]
pub struct Opened { pub owner: String }

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "closed", version = 1)]
pub struct Closed {}

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum AccountEvent { Opened(Opened), Closed(Closed) }

#[derive(Default)]
pub struct Account;

#[aggregate(name = "account", id = String, events = AccountEvent, error = Rejected)]
impl Account {
    #[apply]
    fn opened(&mut self, _: &Opened) {}
    #[apply]
    fn closed(&mut self, _: &Closed) {}
}

#[derive(Default)]
pub struct Owners { pub names: Vec<String> }

#[projection(name = "owners", events = Account)]
impl Owners {
    #[on]
    fn opened(&mut self, e: &Opened) { self.names.push(e.owner.clone()); }
}
fn main() {}
