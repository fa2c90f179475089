//! Procedural macros of `cqrs-runtime`. Use them through `cqrs_runtime`, which re-exports them
//! and documents the DSL; this crate holds only the entry points and the expansion code.
//!
//! Each macro is a pipeline of separate stages: `parse` (what the user wrote, via darling),
//! `model` / validation (every rule checked, all errors reported at once, each at the user's
//! token), and `expand` (tokens only). On error, a fallback expansion keeps one mistake to one
//! error.

mod aggregate;
mod command;
mod diag;
mod event;
mod event_enum;
mod item;
mod paths;
mod projection;
mod shape;
mod shape_derive;
mod signature;
#[cfg(test)]
mod tests;

use proc_macro::TokenStream;

/// Implements `cqrs_runtime::Command`. Documented on the re-export in `cqrs_runtime`.
#[proc_macro_derive(Command, attributes(command, id))]
pub fn derive_command(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    command::expand(&input).into()
}

/// Implements `cqrs_runtime::Event`. Documented on the re-export in `cqrs_runtime`.
#[proc_macro_derive(Event, attributes(event, shape))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    event::expand(&input).into()
}

/// Implements `cqrs_runtime::schema::Shape`. Documented on the re-export in `cqrs_runtime`.
#[proc_macro_derive(Shape, attributes(shape))]
pub fn derive_shape(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    shape_derive::expand(&input).into()
}

/// Implements `cqrs_runtime::EventEnum`. Documented on the re-export in `cqrs_runtime`.
#[proc_macro_derive(EventEnum, attributes(event_enum))]
pub fn derive_event_enum(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    event_enum::expand(&input).into()
}

/// Implements `cqrs_runtime::Aggregate` from an `impl` block. Documented on the re-export in
/// `cqrs_runtime`.
#[proc_macro_attribute]
pub fn aggregate(args: TokenStream, input: TokenStream) -> TokenStream {
    aggregate::expand(args.into(), input.into()).into()
}

/// Implements `cqrs_runtime::projection::Projection` from an `impl` block. Documented on the
/// re-export in `cqrs_runtime`.
#[proc_macro_attribute]
pub fn projection(args: TokenStream, input: TokenStream) -> TokenStream {
    projection::expand(args.into(), input.into()).into()
}
