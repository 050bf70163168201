//! The sensor alarm rules as pure state machines: the `sensor_threshold`
//! rule ([`ThresholdTracker`]), the `device_offline` rule
//! ([`OfflineTracker`]) and alarm ids ([`alarm_id`]).
//!
//! Nothing here sleeps, reads a clock or does I/O: the caller passes every
//! reading with its time in ms since the Unix epoch and gets back the
//! transitions it caused. Times that go backwards are treated as "no time
//! passed", so event times never go backwards and never precede an alarm's
//! start.
//!
//! Guarantees, per tracker: at most one alarm open at a time; every alarm
//! gets exactly one `new`, then `update`s only through the update policy,
//! then exactly one `end` (by a reading, or by [`ThresholdTracker::close`]
//! / [`OfflineTracker::close`]).

use parkwatch_config::ThresholdConfig;
use parkwatch_protocol::AlarmEventType;

/// Rule id of threshold alarms.
pub const THRESHOLD_RULE_ID: &str = "threshold";
/// Rule id of device-offline alarms.
pub const OFFLINE_RULE_ID: &str = "device_offline";

/// Which limit a threshold alarm is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The value went above `above`.
    High,
    /// The value went below `below`.
    Low,
}

/// Settings of the `update` policy, shared by all sensors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpdatePolicy {
    /// Least time between two events (`new` or `update`) of one alarm, ms.
    /// Default 60 000.
    pub min_interval_ms: i64,
    /// A worsening is material when it is at least this fraction of the
    /// threshold's magnitude, or the hysteresis, whichever is larger.
    /// Default 0.1 (10 %).
    pub step_fraction: f64,
}

impl Default for UpdatePolicy {
    fn default() -> Self {
        Self {
            min_interval_ms: 60_000,
            step_fraction: 0.1,
        }
    }
}

/// Why a threshold configuration was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ThresholdError {
    /// Neither `above` nor `below`.
    #[error("threshold needs above, below or both")]
    NoLimit,
    /// A number is NaN, infinite or negative where it must not be.
    #[error("threshold {field} = {value} is not allowed ({why})")]
    Bad {
        /// The key, e.g. `hysteresis`.
        field: &'static str,
        /// Its value.
        value: f64,
        /// What it must be.
        why: &'static str,
    },
}

/// A checked threshold: the limits, hysteresis and hold time.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdRule {
    above: Option<f64>,
    below: Option<f64>,
    hysteresis: f64,
    hold_ms: i64,
    policy: UpdatePolicy,
}

impl ThresholdRule {
    /// Checks `cfg` (the configuration loader checks the same, this keeps
    /// an unchecked value from ever reaching the tracker).
    pub fn try_new(cfg: &ThresholdConfig, policy: UpdatePolicy) -> Result<Self, ThresholdError> {
        let bad = |field, value, why| Err(ThresholdError::Bad { field, value, why });
        if cfg.above.is_none() && cfg.below.is_none() {
            return Err(ThresholdError::NoLimit);
        }
        for (field, v) in [("above", cfg.above), ("below", cfg.below)] {
            if let Some(v) = v
                && !v.is_finite()
            {
                return bad(field, v, "must be finite");
            }
        }
        if !(cfg.hysteresis.is_finite() && cfg.hysteresis >= 0.0) {
            return bad("hysteresis", cfg.hysteresis, "must be >= 0");
        }
        if let (Some(a), Some(b)) = (cfg.above, cfg.below)
            && (b >= a || cfg.hysteresis * 2.0 >= a - b)
        {
            return bad(
                "below",
                b,
                "needs below < above and 2 x hysteresis < above - below",
            );
        }
        if !(cfg.seconds.is_finite() && cfg.seconds >= 0.0) {
            return bad("seconds", cfg.seconds, "must be >= 0");
        }
        if !(policy.step_fraction.is_finite() && policy.step_fraction >= 0.0) {
            return bad("update step_fraction", policy.step_fraction, "must be >= 0");
        }
        Ok(Self {
            above: cfg.above,
            below: cfg.below,
            hysteresis: cfg.hysteresis,
            hold_ms: (cfg.seconds * 1000.0).round().min(i64::MAX as f64) as i64,
            policy,
        })
    }

    fn limit(&self, side: Side) -> f64 {
        match side {
            Side::High => self.above.unwrap_or(f64::INFINITY),
            Side::Low => self.below.unwrap_or(f64::NEG_INFINITY),
        }
    }

