//! The schema lock file: one line per published event version,
//! `name version 0xfingerprint RustType { field: Type, ... }`.
//!
//! `#[derive(Event)]` reads the lock at compile time and fails the build when a locked
//! version's shape changed, naming the field that changed. The functions here check, from a
//! test, that every version the enums decode is recorded, and record them ("bless") when
//! `CQRS_BLESS` is set.
//!
//! # Which file
//!
//! By default an event is checked against `events.lock` next to the `Cargo.toml` of the
//! package that defines it: one file per package, shared by all its targets (library, tests,
//! examples). `#[event(..., lock = "path")]` names another file, relative to the source file
//! that holds the event (as `include_str!` resolves paths), so that a crate, a target or a
//! single test can keep its own lock. The compiled crate tracks the lock file and the
//! `CQRS_BLESS` variable, so changing either rebuilds it.
//!
//! # The workflow
//!
//! One test lists every event enum of the package:
//!
//! ```no_run
//! # use cqrs_runtime::prelude::*;
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
//! # #[event(name = "a", version = 1)] pub struct A {}
//! # #[derive(Debug, Clone, PartialEq, EventEnum)] pub enum AccountEvent { A(A) }
//! # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
//! # #[event(name = "b", version = 1)] pub struct B {}
//! # #[derive(Debug, Clone, PartialEq, EventEnum)] pub enum OrderEvent { B(B) }
//! #[test]
//! fn every_event_version_is_locked() {
//!     cqrs_runtime::schema::lock::assert_locked_all::<(AccountEvent, OrderEvent)>("events.lock");
//! }
//! ```
//!
//! It fails listing every version that is not recorded and every recorded line that none of
//! the enums decodes any more; `CQRS_BLESS=1 cargo test` rewrites the file to exactly the
//! enums' versions, and the lock's diff is what review looks at.

use std::path::Path;

use cqrs_lock::{Entry, Field};

use crate::event::{EventEnum, EventSchema};

/// The environment variable that makes [`assert_locked`] and [`assert_locked_all`] record
/// instead of check (and makes `#[derive(Event)]` skip its check while it is set).
pub const BLESS_VAR: &str = "CQRS_BLESS";

/// One lock line.
fn line(schema: &EventSchema) -> String {
    Entry {
        name: schema.name,
        version: schema.version,
        fingerprint: schema.fingerprint,
        rust_type: schema.rust_type,
        fields: Some(
            schema
                .fields
                .iter()
                .map(|f| Field {
                    name: f.name,
                    ty: f.ty,
                })
                .collect(),
        ),
    }
    .to_string()
}

fn key(line: &str) -> Option<(String, u32, u64)> {
    Entry::parse(line).map(|e| (e.name.to_owned(), e.version, e.fingerprint))
}

/// A set of event enums: one enum, or a tuple of up to 12 (`(AccountEvent, OrderEvent)`).
pub trait EventEnums {
    /// Every stored shape the enums decode, enum by enum.
    fn histories() -> Vec<EventSchema>;
}

impl<E: EventEnum> EventEnums for E {
    fn histories() -> Vec<EventSchema> {
        E::history()
    }
}

macro_rules! tuple_enums {
    ($(($($e:ident),+)),* $(,)?) => {$(
        impl<$($e: EventEnum),+> EventEnums for ($($e,)+) {
            fn histories() -> Vec<EventSchema> {
                let mut out = Vec::new();
                $(out.extend($e::history());)+
                out
            }
        }
    )*};
}

tuple_enums!(
    (A),
    (A, B),
    (A, B, C),
    (A, B, C, D),
    (A, B, C, D, F),
    (A, B, C, D, F, G),
    (A, B, C, D, F, G, H),
    (A, B, C, D, F, G, H, I),
    (A, B, C, D, F, G, H, I, J),
    (A, B, C, D, F, G, H, I, J, K),
    (A, B, C, D, F, G, H, I, J, K, L),
    (A, B, C, D, F, G, H, I, J, K, L, M),
);

/// The event versions `E` decodes that `lock_text` does not record, as lock lines.
pub fn missing<E: EventEnums>(lock_text: &str) -> Vec<String> {
    missing_in(&E::histories(), lock_text)
}

/// The shapes of `histories` that `lock_text` does not record, as lock lines.
pub(crate) fn missing_in(histories: &[EventSchema], lock_text: &str) -> Vec<String> {
    let recorded: Vec<_> = lock_text.lines().filter_map(key).collect();
    let mut out: Vec<String> = histories
        .iter()
        .filter(|s| !recorded.contains(&(s.name.to_owned(), s.version, s.fingerprint)))
        .map(line)
        .collect();
    out.dedup();
    out
}

