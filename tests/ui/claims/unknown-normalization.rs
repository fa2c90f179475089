use cqrs_runtime::prelude::*;

#[derive(Scope)]
#[scope(name = "user_email", normalize = "casefold")]
pub struct UserEmail;

fn main() {}
