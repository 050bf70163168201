//! Golden payloads: the committed files in `protocol/testdata/` are the
//! wire contract. Each test decodes a file with the production decoder,
//! checks it is exactly the sample value from `parkwatch_protocol::examples`,
//! and re-encodes it: JSON must be value-equal to the file, postcard
//! byte-equal.
//!
//! After a deliberate change to the samples or the encoding, regenerate the
//! files with
//! `PARKWATCH_BLESS=1 cargo test -p parkwatch-protocol --test golden`
//! and review the diff: a changed golden file is a changed contract.

// Test helpers: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use parkwatch_protocol::{
    AlarmEvent, DecodeError, TelemetryBatch, Validate, decode_ack, decode_alarm, decode_config_ack,
    decode_config_push, decode_status, decode_telemetry, encode_json, encode_telemetry, examples,
};
use serde::Serialize;
use serde_json::Value;

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn blessing() -> bool {
    std::env::var_os("PARKWATCH_BLESS").is_some_and(|v| v == "1")
}

fn read(name: &str) -> Vec<u8> {
    let p = path(name);
    std::fs::read(&p).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (regenerate with PARKWATCH_BLESS=1 cargo test -p parkwatch-protocol --test golden)",
            p.display()
        )
    })
}

fn write(name: &str, bytes: &[u8]) {
    std::fs::write(path(name), bytes).unwrap();
}

/// Pretty JSON for people, in field declaration order: one field a line,
/// but arrays of scalars (boxes, seq ranges, tag pairs) and one-member
/// objects of a scalar (field values) on one line.
fn pretty<T: Serialize>(v: &T) -> Vec<u8> {
    let mut lines: Vec<String> = serde_json::to_string_pretty(v)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    while let Some(collapsed) = collapse_once(&lines) {
        lines = collapsed;
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out.into_bytes()
}

/// Whether a pretty-printed line opens an array or object. Scalar lines
/// end in a quote, digit, literal or comma, never in `[` or `{`.
fn opens(line: &str) -> bool {
    line.ends_with('[') || line.ends_with('{')
}

/// Collapses the first collapsible array or object, if any.
fn collapse_once(lines: &[String]) -> Option<Vec<String>> {
    for (i, line) in lines.iter().enumerate() {
        if !opens(line) {
            continue;
        }
        let close =
            i + lines[i + 1..].iter().position(|l| {
                let t = l.trim_start();
                t.starts_with(']') || t.starts_with('}') || opens(l)
            })? + 1;
        if opens(&lines[close]) {
            continue; // something nested that is not flat (yet)
        }
        let inner: Vec<&str> = lines[i + 1..close]
            .iter()
            .map(|l| l.trim().trim_end_matches(','))
            .collect();
        if line.ends_with('{') && inner.len() != 1 {
            continue;
        }
        let mut out = lines[..i].to_vec();
        out.push(format!("{line}{}{}", inner.join(", "), lines[close].trim()));
        out.extend_from_slice(&lines[close + 1..]);
        return Some(out);
    }
    None
}

fn check_json<T>(name: &str, sample: T, decode: fn(&[u8]) -> Result<T, DecodeError>)
where
    T: Serialize + PartialEq + std::fmt::Debug,
{
    if blessing() {
        write(name, &pretty(&sample));
    }
    let file = read(name);
    let decoded = decode(&file).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(decoded, sample, "{name} no longer matches examples::*");
    let reencoded: Value = serde_json::from_slice(&encode_json(&decoded)).unwrap();
    let original: Value = serde_json::from_slice(&file).unwrap();
    assert_eq!(reencoded, original, "{name}: re-encoding changed the JSON");
}

#[test]
fn status() {
    check_json("status.json", examples::status(), decode_status);
}

#[test]
fn alarm_new() {
    check_json("alarm-new.json", examples::alarm_new(), decode_alarm);
}

#[test]
fn alarm_update() {
    check_json("alarm-update.json", examples::alarm_update(), decode_alarm);
}

#[test]
fn alarm_end() {
    check_json("alarm-end.json", examples::alarm_end(), decode_alarm);
}

#[test]
fn alarm_sensor() {
    check_json("alarm-sensor.json", examples::alarm_sensor(), decode_alarm);
}

#[test]
fn alarm_events_share_one_alarm_id() {
    // From the samples, which the files are checked against above (reading
    // the files here would race with blessing).
    let ids: Vec<AlarmEvent> = vec![
        examples::alarm_new(),
        examples::alarm_update(),
        examples::alarm_end(),
    ];
    assert!(ids.iter().all(|a| a.alarm_id == ids[0].alarm_id));
    assert!(ids.windows(2).all(|w| w[0].seq < w[1].seq));
    // The snapshot record precedes the alarm that references it.
    for a in &ids {
        if let Some(s) = &a.snapshot {
            assert!(s.seq < a.seq);
        }
    }
}

#[test]
fn ack() {
    check_json("ack.json", examples::ack(), decode_ack);
}

#[test]
fn config_push() {
    check_json(
        "config-push.json",
        examples::config_push(),
        decode_config_push,
    );
}

#[test]
fn config_ack() {
    check_json("config-ack.json", examples::config_ack(), decode_config_ack);
}

#[test]
fn telemetry() {
    let sample = examples::telemetry();
    if blessing() {
        write("telemetry.bin", &encode_telemetry(&sample));
        write("telemetry.json", &pretty(&sample));
    }
    let bin = read("telemetry.bin");
    assert_eq!(
        bin.first(),
        Some(&1),
        "telemetry.bin must start with version varint 1"
    );
    let decoded = decode_telemetry(&bin).unwrap();
    assert_eq!(
        decoded, sample,
        "telemetry.bin no longer matches examples::telemetry()"
    );
    assert_eq!(
        encode_telemetry(&decoded),
        bin,
        "re-encoding changed the bytes"
    );

    // The JSON twin describes the same batch.
    let twin: TelemetryBatch = serde_json::from_slice(&read("telemetry.json")).unwrap();
    twin.validate().unwrap();
    assert_eq!(twin, decoded, "telemetry.json and telemetry.bin disagree");
}
