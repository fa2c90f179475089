//! A fuzz harness for every macro's expansion function: no input may panic a macro.
//!
//! Inputs are token streams built two ways from a seeded generator (no dependency, so the
//! workspace keeps one `syn` major): valid DSL inputs mutated token by token (replaced,
//! dropped, duplicated, regrouped), which reach deep into validation and expansion, and random
//! streams over the DSL's vocabulary (keywords, raw identifiers, literals, punctuation, nested
//! groups). Each target gets the same number of inputs; a panic fails the test and prints the
//! seed and the input.
//!
//! The smoke run (a few seconds) is part of `cargo test`. The full run, at least 1,000,000
//! inputs per target:
//!
//! ```sh
//! CQRS_FUZZ_INPUTS=1000000 cargo test -p cqrs-macros --release --lib fuzz -- --nocapture
//! ```
//!
//! `CQRS_FUZZ_SEED=<n>` starts from another seed (the default is fixed, so a failure repeats);
//! `CQRS_FUZZ_TARGETS=aggregate,projection,reactor` runs only the named targets.

use std::panic::{AssertUnwindSafe, catch_unwind};

use proc_macro2::{Delimiter, Group, Ident, Literal, Punct, Spacing, Span, TokenStream, TokenTree};
use quote::quote;

/// xorshift64*: small, fast and deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const WORDS: &[&str] = &[
    "name",
    "version",
    "id",
    "events",
    "error",
    "services",
    "command_enum",
    "crate",
    "aggregate",
    "upcast_from",
    "renamed_from",
    "fingerprint",
    "lock",
    "split",
    "retired",
    "ignore",
    "non_exhaustive",
    "transaction",
    "reset",
    "create",
    "existing",
    "any",
    "command",
    "apply",
    "on",
    "query",
    "start",
    "continue",
    "end",
    "key",
    "bus",
    "deadline",
    "command_bus",
    "shape",
    "opaque",
    "claim",
    "release",
    "scope",
    "normalize",
    "normalize_with",
    "lowercase",
    "event",
    "event_enum",
    "cfg",
    "serde",
    "rename",
    "default",
    "struct",
    "enum",
    "union",
    "impl",
    "fn",
    "pub",
    "self",
    "Self",
    "mut",
    "async",
    "unsafe",
    "where",
    "for",
    "dyn",
    "Result",
    "Option",
    "Vec",
    "String",
    "u32",
    "Thing",
    "Open",
    "Opened",
    "ThingEvent",
    "Rejected",
    "Node",
    "Box",
    "T",
    "_",
    "r#Type",
    "r#gate",
    "Ünï",
    "a1",
];

const PUNCT: &[char] = &[
    '#', '=', ',', ':', ';', '&', '<', '>', '-', '!', '.', '\'', '*', '+',
];

fn ident(rng: &mut Rng) -> TokenTree {
    let word = *rng.pick(WORDS);
    let ident = match word.strip_prefix("r#") {
        Some(raw) => Ident::new_raw(raw, Span::call_site()),
        None => Ident::new(word, Span::call_site()),
    };
    TokenTree::Ident(ident)
}

fn literal(rng: &mut Rng) -> TokenTree {
    TokenTree::Literal(match rng.below(7) {
        0 => Literal::string(""),
        1 => Literal::string("bank account"),
        2 => Literal::string(rng.pick::<&str>(WORDS)),
        3 => Literal::u32_unsuffixed(rng.below(5) as u32),
        4 => Literal::u64_suffixed(rng.next()),
        5 => Literal::string("a\u{0}b"),
        _ => Literal::i64_unsuffixed(-(rng.below(3) as i64)),
    })
}

