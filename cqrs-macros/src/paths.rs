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

/// The hidden module through which generated code names every runtime item.
pub(crate) fn private(custom: Option<&syn::Path>) -> TokenStream {
    let krate = runtime(custom);
    quote!(#krate::__private)
}

/// Wraps helper items in `const _: () = { ... };` so that nothing leaks into the user's namespace.
pub(crate) fn wrap_in_const(items: TokenStream) -> TokenStream {
    quote! {
        #[doc(hidden)]
        const _: () = {
            #items
        };
    }
}

/// [`private`], with every token placed at `span`, so that a failing bound in generated code is
/// reported at the user's token `span` comes from (rustc blames a path by its first token).
pub(crate) fn private_at(custom: Option<&syn::Path>, span: proc_macro2::Span) -> TokenStream {
    respan(private(custom), span)
}

fn respan(tokens: TokenStream, span: proc_macro2::Span) -> TokenStream {
    use proc_macro2::{Group, TokenTree};
    tokens
        .into_iter()
        .map(|tt| match tt {
            TokenTree::Group(g) => {
                let mut group = Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                TokenTree::Group(group)
            }
            mut other => {
                other.set_span(span);
                other
            }
        })
        .collect()
}
