//! Time-limit maths: when a case dispatched at a given instant is due, on
//! the site's work calendar.
//!
//! - `emergency_hours`: around the clock; N hours after dispatch.
//! - `working_hours`: N hours of working time (the calendar's daily
//!   windows on working days); time outside windows, on weekends and on
//!   holidays does not count, make-up working days do.
//! - `working_days`: N × (working minutes per day) of working time, so one
//!   working day from Friday 16:00 with 09:00-12:00 and 13:30-17:30 is
//!   Monday 16:00, and a case dispatched in the evening is due at the end
//!   of the next working day.
//!
//! The calendar speaks local civil time; instants are UTC ms. The site's
//! fixed UTC offset converts between them (China has no daylight saving).
//! Guarantee: the result is never before the start, and equals the start
//! plus the limit for emergency hours; a calendar with no working time in
//! ten years yields an error instead of a loop.

use parkwatch_config::{Calendar, CivilDate, TimeUnit};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;
/// How far ahead working time is searched for.
const HORIZON_DAYS: i64 = 3_660;

/// Why no due time could be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeadlineError {
    /// The calendar has no working time in the horizon (e.g. every day a holiday).
    #[error("the work calendar has no working time within {HORIZON_DAYS} days of {start_ms} ms")]
    NoWorkingTime {
        /// The start instant.
        start_ms: i64,
    },
    /// The instant is outside the calendar's date range.
    #[error("instant {0} ms is outside the supported date range")]
    OutOfRange(i64),
}

/// The work calendar of a site, with its UTC offset.
#[derive(Debug, Clone)]
pub struct WorkCalendar {
    calendar: Calendar,
    offset_ms: i64,
    windows: Vec<(i64, i64)>,
}

impl WorkCalendar {
    /// A calendar in local time `utc_offset_minutes` east of UTC.
    pub fn new(calendar: Calendar, utc_offset_minutes: i32) -> Self {
        let mut windows: Vec<(i64, i64)> = calendar
            .working_hours
            .iter()
            .filter(|w| !w.wraps())
            .map(|w| {
                (
                    i64::from(w.start_minute()) * MINUTE_MS,
                    i64::from(w.end_minute()) * MINUTE_MS,
                )
            })
            .collect();
        windows.sort_unstable();
        WorkCalendar {
            calendar,
            offset_ms: i64::from(utc_offset_minutes) * MINUTE_MS,
            windows,
        }
    }

    /// The underlying calendar.
    pub fn calendar(&self) -> &Calendar {
        &self.calendar
    }

    /// Working ms in one working day.
    pub fn working_ms_per_day(&self) -> i64 {
        self.windows.iter().map(|(s, e)| e - s).sum()
    }

    /// When a case dispatched at `start_ms` with `limit` `unit`s is due.
    pub fn due_at(&self, start_ms: i64, limit: u32, unit: TimeUnit) -> Result<i64, DeadlineError> {
        let limit = i64::from(limit);
        match unit {
            TimeUnit::EmergencyHours => Ok(start_ms.saturating_add(limit * HOUR_MS)),
            TimeUnit::WorkingHours => self.add_working(start_ms, limit * HOUR_MS),
            TimeUnit::WorkingDays => {
                self.add_working(start_ms, limit.saturating_mul(self.working_ms_per_day()))
            }
        }
    }

