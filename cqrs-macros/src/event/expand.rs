//! Tokens for `#[derive(Event)]`: the `Event` impl, the typed upcaster chain, the chain checks
//! and the schema-lock check.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::lock;
use super::parse::{EventInput, EventModel, Previous};
use crate::{paths, shape};

pub(super) fn expand(model: &EventModel<'_>, source_file: Option<&std::path::Path>) -> TokenStream {
    let krate = model.krate.as_ref();
    let private = paths::private(krate);
    let ident = &model.item.ident;
    let (name, version) = (&model.name, model.version);
    let rust_type = ident.to_string();
    let fields = model.fields.iter().map(|f| {
        let (fname, fty) = (&f.name, schema_type(f));
        quote!((#fname, #fty))
    });
    let desc = shape::describe(
        "struct",
        &shape::serde_attrs(&model.item.attrs),
        &model.fields,
    );
    let fingerprint = shape::fingerprint(
        krate,
        &desc,
        &shape::field_fingerprints(krate, &model.fields),
    );
    let history = history_items(model, &private);
    let super::claims::Items {
        consts: claim_consts,
        members: claims,
    } = super::claims::items(krate, &model.claims);
    let mut checks = chain_checks(model);
    checks.extend(lock_check(model, source_file));
    paths::wrap_in_const(
        krate,
        quote! {
            impl #private::Event for #ident {
                const NAME: &'static str = #name;
                const VERSION: u32 = #version;
                const SCHEMA: #private::EventSchema = #private::EventSchema {
                    name: #name,
                    version: #version,
                    rust_type: #rust_type,
                    fields: &#private::fields([#(#fields),*]),
                    fingerprint: #fingerprint,
                };
                #history
                #claims
            }
            #claim_consts
            #checks
        },
    )
}

/// With a previous version: the name set, the chained decoders and the history; without, the
/// `decode_named` that tests the version only.
fn history_items(model: &EventModel<'_>, private: &proc_macro2::Ident) -> TokenStream {
    // A decoder of the `Event` trait, `(name, version, payload)`, whose body is `body`.
    let decoder = |method: &str, body: TokenStream| {
        let method = quote::format_ident!("{method}");
        quote! {
            #[inline]
            fn #method(
                __name: &str,
                __version: u32,
                __payload: &[u8],
            ) -> #private::Result<Self, #private::DecodeError> {
                #body
            }
        }
    };
    let prev = match &model.previous {
        Previous::None => {
            return decoder(
                "decode_named",
                quote!(<Self as #private::Event>::decode_own_version(__name, __version, __payload)),
            );
        }
        Previous::Upcast(prev) | Previous::Renamed(prev) => prev,
    };
    // The step call is spanned at `upcast_from = ...`, so a missing `From` is reported there.
    let at = paths::private_at(model.krate.as_ref(), prev.span());
    let step = quote_spanned!(prev.span()=>
        <Self as #at::Event>::decode_after::<#prev>(__name, __version, __payload, __named)
    );
    let chain = |named: bool| quote!(<Self as #private::Event>::decode_chain(__name, __version, __payload, #named));
    let stored = decoder("decode_stored", chain(false));
    let named = decoder("decode_named", chain(true));
    quote! {
        const NAMES: #private::NameSet = <#prev as #private::Event>::NAMES.with(Self::NAME);

        #stored
        #named

        #[inline]
        fn decode_chain(
            __name: &str,
            __version: u32,
            __payload: &[u8],
            __named: bool,
        ) -> #private::Result<Self, #private::DecodeError> {
            #step
        }

        fn history() -> #private::Vec<#private::EventSchema> {
            #private::history_after::<#prev>(Self::SCHEMA)
        }
    }
}

/// Invariant: a chain runs 1, 2, …, N within one name, one struct per version; a rename
/// starts a new name. Checked on the constants of the named struct, at `upcast_from = ...`.
fn chain_checks(model: &EventModel<'_>) -> TokenStream {
    let (name, version, ident) = (&model.name, model.version, &model.item.ident);
    let krate = model.krate.as_ref();
    let mut out = match &model.previous {
        Previous::None => return TokenStream::new(),
        Previous::Upcast(prev) | Previous::Renamed(prev) => {
            super::claims::kept_check(krate, ident, prev)
        }
    };
    out.extend(match &model.previous {
        Previous::None => TokenStream::new(),
        Previous::Upcast(prev) => {
            let at = paths::private_at(krate, prev.span());
            let p = crate::diag::type_to_string(prev);
            let other_name = format!(
                "`upcast_from = {p}` names another event: a step stays within the wire name `{name}`; to rename an event, put `renamed_from = {p}` on version 1 of the new name"
            );
            let duplicate = format!(
                "`{p}` is also version {version} of `{name}`: each (name, version) is one struct; make `{ident}` version {} or point `upcast_from` at version {}",
                version + 1,
                version - 1
            );
            let backwards = format!(
                "`upcast_from = {p}` points backwards: `{p}` is a later version of `{name}` than `{ident}` (version {version}); a step goes from version {} to version {version}",
                version - 1
            );
            let gap = format!(
                "`upcast_from = {p}` skips a version: `{ident}` is version {version} of `{name}`, so it upcasts from version {}; versions run 1, 2, …, N without gaps",
                version - 1
            );
            quote_spanned! {prev.span()=>
                const _: () = #at::check_step(
                    (<#prev as #at::Event>::NAME, <#prev as #at::Event>::VERSION),
                    #name, #version, #other_name, #duplicate, #backwards, #gap,
                );
            }
        }
        Previous::Renamed(old) => {
            let at = paths::private_at(krate, old.span());
            let o = crate::diag::type_to_string(old);
            let same = format!(
                "`renamed_from = {o}` names an event with the same wire name `{name}`: for a new version of one name use `upcast_from`"
            );
            quote_spanned! {old.span()=>
                const _: () = #at::check(!#at::str_eq(<#old as #at::Event>::NAME, #name), #same);
            }
        }
    });
    out
}

