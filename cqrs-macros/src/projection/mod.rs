//! `#[projection(...)]` on an `impl` block: `#[on]` handlers and `ignore(...)` deciding about
//! every event of the source enums, `#[query]` methods, the `Projection` impl.

mod expand;
mod model;
pub(crate) mod parse;

use proc_macro2::TokenStream;

/// Parse the arguments and the impl block, validate, expand. On error, the errors plus the
/// user's impl block (with our markers removed) and permissive fallback impls.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = match crate::annotated_impl::parse_item(item) {
        Ok(item) => item,
        Err(error) => return error.to_compile_error(),
    };
    let input = parse::ProjectionInput::parse(args, &item);
    match model::ProjectionModel::validate(&input) {
        Ok(model) => expand::expand(&model),
        Err(error) => crate::diag::with_fallback(error, expand::fallback(&input)),
    }
}

/// The validation errors for an input, as text (for the crate's unit tests).
#[cfg(test)]
pub(crate) fn validation_errors(args: TokenStream, item: &syn::Item) -> Vec<String> {
    let input = parse::ProjectionInput::parse(args, item);
    match model::ProjectionModel::validate(&input) {
        Ok(_) => Vec::new(),
        Err(e) => e.flatten().into_iter().map(|e| e.to_string()).collect(),
    }
}
