//! `bench-detect`: inference time of the edge detector (Rust, `ort`) next
//! to Python's onnxruntime on the same model, frame, tensor and threads.
//!
//! ```text
//! cargo run --release -p parkwatch-edge --bin bench-detect -- --threads 2
//! ```
//!
//! For each model manifest it extracts one frame of the test video with the
//! `ffmpeg` CLI, then times, after a warm-up:
//!
//! * `rust run`: `Session::run` alone (what the Python number measures);
//! * `rust detect, prescaled`: the pipeline's path, the frame already scaled
//!   to the letterbox size, plus normalisation, decoding and NMS;
//! * `rust detect, full frame`: the still-image path, with the bilinear
//!   resize in Rust;
//!
//! and `deploy/bench/onnx_python.py` on the exact input tensor the Rust
//! side built (written to a temporary file), with the same model file,
//! threads and spinning setting. Rust and Python take turns in rounds, so
//! load from other processes hits both alike. Both sides report how many
//! anchors pass the score threshold, as a check that they computed the
//! same thing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use parkwatch_edge::detect::{Detector, OrtDetector, OrtDetectorOptions, runtime};
use parkwatch_edge::image_io;
use parkwatch_edge_logic::manifest::ModelManifest;

/// Benchmark the edge detector against Python onnxruntime.
#[derive(Debug, Parser)]
struct Args {
    /// Model manifests to benchmark.
    #[arg(long, value_delimiter = ',', default_values = ["models/nanodet-m-320.toml", "models/nanodet-m-416.toml"])]
    models: Vec<PathBuf>,
    /// Intra-op threads, the same for Rust and Python.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Let idle intra-op threads spin-wait (both sides).
    #[arg(long)]
    spinning: bool,
    /// Timed runs per measurement (split over the rounds).
    #[arg(long, default_value_t = 300)]
    iterations: usize,
    /// Rounds: Rust and Python take turns this many times.
    #[arg(long, default_value_t = 6)]
    rounds: usize,
    /// Untimed runs before each measurement of each round.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// Video to take the frame from.
    #[arg(long, default_value = "../shared/media/vtest.avi")]
    video: PathBuf,
    /// Frame number (0-based).
    #[arg(long, default_value_t = 100)]
    frame: u32,
    /// The Python side; skipped when empty.
    #[arg(long, default_value = "deploy/bench/onnx_python.py")]
    python_script: String,
    /// Python interpreter. /opt/parkwatch/python is put on its PYTHONPATH.
    #[arg(long, env = "PARKWATCH_PYTHON", default_value = "python3")]
    python: String,
    /// ONNX Runtime library (else ORT_DYLIB_PATH, else /opt/parkwatch/lib/libonnxruntime.so).
    #[arg(long)]
    onnxruntime: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy)]
struct Stats {
    median_ms: f64,
    p95_ms: f64,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    if samples.is_empty() {
        return Stats {
            median_ms: f64::NAN,
            p95_ms: f64::NAN,
        };
    }
    let n = samples.len();
    let median = if n % 2 == 1 {
        ms(samples[n / 2])
    } else {
        (ms(samples[n / 2 - 1]) + ms(samples[n / 2])) / 2.0
    };
    let rank = ((0.95 * n as f64).ceil() as usize).clamp(1, n);
    Stats {
        median_ms: median,
        p95_ms: ms(samples[rank - 1]),
    }
}

fn ffmpeg_frame(
    video: &Path,
    frame: u32,
    scale: Option<(u32, u32)>,
    out: &Path,
) -> anyhow::Result<()> {
    let mut filter = format!("select=eq(n\\,{frame})");
    if let Some((w, h)) = scale {
        filter.push_str(&format!(",scale={w}:{h}:flags=bilinear"));
    }
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(video)
        .args(["-vf", &filter, "-frames:v", "1"])
        .arg(out)
        .status()
        .context("running the ffmpeg CLI")?;
    if !status.success() || !out.is_file() {
        bail!(
            "ffmpeg could not extract frame {frame} of {}",
            video.display()
        );
    }
    Ok(())
}

