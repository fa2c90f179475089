//! Serialized-shape fingerprints, shared by `#[derive(Event)]` and `#[derive(Shape)]`.
//!
//! The fingerprint of a struct or enum combines, in order: the `#[serde(...)]` attributes of
//! the container, and for each field its name, its `#[serde(...)]` attributes and the
//! fingerprint of its type (`<T as Shape>::FINGERPRINT`, resolved by the compiler, so nested
//! types count), or the tag of `#[shape(opaque = "...")]` for a foreign type.

use darling::FromAttributes;
use proc_macro2::TokenStream;
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::diag::{error_at, errors};
use crate::paths;

/// `#[shape(...)]` on a field.
#[derive(Default, FromAttributes)]
#[darling(attributes(shape))]
struct FieldShapeAttrs {
    /// Use this tag instead of the type's own fingerprint (for foreign types).
    opaque: Option<String>,
}

/// One field as the fingerprint sees it.
pub(crate) struct FieldShape<'a> {
    pub name: String,
    pub ty: &'a syn::Type,
    pub serde: String,
    pub opaque: Option<String>,
}

/// The `#[serde(...)]` attributes, as normalized text.
pub(crate) fn serde_attrs(attrs: &[syn::Attribute]) -> String {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("serde"))
        .map(|a| a.meta.to_token_stream().to_string())
        .collect::<Vec<_>>()
        .join(";")
}

/// Reads the fields of a struct or variant.
pub(crate) fn fields(fields: &syn::Fields) -> darling::Result<Vec<FieldShape<'_>>> {
    let mut errs = errors();
    let mut out = Vec::new();
    for (i, field) in fields.iter().enumerate() {
        let attrs = errs.handle(FieldShapeAttrs::from_attributes(&field.attrs));
        if let Some(tag) = attrs.as_ref().and_then(|a| a.opaque.as_ref())
            && tag.trim().is_empty()
        {
            errs.push(error_at(
                field,
                "`#[shape(opaque = \"...\")]` needs a non-empty tag naming the field's format, such as \"rust_decimal-v1\"",
            ));
        }
        out.push(FieldShape {
            name: field
                .ident
                .as_ref()
                .map_or_else(|| i.to_string(), ToString::to_string),
            ty: &field.ty,
            serde: serde_attrs(&field.attrs),
            opaque: attrs.and_then(|a| a.opaque),
        });
    }
    errs.finish_with(out)
}

/// Invariant: a type's fingerprint does not depend on itself. A field whose type names the
/// type being derived (or `Self`), such as `next: Option<Box<Node>>`, would make the fingerprint
/// a constant defined by itself; such a field is refused at its type, unless it is opaque.
/// (Recursion through another type is beyond what a derive can see; rustc reports that cycle.)
pub(crate) fn check_not_recursive(
    ident: &syn::Ident,
    fields: &[FieldShape<'_>],
) -> darling::Result<()> {
    let mut errs = errors();
    for field in fields.iter().filter(|f| f.opaque.is_none()) {
        if mentions(field.ty, ident) {
            errs.push(error_at(
                field.ty,
                format!(
                    "`{ident}` contains itself through `{}`: a shape fingerprint cannot describe a recursive type; mark the field `#[shape(opaque = \"...\")]` with a tag naming its format (and change the tag when that format changes)",
                    field.name
                ),
            ));
        }
    }
    errs.finish()
}

/// Whether `ty` names `ident` (or `Self`) anywhere, generic arguments included.
fn mentions(ty: &syn::Type, ident: &syn::Ident) -> bool {
    fn walk(tokens: TokenStream, ident: &syn::Ident) -> bool {
        tokens.into_iter().any(|tree| match tree {
            proc_macro2::TokenTree::Ident(i) => i == *ident || i == "Self",
            proc_macro2::TokenTree::Group(g) => walk(g.stream(), ident),
            _ => false,
        })
    }
    walk(ty.to_token_stream(), ident)
}

/// The static part of a fingerprint: names and attributes, in order.
pub(crate) fn describe(kind: &str, container_serde: &str, fields: &[FieldShape<'_>]) -> String {
    let mut desc = format!("{kind}[{container_serde}]");
    for f in fields {
        desc.push_str(&format!("|{}[{}]", f.name, f.serde));
        if let Some(tag) = &f.opaque {
            desc.push_str(&format!("=opaque:{tag}"));
        }
    }
    desc
}

/// The fingerprints of the field types, each spanned at its type (so a type without `Shape`
/// is reported on the field).
pub(crate) fn field_fingerprints(
    krate: Option<&syn::Path>,
    fields: &[FieldShape<'_>],
) -> Vec<TokenStream> {
    fields
        .iter()
        .filter(|f| f.opaque.is_none())
        .map(|f| {
            let ty = f.ty;
            let at = paths::private_at(krate, ty.span());
            quote_spanned!(ty.span()=> <#ty as #at::Shape>::FINGERPRINT)
        })
        .collect()
}

/// A `const` expression for the fingerprint of `desc` plus `parts`.
pub(crate) fn fingerprint(
    krate: Option<&syn::Path>,
    desc: &str,
    parts: &[TokenStream],
) -> TokenStream {
    let private = paths::private(krate);
    // The static description is hashed here, once, rather than by the compiler's `const`
    // evaluator in every build; `combine_seeded` folds in the parts exactly as `combine` would.
    let seed = cqrs_lock::fnv1a(cqrs_lock::FNV_OFFSET, desc.as_bytes());
    quote!(#private::combine_seeded(#seed, &[#(#parts),*]))
}
