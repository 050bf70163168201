//! The live analytics path of a running box.
//!
//! ```text
//! decode thread (per camera)              detector pool (shared)         analytics task (one)
//!  DetectSink: sample -> gate -> scale --> keep-latest slot per camera --> tracker + rules
//!              snapshot-size copy -------> EvidenceStore --------------->  emitter -> outbox
//! source task: online/offline ---------------------------------------->  camera_offline
//! ```
//!
//! Frames cross threads only as owned, bounded things: one pending frame per
//! camera in the pool, a few evidence frames per camera in the store, and a
//! bounded results channel (a slow analytics task blocks the pool workers,
//! and the keep-latest slots then drop frames upstream).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ffmpeg_next as ffmpeg;
use parkwatch_edge_logic::gate::{GateConfig, MotionGate, Sampler};
use parkwatch_protocol::{AlarmEvent, AlarmEventType, encode_json};
use tokio::sync::{Notify, mpsc, watch};
use tracing::{debug, info, warn};

use super::prep::{FrameScaler, snapshot_size};
use super::{AlarmSink, CameraAnalytics, Emitter, SNAPSHOT_MAX_SIDE};
use crate::camera::CameraStats;
use crate::decode::FrameSink;
use crate::detect::{BgrImage, DetectRequest, DetectResult, DetectorPool};
use crate::metrics::EdgeMetrics;
use crate::outbox::{Outbox, OutboxError, RecordClass};
use crate::source::StreamEvent;

/// Frames remembered per camera while their detection is pending.
const EVIDENCE_PER_CAMERA: usize = 4;

/// What the analytics task needs to know about a frame sent to the
/// detector: its timestamp and a snapshot-size copy (so the alarm's evidence
/// is drawn on the very frame the detection came from).
struct Evidence {
    seq: u64,
    ts_ms: i64,
    frame: Option<Arc<BgrImage>>,
}

type EvidenceQueues = HashMap<Arc<str>, VecDeque<Evidence>>;

/// Pending frames of every camera, by request number. Results come back in
/// order per camera, so older entries are dropped as newer ones resolve;
/// each camera keeps at most a few.
#[derive(Default)]
pub struct EvidenceStore {
    queues: Mutex<EvidenceQueues>,
}

impl EvidenceStore {
    fn put(&self, camera: &Arc<str>, seq: u64, ts_ms: i64, frame: Option<Arc<BgrImage>>) {
        let mut g = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        let q = g.entry(camera.clone()).or_default();
        if q.len() >= EVIDENCE_PER_CAMERA {
            q.pop_front();
        }
        q.push_back(Evidence { seq, ts_ms, frame });
    }

    /// The timestamp and evidence frame of request `seq`, if still known.
    fn take(&self, camera: &str, seq: u64) -> Option<(i64, Option<Arc<BgrImage>>)> {
        let mut g = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        let q = g.get_mut(camera)?;
        while q.front().is_some_and(|e| e.seq < seq) {
            q.pop_front();
        }
        match q.front() {
            Some(e) if e.seq == seq => q.pop_front().map(|e| (e.ts_ms, e.frame)),
            _ => None,
        }
    }
}

/// The decode-thread side of a camera: samples, gates, converts and hands
/// frames to the pool.
pub struct DetectSink {
    camera: Arc<str>,
    stats: Arc<CameraStats>,
    pool: Arc<DetectorPool>,
    evidence: Arc<EvidenceStore>,
    gate: MotionGate,
    sampler: Sampler,
    scaler: FrameScaler,
    seq: u64,
}

impl DetectSink {
    pub fn new(
        camera: Arc<str>,
        stats: Arc<CameraStats>,
        pool: Arc<DetectorPool>,
        evidence: Arc<EvidenceStore>,
        detect_fps: f64,
        static_recheck_ms: i64,
    ) -> Self {
        Self {
            camera,
            stats,
            pool,
            evidence,
            gate: MotionGate::new(GateConfig::default()),
            sampler: Sampler::new(detect_fps, static_recheck_ms),
            scaler: FrameScaler::new(),
            seq: 0,
        }
    }
}

