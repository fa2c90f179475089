//! The validated reactor or process manager, and the checks that produce it. Each `check_*`
//! states its invariant and writes into one accumulator, so the user sees every mistake at once.

use super::Kind;
use super::parse::{Key, MarkedMethod, OnArgs, ReactionArgs, ReactionInput, Role, Step};
use crate::diag::{Errors, cfg_attrs, error_at, errors, repeated_types_under_cfg};
use crate::paths;
use crate::signature::{check_plain_fn, typed_args};

/// The most sources one reaction may list (the runtime's `SourceEvent` impls).
const MAX_SOURCES: usize = 6;

/// A validated `#[on]` handler.
pub(super) struct OnHandler<'a> {
    pub method: &'a syn::ImplItemFn,
    pub event_ty: &'a syn::Type,
    /// Whether the handler takes the stored event between the event and the context.
    pub takes_stored: bool,
    /// The context argument's type (`&mut ReactionContext<'_, Bus>`).
    pub ctx_ty: &'a syn::Type,
    /// Process managers: what the event does to the instance, and how it names it.
    pub step: Step,
    pub key: Option<Key>,
    /// The handler's `#[cfg(...)]` attributes, carried onto everything generated for it.
    pub cfgs: Vec<&'a syn::Attribute>,
}

/// A validated `#[deadline]` handler.
pub(super) struct DeadlineHandler<'a> {
    pub method: &'a syn::ImplItemFn,
    pub deadline_ty: &'a syn::Type,
    pub cfgs: Vec<&'a syn::Attribute>,
}

/// The validated reaction.
pub(super) struct ReactionModel<'a> {
    pub kind: Kind,
    pub args: ReactionArgs,
    pub name: String,
    pub version: u32,
    pub sources: Vec<syn::Path>,
    pub ignored: Vec<syn::Type>,
    pub block: &'a syn::ItemImpl,
    pub handlers: Vec<OnHandler<'a>>,
    pub deadlines: Vec<DeadlineHandler<'a>>,
    pub bus: syn::Type,
}

impl<'a> ReactionModel<'a> {
    pub fn validate(input: &ReactionInput<'a>) -> darling::Result<Self> {
        let kind = input.kind;
        let mut errs = errors();
        let args = errs.handle(input.args.clone());
        let block = errs.handle(check_item_kind(input));
        let required = args.as_ref().and_then(|a| errs.handle(check_args(kind, a)));
        for conflict in &input.conflicts {
            errs.push(conflict.clone());
        }
        let mut handlers = Vec::new();
        let mut deadlines = Vec::new();
        for marked in &input.methods {
            match &marked.role {
                Role::On(on) => {
                    let Some(on) = errs.handle(on.clone()) else {
                        continue;
                    };
                    if let Some(h) = errs.handle(check_on(kind, marked, &on)) {
                        handlers.push(h);
                    }
                }
                Role::Deadline(opts) => {
                    errs.handle(opts.clone());
                    if let Some(d) = errs.handle(check_deadline(kind, marked)) {
                        deadlines.push(d);
                    }
                }
            }
        }
        check_one_handler_per_event(kind, &handlers, &mut errs);
        check_one_handler_per_deadline(&deadlines, &mut errs);
        let ignored: Vec<syn::Type> = args
            .as_ref()
            .and_then(|a| a.ignore.as_ref())
            .map(|list| list.iter().map(|p| paths::path_type(p.clone())).collect())
            .unwrap_or_default();
        check_ignored(&ignored, &handlers, &mut errs);
        let on_methods = input
            .methods
            .iter()
            .filter(|m| matches!(m.role, Role::On(_)))
            .count();
        let all_valid = input.conflicts.is_empty()
            && handlers.len() == on_methods
            && deadlines.len() + on_methods == input.methods.len();
        if kind == Kind::ProcessManager && input.args.is_ok() && all_valid {
            check_has_start(block, &handlers, &mut errs);
        }
        // A handler refused above may still name the bus; if none does, the bus is asked for
        // only when nothing else is wrong (a handler without a context says so itself).
        let bus = block.and_then(|b| {
            match check_bus(
                kind,
                b,
                args.as_ref().and_then(|a| a.bus.as_ref()),
                &input.methods,
            ) {
                Ok(bus) => Some(bus),
                Err(error) if all_valid => {
                    errs.push(error);
                    None
                }
                Err(_) => None,
            }
        });
        errs.finish()?;
        let (Some(args), Some((name, version, sources)), Some(block), Some(bus)) =
            (args, required, block, bus)
        else {
            return Err(darling::Error::custom(
                "internal: reaction validation lost an error",
            ));
        };
        Ok(Self {
            kind,
            args,
            name,
            version,
            sources,
            ignored,
            block,
            handlers,
            deadlines,
            bus,
        })
    }
}

