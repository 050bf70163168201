//! Bookkeeping shared by every rule kind: the open alarm, its evidence, the
//! update and `best` policy, alarm ids, the per-rule settings, and the
//! per-track cooldowns of the rules that alarm once per track.
//!
//! Guarantees: an [`OpenAlarm`] produces exactly one `new` (when it is
//! created), `update`s only through [`OpenAlarm::maybe_update`] (material
//! change and rate limit), and one `end` (through [`OpenAlarm::end`], which
//! consumes it). Event times never precede the alarm's start, even when the
//! caller's clock goes backwards.

use std::collections::{BTreeMap, HashSet, VecDeque};

use parkwatch_config::TimeWindow;
use parkwatch_protocol::{AlarmEventType, AlarmKind, DetectedObject, Severity, alarm_id};

use super::{AlarmTransition, RuleOptions};
use crate::track::Track;

/// The settings every rule kind shares, resolved from the configuration.
#[derive(Debug, Clone)]
pub(crate) struct RuleMeta {
    pub id: String,
    pub kind: AlarmKind,
    pub severity: Severity,
    /// Zone or line id.
    pub area: Option<String>,
    /// Watched classes; never empty for configured rules.
    pub classes: Vec<String>,
    pub min_score: f32,
    pub cooldown_ms: i64,
    /// `seconds` of the rule, in ms (0 when unset).
    pub hold_ms: i64,
    /// Empty: always active.
    pub hours: Vec<TimeWindow>,
    pub catalogue_item: Option<String>,
}

impl RuleMeta {
    /// Whether a track is of a watched class, scores enough, and (when
    /// required) is confirmed. Says nothing about where it is.
    pub fn qualifies(&self, t: &Track, require_confirmed: bool) -> bool {
        (t.confirmed || !require_confirmed)
            && t.score >= self.min_score
            && self.classes.contains(&t.class)
    }

    /// Whether the rule is active at local minute-of-day `minute`.
    pub fn active_at(&self, minute: u16) -> bool {
        self.hours.is_empty() || self.hours.iter().any(|w| w.contains(minute))
    }
}

/// A summary of what an alarm event shows, to decide whether it changed
/// materially and whether it beats the best evidence so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Evidence {
    /// Track ids of the objects, ascending.
    pub ids: Vec<u64>,
    /// Number of objects.
    pub count: usize,
    /// Highest object score (0 when none).
    pub max_score: f32,
}

impl Evidence {
    pub fn of(objects: &[DetectedObject]) -> Self {
        let mut ids: Vec<u64> = objects.iter().filter_map(|o| o.track_id).collect();
        ids.sort_unstable();
        Evidence {
            ids,
            count: objects.len(),
            max_score: objects.iter().map(|o| o.score).fold(0.0, f32::max),
        }
    }

    /// Better evidence for a snapshot: more objects, or as many and a
    /// markedly (by `delta`) higher best score.
    pub fn beats(&self, other: &Evidence, delta: f32) -> bool {
        self.count > other.count
            || (self.count >= other.count && self.max_score >= other.max_score + delta)
    }
}

/// What counts as a material change for [`OpenAlarm::maybe_update`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Materiality {
    /// The set of objects changed, or the best score rose by the options'
    /// `better_score_delta` (intrusion, dwell).
    Objects,
    /// The count moved by at least `max(1, ceil(fraction * last count))`
    /// (crowd).
    Count { fraction: f32 },
}

impl Materiality {
    fn changed(self, old: &Evidence, new: &Evidence, score_delta: f32) -> bool {
        match self {
            Materiality::Objects => {
                old.ids != new.ids
                    || old.count != new.count
                    || new.max_score >= old.max_score + score_delta
            }
            Materiality::Count { fraction } => {
                // The epsilon keeps 10 * 0.2 (2.0000000298 as f32 -> f64) at 2.
                let step = ((old.count as f64) * f64::from(fraction) - 1e-6)
                    .ceil()
                    .max(1.0);
                (new.count as f64 - old.count as f64).abs() >= step
            }
        }
    }
}

