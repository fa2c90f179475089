//! Where generated code finds the runtime, and how it is wrapped.

use proc_macro2::TokenStream;
use quote::quote;

/// The path generated code uses for `cqrs-runtime`: `crate = path` if given, else `::cqrs_runtime`.
pub(crate) fn runtime(custom: Option<&syn::Path>) -> TokenStream {
    match custom {
        Some(path) => quote!(#path),
        None => quote!(::cqrs_runtime),
    }
}

/// The name generated code uses for the hidden module through which it names every runtime
/// item: `__cqrs`, an alias that [`wrap_in_const`] declares (`use ::cqrs_runtime::__private as
/// __cqrs;`) at the top of the block that holds the generated items. Inside that block the alias
/// is the innermost binding of the name, so no user item can shadow it, and every runtime path
/// is two tokens shorter than the absolute one (generated code is mostly such paths, and the
/// compiler pays for every token on each build, incremental ones included).
/// An identifier rather than a token stream: interpolating an identifier into `quote!` output
/// is one token, where a stream is copied and appended on every use.
pub(crate) fn private(_custom: Option<&syn::Path>) -> proc_macro2::Ident {
    proc_macro2::Ident::new("__cqrs", proc_macro2::Span::call_site())
}

/// Wraps helper items in `const _: () = { ... };` so that nothing leaks into the user's
/// namespace, with the [`private`] alias declared first. Every item that names the runtime goes
/// through here.
pub(crate) fn wrap_in_const(custom: Option<&syn::Path>, items: TokenStream) -> TokenStream {
    // Every caller's items name the runtime through the alias, so the `use` is never unused.
    // `unused_qualifications` is allowed: alias paths carry the user's spans (so errors land on
    // the user's tokens), where a runtime trait the user imported (`Event`, `Shape`) is in scope
    // too; and a user's `crate = ::path` may be more qualified than the lint wants.
    let krate = runtime(custom);
    quote! {
        #[allow(unused_qualifications)]
        const _: () = {
            use #krate::__private as __cqrs;
            #items
        };
    }
}

/// [`private`], placed at `span`, so that a failing bound in generated code is reported at the
/// user's token `span` comes from (rustc blames a path by its first token).
pub(crate) fn private_at(
    _custom: Option<&syn::Path>,
    span: proc_macro2::Span,
) -> proc_macro2::Ident {
    proc_macro2::Ident::new("__cqrs", span)
}

/// `tokens` with every span (inside groups too) set to `span`: so that a check naming a type
/// the user wrote elsewhere is still reported at the token it is about (rustc blames a
/// qualified path's self type).
pub(crate) fn respan(tokens: TokenStream, span: proc_macro2::Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let proc_macro2::TokenTree::Group(group) = &token {
                let mut inner =
                    proc_macro2::Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(span);
                return proc_macro2::TokenTree::Group(inner);
            }
            token.set_span(span);
            token
        })
        .collect()
}

/// The type named by `path` (an `ignore(..)` entry, a source), as a `syn::Type`.
pub(crate) fn path_type(path: syn::Path) -> syn::Type {
    syn::Type::Path(syn::TypePath {
        attrs: Vec::new(),
        qself: None,
        path,
    })
}
