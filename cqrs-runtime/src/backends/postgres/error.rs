//! PostgreSQL errors as store errors: the server's own words, and whether retrying may help.

use std::fmt;

use tokio_postgres::error::SqlState;

use crate::store::StoreError;

/// A PostgreSQL driver or server error, displayed with what the server said: severity,
/// SQLSTATE, message, detail and hint (the driver's own `Display` says only `db error`).
#[derive(Debug)]
pub struct PostgresError {
    text: String,
    code: Option<SqlState>,
    source: tokio_postgres::Error,
}

impl PostgresError {
    /// The SQLSTATE the server sent, if the error came from the server.
    pub fn code(&self) -> Option<&SqlState> {
        self.code.as_ref()
    }

    /// The driver's error.
    pub fn driver(&self) -> &tokio_postgres::Error {
        &self.source
    }
}

impl fmt::Display for PostgresError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The text already holds the driver's sources (or the server's fields): no source, so that
/// error chains do not repeat the driver's bare `db error`.
impl std::error::Error for PostgresError {}

/// SQLSTATEs after which the same operation may succeed when run again.
fn transient_code(code: &SqlState) -> bool {
    let class = code.code().get(..2).unwrap_or_default();
    // 08: connection exception; 40: transaction rollback (serialization failure, deadlock);
    // 53: insufficient resources (too many connections); 57P0x: the server is shutting
    // down, crashed or not yet accepting connections.
    matches!(class, "08" | "40" | "53")
        || [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::LOCK_NOT_AVAILABLE,
        ]
        .contains(code)
}

/// A driver error as a store error: [`StoreError::Unavailable`] when the connection is gone or
/// the server asks to retry, else [`StoreError::Backend`]; both carry a [`PostgresError`].
pub(crate) fn db(error: tokio_postgres::Error) -> StoreError {
    let (text, code) = match error.as_db_error() {
        Some(db) => {
            let mut text = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
            if let Some(detail) = db.detail() {
                text.push_str(&format!(" (detail: {detail})"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!(" (hint: {hint})"));
            }
            (text, Some(db.code().clone()))
        }
        None => {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            (text, error.code().cloned())
        }
    };
    let transient =
        error.is_closed() || code.as_ref().is_some_and(transient_code) || io_failure(&error);
    let wrapped = PostgresError {
        text,
        code,
        source: error,
    };
    if transient {
        StoreError::unavailable(wrapped)
    } else {
        StoreError::backend(wrapped)
    }
}

/// Whether the error comes from the network (refused, reset, timed out), not from the server.
fn io_failure(error: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    let text = error.to_string();
    text.contains("timed out") || text.contains("error connecting")
}
