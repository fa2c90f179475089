//! Error plumbing shared by every macro: one accumulator, errors at the user's tokens, and
//! fallback output so that one mistake gives one error.

use proc_macro2::TokenStream;

/// Errors collected across all checks of one macro invocation.
pub(crate) type Errors = darling::error::Accumulator;

/// A new error accumulator.
pub(crate) fn errors() -> Errors {
    darling::Error::accumulator()
}

/// An error at `node` with `message`.
pub(crate) fn error_at<T: syn::spanned::Spanned>(
    node: &T,
    message: impl std::fmt::Display,
) -> darling::Error {
    darling::Error::custom(message).with_span(node)
}

/// The compile errors, followed by the fallback items that keep the rest of the crate quiet.
pub(crate) fn with_fallback(error: darling::Error, fallback: TokenStream) -> TokenStream {
    let mut out = error.write_errors();
    out.extend(fallback);
    out
}

/// A bare word such as `non_exhaustive` or `create`: darling's `Flag`, without its panic.
///
/// `darling::util::Flag` (0.24.1) panics on `word()` (an empty list: it unwraps the error of
/// `()`'s parse, which accepts an empty list); no input may panic a macro, so the macros use
/// this one, which refuses every form but the bare word with a spanned error.
#[derive(Clone, Copy, Default)]
pub(crate) struct Flag(Option<proc_macro2::Span>);

impl Flag {
    /// Whether the word was written.
    pub(crate) fn is_present(&self) -> bool {
        self.0.is_some()
    }

    /// Where the word was written (the call site if it was not).
    pub(crate) fn span(&self) -> proc_macro2::Span {
        self.0.unwrap_or_else(proc_macro2::Span::call_site)
    }
}

impl darling::FromMeta for Flag {
    fn from_none() -> Option<Self> {
        Some(Self(None))
    }

    fn from_meta(meta: &syn::Meta) -> darling::Result<Self> {
        use syn::spanned::Spanned;
        match meta {
            syn::Meta::Path(path) => Ok(Self(Some(path.span()))),
            other => {
                let word = quote::ToTokens::to_token_stream(other.path()).to_string();
                Err(error_at(
                    other,
                    format!("`{word}` is a bare word: write `{word}`, without `(...)` or `= ...`"),
                ))
            }
        }
    }
}

/// Whether `name` may be stored as a wire name or stream type: non-empty, without whitespace
/// or control characters (it is written to every stored event and compared byte for byte).
pub(crate) fn is_stored_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// `name` made valid for [`is_stored_name`], for a suggestion: runs of whitespace become `_`.
pub(crate) fn suggested_name(name: &str) -> String {
    let words: Vec<&str> = name.split_whitespace().collect();
    let joined = words.join("_");
    let cleaned: String = joined.chars().filter(|c| !c.is_control()).collect();
    if cleaned.is_empty() {
        "account".to_owned()
    } else {
        cleaned
    }
}

/// The items whose type (as written) repeats an earlier item's, each with that earlier item
/// and the type as text: what the "one handler per event / one variant per type" checks report.
/// Each type is printed once and looked up in a map, so the check is linear in the items.
pub(crate) fn repeated_types<T>(
    items: &[T],
    ty: impl Fn(&T) -> &syn::Type,
) -> Vec<(&T, &T, String)> {
    repeated_types_under_cfg(items, ty, |_| &[])
}

/// [`repeated_types`] among items compiled under the same `#[cfg(...)]` attributes: two
/// handlers for one type under `cfg(a)` and `cfg(not(a))` are alternatives, not a repeat.
pub(crate) fn repeated_types_under_cfg<'a, T>(
    items: &'a [T],
    ty: impl Fn(&T) -> &syn::Type,
    cfgs: impl Fn(&T) -> &[&'a syn::Attribute],
) -> Vec<(&'a T, &'a T, String)> {
    let mut first = std::collections::HashMap::with_capacity(items.len());
    let mut repeated = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let text = type_to_string(ty(item));
        let cfg: Vec<String> = cfgs(item)
            .iter()
            .map(|a| quote::ToTokens::to_token_stream(a).to_string())
            .collect();
        match first.get(&(text.clone(), cfg.clone())) {
            Some(&earlier) => repeated.push((item, &items[earlier], text)),
            None => {
                first.insert((text, cfg), i);
            }
        }
    }
    repeated
}

/// The `#[cfg(...)]` attributes of an item: generated code for a handler carries them, so that
/// a handler compiled out leaves nothing behind.
pub(crate) fn cfg_attrs(attrs: &[syn::Attribute]) -> Vec<&syn::Attribute> {
    attrs.iter().filter(|a| a.path().is_ident("cfg")).collect()
}

/// Renders a type the way a user writes it (`Vec<u8>`, not `Vec < u8 >`), for messages and schemas.
pub(crate) fn type_to_string(ty: &syn::Type) -> String {
    let raw = quote::quote!(#ty).to_string();
    let mut out = String::with_capacity(raw.len());
    let chars: Vec<char> = raw.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let prev = if i == 0 { ' ' } else { chars[i - 1] };
            let next = chars.get(i + 1).copied().unwrap_or(' ');
            let glue = matches!(prev, '<' | '&' | '(' | '[' | ':')
                || matches!(next, '<' | '>' | ',' | ')' | ']' | ':' | ';')
                || (prev == '>' && next == '>');
            if glue && !(prev == ';' || prev == ',') {
                continue;
            }
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::type_to_string;

    #[test]
    fn types_render_like_source() {
        let cases: [(syn::Type, &str); 5] = [
            (syn::parse_quote!(Vec<u8>), "Vec<u8>"),
            (
                syn::parse_quote!(std::collections::BTreeMap<String, Vec<u64>>),
                "std::collections::BTreeMap<String, Vec<u64>>",
            ),
            (syn::parse_quote!(&'static str), "&'static str"),
            (syn::parse_quote!([u8; 4]), "[u8; 4]"),
            (
                syn::parse_quote!(Option<(u32, String)>),
                "Option<(u32, String)>",
            ),
        ];
        for (ty, want) in cases {
            assert_eq!(type_to_string(&ty), want);
        }
    }
}
