//! What the user wrote on a `#[derive(Event)]` struct, and its validation.

use darling::FromAttributes;
use darling::util::SpannedValue;

use crate::diag::{error_at, errors};

/// `#[event(...)]` on the struct.
#[derive(Clone, FromAttributes)]
#[darling(attributes(event))]
pub(super) struct EventAttrs {
    /// The wire name, stored with every event (required).
    pub name: Option<SpannedValue<String>>,
    /// The version of this shape under the name, from 1 (required).
    pub version: Option<SpannedValue<u32>>,
    /// The previous version of the same event (required from version 2 on).
    pub upcast_from: Option<syn::Type>,
    /// The last version of an event this one renames (on version 1 of the new name).
    pub renamed_from: Option<syn::Type>,
    /// An inline schema lock: the fingerprint this version's shape must keep.
    pub fingerprint: Option<SpannedValue<u64>>,
    /// The lock file to check against instead of the package's `events.lock`, relative to the
    /// source file.
    pub lock: Option<SpannedValue<String>>,
    /// A custom path to `cqrs_runtime`.
    #[darling(rename = "crate")]
    pub krate: Option<syn::Path>,
}

pub(super) struct EventInput<'a> {
    pub item: &'a syn::DeriveInput,
    pub attrs: darling::Result<EventAttrs>,
}

/// Where this version's stored events come from before it.
pub(super) enum Previous {
    /// Version 1 of a new name: nothing before it.
    None,
    /// `upcast_from = T`: version N-1 of the same name.
    Upcast(syn::Type),
    /// `renamed_from = T`: the last version of the old name.
    Renamed(syn::Type),
}

/// The validated event.
pub(super) struct EventModel<'a> {
    pub item: &'a syn::DeriveInput,
    pub name: String,
    pub version: u32,
    pub krate: Option<syn::Path>,
    pub fields: Vec<crate::shape::FieldShape<'a>>,
    pub previous: Previous,
    pub fingerprint: Option<u64>,
    pub lock: Option<String>,
    pub claims: Vec<super::claims::FieldClaim<'a>>,
}

impl<'a> EventInput<'a> {
    pub fn from_input(item: &'a syn::DeriveInput) -> Self {
        let attrs = if item.attrs.iter().any(|a| a.path().is_ident("event")) {
            EventAttrs::from_attributes(&item.attrs)
        } else {
            Err(error_at(
                &item.ident,
                format!(
                    "`{}` has no wire name: add `#[event(name = \"...\", version = 1)]`; the name is stored with every event, so choose it once and keep it",
                    item.ident
                ),
            ))
        };
        Self { item, attrs }
    }

    /// Checks every rule of an event at once.
    pub fn validate(&self) -> darling::Result<EventModel<'a>> {
        let mut errs = errors();
        let attrs = errs.handle(self.attrs.clone());
        let fields = errs.handle(check_shape(self.item));
        if let Some(fields) = &fields {
            errs.handle(crate::shape::check_not_recursive(&self.item.ident, fields));
        }
        let (name, version) = match &attrs {
            Some(attrs) => check_name_and_version(self.item, attrs, &mut errs),
            None => (None, None),
        };
        // Invariant: an event is concrete, so its wire name means one shape.
        if let Some(param) = self.item.generics.params.first() {
            errs.push(error_at(
                param,
                "an event cannot be generic: its wire name and version must describe one concrete shape",
            ));
        }
        if let Some(attrs) = &attrs {
            check_lock(attrs, &mut errs);
        }
        let claims = super::claims::parse(self.item, &mut errs);
        let previous = match (&attrs, version) {
            (Some(attrs), Some(version)) => errs.handle(check_previous(attrs, version)),
            _ => None,
        };
        errs.finish()?;
        let (Some(attrs), Some(fields), Some(name), Some(version), Some(previous)) =
            (attrs, fields, name, version, previous)
        else {
            return Err(darling::Error::custom(
                "internal: event validation lost an error",
            ));
        };
        Ok(EventModel {
            item: self.item,
            name,
            version,
            krate: attrs.krate,
            fields,
            previous,
            fingerprint: attrs.fingerprint.map(|f| *f),
            lock: attrs.lock.map(|l| (*l).clone()),
            claims,
        })
    }
}

