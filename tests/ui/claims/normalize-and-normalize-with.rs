use cqrs_runtime::prelude::*;

#[derive(Scope)]
#[scope(name = "user_email", normalize = "lowercase", normalize_with = my_rule)]
pub struct UserEmail;

fn my_rule(value: &str) -> std::borrow::Cow<'_, str> {
    value.into()
}

fn main() {}
