//! Telemetry points to InfluxDB line protocol.
//!
//! [`convert_batch`] turns the points of one [`TelemetryBatch`] into
//! InfluxDB [`DataPoint`]s: the point's measurement and tags, plus the tags
//! `site` and `edge` taken from the topic (they replace any tag of the same
//! name the edge sent), the fields mapped by type, and the timestamp in
//! nanoseconds. [`encode_lines`] renders them as line protocol once, so a
//! retried write resends the same bytes without re-encoding.
//!
//! Guarantees: the output is well-formed line protocol whatever the input.
//! A point that cannot be written faithfully is skipped and counted by
//! reason, never written half-broken:
//!
//! | reason | when |
//! | --- | --- |
//! | `bad_name` | measurement, tag or field key empty, or any name or tag value with a control character or a trailing backslash |
//! | `bad_timestamp` | `ts_ms * 1_000_000` overflows `i64` |
//! | `no_fields` | no field left after dropping non-finite floats |
//!
//! Tags with an empty value are dropped (line protocol cannot carry them),
//! as are `f64` fields that are NaN or infinite (the protocol decoder
//! already refuses those; this is defence in depth). `u64` values up to
//! `i64::MAX` are written as integers, larger ones as floats (the
//! `influxdb2` crate has no unsigned type; VictoriaMetrics stores floats
//! anyway). String fields are written as strings; VictoriaMetrics ignores
//! them, InfluxDB keeps them.

use influxdb2::models::{DataPoint, WriteDataPoint};
use parkwatch_protocol::{FieldValue, Point, TelemetryBatch};

/// Tag keys that ingest sets itself on every point.
pub const RESERVED_TAGS: [&str; 2] = ["site", "edge"];

/// Why a point was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// A name or tag value that line protocol cannot carry.
    BadName,
    /// The timestamp does not fit in nanoseconds.
    BadTimestamp,
    /// No writable field.
    NoFields,
}

impl SkipReason {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::BadName => "bad_name",
            SkipReason::BadTimestamp => "bad_timestamp",
            SkipReason::NoFields => "no_fields",
        }
    }
}

/// The result of converting one batch.
#[derive(Debug, Default)]
pub struct Converted {
    /// Points ready to write.
    pub points: Vec<DataPoint>,
    /// Points skipped, with why.
    pub skipped: Vec<SkipReason>,
}

/// Converts every point of `batch`, tagging with the topic's `site`/`edge`.
pub fn convert_batch(site: &str, edge: &str, batch: &TelemetryBatch) -> Converted {
    let mut out = Converted {
        points: Vec::with_capacity(batch.points.len()),
        skipped: Vec::new(),
    };
    for p in &batch.points {
        match convert_point(site, edge, p) {
            Ok(dp) => out.points.push(dp),
            Err(reason) => out.skipped.push(reason),
        }
    }
    out
}

/// Converts one point; see the module doc for the rules.
pub fn convert_point(site: &str, edge: &str, p: &Point) -> Result<DataPoint, SkipReason> {
    if !is_name(&p.measurement) {
        return Err(SkipReason::BadName);
    }
    let ts_ns = p
        .ts_ms
        .checked_mul(1_000_000)
        .ok_or(SkipReason::BadTimestamp)?;
    let mut b = DataPoint::builder(p.measurement.as_str());
    for (k, v) in &p.tags {
        if !is_name(k) || (!v.is_empty() && !is_name(v)) {
            return Err(SkipReason::BadName);
        }
        if v.is_empty() || RESERVED_TAGS.contains(&k.as_str()) {
            continue;
        }
        b = b.tag(k.as_str(), v.as_str());
    }
    b = b.tag("site", site).tag("edge", edge);
    let mut fields = 0usize;
    for (k, v) in &p.fields {
        if !is_name(k) {
            return Err(SkipReason::BadName);
        }
        let value = match v {
            FieldValue::F64(x) if x.is_finite() => influxdb2::models::FieldValue::F64(*x),
            FieldValue::F64(_) => continue,
            FieldValue::I64(x) => influxdb2::models::FieldValue::I64(*x),
            FieldValue::U64(x) => match i64::try_from(*x) {
                Ok(i) => influxdb2::models::FieldValue::I64(i),
                Err(_) => influxdb2::models::FieldValue::F64(*x as f64),
            },
            FieldValue::Bool(x) => influxdb2::models::FieldValue::Bool(*x),
            // The crate escapes `"` but not `\`; escaping `\` first makes
            // the pair correct line protocol.
            FieldValue::Str(s) => influxdb2::models::FieldValue::String(escape_string_field(s)),
        };
        b = b.field(k.as_str(), value);
        fields += 1;
    }
    if fields == 0 {
        return Err(SkipReason::NoFields);
    }
    b.timestamp(ts_ns).build().map_err(|_| SkipReason::NoFields)
}

