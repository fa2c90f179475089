//! What the user wrote on a `#[derive(EventEnum)]` enum, and its validation.

use darling::FromAttributes;

use crate::diag::{error_at, errors, repeated_types};

/// `#[event_enum(...)]` on the enum.
#[derive(Clone, Default, FromAttributes)]
#[darling(attributes(event_enum))]
pub(super) struct EnumAttrs {
    /// Event structs that are no longer variants: each stored one splits into current events.
    #[darling(default)]
    pub split: darling::util::PathList,
    /// Wire names of removed event types: their stored events decode to nothing.
    #[darling(default)]
    pub retired: Retired,
    /// A custom path to `cqrs_runtime`.
    #[darling(rename = "crate")]
    pub krate: Option<syn::Path>,
}

/// `retired("name", ...)`: string literals.
#[derive(Clone, Default)]
pub(super) struct Retired(pub Vec<syn::LitStr>);

impl darling::FromMeta for Retired {
    fn from_list(items: &[darling::ast::NestedMeta]) -> darling::Result<Self> {
        let mut errs = errors();
        let mut names = Vec::new();
        for item in items {
            match item {
                darling::ast::NestedMeta::Lit(syn::Lit::Str(name)) if !name.value().trim().is_empty() => {
                    names.push(name.clone())
                }
                other => errs.push(error_at(
                    other,
                    "`retired(...)` lists the wire names of removed events as strings: `retired(\"account_frozen\")`",
                )),
            }
        }
        errs.finish_with(Retired(names))
    }
}

pub(super) struct EnumInput<'a> {
    pub item: &'a syn::DeriveInput,
    pub attrs: darling::Result<EnumAttrs>,
}

/// One variant: `Name(EventStruct)`.
pub(super) struct VariantModel<'a> {
    pub ident: &'a syn::Ident,
    pub ty: &'a syn::Type,
}

/// The validated enum.
pub(super) struct EnumModel<'a> {
    pub item: &'a syn::DeriveInput,
    pub krate: Option<syn::Path>,
    pub split: Vec<syn::Path>,
    pub retired: Vec<syn::LitStr>,
    pub variants: Vec<VariantModel<'a>>,
}

impl<'a> EnumInput<'a> {
    pub fn from_input(item: &'a syn::DeriveInput) -> Self {
        Self {
            item,
            attrs: EnumAttrs::from_attributes(&item.attrs),
        }
    }

    /// Checks every rule of an event enum at once.
    pub fn validate(&self) -> darling::Result<EnumModel<'a>> {
        let mut errs = errors();
        let attrs = errs.handle(self.attrs.clone());
        let variants = errs.handle(variants(self.item));
        if let Some(variants) = &variants {
            errs.handle(check_distinct_types(variants));
        }
        // Invariant: an event enum is concrete (its wire names are fixed).
        if let Some(param) = self.item.generics.params.first() {
            errs.push(error_at(
                param,
                "an event enum cannot be generic: list the concrete event structs of the stream",
            ));
        }
        errs.finish()?;
        match (attrs, variants) {
            (Some(attrs), Some(variants)) => Ok(EnumModel {
                item: self.item,
                krate: attrs.krate,
                split: attrs.split.to_vec(),
                retired: attrs.retired.0,
                variants,
            }),
            _ => Err(darling::Error::custom(
                "internal: event enum validation lost an error",
            )),
        }
    }
}

/// Invariant: an event enum is a non-empty enum whose every variant holds exactly one event struct.
fn variants(item: &syn::DeriveInput) -> darling::Result<Vec<VariantModel<'_>>> {
    let data = match &item.data {
        syn::Data::Enum(data) => data,
        syn::Data::Struct(s) => {
            return Err(error_at(
                &s.struct_token,
                "`#[derive(EventEnum)]` goes on an enum with one variant per event, such as `enum AccountEvent { Opened(AccountOpened), ... }`; for a single event struct use `#[derive(Event)]`",
            ));
        }
        syn::Data::Union(u) => {
            return Err(error_at(
                &u.union_token,
                "`#[derive(EventEnum)]` goes on an enum, not a union",
            ));
        }
    };
    if data.variants.is_empty() {
        return Err(error_at(
            &item.ident,
            "an event enum needs at least one variant: add `Name(EventStruct)` for each event of the stream",
        ));
    }
    let mut errs = errors();
    let mut out = Vec::new();
    for variant in &data.variants {
        match &variant.fields {
            syn::Fields::Unnamed(f) if f.unnamed.len() == 1 => {
                if let Some(field) = f.unnamed.first() {
                    out.push(VariantModel { ident: &variant.ident, ty: &field.ty });
                }
            }
            _ => errs.push(error_at(
                variant,
                format!(
                    "each variant of an event enum holds exactly one event struct: write `{}(SomeEvent)`, where `SomeEvent` derives `Event`",
                    variant.ident
                ),
            )),
        }
    }
    errs.finish_with(out)
}

/// The well-formed variants of an enum that failed validation (one unnamed field, each type
/// once), for the fallback expansion.
pub(super) fn readable_variants(item: &syn::DeriveInput) -> Vec<VariantModel<'_>> {
    let syn::Data::Enum(data) = &item.data else {
        return Vec::new();
    };
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for variant in &data.variants {
        let syn::Fields::Unnamed(f) = &variant.fields else {
            continue;
        };
        let (Some(field), 1) = (f.unnamed.first(), f.unnamed.len()) else {
            continue;
        };
        let key = crate::diag::type_to_string(&field.ty);
        if !seen.contains(&key) {
            seen.push(key);
            out.push(VariantModel {
                ident: &variant.ident,
                ty: &field.ty,
            });
        }
    }
    out
}

/// Invariant: each event struct belongs to one variant (decoding and `From` must be unambiguous).
fn check_distinct_types(variants: &[VariantModel<'_>]) -> darling::Result<()> {
    let mut errs = errors();
    for (v, first, ty) in repeated_types(variants, |x| x.ty) {
        errs.push(error_at(
            v.ty,
            format!(
                "`{ty}` is already held by the variant `{}`: each event struct belongs to exactly one variant",
                first.ident
            ),
        ));
    }
    errs.finish()
}
