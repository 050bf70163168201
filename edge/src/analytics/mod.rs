//! From decoded frames to alarm events: gating, detection hand-off,
//! tracking, rules, evidence.
//!
//! The same pieces serve the live box and `parkwatch-edge replay`:
//! - [`gate`](parkwatch_edge_logic::gate) (in `parkwatch-edge-logic`):
//!   which sampled frames are worth a detector run;
//! - [`prep`]: converting just those frames for the detector and snapshots;
//! - [`CameraAnalytics`]: tracker plus rule engine of one camera, fed with
//!   detections at the frame's own timestamp (so a replay at any speed raises
//!   the same alarms as real time);
//! - [`Emitter`]: turns rule transitions into protocol alarm events with a
//!   JPEG snapshot of the best frame (boxes and zone drawn), handing both to
//!   an [`AlarmSink`] (the outbox live, stdout in a replay).
//! - [`live`]: the live wiring (decode-thread sink, detector pool, the
//!   analytics task).

pub mod live;
pub mod prep;

use std::collections::HashMap;

use parkwatch_config::CameraConfig;
use parkwatch_edge_logic::rules::{AlarmTransition, RuleEngine, RuleError, RuleOptions};
use parkwatch_edge_logic::track::{Det, Track, Tracker, TrackerConfig, TrackerConfigError};
use parkwatch_protocol::{AlarmEvent, AlarmEventType, ModelRef, SnapshotRef};
use sha2::{Digest, Sha256};

use crate::detect::{BgrImage, Detection};
use crate::image_io::{Color, draw_polyline, draw_rect, encode_jpeg};

/// JPEG quality of alarm snapshots.
pub const SNAPSHOT_QUALITY: u8 = 80;
/// Longest side of an alarm snapshot, pixels.
pub const SNAPSHOT_MAX_SIDE: u32 = 960;

/// Why a camera's analytics could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error(transparent)]
    Rules(#[from] RuleError),
    #[error("camera {camera}: tracker settings: {source}")]
    Tracker {
        camera: String,
        source: TrackerConfigError,
    },
}

/// Tracker settings that fit a camera's detection schedule: tracks must
/// outlive the longest gap between detector runs (the static re-check), or
/// a parked car would be a new track, and a new alarm, every few seconds.
pub fn tracker_config_for(camera: &CameraConfig, detector_min_score: f32) -> TrackerConfig {
    let recheck_ms = (camera.static_recheck_secs * 1000.0).round() as i64;
    let interval_ms = (1000.0 / camera.detect_fps.max(0.01)).round() as i64;
    let defaults = TrackerConfig::default();
    TrackerConfig {
        high_score: detector_min_score,
        low_score: (detector_min_score * 0.5).min(defaults.low_score.max(0.1)),
        max_age_ms: defaults.max_age_ms.max(recheck_ms + interval_ms * 2),
        stationary_max_age_ms: defaults
            .stationary_max_age_ms
            .max(recheck_ms * 3 + interval_ms * 2),
        ..defaults
    }
}

/// Tracker and rules of one camera.
pub struct CameraAnalytics {
    camera: CameraConfig,
    tracker: Tracker,
    rules: RuleEngine,
}

impl CameraAnalytics {
    pub fn new(
        edge_id: &str,
        camera: &CameraConfig,
        detector_min_score: f32,
        rule_options: RuleOptions,
    ) -> Result<Self, AnalyticsError> {
        let tracker =
            Tracker::new(tracker_config_for(camera, detector_min_score)).map_err(|source| {
                AnalyticsError::Tracker {
                    camera: camera.id.clone(),
                    source,
                }
            })?;
        let rules = RuleEngine::new(
            edge_id,
            camera,
            RuleOptions {
                default_min_score: detector_min_score,
                ..rule_options
            },
        )?;
        Ok(Self {
            camera: camera.clone(),
            tracker,
            rules,
        })
    }

    pub fn camera(&self) -> &CameraConfig {
        &self.camera
    }

    /// Detections of one frame (boxes in `source` pixels) at `ts_ms`.
    pub fn on_detections(
        &mut self,
        ts_ms: i64,
        detections: &[Detection],
        source: (u32, u32),
    ) -> Vec<AlarmTransition> {
        let (w, h) = (source.0.max(1) as f32, source.1.max(1) as f32);
        let dets: Vec<Det> = detections
            .iter()
            .map(|d| Det {
                class: d.class.to_string(),
                score: d.score,
                bbox: [
                    (d.bbox[0] / w).clamp(0.0, 1.0),
                    (d.bbox[1] / h).clamp(0.0, 1.0),
                    (d.bbox[2] / w).clamp(0.0, 1.0),
                    (d.bbox[3] / h).clamp(0.0, 1.0),
                ],
            })
            .collect();
        let tracks = self.tracker.update(ts_ms, &dets).to_vec();
        self.rules.on_frame(ts_ms, &tracks)
    }

    /// The stream came back (`online`) or went away.
    pub fn on_stream(&mut self, ts_ms: i64, online: bool) -> Vec<AlarmTransition> {
        if !online {
            self.tracker.clear();
        }
        self.rules.on_stream_state(ts_ms, online)
    }

