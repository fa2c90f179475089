//! Tokens for `#[derive(Event)]`.

use proc_macro2::TokenStream;
use quote::quote;

use super::parse::{EventInput, EventModel};
use crate::paths;

pub(super) fn expand(model: &EventModel<'_>) -> TokenStream {
    let private = paths::private(model.krate.as_ref());
    let ident = &model.item.ident;
    let name = &model.name;
    let version = model.version;
    let rust_type = ident.to_string();
    let fields = model.fields.iter().map(|f| {
        let (fname, fty) = (&f.name, &f.ty);
        quote!(#private::FieldSchema { name: #fname, ty: #fty })
    });
    paths::wrap_in_const(quote! {
        #[automatically_derived]
        impl #private::Event for #ident {
            const NAME: &'static str = #name;
            const VERSION: u32 = #version;
            const SCHEMA: #private::EventSchema = #private::EventSchema {
                name: #name,
                version: #version,
                rust_type: #rust_type,
                fields: &[#(#fields),*],
            };
        }
    })
}

/// When the attribute is broken, still implement `Event` (with a placeholder name) so that enums
/// and handlers using the struct do not add errors of their own.
pub(super) fn fallback(input: &EventInput<'_>) -> TokenStream {
    if !matches!(input.item.data, syn::Data::Struct(_)) || !input.item.generics.params.is_empty() {
        return TokenStream::new();
    }
    let krate = input.attrs.as_ref().ok().and_then(|a| a.krate.as_ref());
    let private = paths::private(krate);
    let ident = &input.item.ident;
    paths::wrap_in_const(quote! {
        impl #private::Event for #ident {
            const NAME: &'static str = ::core::stringify!(#ident);
            const VERSION: u32 = 1;
            const SCHEMA: #private::EventSchema = #private::EventSchema {
                name: ::core::stringify!(#ident),
                version: 1,
                rust_type: ::core::stringify!(#ident),
                fields: &[],
            };
        }
    })
}