/// Invariant: a locked (name, version) keeps its shape. The lock is `fingerprint = ...` on
/// the struct, or a lock file (the package's `events.lock`, or `lock = "..."`); the fingerprint
/// is computed by the compiler (nested types included), so the comparison is a `const` check.
///
/// The expansion also makes rustc track what it read: `CQRS_BLESS` (through `option_env!`, so
/// that a build after a blessed one expands again, with the check) and the lock file (through
/// `include_bytes!`, so that a changed lock re-expands).
fn lock_check(model: &EventModel<'_>, source_file: Option<&std::path::Path>) -> TokenStream {
    let (name, version, ident) = (&model.name, model.version, &model.item.ident);
    let mut out = quote! {
        const _: ::core::option::Option<&str> = ::core::option_env!("CQRS_BLESS");
    };
    let (fingerprints, changes, source, record) = match model.fingerprint {
        Some(fp) => (
            vec![fp],
            None,
            "its `fingerprint = ...`".to_owned(),
            format!(
                "set `fingerprint = ...` to the new value (`<{ident} as Event>::SCHEMA.fingerprint`)"
            ),
        ),
        None => {
            let path = lock::path(model.lock.as_deref(), source_file);
            let fields: Vec<(String, String)> = model
                .fields
                .iter()
                .map(|f| (f.name.clone(), schema_type(f)))
                .collect();
            let found = lock::lookup(path, name, version, &ident.to_string(), &fields);
            if let Some(path) = found.path.as_ref().and_then(|p| p.to_str()) {
                out.extend(quote!(
                    const _: &[u8] = ::core::include_bytes!(#path);
                ));
            }
            let file = model.lock.as_deref().unwrap_or(cqrs_lock::FILE_NAME);
            let record = "record its shape with `CQRS_BLESS=1 cargo test`".to_owned();
            (
                found.fingerprints,
                found.field_changes,
                format!("`{file}`"),
                record,
            )
        }
    };
    // `CQRS_BLESS=1` records shapes (see `cqrs_runtime::schema::lock`): the build must get as far
    // as the bless test. Writing the lock changes the tracked file, and unsetting the variable
    // is a tracked change too, so the next plain build expands again, with the check.
    if fingerprints.is_empty() || std::env::var_os("CQRS_BLESS").is_some() {
        return out;
    }
    let what = match changes {
        Some(changes) => changes,
        None => "its fields read the same, so a `#[serde(...)]` attribute or the shape of a nested type (a field type deriving `Shape`) changed".to_owned(),
    };
    let at = paths::private_at(model.krate.as_ref(), ident.span());
    let message = format!(
        "the shape of `{name}` version {version} (`{ident}`) no longer matches {source}: {what}. Events stored as version {version} would not decode into it. A published version is frozen: restore its shape, and put the change in a new version (`upcast_from = {ident}` plus a step); if version {version} was never published, or this is another stream's event that reuses the wire name, {record}"
    );
    out.extend(quote_spanned! {ident.span()=>
        const _: () = #at::check_locked(<#ident as #at::Event>::SCHEMA.fingerprint, &[#(#fingerprints),*], #message);
    });
    out
}

/// A field's type as the schema and the lock write it: the opaque tag, or the type as written.
fn schema_type(field: &shape::FieldShape<'_>) -> String {
    field
        .opaque
        .clone()
        .unwrap_or_else(|| crate::diag::type_to_string(field.ty))
}

/// When the attribute is broken, still implement `Event` (with a placeholder name) so that enums
/// and handlers using the struct do not add errors of their own.
pub(super) fn fallback(input: &EventInput<'_>) -> TokenStream {
    if !matches!(input.item.data, syn::Data::Struct(_)) || !input.item.generics.params.is_empty() {
        return TokenStream::new();
    }
    let krate = input.attrs.as_ref().ok().and_then(|a| a.krate.as_ref());
    let private = paths::private(krate);
    let ident = &input.item.ident;
    paths::wrap_in_const(
        krate,
        quote! {
            impl #private::Event for #ident {
                const NAME: &'static str = ::core::stringify!(#ident);
                const VERSION: u32 = 1;
                const SCHEMA: #private::EventSchema = #private::EventSchema {
                    name: ::core::stringify!(#ident),
                    version: 1,
                    rust_type: ::core::stringify!(#ident),
                    fields: &[],
                    fingerprint: 0,
                };
            }
        },
    )
}
