//! Alarm rules: turns the tracks of one camera into alarm transitions
//! (`new` / `update` / `end`), as plain data in and plain data out.
//!
//! One [`RuleEngine`] per camera. The pipeline feeds it the tracker's
//! output after every detector frame ([`RuleEngine::on_frame`]), tells it
//! when the stream goes stale or comes back ([`RuleEngine::on_stream_state`])
//! and ends everything at the end of a replay or on shutdown
//! ([`RuleEngine::flush`]). Every call returns the transitions it caused,
//! in a deterministic order (rules in configuration order, tracks by id).
//! Time is the caller's: milliseconds since the Unix epoch taken from the
//! video's own timestamps, so a replay at any speed raises the same alarms
//! with the same ids. Nothing here sleeps, reads a clock or does I/O.
//!
//! # Lifecycle of an alarm
//!
//! An alarm is one condition, from the frame where it is confirmed to the
//! frame where it is over, like a tracked object:
//!
//! - `new`: first event; `started_at_ms` = `event_at_ms` = that frame's
//!   time; `best` is set (snapshot it) when it carries objects.
//! - `update`: only when the evidence changed materially **and** the
//!   previous event of the alarm is at least
//!   [`RuleOptions::update_interval_ms`] old (default 5000 ms), so at most
//!   one update per 5 s per alarm. Material: for intrusion and dwell, the
//!   set of track ids changed, or the best score rose by
//!   [`RuleOptions::better_score_delta`] (default 0.1) over the last event's;
//!   for crowd, the count moved by at least `max(1, ceil(0.2 * last count))`
//!   ([`RuleOptions::crowd_update_fraction`]). A change that arrives inside
//!   the interval is not queued: it is emitted at the first frame after the
//!   interval if it still holds then. `best` is set on an update whose
//!   evidence beats the best so far: more objects, or as many with a best
//!   score higher by `better_score_delta`.
//! - `end`: exactly once; `ended_at_ms` = `event_at_ms` = the frame (or call)
//!   time at which the engine decided it is over; no objects.
//!
//! Event times never precede `started_at_ms`, even if the caller's clock
//! goes backwards. An alarm id is `{edge}.{camera}.{rule}.{started_at_ms}`,
//! plus `.t{track_id}` for per-track kinds (dwell, line_crossing), with any
//! character outside `[A-Za-z0-9_.:-]` replaced by `_`; over 128 chars it is
//! cut and suffixed with a hash (see `alarm::IdIssuer`). It is the same in
//! every event of the alarm, and unique across restarts as long as the
//! timestamps are (epoch ms from the stream).
//!
//! # Kinds
//!
//! Objects are tracks; a track's position is its box's bottom-centre (where
//! it stands), tested against zone polygons with the boundary counting as
//! inside. A track *qualifies* for a rule when its class is in `classes`,
//! its latest score is >= `min_score` (the rule's, else
//! [`RuleOptions::default_min_score`], default 0.35 like the detector's) and
//! it is confirmed by the tracker (unless
//! [`RuleOptions::require_confirmed`] is off). Tracks coasting through
//! detector misses count where they were last seen.
//!
//! - `intrusion`: at least one qualifying track inside the zone. Opens when
//!   that has held for [`RuleOptions::inertia_frames`] consecutive frames
//!   (default 2) and for the rule's `seconds` (default 0); one frame without
//!   resets the frame count, not the time. Ends when the zone has been
//!   clear of qualifying tracks for [`RuleOptions::clear_ms`] (default
//!   3000 ms), so an object jittering across the border neither flaps the
//!   alarm nor restarts it.
//! - `crowd`: like intrusion with at least `min_count` qualifying tracks
//!   inside; updates on material count changes; ends when the count has been
//!   under `min_count` for `clear_ms`.
//! - `dwell` (illegal parking, loitering): one alarm per track that has
//!   been inside the zone for the rule's `seconds` (spells outside shorter
//!   than `clear_ms` are forgiven). Ends when the track has been outside for
//!   `clear_ms`, or at once when the tracker drops it (lost).
//! - `line_crossing`: one instantaneous alarm per crossing of a track, `new`
//!   and `end` emitted together at the crossing frame; see [`line`](mod@line) for the
//!   exact side and direction definition and the hysteresis band
//!   ([`RuleOptions::line_hysteresis`], default 0.005).
//! - `camera_offline`: built in for every camera, rule id
//!   [`CAMERA_OFFLINE_RULE_ID`], severity
//!   [`RuleOptions::offline_severity`] (default major), no zone. `new` when
//!   [`RuleEngine::on_stream_state`] reports the stream offline (the
//!   pipeline's frame watchdog decides when), `end` when it reports it
//!   online or when a frame arrives. Going offline also ends every other
//!   open alarm of the camera and forgets what the rules had seen: nothing
//!   can be vouched for while blind.
//!
//! # Per-rule settings
//!
//! - `active_hours`: local windows, local = UTC + [`RuleOptions::utc_offset_minutes`]
//!   (default +480, China). Outside them nothing opens, open alarms end at
//!   the first frame outside, and the rule forgets its history (a dwell
//!   clock starts again when the window opens). Camera offline is always
//!   active.
//! - `cooldown_secs` (default 0): after an alarm of the rule ends, no new
//!   one opens before `end + cooldown`; per track for dwell and
//!   line_crossing, per rule otherwise. Every kind of end starts it.
//! - `catalogue_item`: copied to every transition; `None` when the rule has
//!   none, and the pipeline then maps the kind through the site catalogue.
//!
//! # Flush
//!
//! [`RuleEngine::flush`] ends every open alarm (camera offline included) at
//! the given time and forgets all history except cooldowns. The pipeline
//! calls it at the end of a replay (so every alarm of a replay has an `end`)
//! and on shutdown; a restarted edge opens fresh alarms with fresh ids.
//!
//! # What the engine does not do
//!
//! Alarms do not end by themselves when frames stop arriving: the next
//! frame, [`RuleEngine::on_stream_state`] or [`RuleEngine::flush`] decides.

