//! Tokens for `#[derive(EventEnum)]`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ext::IdentExt;

use super::parse::{EnumInput, EnumModel, VariantModel};
use crate::paths;

pub(super) fn expand(model: &EnumModel<'_>) -> TokenStream {
    let private = paths::private(model.krate.as_ref());
    let mut inner = name_constants(model, &private);
    inner.extend(event_enum_impl(model, &private));
    inner.extend(member_impls(
        &model.item.ident,
        &model.variants,
        &private,
        true,
    ));
    inner.extend(apply_all_impl(model, &private));
    inner.extend(super::evolution::name_checks(model));
    inner.extend(release_checks(model));
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

            #[inline]
            fn claims(&self) -> #private::Vec<#private::Claim> {
                match self {
                    #(Self::#idents(__event) => <#tys as #private::Event>::claims(__event),)*
                }
            }

            fn scopes() -> #private::Vec<&'static str> {
                #private::scopes_of(&[#(<#tys as #private::Event>::CLAIMS, <#tys as #private::Event>::RELEASES),*])
            }
        }
    }
}

/// Invariant: a scope an event of the enum releases is claimed by an event of the enum (a
/// release gives back what its own stream took). Checked at each variant's type.
fn release_checks(model: &EnumModel<'_>) -> TokenStream {
    let enum_name = &model.item.ident;
    let tys: Vec<_> = model.variants.iter().map(|v| v.ty).collect();
    let krate = model.krate.as_ref();
    model
        .variants
        .iter()
        .map(|v| {
            let ty = v.ty;
            let span = syn::spanned::Spanned::span(ty);
            let at = paths::private_at(krate, span);
            let t = crate::diag::type_to_string(ty);
            let message = format!(
                "`{t}` releases a scope that no event of `{enum_name}` claims: a release gives back a value its own stream took, so an event of this stream must claim the scope; add `#[claim(TheScope)]` to the field of the event that takes the value (or remove the `#[release(...)]`)"
            );
            let all = tys.iter().map(|t| quote!(<#t as #at::Event>::CLAIMS));
            quote::quote_spanned! {span=>
                const _: () = #at::check(
                    #at::scopes_claimed(<#ty as #at::Event>::RELEASES, &[#(#all),*]),
                    #message,
                );
            }
        })
        .collect()
}

/// `From` and `EventOf` for each held event struct; for an accepted enum (`checked`), also
/// the impls the macros check handlers against (`Holds`, `Emits`, `WellFormed`). An enum the
/// derive refused gets permissive versions of those in [`fallback`] instead.
fn member_impls(
    ident: &syn::Ident,
    variants: &[VariantModel<'_>],
    private: &proc_macro2::Ident,
    checked: bool,
) -> TokenStream {
    let mut out = quote! {
        impl #private::ProjectionSource for #ident {
            type Events = Self;
            const STREAM_TYPE: #private::Option<&'static str> = #private::None;
        }
    };
    if checked {
        out.extend(quote! {
            impl #private::WellFormed for #ident {}
        });
    }
    for v in variants {
        let (var, ty) = (v.ident, v.ty);
        out.extend(quote! {
            impl #private::From<#ty> for #ident {
                #[inline]
                fn from(event: #ty) -> Self {
                    Self::#var(event)
                }
            }
            impl #private::EventOf<#ident> for #ty {
                #[inline]
                fn into_enum(self) -> #ident {
                    #ident::#var(self)
                }
            }
        });
        if checked {
            out.extend(quote! {
                impl #private::Holds<#ty> for #ident {}
                impl #private::Emits<#ty> for #ident {
                    #[inline]
                    fn emit(event: #ty) -> #private::Events<Self> {
                        #private::Events::One(Self::#var(event))
                    }
                }
            });
        }
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
    let consts = model.variants.iter().filter_map(|v| {
        // `r#Type` names the constant `TYPE`; a name that is no identifier gets no constant.
        let screaming = ident_case::RenameRule::ScreamingSnakeCase
            .apply_to_variant(v.ident.unraw().to_string());
        let mut name = syn::parse_str::<syn::Ident>(&screaming).ok()?;
        name.set_span(v.ident.span());
        let ty = v.ty;
        let doc = format!("The wire name of `{ident}::{}`.", v.ident);
        Some(quote! {
            #[doc = #doc]
            pub const #name: &'static str = <#ty as #private::Event>::NAME;
        })
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
    // The variants that are well formed keep their conversions; the enum holds and emits
    // every event, so that handlers naming its events (the broken variants' too) add no errors
    // of their own.
    let members = member_impls(
        ident,
        &super::parse::readable_variants(input.item),
        &private,
        false,
    );
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
            impl<__T> #private::Holds<__T> for #ident {}
            impl<__T> #private::Emits<__T> for #ident {
                fn emit(_: __T) -> #private::Events<Self> { #private::Events::None }
            }
            #members
        },
    )
}
