//! `parkwatch-edge detect` on frames of the real video: frames 100 and 500
//! of the OpenCV campus clip are cut out with the `ffmpeg` CLI, and the
//! detector (NanoDet-m through ONNX Runtime) must find the people and the
//! parked van where a person looking at the frames sees them. A corrupt
//! image is reported by name while the other images are still processed.

use std::path::{Path, PathBuf};

use parkwatch_tests::stack::edge_command;
use parkwatch_tests::{Finished, ffmpeg, media, model_manifest, run_ok, run_to_end, shared_dir};
use serde_json::Value;

/// The clip as shipped (`../shared/media/vtest.avi`), else the transcoded
/// copy made by `deploy/setup.sh`.
fn source_video() -> PathBuf {
    let avi = shared_dir().join("media").join("vtest.avi");
    if avi.is_file() {
        avi
    } else {
        media("vtest-h264.mp4")
    }
}

/// Extracts frame `index` (0-based, in decode order) of `video` to `out` as PNG.
fn extract_frame(video: &Path, index: u32, out: &Path) {
    let what = format!("extracting frame {index} of {}", video.display());
    run_ok(
        ffmpeg()
            .arg("-i")
            .arg(video)
            .args([
                "-vf",
                &format!("select=eq(n\\,{index})"),
                "-vsync",
                "0",
                "-frames:v",
                "1",
            ])
            .arg(out),
        &what,
    );
    assert!(out.is_file(), "{what}: no {}", out.display());
}

/// One detection as `detect --json` prints it.
#[derive(Debug)]
struct Found {
    class: String,
    score: f64,
    bbox: [f64; 4],
}

impl Found {
    fn contains(&self, (x, y): (f64, f64)) -> bool {
        let [x1, y1, x2, y2] = self.bbox;
        x1 <= x && x <= x2 && y1 <= y && y <= y2
    }
}

fn detections(line: &Value) -> Vec<Found> {
    line["detections"]
        .as_array()
        .unwrap_or_else(|| panic!("no detections array in {line}"))
        .iter()
        .map(|d| {
            let b = d["box"]
                .as_array()
                .unwrap_or_else(|| panic!("no box in {d}"));
            assert_eq!(b.len(), 4, "box of 4 numbers: {d}");
            let n = |i: usize| {
                b[i].as_f64()
                    .unwrap_or_else(|| panic!("box not numbers: {d}"))
            };
            Found {
                class: d["class"].as_str().unwrap_or_default().to_owned(),
                score: d["score"].as_f64().unwrap_or(-1.0),
                bbox: [n(0), n(1), n(2), n(3)],
            }
        })
        .collect()
}

/// Checks what holds for every frame of this scene and returns the
/// confident people.
#[track_caller]
fn check_frame(line: &Value, name: &str) -> Vec<Found> {
    assert!(
        line["image"].as_str().is_some_and(|i| i.ends_with(name)),
        "{line}"
    );
    assert_eq!(line["width"], 768, "{line}");
    assert_eq!(line["height"], 576, "{line}");
    let all = detections(line);
    for d in &all {
        let [x1, y1, x2, y2] = d.bbox;
        assert!(
            (0.0..=768.0).contains(&x1)
                && (0.0..=768.0).contains(&x2)
                && (0.0..=576.0).contains(&y1)
                && (0.0..=576.0).contains(&y2)
                && x1 < x2
                && y1 < y2,
            "{name}: box outside the 768x576 image or empty: {d:?}"
        );
        assert!((0.0..=1.0).contains(&d.score), "{name}: score {d:?}");
    }
    let people: Vec<Found> = all
        .into_iter()
        .filter(|d| d.class == "person" && d.score >= 0.35)
        .collect();
    assert!(
        people.len() >= 4,
        "{name}: {} people with score >= 0.35, want at least 4: {people:?}",
        people.len()
    );
    people
}

#[track_caller]
fn assert_person_at(people: &[Found], point: (f64, f64), name: &str, who: &str) {
    assert!(
        people.iter().any(|p| p.contains(point)),
        "{name}: no person box contains {point:?} ({who}); people found: {people:?}"
    );
}

/// The JSON lines of `detect --json`, one per image: `images` of them.
#[track_caller]
fn json_lines(stdout: &str, images: usize) -> Vec<Value> {
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(lines.len(), images, "one line per image: {stdout}");
    lines
}

/// `parkwatch-edge detect --json` with NanoDet-m on `images`.
fn detect(images: &[&Path]) -> Finished {
    run_to_end(
        edge_command("detect")
            .arg("--json")
            .arg("--model")
            .arg(model_manifest("nanodet-m-320"))
            .args(images),
    )
}

#[test]
fn detect_finds_people_and_the_van_where_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let video = source_video();
    let f100 = dir.path().join("frame-100.png");
    let f500 = dir.path().join("frame-500.png");
    extract_frame(&video, 100, &f100);
    extract_frame(&video, 500, &f500);

    let Finished {
        status,
        stdout,
        stderr,
    } = detect(&[&f100, &f500]);
    assert!(
        status.success(),
        "detect failed: {status}\nstdout: {stdout}\nstderr: {stderr}"
    );
    let lines = json_lines(&stdout, 2);

    // Frame 100: a group of people in the middle of the walkway (a woman in
    // dark clothes and a man facing her, left of the lamp post), a man
    // walking on the right, and the white van parked at the top right.
    let people = check_frame(&lines[0], "frame-100.png");
    assert_person_at(
        &people,
        (362.0, 240.0),
        "frame 100",
        "woman left of the lamp post",
    );
    assert_person_at(&people, (394.0, 220.0), "frame 100", "man beside her");
    assert_person_at(
        &people,
        (603.0, 195.0),
        "frame 100",
        "man walking on the right",
    );
    let all = detections(&lines[0]);
    assert!(
        all.iter()
            .any(|d| ["car", "truck"].contains(&d.class.as_str())
                && d.score >= 0.35
                && d.contains((690.0, 70.0))),
        "frame 100: the parked white van at (690, 70) is not found as car or truck: {all:?}"
    );

    // Frame 500: the woman in red on the left, two men and a woman on the
    // right of the walkway.
    let people = check_frame(&lines[1], "frame-500.png");
    assert_person_at(&people, (320.0, 230.0), "frame 500", "woman in red");
    assert_person_at(&people, (586.0, 335.0), "frame 500", "man in front");
    assert_person_at(&people, (626.0, 320.0), "frame 500", "woman on the right");
}

#[test]
fn a_corrupt_image_is_named_and_the_others_still_run() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("frame-100.png");
    extract_frame(&source_video(), 100, &good);
    // A PNG signature followed by garbage, as a truncated upload would be.
    let corrupt = dir.path().join("corrupt-upload.png");
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    std::fs::write(&corrupt, &bytes).unwrap();

    let Finished {
        status,
        stdout,
        stderr,
    } = detect(&[&corrupt, &good]);
    assert!(
        !status.success(),
        "a corrupt image must fail the command\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("error") && l.contains("corrupt-upload.png")),
        "no error line naming the corrupt file on stderr: {stderr}"
    );
    let lines = json_lines(&stdout, 2);
    assert!(
        lines[0]["image"]
            .as_str()
            .is_some_and(|i| i.ends_with("corrupt-upload.png"))
            && lines[0]["error"].as_str().is_some_and(|e| !e.is_empty()),
        "the corrupt image's line names it with an error: {}",
        lines[0]
    );
    // The good image after it was still detected.
    check_frame(&lines[1], "frame-100.png");
}