mod alarm;
mod dwell;
pub mod line;
mod zone;

#[cfg(test)]
mod tests;

use std::collections::HashSet;

use parkwatch_config::geometry::check_simple;
use parkwatch_config::{CameraConfig, RuleConfig, RuleKind};
use parkwatch_protocol::{
    AlarmEvent, AlarmEventType, AlarmKind, DetectedObject, SCHEMA_VERSION, Severity,
};

use crate::track::Track;
use alarm::{IdIssuer, OpenAlarm, RuleMeta};
use dwell::DwellRule;
use line::LineRule;
use zone::{Zone, ZoneRule};

/// Rule id of the built-in camera-offline alarm; no configured rule may
/// use it.
pub const CAMERA_OFFLINE_RULE_ID: &str = "camera_offline";

/// One step in the life of an alarm, as the engine decided it. The pipeline
/// turns it into a protocol [`AlarmEvent`] (see [`AlarmTransition::to_event`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmTransition {
    /// Stable alarm id, the same in every transition of one alarm.
    pub alarm_id: String,
    /// `new`, `update` or `end`.
    pub event: AlarmEventType,
    /// Configured rule id, or [`CAMERA_OFFLINE_RULE_ID`].
    pub rule_id: String,
    /// Alarm kind.
    pub kind: AlarmKind,
    /// Severity from the rule.
    pub severity: Severity,
    /// Zone id (intrusion, dwell, crowd) or line id (line_crossing).
    pub zone: Option<String>,
    /// The objects that trigger the rule in this frame, by track id; empty
    /// on `end` and for camera_offline.
    pub objects: Vec<DetectedObject>,
    /// When the alarm started (its `new`), ms since the epoch.
    pub started_at_ms: i64,
    /// When this transition happened, ms; never before `started_at_ms`.
    pub event_at_ms: i64,
    /// Set exactly on `end`, equal to `event_at_ms`.
    pub ended_at_ms: Option<i64>,
    /// The rule's event-catalogue item; `None` leaves the mapping to the
    /// site catalogue.
    pub catalogue_item: Option<String>,
    /// This frame is the best evidence of the alarm so far: snapshot it.
    pub best: bool,
}

