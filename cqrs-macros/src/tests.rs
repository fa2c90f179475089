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
        |i| crate::event::expand(i, None),
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
        let errors = derive_errors(|i| crate::event::expand(i, None), input.clone());
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

#[test]
fn a_locked_event_tracks_the_lock_file_and_the_bless_variable() {
    let dir = std::env::temp_dir().join(format!("cqrs-lock-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(
        dir.join("test.lock"),
        "opened 1 0x0000000000000001 Opened { at: u64 }\n",
    )
    .expect("lock file");
    let input: syn::DeriveInput = syn::parse_quote! {
        #[event(name = "opened", version = 1, lock = "test.lock")]
        struct Opened { at: u32 }
    };
    let source = dir.join("domain.rs");
    let out = crate::event::expand(&input, Some(&source)).to_string();
    let _ = std::fs::remove_dir_all(&dir);
    // rustc records `option_env!` and `include_bytes!` in the crate's dep-info, so cargo
    // rebuilds when `CQRS_BLESS` or the lock changes.
    assert!(out.contains("option_env ! (\"CQRS_BLESS\")"), "{out}");
    assert!(out.contains("include_bytes !"), "{out}");
    assert!(out.contains("test.lock"), "{out}");
    if std::env::var_os("CQRS_BLESS").is_none() {
        assert!(out.contains("check_locked"), "{out}");
        assert!(
            out.contains("field `at` changed type from `u64` to `u32`"),
            "{out}"
        );
    }
}

#[test]
fn an_unlocked_event_still_tracks_the_bless_variable() {
    let input: syn::DeriveInput = syn::parse_quote! {
        #[event(name = "opened", version = 1, lock = "no-such.lock")]
        struct Opened { at: u32 }
    };
    let out = crate::event::expand(&input, None).to_string();
    assert!(out.contains("option_env ! (\"CQRS_BLESS\")"), "{out}");
    assert!(!out.contains("check_locked"), "{out}");
}

#[test]
fn events_naming_an_applied_event_is_one_error() {
    let errors = aggregate_errors(
        quote!(
            name = "thing",
            id = String,
            events = Opened,
            error = Rejected
        ),
        quote! {
            impl Thing {
                #[apply]
                fn opened(&mut self, e: &Opened) {}
            }
        },
    );
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].contains("is an event (`opened` applies it)"));
}

#[test]
fn projection_handlers_under_other_cfgs_are_alternatives() {
    let errors = projection_errors(
        quote!(name = "p", events = ThingEvent),
        quote! {
            impl P {
                #[cfg(feature = "a")]
                #[on]
                fn opened(&mut self, e: &Opened) {}
                #[cfg(not(feature = "a"))]
                #[on]
                fn opened(&mut self, e: &Opened) {}
                #[cfg(feature = "a")]
                #[query]
                fn count(&self, q: Count) -> u32 { 0 }
                #[cfg(not(feature = "a"))]
                #[query]
                fn count(&self, q: Count) -> u32 { 1 }
                #[on]
                fn renamed(&mut self, e: &Renamed) {}
                #[on]
                fn renamed_again(&mut self, e: &Renamed) {}
            }
        },
    );
    // Only the two handlers of `Renamed` under the same (no) cfg are a duplicate.
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].contains("already has an `#[on]` handler, `renamed`"));
}

#[test]
fn a_generic_aggregate_of_a_command_is_our_error() {
    let errors = derive_errors(
        crate::command::expand,
        quote! {
            #[command(aggregate = Bag<u32, Vec<u8>>, name = "open")]
            struct Open { #[id] id: String }
        },
    );
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains("without generic arguments"),
        "{errors:?}"
    );
}

#[test]
fn a_flag_written_as_a_list_does_not_panic() {
    for args in [
        quote!(name = "p", events = Thing, non_exhaustive()),
        quote!(name = "p", events = Thing, non_exhaustive {}),
    ] {
        let out = crate::projection::expand(args, quote!(impl P {})).to_string();
        assert!(out.contains("compile_error"), "{out}");
    }
    let errors = aggregate_errors(
        args(),
        quote! {
            impl Thing {
                #[command(create())]
                fn open(&self, cmd: Open) -> Result<Opened, Rejected> { todo!() }
                #[command(any = true)]
                fn close(&self, cmd: Close) -> Result<Closed, Rejected> { todo!() }
            }
        },
    );
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors[0].contains("`create` is a bare word"), "{errors:?}");
}

