//! Tests against the real model, ONNX Runtime and video.
//!
//! They need `models/nanodet-m-320.toml` with its weights (the setup script
//! copies them), ONNX Runtime (`/opt/parkwatch/lib/libonnxruntime.so` or
//! `ORT_DYLIB_PATH`), the `ffmpeg` CLI and `../shared/media/vtest.avi`; each
//! fails with a message saying which is missing rather than skipping.
//!
//! An integration test, so that the detector module itself never needs the
//! image files helper ([`image_io`]) that decodes the test pictures. The
//! `detect` command's own test is beside it in the binary (`cmds::detect`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use parkwatch_edge::detect::{
    BgrImage, DetectRequest, Detection, Detector, DetectorPool, OrtDetector, OrtDetectorOptions,
    PoolConfig, runtime,
};
use parkwatch_edge::image_io;
use parkwatch_edge_logic::manifest::ModelManifest;

#[path = "support/vtest.rs"]
mod vtest;
use vtest::{check_frame_100, repo, vtest_frame};

fn manifest(name: &str) -> ModelManifest {
    let path = repo().join("models").join(name);
    let m = ModelManifest::load(&path)
        .unwrap_or_else(|e| panic!("model manifest needed for this test: {e}"));
    assert!(
        m.file.is_file(),
        "weights {} missing: run deploy/setup.sh (it copies them from ../shared/models)",
        m.file.display()
    );
    m
}

fn detector(name: &str) -> OrtDetector {
    let rt =
        runtime::init(None).unwrap_or_else(|e| panic!("ONNX Runtime needed for this test: {e}"));
    OrtDetector::load(rt, &manifest(name), &OrtDetectorOptions::default())
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn nanodet_320_finds_people_and_the_van_in_vtest_frame_100() {
    let dir = tempfile::tempdir().unwrap();
    let image = image_io::decode_image(&vtest_frame(dir.path(), 100)).unwrap();
    assert_eq!((image.width(), image.height()), (768, 576));
    let mut det = detector("nanodet-m-320.toml");
    // Full-size frame: resized inside the detector.
    let dets = det.detect(&image.as_frame(), (768, 576)).unwrap();
    check_frame_100(&dets, 768.0, 576.0);

    // The pipeline's way: the frame already scaled to the letterbox size.
    let lb = det.letterbox(768, 576);
    assert_eq!((lb.scaled_w, lb.scaled_h), (320, 240));
    let scaled = scale_with_ffmpeg(dir.path(), 100, lb.scaled_w, lb.scaled_h);
    let dets_scaled = det.detect(&scaled.as_frame(), (768, 576)).unwrap();
    check_frame_100(&dets_scaled, 768.0, 576.0);
    let count = |d: &[Detection]| d.iter().filter(|d| &*d.class == "person").count() as i64;
    assert!(
        (count(&dets) - count(&dets_scaled)).abs() <= 2,
        "{dets:#?}\nvs\n{dets_scaled:#?}"
    );
}

fn scale_with_ffmpeg(dir: &Path, n: u32, w: u32, h: u32) -> BgrImage {
    let video = repo().join("../shared/media/vtest.avi");
    let out = dir.join(format!("vtest-{n}-{w}x{h}.png"));
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&video)
        .args([
            "-vf",
            &format!("select=eq(n\\,{n}),scale={w}:{h}:flags=bilinear"),
            "-frames:v",
            "1",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    image_io::decode_image(&out).unwrap()
}

#[test]
fn nanodet_416_agrees_on_frame_100() {
    let dir = tempfile::tempdir().unwrap();
    let image = image_io::decode_image(&vtest_frame(dir.path(), 100)).unwrap();
    let mut det = detector("nanodet-m-416.toml");
    assert_eq!(det.input_size(), (416, 416));
    let dets = det.detect(&image.as_frame(), (768, 576)).unwrap();
    check_frame_100(&dets, 768.0, 576.0);
}

#[test]
fn manifest_weights_match_their_sha256() {
    for name in ["nanodet-m-320.toml", "nanodet-m-416.toml"] {
        let m = manifest(name);
        m.verify_sha256().unwrap();
        assert_eq!(m.load_labels().unwrap()[7].as_ref(), "truck");
    }
}

#[test]
fn tampered_weights_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = manifest("nanodet-m-320.toml");
    let copy = dir.path().join("w.onnx");
    let mut bytes = std::fs::read(&m.file).unwrap();
    bytes[1000] ^= 1;
    std::fs::write(&copy, bytes).unwrap();
    m.file = copy;
    let err = m.verify_sha256().unwrap_err().to_string();
    assert!(err.contains("w.onnx") && err.contains(&m.sha256), "{err}");
}

#[test]
fn wrong_input_name_is_reported_with_the_real_names() {
    let rt =
        runtime::init(None).unwrap_or_else(|e| panic!("ONNX Runtime needed for this test: {e}"));
    let mut m = manifest("nanodet-m-320.toml");
    m.input.name = "images".into();
    let err = OrtDetector::load(rt, &m, &OrtDetectorOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"images\"") && err.contains("\"image\""),
        "{err}"
    );
}

#[test]
fn pool_serves_two_cameras_with_the_real_model() {
    let rt =
        runtime::init(None).unwrap_or_else(|e| panic!("ONNX Runtime needed for this test: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let image = image_io::decode_image(&vtest_frame(dir.path(), 100)).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let config = PoolConfig {
        workers: 2,
        detector: OrtDetectorOptions {
            intra_threads: 1,
            ..Default::default()
        },
    };
    let pool =
        DetectorPool::from_manifest(rt, &manifest("nanodet-m-320.toml"), &config, tx).unwrap();
    assert_eq!(pool.workers(), 2);
    for camera in ["gate-1", "gate-2"] {
        let request = DetectRequest {
            camera: camera.into(),
            frame: image.clone(),
            source: (768, 576),
            seq: 100,
            captured_at: std::time::Instant::now(),
        };
        pool.submit(request).unwrap();
    }
    let mut cameras = Vec::new();
    for _ in 0..2 {
        let result = rx.blocking_recv().unwrap();
        check_frame_100(&result.detections.unwrap(), 768.0, 576.0);
        assert!(result.inference > std::time::Duration::ZERO);
        cameras.push(result.camera.to_string());
    }
    cameras.sort();
    assert_eq!(cameras, vec!["gate-1", "gate-2"]);
    pool.shutdown();
}