struct Row {
    model: String,
    what: String,
    stats: Stats,
    note: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Error);
    let rt = runtime::init(args.onnxruntime.as_deref())?;
    let tmp = std::env::temp_dir().join(format!("parkwatch-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let result = run(&args, rt, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    let rows = result?;

    println!();
    println!(
        "ONNX Runtime {} ({}), {} intra-op threads, spinning {}, {} timed runs in {} rounds (each after {} warm-up), frame {} of {}",
        rt.library().display(),
        rt.build_info().split(',').next().unwrap_or(""),
        args.threads,
        if args.spinning { "on" } else { "off" },
        args.iterations.div_ceil(args.rounds.max(1)).max(1) * args.rounds.max(1),
        args.rounds.max(1),
        args.warmup,
        args.frame,
        args.video.display()
    );
    println!(
        "{:<15} {:<28} {:>10} {:>10}  note",
        "model", "path", "median ms", "p95 ms"
    );
    for r in &rows {
        println!(
            "{:<15} {:<28} {:>10.2} {:>10.2}  {}",
            r.model, r.what, r.stats.median_ms, r.stats.p95_ms, r.note
        );
    }
    Ok(())
}

fn python_round(
    args: &Args,
    manifest: &ModelManifest,
    tensor: &Path,
    iterations: usize,
    threshold: f32,
) -> anyhow::Result<serde_json::Value> {
    let mut cmd = Command::new(&args.python);
    cmd.arg(&args.python_script)
        .arg("--model")
        .arg(&manifest.file)
        .arg("--input")
        .arg(tensor)
        .args(["--width", &manifest.input.width.to_string()])
        .args(["--height", &manifest.input.height.to_string()])
        .args(["--threads", &args.threads.to_string()])
        .args(["--spinning", if args.spinning { "1" } else { "0" }])
        .args(["--iterations", &iterations.to_string()])
        .args(["--warmup", &args.warmup.to_string()])
        .args(["--score-threshold", &threshold.to_string()])
        .args(["--num-classes", &manifest.output.num_classes.to_string()]);
    if Path::new("/opt/parkwatch/python").is_dir() {
        let mut path = std::ffi::OsString::from("/opt/parkwatch/python");
        if let Some(old) = std::env::var_os("PYTHONPATH") {
            path.push(":");
            path.push(old);
        }
        cmd.env("PYTHONPATH", path);
    }
    let out = cmd
        .output()
        .with_context(|| format!("running {} {}", args.python, args.python_script))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            args.python_script,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "{} printed no JSON: {}",
            args.python_script,
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn run(args: &Args, rt: &'static runtime::Runtime, tmp: &Path) -> anyhow::Result<Vec<Row>> {
    let full_png = tmp.join("frame.png");
    ffmpeg_frame(&args.video, args.frame, None, &full_png)?;
    let full = image_io::decode_image(&full_png)?;
    let source = (full.width(), full.height());
    let rounds = args.rounds.max(1);
    let per_round = args.iterations.div_ceil(rounds).max(1);
    let mut rows = Vec::new();
    for manifest_path in &args.models {
        let manifest = ModelManifest::load(manifest_path)?;
        let options = OrtDetectorOptions {
            intra_threads: args.threads,
            intra_op_spinning: args.spinning,
            ..Default::default()
        };
        let mut det = OrtDetector::load(rt, &manifest, &options)?;
        let lb = det.letterbox(source.0, source.1);
        let scaled_png = tmp.join(format!("scaled-{}x{}.png", lb.scaled_w, lb.scaled_h));
        ffmpeg_frame(
            &args.video,
            args.frame,
            Some((lb.scaled_w, lb.scaled_h)),
            &scaled_png,
        )?;
        let scaled = image_io::decode_image(&scaled_png)?;

        // The tensor of the prescaled frame, for Python.
        let dets = det.detect(&scaled.as_frame(), source)?;
        let candidates = det.last_candidates_before_nms();
        let tensor_path = tmp.join(format!("tensor-{}.f32", manifest.name));
        let bytes: Vec<u8> = det
            .input_tensor()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        std::fs::write(&tensor_path, bytes)?;

        let mut run_times = Vec::new();
        let mut pre_scaled = Vec::new();
        let mut pre_full = Vec::new();
        let mut detect_scaled = Vec::new();
        let mut detect_full = Vec::new();
        let mut py_samples = Vec::new();
        let mut py_last = None;
        // Rust and Python alternate in rounds, so both see the same load
        // from whatever else the machine is doing.
        for round in 1..=rounds {
            eprintln!("{}: round {round}/{rounds}", manifest.name);
            for i in 0..args.warmup + per_round {
                det.detect(&scaled.as_frame(), source)?;
                if i >= args.warmup {
                    let t = det.last_timings();
                    run_times.push(t.inference);
                    pre_scaled.push(t.preprocess);
                    detect_scaled.push(t.total());
                }
            }
            for i in 0..args.warmup + per_round {
                det.detect(&full.as_frame(), source)?;
                if i >= args.warmup {
                    let t = det.last_timings();
                    detect_full.push(t.total());
                    pre_full.push(t.preprocess);
                }
            }
            if !args.python_script.is_empty() {
                let v = python_round(
                    args,
                    &manifest,
                    &tensor_path,
                    per_round,
                    det.score_threshold(),
                )?;
                if let Some(samples) = v["samples_ms"].as_array() {
                    py_samples.extend(
                        samples
                            .iter()
                            .filter_map(serde_json::Value::as_f64)
                            .map(|ms| Duration::from_secs_f64(ms / 1000.0)),
                    );
                }
                py_last = Some(v);
            }
        }

        let mut classes: Vec<(String, usize)> = Vec::new();
        for d in &dets {
            match classes.iter_mut().find(|(c, _)| c == &*d.class) {
                Some((_, n)) => *n += 1,
                None => classes.push((d.class.to_string(), 1)),
            }
        }
        let summary = classes
            .iter()
            .map(|(c, n)| format!("{n} {c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let name = manifest.name.clone();
        let mut row = |what: &str, samples: Vec<Duration>, note: String| {
            rows.push(Row {
                model: name.clone(),
                what: what.into(),
                stats: stats(samples),
                note,
            });
        };
        row(
            "rust run",
            run_times,
            format!("{candidates} anchors >= {}", det.score_threshold()),
        );
        if let Some(v) = &py_last {
            row(
                "python run",
                py_samples,
                format!(
                    "{} anchors; {}",
                    v["candidates"],
                    v["runtime"].as_str().unwrap_or("?")
                ),
            );
        }
        row("rust detect, prescaled", detect_scaled, summary);
        row(
            "rust detect, full frame",
            detect_full,
            format!("{}x{} resized in Rust", source.0, source.1),
        );
        row(
            "rust preprocess, prescaled",
            pre_scaled,
            format!("{}x{} BGR into the tensor", lb.scaled_w, lb.scaled_h),
        );
        row(
            "rust preprocess, full frame",
            pre_full,
            "bilinear resize + normalise".into(),
        );
    }
    Ok(rows)
}
