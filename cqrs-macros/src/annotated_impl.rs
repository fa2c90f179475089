//! Parsing the item under `#[aggregate]` and `#[projection]` without parsing method bodies.
//!
//! Both attributes read only the signatures and attributes of the methods of an `impl` block;
//! the bodies go back to the compiler untouched. A full `syn` parse of every body (and printing
//! it back) was most of what `#[aggregate]` cost per expansion, and expansion runs on every
//! build, incremental ones included. So [`parse_item`] keeps each method body as the verbatim
//! tokens it arrived as (an `Item::Verbatim` statement in the method's block, which prints
//! back exactly those tokens) and lets `syn` parse everything else.

use darling::FromMeta;
use darling::ast::NestedMeta;
use proc_macro2::{Delimiter, Group, TokenStream, TokenTree};
use syn::parse::discouraged::Speculative;
use syn::parse::{ParseStream, Parser};

/// The annotated item. An `impl` block has its method bodies kept as verbatim tokens; any
/// other item (or an `impl` block this fast path does not recognize) is parsed in full.
pub(crate) fn parse_item(tokens: TokenStream) -> syn::Result<syn::Item> {
    if let Some(block) = lite_impl(&tokens) {
        return Ok(syn::Item::Impl(block));
    }
    syn::parse2::<syn::Item>(tokens)
}

/// An attribute's arguments: the strict parse (its errors are reported), and the arguments to
/// validate the rest of the item with: the strict ones, or what `tolerant` reads when the
/// strict parse failed (so one bad key is not followed by errors that only it caused).
pub(crate) fn attribute_args<A: FromMeta + Clone + Default>(
    args: TokenStream,
    tolerant: fn(&[NestedMeta]) -> A,
) -> (darling::Result<A>, A) {
    let list = NestedMeta::parse_meta_list(args).map_err(darling::Error::from);
    let strict = list
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|list| A::from_list(list));
    let readable = match (&strict, &list) {
        (Ok(args), _) => args.clone(),
        (Err(_), Ok(list)) => tolerant(list),
        (Err(_), Err(_)) => A::default(),
    };
    (strict, readable)
}

/// The methods of an attribute's `impl` block and what the attribute reads of them.
pub(crate) struct Marked<'a> {
    /// The block (`None`: the attribute is on another kind of item).
    pub block: Option<&'a syn::ItemImpl>,
    /// Each method that carries a marker, with its first marker.
    pub methods: Vec<(&'a syn::ImplItemFn, &'a syn::Attribute)>,
    /// A second marker on one method, at the second marker.
    pub conflicts: Vec<darling::Error>,
}

/// The methods of `item` (an `impl` block) that carry a marker (`is_marker`); a method with
/// more than one gets the error `conflict(method, first marker)` at each extra one.
pub(crate) fn marked_methods<'a>(
    item: &'a syn::Item,
    is_marker: fn(&syn::Attribute) -> bool,
    conflict: impl Fn(&syn::ImplItemFn, &syn::Attribute) -> String,
) -> Marked<'a> {
    let block = match item {
        syn::Item::Impl(block) => Some(block),
        _ => None,
    };
    let mut methods = Vec::new();
    let mut conflicts = Vec::new();
    for member in block.iter().flat_map(|b| &b.items) {
        let syn::ImplItem::Fn(method) = member else {
            continue;
        };
        let mut markers = method.attrs.iter().filter(|a| is_marker(a));
        let Some(marker) = markers.next() else {
            continue;
        };
        for extra in markers {
            conflicts.push(crate::diag::error_at(extra, conflict(method, marker)));
        }
        methods.push((method, marker));
    }
    Marked {
        block,
        methods,
        conflicts,
    }
}

/// `attrs impl<..> Type where .. { items }`: the header parsed by `syn` with an empty body, then
/// the items parsed one by one, methods without their bodies. `None` if anything is unexpected
/// (the full parse then reports it).
fn lite_impl(tokens: &TokenStream) -> Option<syn::ItemImpl> {
    let mut trees: Vec<TokenTree> = tokens.clone().into_iter().collect();
    let body = match trees.pop()? {
        TokenTree::Group(g) if g.delimiter() == Delimiter::Brace => g,
        _ => return None,
    };
    let mut header: TokenStream = trees.into_iter().collect();
    header.extend([TokenTree::Group(Group::new(
        Delimiter::Brace,
        TokenStream::new(),
    ))]);
    let mut block = syn::parse2::<syn::ItemImpl>(header).ok()?;
    let (inner_attrs, items) = impl_items.parse2(body.stream()).ok()?;
    block.attrs.extend(inner_attrs);
    block.brace_token = syn::token::Brace(body.delim_span());
    block.items = items;
    Some(block)
}

