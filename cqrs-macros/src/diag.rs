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

/// The items whose type (as written) repeats an earlier item's, each with that earlier item
/// and the type as text: what the "one handler per event / one variant per type" checks report.
/// Each type is printed once and looked up in a map, so the check is linear in the items.
pub(crate) fn repeated_types<T>(
    items: &[T],
    ty: impl Fn(&T) -> &syn::Type,
) -> Vec<(&T, &T, String)> {
    let mut first = std::collections::HashMap::with_capacity(items.len());
    let mut repeated = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let key = type_to_string(ty(item));
        match first.get(&key) {
            Some(&earlier) => repeated.push((item, &items[earlier], key)),
            None => {
                first.insert(key, i);
            }
        }
    }
    repeated
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
