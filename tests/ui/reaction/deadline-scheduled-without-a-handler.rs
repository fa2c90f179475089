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

#[derive(Debug, Serialize, Deserialize, Deadline)]
pub struct Reminder {}

#[derive(Debug, Serialize, Deserialize, Deadline)]
pub struct PaymentDue {}

#[process_manager(name = "watch", events = OrderEvent)]
impl Watch {
    #[on(start, key = order)]
    async fn placed(&mut self, e: &Placed, ctx: &mut ProcessContext<'_, Bus>) -> Result<(), ReactionError> {
        self.order = e.order.clone();
        // `PaymentDue` has no `#[deadline]` handler in this impl: it would fire into nothing.
        ctx.schedule(chrono::Utc::now(), &PaymentDue {})?;
        ctx.schedule(chrono::Utc::now(), &Reminder {})?;
        Ok(())
    }

    #[on(end, key = order)]
    async fn cancelled(&mut self, _e: &Cancelled, ctx: &mut ProcessContext<'_, Bus>) -> Result<(), ReactionError> {
        ctx.cancel::<PaymentDue>();
        Ok(())
    }

    #[deadline]
    async fn remind(&mut self, _d: Reminder, _ctx: &mut ProcessContext<'_, Bus>) -> Result<(), ReactionError> {
        Ok(())
    }
}

fn main() {}
