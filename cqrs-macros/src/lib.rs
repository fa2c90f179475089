//! Procedural macros of `cqrs-runtime`. Use them through `cqrs_runtime`, which re-exports them
//! and documents the DSL; this crate holds only the entry points and the expansion code.

use proc_macro::TokenStream;

/// See `cqrs_runtime::Command`.
#[proc_macro_derive(Command, attributes(command, id, cqrs))]
pub fn derive_command(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}

/// See `cqrs_runtime::Event`.
#[proc_macro_derive(Event, attributes(event, cqrs))]
pub fn derive_event(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}

/// See `cqrs_runtime::EventEnum`.
#[proc_macro_derive(EventEnum, attributes(event_enum, cqrs))]
pub fn derive_event_enum(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}

/// See `cqrs_runtime::aggregate`.
#[proc_macro_attribute]
pub fn aggregate(_args: TokenStream, input: TokenStream) -> TokenStream {
    input
}
