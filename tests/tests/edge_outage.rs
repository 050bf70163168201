//! An outage of the centre, end to end: the edge streams a real camera and
//! sends a telemetry batch every second to `parkwatch-ingest` (embedded
//! broker) and on to VictoriaMetrics. Ingest is stopped for 30 s; meanwhile
//! the edge keeps producing telemetry into its on-disk outbox, is killed
//! with SIGKILL and started again on the same outbox. When ingest is back,
//! every batch the edge produced must arrive: the camera's stream points in
//! VictoriaMetrics have no gap longer than 1.5 intervals over the whole
//! window (except the edge's own restart), and no timestamp twice with
//! different values. Exact re-sends (a batch written but whose ack was lost
//! with ingest) are counted and printed, not hidden.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parkwatch_tests::stack::{EdgeSpec, Ingest, edge_config, start_edge};
use parkwatch_tests::{RtspServer, VictoriaMetrics, media, wait_for};

const EDGE: &str = "outage-edge";
const INTERVAL_MS: i64 = 1000;
const OUTAGE: Duration = Duration::from_secs(30);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `(timestamp ms, value)` of every stored sample of the camera's
/// frames-received counter, sorted by time (duplicates kept).
fn samples(vm: &VictoriaMetrics) -> Vec<(i64, f64)> {
    let selector =
        format!(r#"{{__name__="camera_stream_frames_received",camera="cam1",edge="{EDGE}"}}"#);
    let mut out = Vec::new();
    for series in vm.export(&selector) {
        let (Some(ts), Some(vs)) = (series["timestamps"].as_array(), series["values"].as_array())
        else {
            continue;
        };
        for (t, v) in ts.iter().zip(vs) {
            if let (Some(t), Some(v)) = (t.as_i64(), v.as_f64()) {
                out.push((t, v));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    out
}

/// What the samples say about completeness.
#[derive(Debug)]
struct Coverage {
    /// Distinct timestamps.
    points: usize,
    /// Timestamps stored more than once with the same value (re-sends).
    exact_resends: usize,
    /// Timestamps stored more than once with different values.
    conflicting: Vec<i64>,
    /// Gaps over 1.5 intervals: (from, to) timestamps.
    gaps: Vec<(i64, i64)>,
    last: i64,
}

fn coverage(samples: &[(i64, f64)]) -> Coverage {
    let mut by_ts: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for (t, v) in samples {
        by_ts.entry(*t).or_default().push(*v);
    }
    let mut exact_resends = 0;
    let mut conflicting = Vec::new();
    for (t, vs) in &by_ts {
        if vs.len() > 1 {
            if vs.iter().all(|v| v == &vs[0]) {
                exact_resends += vs.len() - 1;
            } else {
                conflicting.push(*t);
            }
        }
    }
    let ts: Vec<i64> = by_ts.keys().copied().collect();
    let gaps = ts
        .windows(2)
        .filter(|w| w[1] - w[0] > INTERVAL_MS * 3 / 2)
        .map(|w| (w[0], w[1]))
        .collect();
    Coverage {
        points: ts.len(),
        exact_resends,
        conflicting,
        gaps,
        last: ts.last().copied().unwrap_or(0),
    }
}

/// Gaps other than the one around the edge's restart at `killed_at_ms`
/// (which may last up to `restart_allowance_ms`).
fn unexplained(
    gaps: &[(i64, i64)],
    killed_at_ms: i64,
    restart_allowance_ms: i64,
) -> Vec<(i64, i64)> {
    gaps.iter()
        .copied()
        .filter(|(a, b)| {
            !(*a <= killed_at_ms && killed_at_ms <= *b && b - a <= restart_allowance_ms)
        })
        .collect()
}

#[test]
fn telemetry_survives_an_ingest_outage_and_an_edge_crash() {
    let vm = VictoriaMetrics::start();
    let rtsp = RtspServer::start(&[("cam1", &media("vtest-h264.mp4"))]);
    let mut ingest = Ingest::start(&vm, &[(EDGE, "pw-outage")]);
    let dir = tempfile::tempdir().unwrap();
    let config = edge_config(
        dir.path(),
        &EdgeSpec {
            edge: EDGE,
            password: "pw-outage",
            mqtt_port: ingest.mqtt_port(),
            telemetry_secs: INTERVAL_MS as f64 / 1000.0,
            cameras: vec![("cam1".into(), rtsp.url("cam1"), String::new())],
            extra: String::new(),
        },
    );
    let mut edge = start_edge(&config);

    // Telemetry flows for a few seconds before the outage.
    let first = wait_for(
        "camera telemetry in VictoriaMetrics",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || samples(&vm).first().map(|s| s.0),
    );
    std::thread::sleep(Duration::from_secs(4));

    // The centre goes away.
    let outage_start = Instant::now();
    let outage_start_ms = now_ms();
    let status = ingest.child().stop();
    assert!(status.success(), "ingest did not stop cleanly: {status:?}");

    // A third of the way in, the edge crashes and is started again on the
    // same outbox.
    std::thread::sleep(OUTAGE / 3);
    let killed_at_ms = now_ms();
    edge.kill9();
    edge.start_again();
    let recovered = edge.wait_for_log("Outbox open.", Duration::from_secs(20));
    let pending_after_crash: u64 = recovered
        .split_whitespace()
        .find_map(|w| w.strip_prefix("pending="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(
        pending_after_crash >= 8,
        "the restarted edge found only {pending_after_crash} pending records in its outbox \
         after ~{}s of outage: {recovered}",
        (OUTAGE / 3).as_secs()
    );

    std::thread::sleep(OUTAGE.saturating_sub(outage_start.elapsed()));
    let back = Instant::now();
    let back_ms = now_ms();
    ingest.start_again();
    edge.assert_running();
    // The edge notices on its next reconnect attempt (its backoff grew
    // while the broker was away).
    edge.wait_for_log("MQTT connected", Duration::from_secs(45));
    let reconnect_time = back.elapsed();

    // Everything produced arrives: live points after the outage, and no
    // unexplained gap from the first point on. The restart gap: SIGKILL,
    // start-up, camera reconnect and the first interval.
    let restart_allowance_ms = 6_000;
    let drained = wait_for(
        "the outbox backlog to reach VictoriaMetrics",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || {
            let c = coverage(&samples(&vm));
            (c.last > back_ms + INTERVAL_MS
                && unexplained(&c.gaps, killed_at_ms, restart_allowance_ms).is_empty())
            .then_some(c)
        },
    );
    let drain_time = back.elapsed();

    // Let a few live batches through, then judge the whole window.
    std::thread::sleep(Duration::from_secs(3));
    let all = samples(&vm);
    let c = coverage(&all);
    let outage_points = all
        .iter()
        .filter(|(t, _)| (outage_start_ms..back_ms).contains(t))
        .count();
    eprintln!(
        "outage: {} distinct points from {first} to {}, {outage_points} produced during the \
         {OUTAGE:?} outage; after ingest came back the edge reconnected in {reconnect_time:?} \
         and the backlog had drained {:?} later ({drain_time:?} in all; coverage complete then: \
         {} points); gaps over 1.5 intervals: {:?} (edge killed at \
         {killed_at_ms}); exact re-sends stored twice: {}; conflicting duplicates: {:?}",
        c.points,
        c.last,
        drain_time.saturating_sub(reconnect_time),
        drained.points,
        c.gaps,
        c.exact_resends,
        c.conflicting
    );
    assert!(
        c.conflicting.is_empty(),
        "timestamps stored twice with different values: {:?}",
        c.conflicting
    );
    let bad = unexplained(&c.gaps, killed_at_ms, restart_allowance_ms);
    assert!(
        bad.is_empty(),
        "telemetry lost: gaps over 1.5 intervals {bad:?} (edge killed at {killed_at_ms}, outage \
         {outage_start_ms}..{back_ms})"
    );
    // The outage itself is covered at about one point per interval (less
    // the restart), so the edge really kept producing while cut off.
    let expected = (back_ms - outage_start_ms) / INTERVAL_MS - restart_allowance_ms / INTERVAL_MS;
    assert!(
        outage_points as i64 >= expected,
        "only {outage_points} points during the outage, want at least {expected}"
    );
    assert!(
        drain_time < Duration::from_secs(45),
        "the backlog took {drain_time:?} to drain"
    );
    edge.assert_running();
}
