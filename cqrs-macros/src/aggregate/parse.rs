//! What the user wrote: the `#[aggregate(...)]` arguments and the marked methods.

use darling::FromMeta;
use darling::ast::NestedMeta;
use darling::util::SpannedValue;
use proc_macro2::TokenStream;

use crate::annotated_impl::{attribute_args, marked_methods};
use crate::diag::{Flag, error_at};

/// `#[aggregate(name = "...", id = ..., events = ..., error = ..., services = ..., command_enum = ...)]`.
///
/// The required keys are `Option`s so that validation can explain each missing one, and so that
/// the fallback can use whatever was readable.
#[derive(Clone, Default, FromMeta)]
pub(super) struct AggregateArgs {
    /// The stream type stored with every event (required).
    pub name: Option<SpannedValue<String>>,
    /// The id type of one instance (required).
    pub id: Option<syn::Type>,
    /// The stream's event enum (required).
    pub events: Option<syn::Type>,
    /// The error type handlers return (required).
    pub error: Option<syn::Type>,
    /// Services injected into handlers that take a second argument.
    pub services: Option<syn::Type>,
    /// The name of the generated command enum (default `{Type}Command`).
    pub command_enum: Option<syn::Ident>,
    /// A custom path to `cqrs_runtime`.
    #[darling(rename = "crate")]
    pub krate: Option<syn::Path>,
}

/// `#[command(...)]` on a method: the creation policy.
#[derive(Default, FromMeta)]
pub(super) struct CommandOpts {
    /// The stream must not exist yet.
    pub create: Flag,
    /// The stream must exist (the default).
    pub existing: Flag,
    /// Either.
    pub any: Flag,
}

/// Which marker a method carries.
pub(super) enum Role {
    Command(darling::Result<CommandOpts>),
    Apply(darling::Result<()>),
}

/// A method with one of our markers.
pub(super) struct MarkedMethod<'a> {
    pub method: &'a syn::ImplItemFn,
    pub role: Role,
}

/// Everything the macro received.
pub(super) struct AggregateInput<'a> {
    pub item: &'a syn::Item,
    pub args: darling::Result<AggregateArgs>,
    /// What could be read of the arguments even when `args` is an error.
    pub readable: AggregateArgs,
    /// The impl block, if the attribute sits on one.
    pub block: Option<&'a syn::ItemImpl>,
    pub methods: Vec<MarkedMethod<'a>>,
    /// Methods that carry both markers, or one marker twice.
    pub conflicts: Vec<darling::Error>,
}

impl<'a> AggregateInput<'a> {
    pub fn parse(args: TokenStream, item: &'a syn::Item) -> Self {
        let (args, readable) = attribute_args(args, AggregateArgs::tolerant);
        let marked = marked_methods(item, is_marker, |method, marker| {
            format!(
                "`{}` already has `#[{}]`: a method is either one `#[command]` handler or one `#[apply]` handler",
                method.sig.ident,
                marker_name(marker)
            )
        });
        let methods = marked
            .methods
            .into_iter()
            .map(|(method, marker)| MarkedMethod {
                method,
                role: role_of(marker),
            })
            .collect();
        Self {
            item,
            args,
            readable,
            block: marked.block,
            methods,
            conflicts: marked.conflicts,
        }
    }
}

impl AggregateArgs {
    /// Reads every key it can and skips the rest: what the fallback uses when the strict
    /// parse failed (an unknown key, say), so that the one error is not followed by others.
    fn tolerant(list: &[NestedMeta]) -> Self {
        let mut out = Self::default();
        for item in list {
            let NestedMeta::Meta(syn::Meta::NameValue(nv)) = item else {
                continue;
            };
            let Some(key) = nv.path.get_ident().map(ToString::to_string) else {
                continue;
            };
            let value = &nv.value;
            match key.as_str() {
                "name" => out.name = FromMeta::from_expr(value).ok(),
                "id" => out.id = FromMeta::from_expr(value).ok(),
                "events" => out.events = FromMeta::from_expr(value).ok(),
                "error" => out.error = FromMeta::from_expr(value).ok(),
                "services" => out.services = FromMeta::from_expr(value).ok(),
                "command_enum" => out.command_enum = FromMeta::from_expr(value).ok(),
                "crate" => out.krate = FromMeta::from_expr(value).ok(),
                _ => {}
            }
        }
        out
    }
}

/// Whether `attr` is one of the markers this macro consumes.
pub(super) fn is_marker(attr: &syn::Attribute) -> bool {
    attr.path().is_ident("command") || attr.path().is_ident("apply")
}

fn marker_name(attr: &syn::Attribute) -> &'static str {
    if attr.path().is_ident("command") {
        "command"
    } else {
        "apply"
    }
}

fn role_of(attr: &syn::Attribute) -> Role {
    if attr.path().is_ident("command") {
        Role::Command(match &attr.meta {
            syn::Meta::Path(_) => Ok(CommandOpts::default()),
            meta => CommandOpts::from_meta(meta),
        })
    } else {
        Role::Apply(match &attr.meta {
            syn::Meta::Path(_) => Ok(()),
            meta => Err(error_at(
                meta,
                "`#[apply]` takes no arguments: write `#[apply]`",
            )),
        })
    }
}
