//! The validated projection, and the checks that produce it. Each `check_*` states its
//! invariant and writes into one accumulator, so the user sees every mistake at once.

use super::parse::{MarkedMethod, ProjectionArgs, ProjectionInput, Role};
use crate::diag::{Errors, cfg_attrs, error_at, errors, repeated_types_under_cfg};
use crate::paths;
use crate::signature::{
    EventHandlerMessages, ImplPlacement, check_event_handler, check_inherent_impl, check_plain_fn,
    typed_args,
};

/// The most sources one projection may list (the runtime's `SourceEvent` impls).
const MAX_SOURCES: usize = 6;

/// A validated `#[on]` handler.
pub(super) struct OnHandler<'a> {
    pub method: &'a syn::ImplItemFn,
    pub event_ty: &'a syn::Type,
    /// The type of the metadata argument, if the handler takes one.
    pub meta_ty: Option<&'a syn::Type>,
    /// The type of the transaction argument, if the handler takes one.
    pub tx_ty: Option<&'a syn::Type>,
    /// The handler's `#[cfg(...)]` attributes, carried onto everything generated for it.
    pub cfgs: Vec<&'a syn::Attribute>,
}

/// A validated `#[query]` method.
pub(super) struct QueryMethod<'a> {
    pub method: &'a syn::ImplItemFn,
    pub query_ty: &'a syn::Type,
    pub output: &'a syn::Type,
    /// The method's `#[cfg(...)]` attributes.
    pub cfgs: Vec<&'a syn::Attribute>,
}

/// The validated projection.
pub(super) struct ProjectionModel<'a> {
    pub args: ProjectionArgs,
    pub name: String,
    pub version: u32,
    pub sources: Vec<syn::Path>,
    pub ignored: Vec<syn::Type>,
    pub block: &'a syn::ItemImpl,
    pub handlers: Vec<OnHandler<'a>>,
    pub queries: Vec<QueryMethod<'a>>,
}

impl<'a> ProjectionModel<'a> {
    pub fn validate(input: &ProjectionInput<'a>) -> darling::Result<Self> {
        let mut errs = errors();
        let args = errs.handle(input.args.clone());
        let block = errs.handle(check_item_kind(input));
        let required = args.as_ref().and_then(|a| errs.handle(check_args(a)));
        for conflict in &input.conflicts {
            errs.push(conflict.clone());
        }
        let has_tx = args.as_ref().is_some_and(|a| a.transaction.is_some());
        let mut handlers = Vec::new();
        let mut queries = Vec::new();
        for marked in &input.methods {
            match &marked.role {
                Role::On(opts) => {
                    errs.handle(opts.clone());
                    if let Some(h) = errs.handle(check_on(marked, has_tx)) {
                        handlers.push(h);
                    }
                }
                Role::Query(opts) => {
                    errs.handle(opts.clone());
                    if let Some(q) = errs.handle(check_query(marked)) {
                        queries.push(q);
                    }
                }
            }
        }
        check_one_handler_per_event(&handlers, &mut errs);
        check_one_method_per_query(&queries, &mut errs);
        let ignored: Vec<syn::Type> = args
            .as_ref()
            .and_then(|a| a.ignore.as_ref())
            .map(|list| list.iter().map(|p| paths::path_type(p.clone())).collect())
            .unwrap_or_default();
        if let Some(args) = &args {
            check_ignored(args, &ignored, &handlers, &mut errs);
        }
        errs.finish()?;
        let (Some(args), Some((name, version, sources)), Some(block)) = (args, required, block)
        else {
            return Err(darling::Error::custom(
                "internal: projection validation lost an error",
            ));
        };
        Ok(Self {
            args,
            name,
            version,
            sources,
            ignored,
            block,
            handlers,
            queries,
        })
    }
}

/// Invariant: `#[projection]` sits on an inherent, non-generic `impl` block of a named type.
fn check_item_kind<'a>(input: &ProjectionInput<'a>) -> darling::Result<&'a syn::ItemImpl> {
    let block = check_inherent_impl(
        input.item,
        input.block,
        &ImplPlacement {
            not_impl: "`#[projection(...)]` goes on the `impl` block of the read model's type, the one holding its `#[on]` handlers",
            trait_impl: "`#[projection(...)]` goes on an inherent `impl` block (`impl YourReadModel { ... }`), not on a trait impl: it writes the `Projection` impl itself",
            generic: "a projection cannot be generic: its name, sources and checkpoint are concrete; write the impl for one concrete type",
        },
    )?;
    if !matches!(&*block.self_ty, syn::Type::Path(p) if p.qself.is_none()) {
        return Err(error_at(
            &block.self_ty,
            "`#[projection]` needs an `impl` of a named type, such as `impl AccountList`",
        ));
    }
    Ok(block)
}

