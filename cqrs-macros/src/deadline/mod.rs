//! `#[derive(Deadline)]`: a timer type a process manager schedules, named for storage.

use darling::FromAttributes;
use darling::util::SpannedValue;
use proc_macro2::TokenStream;
use quote::quote;

use crate::diag::{error_at, errors, is_stored_name};
use crate::paths;

/// `#[deadline(name = "...", crate = ...)]` on the type.
#[derive(Default, FromAttributes)]
#[darling(attributes(deadline))]
struct DeadlineAttrs {
    /// The stored name (default: the type's name in snake case).
    name: Option<SpannedValue<String>>,
    #[darling(rename = "crate")]
    krate: Option<syn::Path>,
}

/// Parse, validate, expand.
pub(crate) fn expand(input: &syn::DeriveInput) -> TokenStream {
    match try_expand(input) {
        Ok(tokens) => tokens,
        Err(error) => error.write_errors(),
    }
}

fn try_expand(input: &syn::DeriveInput) -> darling::Result<TokenStream> {
    let mut errs = errors();
    let attrs = errs
        .handle(DeadlineAttrs::from_attributes(&input.attrs))
        .unwrap_or_default();
    // Invariant: the stored name is a non-empty word (it is stored with every pending
    // deadline and compared byte for byte when it fires).
    if let Some(name) = &attrs.name
        && !is_stored_name(name)
    {
        errs.push(error_at(
            &name.span(),
            "a deadline's `name` is stored with it: use a non-empty word such as `\"payment_due\"`",
        ));
    }
    // Invariant: a deadline is a concrete type (its stored name is one).
    if let Some(param) = input.generics.params.first() {
        errs.push(error_at(
            param,
            "a deadline cannot be generic: its stored name names one type; write a concrete type",
        ));
    }
    errs.finish()?;
    let name = attrs.name.as_ref().map_or_else(
        || {
            ident_case::RenameRule::SnakeCase
                .apply_to_variant(syn::ext::IdentExt::unraw(&input.ident).to_string())
        },
        |n| n.as_str().to_owned(),
    );
    let krate = attrs.krate.as_ref();
    let private = paths::private(krate);
    let ident = &input.ident;
    Ok(paths::wrap_in_const(
        krate,
        quote! {
            #[automatically_derived]
            impl #private::Deadline for #ident {
                const NAME: &'static str = #name;
            }
        },
    ))
}
