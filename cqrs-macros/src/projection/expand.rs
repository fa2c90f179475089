//! Tokens for `#[projection(...)]`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::model::ProjectionModel;
use super::parse::{ProjectionInput, is_marker};
use crate::{paths, sources};

pub(super) fn expand(model: &ProjectionModel<'_>) -> TokenStream {
    let private = paths::private(model.args.krate.as_ref());
    let mut out = stripped(model.block);
    let mut inner = projection_impl(model, &private);
    inner.extend(decision_impls(model, &private));
    inner.extend(query_impls(model, &private));
    inner.extend(sources::source_overlap_checks(
        model.args.krate.as_ref(),
        &model.sources,
        "projection",
        &model.name,
    ));
    out.extend(paths::wrap_in_const(model.args.krate.as_ref(), inner));
    out
}

/// The user's impl block without the `#[on]` / `#[query]` markers.
fn stripped(block: &syn::ItemImpl) -> TokenStream {
    let mut block = block.clone();
    for member in &mut block.items {
        if let syn::ImplItem::Fn(method) = member {
            method.attrs.retain(|a| !is_marker(a));
        }
    }
    quote!(#block)
}

fn transaction(model_tx: Option<&syn::Type>) -> TokenStream {
    model_tx.map_or_else(|| quote!(()), |t| quote!(#t))
}

/// `impl Projection`: identity, the dispatch of stored events, the reset hook.
fn projection_impl(model: &ProjectionModel<'_>, private: &proc_macro2::Ident) -> TokenStream {
    let self_ty = &model.block.self_ty;
    let (name, version) = (model.name.as_str(), model.version);
    let tx = transaction(model.args.transaction.as_ref());
    // `#[cfg]` on an array element is stable: a handler compiled out leaves no name behind.
    let handled = model.handlers.iter().map(|h| {
        let (ty, cfgs) = (h.event_ty, &h.cfgs);
        quote!(#(#cfgs)* <#ty as #private::Event>::NAME)
    });
    let body = if model.args.non_exhaustive.is_present() {
        by_name_dispatch(model, private)
    } else {
        exhaustive_dispatch(model, private)
    };
    let reset = match &model.args.reset {
        Some(path) => quote_spanned!(path.span()=> #path(self)),
        None => {
            let at = paths::private_at(model.args.krate.as_ref(), self_ty.span());
            quote_spanned!(self_ty.span()=> #at::ResetToDefault::reset_to_default(self))
        }
    };
    // The same paths as the dispatch's (`events_of`, `stream_type_of`), so that a source that
    // is no source is reported once.
    let filter = model.sources.iter().map(|source| {
        let events = sources::events_of(model.args.krate.as_ref(), source);
        let stream_type = sources::stream_type_of(private, source);
        quote!(let __filter = #private::source_filter::<#events>(__filter, #stream_type);)
    });
    quote! {
        #[automatically_derived]
        impl #private::Projection for #self_ty {
            const NAME: &'static str = #name;
            const VERSION: u32 = #version;
            const HANDLED: &'static [&'static str] = &[#(#handled),*];
            type Transaction = #tx;

            #[inline]
            fn project(
                &mut self,
                __stored: &#private::StoredEvent,
                __meta: &#private::EventMeta<'_>,
                __tx: &mut #tx,
            ) -> #private::Result<#private::Outcome, #private::DecodeError> {
                #body
            }

            fn reset(&mut self) {
                #reset
            }

            fn filter() -> #private::Option<#private::EventFilter> {
                let __filter = #private::EventFilter::new();
                #(#filter)*
                #private::Some(__filter)
            }
        }
    }
}

/// What an event no source decoded is: an error in a source aggregate's stream, else foreign.
fn undecoded(model: &ProjectionModel<'_>, private: &proc_macro2::Ident) -> TokenStream {
    let streams = model
        .sources
        .iter()
        .map(|s| sources::stream_type_of(private, s));
    quote!(#private::undecoded(__stored, &[#(#streams),*]))
}

/// Decode with each source enum in turn; the enum's exhaustive dispatch reaches one `On` impl
/// per variant, so an undecided variant fails to compile on the source's token.
fn exhaustive_dispatch(model: &ProjectionModel<'_>, private: &proc_macro2::Ident) -> TokenStream {
    let arms = model.sources.iter().enumerate().map(|(i, source)| {
        let at = paths::private_at(model.args.krate.as_ref(), source.span());
        let events = sources::events_of(model.args.krate.as_ref(), source);
        let dispatch = quote_spanned! {source.span()=>
            #at::ApplyAll::<#at::Projecting<'_, '_, Self>>::apply_to(
                &__event,
                &mut #at::Projecting::new(self, __meta, __tx),
            )
        };
        let others = sources::other_streams_check(
            &model.sources,
            private,
            i,
            &quote!(#private::unknown_in_stream(__stored)),
        );
        quote! {
            match #private::decode_source::<#events>(__stored) {
                // One event, several (a split), or none (a retired type).
                #private::Some(#private::Ok(__decoded)) => {
                    #others
                    __decoded.for_each(|__event| #dispatch);
                    return #private::Ok(#private::Outcome::Applied);
                }
                #private::Some(#private::Err(__error)) => return #private::Err(__error),
                #private::None => {}
            }
        }
    });
    let tail = undecoded(model, private);
    quote! {
        #(#arms)*
        #tail
    }
}

/// `non_exhaustive`: only handled events are decoded, by wire name; the other events of the
/// sources are skipped, and an event no source knows is treated as in [`undecoded`].
fn by_name_dispatch(model: &ProjectionModel<'_>, private: &proc_macro2::Ident) -> TokenStream {
    let arms = model.handlers.iter().map(|h| {
        let (ty, cfgs) = (h.event_ty, &h.cfgs);
        let owner_check = handled_stream_check(model, private, ty);
        quote! {
            #(#cfgs)*
            if #private::is_named::<#ty>(__stored) {
                #owner_check
                let __event = #private::decode_event::<#ty>(__stored)?;
                #private::On::<#ty>::on(self, &__event, __meta, __tx);
                return #private::Ok(#private::Outcome::Applied);
            }
        }
    });
    // A stored name that is no current variant's (a split or retired type) is decoded through
    // the source enum, and each resulting event reaches its handler if there is one: a split
    // event of a handled type is never dropped.
    let handled: Vec<_> = model
        .handlers
        .iter()
        .map(|h| (h.event_ty, &h.cfgs))
        .collect();
    let history = model.sources.iter().enumerate().map(|(i, source)| {
        let events = sources::events_of(model.args.krate.as_ref(), source);
        let others = sources::other_streams_check(
            &model.sources,
            private,
            i,
            &quote!(#private::unknown_in_stream(__stored)),
        );
        let downcasts = handled.iter().map(|(ty, cfgs)| {
            quote! {
                #(#cfgs)*
                if let #private::Some(__e) = __any.downcast_ref::<#ty>() {
                    #private::On::<#ty>::on(self, __e, __meta, __tx);
                }
            }
        });
        quote! {
            if <#events as #private::EventEnum>::NAMES.contains(&__stored.event_type.as_str()) {
                // A current event of this source that the projection does not handle.
                #others
                return #private::Ok(#private::Outcome::Foreign);
            }
            match #private::decode_source::<#events>(__stored) {
                #private::Some(#private::Ok(__decoded)) => {
                    #others
                    for __event in __decoded {
                        let __any = #private::EventEnum::event_any(&__event);
                        #(#downcasts)*
                    }
                    return #private::Ok(#private::Outcome::Applied);
                }
                #private::Some(#private::Err(__error)) => return #private::Err(__error),
                #private::None => {}
            }
        }
    });
    let tail = undecoded(model, private);
    quote! {
        let _ = (&__meta, &__tx);
        #(#arms)*
        #(#history)*
        #tail
    }
}