/// Appends the line protocol of `points` to `buf` (one line each).
pub fn encode_lines(points: &[DataPoint], buf: &mut Vec<u8>) {
    for p in points {
        // Writing into a Vec cannot fail.
        let _ = p.write_data_point_to(&mut *buf);
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(char::is_control) && !s.ends_with('\\')
}

fn escape_string_field(s: &str) -> String {
    let s = s.replace('\\', "\\\\");
    if s.chars().any(|c| c == '\n' || c == '\r') {
        s.replace('\n', "\\n").replace('\r', "\\r")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(measurement: &str, tags: &[(&str, &str)], fields: Vec<(&str, FieldValue)>) -> Point {
        Point {
            measurement: measurement.to_owned(),
            ts_ms: 1_700_000_000_123,
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        }
    }

    fn line(p: &Point) -> String {
        match convert_point("etdz", "edge-p01", p) {
            Ok(dp) => {
                let mut buf = Vec::new();
                encode_lines(&[dp], &mut buf);
                String::from_utf8_lossy(&buf).into_owned()
            }
            Err(r) => panic!("skipped: {r:?}"),
        }
    }

    #[test]
    fn point_gets_site_edge_tags_typed_fields_and_ns_timestamp() {
        let p = point(
            "camera_stream",
            &[("camera", "cam-01")],
            vec![
                ("frames_received", FieldValue::U64(250)),
                ("stale", FieldValue::Bool(false)),
                ("fps", FieldValue::F64(24.5)),
                ("reconnects", FieldValue::I64(-1)),
                ("state", FieldValue::Str("streaming".into())),
            ],
        );
        assert_eq!(
            line(&p),
            "camera_stream,camera=cam-01,edge=edge-p01,site=etdz \
             fps=24.5,frames_received=250i,reconnects=-1i,stale=f,state=\"streaming\" \
             1700000000123000000\n"
        );
    }

    #[test]
    fn topic_site_and_edge_win_over_point_tags() {
        let p = point(
            "sensor",
            &[("site", "spoofed"), ("edge", "other"), ("sensor", "gas-1")],
            vec![("value", FieldValue::F64(1.0))],
        );
        assert_eq!(
            line(&p),
            "sensor,edge=edge-p01,sensor=gas-1,site=etdz value=1 1700000000123000000\n"
        );
    }

    #[test]
    fn special_characters_are_escaped() {
        let p = point(
            "my measurement",
            &[("zone name", "a,b=c")],
            vec![("note", FieldValue::Str("say \"hi\" \\ bye\nnext".into()))],
        );
        assert_eq!(
            line(&p),
            "my\\ measurement,edge=edge-p01,site=etdz,zone\\ name=a\\,b\\=c \
             note=\"say \\\"hi\\\" \\\\ bye\\nnext\" 1700000000123000000\n"
        );
    }

    #[test]
    fn non_finite_floats_and_empty_tags_are_dropped() {
        let p = point(
            "edge_health",
            &[("empty", "")],
            vec![
                ("nan", FieldValue::F64(f64::NAN)),
                ("inf", FieldValue::F64(f64::INFINITY)),
                ("cpu", FieldValue::F64(0.25)),
            ],
        );
        assert_eq!(
            line(&p),
            "edge_health,edge=edge-p01,site=etdz cpu=0.25 1700000000123000000\n"
        );
        let only_nan = point("x", &[], vec![("nan", FieldValue::F64(f64::NAN))]);
        assert_eq!(
            convert_point("s", "e", &only_nan).err(),
            Some(SkipReason::NoFields)
        );
    }

    #[test]
    fn big_u64_becomes_float() {
        let p = point("outbox", &[], vec![("bytes", FieldValue::U64(u64::MAX))]);
        assert!(
            line(&p).contains("bytes=18446744073709552000 "),
            "{}",
            line(&p)
        );
    }

    #[test]
    fn unwritable_points_are_skipped_with_reason() {
        let cases = [
            (
                point("", &[], vec![("v", FieldValue::I64(1))]),
                SkipReason::BadName,
            ),
            (
                point("m\nx", &[], vec![("v", FieldValue::I64(1))]),
                SkipReason::BadName,
            ),
            (
                point("m", &[("t", "ends\\")], vec![("v", FieldValue::I64(1))]),
                SkipReason::BadName,
            ),
            (
                point("m", &[], vec![("", FieldValue::I64(1))]),
                SkipReason::BadName,
            ),
            (point("m", &[], vec![]), SkipReason::NoFields),
        ];
        for (p, want) in cases {
            assert_eq!(convert_point("s", "e", &p).err(), Some(want), "{p:?}");
        }
        let mut late = point("m", &[], vec![("v", FieldValue::I64(1))]);
        late.ts_ms = i64::MAX / 1000;
        assert_eq!(
            convert_point("s", "e", &late).err(),
            Some(SkipReason::BadTimestamp)
        );
    }

    #[test]
    fn batch_conversion_keeps_good_points_and_counts_bad_ones() {
        let batch = TelemetryBatch {
            v: 1,
            site: "etdz".into(),
            edge: "edge-p01".into(),
            seq: 7,
            created_at_ms: 0,
            points: vec![
                point("a", &[], vec![("v", FieldValue::I64(1))]),
                point("", &[], vec![("v", FieldValue::I64(1))]),
                point("b", &[], vec![("v", FieldValue::Bool(true))]),
            ],
        };
        let c = convert_batch("etdz", "edge-p01", &batch);
        assert_eq!(c.points.len(), 2);
        assert_eq!(c.skipped, vec![SkipReason::BadName]);
    }
}
