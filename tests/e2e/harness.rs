//! Self-tests of the harness: the real servers behave as the end-to-end
//! tests rely on (VictoriaMetrics' handling of InfluxDB line protocol, the
//! RTSP server's codecs, looping, freeze, auth and restart), and
//! `ChildGuard` leaves no process behind.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parkwatch_tests::{
    ChildGuard, RtspServer, Server as _, VictoriaMetrics, ffmpeg, ffprobe_rtsp, media, run_ok,
    wait_for,
};
use serde_json::{Value, json};

/// One video packet as ffprobe reports it.
#[derive(Debug, Clone, Copy)]
struct Packet {
    pts: f64,
    key: bool,
}

/// `ffprobe` over RTSP/TCP: the first video stream's codec, width, height.
fn probe_stream(url: &str) -> (String, u64, u64) {
    let out = run_ok(
        ffprobe_rtsp().args([
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "json",
            url,
        ]),
        url,
    );
    let v: Value = serde_json::from_str(&out.stdout).expect("ffprobe prints JSON");
    let s = &v["streams"][0];
    (
        s["codec_name"].as_str().unwrap_or_default().to_owned(),
        s["width"].as_u64().unwrap_or_default(),
        s["height"].as_u64().unwrap_or_default(),
    )
}

/// The video packets of the first `seconds` of stream time, over TCP.
fn read_packets(url: &str, seconds: u32) -> Vec<Packet> {
    let out = run_ok(
        ffprobe_rtsp()
            .args(["-show_entries", "packet=pts_time,flags", "-of", "csv=p=0"])
            .args(["-read_intervals", &format!("%+{seconds}"), url]),
        url,
    );
    out.stdout
        .lines()
        .filter_map(|l| {
            let mut cols = l.split(',');
            let pts = cols.next()?.parse().ok()?; // the first packet may have pts N/A
            let key = cols.next()?.starts_with('K');
            Some(Packet { pts, key })
        })
        .collect()
}

/// Decodes `seconds` of the stream with ffmpeg; returns the frame count.
fn decode_frames(url: &str, seconds: u32) -> u64 {
    let out = run_ok(
        ffmpeg().args(["-rtsp_transport", "tcp", "-i", url]).args([
            "-t",
            &seconds.to_string(),
            "-f",
            "null",
            "-progress",
            "pipe:1",
            "-",
        ]),
        url,
    );
    assert!(
        out.stderr.trim().is_empty(),
        "decoding {url} reported errors: {}",
        out.stderr
    );
    out.stdout
        .lines()
        .filter_map(|l| l.strip_prefix("frame="))
        .filter_map(|n| n.trim().parse().ok())
        .max()
        .unwrap_or(0)
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos()
}

