//! What the user wrote: the `#[projection(...)]` arguments and the marked methods.

use darling::FromMeta;
use darling::ast::NestedMeta;
use darling::util::{PathList, SpannedValue};
use proc_macro2::TokenStream;

use crate::annotated_impl::{attribute_args, marked_methods};
use crate::diag::{Flag, error_at};

/// The sources: event enums or aggregates, `events = X`, `events = [A, B]` or `events(A, B)`.
#[derive(Clone, Default)]
pub(crate) struct Sources(pub Vec<syn::Path>);

impl FromMeta for Sources {
    fn from_expr(expr: &syn::Expr) -> darling::Result<Self> {
        let one = |e: &syn::Expr| match e {
            syn::Expr::Path(p) if p.qself.is_none() => Ok(p.path.clone()),
            other => Err(error_at(
                other,
                "a source is an event enum deriving `EventEnum` or an `#[aggregate]` type, named by its path, such as `events = AccountEvent` or `events = BankAccount`",
            )),
        };
        match expr {
            syn::Expr::Array(array) => {
                let mut errs = darling::Error::accumulator();
                let paths = array
                    .elems
                    .iter()
                    .filter_map(|e| errs.handle(one(e)))
                    .collect();
                errs.finish_with(Self(paths))
            }
            other => Ok(Self(vec![one(other)?])),
        }
    }

    fn from_list(items: &[NestedMeta]) -> darling::Result<Self> {
        Ok(Self(PathList::from_list(items)?.to_vec()))
    }
}

/// `#[projection(name = "...", events = ..., version = N, ignore(...), non_exhaustive,
/// transaction = T, reset = path, crate = path)]`.
#[derive(Clone, Default, FromMeta)]
pub(super) struct ProjectionArgs {
    /// The stable identity (required): checkpoint and lease key.
    pub name: Option<SpannedValue<String>>,
    /// The sources: event enums or aggregates (required).
    pub events: Option<Sources>,
    /// The projection's version (default 1).
    pub version: Option<SpannedValue<u32>>,
    /// Events of the sources that the projection deliberately does not handle.
    pub ignore: Option<PathList>,
    /// Opt out of exhaustiveness: unhandled events are skipped without a decision.
    pub non_exhaustive: Flag,
    /// The store's transaction type handlers write through (default `()`).
    pub transaction: Option<syn::Type>,
    /// The reset hook of a rebuild (default: `Default::default()`).
    pub reset: Option<syn::Path>,
    /// A custom path to `cqrs_runtime`.
    #[darling(rename = "crate")]
    pub krate: Option<syn::Path>,
}

/// Which marker a method carries.
pub(super) enum Role {
    On(darling::Result<()>),
    Query(darling::Result<()>),
}

/// A method with one of our markers.
pub(super) struct MarkedMethod<'a> {
    pub method: &'a syn::ImplItemFn,
    pub role: Role,
}

/// Everything the macro received.
pub(super) struct ProjectionInput<'a> {
    pub item: &'a syn::Item,
    pub args: darling::Result<ProjectionArgs>,
    /// What could be read of the arguments even when `args` is an error.
    pub readable: ProjectionArgs,
    pub block: Option<&'a syn::ItemImpl>,
    pub methods: Vec<MarkedMethod<'a>>,
    /// Methods that carry two markers.
    pub conflicts: Vec<darling::Error>,
}

impl<'a> ProjectionInput<'a> {
    pub fn parse(args: TokenStream, item: &'a syn::Item) -> Self {
        let (args, readable) = attribute_args(args, ProjectionArgs::tolerant);
        let marked = marked_methods(item, is_marker, |method, marker| {
            format!(
                "`{}` already has `#[{}]`: a method is either one `#[on]` handler or one `#[query]` method",
                method.sig.ident,
                if marker.path().is_ident("on") {
                    "on"
                } else {
                    "query"
                }
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

impl ProjectionArgs {
    /// Reads every key it can and skips the rest, for the fallback after a failed strict parse.
    fn tolerant(list: &[NestedMeta]) -> Self {
        let mut out = Self::default();
        for item in list {
            match item {
                NestedMeta::Meta(syn::Meta::NameValue(nv)) => {
                    let Some(key) = nv.path.get_ident().map(ToString::to_string) else {
                        continue;
                    };
                    let value = &nv.value;
                    match key.as_str() {
                        "name" => out.name = FromMeta::from_expr(value).ok(),
                        "events" => out.events = FromMeta::from_expr(value).ok(),
                        "version" => out.version = FromMeta::from_expr(value).ok(),
                        "transaction" => out.transaction = FromMeta::from_expr(value).ok(),
                        "crate" => out.krate = FromMeta::from_expr(value).ok(),
                        _ => {}
                    }
                }
                NestedMeta::Meta(meta @ syn::Meta::List(list)) if list.path.is_ident("events") => {
                    out.events = FromMeta::from_meta(meta).ok();
                }
                _ => {}
            }
        }
        out
    }
}

/// Whether `attr` is one of the markers this macro consumes.
pub(super) fn is_marker(attr: &syn::Attribute) -> bool {
    attr.path().is_ident("on") || attr.path().is_ident("query")
}

fn role_of(attr: &syn::Attribute) -> Role {
    let bare = |what: &str| match &attr.meta {
        syn::Meta::Path(_) => Ok(()),
        meta => Err(error_at(
            meta,
            format!("`#[{what}]` takes no arguments: write `#[{what}]`"),
        )),
    };
    if attr.path().is_ident("on") {
        Role::On(bare("on"))
    } else {
        Role::Query(bare("query"))
    }
}
