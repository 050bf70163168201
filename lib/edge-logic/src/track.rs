//! Multi-object tracking: turns per-frame detections into tracks with
//! stable ids, in the manner of SORT and ByteTrack.
//!
//! # What it does
//!
//! [`Tracker::update`] takes the detections of one frame, with the frame's
//! own timestamp in milliseconds, and returns every live [`Track`]. Call it
//! only for frames the detector actually ran on: frames skipped by motion
//! gating are not misses. Time comes from the caller, never from a clock, so
//! a replay at any speed gives the same tracks.
//!
//! Per frame:
//!
//! 1. Detections with a non-finite score or box are dropped, boxes and
//!    scores are clamped to `0..=1` and box corners put in order, and
//!    detections scoring below
//!    [`TrackerConfig::low_score`] are dropped.
//! 2. Each track's box is predicted to the frame time with a constant
//!    velocity (an exponentially smoothed centre velocity; a stationary track
//!    is predicted not to move).
//! 3. **Stage 1**: every track is associated with the high-score detections
//!    (score >= [`TrackerConfig::high_score`]) of the same class. A pair
//!    qualifies by IoU >= [`TrackerConfig::match_iou`] against the predicted
//!    or the last box, or, when the boxes do not overlap enough (the
//!    detector may run at only 0.5–5 Hz, so a walking person moves further
//!    than its own width between frames), by centre distance <=
//!    [`TrackerConfig::max_centre_distance`] box diagonals with box areas
//!    within a factor [`TrackerConfig::max_area_ratio`]. IoU matches always
//!    rank before distance matches; pairs are taken greedily, best first.
//! 4. **Stage 2** (ByteTrack): confirmed tracks left over are associated with
//!    the low-score detections by IoU >= [`TrackerConfig::low_match_iou`]
//!    only, so a partly occluded object keeps its track without a weak
//!    detection ever starting one.
//! 5. High-score detections left over start tentative tracks. A tentative
//!    track is confirmed after [`TrackerConfig::confirm_hits`] hits; one that
//!    misses a detector frame before that is dropped. A confirmed track
//!    survives misses until it has not been seen for more than
//!    [`TrackerConfig::max_age_ms`], or [`TrackerConfig::stationary_max_age_ms`]
//!    when it is stationary: a parked vehicle under motion gating is looked
//!    at only every 2 s, so one missed detection is already a 4 s gap, and an
//!    object that has stood still is most likely still there when a passing
//!    one hides it.
//!
//! # Guarantees
//!
//! - Track ids start at 1, increase, and are never reused by one
//!   [`Tracker`], not even after [`Tracker::clear`].
//! - The returned boxes are the last *observed* boxes (never predictions),
//!   so a track coasting through misses stays where it was last seen.
//! - Returned tracks are ordered by id.
//! - No input panics it: NaN scores or boxes, inverted boxes, timestamps that
//!   go backwards (treated as no time passing) are all tolerated.
//!
//! # Stationarity
//!
//! A track keeps an anchor: the box centre and the time where the object
//! last "settled". While every new centre stays within
//! [`TrackerConfig::stationary_fraction`] of the current box diagonal from
//! the anchor, the anchor stays put; once it has held for
//! [`TrackerConfig::stationary_after_ms`] the track is `stationary` and
//! `stationary_since_ms` is the anchor time. A centre further away moves the
//! anchor there and clears the flag. The anchor (not the previous frame) is
//! the reference, so slow creep adds up and does not count as standing
//! still.

use parkwatch_protocol::DetectedObject;

/// One detection of one frame, as the detector produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct Det {
    /// Class label, e.g. "car". Tracks only ever match detections of their
    /// own class.
    pub class: String,
    /// Detector confidence, `0..=1`.
    pub score: f32,
    /// Box `[x1, y1, x2, y2]`, normalised `0..=1`, origin top-left.
    pub bbox: [f32; 4],
}

impl From<&DetectedObject> for Det {
    fn from(o: &DetectedObject) -> Self {
        Det {
            class: o.class.clone(),
            score: o.score,
            bbox: o.bbox,
        }
    }
}