    /// The side `value` violates, if any: `> above` or `< below`.
    pub fn violated(&self, value: f64) -> Option<Side> {
        if self.above.is_some_and(|a| value > a) {
            Some(Side::High)
        } else if self.below.is_some_and(|b| value < b) {
            Some(Side::Low)
        } else {
            None
        }
    }

    /// Whether an alarm on `side` is over: `<= above - hysteresis` or
    /// `>= below + hysteresis`.
    pub fn cleared(&self, side: Side, value: f64) -> bool {
        match side {
            Side::High => value <= self.limit(side) - self.hysteresis,
            Side::Low => value >= self.limit(side) + self.hysteresis,
        }
    }

    /// The least worsening that is material on `side`.
    fn step(&self, side: Side) -> f64 {
        self.hysteresis
            .max(self.limit(side).abs() * self.policy.step_fraction)
    }

    /// A short description for people, e.g. "above 75".
    pub fn describe(&self, side: Side) -> String {
        match side {
            Side::High => format!("above {}", self.limit(side)),
            Side::Low => format!("below {}", self.limit(side)),
        }
    }
}

/// One transition of a threshold alarm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThresholdEvent {
    /// `new`, `update` or `end`.
    pub event: AlarmEventType,
    /// Which limit.
    pub side: Side,
    /// The reading of this event: the one that confirmed (`new`), the worse
    /// one (`update`), the one back inside the limit (`end`), or the last
    /// one seen ([`ThresholdTracker::close`]).
    pub value: f64,
    /// When the alarm started (its `new`), ms.
    pub started_ms: i64,
    /// When this event happened, ms; `>= started_ms`.
    pub at_ms: i64,
}

#[derive(Debug, Clone, Copy)]
struct Open {
    side: Side,
    started_ms: i64,
    reported: f64,
    last_event_ms: i64,
    last_value: f64,
}

/// The `sensor_threshold` rule of one sensor.
///
/// - `new` when every reading for at least `seconds` has been beyond the
///   limit (`> above`, or `< below`); with `seconds = 0`, at the first such
///   reading. A reading back inside the limit restarts the hold; a failed
///   poll (no reading) does not. The alarm's start is the time of the
///   reading that confirms it, as with video alarms.
/// - `update` when a reading is worse than the last reported one by at
///   least `max(hysteresis, step_fraction * |limit|)` and the last event is
///   at least `min_interval_ms` old. A worsening inside the interval is not
///   queued: the first reading after it reports it if it still holds.
/// - `end` at the first reading `<= above - hysteresis` (or
///   `>= below + hysteresis`); readings between the limit and that point
///   keep the alarm open, so a value hovering at the limit does not flap.
/// - With both limits, an alarm on one side ends before one on the other
///   side can start (a reading below `below` is always past
///   `above - hysteresis`, which configuration guarantees).
#[derive(Debug, Clone)]
pub struct ThresholdTracker {
    rule: ThresholdRule,
    pending: Option<(Side, i64)>,
    open: Option<Open>,
    last_ms: i64,
}

impl ThresholdTracker {
    /// A tracker with no alarm open.
    pub fn new(rule: ThresholdRule) -> Self {
        Self {
            rule,
            pending: None,
            open: None,
            last_ms: i64::MIN,
        }
    }

    /// The rule it applies.
    pub fn rule(&self) -> &ThresholdRule {
        &self.rule
    }

    /// Whether an alarm is open, and on which side.
    pub fn open_side(&self) -> Option<Side> {
        self.open.map(|o| o.side)
    }

