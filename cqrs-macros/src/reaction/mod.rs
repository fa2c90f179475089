//! `#[reactor(...)]` and `#[process_manager(...)]` on an `impl` block: `#[on]` handlers and
//! `ignore(...)` deciding about every event of the source enums, `#[deadline]` handlers of a
//! process manager, the `Reactor` / `ProcessManager` impl.

mod expand;
mod model;
mod parse;

use proc_macro2::TokenStream;

/// Which of the two attributes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Reactor,
    ProcessManager,
}

impl Kind {
    /// The attribute as the user writes it.
    fn attribute(self) -> &'static str {
        match self {
            Self::Reactor => "#[reactor(...)]",
            Self::ProcessManager => "#[process_manager(...)]",
        }
    }

    /// What the user calls it.
    fn noun(self) -> &'static str {
        match self {
            Self::Reactor => "reactor",
            Self::ProcessManager => "process manager",
        }
    }

    /// The runtime trait it implements.
    fn trait_name(self) -> &'static str {
        match self {
            Self::Reactor => "Reactor",
            Self::ProcessManager => "ProcessManager",
        }
    }

    /// The handlers' context type.
    fn context(self) -> &'static str {
        match self {
            Self::Reactor => "ReactionContext",
            Self::ProcessManager => "ProcessContext",
        }
    }
}

/// Parse the arguments and the impl block, validate, expand. On error, the errors plus the
/// user's impl block (with our markers removed) and a permissive fallback impl.
pub(crate) fn expand(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let item = match crate::annotated_impl::parse_item(item) {
        Ok(item) => item,
        Err(error) => return error.to_compile_error(),
    };
    let input = parse::ReactionInput::parse(kind, args, &item);
    match model::ReactionModel::validate(&input) {
        Ok(model) => expand::expand(&model),
        Err(error) => crate::diag::with_fallback(error, expand::fallback(&input)),
    }
}

/// The validation errors for an input, as text (for the crate's unit tests).
#[cfg(test)]
pub(crate) fn validation_errors(kind: Kind, args: TokenStream, item: &syn::Item) -> Vec<String> {
    let input = parse::ReactionInput::parse(kind, args, item);
    match model::ReactionModel::validate(&input) {
        Ok(_) => Vec::new(),
        Err(e) => e.flatten().into_iter().map(|e| e.to_string()).collect(),
    }
}
