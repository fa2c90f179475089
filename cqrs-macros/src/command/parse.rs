//! What the user wrote on a `#[derive(Command)]` struct, and its validation.

use darling::FromAttributes;
use darling::util::SpannedValue;

use crate::diag::{Errors, error_at, errors};

/// `#[command(...)]` on the struct.
#[derive(Clone, Default, FromAttributes)]
#[darling(attributes(command))]
pub(super) struct CommandAttrs {
    /// The aggregate whose `#[command]` handler takes this command.
    pub aggregate: Option<syn::Path>,
    /// The name used in traces and errors (default: the type name).
    pub name: Option<SpannedValue<String>>,
    /// A custom path to `cqrs_runtime`.
    #[darling(rename = "crate")]
    pub krate: Option<syn::Path>,
}

/// The raw input: the item plus its parsed attributes (or the error reading them).
pub(super) struct CommandInput<'a> {
    pub item: &'a syn::DeriveInput,
    pub attrs: darling::Result<CommandAttrs>,
    /// What could be read of `#[command(...)]` even when `attrs` is an error.
    pub readable: CommandAttrs,
}

/// The validated command.
pub(super) struct CommandModel<'a> {
    pub item: &'a syn::DeriveInput,
    pub aggregate: syn::Path,
    pub name: String,
    pub krate: Option<syn::Path>,
    pub id_field: &'a syn::Field,
    pub id_member: syn::Member,
}

impl<'a> CommandInput<'a> {
    pub fn from_input(item: &'a syn::DeriveInput) -> Self {
        // `aggregate = Bag<u32>` is no expression, so the attribute does not parse at all; say
        // what is wrong with it rather than relay the parser's "comparison operators cannot
        // be chained".
        let attrs = CommandAttrs::from_attributes(&item.attrs)
            .map_err(|error| generic_aggregate(&item.attrs).unwrap_or(error));
        Self {
            item,
            attrs,
            readable: CommandAttrs::tolerant(&item.attrs),
        }
    }

    /// Checks every rule of a command at once.
    pub fn validate(&self) -> darling::Result<CommandModel<'a>> {
        let mut errs = errors();
        let attrs = errs.handle(self.attrs.clone());
        let id = check_shape_and_id(self.item, &mut errs);
        let aggregate = attrs.as_ref().and_then(|a| a.aggregate.clone());
        if attrs.is_some() && aggregate.is_none() {
            // Invariant: a command names its aggregate, so the aggregate's handler can be checked.
            errs.push(error_at(
                &self.item.ident,
                format!(
                    "`{}` does not name its aggregate: add `#[command(aggregate = YourAggregate)]`, the type whose `#[aggregate]` impl has the `#[command]` handler for it",
                    self.item.ident
                ),
            ));
        }
        // Invariant: a command is concrete: it is a variant of its aggregate's command enum,
        // which names it without parameters.
        if let Some(param) = self.item.generics.params.first() {
            errs.push(error_at(
                param,
                "a command cannot be generic (or borrow with a lifetime): it becomes a variant of its aggregate's command enum, which is concrete; use owned, concrete field types",
            ));
        }
        // Invariant: the aggregate is a concrete, non-generic type (see `#[aggregate]`).
        if let Some(args) = aggregate.as_ref().and_then(generic_arguments) {
            errs.push(error_at(args, GENERIC_AGGREGATE));
        }
        let name = attrs.as_ref().and_then(|a| a.name.as_ref()).map(|n| {
            if n.trim().is_empty() {
                errs.push(error_at(&n.span(), "a command name must not be empty"));
            }
            n.as_str().to_owned()
        });
        errs.finish()?;
        let (Some(attrs), Some((id_field, id_member)), Some(aggregate)) = (attrs, id, aggregate)
        else {
            return Err(darling::Error::custom(
                "internal: command validation lost an error",
            ));
        };
        Ok(CommandModel {
            item: self.item,
            aggregate,
            name: name.unwrap_or_else(|| self.item.ident.to_string()),
            krate: attrs.krate,
            id_field,
            id_member,
        })
    }
}