fn token(rng: &mut Rng, depth: usize) -> TokenTree {
    match rng.below(10) {
        0..=3 => ident(rng),
        4 | 5 => literal(rng),
        6 | 7 => {
            let spacing = if rng.below(2) == 0 {
                Spacing::Alone
            } else {
                Spacing::Joint
            };
            let c = *rng.pick(PUNCT);
            // A lifetime quote must be joint and followed by an identifier.
            if c == '\'' {
                return TokenTree::Punct(Punct::new('#', Spacing::Alone));
            }
            TokenTree::Punct(Punct::new(c, spacing))
        }
        _ if depth < 4 => {
            let delimiter = *rng.pick(&[
                Delimiter::Parenthesis,
                Delimiter::Brace,
                Delimiter::Bracket,
                Delimiter::None,
            ]);
            TokenTree::Group(Group::new(delimiter, stream(rng, depth + 1)))
        }
        _ => ident(rng),
    }
}

fn stream(rng: &mut Rng, depth: usize) -> TokenStream {
    let len = rng.below(if depth == 0 { 24 } else { 8 });
    (0..len).map(|_| token(rng, depth)).collect()
}

/// `tokens` with a few random edits, at any depth.
fn mutate(rng: &mut Rng, tokens: TokenStream, edits: usize) -> TokenStream {
    let mut trees: Vec<TokenTree> = tokens.into_iter().collect();
    for _ in 0..edits {
        if trees.is_empty() {
            trees.push(token(rng, 2));
            continue;
        }
        let i = rng.below(trees.len());
        match rng.below(6) {
            0 => trees[i] = token(rng, 2),
            1 => {
                trees.remove(i);
            }
            2 => {
                let copy = trees[i].clone();
                trees.insert(i, copy);
            }
            3 => trees.insert(i, token(rng, 2)),
            _ => {
                if let TokenTree::Group(g) = &trees[i] {
                    let inner = mutate(rng, g.stream(), 1);
                    trees[i] = TokenTree::Group(Group::new(g.delimiter(), inner));
                } else {
                    trees[i] = token(rng, 2);
                }
            }
        }
    }
    trees.into_iter().collect()
}

