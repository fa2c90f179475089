//! Set-up requests (create or check a stream, create a consumer) retried while the server
//! refuses them for a reason that passes.
//!
//! A JetStream server answers some requests with an error that says "not now" rather than
//! "never": a cluster still electing its leaders (no responders, a timeout, `503`), a stream
//! whose store could not be created at that moment (`500`, error code 10049, seen on loaded
//! single servers), a peer that is not yet a member. A relay or a source started together with
//! its server, or while a node restarts, would fail on them. [`patiently`] repeats such a
//! request with back-off for up to [`SETUP_PATIENCE`]; an error that retrying cannot fix (a
//! `4xx` answer: a bad name, a subject overlap, a missing stream) returns at once.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream;
use tokio::time::Instant;

use crate::NatsError;

/// How long a set-up request refused for a passing reason is retried before its error is
/// returned.
pub const SETUP_PATIENCE: Duration = Duration::from_secs(30);

const FIRST_PAUSE: Duration = Duration::from_millis(50);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// Whether a JetStream API error is the server's "not now": a `5xx` status, or a cluster
/// that is not ready (no peers, not a member, no leader yet).
pub(crate) fn passing(error: &jetstream::Error) -> bool {
    use jetstream::ErrorCode;
    error.code() >= 500
        || [
            ErrorCode::CLUSTER_NOT_AVAILABLE,
            ErrorCode::CLUSTER_NO_PEERS,
            ErrorCode::CLUSTER_INCOMPLETE,
            ErrorCode::CLUSTER_NOT_LEADER,
            ErrorCode::CLUSTER_PEER_NOT_MEMBER,
            ErrorCode::CLUSTER_NOT_ASSIGNED,
        ]
        .contains(&error.error_code())
}

/// A set-up request's error, and whether retrying may help.
pub(crate) struct Refusal {
    pub(crate) error: NatsError,
    pub(crate) passing: bool,
}

impl Refusal {
    /// A refusal that retrying cannot fix.
    pub(crate) fn lasting(error: NatsError) -> Self {
        Self {
            error,
            passing: false,
        }
    }

    /// An error of a plain request (stream info): no responders and timeouts pass, and so
    /// does a JetStream answer that [`passing`] accepts.
    pub(crate) fn request(error: jetstream::context::RequestError) -> Self {
        use jetstream::context::RequestErrorKind;
        let passing = match error.kind() {
            RequestErrorKind::NoResponders | RequestErrorKind::TimedOut => true,
            _ => answered_passing(&error),
        };
        Self::new(error, passing)
    }

    /// An error of looking a stream up: a failed request passes, and so does a JetStream
    /// answer that [`passing`] accepts.
    pub(crate) fn get_stream(error: jetstream::context::GetStreamError) -> Self {
        use jetstream::context::GetStreamErrorKind;
        let passing = match error.kind() {
            GetStreamErrorKind::Request => true,
            GetStreamErrorKind::JetStream(e) => passing(&e),
            _ => false,
        };
        Self::new(error, passing)
    }

    pub(crate) fn new(error: impl std::fmt::Display, passing: bool) -> Self {
        Self {
            error: NatsError::jetstream(error),
            passing,
        }
    }
}

/// Whether the error wraps a JetStream answer that [`passing`] accepts.
pub(crate) fn answered_passing(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(error.source(), |e| e.source())
        .filter_map(|e| e.downcast_ref::<jetstream::Error>())
        .any(passing)
}

/// Runs `request` until it succeeds, fails for good (`retry(&error)` is false), or
/// [`SETUP_PATIENCE`] has passed since the first attempt (the last error is returned).
pub(crate) async fn patiently<T, E, F, Fut>(
    mut request: F,
    retry: impl Fn(&E) -> bool,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let give_up = Instant::now() + SETUP_PATIENCE;
    let mut pause = FIRST_PAUSE;
    loop {
        match request().await {
            Ok(value) => return Ok(value),
            Err(error) if retry(&error) && Instant::now() + pause < give_up => {
                tracing::debug!(?pause, "JetStream set-up request refused for now; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
            Err(error) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_passing_refusal_is_retried_until_it_succeeds() {
        let attempts = AtomicU32::new(0);
        let result: Result<u32, &str> = patiently(
            || async {
                let n = attempts.fetch_add(1, Ordering::SeqCst) + 1;
                if n < 4 { Err("not now") } else { Ok(n) }
            },
            |e| *e == "not now",
        )
        .await;
        assert_eq!(result, Ok(4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lasting_refusal_returns_at_once() {
        let attempts = AtomicU32::new(0);
        let result: Result<(), &str> = patiently(
            || async {
                attempts.fetch_add(1, Ordering::SeqCst);
                Err("never")
            },
            |e| *e == "not now",
        )
        .await;
        assert_eq!(result, Err("never"));
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retrying_stops_after_the_patience() {
        let started = Instant::now();
        let attempts = AtomicU32::new(0);
        let result: Result<(), &str> = patiently(
            || async {
                attempts.fetch_add(1, Ordering::SeqCst);
                Err("not now")
            },
            |e| *e == "not now",
        )
        .await;
        assert_eq!(result, Err("not now"));
        assert!(started.elapsed() <= SETUP_PATIENCE);
        assert!(attempts.load(Ordering::SeqCst) > 10);
    }
}