/// Invariant: `name` and `events` are given; the name is a non-empty word; the version is at
/// least 1; the sources are distinct and at most [`MAX_SOURCES`].
fn check_args(args: &ProjectionArgs) -> darling::Result<(String, u32, Vec<syn::Path>)> {
    let mut errs = errors();
    if args.name.is_none() {
        errs.push(darling::Error::custom(
            "`#[projection(...)]` is missing `name = \"...\"`: the projection's stable identity, which keys its checkpoint, such as `name = \"account_list\"`",
        ));
    }
    if args.events.is_none() {
        errs.push(darling::Error::custom(
            "`#[projection(...)]` is missing `events = ...`: the `#[derive(EventEnum)]` enum it folds, such as `events = AccountEvent`, or an aggregate, whose streams it then reads strictly, such as `events = BankAccount`, or several: `events = [BankAccount, CustomerEvent]`",
        ));
    }
    if let Some(name) = &args.name
        && (name.is_empty() || name.chars().any(char::is_whitespace))
    {
        errs.push(error_at(
            &name.span(),
            "the projection's `name` keys its checkpoint: use a non-empty word such as `\"account_list\"`",
        ));
    }
    if let Some(version) = &args.version
        && **version == 0
    {
        errs.push(error_at(
            &version.span(),
            "projection versions start at 1: bump the version when the read model's shape or meaning changes",
        ));
    }
    let sources = args
        .events
        .as_ref()
        .map(|s| s.0.clone())
        .unwrap_or_default();
    if args.events.is_some() && sources.is_empty() {
        errs.push(darling::Error::custom(
            "`events = [...]` lists no source: name at least one `#[derive(EventEnum)]` enum or `#[aggregate]` type",
        ));
    }
    for (i, source) in sources.iter().enumerate() {
        let text = quote::quote!(#source).to_string();
        if sources[..i]
            .iter()
            .any(|s| quote::quote!(#s).to_string() == text)
        {
            errs.push(error_at(
                source,
                "this is already a source of the projection: list each source once",
            ));
        }
    }
    if let Some(extra) = sources.get(MAX_SOURCES) {
        errs.push(error_at(
            extra,
            format!("a projection reads at most {MAX_SOURCES} sources: split it into several projections"),
        ));
    }
    errs.finish()?;
    let name = args
        .name
        .as_ref()
        .map(|n| n.as_str().to_owned())
        .unwrap_or_default();
    let version = args.version.as_ref().map_or(1, |v| **v);
    Ok((name, version, sources))
}

/// Invariant: an `#[on]` handler is `fn(&mut self, event: &E)`, optionally followed by
/// `meta: &EventMeta` and, when the projection declares a `transaction`, `tx: &mut T`; it is
/// sync and returns nothing.
fn check_on<'a>(marked: &MarkedMethod<'a>, has_tx: bool) -> darling::Result<OnHandler<'a>> {
    let sig = &marked.method.sig;
    let mut local = errors();
    let errs = &mut local;
    let (event_ty, args) = check_event_handler(
        sig,
        "#[on]",
        &EventHandlerMessages {
            is_async: "an `#[on]` handler is sync: remove `async` (it runs inside the batch's transaction; do outside work before the command, not in the read model)",
            not_mut_self: "an `#[on]` handler updates the read model: take `&mut self`",
            no_receiver: "an `#[on]` handler takes `&mut self` and the event: `fn name(&mut self, event: &YourEvent, meta: &EventMeta)`",
            event_not_ref: "an `#[on]` handler takes its event by shared reference: `event: &YourEvent`",
            no_event: "an `#[on]` handler takes the event after `&mut self`: `(&mut self, event: &YourEvent, meta: &EventMeta)`",
        },
        errs,
    );
    let meta_ty = args.get(1).map(|a| &*a.ty);
    if let Some(ty) = meta_ty
        && !matches!(ty, syn::Type::Reference(r) if r.mutability.is_none())
    {
        errs.push(error_at(ty, "an `#[on]` handler's second argument is the event's metadata, by shared reference: `meta: &EventMeta`"));
    }
    let tx_ty = args.get(2).map(|a| &*a.ty);
    if let Some(ty) = tx_ty {
        if !has_tx {
            errs.push(error_at(ty, "this handler takes a transaction, but the projection declares none: add `transaction = YourTx` to `#[projection(...)]`, or remove the argument"));
        } else if !matches!(ty, syn::Type::Reference(r) if r.mutability.is_some()) {
            errs.push(error_at(ty, "an `#[on]` handler takes the store's transaction by mutable reference: `tx: &mut YourTx`"));
        }
    }
    for extra in args.iter().skip(3) {
        errs.push(error_at(extra, "an `#[on]` handler takes `&mut self`, the event, and optionally `&EventMeta` and `&mut Transaction`; remove this argument"));
    }
    if let syn::ReturnType::Type(_, ty) = &sig.output
        && !matches!(&**ty, syn::Type::Tuple(t) if t.elems.is_empty())
    {
        errs.push(error_at(ty, "an `#[on]` handler returns nothing: a recorded event cannot be refused, so update the read model and return"));
    }
    local.finish()?;
    match event_ty {
        Some(event_ty) => Ok(OnHandler {
            method: marked.method,
            event_ty,
            meta_ty,
            tx_ty,
            cfgs: cfg_attrs(&marked.method.attrs),
        }),
        None => Err(darling::Error::custom(
            "internal: on handler validation lost an error",
        )),
    }
}

/// Invariant: a `#[query]` method is `fn(&self, query: Q) -> Answer`, sync.
fn check_query<'a>(marked: &MarkedMethod<'a>) -> darling::Result<QueryMethod<'a>> {
    let sig = &marked.method.sig;
    let mut local = errors();
    let errs = &mut local;
    check_plain_fn(sig, "#[query]", errs);
    if let Some(asyncness) = &sig.asyncness {
        errs.push(error_at(
            asyncness,
            "a `#[query]` method reads the in-memory model under a lock: remove `async`",
        ));
    }
    match sig.receiver().map(|r| (r, &r.kind)) {
        Some((_, syn::ReceiverKind::Reference(_, _, None))) => {}
        Some((r, _)) => errs.push(error_at(r, "a `#[query]` method only reads the read model: take `&self`")),
        None => errs.push(error_at(&sig.ident, "a `#[query]` method takes `&self` and the query: `fn name(&self, query: YourQuery) -> Answer`")),
    }
    let args = typed_args(sig);
    let query_ty = match args.first().map(|a| &*a.ty) {
        Some(syn::Type::Reference(r)) => {
            errs.push(error_at(
                r,
                "a `#[query]` method takes its query by value: drop the `&`",
            ));
            None
        }
        Some(ty) => Some(ty),
        None => {
            errs.push(error_at(&sig.paren_token.span.join(), "a `#[query]` method takes the query after `&self`: `(&self, query: YourQuery)`; for a query without parameters, declare a unit struct"));
            None
        }
    };
    for extra in args.iter().skip(1) {
        errs.push(error_at(
            extra,
            "a `#[query]` method takes `&self` and one query; put parameters into the query type",
        ));
    }
    let output = match &sig.output {
        syn::ReturnType::Type(_, ty) => Some(&**ty),
        syn::ReturnType::Default => {
            errs.push(error_at(
                &sig.ident,
                "a `#[query]` method returns its answer: add `-> YourAnswer`",
            ));
            None
        }
    };
    local.finish()?;
    match (query_ty, output) {
        (Some(query_ty), Some(output)) => Ok(QueryMethod {
            method: marked.method,
            query_ty,
            output,
            cfgs: cfg_attrs(&marked.method.attrs),
        }),
        _ => Err(darling::Error::custom(
            "internal: query validation lost an error",
        )),
    }
}

