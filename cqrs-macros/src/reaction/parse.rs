//! What the user wrote: the `#[reactor(...)]` / `#[process_manager(...)]` arguments and the
//! marked methods (`#[on(...)]`, `#[deadline]`).

use darling::FromMeta;
use darling::ast::NestedMeta;
use darling::util::{PathList, SpannedValue};
use proc_macro2::TokenStream;
use syn::ext::IdentExt;
use syn::parse::ParseStream;

use super::Kind;
use crate::annotated_impl::{attribute_args, marked_methods};
use crate::diag::error_at;
use crate::projection::parse::Sources;

/// `#[reactor(name = "...", events = ..., version = N, ignore(...), bus = T, crate = path)]`,
/// and the same keys for `#[process_manager(...)]`.
#[derive(Clone, Default, FromMeta)]
pub(super) struct ReactionArgs {
    /// The stable identity (required): checkpoint, lease and instance key.
    pub name: Option<SpannedValue<String>>,
    /// The sources: event enums or aggregates (required).
    pub events: Option<Sources>,
    /// The version (default 1).
    pub version: Option<SpannedValue<u32>>,
    /// Events of the sources deliberately not handled.
    pub ignore: Option<PathList>,
    /// The command bus (default: the one the handlers' context names).
    pub bus: Option<syn::Type>,
    /// A custom path to `cqrs_runtime`.
    #[darling(rename = "crate")]
    pub krate: Option<syn::Path>,
}

/// What an `#[on(...)]` handler does to a process manager's instance.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    Start,
    Continue,
    End,
}

/// How an event names its instance: `key = field`, `key = method()`, `key = path::to_fn`.
#[derive(Clone)]
pub(super) enum Key {
    Field(syn::Ident),
    Method(syn::Ident),
    Function(syn::Path),
}

/// The arguments of `#[on(...)]`.
#[derive(Clone)]
pub(super) struct OnArgs {
    /// `start`, `continue` or `end`, where written.
    pub step: Option<(Step, proc_macro2::Span)>,
    pub key: Option<Key>,
}

/// Which marker a method carries.
pub(super) enum Role {
    On(darling::Result<OnArgs>),
    Deadline(darling::Result<()>),
}

/// A method with one of our markers.
pub(super) struct MarkedMethod<'a> {
    pub method: &'a syn::ImplItemFn,
    pub marker: &'a syn::Attribute,
    pub role: Role,
}

/// Everything the macro received.
pub(super) struct ReactionInput<'a> {
    pub kind: Kind,
    pub item: &'a syn::Item,
    pub args: darling::Result<ReactionArgs>,
    /// What could be read of the arguments even when `args` is an error.
    pub readable: ReactionArgs,
    pub block: Option<&'a syn::ItemImpl>,
    pub methods: Vec<MarkedMethod<'a>>,
    /// Methods that carry two markers.
    pub conflicts: Vec<darling::Error>,
}

impl<'a> ReactionInput<'a> {
    pub fn parse(kind: Kind, args: TokenStream, item: &'a syn::Item) -> Self {
        let (args, readable) = attribute_args(args, ReactionArgs::tolerant);
        let marked = marked_methods(item, is_marker, |method, _| {
            format!(
                "`{}` already has a marker: a method is one `#[on]` handler or one `#[deadline]` handler",
                method.sig.ident
            )
        });
        let methods = marked
            .methods
            .into_iter()
            .map(|(method, marker)| {
                let role = if marker.path().is_ident("on") {
                    Role::On(on_args(marker))
                } else {
                    Role::Deadline(match &marker.meta {
                        syn::Meta::Path(_) => Ok(()),
                        meta => Err(error_at(
                            meta,
                            "`#[deadline]` takes no arguments: the deadline's type is the handler's argument",
                        )),
                    })
                };
                MarkedMethod {
                    method,
                    marker,
                    role,
                }
            })
            .collect();
        Self {
            kind,
            item,
            args,
            readable,
            block: marked.block,
            methods,
            conflicts: marked.conflicts,
        }
    }
}

