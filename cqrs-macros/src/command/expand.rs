//! Tokens for `#[derive(Command)]`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::parse::{CommandInput, CommandModel};
use crate::paths;

pub(super) fn expand(model: &CommandModel<'_>) -> TokenStream {
    let private = paths::private(model.krate.as_ref());
    let ident = &model.item.ident;
    let (impl_generics, ty_generics, where_clause) = model.item.generics.split_for_impl();
    let aggregate = &model.aggregate;
    let name = &model.name;
    let member = &model.id_member;
    // The id check lands on the `#[id]` field's type, the handler check on `aggregate = ...`.
    let id_ty = &model.id_field.ty;
    let id_expr = quote_spanned!(id_ty.span()=> &self.#member);
    let at = paths::private_at(model.krate.as_ref(), aggregate.span());
    let handles_check = quote_spanned! {aggregate.span()=>
        #at::assert_handles::<#aggregate, Self>();
    };
    paths::wrap_in_const(
        model.krate.as_ref(),
        quote! {
            #[automatically_derived]
            impl #impl_generics #private::Command for #ident #ty_generics #where_clause {
                type Aggregate = #aggregate;
                #[inline]
                fn command_name(&self) -> &'static str {
                    #handles_check
                    #name
                }
                #[inline]
                fn aggregate_id(&self) -> &<#aggregate as #private::Aggregate>::Id {
                    #id_expr
                }
            }
            impl #impl_generics #private::CommandOf<#aggregate> for #ident #ty_generics #where_clause {}
        },
    )
}

/// When the command is invalid but names its aggregate, still implement `Command` so that uses
/// of the command elsewhere do not add errors of their own.
pub(super) fn fallback(input: &CommandInput<'_>) -> TokenStream {
    let attrs = &input.readable;
    let private = paths::private(attrs.krate.as_ref());
    let ident = &input.item.ident;
    let Some(aggregate) = &attrs.aggregate else {
        // Without an aggregate there is no `Command` impl to write; still accept the command in
        // any handler so that the missing `aggregate = ...` is reported once.
        let (_, ty_generics, where_clause) = input.item.generics.split_for_impl();
        let params = input.item.generics.params.iter();
        return paths::wrap_in_const(
            attrs.krate.as_ref(),
            quote! {
                impl<#(#params,)* __A> #private::CommandOf<__A> for #ident #ty_generics #where_clause {}
            },
        );
    };
    let (impl_generics, ty_generics, where_clause) = input.item.generics.split_for_impl();
    paths::wrap_in_const(
        attrs.krate.as_ref(),
        quote! {
            impl #impl_generics #private::Command for #ident #ty_generics #where_clause {
                type Aggregate = #aggregate;
                fn command_name(&self) -> &'static str {
                    ::core::stringify!(#ident)
                }
                fn aggregate_id(&self) -> &<#aggregate as #private::Aggregate>::Id {
                    ::core::unimplemented!()
                }
            }
            impl #impl_generics #private::CommandOf<#aggregate> for #ident #ty_generics #where_clause {}
        },
    )
}
