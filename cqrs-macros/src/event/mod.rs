//! `#[derive(Event)]`: one event struct with a stable wire name and a version.

mod claims;
mod expand;
mod lock;
mod parse;

use proc_macro2::TokenStream;

/// Parse, validate, expand; on error, the errors plus a fallback impl. `source_file` is the
/// file that holds the struct, against which `lock = "..."` resolves.
pub(crate) fn expand(
    input: &syn::DeriveInput,
    source_file: Option<&std::path::Path>,
) -> TokenStream {
    let parsed = parse::EventInput::from_input(input);
    match parsed.validate() {
        Ok(model) => expand::expand(&model, source_file),
        Err(error) => crate::diag::with_fallback(error, expand::fallback(&parsed)),
    }
}
