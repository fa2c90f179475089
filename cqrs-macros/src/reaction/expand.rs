//! Tokens for `#[reactor(...)]` and `#[process_manager(...)]`.

use proc_macro2::{Ident, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::Kind;
use super::model::{OnHandler, ReactionModel};
use super::parse::{Key, ReactionInput, Step, is_marker};
use crate::{paths, sources};

pub(super) fn expand(model: &ReactionModel<'_>) -> TokenStream {
    let private = paths::private(model.args.krate.as_ref());
    let mut out = stripped(model.kind, model.block);
    let mut inner = match model.kind {
        Kind::Reactor => reactor_impl(model, &private),
        Kind::ProcessManager => process_manager_impl(model, &private),
    };
    inner.extend(decision_impls(model, &private));
    inner.extend(sources::source_overlap_checks(
        model.args.krate.as_ref(),
        &model.sources,
        model.kind.noun(),
        &model.name,
    ));
    out.extend(paths::wrap_in_const(model.args.krate.as_ref(), inner));
    out
}

/// The user's impl block without the `#[on]` / `#[deadline]` markers, and, in a process
/// manager, each handler's context completed with the manager ([`complete_context`]).
///
/// A block generic over the bus's parameters only (`impl<S: EventStore> Fulfilment`, with
/// handlers taking `ProcessContext<'_, Shop<S>>`) is written as an inherent impl of the plain
/// type with those parameters moved onto each method (an inherent impl cannot have a parameter
/// its type does not use); the generated trait impls keep them, where the bus uses them.
fn stripped(kind: Kind, block: &syn::ItemImpl) -> TokenStream {
    let mut block = block.clone();
    let lift = lifts(&block);
    let generics = std::mem::take(&mut block.generics);
    for member in &mut block.items {
        if let syn::ImplItem::Fn(method) = member {
            if kind == Kind::ProcessManager {
                complete_context(method);
            }
            method.attrs.retain(|a| !is_marker(a));
            if lift {
                let own = std::mem::take(&mut method.sig.generics);
                let mut merged = generics.clone();
                merged.params.extend(own.params);
                if let Some(own_where) = own.where_clause {
                    merged
                        .make_where_clause()
                        .predicates
                        .extend(own_where.predicates);
                }
                method.sig.generics = merged;
            }
        }
    }
    if !lift {
        block.generics = generics;
    }
    quote!(#block)
}

/// Whether the block's parameters move onto its methods (see [`stripped`]): a block generic
/// over the bus's parameters only, on a plain type, with methods only.
fn lifts(block: &syn::ItemImpl) -> bool {
    !block.generics.params.is_empty()
        && self_ty_is_plain(&block.self_ty)
        && block
            .items
            .iter()
            .all(|item| matches!(item, syn::ImplItem::Fn(_)))
}

/// A process manager's methods take `&mut ProcessContext<'_, Bus>`; the context the
/// generated code passes is `ProcessContext<'_, Bus, Self>`, which knows the manager, so that
/// scheduling or cancelling a deadline that no `#[deadline]` handler of the manager takes does
/// not compile. Every method of the block is completed (handlers and the helpers they pass the
/// context to); a context written with the manager already is left as it is.
fn complete_context(method: &mut syn::ImplItemFn) {
    for input in &mut method.sig.inputs {
        let syn::FnArg::Typed(arg) = input else {
            continue;
        };
        let syn::Type::Reference(reference) = &mut *arg.ty else {
            continue;
        };
        let syn::Type::Path(path) = &mut *reference.elem else {
            continue;
        };
        let Some(segment) = path.path.segments.last_mut() else {
            continue;
        };
        if segment.ident != "ProcessContext" {
            continue;
        }
        let syn::PathArguments::AngleBracketed(args) = &mut segment.arguments else {
            continue;
        };
        let types = args
            .args
            .iter()
            .filter(|a| matches!(a, syn::GenericArgument::Type(_)))
            .count();
        if types == 1 {
            let span = segment.ident.span();
            args.args.push(syn::GenericArgument::Type(
                syn::parse_quote_spanned!(span=> Self),
            ));
        }
    }
}

/// Whether the impl's type is a path without generic arguments (`Fulfilment`).
fn self_ty_is_plain(ty: &syn::Type) -> bool {
    match ty {
        syn::Type::Path(p) => p
            .path
            .segments
            .iter()
            .all(|s| matches!(s.arguments, syn::PathArguments::None)),
        _ => false,
    }
}

/// The streams of the sources, for [`undecoded`](cqrs_runtime::__private::undecoded).
fn streams(model: &ReactionModel<'_>, private: &Ident) -> TokenStream {
    let streams = model
        .sources
        .iter()
        .map(|s| sources::stream_type_of(private, s));
    quote!(&[#(#streams),*])
}

/// The arguments of a call to an `#[on]` handler.
fn call_args(h: &OnHandler<'_>) -> TokenStream {
    let ctx = quote_spanned!(h.ctx_ty.span()=> __ctx);
    if h.takes_stored {
        quote!(__e, __stored, #ctx)
    } else {
        quote!(__e, #ctx)
    }
}

fn handled_names(model: &ReactionModel<'_>, private: &Ident) -> TokenStream {
    let handled = model.handlers.iter().map(|h| {
        let (ty, cfgs) = (h.event_ty, &h.cfgs);
        quote!(#(#cfgs)* <#ty as #private::Event>::NAME)
    });
    quote!(&[#(#handled),*])
}

/// `impl Reactor<Bus>`: each source's enum decodes the event, its exhaustive dispatch reaches
/// one `ReactorOn` impl per variant (or does not compile, at the source's token), and the
/// handled events run their handler.
fn reactor_impl(model: &ReactionModel<'_>, private: &Ident) -> TokenStream {
    let self_ty = &model.block.self_ty;
    let (ig, _, wc) = model.block.generics.split_for_impl();
    let bus = &model.bus;
    let (name, version) = (model.name.as_str(), model.version);
    let handled = handled_names(model, private);
    let fail = quote!(#private::decode_failed(#private::unknown_in_stream(__stored)));
    let arms = model.sources.iter().enumerate().map(|(i, source)| {
        let at = paths::private_at(model.args.krate.as_ref(), source.span());
        let events = sources::events_of(model.args.krate.as_ref(), source);
        let decide = quote_spanned! {source.span()=>
            #at::ApplyAll::<#at::Deciding<Self, #bus>>::apply_to(&__event, &mut __deciding)
        };
        let others = sources::other_streams_check(&model.sources, private, i, &fail);
        let calls = model.handlers.iter().map(|h| {
            let (ty, method, cfgs) = (h.event_ty, &h.method.sig.ident, &h.cfgs);
            let args = call_args(h);
            quote! {
                #(#cfgs)*
                if let #private::Some(__e) = #private::downcast::<#ty, _>(&__event) {
                    #private::handler_result(self.#method(#args).await)?;
                }
            }
        });
        quote! {
            match #private::decode_source::<#events>(__stored) {
                #private::Some(#private::Ok(__decoded)) => {
                    #others
                    for __event in __decoded {
                        let mut __deciding = #private::Deciding::<Self, #bus>::new();
                        #decide;
                        if __deciding.handled() {
                            #(#calls)*
                        }
                    }
                    return #private::Ok(#private::Outcome::Applied);
                }
                #private::Some(#private::Err(__error)) => {
                    return #private::Err(#private::decode_failed(__error));
                }
                #private::None => {}
            }
        }
    });
    let streams = streams(model, private);
    quote! {
        #[automatically_derived]
        impl #ig #private::Reactor<#bus> for #self_ty #wc {
            const NAME: &'static str = #name;
            const VERSION: u32 = #version;
            const HANDLED: &'static [&'static str] = #handled;

            async fn react(
                &self,
                __stored: &#private::StoredEvent,
                __ctx: &mut #private::ReactionContext<'_, #bus>,
            ) -> #private::Result<#private::Outcome, #private::ReactionError> {
                let _ = &__ctx;
                #(#arms)*
                #private::undecoded(__stored, #streams).map_err(#private::decode_failed)
            }
        }
    }
}

/// `impl ProcessManager<Bus>`: `route` through each source's exhaustive dispatch to one
/// `ProcessOn` impl per variant (the key and the step), `handle` to the handler, and
/// `on_deadline` to the `#[deadline]` handler of the deadline's type.
fn process_manager_impl(model: &ReactionModel<'_>, private: &Ident) -> TokenStream {
    let self_ty = &model.block.self_ty;
    let (ig, _, wc) = model.block.generics.split_for_impl();
    let bus = &model.bus;
    let (name, version) = (model.name.as_str(), model.version);
    let handled = handled_names(model, private);
    let deadline_names = model.deadlines.iter().map(|d| {
        let (ty, cfgs) = (d.deadline_ty, &d.cfgs);
        let at = paths::private_at(model.args.krate.as_ref(), ty.span());
        quote_spanned!(ty.span()=> #(#cfgs)* <#ty as #at::Deadline>::NAME)
    });
    let fail = quote!(#private::unknown_in_stream(__stored));
    let route_arms = model.sources.iter().enumerate().map(|(i, source)| {
        let at = paths::private_at(model.args.krate.as_ref(), source.span());
        let events = sources::events_of(model.args.krate.as_ref(), source);
        let route = quote_spanned! {source.span()=>
            #at::ApplyAll::<#at::Routing<Self, #bus>>::apply_to(&__event, &mut __routing)
        };
        let others = sources::other_streams_check(&model.sources, private, i, &fail);
        quote! {
            match #private::decode_source::<#events>(__stored) {
                #private::Some(#private::Ok(__decoded)) => {
                    #others
                    let mut __routing = #private::Routing::<Self, #bus>::new();
                    for __event in __decoded {
                        #route;
                    }
                    return #private::Ok(__routing.finish());
                }
                #private::Some(#private::Err(__error)) => return #private::Err(__error),
                #private::None => {}
            }
        }
    });
    let handle_arms = model.sources.iter().map(|source| {
        let events = sources::events_of(model.args.krate.as_ref(), source);
        let calls = model.handlers.iter().map(|h| {
            let (ty, method, cfgs) = (h.event_ty, &h.method.sig.ident, &h.cfgs);
            let args = call_args(h);
            quote! {
                #(#cfgs)*
                if let #private::Some(__e) = #private::downcast::<#ty, _>(&__event) {
                    let __mine = match <Self as #private::ProcessOn<#ty, #bus>>::route(__e) {
                        #private::Some((__key, _)) => __key == __ctx.key(),
                        #private::None => false,
                    };
                    if __mine {
                        #private::handler_result(self.#method(#args).await)?;
                    }
                }
            }
        });
        quote! {
            match #private::decode_source::<#events>(__stored) {
                #private::Some(#private::Ok(__decoded)) => {
                    for __event in __decoded {
                        #(#calls)*
                    }
                    return #private::Ok(());
                }
                #private::Some(#private::Err(__error)) => {
                    return #private::Err(#private::decode_failed(__error));
                }
                #private::None => {}
            }
        }
    });
    let deadline_calls = model.deadlines.iter().map(|d| {
        let (ty, method, cfgs) = (d.deadline_ty, &d.method.sig.ident, &d.cfgs);
        let ctx = typed_ctx_span(d.method);
        let at = paths::private_at(model.args.krate.as_ref(), ty.span());
        let decode = quote_spanned!(ty.span()=> __due.decode::<#ty>());
        quote! {
            #(#cfgs)*
            if __due.name == <#ty as #at::Deadline>::NAME {
                let __deadline: #ty = #decode.map_err(#private::decode_failed)?;
                return #private::handler_result(self.#method(__deadline, #ctx).await);
            }
        }
    });
    let streams = streams(model, private);
    // The deadlines the manager may schedule: those its `#[deadline]` handlers take. A block
    // whose parameters move onto its methods implements them for the plain type.
    let (handles_ig, handles_wc) = if lifts(model.block) {
        (None, None)
    } else {
        (Some(&ig), wc)
    };
    let handles = model.deadlines.iter().map(|d| {
        let (ty, cfgs) = (d.deadline_ty, &d.cfgs);
        quote! {
            #(#cfgs)*
            #[automatically_derived]
            impl #handles_ig #private::HandledBy<#self_ty> for #ty #handles_wc {}
        }
    });
    quote! {
        #(#handles)*

        #[automatically_derived]
        impl #ig #private::ProcessManager<#bus> for #self_ty #wc {
            const NAME: &'static str = #name;
            const VERSION: u32 = #version;
            const HANDLED: &'static [&'static str] = #handled;
            const DEADLINES: &'static [&'static str] = &[#(#deadline_names),*];

            fn route(
                __stored: &#private::StoredEvent,
            ) -> #private::Result<#private::Route, #private::DecodeError> {
                #(#route_arms)*
                #private::undecoded(__stored, #streams).map(|_| #private::Route::Foreign)
            }

            async fn handle(
                &mut self,
                __stored: &#private::StoredEvent,
                __ctx: &mut #private::ProcessContext<'_, #bus, Self>,
            ) -> #private::Result<(), #private::ReactionError> {
                let _ = &__ctx;
                #(#handle_arms)*
                #private::Ok(())
            }

            async fn on_deadline(
                &mut self,
                __due: &#private::DueDeadline,
                __ctx: &mut #private::ProcessContext<'_, #bus, Self>,
            ) -> #private::Result<(), #private::ReactionError> {
                let _ = &__ctx;
                #(#deadline_calls)*
                #private::Err(#private::unknown_deadline(#name, __due))
            }
        }
    }
}

