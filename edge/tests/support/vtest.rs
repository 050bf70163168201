//! Test media shared by the `detect` command's unit test (in the binary,
//! `src/cmds/detect.rs`) and `tests/real_detector.rs`: where the repository
//! is, a frame of `../shared/media/vtest.avi` as a PNG, and the checks every
//! detection of frame 100 must pass. Included with `#[path]` by both, so the
//! library ships no test code.
//!
//! Needs the `ffmpeg` CLI and the video; fails saying which is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use parkwatch_edge::detect::Detection;

/// The repository's root (the workspace, one above `edge/`).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Extracts frame `n` (0-based) of vtest.avi to a PNG in `dir`.
pub fn vtest_frame(dir: &Path, n: u32) -> PathBuf {
    let video = repo().join("../shared/media/vtest.avi");
    assert!(video.is_file(), "test video {} missing", video.display());
    let out = dir.join(format!("vtest-{n}.png"));
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&video)
        .args(["-vf", &format!("select=eq(n\\,{n})"), "-frames:v", "1"])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("the ffmpeg CLI is needed for this test: {e}"));
    assert!(
        status.success() && out.is_file(),
        "ffmpeg could not extract frame {n}"
    );
    out
}

/// What frame 100 must show: several people, the parked car or van at the top
/// right, and every box inside the `w` x `h` frame with a score in range.
pub fn check_frame_100(dets: &[Detection], w: f32, h: f32) {
    let people: Vec<_> = dets
        .iter()
        .filter(|d| &*d.class == "person" && d.score >= 0.35)
        .collect();
    assert!(people.len() >= 5, "expected several people, got {dets:#?}");
    // The parked van and car are at the top right of the view.
    let vehicle = dets.iter().find(|d| {
        let cx = (d.bbox[0] + d.bbox[2]) / 2.0;
        let cy = (d.bbox[1] + d.bbox[3]) / 2.0;
        matches!(&*d.class, "car" | "truck") && cx > w * 0.5 && cy < h * 0.5
    });
    assert!(
        vehicle.is_some(),
        "expected a car or truck at the top right, got {dets:#?}"
    );
    for d in dets {
        let [x1, y1, x2, y2] = d.bbox;
        assert!(
            0.0 <= x1 && x1 < x2 && x2 <= w && 0.0 <= y1 && y1 < y2 && y2 <= h,
            "box outside the frame: {d:?}"
        );
        assert!((0.35..=1.0).contains(&d.score), "{d:?}");
    }
}