impl AlarmTransition {
    /// The protocol event for this transition. Snapshot, model, location
    /// and message are left empty for the pipeline to fill in.
    pub fn to_event(&self, site: &str, edge: &str, camera: &str, seq: u64) -> AlarmEvent {
        AlarmEvent {
            v: SCHEMA_VERSION,
            alarm_id: self.alarm_id.clone(),
            event: self.event,
            seq,
            site: site.to_owned(),
            edge: edge.to_owned(),
            camera: Some(camera.to_owned()),
            sensor: None,
            rule_id: self.rule_id.clone(),
            kind: self.kind,
            severity: self.severity,
            zone: self.zone.clone(),
            objects: self.objects.clone(),
            started_at_ms: self.started_at_ms,
            event_at_ms: self.event_at_ms,
            ended_at_ms: self.ended_at_ms,
            snapshot: None,
            model: None,
            location: None,
            catalogue_item: self.catalogue_item.clone(),
            value: None,
            unit: None,
            message: None,
        }
    }
}

/// Engine-wide settings. [`Default`] gives the documented defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleOptions {
    /// Site local time minus UTC, minutes, for `active_hours`; within
    /// ±1439. Default +480 (UTC+8).
    pub utc_offset_minutes: i32,
    /// `min_score` of rules that set none; pass the detector's `min_score`.
    /// Default 0.35.
    pub default_min_score: f32,
    /// Consecutive frames a zone condition must hold before an intrusion or
    /// crowd alarm opens, >= 1. Default 2.
    pub inertia_frames: u32,
    /// How long a zone condition must be false before its alarm ends, and
    /// how long a dwell track may be outside before it counts as gone, ms.
    /// Default 3000.
    pub clear_ms: i64,
    /// Least time between two events of one alarm for an `update`, ms.
    /// Default 5000.
    pub update_interval_ms: i64,
    /// A score rise at least this big is a material change (and makes
    /// better evidence). Default 0.1.
    pub better_score_delta: f32,
    /// A crowd count change of at least `max(1, ceil(fraction * count))` is
    /// material. Default 0.2.
    pub crowd_update_fraction: f32,
    /// Half-width of the band around a line inside which a foot point has
    /// no side, normalised units. Default 0.005.
    pub line_hysteresis: f64,
    /// Only tracks the tracker confirmed count. Default true.
    pub require_confirmed: bool,
    /// Severity of camera_offline alarms. Default major.
    pub offline_severity: Severity,
    /// Catalogue item of camera_offline alarms. Default `None` (the site
    /// catalogue decides).
    pub offline_catalogue_item: Option<String>,
}

impl Default for RuleOptions {
    fn default() -> Self {
        RuleOptions {
            utc_offset_minutes: 480,
            default_min_score: 0.35,
            inertia_frames: 2,
            clear_ms: 3000,
            update_interval_ms: 5000,
            better_score_delta: 0.1,
            crowd_update_fraction: 0.2,
            line_hysteresis: 0.005,
            require_confirmed: true,
            offline_severity: Severity::Major,
            offline_catalogue_item: None,
        }
    }
}

/// Why a camera's rules cannot run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    /// A rule is inconsistent with itself or with the camera's zones and lines.
    #[error("camera {camera:?}: rule {rule:?}: {field}: {reason}")]
    Rule {
        /// Camera id.
        camera: String,
        /// Rule id.
        rule: String,
        /// The offending field, e.g. "zone".
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A [`RuleOptions`] value makes no sense.
    #[error("rule options: {field}: {reason}")]
    Options {
        /// The offending field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Per-call context handed to the rules.
pub(crate) struct Frame<'a> {
    pub ts_ms: i64,
    /// The tracker's full output for this frame.
    pub tracks: &'a [Track],
    /// Local minute of the day.
    pub minute: u16,
    pub opts: &'a RuleOptions,
    edge: &'a str,
    camera: &'a str,
    ids: &'a mut IdIssuer,
}

impl Frame<'_> {
    pub fn issue(&mut self, rule: &str, started_ms: i64, track: Option<u64>) -> String {
        self.ids
            .issue(self.edge, self.camera, rule, started_ms, track)
    }
}

