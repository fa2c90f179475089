use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Scope)]
#[scope(name = "user_email")]
pub struct UserEmail;

#[derive(Serialize, Deserialize, Event)]
#[event(name = "registered", version = 1)]
pub struct Registered {
    #[claim]
    pub email: String,
}

fn main() {}