    /// Feeds one reading; returns the transitions it caused (at most an
    /// `end` followed by a `new`).
    pub fn observe(&mut self, value: f64, now_ms: i64) -> Vec<ThresholdEvent> {
        let now = now_ms.max(self.last_ms);
        self.last_ms = now;
        let mut out = Vec::new();
        if let Some(open) = self.open.as_mut() {
            open.last_value = value;
            if self.rule.cleared(open.side, value) {
                out.push(ThresholdEvent {
                    event: AlarmEventType::End,
                    side: open.side,
                    value,
                    started_ms: open.started_ms,
                    at_ms: now.max(open.started_ms),
                });
                self.open = None;
            } else {
                let step = self.rule.step(open.side);
                let worse = match open.side {
                    Side::High => value > open.reported && value - open.reported >= step,
                    Side::Low => value < open.reported && open.reported - value >= step,
                };
                if worse && now - open.last_event_ms >= self.rule.policy.min_interval_ms {
                    open.reported = value;
                    open.last_event_ms = now;
                    out.push(ThresholdEvent {
                        event: AlarmEventType::Update,
                        side: open.side,
                        value,
                        started_ms: open.started_ms,
                        at_ms: now,
                    });
                }
                return out;
            }
        }
        match self.rule.violated(value) {
            None => self.pending = None,
            Some(side) => {
                let since = match self.pending {
                    Some((s, t)) if s == side => t,
                    _ => now,
                };
                if now - since >= self.rule.hold_ms {
                    self.pending = None;
                    self.open = Some(Open {
                        side,
                        started_ms: now,
                        reported: value,
                        last_event_ms: now,
                        last_value: value,
                    });
                    out.push(ThresholdEvent {
                        event: AlarmEventType::New,
                        side,
                        value,
                        started_ms: now,
                        at_ms: now,
                    });
                } else {
                    self.pending = Some((side, since));
                }
            }
        }
        out
    }

    /// Ends the open alarm, if any (on shutdown), with the last reading.
    pub fn close(&mut self, now_ms: i64) -> Option<ThresholdEvent> {
        self.pending = None;
        let open = self.open.take()?;
        let now = now_ms.max(self.last_ms).max(open.started_ms);
        self.last_ms = now;
        Some(ThresholdEvent {
            event: AlarmEventType::End,
            side: open.side,
            value: open.last_value,
            started_ms: open.started_ms,
            at_ms: now,
        })
    }
}

/// One transition of a device-offline alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfflineEvent {
    /// `new` or `end` (this rule has no updates).
    pub event: AlarmEventType,
    /// When the alarm started, ms.
    pub started_ms: i64,
    /// When this event happened, ms; `>= started_ms`.
    pub at_ms: i64,
    /// When the device last answered (or the poller started), ms.
    pub last_answer_ms: i64,
}

/// The `device_offline` rule of one device.
///
/// `new` at the first failed poll at least `offline_after_ms` after the
/// device last answered (or after the tracker was created, for a device
/// that never answered); `end` at its next answer. Any answer counts,
/// including a Modbus exception from the device itself; an exception from
/// a gateway saying the device did not respond does not (the poller
/// decides).
#[derive(Debug, Clone)]
pub struct OfflineTracker {
    offline_after_ms: i64,
    last_answer_ms: i64,
    open: Option<i64>,
    last_ms: i64,
}

impl OfflineTracker {
    /// A tracker whose device is presumed answering at `start_ms`.
    pub fn new(offline_after_ms: i64, start_ms: i64) -> Self {
        Self {
            offline_after_ms: offline_after_ms.max(0),
            last_answer_ms: start_ms,
            open: None,
            last_ms: start_ms,
        }
    }

    /// Whether the alarm is open.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// When the device last answered, ms.
    pub fn last_answer_ms(&self) -> i64 {
        self.last_answer_ms
    }

    fn clamp(&mut self, now_ms: i64) -> i64 {
        let now = now_ms.max(self.last_ms);
        self.last_ms = now;
        now
    }

    /// The device answered at `now_ms`: ends the alarm if one is open.
    pub fn answered(&mut self, now_ms: i64) -> Option<OfflineEvent> {
        let now = self.clamp(now_ms);
        let previous = self.last_answer_ms;
        self.last_answer_ms = now;
        let started_ms = self.open.take()?;
        Some(OfflineEvent {
            event: AlarmEventType::End,
            started_ms,
            at_ms: now.max(started_ms),
            last_answer_ms: previous,
        })
    }

    /// A poll at `now_ms` got no answer: opens the alarm once the device
    /// has been silent for `offline_after_ms`.
    pub fn silent(&mut self, now_ms: i64) -> Option<OfflineEvent> {
        let now = self.clamp(now_ms);
        if self.open.is_some() || now - self.last_answer_ms < self.offline_after_ms {
            return None;
        }
        self.open = Some(now);
        Some(OfflineEvent {
            event: AlarmEventType::New,
            started_ms: now,
            at_ms: now,
            last_answer_ms: self.last_answer_ms,
        })
    }

