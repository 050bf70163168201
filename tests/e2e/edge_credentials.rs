//! Camera credentials never reach a log or the status topic: GStreamer's
//! RTSP server demands digest authentication; the edge is configured with
//! `rtsp://user:password@host/...` and runs with `RUST_LOG=debug` (every
//! library's debug output included). Frames must flow (stream telemetry in
//! VictoriaMetrics), the password must appear nowhere in the edge's log nor
//! in its retained status, and a camera with a wrong password gets a clear
//! log line naming the camera and its URL, without the password.

use std::time::Duration;

use parkwatch_tests::stack::{
    EdgeSpec, Ingest, edge_config, edge_status, start_edge_with_env, status_topic,
};
use parkwatch_tests::{RtspServer, VictoriaMetrics, media, wait_for};

const EDGE: &str = "cred-edge";
const MQTT_PASSWORD: &str = "mqtt-Pa55-for-cred-edge";
const CAM_USER: &str = "operator";
/// Characters that need percent-encoding in a URL, so both spellings are checked.
const CAM_PASSWORD: &str = "Kx9#vQ2@mZ!7";
const WRONG_PASSWORD: &str = "NotTheRight-0ne";

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn camera_passwords_stay_out_of_logs_and_status() {
    let vm = VictoriaMetrics::start();
    let rtsp = RtspServer::start_with_auth(
        &[("cam1", &media("vtest-h264.mp4"))],
        CAM_USER,
        CAM_PASSWORD,
    );
    let ingest = Ingest::start(&vm, &[(EDGE, MQTT_PASSWORD), ("observer", "pw-obs")]);
    let good_url = rtsp.url_with_credentials("cam1");
    assert!(
        good_url.contains(&percent_encode(CAM_PASSWORD)),
        "{good_url}"
    );
    let plain_url = rtsp.url("cam1");
    let wrong_url = plain_url.replacen(
        "rtsp://",
        &format!("rtsp://{CAM_USER}:{WRONG_PASSWORD}@"),
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let config = edge_config(
        dir.path(),
        &EdgeSpec {
            cameras: vec![
                ("cam1".into(), good_url, String::new()),
                ("cam-wrongpw".into(), wrong_url, String::new()),
            ],
            ..EdgeSpec::new(EDGE, MQTT_PASSWORD, ingest.mqtt_port())
        },
    );
    let mut edge = start_edge_with_env(&config, &[("RUST_LOG", "debug")]);

    // Frames flow on the camera with the right password.
    let selector =
        format!(r#"{{__name__="camera_stream_frames_decoded",camera="cam1",edge="{EDGE}"}}"#);
    wait_for(
        "decoded-frame telemetry for cam1 in VictoriaMetrics",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            let series = vm.export(&selector);
            let v = series.first()?["values"].as_array()?.last()?.as_f64()?;
            (v > 0.0).then_some(())
        },
    );

    // The camera with the wrong password: a clear line naming it and its
    // URL (without credentials), saying authentication failed.
    let line = wait_for(
        "a log line about cam-wrongpw's refused login",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || {
            edge.log()
                .lines()
                .find(|l| l.contains("camera=cam-wrongpw") && l.contains("WARN"))
                .map(str::to_owned)
        },
    );
    assert!(
        line.contains(&format!("url={plain_url}")),
        "the line should show the URL without credentials ({plain_url}): {line}"
    );
    assert!(
        line.contains("401") || line.to_ascii_lowercase().contains("unauthorized"),
        "the line should say the camera refused the credentials: {line}"
    );

    eprintln!("refused camera: {line}");

    // The status lists both cameras and no secret.
    let status = wait_for(
        "the edge's retained status",
        Duration::from_secs(10),
        Duration::from_millis(250),
        || edge_status(ingest.mqtt_port(), "observer", "pw-obs", EDGE),
    );
    let status_text = status.to_string();
    assert!(
        status_text.contains("cam1") && status_text.contains("cam-wrongpw"),
        "{status_text}"
    );

    // A few more seconds of debug logging (reconnects of the refused camera).
    std::thread::sleep(Duration::from_secs(3));
    edge.assert_running();
    let log = edge.log();
    eprintln!(
        "edge log: {} lines, {} at DEBUG",
        log.lines().count(),
        log.lines().filter(|l| l.contains("DEBUG")).count()
    );
    assert!(
        log.lines().count() > 50 && log.contains("DEBUG"),
        "the edge did not log at debug level"
    );
    for secret in [
        CAM_PASSWORD.to_owned(),
        percent_encode(CAM_PASSWORD),
        WRONG_PASSWORD.to_owned(),
        MQTT_PASSWORD.to_owned(),
    ] {
        let leaks: Vec<&str> = log.lines().filter(|l| l.contains(&secret)).collect();
        assert!(
            leaks.is_empty(),
            "a password ({secret:?}) is in the edge's log:\n{}",
            leaks.join("\n")
        );
        assert!(
            !status_text.contains(&secret),
            "a password is in the status on {}: {status_text}",
            status_topic(EDGE)
        );
    }
}
