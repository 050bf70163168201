//! `parkwatch-edge detect [--model M] [--json] IMAGE...`: run the detector
//! on still images, for checking a model and a box by hand.
//!
//! Each image is decoded (JPEG, PNG, anything FFmpeg reads), resized into
//! the model input (bilinear, letterboxed) and detected. Output is a table
//! per image, or with `--json` one JSON object per line per image:
//!
//! ```json
//! {"image":"a.jpg","width":768,"height":576,"detect_ms":12.3,
//!  "detections":[{"class":"person","class_id":0,"score":0.76,"box":[x1,y1,x2,y2]}]}
//! ```
//!
//! with boxes in the image's pixels and `detect_ms` the time of the whole
//! detection (resize, normalisation, inference, decoding). An image that cannot be read prints an
//! error naming the file (on stderr; with `--json` also as
//! `{"image": ..., "error": ...}` on stdout) and the run goes on with the
//! others; the command fails at the end if any image failed.
//!
//! The default model is `models/nanodet-m-320.toml` under the current
//! directory, else `../../models/nanodet-m-320.toml` next to the executable
//! (which is the repository's `models/` for `target/{debug,release}/parkwatch-edge`).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;

use super::manifest::ModelManifest;
use super::nanodet::{OrtDetector, OrtDetectorOptions};
use super::{Detection, Detector, runtime};
use crate::image_io;

/// The model manifest used when `--model` is not given.
pub const DEFAULT_MODEL: &str = "models/nanodet-m-320.toml";

/// Where `detect` looks for its default model, in order: the current
/// directory's `models/nanodet-m-320.toml`, then
/// `<executable dir>/../../models/nanodet-m-320.toml`.
pub fn default_model_candidates() -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from(DEFAULT_MODEL)];
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        out.push(dir.join("../..").join(DEFAULT_MODEL));
    }
    out
}

/// The first existing default model candidate, or the first candidate (so
/// the error that follows names it).
pub fn default_model_path() -> PathBuf {
    let candidates = default_model_candidates();
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_MODEL))
}

#[derive(Serialize)]
struct JsonDetection<'a> {
    class: &'a str,
    class_id: usize,
    score: f64,
    #[serde(rename = "box")]
    bbox: [f64; 4],
}

#[derive(Serialize)]
struct JsonImage<'a> {
    image: &'a str,
    width: u32,
    height: u32,
    detect_ms: f64,
    detections: Vec<JsonDetection<'a>>,
}

#[derive(Serialize)]
struct JsonFailure<'a> {
    image: &'a str,
    error: String,
}

fn round_to(v: f32, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (f64::from(v) * f).round() / f
}

/// Runs the `detect` command, printing to stdout; see the module documentation.
pub fn run_detect_command(
    model: &Path,
    images: &[PathBuf],
    json: bool,
    onnxruntime: Option<&Path>,
) -> anyhow::Result<()> {
    // swscale warns about JPEG's "deprecated" full-range pixel formats;
    // this command is a whole process of its own, so quieten FFmpeg.
    ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Error);
    let stdout = std::io::stdout();
    run_detect(model, images, json, onnxruntime, &mut stdout.lock())
}

/// [`run_detect_command`] writing to `out` (errors also go to stderr).
pub fn run_detect(
    model: &Path,
    images: &[PathBuf],
    json: bool,
    onnxruntime: Option<&Path>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let manifest = ModelManifest::load(model)?;
    let rt = runtime::init(onnxruntime)?;
    let mut detector = OrtDetector::load(rt, &manifest, &OrtDetectorOptions::default())
        .with_context(|| format!("loading model {}", model.display()))?;
    let mut failed = 0usize;
    if !json {
        let (name, version) = detector.model();
        writeln!(
            out,
            "model {name} ({version}), input {:?}, score >= {}",
            detector.input_size(),
            detector.score_threshold()
        )?;
    }
    for path in images {
        let shown = path.display().to_string();
        let result = image_io::decode_image(path)
            .map_err(anyhow::Error::from)
            .and_then(|img| {
                let dets = detector.detect(&img.as_frame(), (img.width(), img.height()))?;
                Ok((img.width(), img.height(), dets))
            });
        match result {
            Ok((w, h, dets)) => {
                let ms = detector.last_timings().total().as_secs_f64() * 1000.0;
                if json {
                    print_json(out, &shown, w, h, ms, &dets)?;
                } else {
                    print_table(out, &shown, w, h, ms, &dets)?;
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {shown}: {e:#}");
                if json {
                    serde_json::to_writer(
                        &mut *out,
                        &JsonFailure {
                            image: &shown,
                            error: format!("{e:#}"),
                        },
                    )?;
                    writeln!(out)?;
                }
            }
        }
        out.flush()?;
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} images failed", images.len());
    }
    Ok(())
}

fn print_json(
    out: &mut impl Write,
    image: &str,
    w: u32,
    h: u32,
    ms: f64,
    dets: &[Detection],
) -> anyhow::Result<()> {
    let line = JsonImage {
        image,
        width: w,
        height: h,
        detect_ms: (ms * 100.0).round() / 100.0,
        detections: dets
            .iter()
            .map(|d| JsonDetection {
                class: &d.class,
                class_id: d.class_id,
                score: round_to(d.score, 4),
                bbox: d.bbox.map(|v| round_to(v, 1)),
            })
            .collect(),
    };
    serde_json::to_writer(&mut *out, &line)?;
    writeln!(out)?;
    Ok(())
}

fn print_table(
    out: &mut impl Write,
    image: &str,
    w: u32,
    h: u32,
    ms: f64,
    dets: &[Detection],
) -> anyhow::Result<()> {
    writeln!(
        out,
        "{image}: {w}x{h}, {} detections, {ms:.1} ms",
        dets.len()
    )?;
    if !dets.is_empty() {
        writeln!(
            out,
            "  {:<16} {:>5}  {:>7} {:>7} {:>7} {:>7}",
            "class", "score", "x1", "y1", "x2", "y2"
        )?;
    }
    for d in dets {
        let [x1, y1, x2, y2] = d.bbox;
        writeln!(
            out,
            "  {:<16} {:>5.2}  {x1:>7.1} {y1:>7.1} {x2:>7.1} {y2:>7.1}",
            &*d.class, d.score
        )?;
    }
    Ok(())
}
