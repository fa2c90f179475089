//! The validated aggregate, and the checks that produce it. Each `check_*` states its invariant
//! and writes into one accumulator, so the user sees every mistake at once.

use quote::format_ident;

use super::parse::{AggregateArgs, AggregateInput, CommandOpts, MarkedMethod, Role};
use crate::diag::{Errors, error_at, errors, repeated_types_under_cfg, type_to_string};
use crate::signature::{
    EventHandlerMessages, ImplPlacement, check_event_handler, check_inherent_impl, check_plain_fn,
    typed_args,
};

/// When a command may run, relative to the stream's existence.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Policy {
    Create,
    Existing,
    Any,
}

/// A validated `#[command]` handler.
pub(super) struct CommandHandler<'a> {
    pub method: &'a syn::ImplItemFn,
    pub command_ty: &'a syn::Type,
    pub variant: syn::Ident,
    pub policy: Policy,
    pub takes_services: bool,
    pub output: &'a syn::Type,
    /// The handler's `#[cfg(...)]` attributes, carried onto everything generated for it.
    pub cfgs: Vec<&'a syn::Attribute>,
}

/// A validated `#[apply]` handler.
pub(super) struct ApplyHandler<'a> {
    pub method: &'a syn::ImplItemFn,
    pub event_ty: &'a syn::Type,
    /// The handler's `#[cfg(...)]` attributes.
    pub cfgs: Vec<&'a syn::Attribute>,
}

/// The required `#[aggregate(...)]` arguments, all present.
pub(super) struct Required {
    pub name: String,
    pub id: syn::Type,
    pub events: syn::Type,
    pub error: syn::Type,
}

/// The validated aggregate.
pub(super) struct AggregateModel<'a> {
    pub args: AggregateArgs,
    pub required: Required,
    pub block: &'a syn::ItemImpl,
    pub command_enum: syn::Ident,
    pub commands: Vec<CommandHandler<'a>>,
    pub applies: Vec<ApplyHandler<'a>>,
}

impl<'a> AggregateModel<'a> {
    pub fn validate(input: &AggregateInput<'a>) -> darling::Result<Self> {
        let mut errs = errors();
        let args = errs.handle(input.args.clone());
        let block = errs.handle(check_item_kind(input));
        let type_ident = block.and_then(|b| errs.handle(self_ident(b)));
        let required = args.as_ref().and_then(|a| errs.handle(check_args(a)));
        for conflict in &input.conflicts {
            errs.push(conflict.clone());
        }
        let has_services = args.as_ref().is_some_and(|a| a.services.is_some());
        let mut commands = Vec::new();
        let mut applies = Vec::new();
        for marked in &input.methods {
            match &marked.role {
                Role::Command(opts) => {
                    let opts = errs.handle(opts.as_ref().map_err(Clone::clone).and_then(policy_of));
                    let handler = errs.handle(check_command(marked, has_services));
                    if let (Some(policy), Some(handler)) = (opts, handler) {
                        commands.push(CommandHandler { policy, ..handler });
                    }
                }
                Role::Apply(opts) => {
                    errs.handle(opts.clone());
                    if let Some(handler) = errs.handle(check_apply(marked)) {
                        applies.push(handler);
                    }
                }
            }
        }
        check_one_handler_per_command(&commands, &mut errs);
        check_one_apply_per_event(&applies, &mut errs);
        if let Some(args) = &args {
            check_events_is_no_event(args, &input.methods, &mut errs);
        }
        errs.finish()?;
        let (Some(args), Some(required), Some(block), Some(type_ident)) =
            (args, required, block, type_ident)
        else {
            return Err(darling::Error::custom(
                "internal: aggregate validation lost an error",
            ));
        };
        let command_enum = args
            .command_enum
            .clone()
            .unwrap_or_else(|| format_ident!("{}Command", type_ident));
        Ok(Self {
            args,
            required,
            block,
            command_enum,
            commands,
            applies,
        })
    }
}

/// Invariant: `#[aggregate]` sits on an inherent, non-generic `impl` block.
fn check_item_kind<'a>(input: &AggregateInput<'a>) -> darling::Result<&'a syn::ItemImpl> {
    check_inherent_impl(
        input.item,
        input.block,
        &ImplPlacement {
            not_impl: "`#[aggregate(...)]` goes on the `impl` block of the aggregate's state type, the one holding its `#[command]` and `#[apply]` methods",
            trait_impl: "`#[aggregate(...)]` goes on an inherent `impl` block (`impl YourAggregate { ... }`), not on a trait impl: it writes the `Aggregate` impl itself",
            generic: "an aggregate cannot be generic: its stream type, events and command enum are concrete; write the impl for one concrete type",
        },
    )
}

