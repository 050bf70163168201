//! Property tests: decoding hostile input never panics, valid payloads
//! survive an encode/decode round trip, and topic parsing is strict.

// Test helpers: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use parkwatch_protocol::limits::MAX_TIMESTAMP_MS;
use parkwatch_protocol::{
    AlarmEvent, AlarmEventType, AlarmKind, DecodeError, DeliveryAck, DetectedObject, EdgeTopic,
    FieldValue, Location, ModelRef, Point, SCHEMA_VERSION, Severity, SnapshotRef, TelemetryBatch,
    TopicKind, decode_ack, decode_alarm, decode_message, decode_telemetry, encode_json,
    encode_telemetry, examples,
};
use proptest::num::f64 as pf64;
use proptest::prelude::*;

fn check_never_panics(bytes: &[u8]) {
    for kind in examples::topic_kinds() {
        if let Err(e) = decode_message(&kind, bytes) {
            assert!(
                ["too_large", "malformed", "unsupported_version", "invalid"].contains(&e.reason())
            );
            // Display must not panic either.
            let _ = e.to_string();
        }
    }
}

/// Every valid encoding of every sample, for mutation.
fn valid_payloads() -> Vec<Vec<u8>> {
    vec![
        encode_json(&examples::status()),
        encode_json(&examples::alarm_new()),
        encode_json(&examples::alarm_sensor()),
        encode_json(&examples::ack()),
        encode_json(&examples::config_push()),
        encode_json(&examples::config_ack()),
        encode_telemetry(&examples::telemetry()),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(mut b: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let n = b.len().max(1);
        match *m {
            Mutation::Set(i, x) => {
                if let Some(slot) = b.get_mut(i % n) {
                    *slot = x;
                }
            }
            Mutation::Insert(i, x) => b.insert(i % (b.len() + 1), x),
            Mutation::Remove(i) => {
                if !b.is_empty() {
                    b.remove(i % n);
                }
            }
            Mutation::Truncate(i) => b.truncate(i % n),
        }
    }
    b
}

// ------------------------------------------------------------ generators

fn id(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[A-Za-z0-9_.:-]{{1,{max}}}")).unwrap()
}

fn label() -> impl Strategy<Value = String> {
    "\\PC{1,24}"
}

fn series_name() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9_.-]{0,15}".prop_filter("reserved", |s| s != "time")
}

fn finite() -> impl Strategy<Value = f64> {
    pf64::POSITIVE | pf64::NEGATIVE | pf64::NORMAL | pf64::SUBNORMAL | pf64::ZERO
}

fn detected_object() -> impl Strategy<Value = DetectedObject> {
    (
        label(),
        0.0f32..=1.0,
        [0.0f32..=1.0, 0.0f32..=1.0, 0.0f32..=1.0, 0.0f32..=1.0],
        proptest::option::of(any::<u64>()),
    )
        .prop_map(|(class, score, [a, b, c, d], track_id)| DetectedObject {
            class,
            score,
            bbox: [a.min(c), b.min(d), a.max(c), b.max(d)],
            track_id,
        })
}

fn snapshot_ref() -> impl Strategy<Value = SnapshotRef> {
    (
        any::<u64>(),
        "[0-9a-f]{64}",
        1u32..=4 * 1024 * 1024,
        1u32..,
        1u32..,
    )
        .prop_map(|(seq, sha256, bytes, width, height)| SnapshotRef {
            seq,
            sha256,
            bytes,
            width,
            height,
        })
}

prop_compose! {
    fn alarm_event()(
        (alarm_id, event, seq, site, edge) in (
            id(128),
            prop::sample::select(AlarmEventType::ALL),
            any::<u64>(),
            id(64),
            id(64),
        ),
        (kind, severity, rule_id, camera, sensor, zone) in (
            prop::sample::select(AlarmKind::ALL),
            prop::sample::select(Severity::ALL),
            id(64),
            id(64),
            id(64),
            proptest::option::of(id(64)),
        ),
        (objects, started, event_delta, end_delta) in (
            prop::collection::vec(detected_object(), 0..5),
            0..=MAX_TIMESTAMP_MS / 2,
            0i64..1_000_000_000,
            0i64..1_000_000_000,
        ),
        (snapshot, model, location, catalogue_item, value, unit, message) in (
            proptest::option::of(snapshot_ref()),
            proptest::option::of((label(), label()).prop_map(|(name, version)| ModelRef { name, version })),
            proptest::option::of((-180.0..=180.0f64, -90.0..=90.0f64).prop_map(|(lon, lat)| Location { lon, lat })),
            proptest::option::of(id(64)),
            finite(),
            proptest::option::of(label()),
            proptest::option::of(".{0,64}"),
        ),
    ) -> AlarmEvent {
        let sensor_alarm = !kind.is_camera_kind();
        AlarmEvent {
            v: SCHEMA_VERSION,
            alarm_id,
            event,
            seq,
            site,
            edge,
            camera: (!sensor_alarm).then_some(camera),
            sensor: sensor_alarm.then_some(sensor),
            rule_id,
            kind,
            severity,
            zone,
            objects,
            started_at_ms: started,
            event_at_ms: started + event_delta,
            ended_at_ms: (event == AlarmEventType::End).then_some(started + event_delta + end_delta),
            snapshot,
            model,
            location,
            catalogue_item,
            value: sensor_alarm.then_some(value),
            unit,
            message,
        }
    }
}