/// One open alarm.
#[derive(Debug, Clone)]
pub(crate) struct OpenAlarm {
    pub id: String,
    pub started_ms: i64,
    /// Time of the latest emitted event (new or update).
    pub last_event_ms: i64,
    /// Evidence of the latest emitted event.
    pub published: Evidence,
    /// Best evidence emitted so far (flagged `best`).
    pub best: Evidence,
}

impl OpenAlarm {
    /// Opens an alarm at `ts_ms` and returns it with its `new` transition,
    /// which is always `best` when it carries objects.
    pub fn open(
        meta: &RuleMeta,
        id: String,
        ts_ms: i64,
        objects: Vec<DetectedObject>,
    ) -> (OpenAlarm, AlarmTransition) {
        let ev = Evidence::of(&objects);
        let alarm = OpenAlarm {
            id,
            started_ms: ts_ms,
            last_event_ms: ts_ms,
            published: ev.clone(),
            best: ev,
        };
        let best = !objects.is_empty();
        let tr = alarm.transition(meta, AlarmEventType::New, ts_ms, objects, best);
        (alarm, tr)
    }

    /// An `update` when the evidence changed materially and the last event
    /// is at least `update_interval_ms` old; `None` otherwise.
    pub fn maybe_update(
        &mut self,
        meta: &RuleMeta,
        opts: &RuleOptions,
        ts_ms: i64,
        objects: &[DetectedObject],
        materiality: Materiality,
    ) -> Option<AlarmTransition> {
        if ts_ms.saturating_sub(self.last_event_ms) < opts.update_interval_ms {
            return None;
        }
        let ev = Evidence::of(objects);
        if !materiality.changed(&self.published, &ev, opts.better_score_delta) {
            return None;
        }
        let best = ev.beats(&self.best, opts.better_score_delta);
        if best {
            self.best = ev.clone();
        }
        self.published = ev;
        self.last_event_ms = ts_ms;
        Some(self.transition(meta, AlarmEventType::Update, ts_ms, objects.to_vec(), best))
    }

    /// Ends the alarm at `ts_ms` (never before it started). End events carry
    /// no objects.
    pub fn end(self, meta: &RuleMeta, ts_ms: i64) -> AlarmTransition {
        self.transition(meta, AlarmEventType::End, ts_ms, Vec::new(), false)
    }

    fn transition(
        &self,
        meta: &RuleMeta,
        event: AlarmEventType,
        ts_ms: i64,
        objects: Vec<DetectedObject>,
        best: bool,
    ) -> AlarmTransition {
        let at = ts_ms.max(self.started_ms);
        AlarmTransition {
            alarm_id: self.id.clone(),
            event,
            rule_id: meta.id.clone(),
            kind: meta.kind,
            severity: meta.severity,
            zone: meta.area.clone(),
            objects,
            started_at_ms: self.started_ms,
            event_at_ms: at,
            ended_at_ms: (event == AlarmEventType::End).then_some(at),
            catalogue_item: meta.catalogue_item.clone(),
            best,
        }
    }
}

/// Issues alarm ids `{edge}.{camera}.{rule}.{started_ms}[.t{track}]`.
///
/// Built with [`parkwatch_protocol::alarm_id`]: components are sanitised to
/// the topic-safe set, and an id longer than
/// [`MAX_ALARM_ID_LEN`](parkwatch_protocol::MAX_ALARM_ID_LEN) keeps its
/// first 111 chars and gets `-` and the 16 hex digits of a hash of the whole
/// id. Should the same id come up twice
/// (the same rule opening twice within one millisecond, which only a caller
/// repeating a timestamp can cause) the later one gets `.2`, `.3`, ...;
/// the last [`IdIssuer::REMEMBER`] ids are remembered for this.
/// Per-track cooldowns and the track ids of the current frame, for the rules
/// that raise one alarm per track (dwell, line_crossing).
#[derive(Debug, Default, Clone)]
pub(crate) struct TrackCooldowns {
    /// Track id -> no new alarm before this time.
    until: BTreeMap<u64, i64>,
    /// Scratch: ids present in the current frame, ascending.
    present: Vec<u64>,
}