/// The error for a generic `aggregate = Bag<u32>` in `#[command(...)]`, at the arguments.
fn generic_aggregate(attrs: &[syn::Attribute]) -> Option<darling::Error> {
    use proc_macro2::TokenTree;
    for attr in attrs.iter().filter(|a| a.path().is_ident("command")) {
        let Ok(list) = attr.meta.require_list() else {
            continue;
        };
        let tokens: Vec<TokenTree> = list.tokens.clone().into_iter().collect();
        let mut i = 0;
        while i + 1 < tokens.len() {
            let is_key = matches!(&tokens[i], TokenTree::Ident(k) if k == "aggregate")
                && matches!(&tokens[i + 1], TokenTree::Punct(p) if p.as_char() == '=');
            if !is_key {
                i += 1;
                continue;
            }
            // The value runs to the next `,` outside angle brackets.
            let mut depth = 0usize;
            let value: proc_macro2::TokenStream = tokens[i + 2..]
                .iter()
                .take_while(|t| match t {
                    TokenTree::Punct(p) if p.as_char() == '<' => {
                        depth += 1;
                        true
                    }
                    TokenTree::Punct(p) if p.as_char() == '>' => {
                        depth = depth.saturating_sub(1);
                        true
                    }
                    TokenTree::Punct(p) => p.as_char() != ',' || depth > 0,
                    _ => true,
                })
                .cloned()
                .collect();
            if let Ok(syn::Type::Path(ty)) = syn::parse2::<syn::Type>(value)
                && let Some(args) = generic_arguments(&ty.path)
            {
                return Some(error_at(args, GENERIC_AGGREGATE));
            }
            i += 2;
        }
    }
    None
}

/// Why `aggregate = Bag<u32>` is refused.
const GENERIC_AGGREGATE: &str = "a command's aggregate is a type path without generic arguments, such as `aggregate = BankAccount`: an aggregate cannot be generic, because its stream type, events and command enum are fixed; wrap the state in a struct without type parameters";

/// The generic arguments of a path such as `Bag<u32>`, if any.
fn generic_arguments(path: &syn::Path) -> Option<&syn::PathArguments> {
    path.segments
        .iter()
        .map(|s| &s.arguments)
        .find(|a| !a.is_none())
}

/// Invariant: a command is a struct with named fields, exactly one of which is `#[id]`.
fn check_shape_and_id<'a>(
    item: &'a syn::DeriveInput,
    errs: &mut Errors,
) -> Option<(&'a syn::Field, syn::Member)> {
    let fields = match &item.data {
        syn::Data::Struct(s) => match &s.fields {
            syn::Fields::Named(named) => &named.named,
            syn::Fields::Unnamed(_) | syn::Fields::Unit => {
                errs.push(error_at(
                    &item.ident,
                    format!(
                        "`#[derive(Command)]` needs a struct with named fields: write `struct {} {{ #[id] target: Id, ... }}`",
                        item.ident
                    ),
                ));
                return None;
            }
        },
        syn::Data::Enum(e) => {
            errs.push(error_at(
                &e.enum_token,
                "`#[derive(Command)]` goes on a struct, not an enum: declare one struct per command; `#[aggregate]` generates the enum of all commands",
            ));
            return None;
        }
        syn::Data::Union(u) => {
            errs.push(error_at(
                &u.union_token,
                "`#[derive(Command)]` goes on a struct with named fields, not a union",
            ));
            return None;
        }
    };
    let mut ids = Vec::new();
    for field in fields {
        for attr in field.attrs.iter().filter(|a| a.path().is_ident("id")) {
            if !matches!(attr.meta, syn::Meta::Path(_)) {
                errs.push(error_at(attr, "`#[id]` takes no arguments: write `#[id]`"));
            }
            ids.push((field, attr));
        }
    }
    match ids.as_slice() {
        [] => {
            errs.push(error_at(
                &item.ident,
                format!(
                    "`{}` has no `#[id]` field: mark the field that identifies the target aggregate instance with `#[id]`",
                    item.ident
                ),
            ));
            None
        }
        [(field, _)] => {
            let ident = field.ident.clone()?;
            Some((*field, syn::Member::Named(ident)))
        }
        [_, rest @ ..] => {
            for (_, attr) in rest {
                errs.push(error_at(
                    attr,
                    format!(
                        "`{}` has more than one `#[id]` field: a command targets exactly one aggregate instance, so keep `#[id]` on one field",
                        item.ident
                    ),
                ));
            }
            None
        }
    }
}

impl CommandAttrs {
    /// Reads `aggregate` and `crate` from `#[command(...)]`, skipping anything unreadable: the
    /// fallback uses it so that one mistake in the attribute gives one error.
    fn tolerant(attrs: &[syn::Attribute]) -> Self {
        use darling::FromMeta;
        use darling::ast::NestedMeta;
        let mut out = Self::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("command")) {
            let Ok(list) = attr.meta.require_list() else {
                continue;
            };
            let Ok(items) = NestedMeta::parse_meta_list(list.tokens.clone()) else {
                continue;
            };
            for item in &items {
                let NestedMeta::Meta(syn::Meta::NameValue(nv)) = item else {
                    continue;
                };
                if nv.path.is_ident("aggregate") {
                    out.aggregate = FromMeta::from_expr(&nv.value).ok();
                } else if nv.path.is_ident("crate") {
                    out.krate = FromMeta::from_expr(&nv.value).ok();
                }
            }
        }
        out
    }
}
