//! Internal to `cqrs-macros` and `cqrs-runtime`; not a public API.
//!
//! Both crates need the same two things and neither may depend on the other at build time (a
//! proc-macro crate cannot depend on the runtime it generates code for):
//!
//! - [`fnv1a`], the hash behind every shape fingerprint. The macros hash a type's static
//!   description while expanding, and the runtime's `const` code folds in the fingerprints of
//!   field types; both must compute the same function.
//! - The `events.lock` line format ([`Entry`]): the runtime writes lines when blessing, and
//!   `#[derive(Event)]` reads them at compile time.
//!
//! This crate has no dependencies, so it adds nothing to either crate's graph.

#![no_std]
#![warn(missing_docs)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// The FNV-1a offset basis: the hash of no bytes.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// The FNV-1a prime.
pub const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a (64-bit) over `bytes`, continuing from `hash` (start from [`FNV_OFFSET`]).
///
/// A `const fn`, so that fingerprints are constants the compiler computes.
pub const fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    hash
}

/// The lock file's default name, next to the package's `Cargo.toml`.
pub const FILE_NAME: &str = "events.lock";

/// The comment block a blessed lock file starts with.
pub const HEADER: &str = "# Schema lock: one line per published event version (name, version, shape fingerprint).\n\
# A locked version whose shape changes fails to compile. Record new versions with\n\
# `CQRS_BLESS=1 cargo test` and commit this file.\n";

/// One field of a locked event version, as written in Rust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// The field's name.
    pub name: &'a str,
    /// The field's type as written (`Vec<u8>`, `Option<String>`).
    pub ty: &'a str,
}

/// One line of `events.lock`:
/// `name version 0xfingerprint RustType { field: Type, ... }`.
///
/// The first three words are the key the compile-time check reads; the Rust type and the field
/// list make review diffs readable and let the check name the field that changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The wire name.
    pub name: &'a str,
    /// The version under the wire name.
    pub version: u32,
    /// The shape fingerprint.
    pub fingerprint: u64,
    /// The Rust type name of the version's struct (empty in a line that has only the key).
    pub rust_type: &'a str,
    /// The fields, in declaration order (`None` in a line that has only the key).
    pub fields: Option<Vec<Field<'a>>>,
}

impl<'a> Entry<'a> {
    /// Parses one line; `None` for comments, blank lines and lines without a readable key.
    pub fn parse(line: &'a str) -> Option<Self> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let (name, rest) = next_word(line)?;
        let (version, rest) = next_word(rest)?;
        let version = version.parse().ok()?;
        let (fingerprint, rest) = next_word(rest)?;
        let fingerprint = u64::from_str_radix(fingerprint.strip_prefix("0x")?, 16).ok()?;
        let (rust_type, fields) = match rest.split_once('{') {
            Some((ty, body)) => (ty.trim(), body.trim().strip_suffix('}').map(parse_fields)),
            None => (rest.trim(), None),
        };
        Some(Self {
            name,
            version,
            fingerprint,
            rust_type,
            fields,
        })
    }
}

impl fmt::Display for Entry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {:#018x} {}",
            self.name, self.version, self.fingerprint, self.rust_type
        )?;
        let Some(fields) = &self.fields else {
            return Ok(());
        };
        f.write_str(" {")?;
        for (i, field) in fields.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            write!(f, "{sep}{}: {}", field.name, field.ty)?;
        }
        f.write_str(if fields.is_empty() { "}" } else { " }" })
    }
}

/// The entries of a lock file's text, in order (comments and unreadable lines skipped).
pub fn entries(text: &str) -> impl Iterator<Item = Entry<'_>> {
    text.lines().filter_map(Entry::parse)
}

fn next_word(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start();
    if s.is_empty() {
        return None;
    }
    Some(s.split_once(char::is_whitespace).unwrap_or((s, "")))
}

