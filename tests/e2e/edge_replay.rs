//! `parkwatch-edge replay` is deterministic and speed-independent: rule
//! timing follows the video's own timestamps, so a replay of a real clip
//! raises the same alarms at the same video times whether it runs flat out
//! or at real time. Every line is a valid protocol alarm event, and the
//! snapshot JPEGs written with `--snapshots` are the ones the events name
//! (same sequence number and sha256).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use parkwatch_tests::scene::{VAN_BAY, WALKWAY, WALKWAY_INTRUSION, van_dwell};
use parkwatch_tests::stack::{EdgeSpec, edge_command, edge_config};
use parkwatch_tests::{Finished, ffmpeg, media, model_manifest, run_ok, run_to_end};
use serde_json::Value;

/// Cuts the first 15 s of the H.264 campus clip (a keyframe every second,
/// so a stream copy starts clean) into `dir`.
fn cut_clip(dir: &Path) -> PathBuf {
    let clip = dir.join("clip-15s.mp4");
    run_ok(
        ffmpeg()
            .args(["-ss", "0", "-t", "15", "-i"])
            .arg(media("vtest-h264.mp4"))
            .args(["-c", "copy", "-an"])
            .arg(&clip),
        "cutting the clip",
    );
    assert!(clip.is_file(), "no clip at {}", clip.display());
    clip
}

struct Run {
    events: Vec<Value>,
    snapshots: PathBuf,
    took: Duration,
}

fn replay(config: &Path, clip: &Path, snapshots: &Path, realtime: bool) -> Run {
    let mut cmd = edge_command("replay");
    cmd.arg("--config")
        .arg(config)
        .args(["--camera", "cam1", "--input"])
        .arg(clip)
        .arg("--snapshots")
        .arg(snapshots);
    if realtime {
        cmd.arg("--realtime");
    }
    let started = Instant::now();
    let Finished {
        status,
        stdout,
        stderr,
    } = run_to_end(&mut cmd);
    let took = started.elapsed();
    assert!(
        status.success(),
        "replay (realtime: {realtime}) failed: {status}\nstderr: {stderr}"
    );
    let events = stdout
        .lines()
        .map(|line| {
            // Each line is exactly what the box would publish: the
            // protocol's own decoder (schema version, field rules) accepts it.
            let ev = parkwatch_protocol::decode_alarm(line.as_bytes())
                .unwrap_or_else(|e| panic!("replay line rejected by decode_alarm: {e}: {line}"));
            assert_eq!(ev.camera.as_deref(), Some("cam1"), "{line}");
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
        })
        .collect();
    Run {
        events,
        snapshots: snapshots.to_owned(),
        took,
    }
}

