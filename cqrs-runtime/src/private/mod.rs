//! The only door generated code uses. Not public API: names here may change in any release.
//!
//! Split by purpose; everything is re-exported flat, so generated paths stay short
//! (`__cqrs::decided`, with `__cqrs` the alias the macros declare for this module):
//!
//! - [`aggregate`]: what `#[aggregate]` and `#[derive(Command)]` emit (the ready future of a
//!   sync `handle`, the fallback placeholder type);
//! - [`codec`]: what `#[derive(Event)]` and `#[derive(EventEnum)]` emit to encode and decode;
//! - [`evolution`]: wire-name sets and shape fingerprints of versions;
//! - [`projection`]: what `#[projection]` emits;
//! - [`reaction`]: what `#[reactor]`, `#[process_manager]`, `#[derive(CommandBus)]` and
//!   `#[derive(Deadline)]` emit;
//! - [`claims`]: what `#[claim]`, `#[release]` and `#[derive(Scope)]` emit;
//! - [`checks`]: the compile-time checks, as `const fn`s and helper traits whose diagnostics
//!   speak the DSL's words.
//!
//! Core code does not use this module: items shared with it live at their real home as
//! `pub(crate)` (or `pub` inside a private module) and are only re-exported here.

pub mod aggregate;
pub mod checks;
pub mod claims;
pub mod codec;
mod decided;
pub mod evolution;
pub mod projection;
pub mod reaction;

pub use core::future::Future;
pub use core::option::Option::{self, None, Some};
pub use core::result::Result::{self, Err, Ok};
pub use std::borrow::ToOwned;
pub use std::convert::From;
pub use std::vec::Vec;

pub use serde_json::Error as JsonError;

pub use aggregate::*;
pub use checks::*;
pub use claims::*;
pub use codec::*;
pub use evolution::*;
pub use projection::*;
pub use reaction::*;