    /// Ends every open alarm (end of a replay, shutdown).
    pub fn flush(&mut self, ts_ms: i64) -> Vec<AlarmTransition> {
        self.rules.flush(ts_ms)
    }

    pub fn tracks(&self) -> &[Track] {
        self.tracker.tracks()
    }
}

/// Where emitted evidence and events go.
pub trait AlarmSink {
    /// Queues a snapshot JPEG for `alarm_id`; returns its sequence number.
    fn snapshot(&mut self, alarm_id: &str, jpeg: Vec<u8>) -> Result<u64, String>;
    /// Queues an alarm event; `build` receives the event's sequence number.
    fn alarm(&mut self, build: &mut dyn FnMut(u64) -> AlarmEvent) -> Result<AlarmEvent, String>;
}

/// Builds alarm events and their snapshots for one camera.
pub struct Emitter {
    site: String,
    edge: String,
    camera: String,
    model: Option<ModelRef>,
    /// Best snapshot so far of each open alarm.
    snapshots: HashMap<String, SnapshotRef>,
}

impl Emitter {
    pub fn new(site: &str, edge: &str, camera: &str, model: Option<ModelRef>) -> Self {
        Self {
            site: site.to_owned(),
            edge: edge.to_owned(),
            camera: camera.to_owned(),
            model,
            snapshots: HashMap::new(),
        }
    }

    /// Emits one transition. `evidence` is the frame the transition was
    /// decided on (none for camera-offline or a replay without pictures).
    /// A snapshot failure never loses the event: it goes out without one.
    pub fn emit(
        &mut self,
        t: &AlarmTransition,
        evidence: Option<&BgrImage>,
        camera: &CameraConfig,
        sink: &mut dyn AlarmSink,
    ) -> Result<AlarmEvent, String> {
        let wants_snapshot =
            t.event != AlarmEventType::End && (t.best || !self.snapshots.contains_key(&t.alarm_id));
        if let (true, Some(frame)) = (wants_snapshot, evidence) {
            match render_snapshot(frame, t, camera) {
                Ok(jpeg) => {
                    let sha256 = hex(&Sha256::digest(&jpeg));
                    let bytes = u32::try_from(jpeg.len()).unwrap_or(u32::MAX);
                    match sink.snapshot(&t.alarm_id, jpeg) {
                        Ok(seq) => {
                            self.snapshots.insert(
                                t.alarm_id.clone(),
                                SnapshotRef {
                                    seq,
                                    sha256,
                                    bytes,
                                    width: frame.width(),
                                    height: frame.height(),
                                },
                            );
                        }
                        Err(e) => {
                            tracing::warn!(alarm = %t.alarm_id, err = %e, "Snapshot not queued.")
                        }
                    }
                }
                Err(e) => tracing::warn!(alarm = %t.alarm_id, err = %e, "Snapshot not rendered."),
            }
        }
        let snapshot = if t.event == AlarmEventType::End {
            self.snapshots.remove(&t.alarm_id)
        } else {
            self.snapshots.get(&t.alarm_id).cloned()
        };
        let model = if t.kind.is_camera_kind()
            && t.rule_id != parkwatch_edge_logic::rules::CAMERA_OFFLINE_RULE_ID
        {
            self.model.clone()
        } else {
            None
        };
        let (site, edge, cam) = (&self.site, &self.edge, &self.camera);
        sink.alarm(&mut |seq| {
            let mut ev = t.to_event(site, edge, cam, seq);
            ev.snapshot = snapshot.clone();
            ev.model = model.clone();
            ev
        })
    }
}

/// Draws the rule's zone (or line) and the objects' boxes on a copy of the
/// frame and encodes it as JPEG.
fn render_snapshot(
    frame: &BgrImage,
    t: &AlarmTransition,
    camera: &CameraConfig,
) -> Result<Vec<u8>, String> {
    let mut img = frame.clone();
    let (w, h) = (img.width() as f32, img.height() as f32);
    let to_px = |p: &[f64; 2]| (p[0] as f32 * w, p[1] as f32 * h);
    let zone_colour = Color {
        r: 255,
        g: 200,
        b: 0,
    };
    let box_colour = Color {
        r: 255,
        g: 40,
        b: 40,
    };
    if let Some(id) = &t.zone {
        if let Some(z) = camera.zone(id) {
            let pts: Vec<(f32, f32)> = z.polygon.iter().map(to_px).collect();
            draw_polyline(&mut img, &pts, true, zone_colour, 2);
        } else if let Some(l) = camera.line(id) {
            let pts: Vec<(f32, f32)> = l.points.iter().map(to_px).collect();
            draw_polyline(&mut img, &pts, false, zone_colour, 3);
        }
    }
    for o in &t.objects {
        let b = [o.bbox[0] * w, o.bbox[1] * h, o.bbox[2] * w, o.bbox[3] * h];
        draw_rect(&mut img, b, box_colour, 2);
    }
    encode_jpeg(&img.as_frame(), SNAPSHOT_QUALITY).map_err(|e| e.to_string())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
