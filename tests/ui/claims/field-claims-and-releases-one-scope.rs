use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Scope)]
#[scope(name = "user_email")]
pub struct UserEmail;

#[derive(Serialize, Deserialize, Event)]
#[event(name = "email_changed", version = 1)]
pub struct EmailChanged {
    #[claim(UserEmail)]
    #[release(UserEmail)]
    pub email: String,
}

fn main() {}