/// Invariant: the attribute sits on an inherent `impl` block of a named type.
fn check_item_kind<'a>(input: &ReactionInput<'a>) -> darling::Result<&'a syn::ItemImpl> {
    let what = input.kind.attribute();
    let Some(block) = input.block else {
        let message = match input.kind {
            Kind::Reactor => format!(
                "`{what}` goes on the `impl` block of the reactor's type, the one holding its `#[on]` handlers"
            ),
            Kind::ProcessManager => format!(
                "`{what}` goes on the `impl` block of the process manager's state type, the one holding its `#[on(...)]` and `#[deadline]` handlers"
            ),
        };
        return Err(error_at(
            &crate::signature::item_keyword(input.item),
            message,
        ));
    };
    if let Some((path, _)) = &block.trait_ {
        return Err(error_at(
            path,
            format!(
                "`{what}` goes on an inherent `impl` block (`impl YourType {{ ... }}`), not on a trait impl: it writes the `{}` impl itself",
                input.kind.trait_name()
            ),
        ));
    }
    if !matches!(&*block.self_ty, syn::Type::Path(p) if p.qself.is_none()) {
        return Err(error_at(
            &block.self_ty,
            format!("`{what}` needs an `impl` of a named type, such as `impl Fulfilment`"),
        ));
    }
    Ok(block)
}

