//! Edge config files: the example validates, and each kind of fault is
//! reported once with its file, line and key.

use std::path::{Path, PathBuf};

use parkwatch_config::{
    CameraKind, Direction, RuleKind, Severity, load_edge_config, parse_edge_config,
};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/edge-local.toml")
}

const BASE: &str = r#"edge_id = "edge-t"
site = "etdz"

[[cameras]]
id = "cam-1"
url = "rtsp://viewer:secret@10.20.1.11:554/Streaming/Channels/101"
  [[cameras.zones]]
  id = "walkway"
  polygon = [[0.1, 0.5], [0.9, 0.5], [0.9, 1.0], [0.1, 1.0]]
  [[cameras.lines]]
  id = "gate"
  points = [[0.2, 0.6], [0.8, 0.6]]
  [[cameras.rules]]
  id = "r1"
  kind = "intrusion"
  zone = "walkway"
  classes = ["person"]
  [[cameras.rules]]
  id = "r2"
  kind = "line_crossing"
  line = "gate"
  classes = ["person", "bicycle"]
  direction = "a_to_b"
"#;

/// Parses `text` as an edge file and returns (line, key, message) of every problem.
fn problems(text: &str) -> Vec<(usize, String, String)> {
    match parse_edge_config(text, Path::new("edges/edge-t.toml")) {
        Ok(_) => Vec::new(),
        Err(p) => {
            p.0.into_iter()
                .map(|p| (p.line, p.key, p.message))
                .collect()
        }
    }
}

fn keys(text: &str) -> Vec<(usize, String)> {
    problems(text).into_iter().map(|(l, k, _)| (l, k)).collect()
}

#[test]
fn example_config_validates_with_defaults_filled_in() {
    let cfg = load_edge_config(&example()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.edge_id, "edge-local");
    assert_eq!(cfg.mqtt.port, 1883);
    assert_eq!(cfg.mqtt.topic_prefix, "parkwatch");
    assert_eq!(cfg.telemetry.interval_secs, 10.0);
    let cam = &cfg.cameras[0];
    assert_eq!(cam.url, "rtsp://127.0.0.1:8554/cam1");
    assert_eq!(cam.kind, CameraKind::Fixed);
    assert!(cam.enabled);
    assert_eq!(cam.rules.len(), 2);
    assert_eq!(cam.rules[1].kind, RuleKind::Dwell);
    assert_eq!(cam.rules[1].hold_secs(), 30.0);
    assert_eq!(cam.rules[0].severity, Severity::Major);
    assert!(cfg.outbox_dir().ends_with("target/outbox/edge-local"));
    assert!(
        cfg.outbox_dir()
            .starts_with(example().parent().unwrap_or(Path::new("/")))
    );
}