/// A tracked object, as [`Tracker::update`] reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    /// Stable id, unique for the life of the [`Tracker`]; never reused.
    pub id: u64,
    /// Class label of the detections that built the track.
    pub class: String,
    /// Score of the last matched detection.
    pub score: f32,
    /// Last observed box `[x1, y1, x2, y2]`, normalised.
    pub bbox: [f32; 4],
    /// Timestamp of the first detection, ms.
    pub first_seen_ms: i64,
    /// Timestamp of the last matched detection, ms. Smaller than the frame
    /// time while the track coasts through misses.
    pub last_seen_ms: i64,
    /// Number of detections matched to the track, the first included.
    pub hits: u32,
    /// Whether the object has stayed put for
    /// [`TrackerConfig::stationary_after_ms`] (see the module docs).
    pub stationary: bool,
    /// Since when the object has stayed put; `Some` exactly when
    /// `stationary`.
    pub stationary_since_ms: Option<i64>,
    /// Whether the track has reached [`TrackerConfig::confirm_hits`] hits.
    /// Stays true once set.
    pub confirmed: bool,
}

impl Track {
    /// The bottom-centre of the box `(x, y)`: where the object touches the
    /// ground, which is what zones and lines are tested against.
    pub fn foot(&self) -> [f64; 2] {
        foot_point(self.bbox)
    }

    /// The track as a protocol [`DetectedObject`] for an alarm event.
    pub fn to_object(&self) -> DetectedObject {
        DetectedObject {
            class: self.class.clone(),
            score: self.score,
            bbox: self.bbox,
            track_id: Some(self.id),
        }
    }
}

/// The bottom-centre of a normalised box `[x1, y1, x2, y2]`.
pub fn foot_point(b: [f32; 4]) -> [f64; 2] {
    [(f64::from(b[0]) + f64::from(b[2])) / 2.0, f64::from(b[3])]
}

/// Tracker settings. [`Default`] gives the documented defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackerConfig {
    /// Detections at or above this score are "high": they can start tracks
    /// and match in stage 1. Default 0.35, the detector's default
    /// `min_score`, so that whatever the detector passes by default can
    /// start a track; a detection the detector passes but that is below
    /// this never starts one. To let stage 2 rescue weak detections, lower
    /// the detector's threshold towards `low_score` and leave the score
    /// filter to the rules' `min_score`.
    pub high_score: f32,
    /// Detections below this score are ignored. Default 0.1.
    pub low_score: f32,
    /// Minimum IoU for a stage-1 match. Default 0.3.
    pub match_iou: f32,
    /// Minimum IoU for a stage-2 (low-score) match. Default 0.5.
    pub low_match_iou: f32,
    /// Largest centre distance, in box diagonals (the larger of the two
    /// boxes), for a stage-1 match when the boxes do not overlap enough.
    /// 0 disables distance matching. Default 1.5.
    pub max_centre_distance: f32,
    /// Largest ratio between the two box areas for a distance match.
    /// Default 4.0.
    pub max_area_ratio: f32,
    /// Hits after which a track is confirmed. Default 2.
    pub confirm_hits: u32,
    /// How long a confirmed track survives without a matched detection, ms.
    /// Must exceed the longest interval between detector runs: motion
    /// gating re-checks a static scene every 2 s, and that re-check lands on
    /// the first frame after 2 s, so the default is 2500.
    pub max_age_ms: i64,
    /// How long a *stationary* confirmed track survives without a matched
    /// detection, ms; at least `max_age_ms` is used. Long enough for a
    /// missed detection or two under motion gating. Default 10000.
    pub stationary_max_age_ms: i64,
    /// How far the centre may wander from its anchor and still count as
    /// standing still, as a fraction of the box diagonal. Default 0.1.
    pub stationary_fraction: f32,
    /// How long the centre must stay near its anchor for the track to be
    /// stationary, ms. Default 5000.
    pub stationary_after_ms: i64,
    /// Weight of the newest velocity measurement in the smoothed velocity,
    /// `0..=1`. Default 0.5.
    pub velocity_smoothing: f32,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            high_score: 0.35,
            low_score: 0.1,
            match_iou: 0.3,
            low_match_iou: 0.5,
            max_centre_distance: 1.5,
            max_area_ratio: 4.0,
            confirm_hits: 2,
            max_age_ms: 2500,
            stationary_max_age_ms: 10_000,
            stationary_fraction: 0.1,
            stationary_after_ms: 5000,
            velocity_smoothing: 0.5,
        }
    }
}

/// A [`TrackerConfig`] value that makes no sense.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid tracker setting {field} = {value}: {reason}")]
pub struct TrackerConfigError {
    /// The field name, e.g. "max_age_ms".
    pub field: &'static str,
    /// The offending value, rendered.
    pub value: String,
    /// What is expected instead.
    pub reason: &'static str,
}

