//! Micro benchmark of the pure per-frame path: tracker and rule engine for
//! 32 cameras with 20 objects each and 5 rules per camera (intrusion, dwell,
//! crowd, line crossing, intrusion with active hours).
//!
//! Run: `cargo bench -p parkwatch-edge-logic --bench rules` (needs
//! `[[bench]] name = "rules", harness = false` in lib/edge-logic/Cargo.toml;
//! neither FFmpeg nor ONNX Runtime). Prints
//! nanoseconds per camera frame and per frame of all 32 cameras; no
//! statistics framework, just a warm-up and the median of several runs.
#![cfg_attr(test, allow(dead_code))]

use std::hint::black_box;
use std::time::Instant;

use parkwatch_config::CameraConfig;
use parkwatch_edge_logic::rules::{RuleEngine, RuleOptions};
use parkwatch_edge_logic::track::{Det, Track, Tracker, TrackerConfig};

const CAMERAS: usize = 32;
const OBJECTS: usize = 20;
const FRAMES: i64 = 500;
const RUNS: usize = 7;
const T0: i64 = 1_748_766_600_000;

fn camera(i: usize) -> Result<CameraConfig, serde_json::Error> {
    serde_json::from_value(serde_json::json!({
        "id": format!("cam-{i:02}"),
        "url": "rtsp://10.0.0.7/stream1",
        "zones": [{"id": "yard", "polygon": [[0.3, 0.3], [0.8, 0.35], [0.75, 0.85], [0.25, 0.8]]}],
        "lines": [{"id": "gate", "points": [[0.1, 0.5], [0.9, 0.55]]}],
        "rules": [
            {"id": "intrusion", "kind": "intrusion", "zone": "yard", "classes": ["person"]},
            {"id": "parking", "kind": "dwell", "zone": "yard", "classes": ["car"], "seconds": 30.0},
            {"id": "crowd", "kind": "crowd", "zone": "yard", "classes": ["person"], "min_count": 5},
            {"id": "gate", "kind": "line_crossing", "line": "gate", "classes": ["person", "car"]},
            {"id": "night", "kind": "intrusion", "zone": "yard", "classes": ["person", "car"],
             "active_hours": ["22:00-06:00"]},
        ],
    }))
}

/// Detections of frame `f`: objects circling at different speeds, so they
/// enter and leave the zone and cross the line.
fn detections(f: i64, cam: usize) -> Vec<Det> {
    (0..OBJECTS)
        .map(|k| {
            let phase = (k * 37 + cam * 11) as f32 * 0.1;
            let speed = 0.02 + (k % 5) as f32 * 0.01;
            let a = phase + f as f32 * speed;
            let (cx, cy) = (0.5 + 0.35 * a.cos(), 0.5 + 0.35 * a.sin());
            let (w, h) = if k % 3 == 0 {
                (0.10, 0.08)
            } else {
                (0.04, 0.12)
            };
            Det {
                class: if k % 3 == 0 { "car" } else { "person" }.to_owned(),
                score: 0.5 + (k % 4) as f32 * 0.1,
                bbox: [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0],
            }
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let frames: Vec<Vec<Vec<Det>>> = (0..CAMERAS)
        .map(|c| (0..FRAMES).map(|f| detections(f, c)).collect())
        .collect();

    // Tracker output recorded once, to time the rules alone.
    let mut recorded: Vec<Vec<Vec<Track>>> = Vec::with_capacity(CAMERAS);
    for cam in &frames {
        let mut tr = Tracker::new(TrackerConfig::default())?;
        recorded.push(
            cam.iter()
                .enumerate()
                .map(|(f, d)| tr.update(T0 + f as i64 * 200, d).to_vec())
                .collect(),
        );
    }
    let mean_tracks = recorded.iter().flatten().map(Vec::len).sum::<usize>() as f64
        / (CAMERAS as f64 * FRAMES as f64);

    let mut track_ns = Vec::new();
    let mut rules_ns = Vec::new();
    let mut transitions = 0usize;
    for run in 0..=RUNS {
        let mut trackers = (0..CAMERAS)
            .map(|_| Tracker::new(TrackerConfig::default()))
            .collect::<Result<Vec<_>, _>>()?;
        let start = Instant::now();
        // Cameras are independent, so camera-major order does the same work.
        for (tr, cam) in trackers.iter_mut().zip(&frames) {
            for (f, dets) in cam.iter().enumerate() {
                black_box(tr.update(T0 + f as i64 * 200, dets).len());
            }
        }
        let t = start.elapsed().as_nanos() as f64;

        let mut engines = (0..CAMERAS)
            .map(|c| {
                RuleEngine::new("edge-07", &camera(c)?, RuleOptions::default()).map_err(Into::into)
            })
            .collect::<Result<Vec<_>, Box<dyn std::error::Error>>>()?;
        let start = Instant::now();
        let mut n = 0;
        for (e, cam) in engines.iter_mut().zip(&recorded) {
            for (f, tracks) in cam.iter().enumerate() {
                n += black_box(e.on_frame(T0 + f as i64 * 200, tracks)).len();
            }
        }
        let r = start.elapsed().as_nanos() as f64;
        if run > 0 {
            // Run 0 is the warm-up.
            track_ns.push(t / FRAMES as f64);
            rules_ns.push(r / FRAMES as f64);
            transitions = n;
        }
    }
    let (t, r) = (median(track_ns), median(rules_ns));
    println!(
        "{CAMERAS} cameras x {OBJECTS} objects ({mean_tracks:.1} tracks on average) x 5 rules, \
         {FRAMES} frames, median of {RUNS} runs; {transitions} transitions per run"
    );
    println!(
        "tracker: {:>9.0} ns per camera frame, {:>10.0} ns per frame of all cameras",
        t / CAMERAS as f64,
        t
    );
    println!(
        "rules:   {:>9.0} ns per camera frame, {:>10.0} ns per frame of all cameras",
        r / CAMERAS as f64,
        r
    );
    Ok(())
}
