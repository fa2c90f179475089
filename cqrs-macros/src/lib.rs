#![warn(missing_docs)]
//! Procedural macros of `cqrs-runtime`. Use them through `cqrs_runtime`, which re-exports them
//! and documents each of them (`cqrs_runtime::Command`, `Event`, `EventEnum`, `Shape`,
//! `aggregate`, `projection`, `reactor`, `process_manager`, `CommandBus`,
//! `Deadline`) and the DSL as a whole; this crate holds only the entry points and
//! the expansion code. The generated code names `::cqrs_runtime` (or the path given with
//! `crate = path`), so depending on this crate alone is not enough.
//!
//! Each macro is a pipeline of separate stages: `parse` (what the user wrote, via darling),
//! `model` / validation (every rule checked, all errors reported at once, each at the user's
//! token), and `expand` (tokens only). On error, a fallback expansion keeps one mistake to one
//! error.

mod aggregate;
mod annotated_impl;
mod command;
mod command_bus;
mod deadline;
mod diag;
mod event;
mod event_enum;
#[cfg(test)]
mod fuzz;
mod paths;
mod projection;
mod reaction;
mod scope;
mod shape;
mod shape_derive;
mod signature;
mod sources;
#[cfg(test)]
mod tests;

use proc_macro::TokenStream;

/// `#[derive(Command)]`, defined in `cqrs-macros`. Use it as `cqrs_runtime::Command`:
/// the re-export carries the documentation (attribute keys, examples).
#[proc_macro_derive(Command, attributes(command, id))]
pub fn derive_command(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    command::expand(&input).into()
}

/// `#[derive(Event)]`, defined in `cqrs-macros`. Use it as `cqrs_runtime::Event`:
/// the re-export carries the documentation (attribute keys, examples).
#[proc_macro_derive(Event, attributes(event, shape, claim, release))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    let source_file = proc_macro::Span::call_site().local_file();
    event::expand(&input, source_file.as_deref()).into()
}

/// `#[derive(Shape)]`, defined in `cqrs-macros`. Use it as `cqrs_runtime::Shape`:
/// the re-export carries the documentation (attribute keys, examples).
#[proc_macro_derive(Shape, attributes(shape))]
pub fn derive_shape(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    shape_derive::expand(&input).into()
}

/// `#[derive(EventEnum)]`, defined in `cqrs-macros`. Use it as `cqrs_runtime::EventEnum`:
/// the re-export carries the documentation (attribute keys, examples).
#[proc_macro_derive(EventEnum, attributes(event_enum))]
pub fn derive_event_enum(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    event_enum::expand(&input).into()
}

/// `#[derive(Scope)]`, defined in `cqrs-macros`. Use it as `cqrs_runtime::Scope`:
/// the re-export carries the documentation (attribute keys, examples).
#[proc_macro_derive(Scope, attributes(scope))]
pub fn derive_scope(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    scope::expand(&input).into()
}

/// `#[aggregate(...)]`, defined in `cqrs-macros`. Use it as `cqrs_runtime::aggregate`:
/// the re-export carries the documentation (keys, handler shapes, examples).
#[proc_macro_attribute]
pub fn aggregate(args: TokenStream, input: TokenStream) -> TokenStream {
    aggregate::expand(args.into(), input.into()).into()
}

/// `#[projection(...)]`, defined in `cqrs-macros`. Use it as `cqrs_runtime::projection`:
/// the re-export carries the documentation (keys, handler shapes, examples).
#[proc_macro_attribute]
pub fn projection(args: TokenStream, input: TokenStream) -> TokenStream {
    projection::expand(args.into(), input.into()).into()
}

/// `#[reactor(...)]`, defined in `cqrs-macros`. Use it as `cqrs_runtime::reactor`:
/// the re-export carries the documentation (keys, handler shapes, examples).
#[proc_macro_attribute]
pub fn reactor(args: TokenStream, input: TokenStream) -> TokenStream {
    reaction::expand(reaction::Kind::Reactor, args.into(), input.into()).into()
}

/// `#[process_manager(...)]`, defined in `cqrs-macros`. Use it as
/// `cqrs_runtime::process_manager`: the re-export carries the documentation (keys, handler
/// shapes, examples).
#[proc_macro_attribute]
pub fn process_manager(args: TokenStream, input: TokenStream) -> TokenStream {
    reaction::expand(reaction::Kind::ProcessManager, args.into(), input.into()).into()
}

/// `#[derive(CommandBus)]`, defined in `cqrs-macros`. Use it as `cqrs_runtime::CommandBus`:
/// the re-export carries the documentation.
#[proc_macro_derive(CommandBus, attributes(command_bus))]
pub fn derive_command_bus(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    command_bus::expand(&input).into()
}

/// `#[derive(Deadline)]`, defined in `cqrs-macros`. Use it as `cqrs_runtime::Deadline`:
/// the re-export carries the documentation.
#[proc_macro_derive(Deadline, attributes(deadline))]
pub fn derive_deadline(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    deadline::expand(&input).into()
}
