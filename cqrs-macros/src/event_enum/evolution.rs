//! The history-aware parts of `#[derive(EventEnum)]`: decoding through renames, splits and
//! retired names, the history listing, and the reserved-name checks.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::parse::EnumModel;
use crate::paths;

/// `fn decode`, `fn history` and `const RETIRED` of the `EventEnum` impl.
pub(super) fn decode_items(model: &EnumModel<'_>, private: &proc_macro2::Ident) -> TokenStream {
    let idents: Vec<_> = model.variants.iter().map(|v| v.ident).collect();
    let tys: Vec<_> = model.variants.iter().map(|v| v.ty).collect();
    let split = &model.split;
    let retired = &model.retired;
    let split_checks = split.iter().map(|h| {
        let at = paths::private_at(model.krate.as_ref(), h.span());
        quote_spanned!(h.span()=> #at::Split::<Self>::split(__old))
    });
    quote! {
        const RETIRED: &'static [&'static str] = &[#(#retired),*];

        fn decode(
            __name: &str,
            __version: u32,
            __payload: &[u8],
        ) -> #private::Result<#private::Decoded<Self>, #private::DecodeError> {
            // Every name a variant decodes (its current name first, then the names it was
            // renamed from). The name checks below guarantee that no name belongs to two
            // variants, so the order of the tests does not matter; a name set of one name is
            // one comparison once inlined.
            #(
                if <#tys as #private::Event>::NAMES.has(__name) {
                    return #private::decoded(
                        <#tys as #private::Event>::decode_named(__name, __version, __payload),
                        Self::#idents,
                    );
                }
            )*
            // Split events: one stored event becomes several current ones.
            #(
                if <#split as #private::Event>::NAMES.has(__name) {
                    let __old = <#split as #private::Event>::decode_named(__name, __version, __payload)?;
                    return #private::Result::Ok(#private::Decoded::Many(#split_checks));
                }
            )*
            // Retired names decode to nothing.
            if <Self as #private::EventEnum>::RETIRED.contains(&__name) {
                return #private::Result::Ok(#private::Decoded::Skipped);
            }
            #private::Result::Err(#private::DecodeError::UnknownEventType {
                name: #private::ToOwned::to_owned(__name),
            })
        }

        fn history() -> #private::Vec<#private::EventSchema> {
            #private::histories(&[
                #(<#tys as #private::Event>::history,)*
                #(<#split as #private::Event>::history,)*
            ])
        }
    }
}

/// Invariants: two variants never share a wire name; no variant or split event reuses a name
/// reserved by another's history (renamed from) or retired in this enum. Checked on the
/// `Event::NAME` / `Event::NAMES` constants, at the later variant or the retired literal.
///
/// The name sets are listed once; each member's check only indexes into them, so the expansion
/// grows linearly with the number of variants.
pub(super) fn name_checks(model: &EnumModel<'_>) -> TokenStream {
    let enum_name = &model.item.ident;
    let krate = model.krate.as_ref();
    let private = paths::private(krate);
    // Variants, then split types: (label for messages, type tokens, span).
    let mut members: Vec<(String, TokenStream, proc_macro2::Span)> = model
        .variants
        .iter()
        .map(|v| {
            let ty = v.ty;
            (
                format!("{enum_name}::{}", v.ident),
                quote!(#ty),
                v.ident.span(),
            )
        })
        .collect();
    members.extend(model.split.iter().map(|p| {
        (
            format!("split({})", quote!(#p).to_string().replace(' ', "")),
            quote!(#p),
            p.span(),
        )
    }));
    let tys: Vec<_> = members.iter().map(|(_, t, _)| t).collect();
    // Without split types the members are the variants, whose names `EventEnum::NAMES` lists.
    let names = if model.split.is_empty() {
        quote!(<#enum_name as #private::EventEnum>::NAMES)
    } else {
        quote!(&[#(<#tys as #private::Event>::NAME),*])
    };
    let mut out = quote! {
        const __CQRS_NAME_SETS: &[#private::NameSet] = &[#(<#tys as #private::Event>::NAMES),*];
        const __CQRS_NAMES: &[&str] = #names;
    };
    for (j, (label, _, span)) in members.iter().enumerate().skip(1) {
        let at = paths::private_at(krate, *span);
        let duplicate = format!(
            "`{label}` has the same wire name as an earlier variant of `{enum_name}`: give it its own `#[event(name = \"...\")]`, or remove one of them"
        );
        let reserved = format!(
            "`{label}` uses a wire name reserved in `{enum_name}`: an earlier variant was renamed from it (or this one was renamed from that one's name), so stored events under it already decode to that variant; choose a new name"
        );
        out.extend(quote_spanned! {*span=>
            const _: () = #at::check_name(__CQRS_NAME_SETS, __CQRS_NAMES, #j, #duplicate, #reserved);
        });
    }
    for name in &model.retired {
        let at = paths::private_at(krate, name.span());
        let message = format!(
            "the retired name \"{}\" is still used by an event of `{enum_name}`: a retired name decodes to nothing and is never reused; give that event a new name",
            name.value()
        );
        out.extend(quote_spanned! {name.span()=>
            const _: () = #at::check(!#at::names_contain(__CQRS_NAME_SETS, #name), #message);
        });
    }
    out
}
