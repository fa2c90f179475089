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
