//! bench-decode: software decode speed per stream, and the cost of the
//! conversions the pipeline does per detected frame.
//!
//! ```sh
//! cargo run --release -p parkwatch-edge --bin bench-decode -- [--seconds 20]
//! ```
//!
//! Decodes H.264 renditions of the test video at 640x360, 1280x720 and
//! 1920x1080 (made from `.cache/media/vtest-h264.mp4` with the `ffmpeg` CLI
//! on first use: libx264, preset veryfast, CRF 23, 10 fps, GOP 10, no
//! B-frames, like a camera) on ONE decoder thread, as the edge does per
//! camera, and prints frames per second. Then it times what the pipeline
//! does to a frame that goes to the detector: the motion-gate thumbnail and
//! the swscale conversion into the 320 model's letterbox, plus the
//! snapshot-size copy.
//!
//! The higher resolutions are upscaled from the 768x576 original, so they
//! hold less detail than a real 1080p camera and decode somewhat faster.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail};
use ffmpeg_next as ffmpeg;
use parkwatch_edge::analytics::prep::{FrameScaler, snapshot_size};
use parkwatch_edge::decode::init_ffmpeg;
use parkwatch_edge_logic::gate::{GateConfig, MotionGate};
use parkwatch_edge_logic::letterbox::Letterbox;

fn main() -> anyhow::Result<()> {
    let mut seconds = 20.0f64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .context("--seconds takes a number")?;
            }
            other => bail!("unknown argument {other}; usage: bench-decode [--seconds N]"),
        }
    }
    init_ffmpeg()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let media = root.join(".cache/media");
    let source = media.join("vtest-h264.mp4");
    if !source.is_file() {
        bail!("{} missing: run deploy/setup.sh", source.display());
    }
    println!("bench-decode: one decoder thread per stream, H.264, {seconds} s of video each");
    println!(
        "{:<12} {:>10} {:>12} {:>14}",
        "resolution", "frames", "decode fps", "ms per frame"
    );
    for (w, h) in [(640u32, 360u32), (1280, 720), (1920, 1080)] {
        let file = rendition(&source, &media, w, h)?;
        let (frames, secs) = decode_file(&file, seconds)?;
        println!(
            "{:<12} {:>10} {:>12.0} {:>14.2}",
            format!("{w}x{h}"),
            frames,
            frames as f64 / secs,
            secs * 1000.0 / frames.max(1) as f64
        );
    }
    println!();
    println!("per detected frame (from 768x576 YUV420):");
    conversions(&source)?;
    Ok(())
}

/// The test video re-encoded at `w` x `h`, made once.
fn rendition(source: &Path, media: &Path, w: u32, h: u32) -> anyhow::Result<PathBuf> {
    let out = media.join(format!("bench-{w}x{h}-h264.mp4"));
    if out.is_file() {
        return Ok(out);
    }
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-i"])
        .arg(source)
        .args(["-vf", &format!("scale={w}:{h}")])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-r", "10",
        ])
        .args(["-g", "10", "-bf", "0", "-pix_fmt", "yuv420p", "-an"])
        .arg(&out)
        .status()
        .context("running ffmpeg")?;
    if !status.success() {
        bail!("ffmpeg failed making {}", out.display());
    }
    Ok(out)
}

/// Decodes `file` (looping) until `seconds` of video were decoded; returns
/// frames and wall seconds spent in the decoder.
fn decode_file(file: &Path, seconds: f64) -> anyhow::Result<(u64, f64)> {
    let want = (seconds * 10.0) as u64;
    let mut frames = 0u64;
    let mut busy = 0.0f64;
    while frames < want {
        let (mut input, index, mut decoder) = open_file(file)?;
        let mut frame = ffmpeg::frame::Video::empty();
        let packets: Vec<ffmpeg::Packet> = input
            .packets()
            .filter(|(s, _)| s.index() == index)
            .map(|(_, p)| p)
            .collect();
        let t = Instant::now();
        for p in &packets {
            if decoder.send_packet(p).is_err() {
                continue;
            }
            while decoder.receive_frame(&mut frame).is_ok() {
                frames += 1;
            }
            if frames >= want {
                break;
            }
        }
        busy += t.elapsed().as_secs_f64();
    }
    Ok((frames, busy))
}

/// Opens `file`: its demuxer, the index of its best video stream and a
/// decoder for that stream.
fn open_file(
    file: &Path,
) -> anyhow::Result<(
    ffmpeg::format::context::Input,
    usize,
    ffmpeg::decoder::Video,
)> {
    let path = file.to_str().context("path not UTF-8")?;
    let input = ffmpeg::format::input(path)?;
    let stream = input
        .streams()
        .best(ffmpeg::media::Type::Video)
        .context("no video")?;
    let index = stream.index();
    let decoder = file_decoder(&stream)?;
    Ok((input, index, decoder))
}

/// A single-threaded decoder for a file's stream (MP4 carries H.264 in
/// AVCC framing with its parameter sets in the stream's extradata; the live
/// path gets Annex B from retina and uses `open_decoder`).
fn file_decoder(
    stream: &ffmpeg::format::stream::Stream<'_>,
) -> anyhow::Result<ffmpeg::decoder::Video> {
    let mut ctx = ffmpeg::codec::context::Context::from_parameters(stream.parameters())?;
    ctx.set_threading(ffmpeg::codec::threading::Config {
        kind: ffmpeg::codec::threading::Type::None,
        count: 1,
        ..Default::default()
    });
    Ok(ctx.decoder().video()?)
}

fn conversions(source: &Path) -> anyhow::Result<()> {
    let (mut input, index, mut decoder) = open_file(source)?;
    let mut frames = Vec::new();
    for (s, p) in input.packets() {
        if s.index() != index {
            continue;
        }
        if decoder.send_packet(&p).is_ok() {
            let mut f = ffmpeg::frame::Video::empty();
            while decoder.receive_frame(&mut f).is_ok() {
                frames.push(f.clone());
            }
        }
        if frames.len() >= 200 {
            break;
        }
    }
    if frames.is_empty() {
        bail!("no frames decoded");
    }
    let (w, h) = (frames[0].width(), frames[0].height());
    let mut gate = MotionGate::new(GateConfig::default());
    let t = Instant::now();
    for f in &frames {
        gate.measure(f.data(0), f.stride(0), w as usize, h as usize);
    }
    let gate_us = t.elapsed().as_secs_f64() * 1e6 / frames.len() as f64;
    let lb = Letterbox::compute(w, h, 320, 320);
    let mut scaler = FrameScaler::new();
    let t = Instant::now();
    for f in &frames {
        scaler.to_bgr(f, lb.scaled_w, lb.scaled_h)?;
    }
    let lb_us = t.elapsed().as_secs_f64() * 1e6 / frames.len() as f64;
    let (sw, sh) = snapshot_size(w, h, 960);
    let t = Instant::now();
    for f in &frames {
        scaler.to_bgr(f, sw, sh)?;
    }
    let snap_us = t.elapsed().as_secs_f64() * 1e6 / frames.len() as f64;
    println!("  motion-gate thumbnail          {gate_us:>8.0} us");
    println!(
        "  letterbox BGR {}x{}         {lb_us:>8.0} us",
        lb.scaled_w, lb.scaled_h
    );
    println!("  snapshot copy BGR {sw}x{sh}     {snap_us:>8.0} us");
    Ok(())
}
