//! Unit tests of the validation stages: feed syntax, count and read the errors. They prove that
//! every mistake is reported at once (not one per compile) and that bad input never panics.

use proc_macro2::TokenStream;
use quote::quote;

fn aggregate_errors(args: TokenStream, item: TokenStream) -> Vec<String> {
    let item: syn::Item = syn::parse2(item).expect("test input parses");
    crate::aggregate::validation_errors(args, &item)
}

fn derive_errors(expand: fn(&syn::DeriveInput) -> TokenStream, item: TokenStream) -> Vec<String> {
    let input: syn::DeriveInput = syn::parse2(item).expect("test input parses");
    let out = expand(&input).to_string();
    out.match_indices("compile_error")
        .map(|(i, _)| out[i..].split(')').next().unwrap_or_default().to_owned())
        .collect()
}

fn args() -> TokenStream {
    quote!(
        name = "thing",
        id = String,
        events = ThingEvent,
        error = Rejected
    )
}

#[test]
fn a_valid_aggregate_has_no_errors() {
    let errors = aggregate_errors(
        args(),
        quote! {
            impl Thing {
                #[command(create)]
                fn open(&self, cmd: Open) -> Result<Opened, Rejected> { todo!() }
                #[command]
                fn rename(&self, cmd: Rename) -> Result<Vec<ThingEvent>, Rejected> { todo!() }
                #[apply]
                fn opened(&mut self, e: &Opened) {}
                fn helper(&self) {}
            }
        },
    );
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn every_handler_mistake_is_reported_at_once() {
    let errors = aggregate_errors(
        args(),
        quote! {
            impl Thing {
                #[command]
                fn open(&mut self, cmd: Open) -> Result<Opened, Rejected> { todo!() }
                #[command]
                async fn rename(&self, cmd: &Rename) {}
                #[apply]
                async fn opened(&self, e: Opened) -> bool { true }
                #[apply]
                fn opened_again(&mut self, e: &Closed) {}
                #[apply]
                fn closed(&mut self, e: &Closed) {}
            }
        },
    );
    // open: &mut self (1); rename: by-reference command, async without services, no return
    // type (3); opened: async, &self, by value, returns bool (4); a second apply for Closed (1).
    assert_eq!(errors.len(), 9, "{errors:#?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("already has an `#[apply]` handler, `opened_again`"))
    );
}

#[test]
fn missing_arguments_are_each_named() {
    let errors = aggregate_errors(quote!(name = "thing"), quote!(impl Thing {}));
    assert_eq!(errors.len(), 3, "{errors:#?}");
    for key in ["`id = ...`", "`events = ...`", "`error = ...`"] {
        assert!(
            errors.iter().any(|e| e.contains(key)),
            "{key} not reported: {errors:#?}"
        );
    }
}

#[test]
fn unparsable_arguments_do_not_panic() {
    for args in [
        quote!(=),
        quote!(name),
        quote!(name = 3),
        quote!(id = =),
        quote!(,,,),
    ] {
        let errors = aggregate_errors(args.clone(), quote!(impl Thing {}));
        assert!(!errors.is_empty(), "{args} gave no error");
    }
    let fallback = crate::aggregate::expand(quote!(=), quote!(impl Thing {}));
    assert!(fallback.to_string().contains("compile_error"));
}

#[test]
fn command_without_id_and_aggregate_reports_both() {
    let errors = derive_errors(
        crate::command::expand,
        quote!(
            struct Open {
                name: String,
            }
        ),
    );
    assert_eq!(errors.len(), 2, "{errors:#?}");
}

#[test]
fn event_without_name_and_with_zero_version_reports_both() {
    let errors = derive_errors(
        crate::event::expand,
        quote!(
            #[event(version = 0)]
            struct Opened<T> {
                at: T,
            }
        ),
    );
    assert_eq!(errors.len(), 3, "{errors:#?}");
}

#[test]
fn event_enum_reports_every_bad_variant() {
    let errors = derive_errors(
        crate::event_enum::expand,
        quote!(
            enum E {
                A(Opened),
                B,
                C { x: u8 },
                D(Opened),
                F(Closed, Closed),
            }
        ),
    );
    assert_eq!(errors.len(), 3, "{errors:#?}");
}

#[test]
fn event_history_rules_are_checked_before_expansion() {
    let cases = [
        (
            quote!(
                #[event(name = "x", version = 2)]
                struct X {}
            ),
            "needs `upcast_from",
        ),
        (
            quote!(
                #[event(name = "x", version = 1, upcast_from = W)]
                struct X {}
            ),
            "nothing to upcast from",
        ),
        (
            quote!(
                #[event(name = "x", version = 2, renamed_from = W)]
                struct X {}
            ),
            "goes on version 1",
        ),
        (
            quote!(
                #[event(name = "x", version = 2, upcast_from = W, renamed_from = V)]
                struct X {}
            ),
            "use either",
        ),
    ];
    for (input, expected) in cases {
        let errors = derive_errors(crate::event::expand, input.clone());
        assert_eq!(errors.len(), 1, "{input}: {errors:#?}");
        assert!(errors[0].contains(expected), "{input}: {errors:#?}");
    }
}

#[test]
fn shape_opaque_tags_must_not_be_empty() {
    let errors = derive_errors(
        crate::shape_derive::expand,
        quote!(
            struct M {
                #[shape(opaque = " ")]
                d: Decimal,
            }
        ),
    );
    assert_eq!(errors.len(), 1, "{errors:#?}");
}

fn projection_errors(args: TokenStream, item: TokenStream) -> Vec<String> {
    let item: syn::Item = syn::parse2(item).expect("test input parses");
    crate::projection::validation_errors(args, &item)
}

#[test]
fn a_valid_projection_has_no_errors() {
    let errors = projection_errors(
        quote!(
            name = "book",
            events = [OrderEvent, CustomerEvent],
            version = 2,
            ignore(Closed),
            transaction = Tx
        ),
        quote! {
            impl Book {
                #[on]
                fn opened(&mut self, e: &Opened) {}
                #[on]
                fn placed(&mut self, e: &Placed, meta: &EventMeta) {}
                #[on]
                fn shipped(&mut self, e: &Shipped, meta: &EventMeta, tx: &mut Tx) {}
                #[query]
                fn count(&self, q: Count) -> usize { 0 }
                fn helper(&self) {}
            }
        },
    );
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn every_projection_mistake_is_reported_at_once() {
    let errors = projection_errors(
        quote!(name = "book", events = Ev, ignore(Opened, Closed, Closed)),
        quote! {
            impl Book {
                #[on]
                async fn opened(&self, e: Opened) -> bool { true }
                #[on]
                fn opened_again(&mut self, e: &Placed, meta: EventMeta, tx: &mut Tx) {}
                #[on]
                fn placed(&mut self, e: &Placed) {}
                #[query]
                fn count(&mut self, q: &Count) {}
            }
        },
    );
    // opened: async, &self, by value, returns bool (4); opened_again: meta by value, tx
    // undeclared (2); count: &mut self, query by reference, no return type (3); Closed
    // ignored twice (1). Invalid handlers take no part in the cross-handler checks, so
    // `Placed` (handled by the invalid `opened_again`) is not reported as handled twice.
    assert_eq!(errors.len(), 10, "{errors:#?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("`Closed` is already ignored"))
    );
}

#[test]
fn projection_arguments_are_checked_together() {
    let errors = projection_errors(
        quote!(version = 0, events = [A, A], non_exhaustive, ignore(X)),
        quote!(impl Book {}),
    );
    // missing name, version 0, A listed twice, ignore with non_exhaustive.
    assert_eq!(errors.len(), 4, "{errors:#?}");
    let errors = projection_errors(quote!(name = "b", evnets = A), quote!(impl Book {}));
    assert!(
        errors.iter().any(|e| e.contains("Did you mean `events`")),
        "{errors:#?}"
    );
}

#[test]
fn unparsable_projection_arguments_do_not_panic() {
    for args in [
        quote!(=),
        quote!(name),
        quote!(events = 3),
        quote!(events = [1]),
        quote!(,,,),
    ] {
        let errors = projection_errors(args.clone(), quote!(impl Book {}));
        assert!(!errors.is_empty(), "{args} gave no error");
    }
    let fallback = crate::projection::expand(quote!(=), quote!(impl Book {}));
    assert!(fallback.to_string().contains("compile_error"));
}
