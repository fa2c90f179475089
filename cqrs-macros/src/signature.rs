//! Checks and helpers shared by the method-level markers of `#[aggregate]` and `#[projection]`
//! (`#[command]`, `#[apply]`, `#[on]`, `#[query]`).

use crate::diag::{Errors, error_at};

/// The arguments after the receiver.
pub(crate) fn typed_args(sig: &syn::Signature) -> Vec<&syn::PatType> {
    sig.inputs
        .iter()
        .filter_map(|a| match a {
            syn::FnArg::Typed(t) => Some(t),
            syn::FnArg::Receiver(_) => None,
        })
        .collect()
}

/// Invariant: marked methods are plain methods (no generics, no `unsafe`).
pub(crate) fn check_plain_fn(sig: &syn::Signature, marker: &str, errs: &mut Errors) {
    if let Some(param) = sig.generics.params.first() {
        errs.push(error_at(
            param,
            format!("a `{marker}` method cannot be generic: name the concrete type"),
        ));
    }
    if let syn::Safety::Unsafe(unsafety) = &sig.safety {
        errs.push(error_at(
            unsafety,
            format!("a `{marker}` method cannot be `unsafe`"),
        ));
    }
}