impl FrameSink for DetectSink {
    fn on_frame(&mut self, frame: &ffmpeg::frame::Video, ts_ms: i64) {
        if !self.sampler.due(ts_ms) {
            return;
        }
        CameraStats::bump(&self.stats.frames_sampled);
        let (w, h) = (frame.width(), frame.height());
        let motion = self
            .gate
            .measure(frame.data(0), frame.stride(0), w as usize, h as usize);
        if !self
            .sampler
            .should_detect(ts_ms, self.gate.is_motion(motion))
        {
            return;
        }
        let lb = self.pool.letterbox(w, h);
        let input = match self.scaler.to_bgr(frame, lb.scaled_w, lb.scaled_h) {
            Ok(img) => img,
            Err(e) => {
                debug!(camera = %self.camera, err = %e, "Frame not converted for the detector.");
                return;
            }
        };
        let (sw, sh) = snapshot_size(w, h, SNAPSHOT_MAX_SIDE);
        self.seq += 1;
        let snapshot = self.scaler.to_bgr(frame, sw, sh).ok().map(Arc::new);
        self.evidence.put(&self.camera, self.seq, ts_ms, snapshot);
        let request = DetectRequest {
            camera: self.camera.clone(),
            frame: input,
            source: (w, h),
            seq: self.seq,
            captured_at: Instant::now(),
        };
        match self.pool.submit(request) {
            Ok(Some(_replaced)) => CameraStats::bump(&self.stats.detect_skipped),
            Ok(None) => {}
            Err(e) => debug!(camera = %self.camera, err = %e, "Detector pool refused a frame."),
        }
    }

    fn on_reset(&mut self) {
        self.gate.reset();
        self.sampler.reset();
    }
}

/// Appends alarm events and snapshots to the outbox.
pub struct OutboxSink<'a> {
    pub outbox: &'a Mutex<Outbox>,
    pub metrics: &'a EdgeMetrics,
}

impl AlarmSink for OutboxSink<'_> {
    fn snapshot(&mut self, alarm_id: &str, jpeg: Vec<u8>) -> Result<u64, String> {
        let mut outbox = self.outbox.lock().unwrap_or_else(|e| e.into_inner());
        let mut jpeg = Some(jpeg);
        outbox
            .append_with(
                RecordClass::Snapshot,
                &format!("snapshots/{alarm_id}"),
                |_| jpeg.take().unwrap_or_default(),
            )
            .map_err(|e| {
                self.metrics.snapshots_dropped.inc();
                if matches!(e, OutboxError::Full { .. }) {
                    self.metrics.outbox_full_events.inc();
                }
                e.to_string()
            })
    }

    fn alarm(&mut self, build: &mut dyn FnMut(u64) -> AlarmEvent) -> Result<AlarmEvent, String> {
        let mut outbox = self.outbox.lock().unwrap_or_else(|e| e.into_inner());
        let mut built = None;
        outbox
            .append_with(RecordClass::Alarm, "alarms", |seq| {
                let ev = build(seq);
                let bytes = encode_json(&ev);
                built = Some(ev);
                bytes
            })
            .map_err(|e| {
                if matches!(e, OutboxError::Full { .. }) {
                    self.metrics.outbox_full_events.inc();
                }
                e.to_string()
            })?;
        let ev = built.ok_or_else(|| "alarm builder not called".to_owned())?;
        self.metrics.alarm_events.inc();
        if ev.event == AlarmEventType::New {
            self.metrics.alarms_raised.inc();
        }
        Ok(ev)
    }
}

/// One camera as the analytics task holds it.
pub struct LiveCamera {
    pub analytics: CameraAnalytics,
    pub emitter: Emitter,
    pub stats: Arc<CameraStats>,
}

