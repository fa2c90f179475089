//! `#[derive(CommandBus)]`: a struct of `Repository<A, S>` fields (and services) becomes the
//! command bus of reactions, dispatching each aggregate's commands through its repository.

use darling::FromAttributes;
use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;

use crate::diag::{error_at, errors};
use crate::paths;

/// `#[command_bus(crate = ...)]` on the struct.
#[derive(Default, FromAttributes)]
#[darling(attributes(command_bus))]
struct BusAttrs {
    #[darling(rename = "crate")]
    krate: Option<syn::Path>,
}

/// A field that routes the commands of one aggregate.
struct Route<'a> {
    member: syn::Member,
    field_ty: &'a syn::Type,
    aggregate: &'a syn::Type,
}

/// Parse, validate, expand.
pub(crate) fn expand(input: &syn::DeriveInput) -> TokenStream {
    match try_expand(input) {
        Ok(tokens) => tokens,
        Err(error) => error.write_errors(),
    }
}

/// The aggregate of a field typed `Repository<A, ..>` (any path ending in `Repository`).
fn aggregate_of(ty: &syn::Type) -> Option<&syn::Type> {
    let syn::Type::Path(p) = ty else {
        return None;
    };
    let last = p.path.segments.last()?;
    if last.ident != "Repository" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    args.args.iter().find_map(|a| match a {
        syn::GenericArgument::Type(t) => Some(t),
        _ => None,
    })
}

fn try_expand(input: &syn::DeriveInput) -> darling::Result<TokenStream> {
    let mut errs = errors();
    let attrs = errs
        .handle(BusAttrs::from_attributes(&input.attrs))
        .unwrap_or_default();
    let fields = match &input.data {
        syn::Data::Struct(s) => Some(&s.fields),
        syn::Data::Enum(e) => {
            errs.push(error_at(
                &e.enum_token,
                "`#[derive(CommandBus)]` goes on a struct whose fields are the application's repositories (`Repository<Order, S>`, ...)",
            ));
            None
        }
        syn::Data::Union(u) => {
            errs.push(error_at(
                &u.union_token,
                "`#[derive(CommandBus)]` goes on a struct whose fields are the application's repositories",
            ));
            None
        }
    };
    // Invariant: each `Repository<A, _>` field routes the commands of `A`; one field per
    // aggregate (a command must have one way to go).
    let mut routes: Vec<Route<'_>> = Vec::new();
    for (i, field) in fields.iter().flat_map(|f| f.iter()).enumerate() {
        let Some(aggregate) = aggregate_of(&field.ty) else {
            continue;
        };
        let text = crate::diag::type_to_string(aggregate);
        if let Some(first) = routes
            .iter()
            .find(|r| crate::diag::type_to_string(r.aggregate) == text)
        {
            let first = match &first.member {
                syn::Member::Named(ident) => ident.to_string(),
                syn::Member::Unnamed(index) => index.index.to_string(),
            };
            errs.push(error_at(
                aggregate,
                format!(
                    "`{text}` already has a repository in this bus, `{first}`: the commands of an aggregate go one way, so keep one field"
                ),
            ));
            continue;
        }
        let member = match &field.ident {
            Some(ident) => syn::Member::Named(ident.clone()),
            None => syn::Member::Unnamed(syn::Index {
                index: u32::try_from(i).unwrap_or(u32::MAX),
                span: field.ty.span(),
            }),
        };
        routes.push(Route {
            member,
            field_ty: &field.ty,
            aggregate,
        });
    }
    if fields.is_some() && routes.is_empty() {
        errs.push(error_at(
            &input.ident,
            "a command bus holds the repositories of the aggregates its reactions command: add a field `Repository<YourAggregate, YourStore>`",
        ));
    }
    errs.finish()?;
    let krate = attrs.krate.as_ref();
    let private = paths::private(krate);
    let ident = &input.ident;
    let (ig, tg, wc) = input.generics.split_for_impl();
    let predicates = wc.map(|w| {
        let p = &w.predicates;
        quote!(#p,)
    });
    let impls = routes.iter().map(|route| {
        let (member, field_ty, aggregate) = (&route.member, route.field_ty, route.aggregate);
        quote! {
            #[automatically_derived]
            impl #ig #private::Dispatch<#aggregate> for #ident #tg
            where
                #predicates
                #field_ty: #private::Dispatch<#aggregate>,
                Self: ::core::marker::Send + ::core::marker::Sync + 'static,
            {
                #[inline]
                fn execute_once(
                    &self,
                    command: <#aggregate as #private::Aggregate>::Command,
                    metadata: #private::CommandMetadata,
                ) -> impl #private::Future<
                    Output = #private::Result<
                        #private::Once<#aggregate>,
                        #private::CommandError<<#aggregate as #private::Aggregate>::Error>,
                    >,
                > + ::core::marker::Send {
                    <#field_ty as #private::Dispatch<#aggregate>>::execute_once(
                        &self.#member,
                        command,
                        metadata,
                    )
                }
            }
        }
    });
    Ok(paths::wrap_in_const(krate, quote!(#(#impls)*)))
}
