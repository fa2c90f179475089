//! The retry policy: how often a command that lost a race is re-decided.

use std::time::Duration;

/// How often a command is re-decided when it loses an optimistic-concurrency race.
///
/// The default makes one attempt (no retry). Between attempts the repository waits a small,
/// jittered, exponential back-off (which needs a Tokio runtime with time enabled when the
/// back-off is not zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    attempts: u32,
    base_backoff: Duration,
    max_backoff: Duration,
}

impl RetryPolicy {
    /// One attempt, no retry.
    pub const fn none() -> Self {
        Self {
            attempts: 1,
            base_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(50),
        }
    }

    /// `n` attempts in total (the first one included; 0 counts as 1), with the default
    /// back-off: 1 ms doubling up to 50 ms, jittered.
    pub const fn attempts(n: u32) -> Self {
        let mut policy = Self::none();
        policy.attempts = if n == 0 { 1 } else { n };
        policy
    }

    /// Sets the first back-off and its cap. `Duration::ZERO` only yields to the scheduler.
    pub const fn with_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.base_backoff = base;
        self.max_backoff = max;
        self
    }

    /// The total number of attempts.
    pub const fn max_attempts(&self) -> u32 {
        self.attempts
    }

    /// The pause after the failed attempt number `attempt` (1-based).
    pub(super) fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_backoff
            .saturating_mul(1 << attempt.saturating_sub(1).min(16));
        let capped = exp.min(self.max_backoff).as_nanos();
        // Jitter in [50%, 100%) from the random bits of a UUIDv7.
        let random = uuid::Uuid::now_v7().as_u128() & 0xffff;
        let nanos = capped / 2 + (capped / 2) * random / 0x1_0000;
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::none()
    }
}