    /// The instant when `amount_ms` of working time has passed after `start_ms`.
    pub fn add_working(&self, start_ms: i64, amount_ms: i64) -> Result<i64, DeadlineError> {
        if amount_ms <= 0 {
            return Ok(start_ms);
        }
        let local = start_ms
            .checked_add(self.offset_ms)
            .ok_or(DeadlineError::OutOfRange(start_ms))?;
        let mut day = local.div_euclid(DAY_MS);
        let mut in_day = local.rem_euclid(DAY_MS);
        let mut remaining = amount_ms;
        for _ in 0..HORIZON_DAYS {
            let date =
                CivilDate::from_days_since_epoch(day).ok_or(DeadlineError::OutOfRange(start_ms))?;
            if self.calendar.is_working_day(date) {
                for &(ws, we) in &self.windows {
                    let from = ws.max(in_day);
                    if from >= we {
                        continue;
                    }
                    let available = we - from;
                    if remaining <= available {
                        return Ok(day * DAY_MS + from + remaining - self.offset_ms);
                    }
                    remaining -= available;
                }
            }
            day += 1;
            in_day = 0;
        }
        Err(DeadlineError::NoWorkingTime { start_ms })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Local `YYYY-MM-DD HH:MM` (UTC+8) as UTC ms.
    fn at(s: &str) -> i64 {
        let (d, t) = s.split_once(' ').unwrap();
        let date: CivilDate = d.parse().unwrap();
        let (h, m) = t.split_once(':').unwrap();
        let minutes: i64 = h.parse::<i64>().unwrap() * 60 + m.parse::<i64>().unwrap();
        date.days_since_epoch() * DAY_MS + minutes * MINUTE_MS - 8 * HOUR_MS
    }

    fn cal() -> WorkCalendar {
        let c = Calendar {
            holidays: (1..=8)
                .map(|d| format!("2025-10-{d:02}").parse().unwrap())
                .collect(),
            workdays: vec!["2025-09-28".parse().unwrap(), "2025-10-11".parse().unwrap()],
            ..Calendar::default()
        };
        WorkCalendar::new(c, 8 * 60)
    }

    #[test]
    fn emergency_hours_run_around_the_clock() {
        let c = cal();
        assert_eq!(
            c.due_at(at("2025-10-01 23:00"), 2, TimeUnit::EmergencyHours),
            Ok(at("2025-10-02 01:00"))
        );
    }

    #[test]
    fn working_hours_skip_lunch_nights_and_weekends() {
        let c = cal();
        // Wed 10:00 + 4h: 10-12 (2h), 13:30-15:30 (2h).
        assert_eq!(
            c.due_at(at("2025-09-24 10:00"), 4, TimeUnit::WorkingHours),
            Ok(at("2025-09-24 15:30"))
        );
        // Fri 16:00 + 2h: 1.5h on Friday, Sat 27th is a weekend day, the
        // make-up Sunday 28th counts: 09:00 + 0.5h.
        assert_eq!(
            c.due_at(at("2025-09-26 16:00"), 2, TimeUnit::WorkingHours),
            Ok(at("2025-09-28 09:30"))
        );
        // Dispatched at night: the clock starts at 09:00.
        assert_eq!(
            c.due_at(at("2025-09-24 22:00"), 1, TimeUnit::WorkingHours),
            Ok(at("2025-09-25 10:00"))
        );
        // Exactly filling a window ends at its end, not at the next start.
        assert_eq!(
            c.due_at(at("2025-09-24 09:00"), 3, TimeUnit::WorkingHours),
            Ok(at("2025-09-24 12:00"))
        );
    }

    #[test]
    fn working_days_skip_the_national_day_holidays() {
        let c = cal();
        // Tue 30 Sep 17:00 + 1 working day (7h): 0.5h on the 30th, 1-8 Oct
        // are holidays, Thu 9 Oct: 09:00-12:00 (3h) + 13:30-17:00 (3.5h).
        assert_eq!(
            c.due_at(at("2025-09-30 17:00"), 1, TimeUnit::WorkingDays),
            Ok(at("2025-10-09 17:00"))
        );
        // Fri 10 Oct 16:00 + 1 day: Sat 11 Oct is a make-up working day.
        assert_eq!(
            c.due_at(at("2025-10-10 16:00"), 1, TimeUnit::WorkingDays),
            Ok(at("2025-10-11 16:00"))
        );
    }

    #[test]
    fn a_calendar_without_working_days_is_an_error_not_a_hang() {
        let c = Calendar {
            weekend: vec![
                parkwatch_config::Weekday::Mon,
                parkwatch_config::Weekday::Tue,
                parkwatch_config::Weekday::Wed,
                parkwatch_config::Weekday::Thu,
                parkwatch_config::Weekday::Fri,
                parkwatch_config::Weekday::Sat,
                parkwatch_config::Weekday::Sun,
            ],
            ..Calendar::default()
        };
        let w = WorkCalendar::new(c, 480);
        assert!(matches!(
            w.due_at(0, 1, TimeUnit::WorkingHours),
            Err(DeadlineError::NoWorkingTime { .. })
        ));
    }
}
