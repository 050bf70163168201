//! bench-box: how many cameras one edge box sustains, and how fast alarms
//! come.
//!
//! ```sh
//! cargo build --release --bins
//! PARKWATCH_BIN_DIR=target/release cargo run --release -p parkwatch-tests --bin bench-box -- \
//!     [--cameras 8,16,24,32] [--fps 5] [--seconds 30]
//! ```
//!
//! For each camera count N it starts GStreamer's RTSP server with N mounts
//! of the 640x360 10 fps rendition of the real test video and a release
//! `parkwatch-edge` pulling all of them, each camera with the walkway
//! intrusion rule (so every camera runs detection, motion-gated, at `--fps`
//! detections per second). No broker runs: the uplink retries in the
//! background and the outbox holds the alarms, which costs next to nothing.
//! After a warm-up it measures, over `--seconds`:
//! - the edge's CPU (user + system, in cores) and resident memory;
//! - per camera, from the edge's `/metrics`: frames received and decoded,
//!   frames dropped before decode (a decode backlog), frames sampled and
//!   detected, frames replaced in the detector slot before detection
//!   (keep-latest drops: the detector is saturated);
//! - alarm latency: from the frame confirming an alarm to its event in the
//!   outbox (the `latency_ms` of the edge's `Alarm.` log lines), p50/p95.
//!
//! The RTSP server runs on the same 2 cores, so the numbers are a
//! conservative bound for a box whose cameras are elsewhere.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parkwatch_tests::scene::walkway_intrusion;
use parkwatch_tests::stack::http_get;
use parkwatch_tests::{ChildSpec, RtspServer, bin, free_port, media, port_open, repo_root};

struct Args {
    cameras: Vec<usize>,
    fps: f64,
    seconds: u64,
}