#[derive(Debug, Clone)]
enum Rule {
    Zone(ZoneRule),
    Dwell(DwellRule),
    Line(LineRule),
}

/// The rules of one camera, with their state. See the module docs.
#[derive(Debug, Clone)]
pub struct RuleEngine {
    edge: String,
    camera: String,
    opts: RuleOptions,
    rules: Vec<Rule>,
    offline_meta: RuleMeta,
    offline: Option<OpenAlarm>,
    ids: IdIssuer,
}

/// The same type since the vocabulary is defined once in `parkwatch-protocol`.
fn to_severity(s: parkwatch_config::Severity) -> Severity {
    s
}

/// Seconds (finite, >= 0, checked) to ms, saturating far in the future.
fn secs_to_ms(s: f64) -> i64 {
    (s * 1000.0).round().min(1e15) as i64
}

fn validate_options(o: &RuleOptions) -> Result<(), RuleError> {
    let err = |field, reason: &str| {
        Err(RuleError::Options {
            field,
            reason: reason.to_owned(),
        })
    };
    if !(-1439..=1439).contains(&o.utc_offset_minutes) {
        return err("utc_offset_minutes", "must be within -1439..=1439");
    }
    if !(o.default_min_score.is_finite() && (0.0..=1.0).contains(&o.default_min_score)) {
        return err("default_min_score", "must be within 0..=1");
    }
    if o.inertia_frames == 0 {
        return err("inertia_frames", "must be at least 1");
    }
    if o.clear_ms < 0 {
        return err("clear_ms", "must be >= 0");
    }
    if o.update_interval_ms < 0 {
        return err("update_interval_ms", "must be >= 0");
    }
    if !(o.better_score_delta.is_finite() && o.better_score_delta >= 0.0) {
        return err("better_score_delta", "must be a finite number >= 0");
    }
    if !(o.crowd_update_fraction.is_finite() && o.crowd_update_fraction >= 0.0) {
        return err("crowd_update_fraction", "must be a finite number >= 0");
    }
    if !(o.line_hysteresis.is_finite() && o.line_hysteresis >= 0.0) {
        return err("line_hysteresis", "must be a finite number >= 0");
    }
    Ok(())
}

impl RuleEngine {
    /// Builds the engine for one camera from its configuration. Checks
    /// everything the rules rely on (zone and line references, polygons,
    /// scores, times, unique rule ids, the reserved id) and returns the
    /// first problem.
    pub fn new(edge_id: &str, camera: &CameraConfig, opts: RuleOptions) -> Result<Self, RuleError> {
        validate_options(&opts)?;
        let mut rules = Vec::with_capacity(camera.rules.len());
        let mut seen = HashSet::new();
        for rc in &camera.rules {
            if !seen.insert(rc.id.as_str()) {
                return Err(rule_err(
                    camera,
                    rc,
                    "id",
                    "is used by another rule of this camera",
                ));
            }
            rules.push(build_rule(camera, rc, &opts)?);
        }
        let offline_meta = RuleMeta {
            id: CAMERA_OFFLINE_RULE_ID.to_owned(),
            kind: AlarmKind::CameraOffline,
            severity: opts.offline_severity,
            area: None,
            classes: Vec::new(),
            min_score: 0.0,
            cooldown_ms: 0,
            hold_ms: 0,
            hours: Vec::new(),
            catalogue_item: opts.offline_catalogue_item.clone(),
        };
        Ok(RuleEngine {
            edge: edge_id.to_owned(),
            camera: camera.id.clone(),
            opts,
            rules,
            offline_meta,
            offline: None,
            ids: IdIssuer::default(),
        })
    }

