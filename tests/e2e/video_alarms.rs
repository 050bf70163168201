//! Video analytics end to end: GStreamer's RTSP server streams the real
//! surveillance video (H.264 and H.265, looping like a camera); a real
//! `parkwatch-edge` detects people and vehicles with NanoDet-m and raises
//! alarms, which the test reads off `parkwatch-ingest`'s embedded broker
//! with Debian's `mosquitto_sub`, as any MQTT consumer would.

use std::time::Duration;

use parkwatch_tests::scene::{
    FAR_LAWN, FAR_LAWN_INTRUSION, VAN_BAY, WALKWAY, WALKWAY_INTRUSION, van_dwell,
};
use parkwatch_tests::stack::{AlarmTap, EdgeSpec, Ingest, edge_config, start_edge};
use parkwatch_tests::{RtspServer, Server as _, VictoriaMetrics, media};
use serde_json::Value;

#[test]
fn rtsp_video_raises_intrusion_dwell_and_offline_alarms() {
    // The scene's zones; the van must stand in its bay for 15 s.
    let scene = format!(
        "{WALKWAY}{VAN_BAY}{FAR_LAWN}{WALKWAY_INTRUSION}{}{FAR_LAWN_INTRUSION}",
        van_dwell(15)
    );
    let vm = VictoriaMetrics::start();
    let mut rtsp = RtspServer::start(&[
        ("cam1", &media("vtest-h264.mp4")),
        ("cam2", &media("vtest-h265.mp4")),
    ]);
    let ingest = Ingest::start(
        &vm,
        &[("video-edge", "pw-video"), ("observer", "pw-observer")],
    );
    let tap = AlarmTap::start(ingest.mqtt_port(), "observer", "pw-observer");
    let dir = tempfile::tempdir().unwrap();
    let config = edge_config(
        dir.path(),
        &EdgeSpec {
            telemetry_secs: 2.0,
            cameras: vec![
                ("cam1".into(), rtsp.url("cam1"), scene.clone()),
                ("cam2".into(), rtsp.url("cam2"), scene),
            ],
            ..EdgeSpec::new("video-edge", "pw-video", ingest.mqtt_port())
        },
    );
    let mut edge = start_edge(&config);
    let wait = |what: &str, secs: u64, camera: &str, rule: &str, event: &str| -> Value {
        tap.wait_event(what, Duration::from_secs(secs), (camera, rule, event))
    };

    // People on the walkway: an intrusion alarm with person objects and a
    // snapshot, on the H.264 camera and on the H.265 one.
    let intrusion = wait(
        "an intrusion alarm on cam1",
        90,
        "cam1",
        "walkway-intrusion",
        "new",
    );
    assert_eq!(intrusion["kind"], "intrusion");
    assert_eq!(intrusion["zone"], "walkway");
    let objects = intrusion["objects"].as_array().unwrap();
    assert!(
        !objects.is_empty() && objects.iter().all(|o| o["class"] == "person"),
        "{intrusion}"
    );
    let snap = &intrusion["snapshot"];
    assert_eq!(
        snap["sha256"].as_str().map(str::len),
        Some(64),
        "{intrusion}"
    );
    assert!(snap["bytes"].as_u64().unwrap_or(0) > 5_000, "{intrusion}");
    assert_eq!(intrusion["model"]["name"], "nanodet-m-320");
    let h265 = wait(
        "an intrusion alarm on the H.265 camera",
        90,
        "cam2",
        "walkway-intrusion",
        "new",
    );
    assert_eq!(h265["event"], "new");

    // The van parked in its bay all along: a dwell (illegal parking) alarm
    // once it has stood there for the rule's 15 s.
    let dwell = wait(
        "a dwell alarm for the parked van",
        120,
        "cam1",
        "van-dwell",
        "new",
    );
    let vehicle = &dwell["objects"][0];
    assert!(
        ["car", "truck", "bus"].contains(&vehicle["class"].as_str().unwrap_or("")),
        "{dwell}"
    );
    assert!(
        dwell["event_at_ms"].as_i64().unwrap() - dwell["started_at_ms"].as_i64().unwrap() >= 0,
        "{dwell}"
    );

    // The camera server goes away: camera_offline for both cameras, ended
    // when it is back.
    rtsp.stop();
    let offline = wait(
        "camera_offline on cam1",
        60,
        "cam1",
        "camera_offline",
        "new",
    );
    assert_eq!(offline["kind"], "camera_offline");
    wait(
        "camera_offline on cam2",
        30,
        "cam2",
        "camera_offline",
        "new",
    );
    rtsp.start_again();
    let back = wait(
        "camera_offline ending on cam1",
        90,
        "cam1",
        "camera_offline",
        "end",
    );
    assert_eq!(back["alarm_id"], offline["alarm_id"]);

    // Nobody set foot on the far lawn.
    let events = tap.events();
    assert!(
        events.iter().all(|v| v["rule_id"] != "far-lawn-intrusion"),
        "alarm for an empty zone: {:?}",
        events
            .iter()
            .filter(|v| v["rule_id"] == "far-lawn-intrusion")
            .collect::<Vec<_>>()
    );
    // Every event is well-formed by the protocol's own rules.
    for v in &events {
        let bytes = serde_json::to_vec(v).unwrap();
        parkwatch_protocol::decode_alarm(&bytes).unwrap_or_else(|e| panic!("{e}: {v}"));
    }
    assert!(edge.is_running(), "edge exited: {}", edge.log_tail(40));
}