fn parse_args() -> Args {
    let mut a = Args {
        cameras: vec![8, 16, 24, 32],
        fps: 5.0,
        seconds: 30,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let val = it.next().unwrap_or_default();
        match flag.as_str() {
            "--cameras" => a.cameras = val.split(',').filter_map(|v| v.parse().ok()).collect(),
            "--fps" => a.fps = val.parse().unwrap_or(a.fps),
            "--seconds" => a.seconds = val.parse().unwrap_or(a.seconds),
            other => {
                eprintln!("bench-box: unknown flag {other}");
                std::process::exit(2);
            }
        }
    }
    a
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the ")" of the command name: utime is 14th, stime 15th
    // of the whole line.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// Sums of per-camera counters from `/metrics`, and the minimum per camera
/// of frames detected.
fn scrape(port: u16) -> (HashMap<String, f64>, f64) {
    let (_, body) = http_get(port, "/metrics");
    let mut sums: HashMap<String, f64> = HashMap::new();
    let mut detected: Vec<f64> = Vec::new();
    for line in body
        .lines()
        .filter(|l| l.starts_with("parkwatch_edge_camera_"))
    {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let metric = name.split('{').next().unwrap_or(name).to_owned();
        let v: f64 = value.parse().unwrap_or(0.0);
        if metric == "parkwatch_edge_camera_frames_detected_total" {
            detected.push(v);
        }
        *sums.entry(metric).or_default() += v;
    }
    let min = detected.iter().copied().fold(f64::INFINITY, f64::min);
    (sums, if min.is_finite() { min } else { 0.0 })
}

fn percentile(v: &mut [u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn main() {
    let args = parse_args();
    let video = media("vtest-360p-h264.mp4");
    let hz = 100.0; // USER_HZ on Linux
    println!(
        "bench-box: 640x360 10 fps H.264 cameras, {} detections/s each (motion-gated), {} s per run, {} cores",
        args.fps,
        args.seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:>7} {:>9} {:>9} {:>11} {:>9} {:>10} {:>10} {:>10} {:>9} {:>12} {:>8} {:>8}",
        "cameras",
        "cpu",
        "rss MiB",
        "MiB/camera",
        "rx fps",
        "decode fps",
        "dropped",
        "det/s/cam",
        "min det/s",
        "slot drops/s",
        "lat p50",
        "lat p95"
    );
    for &n in &args.cameras {
        let names: Vec<String> = (1..=n).map(|i| format!("cam{i}")).collect();
        let mounts: Vec<(&str, &std::path::Path)> = names
            .iter()
            .map(|s| (s.as_str(), video.as_path()))
            .collect();
        let rtsp = RtspServer::start(&mounts);
        let dir = tempfile::tempdir().expect("tempdir");
        let metrics_port = free_port();
        let mut toml = format!(
            "edge_id = \"bench-edge\"\nsite = \"bench\"\n[mqtt]\nport = {}\n[outbox]\ndir = \"{}\"\n\
             [detector]\nmodel = \"{}\"\nthreads = 2\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n",
            free_port(),
            dir.path().join("outbox").display(),
            repo_root().join("models/nanodet-m-320.toml").display()
        );
        for name in &names {
            toml.push_str(&format!(
                "\n[[cameras]]\nid = \"{name}\"\nurl = \"{}\"\ndetect_fps = {}\n{}",
                rtsp.url(name),
                args.fps,
                walkway_intrusion()
            ));
        }
        let config = dir.path().join("edge.toml");
        std::fs::write(&config, toml).expect("write config");
        let mut edge = ChildSpec::new("parkwatch-edge", bin("parkwatch-edge"))
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .spawn();
        let start = Instant::now();
        while !port_open(metrics_port) && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(200));
        }
        // Warm-up: every camera connected and detecting.
        std::thread::sleep(Duration::from_secs(10));
        let pid = edge.pid().expect("edge running");
        let (before, min_before) = scrape(metrics_port);
        let ticks0 = cpu_ticks(pid);
        let log_offset = edge.log().len();
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(args.seconds));
        let secs = t0.elapsed().as_secs_f64();
        let ticks1 = cpu_ticks(pid);
        let (after, min_after) = scrape(metrics_port);
        let rss = rss_mib(pid);
        let log = edge.log();
        // Every new alarm of the run counts, warm-up included: latency is
        // measured from each alarm's own confirming frame.
        let _ = log_offset;
        let mut lat: Vec<u64> = log
            .lines()
            .filter(|l| l.contains("Alarm.") && l.contains("event=\"new\""))
            .filter_map(|l| {
                l.split("latency_ms=")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|v| v.parse().ok())
            })
            .collect();
        let d = |k: &str| {
            (after.get(k).copied().unwrap_or(0.0) - before.get(k).copied().unwrap_or(0.0)) / secs
        };
        let nf = n as f64;
        println!(
            "{:>7} {:>9.2} {:>9.0} {:>11.1} {:>9.1} {:>10.1} {:>10.1} {:>10.2} {:>9.2} {:>12.1} {:>8} {:>8}",
            n,
            (ticks1 - ticks0) as f64 / hz / secs,
            rss,
            rss / nf,
            d("parkwatch_edge_camera_frames_received_total") / nf,
            d("parkwatch_edge_camera_frames_decoded_total") / nf,
            d("parkwatch_edge_camera_frames_dropped_total"),
            d("parkwatch_edge_camera_frames_detected_total") / nf,
            (min_after - min_before) / secs,
            d("parkwatch_edge_camera_detect_skipped_total"),
            percentile(&mut lat, 0.5),
            percentile(&mut lat, 0.95),
        );
        let _ = edge.stop();
        drop(rtsp);
    }
    println!(
        "\ncpu: cores used by parkwatch-edge; rx/decode fps: per camera; dropped: frames/s dropped before decode (all cameras);\n\
         det/s/cam: detections per second per camera (mean), min det/s: the least served camera; slot drops/s: frames\n\
         replaced in the detector's keep-latest slot before detection (all cameras); lat: ms from the confirming frame to the\n\
         alarm event in the outbox, over the new alarms of the run."
    );
}