fn seeds_derive() -> Vec<TokenStream> {
    vec![
        quote! {
            #[command(aggregate = Thing, name = "open")]
            pub struct Open { #[id] pub id: String, pub note: Option<String> }
        },
        quote! {
            #[command(aggregate = Bag<u32, Vec<u8>>, crate = ::cqrs_runtime)]
            pub struct Fill<'a> { #[id] pub id: &'a str }
        },
        quote! {
            #[event(name = "opened", version = 2, upcast_from = OpenedV1, lock = "events.lock")]
            pub struct Opened { #[serde(default)] pub at: u64, #[shape(opaque = "x")] pub raw: Foreign }
        },
        quote! {
            #[event(name = "email_changed", version = 1)]
            pub struct EmailChanged { #[release(UserEmail)] pub old: String, #[claim(UserEmail)] #[claim(other::Scope)] pub new: Option<String> }
        },
        quote! {
            #[scope(name = "user_email", normalize = "trim_lowercase", crate = ::cqrs_runtime)]
            pub struct UserEmail;
        },
        quote! {
            #[scope(name = "book", normalize_with = rules::book)]
            pub enum Book {}
        },
        quote! {
            #[event_enum(split(DetailsV1), retired("gone"))]
            pub enum ThingEvent { Opened(Opened), r#Type(Typed), #[cfg(any())] Never(Never) }
        },
        quote! {
            #[serde(tag = "kind")]
            pub enum Money { Cents(u64), Pair { a: u8, b: Vec<Self> }, Unit }
        },
        quote! {
            #[derive(CommandBus)]
            #[command_bus(crate = ::cqrs_runtime)]
            pub struct Shop<S: EventStore> { pub orders: Repository<Order, S>, pub mailer: Mailer, pub stock: store::Repository<Stock, S, Snapshots> }
        },
        quote! {
            #[deadline(name = "payment_due")]
            pub struct PaymentDue { pub order: String }
        },
    ]
}

fn seed_reactor() -> (TokenStream, TokenStream) {
    (
        quote!(
            name = "payments",
            events = [PaymentEvent, Order],
            ignore(Refunded),
            version = 2
        ),
        quote! {
            impl<S: EventStore> Payments {
                #[on]
                async fn captured(&self, e: &Captured, ctx: &mut ReactionContext<'_, Shop<S>>) -> Result<(), ReactionError> { Ok(()) }
                #[cfg(feature = "x")]
                #[on]
                async fn failed(&self, e: &Failed, stored: &StoredEvent, ctx: &mut ReactionContext<'_, Shop<S>>) -> Result<(), ReactionError> { Ok(()) }
                fn helper(&self) {}
            }
        },
    )
}

fn seed_process_manager() -> (TokenStream, TokenStream) {
    (
        quote!(
            name = "fulfilment",
            events = OrderEvent,
            bus = Shop,
            ignore(Paid)
        ),
        quote! {
            impl Fulfilment {
                #[on(start, key = order)]
                async fn placed(&mut self, e: &Placed, ctx: &mut ProcessContext<'_, Shop>) -> Result<(), ReactionError> { Ok(()) }
                #[on(key = order_id())]
                async fn shipped(&mut self, e: &Shipped, ctx: &mut ProcessContext<'_, Shop>) -> Result<(), ReactionError> { Ok(()) }
                #[on(end, key = keys::of)]
                async fn cancelled(&mut self, e: &Cancelled, stored: &StoredEvent, ctx: &mut ProcessContext<'_, Shop>) -> Result<(), ReactionError> { Ok(()) }
                #[deadline]
                async fn due(&mut self, d: PaymentDue, ctx: &mut ProcessContext<'_, Shop>) -> Result<(), ReactionError> { Ok(()) }
            }
        },
    )
}

fn seed_aggregate() -> (TokenStream, TokenStream) {
    (
        quote!(
            name = "thing",
            id = String,
            events = ThingEvent,
            error = Rejected,
            services = Svc
        ),
        quote! {
            impl Thing {
                #[command(create)]
                fn open(&self, cmd: Open) -> Result<Opened, Rejected> { Ok(Opened {}) }
                #[cfg(feature = "x")]
                #[command]
                async fn rename(&self, cmd: Rename, svc: &Svc) -> Result<Vec<ThingEvent>, Rejected> { todo!() }
                #[apply]
                fn opened(&mut self, e: &Opened) {}
                fn helper(&self) {}
            }
        },
    )
}

fn seed_projection() -> (TokenStream, TokenStream) {
    (
        quote!(
            name = "totals",
            events = [Thing, OtherEvent],
            version = 2,
            ignore(Closed)
        ),
        quote! {
            impl Totals {
                #[on]
                fn opened(&mut self, e: &Opened, meta: &EventMeta) {}
                #[cfg(feature = "x")]
                #[on]
                fn closed(&mut self, e: &Closed, meta: &EventMeta, tx: &mut Tx) {}
                #[query]
                fn total(&self, q: Total) -> u64 { 0 }
            }
        },
    )
}

fn seed_projection_non_exhaustive() -> (TokenStream, TokenStream) {
    (
        quote!(
            name = "openings",
            events = Thing,
            non_exhaustive,
            transaction = Tx,
            reset = Self::clear
        ),
        quote! {
            impl Openings {
                #[cfg(not(feature = "x"))]
                #[on]
                fn opened(&mut self, e: &Opened) {}
                #[cfg(not(feature = "x"))]
                #[query]
                fn count(&self, q: Count) -> u64 { 0 }
            }
        },
    )
}

type Target = (&'static str, fn(TokenStream) -> TokenStream);

fn derive(expand: fn(&syn::DeriveInput) -> TokenStream, input: TokenStream) -> TokenStream {
    match syn::parse2::<syn::DeriveInput>(input) {
        Ok(input) => expand(&input),
        Err(error) => error.to_compile_error(),
    }
}

/// An attribute-macro input as one stream: the arguments in a leading `( ... )` group, then
/// the item.
fn split_args(input: TokenStream) -> (TokenStream, TokenStream) {
    let mut trees = input.into_iter();
    match trees.next() {
        Some(TokenTree::Group(args)) if args.delimiter() == Delimiter::Parenthesis => {
            (args.stream(), trees.collect())
        }
        Some(first) => (
            TokenStream::new(),
            std::iter::once(first).chain(trees).collect(),
        ),
        None => (TokenStream::new(), TokenStream::new()),
    }
}

const TARGETS: &[Target] = &[
    ("Command", |i| derive(crate::command::expand, i)),
    ("Event", |i| derive(|d| crate::event::expand(d, None), i)),
    ("EventEnum", |i| derive(crate::event_enum::expand, i)),
    ("Shape", |i| derive(crate::shape_derive::expand, i)),
    ("Scope", |i| derive(crate::scope::expand, i)),
    ("aggregate", |i| {
        let (args, item) = split_args(i);
        crate::aggregate::expand(args, item)
    }),
    ("projection", |i| {
        let (args, item) = split_args(i);
        crate::projection::expand(args, item)
    }),
    ("reactor", |i| {
        let (args, item) = split_args(i);
        crate::reaction::expand(crate::reaction::Kind::Reactor, args, item)
    }),
    ("process_manager", |i| {
        let (args, item) = split_args(i);
        crate::reaction::expand(crate::reaction::Kind::ProcessManager, args, item)
    }),
    ("CommandBus", |i| derive(crate::command_bus::expand, i)),
    ("Deadline", |i| derive(crate::deadline::expand, i)),
];

fn seeds_for(target: &str) -> Vec<TokenStream> {
    let wrap = |(args, item): (TokenStream, TokenStream)| {
        let mut out: TokenStream =
            std::iter::once(TokenTree::Group(Group::new(Delimiter::Parenthesis, args))).collect();
        out.extend(item);
        out
    };
    match target {
        "aggregate" => vec![wrap(seed_aggregate())],
        "projection" => vec![
            wrap(seed_projection()),
            wrap(seed_projection_non_exhaustive()),
        ],
        "reactor" => vec![wrap(seed_reactor()), wrap(seed_process_manager())],
        "process_manager" => vec![wrap(seed_process_manager()), wrap(seed_reactor())],
        _ => seeds_derive(),
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn no_input_panics_a_macro() {
    let inputs = env_number("CQRS_FUZZ_INPUTS", 3_000);
    let seed = env_number("CQRS_FUZZ_SEED", 0x5eed_cafe_f00d_d00d);
    // Macro errors are reported as values; a panic here is the failure, so keep its output short.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let only = std::env::var("CQRS_FUZZ_TARGETS").ok();
    let mut failures = Vec::new();
    for &(name, expand) in TARGETS {
        if only
            .as_deref()
            .is_some_and(|only| !only.split(',').any(|t| t.trim() == name))
        {
            continue;
        }
        let started = std::time::Instant::now();
        let before = failures.len();
        let seeds = seeds_for(name);
        let mut rng = Rng(seed ^ cqrs_lock::fnv1a(cqrs_lock::FNV_OFFSET, name.as_bytes()));
        for n in 0..inputs {
            let input = if n % 4 == 3 {
                stream(&mut rng, 0)
            } else {
                let base = rng.pick(&seeds).clone();
                let edits = 1 + rng.below(4);
                mutate(&mut rng, base, edits)
            };
            let text = input.to_string();
            if catch_unwind(AssertUnwindSafe(|| expand(input))).is_err() {
                failures.push(format!("{name} (input {n}): {text}"));
                if failures.len() > 5 {
                    break;
                }
            }
        }
        println!(
            "{name}: {inputs} inputs, {} panics, {:.1?}",
            failures.len() - before,
            started.elapsed()
        );
    }
    std::panic::set_hook(hook);
    assert!(
        failures.is_empty(),
        "macros panicked on:\n{}",
        failures.join("\n")
    );
}
