//! The schema lock file, read at expansion: `events.lock` next to the package's `Cargo.toml`,
//! or the file `#[event(lock = "...")]` names (relative to the source file, as `include_str!`
//! resolves paths). The line format lives in `cqrs_lock`, shared with the runtime, which
//! writes the file (`cqrs_runtime::schema::lock`); the macro only reads it.

use std::path::{Path, PathBuf};

use cqrs_lock::{Entry, Field};

/// What the lock says about one `(name, version)`.
pub(super) struct Lookup {
    /// The lock file, when it exists (so the expansion can make rustc track it).
    pub path: Option<PathBuf>,
    /// The fingerprints locked for `(name, version)` (several when two streams reuse a name).
    pub fingerprints: Vec<u64>,
    /// How the fields differ from the locked line of the same Rust type (or the first line of
    /// `(name, version)`), in words; `None` when the fields read the same.
    pub field_changes: Option<String>,
}

/// Where the lock of an event is: `custom` (from `lock = "..."`) next to `source_file`, or the
/// package's `events.lock`.
pub(super) fn path(custom: Option<&str>, source_file: Option<&Path>) -> Option<PathBuf> {
    match custom {
        Some(custom) if Path::new(custom).is_absolute() => Some(PathBuf::from(custom)),
        Some(custom) => match source_file.and_then(Path::parent) {
            Some(dir) => Some(dir.join(custom)),
            None => manifest_dir().map(|d| d.join(custom)),
        },
        None => manifest_dir().map(|d| d.join(cqrs_lock::FILE_NAME)),
    }
}

fn manifest_dir() -> Option<PathBuf> {
    std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from)
}

/// Reads the lock at `path` and finds the entries of `(name, version)`.
pub(super) fn lookup(
    path: Option<PathBuf>,
    name: &str,
    version: u32,
    rust_type: &str,
    fields: &[(String, String)],
) -> Lookup {
    let text = path.as_ref().and_then(|p| std::fs::read_to_string(p).ok());
    let Some(text) = text else {
        return Lookup {
            path: None,
            fingerprints: Vec::new(),
            field_changes: None,
        };
    };
    let entries: Vec<Entry<'_>> = cqrs_lock::entries(&text)
        .filter(|e| e.name == name && e.version == version)
        .collect();
    let same_type = entries
        .iter()
        .find(|e| e.rust_type == rust_type)
        .or(entries.first());
    let current: Vec<Field<'_>> = fields.iter().map(|(name, ty)| Field { name, ty }).collect();
    let field_changes = same_type
        .and_then(|e| e.fields.as_deref())
        .and_then(|locked| cqrs_lock::field_changes(locked, &current));
    Lookup {
        path,
        fingerprints: entries.iter().map(|e| e.fingerprint).collect(),
        field_changes,
    }
}
