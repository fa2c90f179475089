//! The JetStream stream the relay publishes into: its configuration, created or checked.

use std::collections::BTreeSet;
use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::NatsError;
use crate::setup::{Refusal, passing, patiently};

/// How long the stream keeps messages ([`StreamConfig::retention`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Retention {
    /// Until a limit (age, count, bytes) is reached: every consumer can read the history. The
    /// default, and what a new consumer's catch-up needs.
    #[default]
    Limits,
    /// Until every consumer acknowledged it.
    Interest,
    /// Until one consumer acknowledged it.
    WorkQueue,
}

impl Retention {
    fn to_nats(self) -> stream::RetentionPolicy {
        match self {
            Self::Limits => stream::RetentionPolicy::Limits,
            Self::Interest => stream::RetentionPolicy::Interest,
            Self::WorkQueue => stream::RetentionPolicy::WorkQueue,
        }
    }
}

/// Where the stream keeps messages ([`StreamConfig::storage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Storage {
    /// On disk (the default): survives a server restart.
    #[default]
    File,
    /// In memory.
    Memory,
}

impl Storage {
    fn to_nats(self) -> stream::StorageType {
        match self {
            Self::File => stream::StorageType::File,
            Self::Memory => stream::StorageType::Memory,
        }
    }
}

/// The JetStream stream the relay publishes into.
///
/// [`ensure_stream`] creates it when it does not exist, and otherwise checks the settings
/// named here against the server's: a difference is [`NatsError::StreamMismatch`] (nothing is
/// changed on the server). Limits not named here (`max_age`, `max_bytes`) are applied when
/// the stream is created and not checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// The stream's name (no `.`, `*`, `>` or whitespace).
    pub name: String,
    /// The subjects it captures: `<prefix>.>` for a relay's default subjects.
    pub subjects: Vec<String>,
    /// How long messages are kept.
    pub retention: Retention,
    /// How many servers hold each message (1 on a single server; 3 or 5 in a cluster).
    pub replicas: usize,
    /// How long JetStream remembers a `Nats-Msg-Id` to drop a second publish of it: the
    /// longest a relay may take to publish an event again after a crash (2 minutes by
    /// default).
    pub duplicate_window: Duration,
    /// Where messages are kept.
    pub storage: Storage,
    /// The oldest a message may get before it is removed (`Duration::ZERO`: no limit).
    pub max_age: Duration,
}

impl StreamConfig {
    /// A stream named `name` capturing `<prefix>.>`: limits retention, one replica, a
    /// two-minute duplicate window, file storage, no age limit.
    pub fn new(name: impl Into<String>, prefix: &str) -> Self {
        Self {
            name: name.into(),
            subjects: vec![format!("{prefix}.>")],
            retention: Retention::Limits,
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            storage: Storage::File,
            max_age: Duration::ZERO,
        }
    }

    /// With `replicas` replicas.
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas;
        self
    }

    /// With this duplicate window.
    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.duplicate_window = window;
        self
    }

    /// With this retention.
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// With this storage.
    pub fn storage(mut self, storage: Storage) -> Self {
        self.storage = storage;
        self
    }

    fn to_nats(&self) -> stream::Config {
        stream::Config {
            name: self.name.clone(),
            subjects: self.subjects.clone(),
            retention: self.retention.to_nats(),
            num_replicas: self.replicas,
            duplicate_window: self.duplicate_window,
            storage: self.storage.to_nats(),
            max_age: self.max_age,
            ..Default::default()
        }
    }

    /// The first setting that differs from the server's `actual` configuration.
    fn mismatch(&self, actual: &stream::Config) -> Option<NatsError> {
        let differs = |field, expected: String, actual: String| {
            Some(NatsError::StreamMismatch {
                stream: self.name.clone(),
                field,
                expected,
                actual,
            })
        };
        let wanted: BTreeSet<&String> = self.subjects.iter().collect();
        let have: BTreeSet<&String> = actual.subjects.iter().collect();
        if wanted != have {
            return differs("subjects", format!("{wanted:?}"), format!("{have:?}"));
        }
        if self.retention.to_nats() != actual.retention {
            return differs(
                "retention",
                format!("{:?}", self.retention),
                format!("{:?}", actual.retention),
            );
        }
        if self.replicas.max(1) != actual.num_replicas.max(1) {
            return differs(
                "replicas",
                self.replicas.to_string(),
                actual.num_replicas.to_string(),
            );
        }
        if self.duplicate_window != actual.duplicate_window {
            return differs(
                "duplicate_window",
                format!("{:?}", self.duplicate_window),
                format!("{:?}", actual.duplicate_window),
            );
        }
        if self.storage.to_nats() != actual.storage {
            return differs(
                "storage",
                format!("{:?}", self.storage),
                format!("{:?}", actual.storage),
            );
        }
        None
    }
}

/// Creates the stream `config` describes, or checks the existing one against it
/// ([`NatsError::StreamMismatch`] when a checked setting differs).
///
/// A request the server refuses for a passing reason (a cluster without a leader yet, a
/// store it could not create at that moment) is retried for up to
/// [`SETUP_PATIENCE`](crate::SETUP_PATIENCE).
pub async fn ensure_stream(
    jetstream: &jetstream::Context,
    config: &StreamConfig,
) -> Result<stream::Stream, NatsError> {
    if config.name.is_empty() || config.subjects.is_empty() {
        return Err(NatsError::Config(
            "a stream needs a name and at least one subject".to_owned(),
        ));
    }
    patiently(|| attempt(jetstream, config), |r: &Refusal| r.passing)
        .await
        .map_err(|r| r.error)
}

/// One try of [`ensure_stream`].
async fn attempt(
    jetstream: &jetstream::Context,
    config: &StreamConfig,
) -> Result<stream::Stream, Refusal> {
    use jetstream::context::{CreateStreamErrorKind, GetStreamErrorKind};
    match jetstream.get_stream(&config.name).await {
        Ok(mut stream) => {
            let info = stream.info().await.map_err(Refusal::request)?;
            if let Some(mismatch) = config.mismatch(&info.config) {
                return Err(Refusal::lasting(mismatch));
            }
            Ok(stream)
        }
        Err(error)
            if matches!(
                error.kind(),
                GetStreamErrorKind::JetStream(ref e)
                    if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
            ) =>
        {
            jetstream
                .create_stream(config.to_nats())
                .await
                .map_err(|error| {
                    let passing = match error.kind() {
                        CreateStreamErrorKind::JetStreamUnavailable
                        | CreateStreamErrorKind::TimedOut => true,
                        // Created by another relay in the meantime: the next try checks it.
                        CreateStreamErrorKind::JetStream(e) => {
                            passing(&e) || e.error_code() == jetstream::ErrorCode::STREAM_NAME_EXIST
                        }
                        _ => false,
                    };
                    Refusal::new(error, passing)
                })
        }
        Err(error) => Err(Refusal::get_stream(error)),
    }
}
