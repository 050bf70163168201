//! The thin end-to-end slice, real all the way: GStreamer's RTSP server
//! streams the real video, `parkwatch-edge` pulls it with retina and decodes
//! it with FFmpeg, publishes stream-health telemetry over MQTT to
//! `parkwatch-ingest`'s embedded broker, which writes it through the
//! InfluxDB v2 write API into VictoriaMetrics; the test reads the points
//! back with VictoriaMetrics' own query API.

use std::time::{Duration, Instant};

use parkwatch_tests::stack::{EdgeSpec, Ingest, edge_config, start_edge};
use parkwatch_tests::{RtspServer, VictoriaMetrics, media, wait_for};

fn value_of(series: &serde_json::Value) -> Option<(f64, i64)> {
    let values = series["values"].as_array()?;
    let times = series["timestamps"].as_array()?;
    Some((values.last()?.as_f64()?, times.last()?.as_i64()?))
}

#[test]
fn stream_health_reaches_victoriametrics_through_ingest() {
    let vm = VictoriaMetrics::start();
    let rtsp = RtspServer::start(&[("cam1", &media("vtest-h264.mp4"))]);
    let ingest = Ingest::start(&vm, &[("e2e-edge", "s3cret-e2e")]);
    let dir = tempfile::tempdir().unwrap();
    let config = edge_config(
        dir.path(),
        &EdgeSpec {
            cameras: vec![("cam1".into(), rtsp.url("cam1"), String::new())],
            ..EdgeSpec::new("e2e-edge", "s3cret-e2e", ingest.mqtt_port())
        },
    );
    let mut edge = start_edge(&config);

    // Frames decoded for cam1, tagged with the edge and site by ingest.
    let selector = r#"{__name__="camera_stream_frames_decoded",camera="cam1",edge="e2e-edge",site="etdz-test"}"#;
    let first = wait_for(
        "decoded-frame telemetry for cam1 in VictoriaMetrics",
        Duration::from_secs(90),
        Duration::from_millis(500),
        || {
            let s = vm.export(selector);
            let (v, t) = value_of(s.first()?)?;
            (v > 0.0).then_some((v, t))
        },
    );
    let started = Instant::now();
    // A few seconds later the counter has grown at about the camera's
    // 10 frames per second.
    std::thread::sleep(Duration::from_secs(5));
    let later = wait_for(
        "a newer decoded-frame point",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || {
            let (v, t) = value_of(vm.export(selector).first()?)?;
            (t >= first.1 + 4000).then_some((v, t))
        },
    );
    let secs = (later.1 - first.1) as f64 / 1000.0;
    let fps = (later.0 - first.0) / secs;
    assert!(
        (6.0..=14.0).contains(&fps),
        "decoded {fps:.1} frames/s over {secs:.1}s; the stream is 10 fps (edge log: {})",
        edge.log_tail(20)
    );

    // Frames received track frames decoded, and the camera reports online.
    let received = vm.export(r#"{__name__="camera_stream_frames_received",camera="cam1"}"#);
    let (rx, _) = value_of(received.first().expect("frames_received series")).unwrap();
    assert!(rx >= later.0 * 0.9, "received {rx} < decoded {}", later.0);
    let online = vm.export(r#"{__name__="camera_stream_online",camera="cam1"}"#);
    assert_eq!(
        value_of(online.first().expect("online series")).unwrap().0,
        1.0
    );

    // Box health arrives in the same batches.
    let health = vm.export(r#"{__name__="edge_health_mem_total_bytes",edge="e2e-edge"}"#);
    assert!(
        value_of(health.first().expect("edge_health series"))
            .unwrap()
            .0
            > 0.0,
        "no box health"
    );
    assert!(edge.is_running(), "edge exited: {}", edge.log_tail(30));
    let metrics = ingest.metrics();
    assert!(
        metrics.contains("parkwatch_ingest_points_written_total"),
        "{metrics}"
    );
    let _ = started;
}
