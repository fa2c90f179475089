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
        <#aggregate as #at::Handles<Self>>::handles();
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
            impl #impl_generics #private::CommandOf<#aggregate> for #ident #ty_generics #where_clause {
                #[inline]
                fn name_of(&self) -> &'static str {
                    <Self as #private::Command>::command_name(self)
                }
                #[inline]
                fn id_of(&self) -> &<#aggregate as #private::Aggregate>::Id {
                    <Self as #private::Command>::aggregate_id(self)
                }
            }
        },
    )
}

/// When the command is invalid but names its aggregate, still implement `Command` so that uses
/// of the command elsewhere do not add errors of their own.
pub(super) fn fallback(input: &CommandInput<'_>) -> TokenStream {
    let attrs = &input.readable;
    if !input.item.generics.params.is_empty()
        || attrs
            .aggregate
            .as_ref()
            .is_some_and(|a| a.segments.iter().any(|s| !s.arguments.is_none()))
    {
        return TokenStream::new();
    }
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
                impl<#(#params,)* __A: #private::Aggregate> #private::CommandOf<__A> for #ident #ty_generics #where_clause {
                    fn name_of(&self) -> &'static str { ::core::stringify!(#ident) }
                    fn id_of(&self) -> &__A::Id { ::core::unimplemented!() }
                }
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
            impl #impl_generics #private::CommandOf<#aggregate> for #ident #ty_generics #where_clause {
                fn name_of(&self) -> &'static str { ::core::stringify!(#ident) }
                fn id_of(&self) -> &<#aggregate as #private::Aggregate>::Id { ::core::unimplemented!() }
            }
        },
    )
}