fn field_value() -> impl Strategy<Value = FieldValue> {
    prop_oneof![
        finite().prop_map(FieldValue::F64),
        any::<i64>().prop_map(FieldValue::I64),
        any::<u64>().prop_map(FieldValue::U64),
        any::<bool>().prop_map(FieldValue::Bool),
        ".{0,32}".prop_map(FieldValue::Str),
    ]
}

fn point() -> impl Strategy<Value = Point> {
    (
        series_name(),
        0..=MAX_TIMESTAMP_MS,
        prop::collection::btree_map(series_name(), label(), 0..6),
        prop::collection::btree_map(series_name(), field_value(), 1..6),
    )
        .prop_map(
            |(measurement, ts_ms, tags, fields): (_, _, BTreeMap<_, _>, BTreeMap<_, _>)| Point {
                measurement,
                ts_ms,
                tags: tags.into_iter().collect(),
                fields: fields.into_iter().collect(),
            },
        )
}

fn telemetry_batch() -> impl Strategy<Value = TelemetryBatch> {
    (
        id(64),
        id(64),
        any::<u64>(),
        0..=MAX_TIMESTAMP_MS,
        prop::collection::vec(point(), 0..20),
    )
        .prop_map(|(site, edge, seq, created_at_ms, points)| TelemetryBatch {
            v: SCHEMA_VERSION,
            site,
            edge,
            seq,
            created_at_ms,
            points,
        })
}

/// Topic-like strings: mostly valid-looking levels with the odd wildcard,
/// empty level or bad character, so parsing reaches every branch.
fn levels() -> impl Strategy<Value = String> {
    let level = prop_oneof![
        4 => prop::sample::select(vec!["pw", "status", "alarms", "snapshots", "config", "ack", "x"])
            .prop_map(str::to_owned),
        4 => "[a-z0-9_.:-]{1,5}",
        1 => "[a-z0-9+#$ é/_.:-]{0,4}",
    ];
    prop::collection::vec(level, 0..7).prop_map(|s| s.join("/"))
}

/// A prefix and a topic that, more often than not, starts with it.
fn prefix_and_topic() -> impl Strategy<Value = (String, String)> {
    (levels(), levels(), any::<bool>()).prop_map(|(prefix, rest, under)| {
        let topic = if under {
            format!("{prefix}/{rest}")
        } else {
            rest
        };
        (prefix, topic)
    })
}

// ------------------------------------------------------------ properties

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decode_message_never_panics_on_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..512)
    ) {
        check_never_panics(&bytes);
    }

    #[test]
    fn decode_message_never_panics_on_mutated_payloads(
        which in 0usize..7,
        muts in prop::collection::vec(mutation(), 1..6),
    ) {
        let base = valid_payloads().swap_remove(which);
        check_never_panics(&apply(base, &muts));
    }

    #[test]
    fn topic_parse_never_panics_and_is_strict((prefix, topic) in prefix_and_topic()) {
        if let Ok(t) = EdgeTopic::parse(&prefix, &topic) {
            // Whatever parses renders back to exactly the same topic.
            prop_assert_eq!(t.render(&prefix), topic);
        }
    }

    #[test]
    fn topic_parse_never_panics_on_arbitrary_strings(prefix in "\\PC{0,12}", topic in ".{0,80}") {
        if let Ok(t) = EdgeTopic::parse(&prefix, &topic) {
            prop_assert_eq!(t.render(&prefix), topic);
        }
    }
}

proptest! {
    #[test]
    fn topic_round_trip(
        site in id(64),
        edge in id(64),
        alarm_id in id(128),
        which in 0usize..7,
    ) {
        let kind = match which {
            0 => TopicKind::Status,
            1 => TopicKind::Alarms,
            2 => TopicKind::Telemetry,
            3 => TopicKind::Snapshot { alarm_id },
            4 => TopicKind::Config,
            5 => TopicKind::ConfigAck,
            _ => TopicKind::Ack,
        };
        let t = EdgeTopic::new(&site, &edge, kind).unwrap();
        for prefix in ["parkwatch", "acme/parkwatch"] {
            prop_assert_eq!(EdgeTopic::parse(prefix, &t.render(prefix)), Ok(t.clone()));
        }
    }

    #[test]
    fn alarm_round_trip(a in alarm_event()) {
        prop_assert_eq!(decode_alarm(&encode_json(&a)), Ok(a));
    }

    #[test]
    fn telemetry_round_trip(b in telemetry_batch()) {
        let bytes = encode_telemetry(&b);
        prop_assert_eq!(bytes.first(), Some(&1u8));
        prop_assert_eq!(decode_telemetry(&bytes), Ok(b));
    }

    #[test]
    fn telemetry_rejects_every_truncation(b in telemetry_batch(), cut in any::<prop::sample::Index>()) {
        let bytes = encode_telemetry(&b);
        let at = cut.index(bytes.len());
        let r = decode_telemetry(&bytes[..at]);
        prop_assert!(matches!(r, Err(DecodeError::Malformed(_))), "{:?}", r);
    }

    #[test]
    fn ack_from_seqs_is_valid_and_exact(seqs in prop::collection::btree_set(0u64..200, 0..100)) {
        let ack = DeliveryAck::from_seqs("e1", seqs.iter().rev().copied());
        let decoded = decode_ack(&encode_json(&ack)).unwrap();
        prop_assert_eq!(&decoded, &ack);
        for s in 0..210 {
            prop_assert_eq!(decoded.contains(s), seqs.contains(&s));
        }
        prop_assert_eq!(decoded.seqs().collect::<BTreeSet<_>>(), seqs);
    }
}
