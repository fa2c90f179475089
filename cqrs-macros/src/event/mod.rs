//! `#[derive(Event)]`: one event struct with a stable wire name and a version.

mod expand;
mod lock;
mod parse;

use proc_macro2::TokenStream;

/// Parse, validate, expand; on error, the errors plus a fallback impl.
pub(crate) fn expand(input: &syn::DeriveInput) -> TokenStream {
    let parsed = parse::EventInput::from_input(input);
    match parsed.validate() {
        Ok(model) => expand::expand(&model),
        Err(error) => crate::diag::with_fallback(error, expand::fallback(&parsed)),
    }
}