    /// Ends the open alarm, if any (on shutdown).
    pub fn close(&mut self, now_ms: i64) -> Option<OfflineEvent> {
        let now = self.clamp(now_ms);
        let started_ms = self.open.take()?;
        Some(OfflineEvent {
            event: AlarmEventType::End,
            started_ms,
            at_ms: now.max(started_ms),
            last_answer_ms: self.last_answer_ms,
        })
    }
}

/// The alarm id `{edge}.{sensor}.{rule}.{started_ms}`, built with
/// [`parkwatch_protocol::alarm_id::alarm_id`].
///
/// Characters outside `[A-Za-z0-9_.:-]` become `_`. An id longer than
/// [`MAX_ALARM_ID_LEN`](parkwatch_protocol::MAX_ALARM_ID_LEN) keeps its first
/// 111 chars and gets `-` and 16 hex
/// digits of a hash of the whole id, so it stays unique and stable.
pub fn alarm_id(edge: &str, sensor: &str, rule: &str, started_ms: i64) -> String {
    parkwatch_protocol::alarm_id::alarm_id(&[edge, sensor, rule], started_ms)
}

#[cfg(test)]
mod tests {
    use parkwatch_config::Severity;
    use parkwatch_protocol::{MAX_ALARM_ID_LEN, validate_id};

    use super::*;
    use AlarmEventType::{End, New, Update};

    const T0: i64 = 1_760_000_000_000;

    fn cfg(
        above: Option<f64>,
        below: Option<f64>,
        hysteresis: f64,
        seconds: f64,
    ) -> ThresholdConfig {
        ThresholdConfig {
            above,
            below,
            hysteresis,
            seconds,
            severity: Severity::Major,
        }
    }

    fn tracker(
        above: Option<f64>,
        below: Option<f64>,
        hysteresis: f64,
        seconds: f64,
    ) -> ThresholdTracker {
        ThresholdTracker::new(
            ThresholdRule::try_new(
                &cfg(above, below, hysteresis, seconds),
                UpdatePolicy::default(),
            )
            .unwrap(),
        )
    }

    /// Feeds `values` one per `step_ms` from T0; returns (index, event).
    fn run(t: &mut ThresholdTracker, values: &[f64], step_ms: i64) -> Vec<(usize, ThresholdEvent)> {
        let mut out = Vec::new();
        for (i, v) in values.iter().enumerate() {
            for e in t.observe(*v, T0 + i as i64 * step_ms) {
                out.push((i, e));
            }
        }
        out
    }

    fn kinds(evs: &[(usize, ThresholdEvent)]) -> Vec<(usize, AlarmEventType)> {
        evs.iter().map(|(i, e)| (*i, e.event)).collect()
    }

    #[test]
    fn above_with_hysteresis_opens_over_and_ends_only_past_the_band() {
        // PM2.5 above 75, hysteresis 5.
        let mut t = tracker(Some(75.0), None, 5.0, 0.0);
        let evs = run(
            &mut t,
            &[52.3, 75.0, 80.0, 74.0, 71.0, 70.1, 70.0, 60.0],
            1000,
        );
        assert_eq!(kinds(&evs), vec![(2, New), (6, End)]);
        let (_, new) = evs[0];
        assert_eq!(
            (new.side, new.value, new.started_ms, new.at_ms),
            (Side::High, 80.0, T0 + 2000, T0 + 2000)
        );
        let (_, end) = evs[1];
        assert_eq!(
            (end.value, end.started_ms, end.at_ms),
            (70.0, T0 + 2000, T0 + 6000)
        );
    }

    #[test]
    fn exactly_at_the_limit_is_not_beyond_it() {
        let mut t = tracker(Some(75.0), Some(10.0), 0.0, 0.0);
        assert!(run(&mut t, &[75.0, 10.0, 75.0], 1000).is_empty());
    }

    #[test]
    fn hold_time_needs_every_reading_beyond_the_limit() {
        // 3 s hold, readings every second.
        let mut t = tracker(Some(75.0), None, 5.0, 3.0);
        // Over at 0,1,2, dips at 3 (restart), over from 4: new at 4+3 = 7.
        let evs = run(
            &mut t,
            &[80.0, 81.0, 82.0, 74.0, 80.0, 80.0, 80.0, 80.0, 80.0],
            1000,
        );
        assert_eq!(kinds(&evs), vec![(7, New)]);
        assert_eq!(evs[0].1.started_ms, T0 + 7000);
    }