/// Invariant: `name` and `events` are given; the name is a non-empty word; the version is at
/// least 1; the sources are distinct and at most [`MAX_SOURCES`].
fn check_args(kind: Kind, args: &ReactionArgs) -> darling::Result<(String, u32, Vec<syn::Path>)> {
    let what = kind.attribute();
    let noun = kind.noun();
    let mut errs = errors();
    if args.name.is_none() {
        errs.push(darling::Error::custom(format!(
            "`{what}` is missing `name = \"...\"`: the {noun}'s stable identity, which keys its checkpoint{}, such as `name = \"fulfilment\"`",
            if kind == Kind::ProcessManager { " and its stored instances" } else { "" }
        )));
    }
    if args.events.is_none() {
        errs.push(darling::Error::custom(format!(
            "`{what}` is missing `events = ...`: the `#[derive(EventEnum)]` enums or `#[aggregate]` types it reacts to, such as `events = OrderEvent` or `events = [Order, Payment]`"
        )));
    }
    if let Some(name) = &args.name
        && !crate::diag::is_stored_name(name)
    {
        errs.push(error_at(
            &name.span(),
            format!("the {noun}'s `name` keys its checkpoint: use a non-empty word such as `\"fulfilment\"`"),
        ));
    }
    if let Some(version) = &args.version
        && **version == 0
    {
        errs.push(error_at(
            &version.span(),
            format!("{noun} versions start at 1: bump the version when its meaning changes"),
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
                format!("this is already a source of the {noun}: list each source once"),
            ));
        }
    }
    if let Some(extra) = sources.get(MAX_SOURCES) {
        errs.push(error_at(
            extra,
            format!("a {noun} reads at most {MAX_SOURCES} sources: split it"),
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

/// The receiver a handler of `kind` takes: `&self` (a reactor) or `&mut self` (a process
/// manager's instance).
fn check_receiver(kind: Kind, sig: &syn::Signature, marker: &str, errs: &mut Errors) {
    let want_mut = kind == Kind::ProcessManager;
    let receiver = if want_mut { "&mut self" } else { "&self" };
    match sig.receiver().map(|r| (r, &r.kind)) {
        Some((_, syn::ReceiverKind::Reference(_, _, m))) if m.is_some() == want_mut => {}
        Some((r, _)) => errs.push(error_at(
            r,
            match kind {
                Kind::Reactor => format!("a reactor's `{marker}` handler takes `&self`: a reactor keeps no state (use a process manager for state)"),
                Kind::ProcessManager => format!("a process manager's `{marker}` handler takes `&mut self`: the instance's state, saved after the handler"),
            },
        )),
        None => errs.push(error_at(
            &sig.ident,
            format!("a `{marker}` handler takes `{receiver}` first"),
        )),
    }
}

/// Invariant: a handler is `async`, returns a `Result`, and ends with the context,
/// `&mut ReactionContext<'_, Bus>` (a reactor) or `&mut ProcessContext<'_, Bus>`.
fn check_async_and_result(kind: Kind, sig: &syn::Signature, marker: &str, errs: &mut Errors) {
    if sig.asyncness.is_none() {
        errs.push(error_at(
            &sig.fn_token,
            format!(
                "{} `{marker}` handler is `async`: it awaits the commands it sends through `ctx.send(...)`; write `async fn`",
                article(marker)
            ),
        ));
    }
    if matches!(sig.output, syn::ReturnType::Default) {
        errs.push(error_at(
            &sig.ident,
            format!(
                "{} `{marker}` handler returns `Result<(), ReactionError>` (or an error that converts into it), so that a failed command or service call fails the {}: add `-> Result<(), ReactionError>`",
                article(marker),
                kind.noun()
            ),
        ));
    }
}

/// "an `#[on]`", "a `#[deadline]`".
fn article(marker: &str) -> &'static str {
    if marker.starts_with("#[on") {
        "an"
    } else {
        "a"
    }
}

fn check_ctx<'a>(
    kind: Kind,
    arg: Option<&'a syn::PatType>,
    sig: &syn::Signature,
    errs: &mut Errors,
) -> Option<&'a syn::Type> {
    let ctx = kind.context();
    match arg.map(|a| &*a.ty) {
        Some(ty @ syn::Type::Reference(r)) if r.mutability.is_some() => Some(ty),
        Some(other) => {
            errs.push(error_at(
                other,
                format!(
                    "the context is taken by mutable reference: `ctx: &mut {ctx}<'_, YourBus>`"
                ),
            ));
            None
        }
        None => {
            errs.push(error_at(
                &sig.paren_token.span.join(),
                format!("a handler takes the context last: `ctx: &mut {ctx}<'_, YourBus>`"),
            ));
            None
        }
    }
}