/// `a: T, b: Map<K, V>` split at the commas outside brackets.
fn parse_fields(body: &str) -> Vec<Field<'_>> {
    let mut out = Vec::new();
    let mut depth = 0_i32;
    let mut start = 0;
    for (i, c) in body.char_indices() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                out.extend(field(&body[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.extend(field(&body[start..]));
    out
}

fn field(part: &str) -> Option<Field<'_>> {
    let (name, ty) = part.trim().split_once(':')?;
    Some(Field {
        name: name.trim(),
        ty: ty.trim(),
    })
}

/// How the fields of a locked version differ from the current ones, in words, or `None` when
/// the lists are the same as written (the change is then in a nested type's shape or in a
/// `#[serde(...)]` attribute).
pub fn field_changes(locked: &[Field<'_>], current: &[Field<'_>]) -> Option<String> {
    let mut changes: Vec<String> = Vec::new();
    for old in locked {
        match current.iter().find(|f| f.name == old.name) {
            None => changes.push(alloc::format!("field `{}` was removed", old.name)),
            Some(new) if new.ty != old.ty => changes.push(alloc::format!(
                "field `{}` changed type from `{}` to `{}`",
                old.name,
                old.ty,
                new.ty
            )),
            Some(_) => {}
        }
    }
    for new in current {
        if !locked.iter().any(|f| f.name == new.name) {
            changes.push(alloc::format!("field `{}: {}` was added", new.name, new.ty));
        }
    }
    if changes.is_empty() {
        let (old, new): (Vec<_>, Vec<_>) = (
            locked.iter().map(|f| f.name).collect(),
            current.iter().map(|f| f.name).collect(),
        );
        if old != new {
            changes.push(String::from("the fields were reordered"));
        }
    }
    if changes.is_empty() {
        None
    } else {
        Some(changes.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    #[test]
    fn fnv1a_matches_the_reference_values() {
        assert_eq!(fnv1a(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(FNV_OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
        // Continuing from a hash is hashing the concatenation.
        assert_eq!(
            fnv1a(fnv1a(FNV_OFFSET, b"foo"), b"bar"),
            fnv1a(FNV_OFFSET, b"foobar")
        );
    }

    #[test]
    fn a_written_line_parses_back() {
        let cases = [
            Entry {
                name: "account_opened",
                version: 1,
                fingerprint: 0xe17b_e597_9466_087c,
                rust_type: "AccountOpened",
                fields: Some(vec![
                    Field {
                        name: "owner",
                        ty: "String",
                    },
                    Field {
                        name: "limits",
                        ty: "std::collections::BTreeMap<String, (u32, Vec<u8>)>",
                    },
                    Field {
                        name: "raw",
                        ty: "[u8; 4]",
                    },
                ]),
            },
            Entry {
                name: "closed",
                version: 7,
                fingerprint: 0x0000_0000_0000_0001,
                rust_type: "Closed",
                fields: Some(vec![]),
            },
        ];
        for entry in cases {
            let line = entry.to_string();
            assert_eq!(Entry::parse(&line), Some(entry.clone()), "{line}");
            assert_eq!(Entry::parse(&line).map(|e| e.to_string()), Some(line));
        }
    }

    #[test]
    fn keys_only_comments_and_junk() {
        let text = "# comment\n\nname 2 0x00000000000000ff\nbroken line\nx notanumber 0x1\n";
        let all: Vec<_> = entries(text).collect();
        assert_eq!(all.len(), 1);
        assert_eq!(
            (all[0].name, all[0].version, all[0].fingerprint),
            ("name", 2, 0xff)
        );
        assert_eq!(all[0].fields, None);
    }

    #[test]
    fn field_changes_name_the_field() {
        let f = |name, ty| Field { name, ty };
        let locked = [f("amount", "i64"), f("note", "String")];
        assert_eq!(
            field_changes(&locked, &[f("amount", "u64"), f("note", "String")]).as_deref(),
            Some("field `amount` changed type from `i64` to `u64`")
        );
        assert_eq!(
            field_changes(&locked, &[f("amount", "i64")]).as_deref(),
            Some("field `note` was removed")
        );
        assert_eq!(
            field_changes(
                &locked,
                &[f("amount", "i64"), f("note", "String"), f("at", "u8")]
            )
            .as_deref(),
            Some("field `at: u8` was added")
        );
        assert_eq!(field_changes(&locked, &locked), None);
        assert_eq!(
            field_changes(&locked, &[f("note", "String"), f("amount", "i64")]).as_deref(),
            Some("the fields were reordered")
        );
    }
}