/// Invariant: an event has a wire name (a non-empty word) and a version counting from 1.
fn check_name_and_version(
    item: &syn::DeriveInput,
    attrs: &EventAttrs,
    errs: &mut crate::diag::Errors,
) -> (Option<String>, Option<u32>) {
    let name = match &attrs.name {
        Some(name) if !crate::diag::is_stored_name(name) => {
            errs.push(error_at(
                &name.span(),
                format!(
                    "a wire name is stored with every event, so it is one word: non-empty, without whitespace or control characters, such as `\"{}\"`",
                    crate::diag::suggested_name(name).replace("account", "money_deposited")
                ),
            ));
            None
        }
        Some(name) => Some(name.as_str().to_owned()),
        None => {
            errs.push(error_at(
                &item.ident,
                format!("`{}` has no wire name: add `name = \"...\"` to `#[event(...)]`; it is stored with every event, so choose it once and keep it", item.ident),
            ));
            None
        }
    };
    let version = match &attrs.version {
        Some(version) if **version == 0 => {
            errs.push(error_at(
                &version.span(),
                "event versions start at 1: write `version = 1` for the first shape",
            ));
            None
        }
        Some(version) => Some(**version),
        None => {
            errs.push(error_at(
                &item.ident,
                format!("`{}` has no version: add `version = 1` to `#[event(...)]` (a new shape of the same event gets the next version)", item.ident),
            ));
            None
        }
    };
    (name, version)
}

/// Invariant: an event is locked in one place: `fingerprint = ...` or a lock file (`lock = "..."`,
/// a non-empty path), not both.
fn check_lock(attrs: &EventAttrs, errs: &mut crate::diag::Errors) {
    match (&attrs.fingerprint, &attrs.lock) {
        (Some(_), Some(lock)) => errs.push(error_at(
            &lock.span(),
            "`fingerprint = ...` already locks this version's shape: remove `lock = \"...\"` (or remove `fingerprint` to check against that lock file)",
        )),
        (None, Some(lock)) if lock.trim().is_empty() => errs.push(error_at(
            &lock.span(),
            "`lock = \"...\"` names a lock file, relative to this source file, such as `lock = \"events.lock\"`",
        )),
        _ => {}
    }
}

/// Invariant: an event is a struct with named fields (or a unit struct), so its JSON is an object.
fn check_shape(item: &syn::DeriveInput) -> darling::Result<Vec<crate::shape::FieldShape<'_>>> {
    match &item.data {
        syn::Data::Struct(s) => match &s.fields {
            syn::Fields::Named(_) | syn::Fields::Unit => crate::shape::fields(&s.fields),
            syn::Fields::Unnamed(fields) => Err(error_at(
                fields,
                format!(
                    "`#[derive(Event)]` needs named fields: a tuple struct's payload has no field names to evolve; write `struct {} {{ field: Type, ... }}`",
                    item.ident
                ),
            )),
        },
        syn::Data::Enum(e) => Err(error_at(
            &e.enum_token,
            "`#[derive(Event)]` goes on one struct per event; to group the events of a stream, use `#[derive(EventEnum)]` on this enum",
        )),
        syn::Data::Union(u) => Err(error_at(
            &u.union_token,
            "`#[derive(Event)]` goes on a struct with named fields, not a union",
        )),
    }
}

/// Invariant: version 1 of a name has no predecessor (unless it renames an older event);
/// every later version names the version before it with `upcast_from`.
fn check_previous(attrs: &EventAttrs, version: u32) -> darling::Result<Previous> {
    match (&attrs.upcast_from, &attrs.renamed_from) {
        (Some(_), Some(renamed)) => Err(error_at(
            renamed,
            "use either `upcast_from` (the previous version of this name) or `renamed_from` (the event this one renames), not both",
        )),
        (Some(prev), None) if version == 1 => Err(error_at(
            prev,
            "version 1 is the first shape of this name: it has nothing to upcast from; remove `upcast_from` (or use `renamed_from` if this event renames an older one)",
        )),
        (Some(prev), None) => Ok(Previous::Upcast(prev.clone())),
        (None, Some(old)) if version != 1 => Err(error_at(
            old,
            "`renamed_from` goes on version 1 of the new name; later versions of it use `upcast_from`",
        )),
        (None, Some(old)) => Ok(Previous::Renamed(old.clone())),
        (None, None) if version > 1 => Err(darling::Error::custom(format!(
            "version {version} needs `upcast_from = <the version-{} struct>`: stored events of earlier versions are decoded into that struct and stepped up to this one",
            version - 1
        ))
        .with_span(&attrs.version.as_ref().map_or_else(proc_macro2::Span::call_site, |v| v.span()))),
        (None, None) => Ok(Previous::None),
    }
}