/// `__ctx`, spanned at the handler's context argument.
fn typed_ctx_span(method: &syn::ImplItemFn) -> TokenStream {
    let args = crate::signature::typed_args(&method.sig);
    match args.get(1) {
        Some(arg) => quote_spanned!(arg.ty.span()=> __ctx),
        None => quote!(__ctx),
    }
}

/// The check that `ty` is an event of one of the sources, on the user's token.
fn member_check(model: &ReactionModel<'_>, ty: &syn::Type) -> TokenStream {
    let at = paths::private_at(model.args.krate.as_ref(), ty.span());
    match model.sources.as_slice() {
        [one] => {
            let events = quote_spanned!(ty.span()=> <#one as #at::ProjectionSource>::Events);
            quote_spanned!(ty.span()=> <#events as #at::Holds<#ty>>::holds();)
        }
        many => {
            let events: Vec<_> = many
                .iter()
                .map(|s| sources::events_of(model.args.krate.as_ref(), s))
                .collect();
            let checkable = quote_spanned! {ty.span()=>
                #at::sources_checkable(&[#(<#events as #at::EventEnum>::NAMES),*])
            };
            quote_spanned! {ty.span()=>
                <#ty as #at::SourceEvent<
                    <(#(#events,)*) as #at::Sources<{ #checkable }>>::Checked,
                    _,
                >>::source_event();
            }
        }
    }
}

/// The key expression of an event `__event`, spanned at what the user wrote.
fn key_expr(private: &Ident, key: &Key) -> TokenStream {
    match key {
        Key::Field(field) => {
            quote_spanned!(field.span()=> #private::key_of(&__event.#field))
        }
        Key::Method(method) => {
            quote_spanned!(method.span()=> #private::key_of(&__event.#method()))
        }
        Key::Function(path) => {
            quote_spanned!(path.span()=> #private::key_of(&#path(__event)))
        }
    }
}

/// One decision impl per `#[on]` handler and per ignored event: `ReactorOn<E, Bus>` (whether
/// it is handled) or `ProcessOn<E, Bus>` (its instance and step).
fn decision_impls(model: &ReactionModel<'_>, private: &Ident) -> TokenStream {
    let self_ty = &model.block.self_ty;
    let (ig, _, wc) = model.block.generics.split_for_impl();
    let bus = &model.bus;
    let mut out = TokenStream::new();
    for h in &model.handlers {
        let (ty, cfgs) = (h.event_ty, &h.cfgs);
        let check = member_check(model, ty);
        out.extend(match model.kind {
            Kind::Reactor => quote! {
                #(#cfgs)*
                impl #ig #private::ReactorOn<#ty, #bus> for #self_ty #wc {
                    #[inline]
                    fn handles() -> ::core::primitive::bool {
                        #check
                        true
                    }
                }
            },
            Kind::ProcessManager => {
                let key = h.key.as_ref().map_or_else(
                    || quote!(#private::ToString::to_string("")),
                    |k| key_expr(private, k),
                );
                let step = match h.step {
                    Step::Start => quote!(Start),
                    Step::Continue => quote!(Continue),
                    Step::End => quote!(End),
                };
                quote! {
                    #(#cfgs)*
                    impl #ig #private::ProcessOn<#ty, #bus> for #self_ty #wc {
                        #[inline]
                        fn route(__event: &#ty) -> #private::Option<(#private::String, #private::Role)> {
                            #check
                            #private::Some((#key, #private::Role::#step))
                        }
                    }
                }
            }
        });
    }
    for ty in &model.ignored {
        let check = member_check(model, ty);
        out.extend(match model.kind {
            Kind::Reactor => quote! {
                impl #ig #private::ReactorOn<#ty, #bus> for #self_ty #wc {
                    #[inline]
                    fn handles() -> ::core::primitive::bool {
                        #check
                        false
                    }
                }
            },
            Kind::ProcessManager => quote! {
                impl #ig #private::ProcessOn<#ty, #bus> for #self_ty #wc {
                    #[inline]
                    fn route(_: &#ty) -> #private::Option<(#private::String, #private::Role)> {
                        #check
                        #private::None
                    }
                }
            },
        });
    }
    out
}

/// After an error: the user's item and permissive decision impls, so that a mistake gives
/// one error.
pub(super) fn fallback(input: &ReactionInput<'_>) -> TokenStream {
    let Some(block) = input.block else {
        let item = input.item;
        return quote!(#item);
    };
    let mut out = stripped(input.kind, block);
    if !block.generics.params.is_empty() || block.trait_.is_some() {
        return out;
    }
    let syn::Type::Path(path) = &*block.self_ty else {
        return out;
    };
    let args = &input.readable;
    let private = paths::private(args.krate.as_ref());
    let bus = args.bus.clone().or_else(|| {
        input.methods.iter().find_map(|m| {
            let typed = crate::signature::typed_args(&m.method.sig);
            typed
                .last()
                .and_then(|a| super::model::bus_of(&a.ty))
                .cloned()
        })
    });
    let Some(bus) = bus else {
        return out;
    };
    let name = args.name.as_ref().map_or_else(
        || {
            path.path
                .segments
                .last()
                .map(|s| s.ident.to_string())
                .unwrap_or_default()
        },
        |n| n.as_str().to_owned(),
    );
    let placeholder = match input.kind {
        Kind::Reactor => quote! {
            impl #private::Reactor<#bus> for #path {
                const NAME: &'static str = #name;
                const VERSION: u32 = 1;
                const HANDLED: &'static [&'static str] = &[];
                async fn react(
                    &self,
                    _: &#private::StoredEvent,
                    _: &mut #private::ReactionContext<'_, #bus>,
                ) -> #private::Result<#private::Outcome, #private::ReactionError> {
                    #private::Ok(#private::Outcome::Foreign)
                }
            }
        },
        Kind::ProcessManager => quote! {
            impl #private::ProcessManager<#bus> for #path {
                const NAME: &'static str = #name;
                const VERSION: u32 = 1;
                const HANDLED: &'static [&'static str] = &[];
                const DEADLINES: &'static [&'static str] = &[];
                fn route(
                    _: &#private::StoredEvent,
                ) -> #private::Result<#private::Route, #private::DecodeError> {
                    #private::Ok(#private::Route::Foreign)
                }
                async fn handle(
                    &mut self,
                    _: &#private::StoredEvent,
                    _: &mut #private::ProcessContext<'_, #bus, Self>,
                ) -> #private::Result<(), #private::ReactionError> {
                    #private::Ok(())
                }
                async fn on_deadline(
                    &mut self,
                    _: &#private::DueDeadline,
                    _: &mut #private::ProcessContext<'_, #bus, Self>,
                ) -> #private::Result<(), #private::ReactionError> {
                    #private::Ok(())
                }
            }
        },
    };
    out.extend(paths::wrap_in_const(args.krate.as_ref(), placeholder));
    out
}