/// The state type's name, which names the command enum.
fn self_ident(block: &syn::ItemImpl) -> darling::Result<syn::Ident> {
    match &*block.self_ty {
        syn::Type::Path(p) if p.qself.is_none() => match p.path.segments.last() {
            Some(segment) if !segment.arguments.is_none() => Err(error_at(
                &segment.arguments,
                "an aggregate cannot be generic: its stream type, events and command enum are fixed; write `#[aggregate]` on the `impl` of a type without type parameters (wrap the state in a struct if needed)",
            )),
            Some(segment) => Ok(segment.ident.clone()),
            None => Err(error_at(
                &block.self_ty,
                "expected the aggregate's type name",
            )),
        },
        other => Err(error_at(
            other,
            "`#[aggregate]` needs an `impl` of a named type, such as `impl BankAccount`",
        )),
    }
}

/// Invariant: `name`, `id`, `events` and `error` are given, and the name is a non-empty word.
fn check_args(args: &AggregateArgs) -> darling::Result<Required> {
    let mut errs = errors();
    // Reported at the attribute itself (the call site).
    let mut missing = |key: &str, what: &str| {
        errs.push(darling::Error::custom(format!(
            "`#[aggregate(...)]` is missing `{key} = ...`: {what}"
        )));
    };
    if args.name.is_none() {
        missing(
            "name",
            "the stream type stored with every event, such as `name = \"account\"`",
        );
    }
    if args.id.is_none() {
        missing(
            "id",
            "the type that identifies one instance (its `Display` form is the stream id), such as `id = AccountId`",
        );
    }
    if args.events.is_none() {
        missing(
            "events",
            "the stream's `#[derive(EventEnum)]` enum, such as `events = AccountEvent`",
        );
    }
    if args.error.is_none() {
        missing(
            "error",
            "the error type that `#[command]` handlers return, such as `error = AccountError`",
        );
    }
    if let Some(name) = &args.name
        && !crate::diag::is_stored_name(name)
    {
        errs.push(error_at(
            &name.span(),
            format!(
                "the aggregate's `name` is its stream type, stored with every event, so it is one word: non-empty, without whitespace or control characters, such as `\"{}\"`",
                crate::diag::suggested_name(name)
            ),
        ));
    }
    // Invariant: an aggregate has one stream, so `events` names one event enum.
    if let Some(events) = &args.events
        && !is_plain_path(events)
    {
        errs.push(error_at(
            events,
            "`events` names the aggregate's one event enum, such as `events = AccountEvent`: an aggregate's stream has one `#[derive(EventEnum)]` enum (a projection may list several)",
        ));
    }
    errs.finish()?;
    match (&args.name, &args.id, &args.events, &args.error) {
        (Some(name), Some(id), Some(events), Some(error)) => Ok(Required {
            name: name.as_str().to_owned(),
            id: id.clone(),
            events: events.clone(),
            error: error.clone(),
        }),
        _ => Err(darling::Error::custom(
            "internal: aggregate argument check lost an error",
        )),
    }
}

/// Invariant: `events` names the event enum, not one of its events. Caught where an
/// `#[apply]` handler takes the type `events` names (which no event enum can be); any other
/// wrong type is left to the compiler.
fn check_events_is_no_event(args: &AggregateArgs, methods: &[MarkedMethod<'_>], errs: &mut Errors) {
    if let Some(events) = &args.events
        && let Some(handler) = applied_events_type(events, methods)
    {
        errs.push(error_at(
            events,
            format!(
                "`{}` is an event (`{handler}` applies it), not an event enum: `events` names the aggregate's `#[derive(EventEnum)]` enum, whose variants hold the events, such as `events = AccountEvent`",
                type_to_string(events)
            ),
        ));
    }
}

/// The `#[apply]` handler that takes `&T` where `T` is `events`, if any.
pub(super) fn applied_events_type<'a>(
    events: &syn::Type,
    methods: &[MarkedMethod<'a>],
) -> Option<&'a syn::Ident> {
    let events = type_to_string(events);
    methods.iter().find_map(|m| {
        if !matches!(m.role, Role::Apply(_)) {
            return None;
        }
        match typed_args(&m.method.sig).first().map(|a| &*a.ty) {
            Some(syn::Type::Reference(r)) if type_to_string(&r.elem) == events => {
                Some(&m.method.sig.ident)
            }
            _ => None,
        }
    })
}

