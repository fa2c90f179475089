//! `#[claim(Scope)]` and `#[release(Scope)]` on the fields of a `#[derive(Event)]` struct: the
//! values an event holds exclusively, parsed and validated here, expanded into the `Event`
//! impl's `CLAIMS`, `RELEASES` and `claims()`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::diag::{Errors, error_at};
use crate::paths;

/// Whether a field's value is taken or given back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Claim,
    Release,
}

impl Action {
    fn word(self) -> &'static str {
        match self {
            Self::Claim => "claim",
            Self::Release => "release",
        }
    }
}

/// One `#[claim(Scope)]` or `#[release(Scope)]` on a named field.
pub(super) struct FieldClaim<'a> {
    pub field: &'a syn::Ident,
    pub ty: &'a syn::Type,
    pub scope: syn::TypePath,
    pub action: Action,
}

/// Reads the claim attributes of the struct's fields. Invariants: each names one scope type;
/// a field does not claim and release one scope, nor repeat an attribute.
pub(super) fn parse<'a>(item: &'a syn::DeriveInput, errs: &mut Errors) -> Vec<FieldClaim<'a>> {
    let syn::Data::Struct(data) = &item.data else {
        return Vec::new();
    };
    let mut out: Vec<FieldClaim<'a>> = Vec::new();
    for field in &data.fields {
        let first = out.len();
        for attr in &field.attrs {
            let action = if attr.path().is_ident("claim") {
                Action::Claim
            } else if attr.path().is_ident("release") {
                Action::Release
            } else {
                continue;
            };
            let word = action.word();
            let Some(ident) = &field.ident else {
                errs.push(error_at(
                    attr,
                    format!("`#[{word}(...)]` goes on a named field of an event"),
                ));
                continue;
            };
            let scope = match attr.meta.require_list() {
                Ok(list) => syn::parse2::<syn::TypePath>(list.tokens.clone()).ok(),
                Err(_) => None,
            };
            let Some(scope) = scope else {
                errs.push(error_at(
                    attr,
                    format!(
                        "`#[{word}(...)]` names one scope type: `#[{word}(UserEmail)]`, where `UserEmail` has `#[derive(Scope)]` and `#[scope(name = \"user_email\")]`"
                    ),
                ));
                continue;
            };
            let key = crate::diag::type_to_string(&syn::Type::Path(scope.clone()));
            let same = out[first..]
                .iter()
                .find(|c| crate::diag::type_to_string(&syn::Type::Path(c.scope.clone())) == key);
            if let Some(earlier) = same {
                let message = if earlier.action == action {
                    format!("`#[{word}({key})]` is already written on `{ident}`: remove this one")
                } else {
                    format!(
                        "`{ident}` both claims and releases `{key}`: a field's value is either taken (`#[claim]`) or given back (`#[release]`); to move a claim to a new value, release the old value's field and claim the new one's"
                    )
                };
                errs.push(error_at(attr, message));
                continue;
            }
            out.push(FieldClaim {
                field: ident,
                ty: &field.ty,
                scope,
                action,
            });
        }
    }
    out
}

/// The claim items: a `ScopeRef` constant per attribute (the one place the scope type is
/// named, so a type that is no scope is one error), and the `Event` impl's scope lists and
/// `claims()`, each value read in field order. The compiler checks the scope types (`Scope`)
/// and field types (`Claimable`), at the user's tokens.
pub(super) struct Items {
    /// Outside the impl: the `ScopeRef` constants.
    pub consts: TokenStream,
    /// Inside the impl: `CLAIMS`, `RELEASES`, `claims()`.
    pub members: TokenStream,
}

pub(super) fn items(krate: Option<&syn::Path>, claims: &[FieldClaim<'_>]) -> Items {
    if claims.is_empty() {
        return Items {
            consts: TokenStream::new(),
            members: TokenStream::new(),
        };
    }
    let private = paths::private(krate);
    let refs: Vec<syn::Ident> = (0..claims.len())
        .map(|i| quote::format_ident!("__CQRS_SCOPE_{}", i))
        .collect();
    let consts = claims.iter().zip(&refs).map(|(c, r)| {
        let at = paths::private_at(krate, c.scope.span());
        let scope = &c.scope;
        let of = quote_spanned!(c.scope.span()=> #at::ScopeRef::of::<#scope>());
        quote!(const #r: #private::ScopeRef = #of;)
    });
    let names = |action: Action| {
        let names = claims
            .iter()
            .zip(&refs)
            .filter(|(c, _)| c.action == action)
            .map(|(_, r)| quote!(#r.name));
        quote!(&[#(#names),*])
    };
    let (claimed, released) = (names(Action::Claim), names(Action::Release));
    let n = claims.len();
    let pushes = claims.iter().zip(&refs).map(|(c, r)| {
        let (field, ty) = (c.field, c.ty);
        let at = paths::private_at(krate, ty.span());
        let call = match c.action {
            Action::Claim => quote_spanned!(ty.span()=> #at::claim_take::<#ty>),
            Action::Release => quote_spanned!(ty.span()=> #at::claim_release::<#ty>),
        };
        quote!(#call(&mut __claims, &#r, &self.#field);)
    });
    Items {
        consts: quote!(#(#consts)*),
        members: quote! {
            const CLAIMS: &'static [&'static str] = #claimed;
            const RELEASES: &'static [&'static str] = #released;

            #[inline]
            fn claims(&self) -> #private::Vec<#private::Claim> {
                let mut __claims = #private::Vec::with_capacity(#n);
                #(#pushes)*
                __claims
            }
        },
    }
}

/// Invariant: a later version of an event claims and releases every scope the version before
/// it does, so that stored events, upcast, keep their claims. Checked at `upcast_from = ...`
/// (or `renamed_from = ...`).
pub(super) fn kept_check(
    krate: Option<&syn::Path>,
    ident: &syn::Ident,
    prev: &syn::Type,
) -> TokenStream {
    let at = paths::private_at(krate, prev.span());
    let p = crate::diag::type_to_string(prev);
    let message = |word: &str| {
        format!(
            "`{p}` {word}s a scope that `{ident}` does not: stored `{p}` events are read as `{ident}`, so their claims would be lost when claims are rebuilt; add `#[{word}(TheScope)]` to the field of `{ident}` that carries the value"
        )
    };
    let (claims, releases) = (message("claim"), message("release"));
    quote_spanned! {prev.span()=>
        const _: () = #at::check(
            #at::scopes_kept(<#prev as #at::Event>::CLAIMS, <#ident as #at::Event>::CLAIMS),
            #claims,
        );
        const _: () = #at::check(
            #at::scopes_kept(<#prev as #at::Event>::RELEASES, <#ident as #at::Event>::RELEASES),
            #releases,
        );
    }
}
