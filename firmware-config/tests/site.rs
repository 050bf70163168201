//! The etdz site: the committed data is valid, has the park's counts, is
//! reproduced exactly by its generator, and faults planted in a copy are
//! each reported once with the right file, line and key.

use std::path::{Path, PathBuf};
use std::process::Command;

use parkwatch_config::{AlarmKind, CameraKind, GridLevel, SensorKind, check_site, load_site};

fn etdz() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sites/etdz")
}

#[test]
fn etdz_is_valid_and_has_the_parks_counts() {
    let r = check_site(&etdz());
    let errors: Vec<String> = r.errors.iter().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    assert_eq!(r.cameras, 28);
    assert_eq!(r.panoramic, 4);
    assert_eq!(r.video_sources, 32);
    assert_eq!(r.points, 29);
    assert_eq!(r.edges, 29);
    assert_eq!(r.unit_grids, 636);
    assert_eq!(r.community_grids, 16);
    assert_eq!(r.responsibility_grids, 4);
    assert_eq!(r.workers, 120);
    assert!(r.event_types >= 30, "{}", r.event_types);
    let json = serde_json::to_value(&r).unwrap_or_default();
    assert_eq!(json["errors"], serde_json::json!([]));
    assert_eq!(json["unit_grids"], 636);
}

/// Every data file of the site (all but the generator and the README), relative.
fn data_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap_or_else(|e| panic!("{e}")).path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap_or(&p).to_path_buf();
                if !matches!(rel.to_str(), Some("generate.py" | "README.md")) {
                    out.push(rel);
                }
            }
        }
    }
    out.sort();
    out
}

#[test]
fn generator_reproduces_the_committed_files_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let status = Command::new("python3")
        .arg(etdz().join("generate.py"))
        .arg(tmp.path())
        .status()
        .unwrap_or_else(|e| panic!("python3 must be installed to run this test: {e}"));
    assert!(status.success(), "generate.py failed: {status}");
    let committed = data_files(&etdz());
    let generated = data_files(tmp.path());
    assert_eq!(
        committed, generated,
        "the generator writes a different set of files"
    );
    assert_eq!(committed.len(), 4 + 29);
    for rel in &committed {
        let a = std::fs::read(etdz().join(rel)).unwrap_or_default();
        let b = std::fs::read(tmp.path().join(rel)).unwrap_or_default();
        assert!(
            a == b,
            "{} differs from what generate.py writes; re-run it",
            rel.display()
        );
    }
}

/// Copies the etdz site into a fresh temporary directory.
fn copy_of_etdz() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for rel in data_files(&etdz()) {
        let to = tmp.path().join(&rel);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::copy(etdz().join(&rel), &to).unwrap_or_else(|e| panic!("{e}"));
    }
    tmp
}

/// Replaces the first occurrence of `from` (which must be there) in a
/// file and returns the 1-based line where the replacement starts.
fn edit(dir: &Path, rel: &str, from: &str, to: &str) -> usize {
    let path = dir.join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let at = text
        .find(from)
        .unwrap_or_else(|| panic!("{from:?} not in {rel}"));
    let line = text[..at].matches('\n').count() + 1;
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap_or_else(|e| panic!("{e}"));
    line
}

/// (file relative to the site, line, key) of every error.
fn errors(dir: &Path) -> Vec<(String, usize, String)> {
    let r = check_site(dir);
    r.errors
        .iter()
        .map(|p| {
            let rel = p
                .file
                .strip_prefix(dir)
                .unwrap_or(&p.file)
                .display()
                .to_string();
            (rel, p.line, p.key.clone())
        })
        .collect()
}

#[test]
fn each_planted_fault_is_one_error_with_file_line_and_key() {
    let tmp = copy_of_etdz();
    let dir = tmp.path();
    // (a) an unknown key
    let a = edit(
        dir,
        "edges/edge-p07.toml",
        "detect_fps = 5.0\n",
        "detect_fps = 5.0\ndetect_fsp = 3\n",
    ) + 1;
    // (b) a zone polygon point outside 0..1 (third point of P10's fire lane)
    let b = edit(dir, "edges/edge-p10.toml", "[0.55, 1.0]", "[1.55, 1.0]");
    // (c) a rule naming a zone its camera does not have
    let c = edit(
        dir,
        "edges/edge-p21.toml",
        "zone = \"bus-bay\"",
        "zone = \"bus-bays\"",
    );
    let mut got = errors(dir);
    got.sort();
    assert_eq!(
        got,
        vec![
            (
                "edges/edge-p07.toml".to_string(),
                a,
                "cameras[0].detect_fsp".to_string()
            ),
            (
                "edges/edge-p10.toml".to_string(),
                b,
                "cameras[0].zones[0].polygon[2]".to_string()
            ),
            (
                "edges/edge-p21.toml".to_string(),
                c,
                "cameras[0].rules[1].zone".to_string()
            ),
        ]
    );
    let r = check_site(dir);
    assert!(
        r.errors
            .iter()
            .any(|p| p.message.contains("unknown field `detect_fsp`"))
    );
    assert!(
        r.errors
            .iter()
            .any(|p| p.message.contains("no zone \"bus-bays\""))
    );
    // The printed form is file:line: key: message.
    let shown = r.errors[0].to_string();
    assert!(
        shown.contains(&format!("edge-p07.toml:{a}: cameras[0].detect_fsp: ")),
        "{shown}"
    );
}