/// Whether `ty` is a type path such as `AccountEvent` or `domain::AccountEvent<'static>`.
pub(super) fn is_plain_path(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(p) if p.qself.is_none())
}

/// Invariant: at most one creation policy per handler.
fn policy_of(opts: &CommandOpts) -> darling::Result<Policy> {
    let set: Vec<_> = [
        (&opts.create, Policy::Create),
        (&opts.existing, Policy::Existing),
        (&opts.any, Policy::Any),
    ]
    .into_iter()
    .filter(|(flag, _)| flag.is_present())
    .collect();
    match set.as_slice() {
        [] => Ok(Policy::Existing),
        [(_, policy)] => Ok(*policy),
        [_, (flag, _), ..] => Err(error_at(
            &flag.span(),
            "a handler has one creation policy: choose one of `create`, `existing` (the default) or `any`",
        )),
    }
}

/// Invariant: a command handler is `fn(&self, cmd: C) -> Result<_, _>`, or
/// `[async] fn(&self, cmd: C, services: &S) -> Result<_, _>` when the aggregate declares services.
fn check_command<'a>(
    marked: &MarkedMethod<'a>,
    has_services: bool,
) -> darling::Result<CommandHandler<'a>> {
    let sig = &marked.method.sig;
    let mut local = errors();
    let errs = &mut local;
    check_plain_fn(sig, "#[command]", errs);
    match sig.receiver().map(|r| (r, &r.kind)) {
        Some((_, syn::ReceiverKind::Reference(_, _, None))) => {}
        Some((_, syn::ReceiverKind::Reference(_, _, Some(mutability)))) => errs.push(error_at(
            mutability,
            "a `#[command]` handler decides without changing state: take `&self`, return events, and change state in `#[apply]` handlers",
        )),
        Some((r, _)) => errs.push(error_at(r, "a `#[command]` handler takes `&self`")),
        None => errs.push(error_at(&sig.ident, "a `#[command]` handler takes `&self` and the command: `fn name(&self, cmd: YourCommand)`")),
    }
    let args = typed_args(sig);
    let command_ty = match args.first() {
        Some(arg) => match &*arg.ty {
            syn::Type::Reference(r) => {
                errs.push(error_at(
                    r,
                    "a `#[command]` handler takes its command by value: drop the `&`",
                ));
                None
            }
            ty => Some(ty),
        },
        None => {
            errs.push(error_at(&sig.paren_token.span.join(), "a `#[command]` handler takes the command after `&self`: `(&self, cmd: YourCommand)`"));
            None
        }
    };
    let takes_services = args.len() >= 2;
    if let Some(services) = args.get(1) {
        if !has_services {
            errs.push(error_at(
                services,
                "this handler takes services, but the aggregate declares none: add `services = YourServices` to `#[aggregate(...)]`",
            ));
        } else if !matches!(&*services.ty, syn::Type::Reference(r) if r.mutability.is_none()) {
            errs.push(error_at(&services.ty, "a `#[command]` handler takes the aggregate's services by shared reference: `&YourServices`"));
        }
    }
    for extra in args.iter().skip(2) {
        errs.push(error_at(extra, "a `#[command]` handler takes `&self`, the command, and optionally `&Services`; remove this argument"));
    }
    if let Some(asyncness) = &sig.asyncness
        && !takes_services
    {
        errs.push(error_at(
            asyncness,
            "a `#[command]` handler without services is pure and sync: remove `async` (only a handler that takes the aggregate's services may await)",
        ));
    }
    let output = match &sig.output {
        syn::ReturnType::Type(_, ty) => Some(&**ty),
        syn::ReturnType::Default => {
            errs.push(error_at(
                &sig.ident,
                "a `#[command]` handler returns its decision: add `-> Result<Event, YourError>` (or `Vec<_>`, `Option<_>`, `()` inside `Ok`)",
            ));
            None
        }
    };
    let variant = command_ty.and_then(|ty| errs.handle(variant_name(ty)));
    local.finish()?;
    match (command_ty, output, variant) {
        (Some(command_ty), Some(output), Some(variant)) => Ok(CommandHandler {
            method: marked.method,
            command_ty,
            variant,
            policy: Policy::Existing,
            takes_services,
            output,
            cfgs: crate::diag::cfg_attrs(&marked.method.attrs),
        }),
        _ => Err(darling::Error::custom(
            "internal: command handler validation lost an error",
        )),
    }
}

