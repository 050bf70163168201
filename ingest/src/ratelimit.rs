//! Rate limiting for repetitive log lines.
//!
//! A broken edge can send thousands of bad messages a second; each one is
//! counted in metrics, but logging each would drown the log. [`LogLimiter`]
//! lets through the first `burst` lines per key in each `window`, then
//! stays quiet and reports how many it suppressed when the next window
//! opens. Time is passed in, so tests need no clock.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What the caller should do with one log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log it. `suppressed` lines of this key were dropped since the last
    /// one logged (say so in the line when non-zero).
    Log {
        /// Lines dropped before this one.
        suppressed: u64,
    },
    /// Drop it.
    Suppress,
}

/// Per-key log budget: `burst` lines per `window`.
#[derive(Debug)]
pub struct LogLimiter {
    burst: u32,
    window: Duration,
    keys: HashMap<&'static str, KeyState>,
}

#[derive(Debug)]
struct KeyState {
    window_start: Instant,
    logged: u32,
    suppressed: u64,
}

impl LogLimiter {
    /// A limiter allowing `burst` lines per key per `window`.
    pub fn new(burst: u32, window: Duration) -> Self {
        LogLimiter {
            burst,
            window,
            keys: HashMap::new(),
        }
    }

    /// Decides about one line with `key` at `now`.
    pub fn check(&mut self, key: &'static str, now: Instant) -> Verdict {
        let st = self.keys.entry(key).or_insert(KeyState {
            window_start: now,
            logged: 0,
            suppressed: 0,
        });
        if now.saturating_duration_since(st.window_start) >= self.window {
            st.window_start = now;
            st.logged = 0;
        }
        if st.logged < self.burst {
            st.logged += 1;
            let suppressed = std::mem::take(&mut st.suppressed);
            Verdict::Log { suppressed }
        } else {
            st.suppressed += 1;
            Verdict::Suppress
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_quiet_then_reports_suppressed() {
        let mut l = LogLimiter::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(l.check("a", t0), Verdict::Log { suppressed: 0 });
        assert_eq!(l.check("a", t0), Verdict::Log { suppressed: 0 });
        assert_eq!(l.check("a", t0), Verdict::Suppress);
        assert_eq!(l.check("a", t0), Verdict::Suppress);
        assert_eq!(
            l.check("b", t0),
            Verdict::Log { suppressed: 0 },
            "keys are independent"
        );
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(l.check("a", t1), Verdict::Log { suppressed: 2 });
        assert_eq!(l.check("a", t1), Verdict::Log { suppressed: 0 });
    }
}
