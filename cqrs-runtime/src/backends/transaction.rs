//! The outcome and error of an append inside a transaction that also holds the caller's
//! writes: `PostgresEventStore::append_with` and `SqliteEventStore::append_with`.

use crate::store::{AppendOutcome, StoreError};

/// What an append in the caller's transaction did (`append_with` of the SQL stores).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionOutcome<T> {
    /// The events and the caller's writes committed together.
    Committed {
        /// The append's outcome.
        outcome: AppendOutcome,
        /// What the caller's writes returned.
        value: T,
    },
    /// Every event of the batch was already stored (a retry of an append whose commit the
    /// caller did not see): the original outcome. The caller's writes did not run, since
    /// they committed with the original append.
    AlreadyStored(AppendOutcome),
}

impl<T> TransactionOutcome<T> {
    /// The append's outcome, either way.
    pub fn outcome(&self) -> &AppendOutcome {
        match self {
            Self::Committed { outcome, .. } | Self::AlreadyStored(outcome) => outcome,
        }
    }
}

/// Why an append in the caller's transaction (`append_with`) committed nothing.
#[derive(Debug, thiserror::Error)]
pub enum TransactionError<E> {
    /// The append was refused (conflict, clashing id) or the database failed; the caller's
    /// writes did not run, or were rolled back.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The caller's writes failed; the events were rolled back with them.
    #[error("the writes in the append's transaction failed; the events were rolled back")]
    Caller(#[source] E),
}
