//! Checks and helpers shared by the method-level markers of `#[aggregate]` and `#[projection]`
//! (`#[command]`, `#[apply]`, `#[on]`, `#[query]`), and the check that both attributes sit on an
//! inherent, non-generic `impl` block.

use crate::diag::{Errors, error_at};

/// The arguments after the receiver.
pub(crate) fn typed_args(sig: &syn::Signature) -> Vec<&syn::PatType> {
    sig.inputs
        .iter()
        .filter_map(|a| match a {
            syn::FnArg::Typed(t) => Some(t),
            syn::FnArg::Receiver(_) => None,
        })
        .collect()
}

/// Invariant: marked methods are plain methods (no generics, no `unsafe`).
pub(crate) fn check_plain_fn(sig: &syn::Signature, marker: &str, errs: &mut Errors) {
    if let Some(param) = sig.generics.params.first() {
        errs.push(error_at(
            param,
            format!("a `{marker}` method cannot be generic: name the concrete type"),
        ));
    }
    if let syn::Safety::Unsafe(unsafety) = &sig.safety {
        errs.push(error_at(
            unsafety,
            format!("a `{marker}` method cannot be `unsafe`"),
        ));
    }
}

/// What to tell the user when an impl-block attribute sits on the wrong item.
pub(crate) struct ImplPlacement {
    /// Not an `impl` block at all.
    pub not_impl: &'static str,
    /// A trait impl.
    pub trait_impl: &'static str,
    /// A generic impl.
    pub generic: &'static str,
}

/// Invariant: the attribute sits on an inherent, non-generic `impl` block.
pub(crate) fn check_inherent_impl<'a>(
    item: &'a syn::Item,
    block: Option<&'a syn::ItemImpl>,
    messages: &ImplPlacement,
) -> darling::Result<&'a syn::ItemImpl> {
    let Some(block) = block else {
        return Err(error_at(&item_keyword(item), messages.not_impl));
    };
    if let Some((path, _)) = &block.trait_ {
        return Err(error_at(path, messages.trait_impl));
    }
    if let Some(param) = block.generics.params.first() {
        return Err(error_at(param, messages.generic));
    }
    Ok(block)
}

/// The token that names the kind of a misplaced item, for the error's span.
pub(crate) fn item_keyword(item: &syn::Item) -> proc_macro2::TokenStream {
    use quote::ToTokens;
    match item {
        syn::Item::Struct(s) => s.struct_token.to_token_stream(),
        syn::Item::Enum(e) => e.enum_token.to_token_stream(),
        syn::Item::Fn(f) => f.sig.fn_token.to_token_stream(),
        syn::Item::Trait(t) => t.trait_token.to_token_stream(),
        other => other.to_token_stream(),
    }
}

/// What to tell the user when an event handler (`#[apply]`, `#[on]`) has the wrong head.
pub(crate) struct EventHandlerMessages {
    /// The handler is `async`.
    pub is_async: &'static str,
    /// The receiver is not `&mut self`.
    pub not_mut_self: &'static str,
    /// There is no receiver.
    pub no_receiver: &'static str,
    /// The event is not taken by shared reference.
    pub event_not_ref: &'static str,
    /// There is no event argument.
    pub no_event: &'static str,
}

/// Invariant shared by `#[apply]` and `#[on]`: a sync `fn(&mut self, event: &E, ...)`.
/// Returns the event type `E` and the arguments after the receiver.
pub(crate) fn check_event_handler<'a>(
    sig: &'a syn::Signature,
    marker: &str,
    messages: &EventHandlerMessages,
    errs: &mut Errors,
) -> (Option<&'a syn::Type>, Vec<&'a syn::PatType>) {
    check_plain_fn(sig, marker, errs);
    if let Some(asyncness) = &sig.asyncness {
        errs.push(error_at(asyncness, messages.is_async));
    }
    match sig.receiver().map(|r| (r, &r.kind)) {
        Some((_, syn::ReceiverKind::Reference(_, _, Some(_)))) => {}
        Some((r, _)) => errs.push(error_at(r, messages.not_mut_self)),
        None => errs.push(error_at(&sig.ident, messages.no_receiver)),
    }
    let args = typed_args(sig);
    let event_ty = match args.first().map(|a| &*a.ty) {
        Some(syn::Type::Reference(r)) if r.mutability.is_none() => Some(&*r.elem),
        Some(other) => {
            errs.push(error_at(other, messages.event_not_ref));
            None
        }
        None => {
            errs.push(error_at(&sig.paren_token.span.join(), messages.no_event));
            None
        }
    };
    (event_ty, args)
}