fn impl_items(input: ParseStream<'_>) -> syn::Result<(Vec<syn::Attribute>, Vec<syn::ImplItem>)> {
    let inner_attrs = input.call(syn::Attribute::parse_inner)?;
    let mut items = Vec::new();
    while !input.is_empty() {
        let fork = input.fork();
        match method_without_body(&fork) {
            Ok(method) => {
                input.advance_to(&fork);
                items.push(syn::ImplItem::Fn(method));
            }
            Err(_) => items.push(input.parse()?),
        }
    }
    Ok((inner_attrs, items))
}

/// A method whose body stays unparsed: `attrs vis default? signature { ... }`.
fn method_without_body(input: ParseStream<'_>) -> syn::Result<syn::ImplItemFn> {
    let attrs = input.call(syn::Attribute::parse_outer)?;
    let vis: syn::Visibility = input.parse()?;
    let defaultness: Option<syn::Token![default]> = input.parse()?;
    let sig: syn::Signature = input.parse()?;
    let body: Group = input.parse()?;
    if body.delimiter() != Delimiter::Brace {
        return Err(syn::Error::new(body.span(), "expected a method body"));
    }
    let mut modifiers = syn::FnModifiers::default();
    modifiers.defaultness = defaultness;
    Ok(syn::ImplItemFn {
        attrs,
        vis,
        modifiers,
        sig,
        block: syn::Block {
            brace_token: syn::token::Brace(body.delim_span()),
            stmts: vec![syn::Stmt::Item(syn::Item::Verbatim(body.stream()))],
        },
    })
}

#[cfg(test)]
mod tests {
    use quote::{ToTokens, quote};

    use super::parse_item;

    fn same_as_syn(tokens: proc_macro2::TokenStream) {
        let lite = parse_item(tokens.clone()).expect("lite parse");
        let full = syn::parse2::<syn::Item>(tokens).expect("full parse");
        assert_eq!(
            lite.to_token_stream().to_string(),
            full.to_token_stream().to_string()
        );
        let (syn::Item::Impl(lite), syn::Item::Impl(full)) = (&lite, &full) else {
            panic!("not an impl block");
        };
        assert_eq!(lite.items.len(), full.items.len());
        for (l, f) in lite.items.iter().zip(&full.items) {
            if let (syn::ImplItem::Fn(l), syn::ImplItem::Fn(f)) = (l, f) {
                assert_eq!(l.sig, f.sig);
                assert_eq!(l.attrs, f.attrs);
            }
        }
    }

    #[test]
    fn prints_back_what_a_full_parse_prints() {
        same_as_syn(quote! {
            #[doc = "outer"]
            impl<T: Clone> Thing<T> where T: Send {
                #![allow(unused)]
                const N: usize = 3;
                type Alias = u8;
                #[command(create)]
                pub async fn open(&self, cmd: Open, svc: &Svc) -> Result<Opened, Error> {
                    let x = { 1 + 2 };
                    if x > N { return Err(Error); }
                    Ok(Opened { at: svc.now().await })
                }
                #[apply]
                fn opened(&mut self, e: &Opened) { self.open = true; }
                fn generic<const M: usize>(&self) -> [u8; { M }] where [u8; M]: Sized { [0; M] }
                some_macro!(inside);
            }
        });
    }

    #[test]
    fn other_items_fall_back_to_a_full_parse() {
        let item = parse_item(quote!(
            struct S;
        ))
        .expect("parse");
        assert!(matches!(item, syn::Item::Struct(_)));
        let item = parse_item(quote!(
            impl Trait for S {
                fn f(&self) {}
            }
        ))
        .expect("parse");
        assert!(matches!(item, syn::Item::Impl(ref b) if b.trait_.is_some()));
    }
}
