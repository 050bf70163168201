//! Wall-clock time in Unix milliseconds, the unit of every timestamp on the wire.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in Unix milliseconds. A clock before 1970 (a box without RTC and NTP
/// yet) reads as 0 rather than panicking.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