impl ReactionArgs {
    /// Reads every key it can and skips the rest, for the fallback after a failed strict parse.
    fn tolerant(list: &[NestedMeta]) -> Self {
        let mut out = Self::default();
        for item in list {
            if let NestedMeta::Meta(syn::Meta::NameValue(nv)) = item {
                let Some(key) = nv.path.get_ident().map(ToString::to_string) else {
                    continue;
                };
                let value = &nv.value;
                match key.as_str() {
                    "name" => out.name = FromMeta::from_expr(value).ok(),
                    "events" => out.events = FromMeta::from_expr(value).ok(),
                    "bus" => out.bus = FromMeta::from_expr(value).ok(),
                    "crate" => out.krate = FromMeta::from_expr(value).ok(),
                    _ => {}
                }
            }
        }
        out
    }
}

/// Whether `attr` is one of the markers these macros consume.
pub(super) fn is_marker(attr: &syn::Attribute) -> bool {
    attr.path().is_ident("on") || attr.path().is_ident("deadline")
}

/// `#[on]`, or `#[on(start | continue | end, key = ...)]` in any order.
fn on_args(attr: &syn::Attribute) -> darling::Result<OnArgs> {
    let mut out = OnArgs {
        step: None,
        key: None,
    };
    let list = match &attr.meta {
        syn::Meta::Path(_) => return Ok(out),
        syn::Meta::List(list) => list,
        syn::Meta::NameValue(nv) => {
            return Err(error_at(
                nv,
                "write `#[on]`, or `#[on(start, key = field)]` in a process manager",
            ));
        }
    };
    let parsed = list.parse_args_with(|input: ParseStream<'_>| {
        let mut items = Vec::new();
        while !input.is_empty() {
            let word = input.call(syn::Ident::parse_any)?;
            if input.peek(syn::Token![=]) {
                input.parse::<syn::Token![=]>()?;
                let value: syn::Expr = input.parse()?;
                items.push((word, Some(value)));
            } else {
                items.push((word, None));
            }
            if input.is_empty() {
                break;
            }
            input.parse::<syn::Token![,]>()?;
        }
        Ok(items)
    });
    let items = parsed?;
    // Made after the parse: an accumulator dropped unfinished panics.
    let mut errs = darling::Error::accumulator();
    for (word, value) in items {
        let text = word.to_string();
        match (text.as_str(), value) {
            ("start" | "continue" | "end", None) => {
                let step = match text.as_str() {
                    "start" => Step::Start,
                    "end" => Step::End,
                    _ => Step::Continue,
                };
                if out.step.is_some() {
                    errs.push(error_at(
                        &word,
                        "a handler is one of `start`, `continue` or `end`: keep one",
                    ));
                } else {
                    out.step = Some((step, word.span()));
                }
            }
            ("key", Some(value)) => {
                if out.key.is_some() {
                    errs.push(error_at(&word, "`key` is given twice: keep one"));
                } else if let Some(key) = errs.handle(key_of(&value)) {
                    out.key = Some(key);
                }
            }
            ("key", None) => errs.push(error_at(
                &word,
                "`key` names the event's correlation key: `key = order_id` (a field), `key = order_id()` (a method) or `key = path::to_fn` (a function of `&Event`)",
            )),
            (_, _) => errs.push(error_at(
                &word,
                format!(
                    "unknown `#[on(...)]` argument `{text}`: expected `start`, `continue`, `end` or `key = ...`"
                ),
            )),
        }
    }
    errs.finish_with(out)
}

fn key_of(value: &syn::Expr) -> darling::Result<Key> {
    match value {
        syn::Expr::Path(p) if p.qself.is_none() => match p.path.get_ident() {
            Some(ident) => Ok(Key::Field(ident.clone())),
            None => Ok(Key::Function(p.path.clone())),
        },
        syn::Expr::Call(call) if call.args.is_empty() => match &*call.func {
            syn::Expr::Path(p) if p.qself.is_none() => match p.path.get_ident() {
                Some(ident) => Ok(Key::Method(ident.clone())),
                None => Err(error_at(
                    p,
                    "a key method is called on the event: `key = order_id()`",
                )),
            },
            other => Err(error_at(
                other,
                "a key method is called on the event: `key = order_id()`",
            )),
        },
        other => Err(error_at(
            other,
            "`key` names the event's correlation key: `key = order_id` (a field), `key = order_id()` (a method) or `key = path::to_fn` (a function of `&Event`)",
        )),
    }
}
