use cqrs_runtime::prelude::*;

#[derive(Scope)]
pub struct UserEmail;

fn main() {}