/// The lines of `lock_text` that record a shape none of the enums `E` decodes (a removed
/// version, or a shape that changed while its version stayed).
pub fn stale<E: EventEnums>(lock_text: &str) -> Vec<String> {
    stale_in(&E::histories(), lock_text)
}

/// The lines of `lock_text` that record a shape none of `histories` is.
pub(crate) fn stale_in(histories: &[EventSchema], lock_text: &str) -> Vec<String> {
    let current: Vec<_> = histories
        .iter()
        .map(|s| (s.name.to_owned(), s.version, s.fingerprint))
        .collect();
    lock_text
        .lines()
        .filter(|l| key(l).is_some_and(|k| !current.contains(&k)))
        .map(|l| l.trim().to_owned())
        .collect()
}

fn render(mut lines: Vec<String>) -> String {
    lines.sort_by_key(|l| key(l).map(|(n, v, _)| (n, v)));
    lines.dedup();
    let mut out = String::from(cqrs_lock::HEADER);
    for l in lines {
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// `lock_text` with every version of `E` recorded: a line with the same name, version and
/// Rust type is replaced, others are added and kept; lines are sorted by name and version.
pub fn blessed<E: EventEnums>(lock_text: &str) -> String {
    let mut lines: Vec<String> = lock_text
        .lines()
        .filter(|l| Entry::parse(l).is_some())
        .map(|l| l.trim().to_owned())
        .collect();
    for schema in E::histories() {
        lines.retain(|l| {
            !Entry::parse(l).is_some_and(|e| {
                e.name == schema.name
                    && e.version == schema.version
                    && e.rust_type == schema.rust_type
            })
        });
        lines.push(line(&schema));
    }
    render(lines)
}

/// Exactly the versions the enums `E` decode, as a lock file.
pub fn blessed_exactly<E: EventEnums>() -> String {
    render(E::histories().iter().map(line).collect())
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[track_caller]
fn write(path: &Path, text: &str, old: &str) {
    if text != old
        && let Err(e) = std::fs::write(path, text)
    {
        panic!("cannot write the schema lock {}: {e}", path.display());
    }
}

/// Test helper: checks that the lock at `path` records every event version `E` decodes (one
/// enum or a tuple of them), or, with `CQRS_BLESS=1`, records them, keeping the other lines.
///
/// # Panics
/// When a version is missing (and not blessing), or the file cannot be read or written.
#[track_caller]
pub fn assert_locked<E: EventEnums>(path: impl AsRef<Path>) {
    let path = path.as_ref();
    let text = read(path);
    if std::env::var_os(BLESS_VAR).is_some() {
        write(path, &blessed::<E>(&text), &text);
        return;
    }
    let missing = missing::<E>(&text);
    assert!(
        missing.is_empty(),
        "the schema lock {} does not record these event versions:\n  {}\nRecord them with `{BLESS_VAR}=1 cargo test` and commit the file.",
        path.display(),
        missing.join("\n  ")
    );
}

/// Test helper for the whole package: checks that the lock at `path` records exactly the event
/// versions the enums `E` decode (a tuple such as `(AccountEvent, OrderEvent)`), listing every
/// missing and every stale line at once; with `CQRS_BLESS=1`, rewrites it to exactly them.
///
/// # Panics
/// When a line is missing or stale (and not blessing), or the file cannot be read or written.
#[track_caller]
pub fn assert_locked_all<E: EventEnums>(path: impl AsRef<Path>) {
    let path = path.as_ref();
    let text = read(path);
    if std::env::var_os(BLESS_VAR).is_some() {
        write(path, &blessed_exactly::<E>(), &text);
        return;
    }
    let (missing, stale) = (missing::<E>(&text), stale::<E>(&text));
    if missing.is_empty() && stale.is_empty() {
        return;
    }
    let mut message = format!("the schema lock {} is out of date.", path.display());
    if !missing.is_empty() {
        message.push_str("\nNot recorded (new versions):\n  ");
        message.push_str(&missing.join("\n  "));
    }
    if !stale.is_empty() {
        message.push_str("\nRecorded, but no listed enum decodes them:\n  ");
        message.push_str(&stale.join("\n  "));
    }
    message.push_str(&format!(
        "\nRecord the current versions with `{BLESS_VAR}=1 cargo test` and commit the file."
    ));
    panic!("{message}");
}