impl TrackerConfig {
    /// Checks every field; returns the first problem.
    pub fn validate(&self) -> Result<(), TrackerConfigError> {
        fn unit(field: &'static str, v: f32) -> Result<(), TrackerConfigError> {
            if v.is_finite() && (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(TrackerConfigError {
                    field,
                    value: v.to_string(),
                    reason: "must be within 0..=1",
                })
            }
        }
        unit("high_score", self.high_score)?;
        unit("low_score", self.low_score)?;
        unit("match_iou", self.match_iou)?;
        unit("low_match_iou", self.low_match_iou)?;
        unit("stationary_fraction", self.stationary_fraction)?;
        unit("velocity_smoothing", self.velocity_smoothing)?;
        if self.low_score > self.high_score {
            return Err(TrackerConfigError {
                field: "low_score",
                value: self.low_score.to_string(),
                reason: "must not exceed high_score",
            });
        }
        if !(self.max_centre_distance.is_finite() && self.max_centre_distance >= 0.0) {
            return Err(TrackerConfigError {
                field: "max_centre_distance",
                value: self.max_centre_distance.to_string(),
                reason: "must be a finite number >= 0",
            });
        }
        if !(self.max_area_ratio.is_finite() && self.max_area_ratio >= 1.0) {
            return Err(TrackerConfigError {
                field: "max_area_ratio",
                value: self.max_area_ratio.to_string(),
                reason: "must be a finite number >= 1",
            });
        }
        if self.confirm_hits == 0 {
            return Err(TrackerConfigError {
                field: "confirm_hits",
                value: "0".into(),
                reason: "must be at least 1",
            });
        }
        if self.stationary_max_age_ms < 0 {
            return Err(TrackerConfigError {
                field: "stationary_max_age_ms",
                value: self.stationary_max_age_ms.to_string(),
                reason: "must be >= 0",
            });
        }
        if self.max_age_ms <= 0 {
            return Err(TrackerConfigError {
                field: "max_age_ms",
                value: self.max_age_ms.to_string(),
                reason: "must be > 0 and should exceed the detection interval",
            });
        }
        if self.stationary_after_ms < 0 {
            return Err(TrackerConfigError {
                field: "stationary_after_ms",
                value: self.stationary_after_ms.to_string(),
                reason: "must be >= 0",
            });
        }
        Ok(())
    }
}

/// Motion state kept beside each [`Track`] (same index).
#[derive(Debug, Clone)]
struct Motion {
    /// Smoothed centre velocity, normalised units per ms.
    vel: [f64; 2],
    /// Whether `vel` holds a measurement yet.
    has_vel: bool,
    /// Where the object last settled, and since when.
    anchor: [f64; 2],
    anchor_ms: i64,
    /// Whether the track was matched in the latest update.
    matched: bool,
}

/// The multi-object tracker of one camera. See the module docs.
#[derive(Debug, Clone)]
pub struct Tracker {
    cfg: TrackerConfig,
    tracks: Vec<Track>,
    motion: Vec<Motion>,
    next_id: u64,
    /// Scratch buffers, kept to avoid allocating per frame.
    pairs: Vec<(f32, usize, usize)>,
    clean: Vec<Clean>,
    det_used: Vec<bool>,
}

/// A detection after [`sanitise`], with its box geometry; `src` indexes the
/// caller's slice (for the class).
#[derive(Debug, Clone, Copy)]
struct Clean {
    src: usize,
    score: f32,
    bbox: [f32; 4],
    g: BoxGeom,
}

/// Sanitised box geometry used during association.
#[derive(Debug, Clone, Copy)]
struct BoxGeom {
    b: [f64; 4],
}

impl BoxGeom {
    fn new(b: [f32; 4]) -> Self {
        BoxGeom {
            b: b.map(f64::from),
        }
    }
    fn centre(&self) -> [f64; 2] {
        [(self.b[0] + self.b[2]) / 2.0, (self.b[1] + self.b[3]) / 2.0]
    }
    fn w(&self) -> f64 {
        (self.b[2] - self.b[0]).max(0.0)
    }
    fn h(&self) -> f64 {
        (self.b[3] - self.b[1]).max(0.0)
    }
    fn area(&self) -> f64 {
        self.w() * self.h()
    }
    fn diag(&self) -> f64 {
        norm(self.w(), self.h())
    }
    fn shifted(&self, d: [f64; 2]) -> Self {
        BoxGeom {
            b: [
                self.b[0] + d[0],
                self.b[1] + d[1],
                self.b[2] + d[0],
                self.b[3] + d[1],
            ],
        }
    }
    fn iou(&self, o: &BoxGeom) -> f64 {
        let iw = (self.b[2].min(o.b[2]) - self.b[0].max(o.b[0])).max(0.0);
        let ih = (self.b[3].min(o.b[3]) - self.b[1].max(o.b[1])).max(0.0);
        let inter = iw * ih;
        let union = self.area() + o.area() - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }
}

