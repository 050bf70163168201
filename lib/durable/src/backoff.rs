//! Jittered exponential backoff for retry and reconnect loops.
//!
//! Attempt `n` (from 0) waits `d = min(max, base * 2^n)` with "equal
//! jitter": half of `d` is fixed and half is random, so a random time in
//! `[d/2, d]`. Thirty-two cameras that lost the same switch do not
//! reconnect in lock step, yet no wait is ever near zero.
//!
//! Invalid settings cannot be built: [`Backoff::try_new`] checks them once.
//! The type serves two styles of loop: a stateful one ([`Backoff::next_delay`]
//! and [`Backoff::reset`], the edge's reconnect loops) and a stateless one
//! that keeps its own attempt counter and passes the jitter in
//! ([`Backoff::delay`], ingest's writer; deterministic for tests).

use std::time::Duration;

use rand::Rng;

/// Why backoff settings were refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BackoffError {
    /// The base delay is zero.
    #[error("invalid backoff: the base delay must be greater than zero")]
    ZeroBase,
    /// The cap is below the base delay.
    #[error("invalid backoff: max ({max:?}) must be at least the base ({base:?})")]
    MaxBelowBase {
        /// The base delay given.
        base: Duration,
        /// The cap given.
        max: Duration,
    },
}

/// Backoff settings plus the attempt counter of one retry loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff from `base` doubling up to `max`; needs `0 < base <= max`.
    pub fn try_new(base: Duration, max: Duration) -> Result<Self, BackoffError> {
        if base.is_zero() {
            return Err(BackoffError::ZeroBase);
        }
        if max < base {
            return Err(BackoffError::MaxBelowBase { base, max });
        }
        Ok(Self {
            base,
            max,
            attempt: 0,
        })
    }

    /// 0.5 s doubling to 30 s: the default for network peers.
    pub fn network() -> Self {
        Self {
            base: Duration::from_millis(500),
            max: Duration::from_secs(30),
            attempt: 0,
        }
    }

    /// The base delay.
    pub fn base(&self) -> Duration {
        self.base
    }

    /// The cap.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The un-jittered ceiling of attempt `attempt` (0-based):
    /// `min(max, base * 2^attempt)`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(31));
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The delay before retry `attempt` (0-based), given `jitter` in
    /// `[0, 1]` (0 gives the shortest, 1 the longest delay; outside values
    /// are clamped, NaN counts as 1). Does not touch the attempt counter.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            1.0
        };
        self.ceiling(attempt).mul_f64(0.5 + 0.5 * jitter)
    }

    /// The delay before the next attempt, with random jitter; advances the
    /// attempt counter.
    pub fn next_delay(&mut self) -> Duration {
        let jitter = rand::rng().random_range(0.0..=1.0);
        let d = self.delay(self.attempt, jitter);
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    /// Call after a success: the next failure starts from the base again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Attempts counted by [`Backoff::next_delay`] since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_settings() {
        assert_eq!(
            Backoff::try_new(Duration::ZERO, Duration::from_secs(1)).unwrap_err(),
            BackoffError::ZeroBase
        );
        assert_eq!(
            Backoff::try_new(Duration::from_secs(2), Duration::from_secs(1)).unwrap_err(),
            BackoffError::MaxBelowBase {
                base: Duration::from_secs(2),
                max: Duration::from_secs(1)
            }
        );
        assert!(Backoff::try_new(Duration::from_secs(1), Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn delay_is_deterministic_in_the_jitter() {
        let b = Backoff::try_new(Duration::from_millis(100), Duration::from_secs(2)).unwrap();
        assert_eq!(b.delay(0, 1.0), Duration::from_millis(100));
        assert_eq!(b.delay(0, 0.0), Duration::from_millis(50));
        assert_eq!(b.delay(3, 1.0), Duration::from_millis(800));
        assert_eq!(b.delay(10, 1.0), Duration::from_secs(2));
        assert_eq!(b.delay(u32::MAX, 1.0), Duration::from_secs(2));
        assert_eq!(b.delay(u32::MAX, 0.0), Duration::from_secs(1));
        assert_eq!(b.delay(0, f64::NAN), Duration::from_millis(100));
        assert_eq!(b.delay(0, -3.0), Duration::from_millis(50));
        assert_eq!(b.delay(0, 7.0), Duration::from_millis(100));
    }

    #[test]
    fn grows_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::try_new(Duration::from_millis(100), Duration::from_secs(1)).unwrap();
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        assert_eq!(b.attempts(), 1);
        for _ in 0..40 {
            let d = b.next_delay();
            assert!(d <= Duration::from_secs(1), "{d:?} over the cap");
        }
        let late = b.next_delay();
        assert!(
            late >= Duration::from_millis(500),
            "{late:?} below half the cap"
        );
        b.reset();
        assert_eq!(b.attempts(), 0);
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn network_default() {
        let b = Backoff::network();
        assert_eq!(b.base(), Duration::from_millis(500));
        assert_eq!(b.max(), Duration::from_secs(30));
        assert_eq!(b, Backoff::try_new(b.base(), b.max()).unwrap());
    }
}