/// Invariant: an apply handler is `fn(&mut self, event: &E)`, sync, returning nothing.
fn check_apply<'a>(marked: &MarkedMethod<'a>) -> darling::Result<ApplyHandler<'a>> {
    let sig = &marked.method.sig;
    let mut local = errors();
    let errs = &mut local;
    let (event_ty, args) = check_event_handler(
        sig,
        "#[apply]",
        &EventHandlerMessages {
            is_async: "an `#[apply]` handler is sync and infallible: remove `async` (replaying history cannot wait on the outside world)",
            not_mut_self: "an `#[apply]` handler evolves the state: take `&mut self`",
            no_receiver: "an `#[apply]` handler takes `&mut self` and the event: `fn name(&mut self, event: &YourEvent)`",
            event_not_ref: "an `#[apply]` handler takes its event by shared reference: `event: &YourEvent`",
            no_event: "an `#[apply]` handler takes the event after `&mut self`: `(&mut self, event: &YourEvent)`",
        },
        errs,
    );
    for extra in args.iter().skip(1) {
        errs.push(error_at(
            extra,
            "an `#[apply]` handler takes only `&mut self` and the event; remove this argument",
        ));
    }
    if let syn::ReturnType::Type(_, ty) = &sig.output
        && !matches!(&**ty, syn::Type::Tuple(t) if t.elems.is_empty())
    {
        errs.push(error_at(ty, "an `#[apply]` handler returns nothing: applying a recorded event cannot fail, so validate in the `#[command]` handler instead"));
    }
    local.finish()?;
    match event_ty {
        Some(event_ty) => Ok(ApplyHandler {
            method: marked.method,
            event_ty,
            cfgs: crate::diag::cfg_attrs(&marked.method.attrs),
        }),
        None => Err(darling::Error::custom(
            "internal: apply handler validation lost an error",
        )),
    }
}

/// The command enum's variant for a command type: the type's last path segment.
fn variant_name(ty: &syn::Type) -> darling::Result<syn::Ident> {
    match ty {
        syn::Type::Path(p) if p.qself.is_none() => match p.path.segments.last() {
            Some(segment) if segment.arguments.is_none() => Ok(segment.ident.clone()),
            _ => Err(error_at(
                ty,
                "a command is a plain struct type such as `Deposit`; generic commands are not supported",
            )),
        },
        _ => Err(error_at(
            ty,
            "a command is a struct deriving `Command`, named by its type, such as `cmd: Deposit`",
        )),
    }
}

/// Invariant: each command has exactly one handler (and one variant name in the command enum).
fn check_one_handler_per_command(commands: &[CommandHandler<'_>], errs: &mut Errors) {
    let repeated = repeated_types_under_cfg(commands, |h| h.command_ty, |h| &h.cfgs);
    for (handler, first, ty) in &repeated {
        errs.push(error_at(
            handler.command_ty,
            format!(
                "`{ty}` already has a `#[command]` handler, `{}`: a command has exactly one handler, so merge the two or remove one",
                first.method.sig.ident
            ),
        ));
    }
    for (i, handler) in commands.iter().enumerate() {
        if repeated.iter().any(|(h, _, _)| std::ptr::eq(*h, handler)) {
            continue;
        }
        if let Some(first) = commands[..i]
            .iter()
            .find(|h| h.variant == handler.variant && h.cfgs == handler.cfgs)
        {
            errs.push(error_at(
                handler.command_ty,
                format!(
                    "`{}` and `{}` would both be the variant `{}` of the command enum: rename one of the command types",
                    type_to_string(handler.command_ty),
                    type_to_string(first.command_ty),
                    handler.variant
                ),
            ));
        }
    }
}

/// Invariant: each event has exactly one `#[apply]` handler.
fn check_one_apply_per_event(applies: &[ApplyHandler<'_>], errs: &mut Errors) {
    for (handler, first, ty) in repeated_types_under_cfg(applies, |x| x.event_ty, |x| &x.cfgs) {
        errs.push(error_at(
            handler.event_ty,
            format!(
                "`{ty}` already has an `#[apply]` handler, `{}`: an event is applied by exactly one handler, so merge the two",
                first.method.sig.ident
            ),
        ));
    }
}
