//! Zone-level rules: `intrusion` (at least one watched object in the zone)
//! and `crowd` (at least `min_count` of them). One alarm per rule at a time.
//!
//! Guarantees: an alarm opens only while the rule is active, outside its
//! cooldown, after the condition held for `inertia_frames` consecutive
//! frames and for the rule's `seconds`; it ends once the condition has been
//! false for `clear_ms`, when the rule's active hours end, or when the
//! engine resets it (stream offline, flush).

use parkwatch_config::geometry::{Location, locate};
use parkwatch_protocol::DetectedObject;

use super::alarm::{Materiality, OpenAlarm, RuleMeta};
use super::{AlarmTransition, Frame};
use crate::track::Track;

/// A zone polygon with a bounding box for a cheap first test.
#[derive(Debug, Clone)]
pub(crate) struct Zone {
    poly: Vec<[f64; 2]>,
    bounds: [f64; 4],
}

impl Zone {
    /// Tolerance for "on the boundary counts as inside".
    const EPS: f64 = 1e-9;

    pub fn new(poly: Vec<[f64; 2]>) -> Self {
        let mut bounds = [
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        ];
        for p in &poly {
            bounds[0] = bounds[0].min(p[0]);
            bounds[1] = bounds[1].min(p[1]);
            bounds[2] = bounds[2].max(p[0]);
            bounds[3] = bounds[3].max(p[1]);
        }
        Zone { poly, bounds }
    }

    /// Whether `p` is inside or on the boundary.
    pub fn contains(&self, p: [f64; 2]) -> bool {
        let b = &self.bounds;
        if p[0] < b[0] - Self::EPS
            || p[0] > b[2] + Self::EPS
            || p[1] < b[1] - Self::EPS
            || p[1] > b[3] + Self::EPS
        {
            return false;
        }
        locate(p, &self.poly, Self::EPS) != Location::Outside
    }
}

/// Intrusion or crowd.
#[derive(Debug, Clone)]
pub(crate) struct ZoneRule {
    pub meta: RuleMeta,
    zone: Zone,
    /// 1 for intrusion.
    min_count: usize,
    crowd: bool,
    /// Start of the current spell of the condition (survives dips shorter
    /// than `clear_ms`).
    since_ms: Option<i64>,
    last_true_ms: i64,
    consecutive: u32,
    open: Option<OpenAlarm>,
    cooldown_until: Option<i64>,
}

impl ZoneRule {
    pub fn intrusion(meta: RuleMeta, zone: Zone) -> Self {
        Self::new(meta, zone, 1, false)
    }

    pub fn crowd(meta: RuleMeta, zone: Zone, min_count: usize) -> Self {
        Self::new(meta, zone, min_count.max(1), true)
    }

    fn new(meta: RuleMeta, zone: Zone, min_count: usize, crowd: bool) -> Self {
        ZoneRule {
            meta,
            zone,
            min_count,
            crowd,
            since_ms: None,
            last_true_ms: i64::MIN,
            consecutive: 0,
            open: None,
            cooldown_until: None,
        }
    }

    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    pub fn on_frame(&mut self, f: &mut Frame<'_>, out: &mut Vec<AlarmTransition>) {
        let (ts, tracks) = (f.ts_ms, f.tracks);
        if !self.meta.active_at(f.minute) {
            self.reset(ts, out);
            return;
        }
        let objects: Vec<DetectedObject> = tracks
            .iter()
            .filter(|t| {
                self.meta.qualifies(t, f.opts.require_confirmed) && self.zone.contains(t.foot())
            })
            .map(Track::to_object)
            .collect();
        let holds = objects.len() >= self.min_count;

        if holds {
            self.consecutive = self.consecutive.saturating_add(1);
            self.last_true_ms = ts;
            let since = *self.since_ms.get_or_insert(ts);
            if let Some(open) = &mut self.open {
                let m = if self.crowd {
                    Materiality::Count {
                        fraction: f.opts.crowd_update_fraction,
                    }
                } else {
                    Materiality::Objects
                };
                out.extend(open.maybe_update(&self.meta, f.opts, ts, &objects, m));
            } else if self.consecutive >= f.opts.inertia_frames
                && ts.saturating_sub(since) >= self.meta.hold_ms
                && self.cooldown_until.is_none_or(|c| ts >= c)
            {
                let id = f.issue(&self.meta.id, ts, None);
                let (alarm, tr) = OpenAlarm::open(&self.meta, id, ts, objects);
                self.open = Some(alarm);
                out.push(tr);
            }
        } else {
            self.consecutive = 0;
            if ts.saturating_sub(self.last_true_ms) >= f.opts.clear_ms {
                self.since_ms = None;
                self.end(ts, out);
            }
        }
    }

    /// Ends an open alarm (starting the cooldown).
    fn end(&mut self, ts: i64, out: &mut Vec<AlarmTransition>) {
        if let Some(open) = self.open.take() {
            let tr = open.end(&self.meta, ts);
            self.cooldown_until = Some(tr.event_at_ms.saturating_add(self.meta.cooldown_ms));
            out.push(tr);
        }
    }

    /// Ends an open alarm and forgets the condition's history.
    pub fn reset(&mut self, ts: i64, out: &mut Vec<AlarmTransition>) {
        self.end(ts, out);
        self.since_ms = None;
        self.consecutive = 0;
        self.last_true_ms = i64::MIN;
    }
}
