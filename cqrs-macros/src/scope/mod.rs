//! `#[derive(Scope)]`: a named scope of values held exclusively (claims), with its
//! normalization. Parse (`ScopeAttrs`), validate (`ScopeModel`), expand.

use darling::FromAttributes;
use darling::util::SpannedValue;
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::diag::{error_at, errors};
use crate::paths;

/// `#[scope(...)]` on the type.
#[derive(Clone, Default, FromAttributes)]
#[darling(attributes(scope))]
struct ScopeAttrs {
    /// The stable name stored with every claim (required).
    name: Option<SpannedValue<String>>,
    /// A built-in normalization: `none`, `lowercase`, `trim`, `trim_lowercase`.
    normalize: Option<SpannedValue<String>>,
    /// The user's own normalization, `fn(&str) -> Cow<'_, str>`.
    normalize_with: Option<syn::Path>,
    /// A custom path to `cqrs_runtime`.
    #[darling(rename = "crate")]
    krate: Option<syn::Path>,
}

/// The built-in normalizations, as `normalize = "..."` names them.
const BUILT_IN: [&str; 4] = ["none", "lowercase", "trim", "trim_lowercase"];

/// How values are normalized.
enum Normalize {
    BuiltIn(syn::Ident),
    With(syn::Path),
}

/// The validated scope.
struct ScopeModel<'a> {
    item: &'a syn::DeriveInput,
    name: String,
    normalize: Normalize,
    krate: Option<syn::Path>,
}

/// Parse, validate, expand; on error, the errors plus a fallback impl (so that the events
/// naming the scope add no errors of their own).
pub(crate) fn expand(input: &syn::DeriveInput) -> TokenStream {
    let attrs = ScopeAttrs::from_attributes(&input.attrs);
    match validate(input, attrs.clone()) {
        Ok(model) => expand_model(&model),
        Err(error) => {
            let krate = attrs.ok().and_then(|a| a.krate);
            crate::diag::with_fallback(error, fallback(input, krate.as_ref()))
        }
    }
}

/// Invariants: a scope has a stored name (one word); at most one normalization, a known one;
/// the type is not generic (one scope, one name).
fn validate(
    item: &syn::DeriveInput,
    attrs: darling::Result<ScopeAttrs>,
) -> darling::Result<ScopeModel<'_>> {
    let mut errs = errors();
    let attrs = errs.handle(attrs).unwrap_or_default();
    let snake = ident_case::RenameRule::SnakeCase.apply_to_variant(item.ident.to_string());
    let name = match &attrs.name {
        Some(name) if crate::diag::is_stored_name(name) => Some(name.as_str().to_owned()),
        Some(name) => {
            errs.push(error_at(
                &name.span(),
                format!(
                    "a scope's name is stored with every claim, so it is one word: non-empty, without whitespace or control characters, such as `\"{snake}\"`"
                ),
            ));
            None
        }
        None => {
            errs.push(error_at(
                &item.ident,
                format!(
                    "`{}` has no scope name: add `#[scope(name = \"{snake}\")]`; the name is stored with every claim, so choose it once and keep it",
                    item.ident
                ),
            ));
            None
        }
    };
    let normalize = match (&attrs.normalize, &attrs.normalize_with) {
        (Some(_), Some(with)) => {
            errs.push(error_at(
                with,
                "write either `normalize = \"...\"` (a built-in rule) or `normalize_with = path` (your function), not both",
            ));
            None
        }
        (Some(rule), None) if BUILT_IN.contains(&rule.as_str()) => Some(Normalize::BuiltIn(
            syn::Ident::new(rule.as_str(), rule.span()),
        )),
        (Some(rule), None) => {
            errs.push(error_at(
                &rule.span(),
                format!(
                    "unknown normalization `\"{}\"`: use one of \"none\", \"lowercase\", \"trim\", \"trim_lowercase\", or name your own function with `normalize_with = path::to::normalize` (`fn(&str) -> Cow<'_, str>`)",
                    rule.as_str().escape_debug()
                ),
            ));
            None
        }
        (None, Some(with)) => Some(Normalize::With(with.clone())),
        (None, None) => Some(Normalize::BuiltIn(syn::Ident::new(
            "none",
            proc_macro2::Span::call_site(),
        ))),
    };
    if let Some(param) = item.generics.params.first() {
        errs.push(error_at(
            param,
            "a scope cannot be generic: it is one named set of values; declare one type per scope",
        ));
    }
    errs.finish()?;
    match (name, normalize) {
        (Some(name), Some(normalize)) => Ok(ScopeModel {
            item,
            name,
            normalize,
            krate: attrs.krate,
        }),
        _ => Err(darling::Error::custom(
            "internal: scope validation lost an error",
        )),
    }
}

fn expand_model(model: &ScopeModel<'_>) -> TokenStream {
    let krate = model.krate.as_ref();
    let private = paths::private(krate);
    let (ident, name) = (&model.item.ident, &model.name);
    let body = match &model.normalize {
        Normalize::BuiltIn(rule) => quote!(#private::normalize::#rule(value)),
        Normalize::With(path) => {
            let at = paths::private_at(krate, path.span());
            quote_spanned!(path.span()=> #at::normalize_with(#path, value))
        }
    };
    paths::wrap_in_const(
        krate,
        quote! {
            #[automatically_derived]
            impl #private::Scope for #ident {
                const NAME: &'static str = #name;

                #[inline]
                fn normalize(value: &str) -> #private::Cow<'_, str> {
                    #body
                }
            }
        },
    )
}

/// A scope named after the type, so that events naming it compile on.
fn fallback(item: &syn::DeriveInput, krate: Option<&syn::Path>) -> TokenStream {
    if !item.generics.params.is_empty() {
        return TokenStream::new();
    }
    let private = paths::private(krate);
    let ident = &item.ident;
    paths::wrap_in_const(
        krate,
        quote! {
            impl #private::Scope for #ident {
                const NAME: &'static str = ::core::stringify!(#ident);
            }
        },
    )
}
