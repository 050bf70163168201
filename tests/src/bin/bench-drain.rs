//! bench-drain: how long an edge box takes to hand the centre the backlog
//! of a long outage, end to end.
//!
//! ```sh
//! cargo build --release --bins
//! PARKWATCH_BIN_DIR=target/release cargo run --release -p parkwatch-tests --bin bench-drain -- \
//!     [--cameras 32] [--minutes 10] [--alarms-per-camera-minute 2]
//! ```
//!
//! It writes, with the edge's own outbox code, the backlog a box with
//! `--cameras` cameras builds while cut off for `--minutes`: for every
//! camera `--alarms-per-camera-minute` intrusion alarms, each a `new` event
//! with its own 1280x720 JPEG snapshot (a frame of the real test video,
//! made unique per alarm), an `update` and an `end` event; and a telemetry
//! batch every 10 s with one `camera_stream` point per camera and the box's
//! health, stamped over the outage. Then it starts real
//! `parkwatch-ingest` (embedded broker, SQLite incident store, the test
//! VictoriaMetrics) and a real `parkwatch-edge` on that outbox, and
//! measures from the edge's start until its `/metrics` reports no pending
//! record: every record sent over MQTT on the loopback network, stored
//! durably by ingest (alarms and snapshots in the incident store, points
//! in VictoriaMetrics) and acknowledged. Finally it checks that the store
//! holds every alarm and VictoriaMetrics every camera point.
//!
//! The target (issue 4): a 10-minute backlog of a 32-camera box drains in
//! under a minute.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use parkwatch_edge::outbox::{Outbox, OutboxOptions, RecordClass};
use parkwatch_protocol::examples;
use parkwatch_protocol::{
    AlarmEvent, AlarmEventType, FieldValue, Point, SCHEMA_VERSION, SnapshotRef, TelemetryBatch,
    encode_json, encode_telemetry,
};
use parkwatch_tests::stack::{EdgeSpec, Ingest, SITE, edge_config, http_get, start_edge};
use parkwatch_tests::{VictoriaMetrics, free_port, media};
use sha2::Digest as _;

const EDGE: &str = "drain-edge";
const PASSWORD: &str = "pw-drain";
const TELEMETRY_EVERY_S: u64 = 10;

