//! Tokens shared by the macros that read event sources (`#[projection]`, `#[reactor]`,
//! `#[process_manager]`): the source traits' paths and the checks between sources.

use proc_macro2::{Ident, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::paths;

/// The events a source decodes, spanned at the source.
pub(crate) fn events_of(krate: Option<&syn::Path>, source: &syn::Path) -> TokenStream {
    let at = paths::private_at(krate, source.span());
    quote_spanned!(source.span()=> <#source as #at::ProjectionSource>::Events)
}

/// The stream type of a source (`None` for an event enum).
pub(crate) fn stream_type_of(private: &Ident, source: &syn::Path) -> TokenStream {
    quote!(<#source as #private::ProjectionSource>::STREAM_TYPE)
}

/// An event decoded by source `i` that sits in a stream of another source, an aggregate, is
/// not that aggregate's event: `return Err(fail)`, as loading the aggregate fails. Nothing for
/// one source; for an event enum source `STREAM_TYPE` is `None` and the test folds away.
pub(crate) fn other_streams_check(
    sources: &[syn::Path],
    private: &Ident,
    i: usize,
    fail: &TokenStream,
) -> TokenStream {
    let others = sources
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(_, source)| stream_type_of(private, source));
    quote! {
        #(
            if #private::in_stream(__stored, #others) {
                return #private::Err(#fail);
            }
        )*
    }
}

/// Invariant: two sources of one reader never share a wire name (a stored event must decode
/// into exactly one of them); in particular an aggregate and its own event enum are not both
/// listed. Checked on the `NAMES` constants, at the later source. `noun` and `name` name the
/// reader in the messages ("projection `balances`").
pub(crate) fn source_overlap_checks(
    krate: Option<&syn::Path>,
    sources: &[syn::Path],
    noun: &str,
    name: &str,
) -> TokenStream {
    let mut out = TokenStream::new();
    let text = |source: &syn::Path| quote!(#source).to_string().replace(' ', "");
    for (i, source) in sources.iter().enumerate().skip(1) {
        let at = paths::private_at(krate, source.span());
        let events = events_of(krate, source);
        for earlier in &sources[..i] {
            let earlier_events = events_of(krate, earlier);
            let same = format!(
                "{noun} `{name}`: `{}` and `{}` are the same events (an aggregate source reads its event enum), so every event would belong to both; list one of them: the aggregate, to read its streams strictly",
                text(earlier),
                text(source),
            );
            let overlap = format!(
                "{noun} `{name}`: `{}` shares a wire name with `{}`, so a stored event could belong to either; rename the event (`#[event(name = \"...\")]`) or split the {noun}",
                text(source),
                text(earlier),
            );
            out.extend(quote_spanned! {source.span()=>
                const _: () = #at::check_sources(
                    <#events as #at::EventEnum>::NAMES,
                    <#earlier_events as #at::EventEnum>::NAMES,
                    #same,
                    #overlap,
                );
            });
        }
    }
    out
}

/// Invariant: an ignored event is listed once and is not also handled (`handled`: each
/// handler's event type and method).
pub(crate) fn check_ignored<'a>(
    ignored: &[syn::Type],
    handled: impl Iterator<Item = (&'a syn::Type, &'a Ident)>,
    errs: &mut crate::diag::Errors,
) {
    use crate::diag::{error_at, repeated_types, type_to_string};
    for (ty, _, text) in repeated_types(ignored, |t| t) {
        errs.push(error_at(
            ty,
            format!("`{text}` is already ignored: list it once"),
        ));
    }
    if ignored.is_empty() {
        return;
    }
    let handled: std::collections::HashMap<String, &Ident> = handled
        .map(|(ty, method)| (type_to_string(ty), method))
        .collect();
    for ty in ignored {
        let text = type_to_string(ty);
        if let Some(method) = handled.get(&text) {
            errs.push(error_at(
                ty,
                format!(
                    "`{text}` is handled by `{method}` and ignored here: decide once, so remove it from `ignore(...)` or remove the handler"
                ),
            ));
        }
    }
}
