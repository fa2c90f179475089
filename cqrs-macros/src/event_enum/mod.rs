//! `#[derive(EventEnum)]`: the closed set of events of one stream.

mod evolution;
mod expand;
mod parse;

use proc_macro2::TokenStream;

/// Parse, validate, expand; on error, the errors plus a fallback impl.
pub(crate) fn expand(input: &syn::DeriveInput) -> TokenStream {
    let parsed = parse::EnumInput::from_input(input);
    match parsed.validate() {
        Ok(model) => expand::expand(&model),
        Err(error) => crate::diag::with_fallback(error, expand::fallback(&parsed)),
    }
}