/// `(event, rule, zone, started_at_ms, event_at_ms)` of each event, in order.
fn timeline(events: &[Value]) -> Vec<(String, String, String, i64, i64)> {
    events
        .iter()
        .map(|v| {
            (
                v["event"].as_str().unwrap_or_default().to_owned(),
                v["rule_id"].as_str().unwrap_or_default().to_owned(),
                v["zone"].as_str().unwrap_or_default().to_owned(),
                v["started_at_ms"].as_i64().unwrap_or(-1),
                v["event_at_ms"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

fn sha256_of(path: &Path) -> String {
    run_ok(
        Command::new("sha256sum").arg(path),
        &path.display().to_string(),
    )
    .stdout
    .split_whitespace()
    .next()
    .unwrap_or_default()
    .to_owned()
}

/// Every snapshot an event names is a JPEG file in the run's folder whose
/// sha256 and size are the event's; returns the number checked.
#[track_caller]
fn check_snapshots(run: &Run) -> usize {
    let mut checked = 0;
    for ev in &run.events {
        let snap = &ev["snapshot"];
        if snap.is_null() {
            continue;
        }
        let path = run.snapshots.join(format!(
            "{}-{}.jpg",
            ev["alarm_id"].as_str().unwrap_or_default(),
            snap["seq"]
        ));
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("snapshot {} of {ev}: {e}", path.display()));
        assert!(
            bytes.starts_with(&[0xFF, 0xD8, 0xFF]),
            "{} is not a JPEG (no SOI marker)",
            path.display()
        );
        assert!(
            bytes.ends_with(&[0xFF, 0xD9]),
            "{} has no EOI marker",
            path.display()
        );
        assert_eq!(snap["bytes"].as_u64(), Some(bytes.len() as u64), "{ev}");
        assert_eq!(
            snap["sha256"].as_str(),
            Some(sha256_of(&path).as_str()),
            "sha256 of {} differs from the event's: {ev}",
            path.display()
        );
        checked += 1;
    }
    checked
}

#[test]
fn replay_raises_the_same_alarms_at_any_speed() {
    model_manifest("nanodet-m-320");
    let dir = tempfile::tempdir().unwrap();
    let clip = cut_clip(dir.path());
    let config = edge_config(
        dir.path(),
        &EdgeSpec {
            telemetry_secs: 10.0,
            cameras: vec![(
                "cam1".into(),
                "rtsp://127.0.0.1:8554/cam1".into(),
                format!(
                    "detect_fps = 5\n{WALKWAY}{VAN_BAY}{WALKWAY_INTRUSION}{}",
                    van_dwell(8)
                ),
            )],
            ..EdgeSpec::new("replay-edge", "unused", 1883)
        },
    );

    let fast1 = replay(&config, &clip, &dir.path().join("snaps-fast1"), false);
    let fast2 = replay(&config, &clip, &dir.path().join("snaps-fast2"), false);
    let real = replay(&config, &clip, &dir.path().join("snaps-real"), true);

    let expected = timeline(&fast1.events);
    assert!(
        expected.iter().any(|(ev, rule, zone, ..)| ev == "new"
            && rule == "walkway-intrusion"
            && zone == "walkway"),
        "no intrusion alarm in the first 15 s of the campus clip: {expected:#?}"
    );
    assert_eq!(
        timeline(&fast2.events),
        expected,
        "two fast replays of the same clip differ"
    );
    assert_eq!(
        timeline(&real.events),
        expected,
        "the real-time replay differs from the fast one"
    );
    // The same alarm ids, objects and snapshots, byte for byte.
    assert_eq!(fast1.events, fast2.events);
    assert_eq!(fast1.events, real.events);

    // Times are the video's: everything inside the 15 s clip, and the
    // van's dwell alarm no earlier than its 8 s.
    for (ev, rule, _, started, at) in &expected {
        assert!(
            (0..=15_000).contains(started) && (*started..=15_000).contains(at),
            "{ev} {rule}: times {started}..{at} ms are not within the clip"
        );
    }
    if let Some(dwell) = expected
        .iter()
        .find(|(ev, rule, ..)| ev == "new" && rule == "van-dwell")
    {
        assert!(dwell.4 >= 8_000, "dwell alarm before 8 s: {dwell:?}");
    }
    // Every alarm that opens also ends (the replay flushes at the end).
    for (ev, rule, _, started, _) in &expected {
        if ev == "new" {
            assert!(
                expected
                    .iter()
                    .any(|(e, r, _, s, _)| e == "end" && r == rule && s == started),
                "alarm {rule} started at {started} never ends: {expected:#?}"
            );
        }
    }

    // The real-time run really took the clip's length; the fast ones did not wait.
    assert!(
        real.took >= Duration::from_secs(14),
        "--realtime finished a 15 s clip in {:?}",
        real.took
    );
    assert!(
        fast1.took < real.took,
        "fast replay took {:?}, real time {:?}",
        fast1.took,
        real.took
    );

    // Snapshots: JPEGs whose sha256 is the event's, in every run.
    let n = check_snapshots(&fast1);
    assert!(n >= 1, "no event carried a snapshot: {:#?}", fast1.events);
    check_snapshots(&fast2);
    check_snapshots(&real);
    eprintln!(
        "replay: {} events, {n} snapshot references; fast {:?}, {:?}; real time {:?}",
        expected.len(),
        fast1.took,
        fast2.took,
        real.took
    );
}
