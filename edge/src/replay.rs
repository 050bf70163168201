//! `parkwatch-edge replay`: one camera's whole pipeline over a video file.
//!
//! Decode, motion gating, detection, tracking and rules run exactly as on
//! the live box, and every alarm event is printed on stdout as one JSON line,
//! byte for byte what the box would publish on its `alarms` topic (sequence
//! numbers count from 1 as in a fresh outbox; snapshot references point at
//! the JPEGs written to `--snapshots DIR` when given).
//!
//! Time is the video's own: a frame's timestamp is `--start-ms` plus its
//! presentation time, so rules (dwell seconds, inertia, cooldown) see the
//! same timeline at any speed, and a replay raises the same alarms whether
//! it runs flat out (the default) or at real time (`--realtime`). Detection
//! is synchronous here: every frame the gate picks is detected, none is
//! skipped for lack of CPU. At the end of the file every open alarm ends.
//!
//! The command line (arguments, stdout, the summary on stderr) is the
//! binary's `cmds::replay`; this module is the replay itself.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ffmpeg_next as ffmpeg;
use parkwatch_edge_logic::gate::{GateConfig, MotionGate, Sampler};
use parkwatch_edge_logic::manifest::ModelManifest;
use parkwatch_edge_logic::rules::{AlarmTransition, RuleOptions};
use parkwatch_protocol::{AlarmEvent, ModelRef, encode_json};

use crate::analytics::prep::{FrameScaler, snapshot_size};
use crate::analytics::{AlarmSink, CameraAnalytics, Emitter, SNAPSHOT_MAX_SIDE};
use crate::detect::{Detector, OrtDetector, OrtDetectorOptions};

/// What `replay` was asked to do.
#[derive(Debug, Clone)]
pub struct ReplayArgs {
    pub config: PathBuf,
    pub camera: String,
    pub input: PathBuf,
    pub realtime: bool,
    /// Unix ms of the video's first frame; default 0 (video time).
    pub start_ms: i64,
    /// Where to write snapshot JPEGs (named `<alarm_id>-<seq>.jpg`).
    pub snapshots: Option<PathBuf>,
    /// Model manifest; default the edge configuration's.
    pub model: Option<PathBuf>,
}

/// Counts what a replay did, for its closing line on stderr.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReplaySummary {
    pub frames: u64,
    pub sampled: u64,
    pub detected: u64,
    pub events: u64,
    pub inference: Duration,
}

struct PrintSink<'a> {
    seq: u64,
    out: &'a mut dyn std::io::Write,
    snapshots: Option<&'a Path>,
    events: u64,
}

impl AlarmSink for PrintSink<'_> {
    fn snapshot(&mut self, alarm_id: &str, jpeg: Vec<u8>) -> Result<u64, String> {
        self.seq += 1;
        if let Some(dir) = self.snapshots {
            let path = dir.join(format!("{alarm_id}-{}.jpg", self.seq));
            std::fs::write(&path, &jpeg).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(self.seq)
    }

    fn alarm(&mut self, build: &mut dyn FnMut(u64) -> AlarmEvent) -> Result<AlarmEvent, String> {
        self.seq += 1;
        let ev = build(self.seq);
        let mut line = encode_json(&ev);
        line.push(b'\n');
        self.out.write_all(&line).map_err(|e| e.to_string())?;
        self.out.flush().map_err(|e| e.to_string())?;
        self.events += 1;
        Ok(ev)
    }
}

