use cqrs_runtime::prelude::*;

#[derive(Scope)]
#[scope(name = "user email")]
pub struct UserEmail;

fn main() {}
