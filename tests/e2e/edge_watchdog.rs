//! The frame watchdog: a camera that keeps its RTSP connection open but
//! stops sending frames (GStreamer's server frozen with SIGUSR1, sessions
//! and TCP connections kept) is marked stale after `stale_after_secs` (5 s
//! in the test configuration), raises `camera_offline`, shows as not
//! streaming in the edge's retained status, and the alarm ends once the
//! stream resumes.

use std::time::{Duration, Instant};

use parkwatch_tests::stack::{
    AlarmTap, EdgeSpec, Ingest, MqttTap, camera_state, edge_config, edge_status, start_edge,
    status_topic,
};
use parkwatch_tests::{RtspServer, VictoriaMetrics, media, now_ms, wait_for};
use serde_json::Value;

const EDGE: &str = "watchdog-edge";
const STALE_AFTER: Duration = Duration::from_secs(5);

#[test]
fn a_frozen_stream_goes_stale_and_raises_camera_offline() {
    let vm = VictoriaMetrics::start();
    let mut rtsp = RtspServer::start(&[("cam1", &media("vtest-h264.mp4"))]);
    let ingest = Ingest::start(&vm, &[(EDGE, "pw-watchdog"), ("observer", "pw-obs")]);
    let port = ingest.mqtt_port();
    let tap = AlarmTap::start(port, "observer", "pw-obs");
    let statuses = MqttTap::start(
        port,
        &["-u", "observer", "-P", "pw-obs"],
        &status_topic(EDGE),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = edge_config(
        dir.path(),
        &EdgeSpec {
            telemetry_secs: 2.0,
            cameras: vec![("cam1".into(), rtsp.url("cam1"), String::new())],
            ..EdgeSpec::new(EDGE, "pw-watchdog", port)
        },
    );
    let mut edge = start_edge(&config);
    let state_now = || {
        edge_status(port, "observer", "pw-obs", EDGE)
            .and_then(|s| camera_state(&s, "cam1").map(str::to_owned))
    };

    // Frames flow: the retained status says so.
    edge.wait_for_log("Frames flowing", Duration::from_secs(60));
    wait_for(
        "the retained status to show cam1 streaming",
        Duration::from_secs(10),
        Duration::from_millis(250),
        || (state_now().as_deref() == Some("streaming")).then_some(()),
    );

    // The camera hangs with its connection open.
    let frozen_at = Instant::now();
    let frozen_at_ms = now_ms();
    rtsp.freeze();
    let offline = tap.wait_event(
        "camera_offline on the frozen camera",
        STALE_AFTER + Duration::from_secs(5),
        ("cam1", "camera_offline", "new"),
    );
    let seen_after = frozen_at.elapsed();
    assert_eq!(offline["kind"], "camera_offline", "{offline}");
    assert!(offline["zone"].is_null(), "{offline}");
    // Not before the watchdog time: the stream was fine until the freeze.
    let raised_after_ms = offline["event_at_ms"].as_i64().unwrap() - frozen_at_ms;
    assert!(
        raised_after_ms >= STALE_AFTER.as_millis() as i64 - 500,
        "camera_offline raised {raised_after_ms} ms after the freeze, before the {STALE_AFTER:?} watchdog: {offline}"
    );
    let log = edge.log();
    assert!(
        log.lines()
            .any(|l| l.contains("No frame within the watchdog time") && l.contains("cam1")),
        "no watchdog line naming the camera in the edge log"
    );

    // The edge says so in its retained status: not streaming (stale, or
    // connecting again while the server answers but sends nothing), and a
    // status with cam1 stale was published.
    let state = wait_for(
        "the retained status to show cam1 not streaming",
        Duration::from_secs(3),
        Duration::from_millis(100),
        || state_now().filter(|s| s != "streaming"),
    );
    assert!(
        matches!(state.as_str(), "stale" | "connecting" | "offline"),
        "retained status of cam1 while frozen: {state:?}"
    );
    wait_for(
        "a status message with cam1 stale",
        Duration::from_secs(10),
        Duration::from_millis(200),
        || {
            statuses
                .messages()
                .iter()
                .any(|s: &Value| camera_state(s, "cam1") == Some("stale"))
                .then_some(())
        },
    );

    // The camera recovers: the alarm ends and the status says streaming.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        tap.find("cam1", "camera_offline", "end").is_none(),
        "camera_offline ended while the stream was still frozen"
    );
    let resumed_at = Instant::now();
    rtsp.resume();
    let end = tap.wait_event(
        "camera_offline to end after resume",
        Duration::from_secs(45),
        ("cam1", "camera_offline", "end"),
    );
    let recovered_after = resumed_at.elapsed();
    assert_eq!(end["alarm_id"], offline["alarm_id"], "{end}");
    assert!(
        end["ended_at_ms"].as_i64().unwrap() >= offline["event_at_ms"].as_i64().unwrap(),
        "{end}"
    );
    wait_for(
        "the retained status to show cam1 streaming again",
        Duration::from_secs(10),
        Duration::from_millis(250),
        || (state_now().as_deref() == Some("streaming")).then_some(()),
    );
    // Status messages of one run are numbered in order.
    let seqs: Vec<u64> = statuses
        .messages()
        .iter()
        .filter(|s| s["state"] == "online")
        .filter_map(|s| s["seq"].as_u64())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "status seq not increasing: {seqs:?}"
    );
    edge.assert_running();
    eprintln!(
        "watchdog: camera_offline seen {seen_after:?} after the freeze (raised {raised_after_ms} ms \
         after it), ended {recovered_after:?} after resume"
    );
}