#[test]
fn base_is_valid_and_defaults_apply() {
    assert_eq!(problems(BASE), vec![]);
    let cfg =
        parse_edge_config(BASE, Path::new("edges/edge-t.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cfg.outbox_dir(),
        PathBuf::from("/var/lib/parkwatch/outbox/edge-t")
    );
    assert_eq!(cfg.cameras[0].rules[1].direction, Direction::AToB);
    assert_eq!(cfg.metrics.listen_addr().map(|a| a.port()), Some(9108));
    assert_eq!(cfg.cameras[0].detect_fps, 5.0);
    assert_eq!(cfg.cameras[0].stale_after().as_secs(), 10);
}

#[test]
fn redacted_url_hides_only_the_password() {
    let cfg = parse_edge_config(BASE, Path::new("e.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cfg.cameras[0].redacted_url(),
        "rtsp://viewer:***@10.20.1.11:554/Streaming/Channels/101"
    );
    let r = parkwatch_config::edge::redact_url;
    assert_eq!(r("rtsp://10.0.0.1/a@b"), "rtsp://10.0.0.1/a@b");
    assert_eq!(r("rtsp://user@h/x"), "rtsp://user@h/x");
    assert_eq!(r("rtsps://u:p@ss:w@h:322/x"), "rtsps://u:***@h:322/x");
}

#[test]
fn a_bad_url_is_reported_without_its_password() {
    let text = BASE.replace("rtsp://viewer:secret@", "http://viewer:secret@");
    let p = problems(&text);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!((p[0].0, p[0].1.as_str()), (6, "cameras[0].url"));
    assert!(!p[0].2.contains("secret"), "{}", p[0].2);
}

#[test]
fn several_unknown_keys_are_all_reported() {
    let text = BASE
        .replace("site = \"etdz\"", "site = \"etdz\"\nsiet = 1")
        .replace("  id = \"r1\"", "  id = \"r1\"\n  zoen = \"walkway\"")
        .replace("[[cameras]]", "[mqtt]\nhots = \"x\"\n\n[[cameras]]");
    let mut got = keys(&text);
    got.sort();
    assert_eq!(
        got,
        vec![
            (3, "siet".to_string()),
            (6, "mqtt.hots".to_string()),
            (19, "cameras[0].rules[0].zoen".to_string())
        ]
    );
}

#[test]
fn semantic_faults_are_each_reported_once_at_their_key() {
    let text = BASE
        .replace("[0.9, 0.5], [0.9, 1.0]", "[1.2, 0.5], [0.9, 1.0]")
        .replace("zone = \"walkway\"", "zone = \"walkwya\"")
        .replace(
            "classes = [\"person\", \"bicycle\"]",
            "classes = [\"person\", \"bike\"]",
        )
        .replace(
            "direction = \"a_to_b\"",
            "direction = \"a_to_b\"\n  min_count = 3",
        );
    let got = keys(&text);
    assert_eq!(
        got,
        vec![
            (9, "cameras[0].zones[0].polygon[1]".to_string()),
            (16, "cameras[0].rules[0].zone".to_string()),
            (22, "cameras[0].rules[1].classes[1]".to_string()),
            (24, "cameras[0].rules[1].min_count".to_string()),
        ]
    );
}

#[test]
fn kind_specific_requirements() {
    let text = format!(
        "{BASE}  [[cameras.rules]]\n  id = \"crowd\"\n  kind = \"crowd\"\n  zone = \"walkway\"\n  classes = [\"person\"]\n  [[cameras.rules]]\n  id = \"dw\"\n  kind = \"dwell\"\n  zone = \"walkway\"\n  classes = [\"person\"]\n"
    );
    let got = problems(&text);
    let got: Vec<_> = got
        .iter()
        .map(|(l, k, m)| (*l, k.as_str(), m.contains("need")))
        .collect();
    assert_eq!(
        got,
        vec![
            (24, "cameras[0].rules[2].min_count", true),
            (29, "cameras[0].rules[3].seconds", true)
        ]
    );
}

#[test]
fn self_intersecting_zone_and_duplicate_ids() {
    let text = BASE
        .replace(
            "[[0.1, 0.5], [0.9, 0.5], [0.9, 1.0], [0.1, 1.0]]",
            "[[0.1, 0.5], [0.9, 1.0], [0.9, 0.5], [0.1, 1.0]]",
        )
        .replace("id = \"r2\"", "id = \"r1\"")
        .replace("id = \"gate\"", "id = \"walkway\"")
        .replace("line = \"gate\"", "line = \"walkway\"");
    let got = keys(&text);
    assert_eq!(
        got,
        vec![
            (9, "cameras[0].zones[0].polygon".to_string()),
            (11, "cameras[0].lines[0].id".to_string()),
            (19, "cameras[0].rules[1].id".to_string()),
        ]
    );
}

#[test]
fn wrong_types_and_enum_values_point_at_the_value() {
    // A bad enum value in a required key, a bad type in a defaulted one and
    // a missing required key: each reported once, none hiding the others.
    let text = BASE
        .replace("kind = \"intrusion\"", "kind = \"intruder\"")
        .replace("site = \"etdz\"\n", "")
        + "\n[telemetry]\ninterval_secs = \"ten\"\n";
    let got = problems(&text);
    let ks: Vec<_> = got.iter().map(|(l, k, _)| (*l, k.as_str())).collect();
    assert_eq!(
        ks,
        vec![
            (0, "site"),
            (14, "cameras[0].rules[0].kind"),
            (25, "telemetry.interval_secs")
        ],
        "{got:?}"
    );
    assert!(got[1].2.contains("unknown variant `intruder`"), "{got:?}");
}

#[test]
fn a_zone_that_cannot_be_read_does_not_also_fail_its_rules() {
    let text = BASE.replace("[0.9, 0.5], [0.9, 1.0]", "[0.9, \"x\"], [0.9, 1.0]");
    assert_eq!(
        keys(&text),
        vec![(9, "cameras[0].zones[0].polygon[1][1]".to_string())]
    );
}

#[test]
fn sensors_are_checked() {
    let text = format!(
        r#"{BASE}
[[sensors]]
id = "s1"
kind = "pm25"
address = "10.20.1.50:502"
register = 65535
data_type = "f32"
scale = 0.1
  [sensors.threshold]
  above = 75.0
  below = 80.0

[[sensors]]
id = "cam-1"
kind = "noise"
address = "10.20.1.50"
register = 3
word_order = "little"
poll_secs = 60
"#
    );
    let got = keys(&text);
    assert_eq!(
        got,
        vec![
            (29, "sensors[0].register".to_string()),
            (34, "sensors[0].threshold.below".to_string()),
            // Absent key (defaulted): reported at its table's header.
            (36, "sensors[1].offline_after_secs".to_string()),
            (37, "sensors[1].id".to_string()),
            (39, "sensors[1].address".to_string()),
            (41, "sensors[1].word_order".to_string()),
        ]
    );
}

#[test]
fn line_direction_is_left_to_right_of_a_to_b() {
    let cfg = parse_edge_config(BASE, Path::new("e.toml")).unwrap_or_else(|e| panic!("{e}"));
    let line = &cfg.cameras[0].lines[0]; // (0.2,0.6) -> (0.8,0.6), left to right on screen
    let above = line.side([0.5, 0.4]);
    let below = line.side([0.5, 0.8]);
    assert!(above < 0.0 && below > 0.0);
    assert!(
        Direction::AToB.counts(above, below),
        "moving down the image is a_to_b"
    );
    assert!(!Direction::AToB.counts(below, above));
    assert!(Direction::BToA.counts(below, above));
    assert!(Direction::Both.counts(below, above));
}

#[test]
fn a_dollar_topic_prefix_is_rejected_like_the_protocol_does() {
    // The protocol's prefix rule (what ingest parses topics with) is the
    // one rule: brokers reserve `$` topics, so `$park` must not pass here.
    let text = BASE.replace(
        "[[cameras]]",
        "[mqtt]\ntopic_prefix = \"$park\"\n\n[[cameras]]",
    );
    let err = parse_edge_config(&text, Path::new("edges/edge-t.toml")).unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    assert_eq!(
        err.to_string(),
        "edges/edge-t.toml:5: mqtt.topic_prefix: \"$park\" starts with '$', which brokers reserve"
    );
    assert!(parkwatch_protocol::validate_prefix("$park").is_err());
    // What both accept, both accept.
    let ok = BASE.replace(
        "[[cameras]]",
        "[mqtt]\ntopic_prefix = \"acme/park$\"\n\n[[cameras]]",
    );
    assert_eq!(problems(&ok), Vec::new());
}
