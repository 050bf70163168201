//! The site's work calendar: working hours, weekends, public holidays and
//! make-up working days (调休).
//!
//! Incident time limits are counted in emergency hours (around the clock),
//! working hours or working days; this module answers the two questions
//! that needs: is this date a working day, and is this local minute inside
//! working hours. A day is a working day when it is a make-up working day,
//! or when it is neither a weekend day nor a holiday.
//!
//! Dates are civil dates in the site's local time, written `"YYYY-MM-DD"`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::time::TimeWindow;

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

/// A proleptic Gregorian calendar date, `"YYYY-MM-DD"`; always valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CivilDate {
    year: i32,
    month: u8,
    day: u8,
}

/// Why a date string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid date {0:?} (expected \"YYYY-MM-DD\", e.g. \"2025-10-01\")")]
pub struct DateError(pub String);

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

impl CivilDate {
    /// A date, if it exists (year 1..=9999).
    pub fn new(year: i32, month: u8, day: u8) -> Option<Self> {
        ((1..=9999).contains(&year) && day >= 1 && day <= days_in_month(year, month))
            .then_some(Self { year, month, day })
    }

    /// Year.
    pub fn year(&self) -> i32 {
        self.year
    }

    /// Month, 1..=12.
    pub fn month(&self) -> u8 {
        self.month
    }

    /// Day of the month, 1..
    pub fn day(&self) -> u8 {
        self.day
    }

    /// Days since 1970-01-01 (negative before).
    pub fn days_since_epoch(&self) -> i64 {
        // Howard Hinnant's days_from_civil.
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The date `days` after 1970-01-01.
    pub fn from_days_since_epoch(days: i64) -> Option<Self> {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = u8::try_from(doy - (153 * mp + 2) / 5 + 1).ok()?;
        let month = u8::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).ok()?;
        let year = i32::try_from(yoe + era * 400 + i64::from(month <= 2)).ok()?;
        Self::new(year, month, day)
    }

    /// The day of the week.
    pub fn weekday(&self) -> Weekday {
        // 1970-01-01 was a Thursday.
        match (self.days_since_epoch() + 3).rem_euclid(7) {
            0 => Weekday::Mon,
            1 => Weekday::Tue,
            2 => Weekday::Wed,
            3 => Weekday::Thu,
            4 => Weekday::Fri,
            5 => Weekday::Sat,
            _ => Weekday::Sun,
        }
    }
}

impl std::str::FromStr for CivilDate {
    type Err = DateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || DateError(s.to_owned());
        let parts: Vec<&str> = s.split('-').collect();
        let [y, m, d] = parts.as_slice() else {
            return Err(err());
        };
        if y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return Err(err());
        }
        let year = y.parse().map_err(|_| err())?;
        let month = m.parse().map_err(|_| err())?;
        let day = d.parse().map_err(|_| err())?;
        Self::new(year, month, day).ok_or_else(err)
    }
}

impl TryFrom<String> for CivilDate {
    type Error = DateError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<CivilDate> for String {
    fn from(d: CivilDate) -> String {
        d.to_string()
    }
}

impl fmt::Display for CivilDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// The `[calendar]` table of `site.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calendar {
    /// Daily working hours, non-overlapping, not wrapping midnight, in
    /// order; default `["09:00-12:00", "13:30-17:30"]`.
    #[serde(default = "default_working_hours")]
    pub working_hours: Vec<TimeWindow>,
    /// Weekend days; default `["sat", "sun"]`.
    #[serde(default = "default_weekend")]
    pub weekend: Vec<Weekday>,
    /// Public holidays (days off), `"YYYY-MM-DD"`; default none.
    #[serde(default)]
    pub holidays: Vec<CivilDate>,
    /// Make-up working days on weekend days (调休), `"YYYY-MM-DD"`; default none.
    #[serde(default)]
    pub workdays: Vec<CivilDate>,
}

impl Default for Calendar {
    fn default() -> Self {
        Self {
            working_hours: default_working_hours(),
            weekend: default_weekend(),
            holidays: Vec::new(),
            workdays: Vec::new(),
        }
    }
}

fn default_working_hours() -> Vec<TimeWindow> {
    ["09:00-12:00", "13:30-17:30"]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}

fn default_weekend() -> Vec<Weekday> {
    vec![Weekday::Sat, Weekday::Sun]
}

