//! The schema lock file (`events.lock` next to the crate's `Cargo.toml`), read at expansion.
//!
//! One line per published event version: `name version 0xfingerprint  free text`. Lines
//! starting with `#` are comments. The runtime writes it (`cqrs_runtime::schema::bless`);
//! the macro only reads it.

use std::path::PathBuf;

/// The lock file's name in the crate root.
pub(super) const FILE_NAME: &str = "events.lock";

/// What the lock says about one `(name, version)`.
pub(super) struct Lookup {
    /// The lock file, when it exists (so the expansion can make rustc track it).
    pub path: Option<PathBuf>,
    /// The fingerprints locked for `(name, version)` (several when two streams reuse a name).
    pub fingerprints: Vec<u64>,
}

/// Reads the crate's lock and finds the entries of `(name, version)`.
pub(super) fn lookup(name: &str, version: u32) -> Lookup {
    let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") else {
        return Lookup {
            path: None,
            fingerprints: Vec::new(),
        };
    };
    let path = PathBuf::from(dir).join(FILE_NAME);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Lookup {
            path: None,
            fingerprints: Vec::new(),
        };
    };
    let fingerprints = text
        .lines()
        .filter_map(parse_line)
        .filter(|(n, v, _)| *n == name && *v == version)
        .map(|(_, _, fp)| fp)
        .collect();
    Lookup {
        path: Some(path),
        fingerprints,
    }
}

/// `name version 0xfingerprint ...`; `None` for comments, blank and unreadable lines.
fn parse_line(line: &str) -> Option<(&str, u32, u64)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut words = line.split_whitespace();
    let name = words.next()?;
    let version = words.next()?.parse().ok()?;
    let fingerprint = u64::from_str_radix(words.next()?.strip_prefix("0x")?, 16).ok()?;
    Some((name, version, fingerprint))
}