/// Euclidean length; plain `sqrt` (no overflow care is needed for
/// normalised coordinates, and `hypot` is several times slower).
fn norm(x: f64, y: f64) -> f64 {
    (x * x + y * y).sqrt()
}

fn dist(a: [f64; 2], b: [f64; 2]) -> f64 {
    norm(a[0] - b[0], a[1] - b[1])
}

/// Clamps box and score to `0..=1` and puts box corners in order; `None`
/// for a non-finite box or score.
fn sanitise(src: usize, d: &Det) -> Option<Clean> {
    if !d.score.is_finite() || d.bbox.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let [x1, y1, x2, y2] = d.bbox.map(|v| v.clamp(0.0, 1.0));
    let bbox = [x1.min(x2), y1.min(y2), x1.max(x2), y1.max(y2)];
    Some(Clean {
        src,
        score: d.score.clamp(0.0, 1.0),
        bbox,
        g: BoxGeom::new(bbox),
    })
}

impl Tracker {
    /// A tracker with the given settings.
    pub fn new(cfg: TrackerConfig) -> Result<Self, TrackerConfigError> {
        cfg.validate()?;
        Ok(Tracker {
            cfg,
            tracks: Vec::new(),
            motion: Vec::new(),
            next_id: 1,
            pairs: Vec::new(),
            clean: Vec::new(),
            det_used: Vec::new(),
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &TrackerConfig {
        &self.cfg
    }

    /// The live tracks after the latest update, ordered by id.
    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// Drops every track (e.g. when the stream restarts). Ids keep counting
    /// up, so none is ever reused.
    pub fn clear(&mut self) {
        self.tracks.clear();
        self.motion.clear();
    }

    /// Feeds the detections of one detector frame taken at `ts_ms` and
    /// returns the live tracks, ordered by id: the ones matched in this
    /// frame, new ones, and confirmed ones coasting through a miss.
    pub fn update(&mut self, ts_ms: i64, dets: &[Det]) -> &[Track] {
        let cfg = self.cfg;
        let mut clean = std::mem::take(&mut self.clean);
        clean.clear();
        clean.extend(
            dets.iter()
                .enumerate()
                .filter_map(|(i, d)| sanitise(i, d))
                .filter(|d| d.score >= cfg.low_score),
        );

        // Drop tracks that are already too old to match anything.
        self.retain(|t, _| {
            let limit = if t.stationary {
                cfg.max_age_ms.max(cfg.stationary_max_age_ms)
            } else {
                cfg.max_age_ms
            };
            ts_ms.saturating_sub(t.last_seen_ms) <= limit
        });
        for m in &mut self.motion {
            m.matched = false;
        }

        let mut det_used = std::mem::take(&mut self.det_used);
        det_used.clear();
        det_used.resize(clean.len(), false);

        // Stage 1: all tracks against high-score detections.
        self.associate(ts_ms, dets, &clean, &mut det_used, true);
        // Stage 2: confirmed leftovers against low-score detections.
        self.associate(ts_ms, dets, &clean, &mut det_used, false);

        // Tentative tracks that missed are dropped.
        self.retain(|t, m| m.matched || t.confirmed);

        // New tracks from unmatched high-score detections.
        for (d, used) in clean.iter().zip(&det_used) {
            if *used || d.score < cfg.high_score {
                continue;
            }
            let id = self.next_id;
            self.next_id = self.next_id.saturating_add(1);
            let confirmed = cfg.confirm_hits <= 1;
            self.tracks.push(Track {
                id,
                class: dets[d.src].class.clone(),
                score: d.score,
                bbox: d.bbox,
                first_seen_ms: ts_ms,
                last_seen_ms: ts_ms,
                hits: 1,
                stationary: cfg.stationary_after_ms == 0,
                stationary_since_ms: (cfg.stationary_after_ms == 0).then_some(ts_ms),
                confirmed,
            });
            self.motion.push(Motion {
                vel: [0.0, 0.0],
                has_vel: false,
                anchor: d.g.centre(),
                anchor_ms: ts_ms,
                matched: true,
            });
        }
        self.clean = clean;
        self.det_used = det_used;
        &self.tracks
    }

    fn retain(&mut self, mut keep: impl FnMut(&Track, &Motion) -> bool) {
        let mut i = 0;
        while i < self.tracks.len() {
            if keep(&self.tracks[i], &self.motion[i]) {
                i += 1;
            } else {
                self.tracks.remove(i);
                self.motion.remove(i);
            }
        }
    }

    /// One association stage: collects qualifying (track, detection) pairs,
    /// takes them greedily by cost, and applies the matches.
    fn associate(
        &mut self,
        ts_ms: i64,
        raw: &[Det],
        dets: &[Clean],
        det_used: &mut [bool],
        high: bool,
    ) {
        let cfg = &self.cfg;
        let mut pairs = std::mem::take(&mut self.pairs);
        pairs.clear();
        for (ti, (t, m)) in self.tracks.iter().zip(&self.motion).enumerate() {
            if m.matched || (!high && !t.confirmed) {
                continue;
            }
            let last = BoxGeom::new(t.bbox);
            let dt = ts_ms
                .saturating_sub(t.last_seen_ms)
                .clamp(0, cfg.max_age_ms) as f64;
            let pred = if m.has_vel && !t.stationary {
                last.shifted([m.vel[0] * dt, m.vel[1] * dt])
            } else {
                last
            };
            for (di, d) in dets.iter().enumerate() {
                if det_used[di]
                    || (d.score >= cfg.high_score) != high
                    || raw[d.src].class != t.class
                {
                    continue;
                }
                let g = d.g;
                let iou = pred.iou(&g).max(last.iou(&g));
                let min_iou = if high {
                    cfg.match_iou
                } else {
                    cfg.low_match_iou
                };
                if iou >= f64::from(min_iou) && iou > 0.0 {
                    // IoU matches rank first: cost in [0, 1).
                    pairs.push(((1.0 - iou) as f32, ti, di));
                    continue;
                }
                if !high || cfg.max_centre_distance <= 0.0 {
                    continue;
                }
                let (a1, a2) = (last.area(), g.area());
                let ratio = if a1.min(a2) > 0.0 {
                    a1.max(a2) / a1.min(a2)
                } else if a1 == a2 {
                    1.0
                } else {
                    f64::INFINITY
                };
                if ratio > f64::from(cfg.max_area_ratio) {
                    continue;
                }
                let scale = last.diag().max(g.diag()).max(1e-6);
                let d_rel =
                    dist(pred.centre(), g.centre()).min(dist(last.centre(), g.centre())) / scale;
                if d_rel <= f64::from(cfg.max_centre_distance) {
                    // Distance matches rank after every IoU match: cost >= 1.
                    pairs.push(((1.0 + d_rel) as f32, ti, di));
                }
            }
        }
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        for &(_, ti, di) in &pairs {
            if self.motion[ti].matched || det_used[di] {
                continue;
            }
            det_used[di] = true;
            self.apply_match(ti, ts_ms, &dets[di]);
        }
        self.pairs = pairs;
    }

    fn apply_match(&mut self, ti: usize, ts_ms: i64, d: &Clean) {
        let cfg = &self.cfg;
        let t = &mut self.tracks[ti];
        let m = &mut self.motion[ti];
        let old_c = BoxGeom::new(t.bbox).centre();
        let g = d.g;
        let new_c = g.centre();
        let dt = ts_ms.saturating_sub(t.last_seen_ms);
        if dt > 0 {
            let dtf = dt as f64;
            let inst = [(new_c[0] - old_c[0]) / dtf, (new_c[1] - old_c[1]) / dtf];
            if m.has_vel {
                let a = f64::from(cfg.velocity_smoothing);
                m.vel = [
                    a * inst[0] + (1.0 - a) * m.vel[0],
                    a * inst[1] + (1.0 - a) * m.vel[1],
                ];
            } else {
                m.vel = inst;
                m.has_vel = true;
            }
        }
        m.matched = true;

        // Stationarity against the anchor.
        let tol = f64::from(cfg.stationary_fraction) * g.diag();
        if dist(new_c, m.anchor) > tol {
            m.anchor = new_c;
            m.anchor_ms = ts_ms;
        }
        let still_for = ts_ms.saturating_sub(m.anchor_ms);
        t.stationary = still_for >= cfg.stationary_after_ms;
        t.stationary_since_ms = t.stationary.then_some(m.anchor_ms);
        if t.stationary {
            m.vel = [0.0, 0.0];
        }

        t.score = d.score;
        t.bbox = d.bbox;
        t.last_seen_ms = t.last_seen_ms.max(ts_ms);
        t.hits = t.hits.saturating_add(1);
        if t.hits >= cfg.confirm_hits {
            t.confirmed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(class: &str, score: f32, cx: f32, cy: f32, w: f32, h: f32) -> Det {
        Det {
            class: class.into(),
            score,
            bbox: [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0],
        }
    }

    fn tracker() -> Tracker {
        Tracker::new(TrackerConfig::default()).unwrap()
    }

    fn ids(ts: &[Track]) -> Vec<u64> {
        ts.iter().map(|t| t.id).collect()
    }

    #[test]
    fn confirms_after_two_hits_and_keeps_id() {
        let mut tr = tracker();
        let t = tr.update(0, &[det("car", 0.9, 0.5, 0.5, 0.1, 0.08)]);
        assert_eq!(t.len(), 1);
        assert!(!t[0].confirmed);
        let id = t[0].id;
        let t = tr.update(200, &[det("car", 0.9, 0.505, 0.5, 0.1, 0.08)]);
        assert_eq!(ids(t), vec![id]);
        assert!(t[0].confirmed);
        assert_eq!(t[0].hits, 2);
        assert_eq!(t[0].first_seen_ms, 0);
        assert_eq!(t[0].last_seen_ms, 200);
    }

    #[test]
    fn survives_a_two_second_gap_and_a_missed_detection() {
        let mut tr = tracker();
        let car = det("car", 0.8, 0.3, 0.6, 0.12, 0.1);
        tr.update(0, std::slice::from_ref(&car));
        let id = tr.update(2000, std::slice::from_ref(&car))[0].id;
        // Motion gating: next detector run 2040 ms later (first frame after 2 s).
        let t = tr.update(4040, std::slice::from_ref(&car));
        assert_eq!(ids(t), vec![id]);
        // The detector runs but misses the car once: it coasts.
        let t = tr.update(4240, &[]);
        assert_eq!(ids(t), vec![id]);
        assert_eq!(t[0].last_seen_ms, 4040);
        let t = tr.update(4440, std::slice::from_ref(&car));
        assert_eq!(ids(t), vec![id]);
        assert_eq!(t[0].hits, 4);
        // Gone for longer than max_age: dropped, and a new one gets a new id.
        assert!(tr.update(4440 + 2600, &[]).is_empty());
        let t = tr.update(7100, std::slice::from_ref(&car));
        assert_eq!(t.len(), 1);
        assert!(t[0].id > id);
    }

    #[test]
    fn stationary_track_survives_a_miss_under_motion_gating() {
        let mut tr = tracker();
        let car = det("car", 0.8, 0.3, 0.6, 0.12, 0.1);
        // Parked, seen every 2.04 s; stationary after 5 s.
        for f in 0..5i64 {
            tr.update(f * 2040, std::slice::from_ref(&car));
        }
        let id = tr.tracks()[0].id;
        assert!(tr.tracks()[0].stationary);
        // One gated run misses it: 4.08 s without a detection.
        assert_eq!(ids(tr.update(5 * 2040, &[])), vec![id]);
        assert_eq!(
            ids(tr.update(6 * 2040, std::slice::from_ref(&car))),
            vec![id]
        );
        // A moving object does not get that grace.
        let mut walker = None;
        for f in 0..3i64 {
            let t = tr.update(
                20_000 + f * 200,
                &[
                    car.clone(),
                    det("person", 0.9, 0.7 + f as f32 * 0.02, 0.3, 0.04, 0.1),
                ],
            );
            walker = t.iter().find(|t| t.class == "person").map(|t| t.id);
        }
        assert!(walker.is_some());
        let t = tr.update(20_400 + 4080, std::slice::from_ref(&car));
        assert_eq!(ids(t), vec![id]);
    }

    #[test]
    fn max_age_is_configurable() {
        let mut tr = Tracker::new(TrackerConfig {
            max_age_ms: 10_000,
            ..TrackerConfig::default()
        })
        .unwrap();
        let car = det("car", 0.8, 0.3, 0.6, 0.12, 0.1);
        tr.update(0, std::slice::from_ref(&car));
        let id = tr.update(100, std::slice::from_ref(&car))[0].id;
        let t = tr.update(9_000, std::slice::from_ref(&car));
        assert_eq!(ids(t), vec![id]);
    }

    #[test]
    fn tentative_track_dropped_on_first_miss() {
        let mut tr = tracker();
        tr.update(0, &[det("person", 0.9, 0.5, 0.5, 0.05, 0.15)]);
        assert!(tr.update(200, &[]).is_empty());
    }

    #[test]
    fn ids_are_never_reused() {
        let mut tr = tracker();
        let mut seen = std::collections::HashSet::new();
        for i in 0..50i64 {
            // A different object each time, far apart, each lives one frame.
            let x = 0.1 + (i % 8) as f32 * 0.1;
            for t in tr.update(i * 10_000, &[det("person", 0.9, x, 0.5, 0.04, 0.1)]) {
                seen.insert(t.id);
            }
            if i == 25 {
                tr.clear();
            }
        }
        assert_eq!(seen.len(), 50);
    }

    #[test]
    fn separates_two_nearby_objects_walking_side_by_side() {
        let mut tr = tracker();
        let mut first = Vec::new();
        for f in 0..10i64 {
            let dx = f as f32 * 0.01;
            let t = tr.update(
                f * 200,
                &[
                    det("person", 0.9, 0.40 + dx, 0.5, 0.04, 0.12),
                    det("person", 0.85, 0.45 + dx, 0.52, 0.04, 0.12),
                ],
            );
            assert_eq!(t.len(), 2);
            let mut pairs: Vec<(u64, f32)> = t
                .iter()
                .map(|t| (t.id, (t.bbox[0] + t.bbox[2]) / 2.0))
                .collect();
            pairs.sort_by(|a, b| a.1.total_cmp(&b.1));
            let order: Vec<u64> = pairs.iter().map(|p| p.0).collect();
            if f == 0 {
                first = order;
            } else {
                // The left one keeps the left id, the right one the right id.
                assert_eq!(order, first, "frame {f}");
            }
        }
    }

    #[test]
    fn crossing_paths_keep_their_ids_with_velocity_prediction() {
        // Two people walk towards each other at sparse detection (1 Hz) and
        // pass; prediction carries each id past the other.
        let mut tr = tracker();
        let mut left_id = 0;
        for f in 0..8i64 {
            let x_a = 0.2 + f as f32 * 0.08; // left to right
            let x_b = 0.8 - f as f32 * 0.08; // right to left
            let t = tr.update(
                f * 1000,
                &[
                    det("person", 0.9, x_a, 0.5, 0.05, 0.15),
                    det("person", 0.9, x_b, 0.53, 0.05, 0.15),
                ],
            );
            assert_eq!(t.len(), 2, "frame {f}");
            let a = t
                .iter()
                .find(|t| ((t.bbox[0] + t.bbox[2]) / 2.0 - x_a).abs() < 1e-4)
                .unwrap();
            if f == 0 {
                left_id = a.id;
            } else {
                assert_eq!(a.id, left_id, "frame {f}");
            }
        }
    }

    #[test]
    fn far_move_between_sparse_frames_matches_by_centre_distance() {
        let mut tr = tracker();
        // A person 0.04 wide moves 0.06 between frames 2 s apart: IoU is 0.
        tr.update(0, &[det("person", 0.9, 0.30, 0.5, 0.04, 0.12)]);
        let t = tr.update(2000, &[det("person", 0.9, 0.36, 0.5, 0.04, 0.12)]);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].hits, 2);
        // Too far (and a different size) is a new object.
        let t = tr.update(4000, &[det("person", 0.9, 0.9, 0.1, 0.02, 0.05)]);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn classes_never_mix() {
        let mut tr = tracker();
        tr.update(0, &[det("car", 0.9, 0.5, 0.5, 0.1, 0.1)]);
        let t = tr.update(200, &[det("truck", 0.9, 0.5, 0.5, 0.1, 0.1)]);
        // The car track was tentative and missed: dropped; a truck started.
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].class, "truck");
        assert_eq!(t[0].hits, 1);
    }

    #[test]
    fn low_score_detection_keeps_a_confirmed_track_but_starts_none() {
        let mut tr = tracker();
        tr.update(0, &[det("car", 0.9, 0.5, 0.5, 0.1, 0.1)]);
        tr.update(200, &[det("car", 0.9, 0.5, 0.5, 0.1, 0.1)]);
        let t = tr.update(400, &[det("car", 0.3, 0.502, 0.5, 0.1, 0.1)]);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].last_seen_ms, 400);
        assert_eq!(t[0].hits, 3);
        assert!((t[0].score - 0.3).abs() < 1e-6);
        // A low-score detection elsewhere starts nothing.
        let t = tr.update(600, &[det("car", 0.3, 0.1, 0.1, 0.1, 0.1)]);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].last_seen_ms, 400);
        // Below low_score is ignored entirely.
        let t = tr.update(800, &[det("car", 0.05, 0.5, 0.5, 0.1, 0.1)]);
        assert_eq!(t[0].last_seen_ms, 400);
    }

    #[test]
    fn parked_box_becomes_stationary_and_moving_one_does_not() {
        let mut tr = tracker();
        let mut parked = None;
        let mut moving = None;
        for f in 0..=30i64 {
            let jitter = if f % 2 == 0 { 0.004 } else { -0.004 };
            let t = tr.update(
                f * 250,
                &[
                    det("car", 0.9, 0.3 + jitter, 0.6, 0.12, 0.08),
                    det("car", 0.9, 0.2 + f as f32 * 0.01, 0.3, 0.12, 0.08),
                ],
            );
            parked = t.iter().find(|t| t.bbox[1] > 0.5).cloned();
            moving = t.iter().find(|t| t.bbox[1] < 0.5).cloned();
            let p = parked.as_ref().unwrap();
            if f * 250 < 5000 {
                assert!(!p.stationary, "too early at frame {f}");
            }
        }
        let p = parked.unwrap();
        assert!(p.stationary);
        assert_eq!(p.stationary_since_ms, Some(0));
        let m = moving.unwrap();
        assert!(!m.stationary);
        assert_eq!(m.stationary_since_ms, None);
        assert_eq!(m.hits, 31);
    }

    #[test]
    fn slow_creep_is_not_stationary() {
        let mut tr = tracker();
        let mut last = None;
        // 0.002 per frame: under the tolerance frame to frame, but it adds up.
        for f in 0..=80i64 {
            let t = tr.update(
                f * 250,
                &[det("car", 0.9, 0.2 + f as f32 * 0.002, 0.6, 0.1, 0.08)],
            );
            last = t.first().cloned();
        }
        let t = last.unwrap();
        assert_eq!(t.hits, 81);
        assert!(!t.stationary);
    }

    #[test]
    fn hostile_input_does_not_panic() {
        let mut tr = tracker();
        let bad = [
            Det {
                class: "car".into(),
                score: f32::NAN,
                bbox: [0.1, 0.1, 0.2, 0.2],
            },
            Det {
                class: "car".into(),
                score: 0.9,
                bbox: [f32::INFINITY, 0.1, 0.2, 0.2],
            },
            Det {
                class: "car".into(),
                score: 0.9,
                bbox: [0.4, 0.4, 0.4, 0.4],
            },
            Det {
                class: "car".into(),
                score: 0.9,
                bbox: [0.8, 0.9, 0.6, 0.7],
            },
        ];
        let t = tr.update(1000, &bad);
        assert_eq!(t.len(), 2);
        // The inverted box was put in order.
        assert!(
            t.iter()
                .all(|t| t.bbox[0] <= t.bbox[2] && t.bbox[1] <= t.bbox[3])
        );
        // Out-of-frame boxes are clamped, so alarm payloads stay valid.
        let t = tr.update(
            2000,
            &[Det {
                class: "person".into(),
                score: 1.2,
                bbox: [-0.1, 0.5, 0.05, 1.3],
            }],
        );
        let p = t.iter().find(|t| t.class == "person").unwrap();
        assert_eq!(p.bbox, [0.0, 0.5, 0.05, 1.0]);
        assert_eq!(p.score, 1.0);
        // Time going backwards.
        tr.update(500, &bad);
        tr.update(i64::MIN, &bad);
        tr.update(i64::MAX, &bad);
    }

    #[test]
    fn rejects_bad_settings() {
        let bad = TrackerConfig {
            max_age_ms: 0,
            ..TrackerConfig::default()
        };
        let e = Tracker::new(bad).unwrap_err();
        assert_eq!(e.field, "max_age_ms");
        let bad = TrackerConfig {
            low_score: 0.8,
            high_score: 0.35,
            ..TrackerConfig::default()
        };
        assert_eq!(Tracker::new(bad).unwrap_err().field, "low_score");
    }
}
