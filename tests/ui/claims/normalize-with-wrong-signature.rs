use cqrs_runtime::prelude::*;

#[derive(Scope)]
#[scope(name = "user_email", normalize_with = my_rule)]
pub struct UserEmail;

fn my_rule(value: String) -> String {
    value
}

fn main() {}