#[test]
fn victoria_metrics_stores_line_protocol_as_measurement_field_series() {
    let mut vm = VictoriaMetrics::start();
    let ts = now_ns();
    vm.write_lines(&format!(
        "harness_cam,site=park1,camera=cam-01 fps=9.5,frames=120i,online=true,state=\"up\" {ts}\n"
    ));
    let series = wait_for(
        "the written point in export",
        Duration::from_secs(15),
        Duration::from_millis(200),
        || {
            let s = vm.export(r#"{__name__=~"harness_cam.*"}"#);
            (s.len() >= 4).then_some(s)
        },
    );
    let by_name = |name: &str| {
        series
            .iter()
            .find(|s| s["metric"]["__name__"] == name)
            .unwrap_or_else(|| panic!("no series {name} in {series:?}"))
    };
    let ts_ms = u64::try_from(ts / 1_000_000).expect("ms fit in u64");
    for (name, value) in [
        ("harness_cam_fps", 9.5),
        ("harness_cam_frames", 120.0),
        ("harness_cam_online", 1.0),
        // VictoriaMetrics 1.79 keeps a string field as a series of zeros.
        ("harness_cam_state", 0.0),
    ] {
        let s = by_name(name);
        assert_eq!(
            s["metric"],
            json!({"__name__": name, "site": "park1", "camera": "cam-01"}),
            "labels of {name}"
        );
        assert_eq!(
            s["values"].as_array().map(Vec::len),
            Some(1),
            "one value of {name}: {s}"
        );
        assert_eq!(s["values"][0].as_f64(), Some(value), "value of {name}");
        assert_eq!(s["timestamps"], json!([ts_ms]), "timestamp of {name} (ms)");
    }
    assert_eq!(series.len(), 4, "one series per field: {series:?}");

    // Instant queries lag export by up to about a second.
    let data = wait_for(
        "the point in an instant query",
        Duration::from_secs(15),
        Duration::from_millis(200),
        || {
            let d = vm.query("harness_cam_fps");
            (d["result"].as_array().is_some_and(|r| !r.is_empty())).then_some(d)
        },
    );
    assert_eq!(data["result"][0]["metric"]["camera"], "cam-01");
    assert_eq!(data["result"][0]["value"][1], "9.5");

    // Data survives a restart on the same port and folder.
    assert!(
        vm.stop().success(),
        "VictoriaMetrics stops cleanly on SIGTERM"
    );
    vm.start_again();
    let after = vm.export("harness_cam_frames");
    assert_eq!(after.len(), 1, "series after restart: {after:?}");
    assert_eq!(after[0]["values"][0].as_f64(), Some(120.0));
}

#[test]
fn rtsp_server_serves_h264_and_h265_at_768x576_over_tcp() {
    let h264 = media("vtest-h264.mp4");
    let h265 = media("vtest-h265.mp4");
    let server = RtspServer::start(&[("cam1", &h264), ("cam2", &h265)]);
    assert_eq!(
        probe_stream(&server.url("cam1")),
        ("h264".to_owned(), 768, 576)
    );
    assert_eq!(
        probe_stream(&server.url("cam2")),
        ("hevc".to_owned(), 768, 576)
    );
    // Real time: about 10 frames per second of stream, decoded cleanly.
    let frames = decode_frames(&server.url("cam1"), 3);
    assert!(
        (25..=31).contains(&frames),
        "decoded {frames} frames in 3 s of stream"
    );
}

#[test]
fn rtsp_server_loops_forever_with_increasing_timestamps_for_two_clients() {
    // A 3 s clip (3 GOPs) loops several times within 8 s of stream.
    let dir = tempfile::tempdir().expect("temp dir");
    let clip = dir.path().join("clip.mp4");
    run_ok(
        ffmpeg()
            .arg("-i")
            .arg(media("vtest-h264.mp4"))
            .args(["-t", "3", "-c", "copy"])
            .arg(&clip),
        "cutting the clip",
    );
    let server = RtspServer::start(&[("clip", &clip)]);
    let url = server.url("clip");
    let started = Instant::now();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| read_packets(&url, 8));
        std::thread::sleep(Duration::from_millis(1500));
        let b = s.spawn(|| read_packets(&url, 5));
        (a.join().expect("client a"), b.join().expect("client b"))
    });
    let elapsed = started.elapsed();
    for (name, packets, secs) in [("a", &a, 8.0), ("b", &b, 5.0)] {
        assert!(
            packets.len() as f64 >= secs * 10.0 - 3.0,
            "client {name}: {} packets",
            packets.len()
        );
        for w in packets.windows(2) {
            let step = w[1].pts - w[0].pts;
            assert!(
                (0.099..=0.101).contains(&step),
                "client {name}: pts step {step} at {:?}",
                w
            );
        }
        // Keyframes keep coming once a second, across the loop points.
        let keys: Vec<f64> = packets.iter().filter(|p| p.key).map(|p| p.pts).collect();
        assert!(
            keys.len() as f64 >= secs - 1.0,
            "client {name}: keyframes at {keys:?}"
        );
    }
    assert!(
        elapsed >= Duration::from_secs(7),
        "played in real time, not faster: {elapsed:?}"
    );
}

