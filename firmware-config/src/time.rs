//! Times of day and daily windows, as written in configuration files.
//!
//! A [`TimeWindow`] is written `"HH:MM-HH:MM"` (24-hour clock, local time of
//! the site). It covers `[start, end)`; when `end` is earlier than `start`
//! the window wraps past midnight (`"22:00-06:00"`); `"00:00-24:00"` is the
//! whole day. A window with `start == end` is rejected as ambiguous. Once
//! constructed a window is always valid.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Minutes in a day.
pub const DAY_MINUTES: u16 = 24 * 60;

/// A daily window of local time, `"HH:MM-HH:MM"`, possibly wrapping midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeWindow {
    start: u16,
    end: u16,
}

/// Why a time window string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid time window {text:?}: {reason} (expected \"HH:MM-HH:MM\", e.g. \"07:00-19:00\")")]
pub struct TimeWindowError {
    /// The rejected text.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl TimeWindow {
    /// A window from minutes after midnight: `start` in 0..1440, `end` in
    /// 0..=1440, and different from `start`.
    pub fn try_new(start: u16, end: u16) -> Result<Self, &'static str> {
        if start >= DAY_MINUTES {
            return Err("start must be before 24:00");
        }
        if end > DAY_MINUTES {
            return Err("end must be at most 24:00");
        }
        if start == end {
            return Err("start and end are the same");
        }
        Ok(Self { start, end })
    }

    /// Start, in minutes after midnight.
    pub fn start_minute(&self) -> u16 {
        self.start
    }

    /// End (exclusive), in minutes after midnight; may be less than the start.
    pub fn end_minute(&self) -> u16 {
        self.end
    }

    /// Whether the window wraps past midnight.
    pub fn wraps(&self) -> bool {
        self.end < self.start
    }

    /// Whether `minute` (minutes after local midnight, 0..1440) is inside.
    pub fn contains(&self, minute: u16) -> bool {
        if self.wraps() {
            minute >= self.start || minute < self.end
        } else {
            minute >= self.start && minute < self.end
        }
    }

    /// Length of the window in minutes.
    pub fn minutes(&self) -> u16 {
        if self.wraps() {
            DAY_MINUTES - self.start + self.end
        } else {
            self.end - self.start
        }
    }
}

/// Parses `"HH:MM"` (or `"24:00"` when `allow_24` is set) to minutes.
pub(crate) fn parse_hhmm(s: &str, allow_24: bool) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    if m >= 60 {
        return None;
    }
    if h == 24 && m == 0 && allow_24 {
        return Some(DAY_MINUTES);
    }
    (h < 24).then_some(h * 60 + m)
}

impl std::str::FromStr for TimeWindow {
    type Err = TimeWindowError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |reason| TimeWindowError {
            text: text.to_owned(),
            reason,
        };
        let (a, b) = text.trim().split_once('-').ok_or_else(|| err("no '-'"))?;
        let start = parse_hhmm(a.trim(), false).ok_or_else(|| err("bad start time"))?;
        let end = parse_hhmm(b.trim(), true).ok_or_else(|| err("bad end time"))?;
        Self::try_new(start, end).map_err(err)
    }
}

impl TryFrom<String> for TimeWindow {
    type Error = TimeWindowError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<TimeWindow> for String {
    fn from(w: TimeWindow) -> String {
        w.to_string()
    }
}

impl fmt::Display for TimeWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_wrapping_windows() {
        let w: TimeWindow = "07:00-19:00".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(w.contains(7 * 60));
        assert!(!w.contains(19 * 60));
        assert_eq!(w.minutes(), 12 * 60);
        let n: TimeWindow = "22:00-06:00".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(n.wraps());
        assert!(n.contains(23 * 60) && n.contains(60) && !n.contains(12 * 60));
        assert_eq!(n.minutes(), 8 * 60);
        let all: TimeWindow = "00:00-24:00".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(all.contains(0) && all.contains(DAY_MINUTES - 1));
        assert_eq!(all.to_string(), "00:00-24:00");
    }

    #[test]
    fn rejects_malformed_windows() {
        for bad in [
            "7:00-19:00",
            "07:00",
            "07:60-08:00",
            "25:00-01:00",
            "08:00-08:00",
            "24:00-01:00",
        ] {
            assert!(bad.parse::<TimeWindow>().is_err(), "{bad} accepted");
        }
    }
}