/// Everything the analytics task works with.
pub struct AnalyticsTask {
    pub cameras: HashMap<Arc<str>, LiveCamera>,
    pub results: mpsc::Receiver<DetectResult>,
    pub stream_events: mpsc::Receiver<(Arc<str>, StreamEvent)>,
    pub evidence: Arc<EvidenceStore>,
    pub outbox: Arc<Mutex<Outbox>>,
    pub wake: Arc<Notify>,
    pub metrics: Arc<EdgeMetrics>,
}

impl AnalyticsTask {
    /// Runs until shutdown; then ends every open alarm so the centre sees
    /// them closed (the alarm ends with the box's analytics).
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        // No detector (no camera has rules) closes `results` at once; stream
        // events (camera_offline) still count.
        let mut detecting = true;
        loop {
            tokio::select! {
                r = self.results.recv(), if detecting => match r {
                    Some(r) => self.on_result(r),
                    None => detecting = false,
                },
                e = self.stream_events.recv() => match e {
                    Some((camera, ev)) => self.on_stream(&camera, ev),
                    None => break,
                },
                _ = shutdown.changed() => break,
            }
        }
        let now = parkwatch_durable::clock::now_ms();
        let ids: Vec<Arc<str>> = self.cameras.keys().cloned().collect();
        for id in ids {
            if let Some(cam) = self.cameras.get_mut(&id) {
                let transitions = cam.analytics.flush(now);
                self.emit_all(&id, transitions, None);
            }
        }
        info!("Analytics stopped.");
    }

    fn on_result(&mut self, r: DetectResult) {
        // A result whose frame fell out of the store (it cannot, with
        // results in order) would have no time of its own: use now.
        let (ts_ms, evidence) = self
            .evidence
            .take(&r.camera, r.seq)
            .unwrap_or_else(|| (parkwatch_durable::clock::now_ms(), None));
        let Some(cam) = self.cameras.get_mut(&r.camera) else {
            return;
        };
        CameraStats::bump(&cam.stats.frames_detected);
        cam.stats.inference_us_total.fetch_add(
            r.inference.as_micros() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        let detections = match r.detections {
            Ok(d) => d,
            Err(e) => {
                warn!(camera = %r.camera, err = %e, "Detection failed.");
                return;
            }
        };
        let transitions = cam.analytics.on_detections(ts_ms, &detections, r.source);
        let camera = r.camera.clone();
        self.emit_all(&camera, transitions, evidence.as_deref());
    }

    fn on_stream(&mut self, camera: &Arc<str>, ev: StreamEvent) {
        let Some(cam) = self.cameras.get_mut(camera) else {
            return;
        };
        let transitions = cam.analytics.on_stream(ev.ts_ms, ev.online);
        self.emit_all(camera, transitions, None);
    }

    fn emit_all(
        &mut self,
        camera: &Arc<str>,
        transitions: Vec<parkwatch_edge_logic::rules::AlarmTransition>,
        evidence: Option<&BgrImage>,
    ) {
        if transitions.is_empty() {
            return;
        }
        let Some(cam) = self.cameras.get_mut(camera) else {
            return;
        };
        let mut sink = OutboxSink {
            outbox: &self.outbox,
            metrics: &self.metrics,
        };
        for t in &transitions {
            let config = cam.analytics.camera().clone();
            match cam.emitter.emit(t, evidence, &config, &mut sink) {
                Ok(ev) => {
                    let latency_ms = parkwatch_durable::clock::now_ms()
                        .saturating_sub(ev.event_at_ms)
                        .max(0);
                    if ev.event == AlarmEventType::New {
                        CameraStats::bump(&cam.stats.alarms_raised);
                        self.metrics.alarm_latency_ms.observe(latency_ms as u64);
                    }
                    info!(
                        camera = %camera, alarm = %ev.alarm_id, seq = ev.seq, event = ev.event.as_str(),
                        kind = ev.kind.as_str(), zone = ev.zone.as_deref().unwrap_or("-"),
                        objects = ev.objects.len(), latency_ms, "Alarm."
                    );
                }
                Err(e) => {
                    warn!(camera = %camera, alarm = %t.alarm_id, err = %e, "Alarm event not queued.")
                }
            }
        }
        self.wake.notify_one();
    }
}