/// Invariant: each event has at most one `#[on]` handler (among those compiled under the same
/// `#[cfg(...)]`: handlers under `cfg(a)` and `cfg(not(a))` are alternatives).
fn check_one_handler_per_event(handlers: &[OnHandler<'_>], errs: &mut Errors) {
    for (handler, first, ty) in repeated_types_under_cfg(handlers, |x| x.event_ty, |x| &x.cfgs) {
        errs.push(error_at(
            handler.event_ty,
            format!(
                "`{ty}` already has an `#[on]` handler, `{}`: an event has at most one handler per projection, so merge the two",
                first.method.sig.ident
            ),
        ));
    }
}

/// Invariant: each query type has exactly one `#[query]` method (under the same `#[cfg]`).
fn check_one_method_per_query(queries: &[QueryMethod<'_>], errs: &mut Errors) {
    for (query, first, ty) in repeated_types_under_cfg(queries, |x| x.query_ty, |x| &x.cfgs) {
        errs.push(error_at(
            query.query_ty,
            format!(
                "`{ty}` is already answered by `{}`: a query has one answer, so remove one method or give it its own query type",
                first.method.sig.ident
            ),
        ));
    }
}

/// Invariant: an ignored event is listed once and is not also handled; `ignore(...)` and
/// `non_exhaustive` are not combined (with `non_exhaustive` nothing needs ignoring).
fn check_ignored(
    args: &ProjectionArgs,
    ignored: &[syn::Type],
    handlers: &[OnHandler<'_>],
    errs: &mut Errors,
) {
    if let (Some(first), true) = (ignored.first(), args.non_exhaustive.is_present()) {
        errs.push(error_at(
            first,
            "`ignore(...)` has no effect on a `non_exhaustive` projection, which skips every unhandled event: remove `ignore(...)`, or remove `non_exhaustive` to keep the compiler checking that every event is decided",
        ));
    }
    let handled = handlers.iter().map(|h| (h.event_ty, &h.method.sig.ident));
    crate::sources::check_ignored(ignored, handled, errs);
}
