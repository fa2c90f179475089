//! Tokens for `#[derive(EventEnum)]`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::parse::{EnumInput, EnumModel};
use crate::paths;

pub(super) fn expand(model: &EnumModel<'_>) -> TokenStream {
    let private = paths::private(model.krate.as_ref());
    let mut inner = name_constants(model, &private);
    inner.extend(event_enum_impl(model, &private));
    inner.extend(member_impls(model, &private));
    inner.extend(apply_all_impl(model, &private));
    inner.extend(super::evolution::name_checks(model));
    paths::wrap_in_const(model.krate.as_ref(), inner)
}

/// `impl EventEnum`: names, versions, encode, decode, schema.
fn event_enum_impl(model: &EnumModel<'_>, private: &proc_macro2::Ident) -> TokenStream {
    let ident = &model.item.ident;
    let idents: Vec<_> = model.variants.iter().map(|v| v.ident).collect();
    let tys: Vec<_> = model.variants.iter().map(|v| v.ty).collect();
    let decode_items = super::evolution::decode_items(model, private);
    let indices = 0..idents.len();
    quote! {
        // The variant's position: what `NAMES` and `__CQRS_VERSIONS` are indexed by.
        #[inline]
        fn __cqrs_variant(event: &#ident) -> usize {
            match event {
                #(#ident::#idents(_) => #indices,)*
            }
        }
        const __CQRS_VERSIONS: &[u32] = &[#(<#tys as #private::Event>::VERSION),*];

        #[automatically_derived]
        impl #private::EventEnum for #ident {
            const NAMES: &'static [&'static str] = &[#(<#tys as #private::Event>::NAME),*];

            #[inline]
            fn event_name(&self) -> &'static str {
                Self::NAMES[__cqrs_variant(self)]
            }

            #[inline]
            fn event_any(&self) -> &dyn ::core::any::Any {
                match self {
                    #(Self::#idents(__event) => __event,)*
                }
            }

            #[inline]
            fn event_version(&self) -> u32 {
                __CQRS_VERSIONS[__cqrs_variant(self)]
            }

            fn encode(&self) -> #private::Result<#private::EncodedEvent, #private::JsonError> {
                match self {
                    #(Self::#idents(__event) => <#tys as #private::Event>::encode(__event),)*
                }
            }

            #decode_items

            fn schema() -> &'static [#private::EventSchema] {
                const __SCHEMA: &[#private::EventSchema] = &[#(<#tys as #private::Event>::SCHEMA),*];
                __SCHEMA
            }
        }
    }
}

/// `From`, `EventOf` and `IntoEvents` for each held event struct.
fn member_impls(model: &EnumModel<'_>, private: &proc_macro2::Ident) -> TokenStream {
    let ident = &model.item.ident;
    let mut out = quote! {
        #[automatically_derived]
        impl #private::IntoEvents<#ident> for #ident {
            #[inline]
            fn into_events(self) -> #private::Events<#ident> {
                #private::Events::One(self)
            }
        }
    };
    for v in &model.variants {
        let (var, ty) = (v.ident, v.ty);
        out.extend(quote! {
            impl #private::From<#ty> for #ident {
                #[inline]
                fn from(event: #ty) -> Self {
                    Self::#var(event)
                }
            }
            impl #private::EventOf<#ident> for #ty {}
            impl #private::IntoEvents<#ident> for #ty {
                #[inline]
                fn into_events(self) -> #private::Events<#ident> {
                    #private::Events::One(self.into())
                }
            }
        });
    }
    out
}

/// Exhaustive dispatch to any aggregate that applies every variant.
fn apply_all_impl(model: &EnumModel<'_>, private: &proc_macro2::Ident) -> TokenStream {
    let ident = &model.item.ident;
    let idents: Vec<_> = model.variants.iter().map(|v| v.ident).collect();
    let tys: Vec<_> = model.variants.iter().map(|v| v.ty).collect();
    quote! {
        #[automatically_derived]
        impl<__A> #private::ApplyAll<__A> for #ident
        where
            #(__A: #private::Apply<#tys>,)*
        {
            #[inline]
            fn apply_to(&self, __aggregate: &mut __A) {
                match self {
                    #(Self::#idents(__event) => #private::Apply::<#tys>::apply_event(__aggregate, __event),)*
                }
            }
        }
    }
}

/// `AccountEvent::OPENED` etc.: the wire name of each variant as an inherent constant.
fn name_constants(model: &EnumModel<'_>, private: &proc_macro2::Ident) -> TokenStream {
    let ident = &model.item.ident;
    let consts = model.variants.iter().map(|v| {
        let screaming =
            ident_case::RenameRule::ScreamingSnakeCase.apply_to_variant(v.ident.to_string());
        let name = format_ident!("{}", screaming, span = v.ident.span());
        let ty = v.ty;
        let doc = format!("The wire name of `{ident}::{}`.", v.ident);
        quote! {
            #[doc = #doc]
            pub const #name: &'static str = <#ty as #private::Event>::NAME;
        }
    });
    quote! {
        #[automatically_derived]
        impl #ident {
            #(#consts)*
        }
    }
}

/// When the enum is invalid, still implement `EventEnum` (decoding nothing) so that aggregates
/// naming it do not add errors of their own.
pub(super) fn fallback(input: &EnumInput<'_>) -> TokenStream {
    if !matches!(input.item.data, syn::Data::Enum(_)) || !input.item.generics.params.is_empty() {
        return TokenStream::new();
    }
    let krate = input.attrs.as_ref().ok().and_then(|a| a.krate.as_ref());
    let private = paths::private(krate);
    let ident = &input.item.ident;
    paths::wrap_in_const(
        krate,
        quote! {
            impl #private::EventEnum for #ident {
                const NAMES: &'static [&'static str] = &[];
                fn event_name(&self) -> &'static str { ::core::unimplemented!() }
                fn event_version(&self) -> u32 { ::core::unimplemented!() }
                fn event_any(&self) -> &dyn ::core::any::Any { ::core::unimplemented!() }
                fn encode(&self) -> #private::Result<#private::EncodedEvent, #private::JsonError> { ::core::unimplemented!() }
                fn decode(__name: &str, _: u32, _: &[u8]) -> #private::Result<#private::Decoded<Self>, #private::DecodeError> {
                    #private::Result::Err(#private::DecodeError::UnknownEventType { name: #private::ToOwned::to_owned(__name) })
                }
                fn schema() -> &'static [#private::EventSchema] { &[] }
            }
            impl<__A> #private::ApplyAll<__A> for #ident {
                fn apply_to(&self, _: &mut __A) {}
            }
        },
    )
}