/// Runs the replay, printing events to `out`.
pub fn run_replay(
    args: &ReplayArgs,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<ReplaySummary> {
    let config =
        parkwatch_config::load_edge_config(&args.config).map_err(|p| anyhow::anyhow!("{p}"))?;
    let camera = config
        .cameras
        .iter()
        .find(|c| c.id == args.camera)
        .with_context(|| {
            let ids: Vec<&str> = config.cameras.iter().map(|c| c.id.as_str()).collect();
            format!(
                "{}: no camera {:?} (cameras: {})",
                args.config.display(),
                args.camera,
                ids.join(", ")
            )
        })?
        .clone();
    if let Some(dir) = &args.snapshots {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }

    let explicit = config.onnxruntime.as_ref().map(|p| config.resolve(p));
    let runtime = crate::detect::runtime::init(explicit.as_deref())?;
    let manifest_path = args
        .model
        .clone()
        .unwrap_or_else(|| config.model_manifest_path());
    let manifest = ModelManifest::load(&manifest_path)?;
    let min_score = config.detector.min_score as f32;
    let mut detector = OrtDetector::load(
        runtime,
        &manifest,
        &OrtDetectorOptions {
            intra_threads: config.detector.threads.max(1),
            score_threshold: Some((min_score * 0.5).min(manifest.score_threshold)),
            ..OrtDetectorOptions::default()
        },
    )?;
    let model = ModelRef {
        name: manifest.name.clone(),
        version: manifest.version.clone(),
    };

    let mut analytics =
        CameraAnalytics::new(&config.edge_id, &camera, min_score, RuleOptions::default())?;
    let mut emitter = Emitter::new(&config.site, &config.edge_id, &camera.id, Some(model));
    let mut gate = MotionGate::new(GateConfig::default());
    let recheck_ms = camera.static_recheck().as_millis() as i64;
    let mut sampler = Sampler::new(camera.detect_fps, recheck_ms);
    let mut scaler = FrameScaler::new();
    let mut sink = PrintSink {
        seq: 0,
        out,
        snapshots: args.snapshots.as_deref(),
        events: 0,
    };
    let mut summary = ReplaySummary::default();

    crate::decode::init_ffmpeg()?;
    let path_str = args
        .input
        .to_str()
        .filter(|s| !s.contains('\0'))
        .with_context(|| format!("{}: path is not valid UTF-8", args.input.display()))?;
    let mut input = ffmpeg::format::input(path_str)
        .with_context(|| format!("opening {}", args.input.display()))?;
    let stream = input
        .streams()
        .best(ffmpeg::media::Type::Video)
        .with_context(|| format!("{}: no video stream", args.input.display()))?;
    let index = stream.index();
    let tb = stream.time_base();
    let mut decoder = ffmpeg::codec::context::Context::from_parameters(stream.parameters())
        .and_then(|c| c.decoder().video())
        .with_context(|| format!("{}: no decoder for its video", args.input.display()))?;

    let wall_start = Instant::now();
    let mut first_pts: Option<i64> = None;
    let mut last_ts = args.start_ms;
    let mut frame = ffmpeg::frame::Video::empty();
    let mut handle = |frame: &ffmpeg::frame::Video,
                      summary: &mut ReplaySummary,
                      sink: &mut PrintSink<'_>|
     -> anyhow::Result<i64> {
        summary.frames += 1;
        let pts = frame.timestamp().or(frame.pts()).unwrap_or(0);
        let first = *first_pts.get_or_insert(pts);
        let rel_ms = ((pts - first) as f64 * f64::from(tb.numerator()) * 1000.0
            / f64::from(tb.denominator().max(1)))
        .round() as i64;
        let ts_ms = args.start_ms + rel_ms.max(0);
        if args.realtime {
            let due = wall_start + Duration::from_millis(rel_ms.max(0) as u64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        if !sampler.due(ts_ms) {
            return Ok(ts_ms);
        }
        summary.sampled += 1;
        let (w, h) = (frame.width(), frame.height());
        let motion = gate.measure(frame.data(0), frame.stride(0), w as usize, h as usize);
        if !sampler.should_detect(ts_ms, gate.is_motion(motion)) {
            return Ok(ts_ms);
        }
        let lb = detector.letterbox(w, h);
        let input = scaler.to_bgr(frame, lb.scaled_w, lb.scaled_h)?;
        let started = Instant::now();
        let detections = detector.detect(&input.as_frame(), (w, h))?;
        summary.inference += started.elapsed();
        summary.detected += 1;
        let transitions = analytics.on_detections(ts_ms, &detections, (w, h));
        if !transitions.is_empty() {
            let (sw, sh) = snapshot_size(w, h, SNAPSHOT_MAX_SIDE);
            let evidence = scaler.to_bgr(frame, sw, sh).ok();
            emit(
                &mut emitter,
                &analytics,
                &transitions,
                evidence.as_ref(),
                sink,
            )?;
        }
        Ok(ts_ms)
    };

    for (s, packet) in input.packets() {
        if s.index() != index {
            continue;
        }
        if decoder.send_packet(&packet).is_err() {
            continue;
        }
        while decoder.receive_frame(&mut frame).is_ok() {
            last_ts = handle(&frame, &mut summary, &mut sink)?;
        }
    }
    if decoder.send_eof().is_ok() {
        while decoder.receive_frame(&mut frame).is_ok() {
            last_ts = handle(&frame, &mut summary, &mut sink)?;
        }
    }
    if summary.frames == 0 {
        bail!("{}: no frame could be decoded", args.input.display());
    }
    let transitions = analytics.flush(last_ts);
    emit(&mut emitter, &analytics, &transitions, None, &mut sink)?;
    summary.events = sink.events;
    Ok(summary)
}

fn emit(
    emitter: &mut Emitter,
    analytics: &CameraAnalytics,
    transitions: &[AlarmTransition],
    evidence: Option<&crate::detect::BgrImage>,
    sink: &mut PrintSink<'_>,
) -> anyhow::Result<()> {
    for t in transitions {
        emitter
            .emit(t, evidence, analytics.camera(), sink)
            .map_err(|e| anyhow::anyhow!("writing an alarm event: {e}"))?;
    }
    Ok(())
}
