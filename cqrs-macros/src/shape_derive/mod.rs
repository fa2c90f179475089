//! `#[derive(Shape)]`: the shape fingerprint of a type nested in events or snapshot states.

use darling::FromAttributes;
use proc_macro2::TokenStream;
use quote::quote;

use crate::diag::{error_at, errors};
use crate::{paths, shape};

/// `#[shape(crate = ...)]` on the container.
#[derive(Default, FromAttributes)]
#[darling(attributes(shape))]
struct ShapeAttrs {
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
        .handle(ShapeAttrs::from_attributes(&input.attrs))
        .unwrap_or_default();
    let krate = attrs.krate.as_ref();
    let container_serde = shape::serde_attrs(&input.attrs);
    let mut parts = Vec::new();
    let desc = match &input.data {
        syn::Data::Struct(s) => {
            let fields = errs.handle(shape::fields(&s.fields)).unwrap_or_default();
            errs.handle(shape::check_not_recursive(&input.ident, &fields));
            parts.extend(shape::field_fingerprints(krate, &fields));
            shape::describe(struct_kind(&s.fields), &container_serde, &fields)
        }
        syn::Data::Enum(e) => {
            let mut desc = format!("enum[{container_serde}]");
            for variant in &e.variants {
                let fields = errs
                    .handle(shape::fields(&variant.fields))
                    .unwrap_or_default();
                errs.handle(shape::check_not_recursive(&input.ident, &fields));
                parts.extend(shape::field_fingerprints(krate, &fields));
                let variant_serde = shape::serde_attrs(&variant.attrs);
                let inner = shape::describe(struct_kind(&variant.fields), &variant_serde, &fields);
                desc.push_str(&format!("|{}({inner})", variant.ident));
            }
            desc
        }
        syn::Data::Union(u) => {
            errs.push(error_at(
                &u.union_token,
                "`#[derive(Shape)]` describes serde shapes; a union has none",
            ));
            String::new()
        }
    };
    errs.finish()?;
    let fingerprint = shape::fingerprint(krate, &desc, &parts);
    let private = paths::private(krate);
    let ident = &input.ident;
    let mut generics = input.generics.clone();
    for param in generics.type_params_mut() {
        param.bounds.push(syn::parse_quote!(#private::Shape));
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    Ok(paths::wrap_in_const(
        krate,
        quote! {
            #[automatically_derived]
            impl #impl_generics #private::Shape for #ident #ty_generics #where_clause {
                const FINGERPRINT: u64 = #fingerprint;
            }
        },
    ))
}

fn struct_kind(fields: &syn::Fields) -> &'static str {
    match fields {
        syn::Fields::Named(_) => "struct",
        syn::Fields::Unnamed(_) => "tuple",
        syn::Fields::Unit => "unit",
    }
}