    #[test]
    fn missing_readings_do_not_reset_the_hold() {
        let mut t = tracker(Some(75.0), None, 0.0, 3.0);
        assert!(t.observe(80.0, T0).is_empty());
        // Polls at +1 s and +2 s failed: no observe calls.
        let evs = t.observe(80.0, T0 + 3000);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].event, New);
    }

    #[test]
    fn flapping_around_the_limit_raises_one_alarm() {
        let mut t = tracker(Some(75.0), None, 5.0, 0.0);
        let values: Vec<f64> = (0..40)
            .map(|i| if i % 2 == 0 { 76.0 } else { 73.0 })
            .collect();
        let evs = run(&mut t, &values, 500);
        assert_eq!(kinds(&evs), vec![(0, New)]);
        // Without hysteresis the same input flaps: this is what it prevents.
        let mut bare = tracker(Some(75.0), None, 0.0, 0.0);
        assert_eq!(run(&mut bare, &values, 500).len(), 40);
    }

    #[test]
    fn flapping_shorter_than_the_hold_raises_nothing() {
        let mut t = tracker(Some(75.0), None, 0.0, 2.0);
        let values: Vec<f64> = (0..40)
            .map(|i| if i % 3 == 2 { 70.0 } else { 90.0 })
            .collect();
        assert!(run(&mut t, &values, 500).is_empty());
    }

    #[test]
    fn below_thresholds_mirror_above() {
        // Water level below 0.5 m, hysteresis 0.1, 1 s hold.
        let mut t = tracker(None, Some(0.5), 0.1, 1.0);
        let evs = run(&mut t, &[1.0, 0.4, 0.3, 0.45, 0.55, 0.65, 0.7], 1000);
        assert_eq!(kinds(&evs), vec![(2, New), (5, End)]);
        assert_eq!(evs[0].1.side, Side::Low);
        assert_eq!(evs[0].1.value, 0.3);
        // Negative limits: temperature below -10 degC.
        let mut t = tracker(None, Some(-10.0), 2.0, 0.0);
        let evs = run(&mut t, &[-5.0, -10.5, -9.0, -8.0], 1000);
        assert_eq!(kinds(&evs), vec![(1, New), (3, End)]);
    }

    #[test]
    fn a_band_switches_sides_with_an_end_then_a_new() {
        let mut t = tracker(Some(80.0), Some(20.0), 5.0, 0.0);
        let evs = run(&mut t, &[50.0, 90.0, 10.0, 50.0], 1000);
        assert_eq!(kinds(&evs), vec![(1, New), (2, End), (2, New), (3, End)]);
        assert_eq!(evs[0].1.side, Side::High);
        assert_eq!(evs[2].1.side, Side::Low);
        assert_eq!(evs[2].1.started_ms, T0 + 2000);
    }

    #[test]
    fn updates_only_on_material_worsening_and_rate_limited() {
        // above 75: step = max(5, 7.5) = 7.5; at most one event per 60 s.
        let mut t = tracker(Some(75.0), None, 5.0, 0.0);
        assert_eq!(t.observe(80.0, T0)[0].event, New);
        // Worse by 20 but 10 s after the new: held back.
        assert!(t.observe(100.0, T0 + 10_000).is_empty());
        // 60 s later and still worse than 80 by >= 7.5: update with 95.
        let up = t.observe(95.0, T0 + 60_000);
        assert_eq!(up.len(), 1);
        assert_eq!(
            (up[0].event, up[0].value, up[0].started_ms),
            (Update, 95.0, T0)
        );
        // Worse by only 5 two minutes later: not material.
        assert!(t.observe(100.0, T0 + 180_000).is_empty());
        // Better is never an update.
        assert!(t.observe(76.0, T0 + 300_000).is_empty());
        assert_eq!(t.observe(103.0, T0 + 360_000)[0].event, Update);
        // Low side: worse means lower.
        let mut t = tracker(None, Some(10.0), 0.0, 0.0);
        assert_eq!(t.observe(9.0, T0)[0].event, New);
        assert!(t.observe(8.5, T0 + 60_000).is_empty());
        assert_eq!(t.observe(7.9, T0 + 60_000)[0].event, Update);
    }

    #[test]
    fn time_going_backwards_never_makes_events_precede_their_start() {
        let mut t = tracker(Some(75.0), None, 5.0, 0.0);
        let new = t.observe(80.0, T0);
        let end = t.observe(10.0, T0 - 50_000);
        assert_eq!(new[0].started_ms, T0);
        assert_eq!(end[0].at_ms, T0);
        assert!(end[0].at_ms >= end[0].started_ms);
    }

    #[test]
    fn close_ends_an_open_alarm_once() {
        let mut t = tracker(Some(75.0), None, 5.0, 0.0);
        assert!(t.close(T0).is_none());
        t.observe(80.0, T0);
        t.observe(78.0, T0 + 1000);
        let end = t.close(T0 + 2000).unwrap();
        assert_eq!((end.event, end.value, end.at_ms), (End, 78.0, T0 + 2000));
        assert!(t.close(T0 + 3000).is_none());
        assert_eq!(t.open_side(), None);
    }

    #[test]
    fn refuses_invalid_thresholds() {
        let p = UpdatePolicy::default();
        assert_eq!(
            ThresholdRule::try_new(&cfg(None, None, 0.0, 0.0), p),
            Err(ThresholdError::NoLimit)
        );
        for c in [
            cfg(Some(f64::NAN), None, 0.0, 0.0),
            cfg(Some(1.0), None, -1.0, 0.0),
            cfg(Some(1.0), None, 0.0, f64::INFINITY),
            cfg(Some(10.0), Some(20.0), 0.0, 0.0),
            cfg(Some(20.0), Some(10.0), 5.0, 0.0),
        ] {
            assert!(ThresholdRule::try_new(&c, p).is_err(), "{c:?}");
        }
    }

    #[test]
    fn offline_opens_after_silence_and_ends_on_answer() {
        let mut o = OfflineTracker::new(2000, T0);
        assert!(o.answered(T0 + 500).is_none());
        // Silent from +1 s: not yet 2 s since the answer at +0.5 s.
        assert!(o.silent(T0 + 1000).is_none());
        assert!(o.silent(T0 + 2000).is_none());
        let new = o.silent(T0 + 2500).unwrap();
        assert_eq!(
            (new.event, new.started_ms, new.last_answer_ms),
            (New, T0 + 2500, T0 + 500)
        );
        assert!(o.is_open());
        // Still silent: no repeat.
        assert!(o.silent(T0 + 5000).is_none());
        let end = o.answered(T0 + 6000).unwrap();
        assert_eq!(
            (end.event, end.started_ms, end.at_ms),
            (End, T0 + 2500, T0 + 6000)
        );
        assert!(!o.is_open());
        // A new silence needs another full window.
        assert!(o.silent(T0 + 7000).is_none());
        assert_eq!(o.silent(T0 + 8000).unwrap().started_ms, T0 + 8000);
    }

    #[test]
    fn a_device_that_never_answers_goes_offline_after_the_window() {
        let mut o = OfflineTracker::new(30_000, T0);
        assert!(o.silent(T0 + 29_999).is_none());
        assert!(o.silent(T0 + 30_000).is_some());
        assert!(o.close(T0 + 40_000).is_some());
        assert!(o.close(T0 + 41_000).is_none());
    }

    #[test]
    fn offline_flapping_answers_never_open_the_alarm() {
        let mut o = OfflineTracker::new(2000, T0);
        for i in 0..100 {
            let t = T0 + i * 700;
            let ev = if i % 2 == 0 {
                o.silent(t)
            } else {
                o.answered(t)
            };
            assert!(ev.is_none(), "at step {i}");
        }
    }

    #[test]
    fn alarm_ids_are_topic_safe_bounded_and_stable() {
        let id = alarm_id("edge-01", "pm25-gate", THRESHOLD_RULE_ID, T0);
        assert_eq!(id, format!("edge-01.pm25-gate.threshold.{T0}"));
        let odd = alarm_id("edge 01/#", "s+1", OFFLINE_RULE_ID, 5);
        assert_eq!(odd, "edge_01__.s_1.device_offline.5");
        let long_edge = "e".repeat(64);
        let long_sensor = "s".repeat(64);
        let a = alarm_id(&long_edge, &long_sensor, OFFLINE_RULE_ID, T0);
        let b = alarm_id(&long_edge, &long_sensor, OFFLINE_RULE_ID, T0 + 1);
        for id in [&id, &odd, &a, &b] {
            validate_id(id, MAX_ALARM_ID_LEN).unwrap();
        }
        assert_eq!(a.len(), MAX_ALARM_ID_LEN);
        assert_ne!(a, b);
        assert_eq!(a, alarm_id(&long_edge, &long_sensor, OFFLINE_RULE_ID, T0));
    }
}
