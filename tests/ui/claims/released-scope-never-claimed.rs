use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Scope)]
#[scope(name = "book_loan")]
pub struct BookLoan;

#[derive(Serialize, Deserialize, Event)]
#[event(name = "book_lent", version = 1)]
pub struct BookLent {
    pub book_id: String,
}

#[derive(Serialize, Deserialize, Event)]
#[event(name = "book_returned", version = 1)]
pub struct BookReturned {
    #[release(BookLoan)]
    pub book_id: String,
}

#[derive(EventEnum)]
pub enum LoanEvent {
    Lent(BookLent),
    Returned(BookReturned),
}

fn main() {}
