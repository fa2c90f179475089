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
#[deadline(name = "payment due")]
pub struct PaymentDue {}

fn main() {}