/// Invariant: an `#[on]` handler is `async fn(&self | &mut self, event: &E, ctx)` or
/// `async fn(.., event: &E, stored: &StoredEvent, ctx)`, returning a `Result`; a reactor's
/// `#[on]` takes no arguments, a process manager's names its key (`#[on(key = ...)]`).
fn check_on<'a>(
    kind: Kind,
    marked: &MarkedMethod<'a>,
    on: &OnArgs,
) -> darling::Result<OnHandler<'a>> {
    let sig = &marked.method.sig;
    let mut local = errors();
    let errs = &mut local;
    check_plain_fn(sig, "#[on]", errs);
    check_receiver(kind, sig, "#[on]", errs);
    check_async_and_result(kind, sig, "#[on]", errs);
    let args = typed_args(sig);
    let ctx = kind.context();
    let event_ty = match args.first().map(|a| &*a.ty) {
        Some(syn::Type::Reference(r)) if r.mutability.is_none() => Some(&*r.elem),
        Some(other) => {
            errs.push(error_at(
                other,
                "an `#[on]` handler takes its event by shared reference: `event: &YourEvent`",
            ));
            None
        }
        None => {
            errs.push(error_at(
                &sig.paren_token.span.join(),
                format!("an `#[on]` handler takes the event and the context: `(event: &YourEvent, ctx: &mut {ctx}<'_, YourBus>)`"),
            ));
            None
        }
    };
    let takes_stored = args.len() == 3;
    if takes_stored
        && let Some(ty) = args.get(1).map(|a| &*a.ty)
        && !matches!(ty, syn::Type::Reference(r) if r.mutability.is_none())
    {
        errs.push(error_at(ty, "an `#[on]` handler's middle argument is the stored event (its metadata, stream and position), by shared reference: `stored: &StoredEvent`"));
    }
    for extra in args.iter().skip(3) {
        errs.push(error_at(extra, format!("an `#[on]` handler takes the event, optionally `&StoredEvent`, and `&mut {ctx}<'_, YourBus>`; remove this argument")));
    }
    let ctx_ty = if args.len() >= 2 {
        check_ctx(kind, args.get(args.len().min(3) - 1).copied(), sig, errs)
    } else if event_ty.is_some() {
        check_ctx(kind, None, sig, errs)
    } else {
        None
    };
    match kind {
        Kind::Reactor => {
            if let Some((_, span)) = on.step {
                errs.push(error_at(&span, "a reactor keeps no instances: `start`, `continue` and `end` are for `#[process_manager]` handlers; write `#[on]`"));
            }
            if on.key.is_some() {
                errs.push(error_at(marked.marker, "a reactor keeps no instances, so its events need no correlation key: write `#[on]`"));
            }
        }
        Kind::ProcessManager => {
            if on.key.is_none() {
                errs.push(error_at(
                    marked.marker,
                    format!(
                        "`{}` has no correlation key: name the event's field that says which instance it is for, such as `#[on(key = order_id)]` (or a method: `key = order_id()`)",
                        sig.ident
                    ),
                ));
            }
        }
    }
    local.finish()?;
    match (event_ty, ctx_ty) {
        (Some(event_ty), Some(ctx_ty)) => Ok(OnHandler {
            method: marked.method,
            event_ty,
            takes_stored,
            ctx_ty,
            step: on.step.map_or(Step::Continue, |(s, _)| s),
            key: on.key.clone(),
            cfgs: cfg_attrs(&marked.method.attrs),
        }),
        _ => Err(darling::Error::custom(
            "internal: on handler validation lost an error",
        )),
    }
}

/// Invariant: `#[deadline]` sits in a process manager; its handler is
/// `async fn(&mut self, deadline: D, ctx: &mut ProcessContext<'_, Bus>) -> Result<..>`.
fn check_deadline<'a>(
    kind: Kind,
    marked: &MarkedMethod<'a>,
) -> darling::Result<DeadlineHandler<'a>> {
    let sig = &marked.method.sig;
    if kind == Kind::Reactor {
        return Err(error_at(
            marked.marker,
            "a reactor keeps no instances, so it has no deadlines: move this handler to a `#[process_manager]`",
        ));
    }
    let mut local = errors();
    let errs = &mut local;
    check_plain_fn(sig, "#[deadline]", errs);
    check_receiver(kind, sig, "#[deadline]", errs);
    check_async_and_result(kind, sig, "#[deadline]", errs);
    let args = typed_args(sig);
    let deadline_ty = match args.first().map(|a| &*a.ty) {
        Some(syn::Type::Reference(r)) => {
            errs.push(error_at(
                r,
                "a `#[deadline]` handler takes its deadline by value: drop the `&`",
            ));
            None
        }
        Some(ty) => Some(ty),
        None => {
            errs.push(error_at(
                &sig.paren_token.span.join(),
                "a `#[deadline]` handler takes the deadline and the context: `(deadline: YourDeadline, ctx: &mut ProcessContext<'_, YourBus>)`",
            ));
            None
        }
    };
    if deadline_ty.is_some() {
        check_ctx(kind, args.get(1).copied(), sig, errs);
    }
    for extra in args.iter().skip(2) {
        errs.push(error_at(
            extra,
            "a `#[deadline]` handler takes the deadline and the context; remove this argument",
        ));
    }
    local.finish()?;
    match deadline_ty {
        Some(deadline_ty) => Ok(DeadlineHandler {
            method: marked.method,
            deadline_ty,
            cfgs: cfg_attrs(&marked.method.attrs),
        }),
        None => Err(darling::Error::custom(
            "internal: deadline validation lost an error",
        )),
    }
}

