use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "placed", version = 1)]
pub struct Placed { pub order: String }

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "cancelled", version = 1)]
pub struct Cancelled { pub order: String }

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum OrderEvent { Placed(Placed), Cancelled(Cancelled) }

pub struct Bus;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Watch { pub order: String }

pub struct Notifier;

#[reactor(name = "notifier", events = OrderEvent, ignore(Cancelled))]
impl Notifier {
    #[on]
    async fn placed(&self, _e: &Placed) -> Result<(), ReactionError> {
        Ok(())
    }
}

fn main() {}