    /// The camera this engine watches.
    pub fn camera_id(&self) -> &str {
        &self.camera
    }

    /// Number of alarms currently open (camera offline included).
    pub fn open_alarms(&self) -> usize {
        let rules: usize = self
            .rules
            .iter()
            .map(|r| match r {
                Rule::Zone(z) => usize::from(z.is_open()),
                Rule::Dwell(d) => d.open_count(),
                Rule::Line(_) => 0,
            })
            .sum();
        rules + usize::from(self.offline.is_some())
    }

    fn local_minute(&self, ts_ms: i64) -> u16 {
        let m = ts_ms
            .div_euclid(60_000)
            .saturating_add(i64::from(self.opts.utc_offset_minutes))
            .rem_euclid(1440);
        // rem_euclid(1440) is within 0..1440.
        u16::try_from(m).unwrap_or(0)
    }

    /// Evaluates every rule on the tracks of the frame taken at `ts_ms`
    /// (call it after every detector run, with the tracker's full output).
    /// A frame also ends an open camera_offline alarm.
    pub fn on_frame(&mut self, ts_ms: i64, tracks: &[Track]) -> Vec<AlarmTransition> {
        let mut out = Vec::new();
        if let Some(open) = self.offline.take() {
            out.push(open.end(&self.offline_meta, ts_ms));
        }
        let mut f = Frame {
            ts_ms,
            tracks,
            minute: self.local_minute(ts_ms),
            opts: &self.opts,
            edge: &self.edge,
            camera: &self.camera,
            ids: &mut self.ids,
        };
        for rule in &mut self.rules {
            match rule {
                Rule::Zone(r) => r.on_frame(&mut f, &mut out),
                Rule::Dwell(r) => r.on_frame(&mut f, &mut out),
                Rule::Line(r) => r.on_frame(&mut f, &mut out),
            }
        }
        out
    }

    /// Reports the stream state. `online == false` (stale or unreachable)
    /// opens the camera_offline alarm if it is not open, and ends every other
    /// open alarm of the camera, forgetting the rules' history;
    /// `online == true` ends the camera_offline alarm if it is open. Calling
    /// it twice with the same state changes nothing.
    pub fn on_stream_state(&mut self, ts_ms: i64, online: bool) -> Vec<AlarmTransition> {
        let mut out = Vec::new();
        if online {
            if let Some(open) = self.offline.take() {
                out.push(open.end(&self.offline_meta, ts_ms));
            }
            return out;
        }
        if self.offline.is_none() {
            let id = self.ids.issue(
                &self.edge,
                &self.camera,
                CAMERA_OFFLINE_RULE_ID,
                ts_ms,
                None,
            );
            let (alarm, tr) = OpenAlarm::open(&self.offline_meta, id, ts_ms, Vec::new());
            self.offline = Some(alarm);
            out.push(tr);
        }
        self.reset_rules(ts_ms, &mut out);
        out
    }

    /// Ends every open alarm at `ts_ms`, camera_offline included, and
    /// forgets the rules' history (cooldowns are kept). Use at the end of a
    /// replay and on shutdown. The engine stays usable.
    pub fn flush(&mut self, ts_ms: i64) -> Vec<AlarmTransition> {
        let mut out = Vec::new();
        self.reset_rules(ts_ms, &mut out);
        if let Some(open) = self.offline.take() {
            out.push(open.end(&self.offline_meta, ts_ms));
        }
        out
    }

    fn reset_rules(&mut self, ts_ms: i64, out: &mut Vec<AlarmTransition>) {
        for rule in &mut self.rules {
            match rule {
                Rule::Zone(r) => r.reset(ts_ms, out),
                Rule::Dwell(r) => r.reset(ts_ms, out),
                Rule::Line(r) => r.reset(),
            }
        }
    }
}

fn rule_err(
    camera: &CameraConfig,
    rc: &RuleConfig,
    field: &'static str,
    reason: &str,
) -> RuleError {
    RuleError::Rule {
        camera: camera.id.clone(),
        rule: rc.id.clone(),
        field,
        reason: reason.to_owned(),
    }
}

