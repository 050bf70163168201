//! Jittered exponential backoff for reconnect loops.
//!
//! Every retry loop on the box (RTSP sessions, the MQTT link, Modbus devices)
//! waits `base * 2^n` capped at `max`, with "equal jitter": half the delay is
//! fixed and half is random, so 32 cameras that lost the same switch do not
//! reconnect in lock step, yet no wait is ever near zero.
//!
//! Invalid settings cannot be built: `Backoff::try_new` checks them once.

use std::time::Duration;

use rand::Rng;

/// Why backoff settings were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BackoffError {
    #[error("backoff base must be greater than zero")]
    ZeroBase,
    #[error("backoff max ({max:?}) must be at least the base ({base:?})")]
    MaxBelowBase { base: Duration, max: Duration },
}

/// State of one retry loop.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
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

    /// The delay before the next attempt; advances the attempt counter.
    pub fn next_delay(&mut self) -> Duration {
        let cap = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let half = cap / 2;
        let jitter_ms = rand::rng().random_range(0..=half.as_millis().max(1) as u64);
        half + Duration::from_millis(jitter_ms)
    }

    /// The un-jittered ceiling of the next delay.
    fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// Call after a success: the next failure starts from the base again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

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
        assert!(Backoff::try_new(Duration::from_secs(2), Duration::from_secs(1)).is_err());
    }

    #[test]
    fn grows_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::try_new(Duration::from_millis(100), Duration::from_secs(1)).unwrap();
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(101));
        for _ in 0..10 {
            let d = b.next_delay();
            assert!(d <= Duration::from_millis(1001), "{d:?} over the cap");
        }
        let late = b.next_delay();
        assert!(
            late >= Duration::from_millis(500),
            "{late:?} below half the cap"
        );
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(101));
    }
}
