use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Scope)]
#[scope(name = "user_email")]
pub struct UserEmail;

#[derive(Serialize, Deserialize, Event)]
#[event(name = "registered", version = 1)]
pub struct RegisteredV1 {
    #[claim(UserEmail)]
    pub mail: String,
}

#[derive(Serialize, Deserialize, Event)]
#[event(name = "registered", version = 2, upcast_from = RegisteredV1)]
pub struct Registered {
    pub email: String,
}

impl From<RegisteredV1> for Registered {
    fn from(v1: RegisteredV1) -> Self {
        Self { email: v1.mail }
    }
}

fn main() {}