fn reaction_errors(
    kind: crate::reaction::Kind,
    args: TokenStream,
    item: TokenStream,
) -> Vec<String> {
    let item: syn::Item = syn::parse2(item).expect("test input parses");
    crate::reaction::validation_errors(kind, args, &item)
}

#[test]
fn a_valid_process_manager_has_no_errors() {
    let errors = reaction_errors(
        crate::reaction::Kind::ProcessManager,
        quote!(
            name = "fulfilment",
            events = [OrderEvent, PaymentEvent],
            ignore(Refunded)
        ),
        quote! {
            impl<S: EventStore> Fulfilment {
                #[on(start, key = order)]
                async fn placed(&mut self, e: &Placed, ctx: &mut ProcessContext<'_, Shop<S>>) -> Result<(), ReactionError> { Ok(()) }
                #[on(key = order_id())]
                async fn paid(&mut self, e: &Paid, stored: &StoredEvent, ctx: &mut ProcessContext<'_, Shop<S>>) -> Result<(), ReactionError> { Ok(()) }
                #[on(end, key = keys::of)]
                async fn failed(&mut self, e: &Failed, ctx: &mut ProcessContext<'_, Shop<S>>) -> Result<(), ReactionError> { Ok(()) }
                #[deadline]
                async fn due(&mut self, d: PaymentDue, ctx: &mut ProcessContext<'_, Shop<S>>) -> Result<(), ReactionError> { Ok(()) }
                async fn helper(&mut self) {}
            }
        },
    );
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn every_process_manager_mistake_is_reported_at_once() {
    let errors = reaction_errors(
        crate::reaction::Kind::ProcessManager,
        quote!(name = "fulfilment", events = OrderEvent, ignore(Placed)),
        quote! {
            impl Fulfilment {
                #[on(key = order)]
                async fn placed(&mut self, e: &Placed, ctx: &mut ProcessContext<'_, Shop>) -> Result<(), ReactionError> { Ok(()) }
                #[on(end)]
                async fn paid(&mut self, e: &Paid, ctx: &mut ProcessContext<'_, Shop>) -> Result<(), ReactionError> { Ok(()) }
                #[on(continue, key = order)]
                fn failed(&self, e: Failed, ctx: &mut ProcessContext<'_, Shop>) {}
            }
        },
    );
    let joined = errors.join("\n");
    for expected in [
        "is handled by `placed` and ignored here",
        "`paid` has no correlation key",
        "handler is `async`",
        "takes `&mut self`",
        "by shared reference",
        "returns `Result<(), ReactionError>`",
    ] {
        assert!(
            joined.contains(expected),
            "missing {expected:?} in {errors:#?}"
        );
    }
}

#[test]
fn a_generic_reaction_impl_moves_its_parameters_onto_the_methods() {
    let out = crate::reaction::expand(
        crate::reaction::Kind::Reactor,
        quote!(name = "payments", events = PaymentEvent),
        quote! {
            impl<S: EventStore> Payments {
                #[on]
                async fn captured(&self, e: &Captured, ctx: &mut ReactionContext<'_, Shop<S>>) -> Result<(), ReactionError> { Ok(()) }
            }
        },
    )
    .to_string();
    assert!(out.starts_with("impl Payments"), "{out}");
    assert!(
        out.contains("async fn captured < S : EventStore >"),
        "{out}"
    );
    assert!(
        out.contains("impl < S : EventStore > __cqrs :: Reactor < Shop < S > > for Payments"),
        "{out}"
    );
}

#[test]
fn a_malformed_on_argument_list_is_an_error_not_a_panic() {
    for on in [
        quote!(#[on(start, key = = order)]),
        quote!(#[on(key "" order_id())]),
    ] {
        let out = crate::reaction::expand(
            crate::reaction::Kind::ProcessManager,
            quote!(name = "fulfilment", events = OrderEvent, bus = Shop),
            quote! {
                impl Fulfilment {
                    #on
                    async fn placed(&mut self, e: &Placed, ctx: &mut ProcessContext<'_, Shop>) -> Result<(), ReactionError> { Ok(()) }
                }
            },
        )
        .to_string();
        assert!(out.contains("compile_error"), "{out}");
    }
}
