//! Configurable table names for the SQL stores, validated so that they can be spliced into SQL
//! text safely. Only identifiers are ever spliced; every value is a bound parameter.

use std::fmt;

/// A table or schema name that is not a plain lower-case SQL identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a valid table or schema name: use 1 to 63 characters from a-z, 0-9 and _, not starting with a digit"
)]
pub struct InvalidIdentifier(pub String);

/// A validated identifier: `[a-z_][a-z0-9_]{0,62}`. Always emitted double-quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ident(String);

impl Ident {
    pub(crate) fn new(name: &str) -> Result<Self, InvalidIdentifier> {
        let mut chars = name.chars();
        let valid_start = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
        let valid_rest = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if valid_start && valid_rest && name.len() <= 63 {
            Ok(Self(name.to_owned()))
        } else {
            Err(InvalidIdentifier(name.to_owned()))
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Validated: no quote can occur inside.
        write!(f, "\"{}\"", self.0)
    }
}

/// The names of a SQL store's tables.
///
/// The defaults are `events`, `snapshots`, `checkpoints` and `schema_migrations`;
/// [`TableNames::with_prefix`] prefixes all four, so that several stores can share one
/// database (or one PostgreSQL schema).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    pub(crate) events: Ident,
    pub(crate) snapshots: Ident,
    pub(crate) checkpoints: Ident,
    pub(crate) migrations: Ident,
}

impl TableNames {
    /// Explicit names for the four tables.
    pub fn new(
        events: &str,
        snapshots: &str,
        checkpoints: &str,
        migrations: &str,
    ) -> Result<Self, InvalidIdentifier> {
        Ok(Self {
            events: Ident::new(events)?,
            snapshots: Ident::new(snapshots)?,
            checkpoints: Ident::new(checkpoints)?,
            migrations: Ident::new(migrations)?,
        })
    }

    /// The default names with `prefix` in front (`app_` gives `app_events`, ...).
    pub fn with_prefix(prefix: &str) -> Result<Self, InvalidIdentifier> {
        Self::new(
            &format!("{prefix}events"),
            &format!("{prefix}snapshots"),
            &format!("{prefix}checkpoints"),
            &format!("{prefix}schema_migrations"),
        )
    }

    /// The events table's name.
    pub fn events(&self) -> &str {
        self.events.as_str()
    }

    /// The snapshots table's name.
    pub fn snapshots(&self) -> &str {
        self.snapshots.as_str()
    }

    /// The checkpoints table's name.
    pub fn checkpoints(&self) -> &str {
        self.checkpoints.as_str()
    }

    /// The migrations table's name.
    pub fn migrations(&self) -> &str {
        self.migrations.as_str()
    }
}

impl Default for TableNames {
    fn default() -> Self {
        Self {
            events: Ident("events".into()),
            snapshots: Ident("snapshots".into()),
            checkpoints: Ident("checkpoints".into()),
            migrations: Ident("schema_migrations".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_validated() {
        assert!(Ident::new("events").is_ok());
        assert!(Ident::new("_t1").is_ok());
        for bad in ["", "1t", "Events", "a\"b", "a;drop", "a b", &"x".repeat(64)] {
            assert!(Ident::new(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(Ident::new("ok").map(|i| i.to_string()), Ok("\"ok\"".into()));
        assert!(TableNames::with_prefix("Bad").is_err());
    }
}