/// Invariant: each event has at most one `#[on]` handler (under the same `#[cfg(...)]`).
fn check_one_handler_per_event(kind: Kind, handlers: &[OnHandler<'_>], errs: &mut Errors) {
    for (handler, first, ty) in repeated_types_under_cfg(handlers, |x| x.event_ty, |x| &x.cfgs) {
        errs.push(error_at(
            handler.event_ty,
            format!(
                "`{ty}` already has an `#[on]` handler, `{}`: an event has at most one handler per {}, so merge the two",
                first.method.sig.ident,
                kind.noun()
            ),
        ));
    }
}

/// Invariant: each deadline type has at most one `#[deadline]` handler.
fn check_one_handler_per_deadline(deadlines: &[DeadlineHandler<'_>], errs: &mut Errors) {
    for (handler, first, ty) in repeated_types_under_cfg(deadlines, |x| x.deadline_ty, |x| &x.cfgs)
    {
        errs.push(error_at(
            handler.deadline_ty,
            format!(
                "`{ty}` already has a `#[deadline]` handler, `{}`: a deadline fires into one handler, so merge the two",
                first.method.sig.ident
            ),
        ));
    }
}

/// Invariant: an ignored event is listed once and is not also handled.
fn check_ignored(ignored: &[syn::Type], handlers: &[OnHandler<'_>], errs: &mut Errors) {
    let handled = handlers.iter().map(|h| (h.event_ty, &h.method.sig.ident));
    crate::sources::check_ignored(ignored, handled, errs);
}

/// Invariant: a process manager has an `#[on(start, ...)]` handler: without one, no instance
/// ever exists and every event is an orphan.
fn check_has_start(block: Option<&syn::ItemImpl>, handlers: &[OnHandler<'_>], errs: &mut Errors) {
    if handlers.iter().any(|h| h.step == Step::Start) {
        return;
    }
    let message = "this process manager has no `#[on(start, key = ...)]` handler: no event starts an instance, so every event would be passed over as an orphan; mark the handler of the event that begins the process with `start`";
    match block {
        Some(block) => errs.push(error_at(&block.self_ty, message)),
        None => errs.push(darling::Error::custom(message)),
    }
}

/// The command bus: `bus = T`, else what the first handler's context names
/// (`&mut ReactionContext<'_, T>`).
fn check_bus(
    kind: Kind,
    block: &syn::ItemImpl,
    explicit: Option<&syn::Type>,
    methods: &[MarkedMethod<'_>],
) -> darling::Result<syn::Type> {
    if let Some(bus) = explicit {
        return Ok(bus.clone());
    }
    let from_ctx = methods
        .iter()
        .filter_map(|m| typed_args(&m.method.sig).last().map(|a| &*a.ty))
        .find_map(bus_of);
    match from_ctx {
        Some(bus) => Ok(bus.clone()),
        None => Err(error_at(
            &block.self_ty,
            format!(
                "name the command bus of this {}: `bus = YourBus` in `{}`, or take `ctx: &mut {}<'_, YourBus>` in a handler",
                kind.noun(),
                kind.attribute(),
                kind.context()
            ),
        )),
    }
}

/// `T` in `&mut Context<'_, T>`.
pub(super) fn bus_of(ty: &syn::Type) -> Option<&syn::Type> {
    let syn::Type::Reference(r) = ty else {
        return None;
    };
    let syn::Type::Path(p) = &*r.elem else {
        return None;
    };
    let syn::PathArguments::AngleBracketed(args) = &p.path.segments.last()?.arguments else {
        return None;
    };
    args.args.iter().find_map(|a| match a {
        syn::GenericArgument::Type(t) => Some(t),
        _ => None,
    })
}
