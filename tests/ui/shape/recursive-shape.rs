use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Shape)]
pub struct Node {
    pub value: u32,
    pub next: Option<Box<Node>>,
}

fn main() {}
