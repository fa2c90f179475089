//! Wire-name sets and shape fingerprints of event versions, as `#[derive(Event)]`,
//! `#[derive(EventEnum)]` and `#[derive(Shape)]` emit them.

pub use crate::schema::Shape;
pub use crate::schema::fingerprint::combine_seeded;
pub use crate::schema::names::NameSet;
