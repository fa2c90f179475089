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

#[process_manager(name = "watch", events = OrderEvent)]
impl Watch {
    #[on(start, key = order)]
    async fn placed(&mut self, e: &Placed, _ctx: &mut ProcessContext<'_, Bus>) -> Result<(), ReactionError> {
        self.order = e.order.clone();
        Ok(())
    }

    #[on(end)]
    async fn cancelled(&mut self, _e: &Cancelled, _ctx: &mut ProcessContext<'_, Bus>) -> Result<(), ReactionError> {
        Ok(())
    }
}

fn main() {}