impl Calendar {
    /// Whether `date` is a working day.
    pub fn is_working_day(&self, date: CivilDate) -> bool {
        if self.workdays.contains(&date) {
            return true;
        }
        !self.weekend.contains(&date.weekday()) && !self.holidays.contains(&date)
    }

    /// Whether `minute` (after local midnight) of `date` is working time.
    pub fn is_working_time(&self, date: CivilDate, minute: u16) -> bool {
        self.is_working_day(date) && self.working_hours.iter().any(|w| w.contains(minute))
    }

    /// Working minutes in one working day.
    pub fn working_minutes_per_day(&self) -> u32 {
        self.working_hours
            .iter()
            .map(|w| u32::from(w.minutes()))
            .sum()
    }

    /// Every problem with the calendar, as (key, message) pairs relative to
    /// the `[calendar]` table.
    pub(crate) fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.working_hours.is_empty() {
            out.push(("working_hours".into(), "needs at least one window".into()));
        }
        for (i, w) in self.working_hours.iter().enumerate() {
            if w.wraps() {
                out.push((
                    format!("working_hours[{i}]"),
                    format!("{w} wraps past midnight"),
                ));
            }
            if i > 0 {
                let prev = self.working_hours[i - 1];
                if !prev.wraps() && !w.wraps() && w.start_minute() < prev.end_minute() {
                    out.push((
                        format!("working_hours[{i}]"),
                        format!("{w} starts before the previous window {prev} ends"),
                    ));
                }
            }
        }
        if self.weekend.len() >= 7 {
            out.push(("weekend".into(), "every day is a weekend day".into()));
        }
        for (i, d) in self.holidays.iter().enumerate() {
            if self.holidays[..i].contains(d) {
                out.push((format!("holidays[{i}]"), format!("{d} is listed twice")));
            }
        }
        for (i, d) in self.workdays.iter().enumerate() {
            if self.workdays[..i].contains(d) {
                out.push((format!("workdays[{i}]"), format!("{d} is listed twice")));
            } else if self.holidays.contains(d) {
                out.push((format!("workdays[{i}]"), format!("{d} is also a holiday")));
            } else if !self.weekend.contains(&d.weekday()) {
                out.push((
                    format!("workdays[{i}]"),
                    format!("{d} is a {:?}, already a working day", d.weekday()),
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> CivilDate {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn weekdays_and_epoch_days() {
        assert_eq!(d("1970-01-01").days_since_epoch(), 0);
        assert_eq!(d("1970-01-01").weekday(), Weekday::Thu);
        assert_eq!(d("2025-10-01").weekday(), Weekday::Wed);
        assert_eq!(d("2024-02-29").weekday(), Weekday::Thu);
        assert_eq!(d("2000-03-01").days_since_epoch(), 11_017);
        for s in ["1969-12-31", "2024-02-29", "2026-02-28", "1900-03-01"] {
            assert_eq!(
                CivilDate::from_days_since_epoch(d(s).days_since_epoch()),
                Some(d(s))
            );
        }
        assert!("2025-02-29".parse::<CivilDate>().is_err());
        assert!("2025-1-01".parse::<CivilDate>().is_err());
    }

    #[test]
    fn make_up_days_and_holidays() {
        let cal = Calendar {
            holidays: vec![d("2025-10-01"), d("2025-10-04")],
            workdays: vec![d("2025-09-28")],
            ..Calendar::default()
        };
        assert!(
            !cal.is_working_day(d("2025-10-01")),
            "holiday on a Wednesday"
        );
        assert!(cal.is_working_day(d("2025-09-28")), "make-up Sunday");
        assert!(!cal.is_working_day(d("2025-09-27")), "ordinary Saturday");
        assert!(cal.is_working_day(d("2025-09-30")));
        assert!(cal.is_working_time(d("2025-09-30"), 9 * 60));
        assert!(
            !cal.is_working_time(d("2025-09-30"), 12 * 60 + 30),
            "lunch break"
        );
        assert_eq!(cal.working_minutes_per_day(), 7 * 60);
        assert!(cal.problems().is_empty());
    }

    #[test]
    fn flags_inconsistent_calendars() {
        let cal = Calendar {
            working_hours: vec![
                "09:00-12:00".parse().unwrap_or_else(|e| panic!("{e}")),
                "11:00-17:00".parse().unwrap_or_else(|e| panic!("{e}")),
            ],
            workdays: vec![d("2025-09-30")],
            ..Calendar::default()
        };
        let keys: Vec<_> = cal.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec!["working_hours[1]", "workdays[0]"]);
    }
}