impl TrackCooldowns {
    /// Forgets the cooldowns over at `ts` and notes the frame's track ids.
    pub fn begin_frame(&mut self, ts: i64, tracks: &[Track]) {
        self.until.retain(|_, until| *until > ts);
        self.present.clear();
        self.present.extend(tracks.iter().map(|t| t.id));
        self.present.sort_unstable();
    }

    /// Whether the track is in the frame given to [`Self::begin_frame`].
    pub fn is_present(&self, id: u64) -> bool {
        self.present.binary_search(&id).is_ok()
    }

    /// Whether the track may get a new alarm at `ts`.
    pub fn ready(&self, id: u64, ts: i64) -> bool {
        self.until.get(&id).is_none_or(|until| ts >= *until)
    }

    /// Starts the track's cooldown at its alarm's `end`.
    pub fn start(&mut self, id: u64, end: &AlarmTransition, cooldown_ms: i64) {
        self.until
            .insert(id, end.event_at_ms.saturating_add(cooldown_ms));
    }
}

#[derive(Debug, Default, Clone)]
pub(crate) struct IdIssuer {
    recent: HashSet<String>,
    order: VecDeque<String>,
}

impl IdIssuer {
    /// How many recent ids are checked for repeats.
    pub const REMEMBER: usize = 1024;

    pub fn issue(
        &mut self,
        edge: &str,
        camera: &str,
        rule: &str,
        started_ms: i64,
        track: Option<u64>,
    ) -> String {
        let mut base = alarm_id::compose(&[edge, camera, rule], started_ms);
        if let Some(t) = track {
            base.push_str(".t");
            base.push_str(&t.to_string());
        }
        let mut id = alarm_id::fit(&base);
        let mut n = 1u32;
        while self.recent.contains(&id) {
            n = n.saturating_add(1);
            id = alarm_id::fit(&format!("{base}.{n}"));
        }
        self.recent.insert(id.clone());
        self.order.push_back(id.clone());
        if self.order.len() > Self::REMEMBER
            && let Some(old) = self.order.pop_front()
        {
            self.recent.remove(&old);
        }
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parkwatch_protocol::{MAX_ALARM_ID_LEN, validate_id};

    #[test]
    fn ids_are_topic_safe_and_bounded() {
        let mut ids = IdIssuer::default();
        let id = ids.issue("edge-07", "cam gate/n", "r#1", 1_700_000_000_000, Some(42));
        assert_eq!(id, "edge-07.cam_gate_n.r_1.1700000000000.t42");
        let long = "x".repeat(64);
        let a = ids.issue(&long, &long, &long, 1, None);
        let b = ids.issue(&long, &long, &long, 2, None);
        assert_eq!(a.len(), MAX_ALARM_ID_LEN);
        assert_ne!(a, b);
        for id in [&id, &a, &b] {
            validate_id(id, MAX_ALARM_ID_LEN).unwrap();
        }
    }

    #[test]
    fn repeated_id_gets_a_suffix() {
        let mut ids = IdIssuer::default();
        let a = ids.issue("e", "c", "r", 5, None);
        let b = ids.issue("e", "c", "r", 5, None);
        let c = ids.issue("e", "c", "r", 5, None);
        assert_eq!(a, "e.c.r.5");
        assert_eq!(b, "e.c.r.5.2");
        assert_eq!(c, "e.c.r.5.3");
    }

    #[test]
    fn count_materiality_scales_with_the_count() {
        let ev = |count| Evidence {
            ids: Vec::new(),
            count,
            max_score: 0.5,
        };
        let m = Materiality::Count { fraction: 0.2 };
        assert!(m.changed(&ev(3), &ev(4), 0.1));
        assert!(!m.changed(&ev(10), &ev(11), 0.1));
        assert!(m.changed(&ev(10), &ev(8), 0.1));
    }
}