fn build_rule(
    camera: &CameraConfig,
    rc: &RuleConfig,
    opts: &RuleOptions,
) -> Result<Rule, RuleError> {
    let err = |field, reason: &str| rule_err(camera, rc, field, reason);
    if rc.id.is_empty() {
        return Err(err("id", "is empty"));
    }
    if rc.id == CAMERA_OFFLINE_RULE_ID {
        return Err(err(
            "id",
            "\"camera_offline\" is reserved for the built-in rule",
        ));
    }
    if rc.classes.is_empty() {
        return Err(err("classes", "must name at least one class"));
    }
    let min_score = match rc.min_score {
        None => opts.default_min_score,
        Some(s) if s.is_finite() && (0.0..=1.0).contains(&s) => s as f32,
        Some(_) => return Err(err("min_score", "must be within 0..=1")),
    };
    let hold_ms = match rc.seconds {
        None => 0,
        Some(s) if s.is_finite() && s >= 0.0 => secs_to_ms(s),
        Some(_) => return Err(err("seconds", "must be a finite number >= 0")),
    };
    if !(rc.cooldown_secs.is_finite() && rc.cooldown_secs >= 0.0) {
        return Err(err("cooldown_secs", "must be a finite number >= 0"));
    }
    let (kind, area) = match rc.kind {
        RuleKind::Intrusion => (AlarmKind::Intrusion, rc.zone.clone()),
        RuleKind::Dwell => (AlarmKind::Dwell, rc.zone.clone()),
        RuleKind::Crowd => (AlarmKind::Crowd, rc.zone.clone()),
        RuleKind::LineCrossing => (AlarmKind::LineCrossing, rc.line.clone()),
    };
    let meta = RuleMeta {
        id: rc.id.clone(),
        kind,
        severity: to_severity(rc.severity),
        area,
        classes: rc.classes.clone(),
        min_score,
        cooldown_ms: secs_to_ms(rc.cooldown_secs),
        hold_ms,
        hours: rc.active_hours.clone(),
        catalogue_item: rc.catalogue_item.clone(),
    };
    let zone = || -> Result<Zone, RuleError> {
        let zid = rc
            .zone
            .as_deref()
            .ok_or_else(|| err("zone", "is required for this kind"))?;
        let z = camera
            .zones
            .iter()
            .find(|z| z.id == zid)
            .ok_or_else(|| err("zone", &format!("camera has no zone {zid:?}")))?;
        check_simple(&z.polygon).map_err(|r| err("zone", &format!("zone {zid:?}: {r}")))?;
        Ok(Zone::new(z.polygon.clone()))
    };
    Ok(match rc.kind {
        RuleKind::Intrusion => Rule::Zone(ZoneRule::intrusion(meta, zone()?)),
        RuleKind::Crowd => {
            let n = rc
                .min_count
                .ok_or_else(|| err("min_count", "is required for crowd"))?;
            if n == 0 {
                return Err(err("min_count", "must be at least 1"));
            }
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            Rule::Zone(ZoneRule::crowd(meta, zone()?, n))
        }
        RuleKind::Dwell => Rule::Dwell(DwellRule::new(meta, zone()?)),
        RuleKind::LineCrossing => {
            let lid = rc
                .line
                .as_deref()
                .ok_or_else(|| err("line", "is required for line_crossing"))?;
            let l = camera
                .lines
                .iter()
                .find(|l| l.id == lid)
                .ok_or_else(|| err("line", &format!("camera has no line {lid:?}")))?;
            if l.points.iter().flatten().any(|v| !v.is_finite()) {
                return Err(err("line", &format!("line {lid:?} has a non-finite point")));
            }
            if l.points[0] == l.points[1] {
                return Err(err("line", &format!("line {lid:?} has A == B")));
            }
            Rule::Line(LineRule::new(meta, l.points, rc.direction))
        }
    })
}