#[test]
fn faults_across_files_are_reported_where_they_are() {
    let tmp = copy_of_etdz();
    let dir = tmp.path();
    // A unit grid (the first of community 990101004004) whose parent does not exist.
    let g = edit(
        dir,
        "grids.geojson",
        "\"parent\":\"990101004004\"",
        "\"parent\":\"990101004099\"",
    );
    let feature = g - 2; // line 1 opens the collection, then one feature per line
    // A worker assigned to a grid that does not exist.
    let w = edit(
        dir,
        "workers.toml",
        "grids = [\"99010100100101\"",
        "grids = [\"99010100100199\"",
    );
    // A catalogue item handled by an unknown department.
    let k = edit(
        dir,
        "catalogue.toml",
        "department = \"traffic\"",
        "department = \"trafic\"",
    );
    // An edge box at a point that is not in site.toml, and a duplicate camera id.
    let p = edit(
        dir,
        "edges/edge-p02.toml",
        "point = \"P02\"",
        "point = \"P92\"",
    );
    let d = edit(
        dir,
        "edges/edge-p03.toml",
        "id = \"cam-p03-1\"",
        "id = \"cam-p01-1\"",
    );
    let mut got = errors(dir);
    got.sort();
    let mut want = vec![
        (
            "catalogue.toml".to_string(),
            k,
            "items[4].department".to_string(),
        ),
        ("edges/edge-p02.toml".to_string(), p, "point".to_string()),
        (
            "edges/edge-p03.toml".to_string(),
            d,
            "cameras[0].id".to_string(),
        ),
        (
            "grids.geojson".to_string(),
            g,
            format!("features[{feature}].properties.parent"),
        ),
        (
            "workers.toml".to_string(),
            w,
            "workers[1].grids[0]".to_string(),
        ),
    ];
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn a_unit_grid_leaving_its_community_is_caught() {
    let tmp = copy_of_etdz();
    let dir = tmp.path();
    let text = std::fs::read_to_string(dir.join("grids.geojson")).unwrap_or_default();
    // The first unit grid (line 4, features[2]) is the north-west cell of
    // the park; its first vertex is its south-west corner on the park's west
    // edge. Move that vertex about 30 m west, out of its community.
    let line = text.lines().nth(3).unwrap_or_default().to_string();
    assert!(line.contains("\"level\":\"unit\""), "{line}");
    let start = line.find("[[[").map(|i| i + 3).unwrap_or(0);
    let end = start + line[start..].find(']').unwrap_or(0);
    let (lon, lat) = line[start..end].split_once(',').unwrap_or(("0", "0"));
    let lon: f64 = lon.parse().unwrap_or(0.0);
    let moved = format!("{:.7},{lat}", lon - 0.0003);
    // Keep the ring closed: the first position repeats at the end.
    let new_line = line.replace(&line[start..end], &moved);
    std::fs::write(dir.join("grids.geojson"), text.replace(&line, &new_line)).unwrap_or_default();
    let got = errors(dir);
    assert_eq!(
        got,
        vec![(
            "grids.geojson".to_string(),
            4,
            "features[2].geometry.coordinates[0][0]".to_string()
        )]
    );
}

#[test]
fn loaded_site_answers_the_questions_ingest_asks() {
    let site = load_site(&etdz()).unwrap_or_else(|e| panic!("{e}"));
    // Every camera's point lies in a unit grid with a worker.
    for p in &site.points {
        let unit = site
            .unit_grid_at([p.lon, p.lat])
            .unwrap_or_else(|| panic!("point {} not in a unit grid", p.id));
        let chain: Vec<GridLevel> = site
            .grid_chain(&unit.code)
            .iter()
            .map(|g| g.level)
            .collect();
        assert_eq!(
            chain,
            vec![
                GridLevel::Unit,
                GridLevel::Community,
                GridLevel::Responsibility
            ]
        );
        assert!(!site.workers_for_grid(&unit.code).is_empty());
    }
    // Every alarm kind files as an item with an existing department.
    for &kind in AlarmKind::ALL {
        let item = site
            .item_for(kind, None, None)
            .unwrap_or_else(|| panic!("{kind:?} unmapped"));
        assert!(site.department(&item.department).is_some());
    }
    let offline = site
        .item_for(AlarmKind::CameraOffline, None, None)
        .map(|i| i.department.as_str());
    assert_eq!(offline, Some("maintenance"));
    let gas = site.item_for(AlarmKind::SensorThreshold, None, Some(SensorKind::GasLel));
    assert_eq!(gas.map(|i| i.code.as_str()), Some("0401"));
    // Three points carry two sources: a panoramic system and a fixed camera.
    let doubles = site.edges.iter().filter(|e| e.cameras.len() == 2).count();
    assert_eq!(doubles, 3);
    assert!(site.edges.iter().all(|e| {
        e.cameras
            .iter()
            .filter(|c| c.kind == CameraKind::Panoramic)
            .count()
            <= 1
    }));
    // 2025 National Day is a holiday; the make-up Sunday before it is a working day.
    let d = |s: &str| {
        s.parse::<parkwatch_config::CivilDate>()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    assert!(!site.calendar.is_working_day(d("2025-10-01")));
    assert!(site.calendar.is_working_day(d("2025-09-28")));
}

#[test]
fn missing_or_unreadable_site_parts_become_errors_not_failures() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let r = check_site(tmp.path());
    let files: Vec<String> = r
        .errors
        .iter()
        .map(|p| {
            p.file
                .strip_prefix(tmp.path())
                .unwrap_or(&p.file)
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(
        files,
        vec![
            "catalogue.toml",
            "edges",
            "grids.geojson",
            "site.toml",
            "workers.toml"
        ]
    );
    assert_eq!(r.edges, 0);
    assert!(load_site(tmp.path()).is_err());
    let r = check_site(&tmp.path().join("nowhere"));
    assert_eq!(r.errors.len(), 1);
}
