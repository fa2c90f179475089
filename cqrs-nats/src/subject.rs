//! Subjects: where the relay publishes each event.

use std::fmt;
use std::sync::Arc;

use cqrs_runtime::store::StoredEvent;

/// A function that names the subject of an event.
pub type SubjectFn = dyn Fn(&StoredEvent) -> String + Send + Sync;

/// Where the relay publishes each event.
#[derive(Clone)]
pub enum Subjects {
    /// `<prefix>.<stream_type>.<event_type>`, each of the last two a [`token`]. The default.
    ByType {
        /// The first tokens (`events`, `bank.events`).
        prefix: String,
    },
    /// A subject of the application's choosing (it must fall under the stream's subjects).
    Custom(Arc<SubjectFn>),
}

impl Subjects {
    /// `<prefix>.<stream_type>.<event_type>`.
    pub fn by_type(prefix: impl Into<String>) -> Self {
        Self::ByType {
            prefix: prefix.into(),
        }
    }

    /// The subject `f` names.
    pub fn custom(f: impl Fn(&StoredEvent) -> String + Send + Sync + 'static) -> Self {
        Self::Custom(Arc::new(f))
    }

    /// The subject of `event`.
    pub fn subject(&self, event: &StoredEvent) -> String {
        match self {
            Self::ByType { prefix } => {
                format!(
                    "{prefix}.{}.{}",
                    token(&event.stream_type),
                    token(&event.event_type)
                )
            }
            Self::Custom(f) => f(event),
        }
    }
}

impl fmt::Debug for Subjects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ByType { prefix } => write!(f, "ByType({prefix:?})"),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// `text` as one subject token: `.`, `*`, `>`, whitespace and control characters become
/// `_`, and an empty text is `_`.
pub fn token(text: &str) -> String {
    if text.is_empty() {
        return "_".to_owned();
    }
    text.chars()
        .map(|c| match c {
            '.' | '*' | '>' => '_',
            c if c.is_whitespace() || c.is_control() => '_',
            c => c,
        })
        .collect()
}

/// Whether `prefix` is usable in front of subject tokens: non-empty tokens separated by `.`,
/// without wildcards or whitespace.
pub(crate) fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.split('.').all(|t| {
            !t.is_empty()
                && !t
                    .chars()
                    .any(|c| c == '*' || c == '>' || c.is_whitespace() || c.is_control())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_hold_no_separator_wildcard_or_space() {
        assert_eq!(token("bank.account"), "bank_account");
        assert_eq!(token("a b*c>d\n"), "a_b_c_d_");
        assert_eq!(token(""), "_");
        assert_eq!(token("déjà-vu"), "déjà-vu");
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(valid_prefix("events"));
        assert!(valid_prefix("bank.events"));
        assert!(!valid_prefix(""));
        assert!(!valid_prefix("a..b"));
        assert!(!valid_prefix("a.*"));
        assert!(!valid_prefix("a b"));
    }
}