struct Args {
    cameras: u64,
    minutes: u64,
    alarms_per_camera_minute: u64,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        cameras: 32,
        minutes: 10,
        alarms_per_camera_minute: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut num = |name: &str| -> anyhow::Result<u64> {
            it.next()
                .with_context(|| format!("{name} needs a number"))?
                .parse()
                .with_context(|| format!("{name} needs a whole number"))
        };
        match flag.as_str() {
            "--cameras" => a.cameras = num("--cameras")?,
            "--minutes" => a.minutes = num("--minutes")?,
            "--alarms-per-camera-minute" => {
                a.alarms_per_camera_minute = num("--alarms-per-camera-minute")?;
            }
            "-h" | "--help" => {
                println!(
                    "bench-drain [--cameras 32] [--minutes 10] [--alarms-per-camera-minute 2]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    ensure!(
        a.cameras > 0 && a.minutes > 0,
        "--cameras and --minutes must be at least 1"
    );
    Ok(a)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A 1280x720 JPEG of a frame of the test video.
fn frame_jpeg(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let out = dir.join("frame.jpg");
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-ss", "5", "-i"])
        .arg(media("vtest-h264.mp4"))
        .args(["-frames:v", "1", "-vf", "scale=1280:720", "-q:v", "3"])
        .arg(&out)
        .status()
        .context("running ffmpeg")?;
    ensure!(
        status.success(),
        "ffmpeg could not extract a frame: {status}"
    );
    std::fs::read(&out).with_context(|| format!("reading {}", out.display()))
}

/// `jpeg` with a comment segment naming `tag` after its SOI marker: a
/// valid JPEG with its own sha256.
fn unique_jpeg(jpeg: &[u8], tag: &str) -> Vec<u8> {
    let len = (tag.len() + 2) as u16;
    let mut out = Vec::with_capacity(jpeg.len() + tag.len() + 4);
    out.extend_from_slice(&jpeg[..2]);
    out.extend_from_slice(&[0xff, 0xfe]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(tag.as_bytes());
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct Backlog {
    records: u64,
    bytes: u64,
    alarms: u64,
    alarm_events: u64,
    batches: u64,
    camera_points: u64,
}

/// Writes the outage's backlog into the outbox at `dir`, as the edge would
/// have, second by second from `start_ms`.
fn fill(dir: &Path, a: &Args, jpeg: &[u8], start_ms: i64) -> anyhow::Result<Backlog> {
    let (mut ob, _) = Outbox::open(dir, OutboxOptions::default())
        .with_context(|| format!("opening the outbox {}", dir.display()))?;
    let mut b = Backlog {
        records: 0,
        bytes: 0,
        alarms: 0,
        alarm_events: 0,
        batches: 0,
        camera_points: 0,
    };
    let mut add =
        |ob: &mut Outbox, class: RecordClass, topic: &str, build: &dyn Fn(u64) -> Vec<u8>| {
            let mut len = 0;
            let seq = ob.append_with(class, topic, |seq| {
                let p = build(seq);
                len = p.len();
                p
            })?;
            b.records += 1;
            b.bytes += len as u64;
            anyhow::Ok(seq)
        };
    let seconds = a.minutes * 60;
    let total_alarms = a.cameras * a.minutes * a.alarms_per_camera_minute;
    let alarm_every_s = seconds as f64 / total_alarms.max(1) as f64;
    let mut next_alarm = 0.0f64;
    let (mut alarms, mut alarm_events, mut batches, mut camera_points) = (0u64, 0u64, 0u64, 0u64);
    for s in 0..seconds {
        let t = start_ms + s as i64 * 1000;
        while next_alarm < (s + 1) as f64 && alarms < total_alarms {
            let camera = format!("cam-{:02}", alarms % a.cameras + 1);
            let alarm_id = format!("{EDGE}.{camera}.walkway-intrusion.{t}.{alarms}");
            let snap = unique_jpeg(jpeg, &alarm_id);
            let snap_ref = |seq| SnapshotRef {
                seq,
                sha256: sha256_hex(&snap),
                bytes: snap.len() as u32,
                width: 1280,
                height: 720,
            };
            let snap_seq = add(
                &mut ob,
                RecordClass::Snapshot,
                &format!("snapshots/{alarm_id}"),
                &|_| snap.clone(),
            )?;
            let event = |kind: AlarmEventType, at: i64, seq: u64| -> Vec<u8> {
                let mut ev: AlarmEvent = examples::alarm_new();
                ev.v = SCHEMA_VERSION;
                ev.alarm_id = alarm_id.clone();
                ev.event = kind;
                ev.seq = seq;
                ev.site = SITE.to_owned();
                ev.edge = EDGE.to_owned();
                ev.camera = Some(camera.clone());
                ev.rule_id = "walkway-intrusion".to_owned();
                ev.zone = Some("walkway".to_owned());
                ev.started_at_ms = t;
                ev.event_at_ms = at;
                ev.location = None;
                ev.catalogue_item = None;
                ev.snapshot = (kind == AlarmEventType::New).then(|| snap_ref(snap_seq));
                if kind == AlarmEventType::End {
                    ev.ended_at_ms = Some(at);
                    ev.objects.clear();
                }
                encode_json(&ev)
            };
            for (kind, dt) in [
                (AlarmEventType::New, 0),
                (AlarmEventType::Update, 400),
                (AlarmEventType::End, 900),
            ] {
                add(&mut ob, RecordClass::Alarm, "alarms", &|seq| {
                    event(kind, t + dt, seq)
                })?;
                alarm_events += 1;
            }
            alarms += 1;
            next_alarm += alarm_every_s;
        }
        if s % TELEMETRY_EVERY_S == 0 {
            let mut points: Vec<Point> = (1..=a.cameras)
                .map(|c| Point {
                    measurement: "camera_stream".to_owned(),
                    ts_ms: t,
                    tags: vec![("camera".to_owned(), format!("cam-{c:02}"))],
                    fields: vec![
                        ("frames_received".to_owned(), FieldValue::U64(s * 10)),
                        ("frames_decoded".to_owned(), FieldValue::U64(s * 10)),
                        ("frames_detected".to_owned(), FieldValue::U64(s * 5)),
                        ("frames_dropped".to_owned(), FieldValue::U64(0)),
                        ("reconnects".to_owned(), FieldValue::U64(0)),
                        ("inference_ms".to_owned(), FieldValue::F64(14.0)),
                        ("online".to_owned(), FieldValue::I64(1)),
                    ],
                })
                .collect();
            camera_points += points.len() as u64;
            points.push(Point {
                measurement: "edge_health".to_owned(),
                ts_ms: t,
                tags: Vec::new(),
                fields: vec![
                    ("cpu_percent".to_owned(), FieldValue::F64(71.5)),
                    ("mem_used_bytes".to_owned(), FieldValue::U64(1 << 30)),
                ],
            });
            add(&mut ob, RecordClass::Telemetry, "telemetry", &|seq| {
                encode_telemetry(&TelemetryBatch {
                    v: SCHEMA_VERSION,
                    site: SITE.to_owned(),
                    edge: EDGE.to_owned(),
                    seq,
                    created_at_ms: t,
                    points: points.clone(),
                })
            })?;
            batches += 1;
        }
    }
    ob.close().context("closing the outbox")?;
    b.alarms = alarms;
    b.alarm_events = alarm_events;
    b.batches = batches;
    b.camera_points = camera_points;
    Ok(b)
}

/// The value of an unlabelled metric in Prometheus text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn main() -> anyhow::Result<()> {
    let a = parse_args()?;
    let dir = tempfile::tempdir().context("tempdir")?;
    let jpeg = frame_jpeg(dir.path())?;

    let vm = VictoriaMetrics::start();
    let ingest = Ingest::start(&vm, &[(EDGE, PASSWORD)]);
    let start_ms = now_ms() - (a.minutes * 60 * 1000) as i64;
    let t = Instant::now();
    let backlog = fill(&dir.path().join("outbox"), &a, &jpeg, start_ms)?;
    let filled = t.elapsed();
    println!(
        "backlog of a {}-camera box cut off for {} min: {} records, {:.1} MB ({} alarms: {} events \
         and {} snapshots of about {} KB; {} telemetry batches with {} camera points), written in \
         {:.2} s",
        a.cameras,
        a.minutes,
        backlog.records,
        backlog.bytes as f64 / 1e6,
        backlog.alarms,
        backlog.alarm_events,
        backlog.alarms,
        jpeg.len() / 1000,
        backlog.batches,
        backlog.camera_points,
        filled.as_secs_f64()
    );

    let metrics_port = free_port();
    let config = edge_config(
        dir.path(),
        &EdgeSpec {
            telemetry_secs: TELEMETRY_EVERY_S as f64,
            ..EdgeSpec::new(EDGE, PASSWORD, ingest.mqtt_port())
        },
    );
    let text = std::fs::read_to_string(&config)?;
    let text = text.replace(
        "[metrics]\nlisten = \"\"",
        &format!("[metrics]\nlisten = \"127.0.0.1:{metrics_port}\""),
    );
    ensure!(
        text.contains(&format!(":{metrics_port}")),
        "could not enable the edge's /metrics"
    );
    std::fs::write(&config, text)?;

    let started = Instant::now();
    let mut edge = start_edge(&config);
    let mut connected = None;
    let mut first_pending = None;
    let drained = loop {
        if !edge.is_running() {
            bail!("the edge exited: {}", edge.log_tail(30));
        }
        if connected.is_none() && edge.log().contains("MQTT connected") {
            connected = Some(started.elapsed());
        }
        let (status, body) = http_get(metrics_port, "/metrics");
        if status == 200 {
            let pending = metric(&body, "parkwatch_edge_outbox_pending_records");
            if first_pending.is_none() {
                first_pending = pending;
            }
            if connected.is_some() && pending == Some(0.0) {
                break started.elapsed();
            }
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("not drained after 600 s: {}", edge.log_tail(20));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let connected = connected.unwrap_or_default();
    let sending = drained.saturating_sub(connected);

    // What the centre holds now.
    let alarms = ingest.api(&format!("/alarms?edge={EDGE}&state=ended&limit=1"));
    let stored_alarms = alarms["total"].as_u64().unwrap_or(0);
    vm.flush();
    let points: u64 = vm
        .export(&format!(
            r#"{{__name__="camera_stream_frames_received",edge="{EDGE}"}}"#
        ))
        .iter()
        .map(|s| s["timestamps"].as_array().map_or(0, Vec::len) as u64)
        .sum();
    println!(
        "\n| backlog | records | MB | edge start -> MQTT connected | connected -> all acked | records/s | MB/s | alarms stored (ended) | camera points in VictoriaMetrics |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} cameras x {} min | {} | {:.1} | {:.2} s | {:.2} s | {:.0} | {:.1} | {stored_alarms} of {} | {points} of {} |",
        a.cameras,
        a.minutes,
        backlog.records,
        backlog.bytes as f64 / 1e6,
        connected.as_secs_f64(),
        sending.as_secs_f64(),
        backlog.records as f64 / sending.as_secs_f64(),
        backlog.bytes as f64 / 1e6 / sending.as_secs_f64(),
        backlog.alarms,
        backlog.camera_points
    );
    println!("(the edge found {first_pending:?} pending records at start)");
    ensure!(
        stored_alarms == backlog.alarms,
        "ingest stored {stored_alarms} ended alarms, the backlog had {}",
        backlog.alarms
    );
    ensure!(
        points == backlog.camera_points,
        "VictoriaMetrics holds {points} camera points, the backlog had {}",
        backlog.camera_points
    );
    drop(edge);
    Ok(())
}
