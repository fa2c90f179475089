//! Tokens for `#[projection(...)]`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::model::ProjectionModel;
use super::parse::{ProjectionInput, is_marker};
use crate::paths;

pub(super) fn expand(model: &ProjectionModel<'_>) -> TokenStream {
    let private = paths::private(model.args.krate.as_ref());
    let mut out = stripped(model.block);
    let mut inner = projection_impl(model, &private);
    inner.extend(decision_impls(model, &private));
    inner.extend(query_impls(model, &private));
    inner.extend(source_overlap_checks(model));
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
    let handled = model.handlers.iter().map(|h| h.event_ty);
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
    quote! {
        #[automatically_derived]
        impl #private::Projection for #self_ty {
            const NAME: &'static str = #name;
            const VERSION: u32 = #version;
            const HANDLED: &'static [&'static str] = &[#(<#handled as #private::Event>::NAME),*];
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
        }
    }
}

/// Decode with each source enum in turn; the enum's exhaustive dispatch reaches one `On` impl
/// per variant, so an undecided variant fails to compile on the source's token.
fn exhaustive_dispatch(model: &ProjectionModel<'_>, private: &proc_macro2::Ident) -> TokenStream {
    let arms = model.sources.iter().map(|source| {
        let at = paths::private_at(model.args.krate.as_ref(), source.span());
        let dispatch = quote_spanned! {source.span()=>
            #at::ApplyAll::<#at::Projecting<'_, '_, Self>>::apply_to(
                &__event,
                &mut #at::Projecting::new(self, __meta, __tx),
            )
        };
        quote! {
            match #private::decode_source::<#source>(__stored) {
                // One event, several (a split), or none (a retired type).
                #private::Some(#private::Ok(__decoded)) => {
                    __decoded.for_each(|__event| #dispatch);
                    return #private::Ok(#private::Outcome::Applied);
                }
                #private::Some(#private::Err(__error)) => return #private::Err(__error),
                #private::None => {}
            }
        }
    });
    quote! {
        #(#arms)*
        #private::Ok(#private::Outcome::Foreign)
    }
}

/// `non_exhaustive`: only handled events are decoded, by wire name; the rest is skipped.
fn by_name_dispatch(model: &ProjectionModel<'_>, private: &proc_macro2::Ident) -> TokenStream {
    let arms = model.handlers.iter().map(|h| {
        let ty = h.event_ty;
        quote! {
            if #private::is_named::<#ty>(__stored) {
                let __event = #private::decode_event::<#ty>(__stored)?;
                #private::On::<#ty>::on(self, &__event, __meta, __tx);
                return #private::Ok(#private::Outcome::Applied);
            }
        }
    });
    // A stored name that is no current variant's (a split or retired type) is decoded through
    // the source enum, and each resulting event reaches its handler if there is one: a split
    // event of a handled type is never dropped.
    let handled: Vec<_> = model.handlers.iter().map(|h| h.event_ty).collect();
    let history = model.sources.iter().map(|source| {
        quote! {
            if !<#source as #private::EventEnum>::NAMES.contains(&__stored.event_type.as_str()) {
                match #private::decode_source::<#source>(__stored) {
                    #private::Some(#private::Ok(__decoded)) => {
                        for __event in __decoded {
                            let __any = #private::EventEnum::event_any(&__event);
                            #(
                                if let #private::Some(__e) = __any.downcast_ref::<#handled>() {
                                    #private::On::<#handled>::on(self, __e, __meta, __tx);
                                }
                            )*
                        }
                        return #private::Ok(#private::Outcome::Applied);
                    }
                    #private::Some(#private::Err(__error)) => return #private::Err(__error),
                    #private::None => {}
                }
            }
        }
    });
    quote! {
        let _ = (&__meta, &__tx);
        #(#arms)*
        #(#history)*
        #private::Ok(#private::Outcome::Foreign)
    }
}

/// The check that `ty` is an event of one of the sources, on the user's token.
fn member_check(model: &ProjectionModel<'_>, ty: &syn::Type) -> TokenStream {
    let at = paths::private_at(model.args.krate.as_ref(), ty.span());
    match model.sources.as_slice() {
        [one] => quote_spanned!(ty.span()=> #at::assert_event_of::<#one, #ty>();),
        many => quote_spanned!(ty.span()=> #at::assert_source_event::<(#(#many,)*), #ty, _>();),
    }
}

/// `On<E>` per `#[on]` handler (calling it) and per ignored event (doing nothing).
fn decision_impls(model: &ProjectionModel<'_>, private: &proc_macro2::Ident) -> TokenStream {
    let self_ty = &model.block.self_ty;
    let tx = transaction(model.args.transaction.as_ref());
    let mut out = TokenStream::new();
    for h in &model.handlers {
        let (ty, method) = (h.event_ty, &h.method.sig.ident);
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
        let (ty, output, method) = (q.query_ty, q.output, &q.method.sig.ident);
        quote! {
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

/// Invariant: two sources of one projection never share a wire name (a stored event must
/// decode into exactly one of them). Checked on the `NAMES` constants, at the later source.
fn source_overlap_checks(model: &ProjectionModel<'_>) -> TokenStream {
    let mut out = TokenStream::new();
    for (i, source) in model.sources.iter().enumerate().skip(1) {
        let at = paths::private_at(model.args.krate.as_ref(), source.span());
        let message = format!(
            "projection `{}`: `{}` shares a wire name with an earlier source, so a stored event could belong to either; rename the event (`#[event(name = \"...\")]`) or split the projection",
            model.name,
            quote!(#source).to_string().replace(' ', "")
        );
        for earlier in &model.sources[..i] {
            out.extend(quote_spanned! {source.span()=>
                const _: () = #at::check(
                    !#at::names_overlap(
                        <#source as #at::EventEnum>::NAMES,
                        <#earlier as #at::EventEnum>::NAMES,
                    ),
                    #message,
                );
            });
        }
    }
    out
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
        let key = crate::diag::type_to_string(query);
        if !matches!(m.role, super::parse::Role::Query(_)) || seen.contains(&key) {
            return None;
        }
        seen.push(key);
        Some({
            quote! {
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
