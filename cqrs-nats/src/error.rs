//! Why a NATS operation of this crate failed.

use cqrs_runtime::store::StoreError;

/// Why setting up or using JetStream failed.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// The JetStream stream exists with a setting other than the configured one. Nothing was
    /// changed: update the stream (`nats stream edit`) or the [`StreamConfig`](crate::StreamConfig).
    #[error(
        "JetStream stream `{stream}` exists with {field} = {actual}, the configuration says {expected}"
    )]
    StreamMismatch {
        /// The stream's name.
        stream: String,
        /// The setting that differs (`subjects`, `retention`, `replicas`, `duplicate_window`,
        /// `storage`).
        field: &'static str,
        /// The configured value.
        expected: String,
        /// The value on the server.
        actual: String,
    },
    /// A configuration value is not usable (an empty name, a subject prefix with invalid
    /// characters).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The server answered with an error, or could not be reached in time.
    #[error("JetStream request failed: {0}")]
    JetStream(String),
}

impl NatsError {
    /// Wraps any `async-nats` error.
    pub(crate) fn jetstream(error: impl std::fmt::Display) -> Self {
        Self::JetStream(error.to_string())
    }
}

impl From<NatsError> for StoreError {
    /// A mismatch or bad configuration is permanent ([`StoreError::Backend`]); a failed request
    /// may succeed later ([`StoreError::Unavailable`]).
    fn from(error: NatsError) -> Self {
        match error {
            NatsError::JetStream(_) => StoreError::unavailable(error),
            other => StoreError::backend(other),
        }
    }
}
