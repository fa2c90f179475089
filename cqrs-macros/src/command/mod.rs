//! `#[derive(Command)]`: a command struct addressed to one aggregate instance.

mod expand;
mod parse;

use proc_macro2::TokenStream;

/// Parse, validate, expand; on error, the errors plus a fallback impl.
pub(crate) fn expand(input: &syn::DeriveInput) -> TokenStream {
    let parsed = parse::CommandInput::from_input(input);
    match parsed.validate() {
        Ok(model) => expand::expand(&model),
        Err(error) => crate::diag::with_fallback(error, expand::fallback(&parsed)),
    }
}