/// With several sources, a handled event found in the stream of an aggregate source whose
/// events do not include it is an error (see `sources::other_streams_check`). Whether the aggregate's
/// events include it is a constant; for an event enum source the test folds away.
fn handled_stream_check(
    model: &ProjectionModel<'_>,
    private: &proc_macro2::Ident,
    ty: &syn::Type,
) -> TokenStream {
    if model.sources.len() < 2 {
        return TokenStream::new();
    }
    let checks = model.sources.iter().map(|source| {
        let events = sources::events_of(model.args.krate.as_ref(), source);
        let stream_type = sources::stream_type_of(private, source);
        quote! {
            if !const { #private::name_taken(<#ty as #private::Event>::NAME, <#events as #private::EventEnum>::NAMES) }
                && #private::in_stream(__stored, #stream_type)
            {
                return #private::Err(#private::unknown_in_stream(__stored));
            }
        }
    });
    quote!(#(#checks)*)
}

/// The check that `ty` is an event of one of the sources, on the user's token.
fn member_check(model: &ProjectionModel<'_>, ty: &syn::Type) -> TokenStream {
    let at = paths::private_at(model.args.krate.as_ref(), ty.span());
    match model.sources.as_slice() {
        [one] => {
            // Spanned at the handler's type, where rustc reports the failing check (the source
            // itself keeps its span, so that a source that is none is reported there once).
            let events = quote_spanned!(ty.span()=> <#one as #at::ProjectionSource>::Events);
            quote_spanned!(ty.span()=> <#events as #at::Holds<#ty>>::holds();)
        }
        many => {
            let events: Vec<_> = many
                .iter()
                .map(|s| sources::events_of(model.args.krate.as_ref(), s))
                .collect();
            // Not checked when sources share events: that mistake is reported once, by the
            // overlap check, and the source index would be ambiguous here.
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

/// `On<E>` per `#[on]` handler (calling it) and per ignored event (doing nothing).
fn decision_impls(model: &ProjectionModel<'_>, private: &proc_macro2::Ident) -> TokenStream {
    let self_ty = &model.block.self_ty;
    let tx = transaction(model.args.transaction.as_ref());
    let mut out = TokenStream::new();
    for h in &model.handlers {
        let (ty, method, cfgs) = (h.event_ty, &h.method.sig.ident, &h.cfgs);
        let check = member_check(model, ty);
        // A parameter the handler does not take is `_`, so nothing is left unused.
        let mut call_args = vec![quote!(__event)];
        let (mut meta_param, mut tx_param) = (quote!(_), quote!(_));
        if let Some(meta) = h.meta_ty {
            call_args.push(quote_spanned!(meta.span()=> __meta));
            meta_param = quote!(__meta);
        }
        if let Some(tx_ty) = h.tx_ty {
            call_args.push(quote_spanned!(tx_ty.span()=> __tx));
            tx_param = quote!(__tx);
        }
        out.extend(quote! {
            #(#cfgs)*
            impl #private::On<#ty> for #self_ty {
                #[inline]
                fn on(&mut self, __event: &#ty, #meta_param: &#private::EventMeta<'_>, #tx_param: &mut #tx) {
                    #check
                    self.#method(#(#call_args),*)
                }
            }
        });
    }
    for ty in &model.ignored {
        let check = member_check(model, ty);
        out.extend(quote! {
            impl #private::On<#ty> for #self_ty {
                #[inline]
                fn on(&mut self, _: &#ty, _: &#private::EventMeta<'_>, _: &mut #tx) {
                    #check
                }
            }
        });
    }
    out
}

/// `Answers<Q>` per `#[query]` method.
fn query_impls(model: &ProjectionModel<'_>, private: &proc_macro2::Ident) -> TokenStream {
    let self_ty = &model.block.self_ty;
    let impls = model.queries.iter().map(|q| {
        let (ty, output, method, cfgs) = (q.query_ty, q.output, &q.method.sig.ident, &q.cfgs);
        quote! {
            #(#cfgs)*
            #[automatically_derived]
            impl #private::Answers<#ty> for #self_ty {
                type Output = #output;
                #[inline]
                fn answer(&self, __query: #ty) -> #output {
                    self.#method(__query)
                }
            }
        }
    });
    quote!(#(#impls)*)
}

/// After an error: the user's item and permissive impls, so that code using the projection
/// adds no errors of its own.
pub(super) fn fallback(input: &ProjectionInput<'_>) -> TokenStream {
    let Some(block) = input.block else {
        let item = input.item;
        return quote!(#item);
    };
    let mut out = stripped(block);
    if !block.generics.params.is_empty() || block.trait_.is_some() {
        return out;
    }
    let syn::Type::Path(path) = &*block.self_ty else {
        return out;
    };
    let args = &input.readable;
    let private = paths::private(args.krate.as_ref());
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
    let tx = transaction(args.transaction.as_ref());
    let mut seen = Vec::new();
    let queries = input.methods.iter().filter_map(|m| {
        let syn::ReturnType::Type(_, output) = &m.method.sig.output else {
            return None;
        };
        let query = m.method.sig.inputs.iter().find_map(|a| match a {
            syn::FnArg::Typed(t) if !matches!(&*t.ty, syn::Type::Reference(_)) => Some(&t.ty),
            _ => None,
        })?;
        let cfgs = crate::diag::cfg_attrs(&m.method.attrs);
        let key = (
            crate::diag::type_to_string(query),
            quote!(#(#cfgs)*).to_string(),
        );
        if !matches!(m.role, super::parse::Role::Query(_)) || seen.contains(&key) {
            return None;
        }
        seen.push(key);
        Some({
            quote! {
                #(#cfgs)*
                impl #private::Answers<#query> for #path {
                    type Output = #output;
                    fn answer(&self, _: #query) -> #output { ::core::unimplemented!() }
                }
            }
        })
    });
    out.extend(paths::wrap_in_const(
        args.krate.as_ref(),
        quote! {
            impl #private::Projection for #path {
                const NAME: &'static str = #name;
                const VERSION: u32 = 1;
                const HANDLED: &'static [&'static str] = &[];
                type Transaction = #tx;
                fn project(
                    &mut self,
                    _: &#private::StoredEvent,
                    _: &#private::EventMeta<'_>,
                    _: &mut #tx,
                ) -> #private::Result<#private::Outcome, #private::DecodeError> {
                    #private::Ok(#private::Outcome::Foreign)
                }
                fn reset(&mut self) {}
            }
            impl<__E> #private::On<__E> for #path {
                fn on(&mut self, _: &__E, _: &#private::EventMeta<'_>, _: &mut #tx) {}
            }
            #(#queries)*
        },
    ));
    out
}
