//! The `line_crossing` rule: a track's bottom-centre path crosses the
//! segment A -> B in the configured direction.
//!
//! # Sides and direction
//!
//! Image coordinates: x right, y down. For a point P the side is the sign of
//! `(Bx-Ax)*(Py-Ay) - (By-Ay)*(Px-Ax)` ([`LineConfig::side`]): negative is
//! the *left* of A -> B as seen on the displayed image (standing at A
//! looking towards B), positive the *right*. `a_to_b` counts a track going
//! from the left side to the right side, `b_to_a` the reverse, `both`
//! either. Example: A = (0.2, 0.6), B = (0.8, 0.6): `a_to_b` is a track
//! moving down the image.
//!
//! # Detection
//!
//! Per track the rule keeps the last bottom-centre that lay clearly on one
//! side: further than `line_hysteresis` (normalised units) from the line.
//! Points within that band are ignored, so a foot jittering on the line
//! never counts as crossings back and forth. A crossing is a new clear-side
//! point on the other side whose path from the kept point intersects the
//! closed segment A-B (passing beside the line's ends does not count). Only
//! new observations (a changed `last_seen_ms`) move a track.
//!
//! A crossing raises an alarm when the rule is active, the track's class is
//! watched, the better of the two observations' scores reaches `min_score`,
//! the track is confirmed (when required) and the track is not in its
//! cooldown. The alarm is instantaneous: its `new` (with the track, `best`)
//! and its `end` are emitted together, at the frame of the crossing. The
//! per-track cooldown starts at that end.
//!
//! [`LineConfig::side`]: parkwatch_config::LineConfig::side

use std::collections::BTreeMap;

use parkwatch_config::Direction;
use parkwatch_config::geometry::{cross, segments_intersect};

use super::alarm::{OpenAlarm, RuleMeta, TrackCooldowns};
use super::{AlarmTransition, Frame};

#[derive(Debug, Clone, Copy)]
struct LineTrack {
    /// Signed distance of `point` from the line; 0 until a clear side is seen.
    side: f64,
    point: [f64; 2],
    score: f32,
    last_seen_ms: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct LineRule {
    pub meta: RuleMeta,
    a: [f64; 2],
    b: [f64; 2],
    len: f64,
    direction: Direction,
    tracks: BTreeMap<u64, LineTrack>,
    cooldown: TrackCooldowns,
}

impl LineRule {
    /// `a != b` is checked by the engine.
    pub fn new(meta: RuleMeta, points: [[f64; 2]; 2], direction: Direction) -> Self {
        let [a, b] = points;
        LineRule {
            meta,
            a,
            b,
            len: (b[0] - a[0]).hypot(b[1] - a[1]).max(f64::MIN_POSITIVE),
            direction,
            tracks: BTreeMap::new(),
            cooldown: TrackCooldowns::default(),
        }
    }

    pub fn on_frame(&mut self, f: &mut Frame<'_>, out: &mut Vec<AlarmTransition>) {
        let (ts, tracks) = (f.ts_ms, f.tracks);
        let active = self.meta.active_at(f.minute);
        let hysteresis = f.opts.line_hysteresis;
        self.cooldown.begin_frame(ts, tracks);

        for t in tracks {
            let foot = t.foot();
            let d = cross(self.a, self.b, foot) / self.len;
            let st = self.tracks.entry(t.id).or_insert(LineTrack {
                side: 0.0,
                point: foot,
                score: t.score,
                last_seen_ms: i64::MIN,
            });
            if t.last_seen_ms <= st.last_seen_ms {
                continue;
            }
            st.last_seen_ms = t.last_seen_ms;
            if !d.is_finite() || d.abs() < hysteresis || d == 0.0 {
                continue;
            }
            let flipped = st.side != 0.0 && (st.side < 0.0) != (d < 0.0);
            if flipped
                && active
                && self.direction.counts(st.side, d)
                && segments_intersect(st.point, foot, self.a, self.b)
                && (t.confirmed || !f.opts.require_confirmed)
                && t.score.max(st.score) >= self.meta.min_score
                && self.meta.classes.contains(&t.class)
                && self.cooldown.ready(t.id, ts)
            {
                let id = f.issue(&self.meta.id, ts, Some(t.id));
                let (alarm, tr) = OpenAlarm::open(&self.meta, id, ts, vec![t.to_object()]);
                out.push(tr);
                let end = alarm.end(&self.meta, ts);
                self.cooldown.start(t.id, &end, self.meta.cooldown_ms);
                out.push(end);
            }
            st.side = d;
            st.point = foot;
            st.score = t.score;
        }
        let cooldown = &self.cooldown;
        self.tracks.retain(|id, _| cooldown.is_present(*id));
    }

    /// Forgets every track's side (alarms of this kind are never left open).
    pub fn reset(&mut self) {
        self.tracks.clear();
    }
}