#[test]
fn rtsp_server_freeze_stops_media_but_keeps_the_session() {
    let file = media("vtest-h264.h264");
    let mut server = RtspServer::start(&[("cam", &file)]);
    let url = server.url("cam");
    let packets = std::thread::scope(|s| {
        let reader = s.spawn(|| read_packets(&url, 10));
        std::thread::sleep(Duration::from_millis(2500));
        server.freeze();
        std::thread::sleep(Duration::from_secs(3));
        server.resume();
        reader.join().expect("reader")
    });
    let gaps: Vec<(Packet, Packet)> = packets
        .windows(2)
        .filter(|w| w[1].pts - w[0].pts > 1.5)
        .map(|w| (w[0], w[1]))
        .collect();
    assert_eq!(gaps.len(), 1, "one gap while frozen: {gaps:?}");
    let (before, after) = gaps[0];
    assert!(after.pts - before.pts >= 2.5, "gap {before:?} -> {after:?}");
    assert!(after.key, "the stream resumes at a keyframe: {after:?}");
    assert!(
        packets.last().map_or(0.0, |p| p.pts) >= 9.0,
        "packets continue after resume"
    );
}

#[test]
fn rtsp_server_requires_the_password_when_asked() {
    let file = media("vtest-h264.h264");
    let server = RtspServer::start_with_auth(&[("cam", &file)], "operator", "p@ss word!");
    let denied = Command::new("ffprobe")
        .args(["-v", "error", "-rtsp_transport", "tcp", &server.url("cam")])
        .output()
        .expect("run ffprobe");
    assert!(!denied.status.success(), "no credentials must be refused");
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );
    let url = server.url_with_credentials("cam");
    assert!(
        url.starts_with("rtsp://operator:p%40ss%20word%21@127.0.0.1:"),
        "{url}"
    );
    assert_eq!(probe_stream(&url).0, "h264");
}

#[test]
fn rtsp_server_restarts_on_the_same_port() {
    let file = media("vtest-h265.h265");
    let mut server = RtspServer::start(&[("cam", &file)]);
    let url = server.url("cam");
    assert_eq!(probe_stream(&url).0, "hevc");
    server.kill9();
    assert!(
        !parkwatch_tests::port_open(server.port()),
        "port closed while down"
    );
    server.start_again();
    assert_eq!(server.url("cam"), url);
    assert_eq!(probe_stream(&url).0, "hevc");
}

fn alive(pid: &str) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

#[test]
fn child_guard_kills_the_whole_group_and_keeps_the_log_across_restarts() {
    let script = "echo started; sleep 300 & echo grandchild=$!; wait";
    let mut child = ChildGuard::spawn("sleeper", "sh", ["-c", script]);
    let line = child.wait_for_log("grandchild=", Duration::from_secs(10));
    let grandchild = line.trim_start_matches("grandchild=").trim().to_owned();
    assert!(alive(&grandchild), "grandchild {grandchild} runs");

    let status = child.kill9();
    assert_eq!(parkwatch_tests::describe_status(&status), "signal 9");
    wait_for(
        "the grandchild to die",
        Duration::from_secs(5),
        Duration::from_millis(20),
        || (!alive(&grandchild)).then_some(()),
    );

    child.start_again();
    child.wait_for_log("started", Duration::from_secs(10));
    assert_eq!(child.starts(), 2);
    let started_lines = |log: String| log.lines().filter(|l| *l == "started").count();
    assert_eq!(
        started_lines(child.log()),
        2,
        "log keeps both runs:\n{}",
        child.log()
    );
    assert_eq!(started_lines(child.log_since_start()), 1);
    // SIGTERM reaches the shell, which dies of it.
    let status = child.stop();
    assert_eq!(parkwatch_tests::describe_status(&status), "signal 15");
    assert!(
        child
            .log_tail(50)
            .contains("==== parkwatch-tests: start #2 of sleeper")
    );
}
