use cqrs_runtime::prelude::*;

#[derive(Scope)]
#[scope(name = "user_email")]
pub struct UserEmail<T>(std::marker::PhantomData<T>);

fn main() {}
