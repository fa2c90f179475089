//! Configurable table names for the SQL backends, validated so that they can be spliced into
//! SQL text safely. Only identifiers are ever spliced; every value is a bound parameter.

use std::fmt;

/// A table, schema or channel name that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidIdentifier {
    /// Not a plain lower-case SQL identifier of 1 to 63 bytes.
    #[error(
        "`{}` is not a valid name: use 1 to 63 characters from a-z, 0-9 and _, not starting with a digit",
        crate::store::clip(.0)
    )]
    Malformed(String),
    /// Two tables of one store would get the same name.
    #[error("the {first} and {second} tables would both be named `{name}`: give each its own name")]
    Collision {
        /// The name both would get.
        name: String,
        /// The first table's role.
        first: &'static str,
        /// The second table's role.
        second: &'static str,
    },
}

/// A validated identifier: `[a-z_][a-z0-9_]{0,62}`. Always emitted double-quoted.
///
/// 63 bytes is PostgreSQL's limit (longer names are cut there without a word); SQLite gets
/// the same rule so that a store moves between the two unchanged.
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
            Err(InvalidIdentifier::Malformed(name.to_owned()))
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
/// The defaults are `events`, `snapshots`, `checkpoints`, `dead_letters`, `claims` and
/// `schema_migrations`; [`TableNames::with_prefix`] prefixes all of them, so that several
/// stores can share one database (or one PostgreSQL schema). Each name is validated, and two
/// tables may not share a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    pub(crate) events: Ident,
    pub(crate) snapshots: Ident,
    pub(crate) checkpoints: Ident,
    pub(crate) dead_letters: Ident,
    pub(crate) claims: Ident,
    pub(crate) migrations: Ident,
}

impl TableNames {
    /// The default names with `prefix` in front (`app_` gives `app_events`, ...).
    pub fn with_prefix(prefix: &str) -> Result<Self, InvalidIdentifier> {
        Self::from_names([
            &format!("{prefix}events"),
            &format!("{prefix}snapshots"),
            &format!("{prefix}checkpoints"),
            &format!("{prefix}dead_letters"),
            &format!("{prefix}claims"),
            &format!("{prefix}schema_migrations"),
        ])
    }

    /// Names the events table.
    pub fn events_table(self, name: &str) -> Result<Self, InvalidIdentifier> {
        self.replace(0, name)
    }

    /// Names the snapshots table.
    pub fn snapshots_table(self, name: &str) -> Result<Self, InvalidIdentifier> {
        self.replace(1, name)
    }

    /// Names the checkpoints table.
    pub fn checkpoints_table(self, name: &str) -> Result<Self, InvalidIdentifier> {
        self.replace(2, name)
    }

    /// Names the dead-letters table.
    pub fn dead_letters_table(self, name: &str) -> Result<Self, InvalidIdentifier> {
        self.replace(3, name)
    }

    /// Names the claims table.
    pub fn claims_table(self, name: &str) -> Result<Self, InvalidIdentifier> {
        self.replace(4, name)
    }

    /// Names the migrations table.
    pub fn migrations_table(self, name: &str) -> Result<Self, InvalidIdentifier> {
        self.replace(5, name)
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

    /// The dead-letters table's name.
    pub fn dead_letters(&self) -> &str {
        self.dead_letters.as_str()
    }

    /// The claims table's name.
    pub fn claims(&self) -> &str {
        self.claims.as_str()
    }

    /// The migrations table's name.
    pub fn migrations(&self) -> &str {
        self.migrations.as_str()
    }

    const ROLES: [&'static str; 6] = [
        "events",
        "snapshots",
        "checkpoints",
        "dead-letters",
        "claims",
        "migrations",
    ];

    fn names(&self) -> [&str; 6] {
        [
            self.events(),
            self.snapshots(),
            self.checkpoints(),
            self.dead_letters(),
            self.claims(),
            self.migrations(),
        ]
    }

    fn replace(self, index: usize, name: &str) -> Result<Self, InvalidIdentifier> {
        let mut names = self.names().map(str::to_owned);
        if let Some(slot) = names.get_mut(index) {
            *slot = name.to_owned();
        }
        let [a, b, c, d, e, f] = &names;
        Self::from_names([a, b, c, d, e, f])
    }

    fn from_names(names: [&str; 6]) -> Result<Self, InvalidIdentifier> {
        for (i, name) in names.iter().enumerate() {
            for (j, other) in names.iter().enumerate().skip(i + 1) {
                if name == other {
                    return Err(InvalidIdentifier::Collision {
                        name: (*name).to_owned(),
                        first: Self::ROLES.get(i).copied().unwrap_or("?"),
                        second: Self::ROLES.get(j).copied().unwrap_or("?"),
                    });
                }
            }
        }
        let [
            events,
            snapshots,
            checkpoints,
            dead_letters,
            claims,
            migrations,
        ] = names;
        Ok(Self {
            events: Ident::new(events)?,
            snapshots: Ident::new(snapshots)?,
            checkpoints: Ident::new(checkpoints)?,
            dead_letters: Ident::new(dead_letters)?,
            claims: Ident::new(claims)?,
            migrations: Ident::new(migrations)?,
        })
    }
}

impl Default for TableNames {
    fn default() -> Self {
        Self {
            events: Ident("events".into()),
            snapshots: Ident("snapshots".into()),
            checkpoints: Ident("checkpoints".into()),
            dead_letters: Ident("dead_letters".into()),
            claims: Ident("claims".into()),
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

    #[test]
    fn colliding_and_overlong_names_are_refused() {
        let collision = TableNames::default().snapshots_table("events").unwrap_err();
        assert!(matches!(collision, InvalidIdentifier::Collision { .. }));
        assert!(collision.to_string().contains("events and snapshots"));
        // 60 + "schema_migrations" is over PostgreSQL's 63 bytes.
        assert!(TableNames::with_prefix(&"p".repeat(50)).is_err());
        let named = TableNames::default().events_table("log").unwrap();
        assert_eq!(named.events(), "log");
        assert_eq!(named.snapshots(), "snapshots");
    }
}
