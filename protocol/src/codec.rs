//! Encoding and decoding of payloads.
//!
//! Formats: JSON for status, alarms, delivery acks, config push and config
//! ack; postcard for telemetry batches; raw JPEG bytes for snapshots.
//!
//! Every decoder runs the same steps, in order, and stops at the first
//! failure:
//! 1. size limit ([`DecodeError::TooLarge`]), before reading a byte;
//! 2. parse ([`DecodeError::Malformed`]): JSON must be an object with a
//!    numeric `v`; postcard must start with a varint `v`;
//! 3. schema version ([`DecodeError::UnsupportedVersion`]), read before the
//!    body is interpreted, so a future version is recognised as such and
//!    not reported as garbage;
//! 4. parse of the body ([`DecodeError::Malformed`]), then validation
//!    ([`DecodeError::Invalid`], see [`crate::Validate`]).
//!
//! Decoders never panic. Memory is bounded by the size limits: JSON
//! payloads expand little; a telemetry batch's point count is checked from
//! its length prefix before any point is built, and the worst crafted
//! batch (1 MiB of empty tags) costs about 25 MiB and 30 ms before it is
//! rejected.
//!
//! JSON decoding ignores unknown fields (forward compatibility within a
//! version); postcard has no field names, so telemetry cannot grow within a
//! version.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::DecodeError;
use crate::limits::{
    MAX_JSON_BYTES, MAX_POINTS_PER_BATCH, MAX_SNAPSHOT_BYTES, MAX_TELEMETRY_BYTES,
};
use crate::payload::{AlarmEvent, ConfigAck, ConfigPush, DeliveryAck, EdgeStatus, TelemetryBatch};
use crate::topic::{EdgeTopic, TopicKind};
use crate::validate::Validate;
use crate::vocab::SCHEMA_VERSION;

/// The first bytes of every JPEG file: the SOI marker and the next marker's 0xFF.
pub const JPEG_MAGIC: [u8; 3] = [0xFF, 0xD8, 0xFF];

/// Why a value could not be encoded. Cannot happen for this crate's
/// payload types; possible for arbitrary `Serialize` types.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode payload: {0}")]
pub struct EncodeError(String);

fn check_size(size: usize, max: usize) -> Result<(), DecodeError> {
    if size > max {
        Err(DecodeError::TooLarge { size, max })
    } else {
        Ok(())
    }
}

/// Encodes a payload as JSON, with fields in declaration order (`v` first).
///
/// For this crate's payload types this cannot fail. For a type whose
/// serialization fails (a map with non-string keys, a failing custom
/// `Serialize`) it returns an empty vector, which every decoder rejects as
/// malformed; use [`try_encode_json`] to see the error.
pub fn encode_json<T: Serialize>(v: &T) -> Vec<u8> {
    try_encode_json(v).unwrap_or_default()
}

/// Encodes a payload as JSON, reporting serialization errors.
pub fn try_encode_json<T: Serialize>(v: &T) -> Result<Vec<u8>, EncodeError> {
    serde_json::to_vec(v).map_err(|e| EncodeError(e.to_string()))
}

/// The part of every JSON payload that is read before the rest.
#[derive(Deserialize)]
struct VersionProbe {
    v: u16,
}

fn decode_json<T: DeserializeOwned + Validate>(b: &[u8]) -> Result<T, DecodeError> {
    check_size(b.len(), MAX_JSON_BYTES)?;
    if b.iter().find(|c| !c.is_ascii_whitespace()) != Some(&b'{') {
        return Err(DecodeError::Malformed("expected a JSON object".to_owned()));
    }
    let probe: VersionProbe =
        serde_json::from_slice(b).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if probe.v != SCHEMA_VERSION {
        return Err(DecodeError::UnsupportedVersion(probe.v));
    }
    let value: T = serde_json::from_slice(b).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    value.validate()?;
    Ok(value)
}

/// Decodes and validates a `status` payload.
pub fn decode_status(b: &[u8]) -> Result<EdgeStatus, DecodeError> {
    decode_json(b)
}

/// Decodes and validates an `alarms` payload.
pub fn decode_alarm(b: &[u8]) -> Result<AlarmEvent, DecodeError> {
    decode_json(b)
}

/// Decodes and validates an `ack` payload.
pub fn decode_ack(b: &[u8]) -> Result<DeliveryAck, DecodeError> {
    decode_json(b)
}

/// Decodes and validates a `config` payload.
pub fn decode_config_push(b: &[u8]) -> Result<ConfigPush, DecodeError> {
    decode_json(b)
}

/// Decodes and validates a `config/ack` payload.
pub fn decode_config_ack(b: &[u8]) -> Result<ConfigAck, DecodeError> {
    decode_json(b)
}

/// Encodes a telemetry batch with postcard. The first bytes are `v` as a
/// varint, then the remaining fields in declaration order.
///
/// Cannot fail for this type (postcard only fails on sequences of unknown
/// length and on custom errors, which the batch's types never produce); the
/// unreachable failure yields an empty vector, which decoders reject.
pub fn encode_telemetry(b: &TelemetryBatch) -> Vec<u8> {
    postcard::to_stdvec(b).unwrap_or_default()
}

/// The fields of a [`TelemetryBatch`] before its points, and the points'
/// length prefix: the same postcard bytes, read without allocating.
// Only `points` is read; the other fields are there to be skipped.
#[allow(dead_code)]
#[derive(Deserialize)]
struct TelemetryHeader<'a> {
    v: u16,
    site: &'a str,
    edge: &'a str,
    seq: u64,
    created_at_ms: i64,
    points: u64,
}

/// Decodes and validates a `telemetry` payload.
pub fn decode_telemetry(b: &[u8]) -> Result<TelemetryBatch, DecodeError> {
    check_size(b.len(), MAX_TELEMETRY_BYTES)?;
    let (v, _) = postcard::take_from_bytes::<u16>(b)
        .map_err(|e| DecodeError::Malformed(format!("no schema version varint: {e}")))?;
    if v != SCHEMA_VERSION {
        return Err(DecodeError::UnsupportedVersion(v));
    }
    // Refuse an oversized point count before allocating any point.
    let (header, _) = postcard::take_from_bytes::<TelemetryHeader<'_>>(b)
        .map_err(|e| DecodeError::Malformed(format!("telemetry batch header: {e}")))?;
    if header.points > MAX_POINTS_PER_BATCH as u64 {
        return Err(DecodeError::Invalid {
            field: "points".to_owned(),
            reason: format!("{} points, more than {MAX_POINTS_PER_BATCH}", header.points),
        });
    }
    let (batch, rest) = postcard::take_from_bytes::<TelemetryBatch>(b)
        .map_err(|e| DecodeError::Malformed(format!("telemetry batch: {e}")))?;
    if !rest.is_empty() {
        return Err(DecodeError::Malformed(format!(
            "{} bytes after the end of the telemetry batch",
            rest.len()
        )));
    }
    batch.validate()?;
    Ok(batch)
}

/// Checks a `snapshots/{alarm_id}` payload: at most [`MAX_SNAPSHOT_BYTES`]
/// and starting with the JPEG SOI marker ([`JPEG_MAGIC`]).
pub fn check_snapshot(b: &[u8]) -> Result<(), DecodeError> {
    check_size(b.len(), MAX_SNAPSHOT_BYTES)?;
    if !b.starts_with(&JPEG_MAGIC) {
        return Err(DecodeError::Malformed(
            "not a JPEG: does not start with the SOI marker FF D8 FF".to_owned(),
        ));
    }
    Ok(())
}

/// Everything ingest may receive, decoded and validated.
// An alarm is ~450 bytes inline; a message is built once per received
// payload and moved, so boxing buys nothing and would complicate matching.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// From `status`.
    Status(EdgeStatus),
    /// From `alarms`.
    Alarm(AlarmEvent),
    /// From `telemetry`.
    Telemetry(TelemetryBatch),
    /// From `snapshots/{alarm_id}`: the JPEG, checked by [`check_snapshot`].
    Snapshot {
        /// The alarm id from the topic.
        alarm_id: String,
        /// The JPEG bytes.
        jpeg: Vec<u8>,
    },
    /// From `config/ack`.
    ConfigAck(ConfigAck),
}

impl Message {
    /// The `(site, edge)` the payload claims to come from, for comparison
    /// with the topic. `None` for snapshots (raw bytes, no claim) and for
    /// config acks (which carry only `edge`); [`Message::check_origin`]
    /// handles all cases.
    pub fn origin(&self) -> Option<(&str, &str)> {
        match self {
            Message::Status(s) => Some((&s.site, &s.edge)),
            Message::Alarm(a) => Some((&a.site, &a.edge)),
            Message::Telemetry(t) => Some((&t.site, &t.edge)),
            Message::Snapshot { .. } | Message::ConfigAck(_) => None,
        }
    }

    /// Checks that every site and edge the payload names matches `topic`.
    /// A mismatch is [`DecodeError::Invalid`] on field `site` or `edge`.
    pub fn check_origin(&self, topic: &EdgeTopic) -> Result<(), DecodeError> {
        let (site, edge) = match self {
            Message::ConfigAck(a) => (None, Some(a.edge.as_str())),
            Message::Snapshot { .. } => (None, None),
            other => match other.origin() {
                Some((s, e)) => (Some(s), Some(e)),
                None => (None, None),
            },
        };
        if let Some(site) = site
            && site != topic.site
        {
            return Err(DecodeError::Invalid {
                field: "site".to_owned(),
                reason: format!("{site:?} does not match the topic's site {:?}", topic.site),
            });
        }
        if let Some(edge) = edge
            && edge != topic.edge
        {
            return Err(DecodeError::Invalid {
                field: "edge".to_owned(),
                reason: format!("{edge:?} does not match the topic's edge {:?}", topic.edge),
            });
        }
        Ok(())
    }
}

/// Decodes a payload that arrived on a topic of `kind`.
///
/// `config` and `ack` are ingest-to-edge topics that ingest never
/// receives; they yield [`DecodeError::Invalid`] on field `topic` (decode
/// them with [`decode_config_push`] and [`decode_ack`] on the edge).
pub fn decode_message(kind: &TopicKind, payload: &[u8]) -> Result<Message, DecodeError> {
    match kind {
        TopicKind::Status => decode_status(payload).map(Message::Status),
        TopicKind::Alarms => decode_alarm(payload).map(Message::Alarm),
        TopicKind::Telemetry => decode_telemetry(payload).map(Message::Telemetry),
        TopicKind::Snapshot { alarm_id } => {
            check_snapshot(payload)?;
            Ok(Message::Snapshot {
                alarm_id: alarm_id.clone(),
                jpeg: payload.to_vec(),
            })
        }
        TopicKind::ConfigAck => decode_config_ack(payload).map(Message::ConfigAck),
        TopicKind::Config | TopicKind::Ack => Err(DecodeError::Invalid {
            field: "topic".to_owned(),
            reason: format!("{} is published by ingest, not received by it", kind.name()),
        }),
    }
}

/// Decodes a payload received on `topic` and checks that the site and edge
/// it names match the topic: [`decode_message`] plus [`Message::check_origin`].
pub fn decode_for_topic(topic: &EdgeTopic, payload: &[u8]) -> Result<Message, DecodeError> {
    let msg = decode_message(&topic.kind, payload)?;
    msg.check_origin(topic)?;
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::examples;
    use crate::payload::{FieldValue, Point};

    type Decoder<T> = fn(&[u8]) -> Result<T, DecodeError>;
    /// A named edit of a payload and the field it should make invalid.
    type Case<'a, T> = (&'a str, Box<dyn FnOnce(&mut T)>);

    fn to_value<T: Serialize>(v: &T) -> Value {
        serde_json::to_value(v).unwrap()
    }

    fn bytes(v: &Value) -> Vec<u8> {
        serde_json::to_vec(v).unwrap()
    }

    /// Applies `edit` to the JSON of `base` and decodes the result.
    fn decode_edited<T, S: Serialize>(
        decode: Decoder<T>,
        base: &S,
        edit: impl FnOnce(&mut Value),
    ) -> Result<T, DecodeError> {
        let mut v = to_value(base);
        edit(&mut v);
        decode(&bytes(&v))
    }

    fn assert_invalid<T: std::fmt::Debug>(r: Result<T, DecodeError>, want_field: &str) {
        match r {
            Err(e @ DecodeError::Invalid { .. }) => {
                assert_eq!(e.reason(), "invalid");
                let DecodeError::Invalid { field, .. } = &e else {
                    unreachable!()
                };
                assert_eq!(field, want_field, "{e}");
            }
            other => panic!("expected invalid {want_field}, got {other:?}"),
        }
    }

    /// The checks every JSON decoder must pass, driven by a valid sample.
    fn common_json_checks<T, S>(decode: Decoder<T>, sample: &S)
    where
        T: std::fmt::Debug + PartialEq<S>,
        S: Serialize + std::fmt::Debug,
    {
        let good = encode_json(sample);
        assert_eq!(decode(&good).unwrap(), *sample);

        // Size limit: checked before parsing, exact at the boundary.
        let mut padded = good.clone();
        padded.resize(MAX_JSON_BYTES, b' ');
        assert_eq!(decode(&padded).unwrap(), *sample);
        padded.push(b' ');
        let e = decode(&padded).unwrap_err();
        assert_eq!(
            e,
            DecodeError::TooLarge {
                size: MAX_JSON_BYTES + 1,
                max: MAX_JSON_BYTES
            }
        );
        assert_eq!(e.reason(), "too_large");

        // Malformed: not JSON, not an object, no version, wrong types.
        let mut truncated = good.clone();
        truncated.truncate(good.len() / 2);
        let mut no_v = to_value(sample);
        no_v.as_object_mut().unwrap().remove("v");
        let mut v_string = to_value(sample);
        v_string["v"] = json!("1");
        for bad in [
            b"".to_vec(),
            b"\xff\xfe".to_vec(),
            b"null".to_vec(),
            b"[1]".to_vec(),
            b"{\"v\":1}".to_vec(),
            b"{\"v\":70000}".to_vec(),
            truncated,
            bytes(&no_v),
            bytes(&v_string),
        ] {
            let e = decode(&bad).unwrap_err();
            assert_eq!(
                e.reason(),
                "malformed",
                "{:?}: {e}",
                String::from_utf8_lossy(&bad)
            );
        }

        // Unknown version: recognised even when the body is unreadable.
        for v in [0u16, 2, u16::MAX] {
            let e = decode(&bytes(&json!({"v": v, "anything": [1, 2]}))).unwrap_err();
            assert_eq!(e, DecodeError::UnsupportedVersion(v));
            assert_eq!(e.reason(), "unsupported_version");
        }

        // Unknown fields are ignored.
        let with_extra = decode_edited(decode, sample, |v| {
            v["added_in_a_later_release"] = json!({"nested": [1, 2, 3]});
        });
        assert_eq!(with_extra.unwrap(), *sample);
    }

    #[test]
    fn status_decoding() {
        let s = examples::status();
        common_json_checks(decode_status, &s);
        assert_invalid(
            decode_edited(decode_status, &s, |v| v["site"] = json!("")),
            "site",
        );
        assert_invalid(
            decode_edited(decode_status, &s, |v| v["version"] = json!("")),
            "version",
        );
        assert_invalid(
            decode_edited(decode_status, &s, |v| v["at_ms"] = json!(-1)),
            "at_ms",
        );
        assert_invalid(
            decode_edited(decode_status, &s, |v| {
                v["cameras"][1]["id"] = json!("cam 2")
            }),
            "cameras[1].id",
        );
        assert_invalid(
            decode_edited(decode_status, &s, |v| {
                v["cameras"][2]["id"] = json!("cam-gate-n")
            }),
            "cameras[2].id",
        );
        assert_eq!(
            decode_edited(decode_status, &s, |v| v["state"] = json!("asleep"))
                .unwrap_err()
                .reason(),
            "malformed"
        );
        // A status without cameras (an edge with none configured) is fine.
        let none = decode_edited(decode_status, &s, |v| {
            v.as_object_mut().unwrap().remove("cameras");
        })
        .unwrap();
        assert!(none.cameras.is_empty());
    }

    #[test]
    fn alarm_decoding() {
        for a in [
            examples::alarm_new(),
            examples::alarm_update(),
            examples::alarm_end(),
            examples::alarm_sensor(),
        ] {
            common_json_checks(decode_alarm, &a);
        }
        let a = examples::alarm_new();
        let cases: Vec<Case<'_, Value>> = vec![
            (
                "alarm_id",
                Box::new(|v| v["alarm_id"] = json!("x".repeat(129))),
            ),
            ("edge", Box::new(|v| v["edge"] = json!("e/1"))),
            ("rule_id", Box::new(|v| v["rule_id"] = json!(""))),
            ("zone", Box::new(|v| v["zone"] = json!("north fence"))),
            ("camera", Box::new(|v| v["camera"] = Value::Null)),
            (
                "objects[0].score",
                Box::new(|v| v["objects"][0]["score"] = json!(1.01)),
            ),
            (
                "objects[0].score",
                Box::new(|v| v["objects"][0]["score"] = json!(-0.1)),
            ),
            (
                "objects[0].box",
                Box::new(|v| v["objects"][0]["box"] = json!([0.5, 0.1, 0.4, 0.2])),
            ),
            (
                "objects[0].box",
                Box::new(|v| v["objects"][0]["box"] = json!([0.1, 0.3, 0.4, 0.2])),
            ),
            (
                "objects[0].box",
                Box::new(|v| v["objects"][0]["box"] = json!([0.1, 0.1, 1.5, 0.2])),
            ),
            (
                "objects[0].class",
                Box::new(|v| v["objects"][0]["class"] = json!("")),
            ),
            (
                "event_at_ms",
                Box::new(|v| v["event_at_ms"] = json!(examples::T0_MS - 1)),
            ),
            (
                "ended_at_ms",
                Box::new(|v| v["ended_at_ms"] = json!(examples::T0_MS + 1)),
            ),
            (
                "snapshot.sha256",
                Box::new(|v| v["snapshot"]["sha256"] = json!("AB".repeat(32))),
            ),
            (
                "snapshot.sha256",
                Box::new(|v| v["snapshot"]["sha256"] = json!("ab")),
            ),
            (
                "snapshot.bytes",
                Box::new(|v| v["snapshot"]["bytes"] = json!(0)),
            ),
            (
                "snapshot.bytes",
                Box::new(|v| v["snapshot"]["bytes"] = json!(MAX_SNAPSHOT_BYTES + 1)),
            ),
            (
                "snapshot.width",
                Box::new(|v| v["snapshot"]["width"] = json!(0)),
            ),
            ("model.name", Box::new(|v| v["model"]["name"] = json!(""))),
            (
                "location.lon",
                Box::new(|v| v["location"]["lon"] = json!(180.5)),
            ),
            (
                "location.lat",
                Box::new(|v| v["location"]["lat"] = json!(-91)),
            ),
            ("unit", Box::new(|v| v["unit"] = json!("p\npm"))),
        ];
        for (field, edit) in cases {
            assert_invalid(decode_edited(decode_alarm, &a, edit), field);
        }

        let end = examples::alarm_end();
        assert_invalid(
            decode_edited(decode_alarm, &end, |v| v["ended_at_ms"] = Value::Null),
            "ended_at_ms",
        );
        assert_invalid(
            decode_edited(decode_alarm, &end, |v| {
                v["ended_at_ms"] = json!(examples::T0_MS - 1)
            }),
            "ended_at_ms",
        );

        let sensor = examples::alarm_sensor();
        assert_invalid(
            decode_edited(decode_alarm, &sensor, |v| v["value"] = Value::Null),
            "value",
        );
        assert_invalid(
            decode_edited(decode_alarm, &sensor, |v| v["sensor"] = Value::Null),
            "sensor",
        );
        // Out-of-range JSON numbers do not become infinities.
        let e = decode_edited(decode_alarm, &sensor, |v| v["value"] = json!(1)).unwrap();
        assert_eq!(e.value, Some(1.0));
        let mut text = String::from_utf8(encode_json(&sensor)).unwrap();
        text = text.replace("\"value\":15.5", "\"value\":1e400");
        assert_eq!(
            decode_alarm(text.as_bytes()).unwrap_err().reason(),
            "malformed"
        );

        // Optional fields may be left out entirely.
        let minimal = decode_edited(decode_alarm, &sensor, |v| {
            let o = v.as_object_mut().unwrap();
            for k in [
                "camera",
                "zone",
                "objects",
                "ended_at_ms",
                "snapshot",
                "model",
            ] {
                o.remove(k);
            }
            for k in ["location", "catalogue_item", "unit", "message"] {
                o.remove(k);
            }
        })
        .unwrap();
        assert_eq!(minimal.location, None);
        assert_eq!(minimal.value, Some(15.5));
    }

    #[test]
    fn alarm_json_uses_documented_names() {
        let v = to_value(&examples::alarm_new());
        assert_eq!(v["event"], "new");
        assert_eq!(v["kind"], "intrusion");
        assert_eq!(v["severity"], "major");
        assert!(v["objects"][0].get("box").is_some());
        assert!(v["objects"][0].get("bbox").is_none());
        assert_eq!(
            serde_json::to_string(&examples::alarm_new())
                .unwrap()
                .find("\"v\":1"),
            Some(1),
            "v must be the first field"
        );
    }

    #[test]
    fn ack_decoding() {
        let a = examples::ack();
        common_json_checks(decode_ack, &a);
        assert_eq!(
            String::from_utf8(encode_json(&a)).unwrap(),
            r#"{"v":1,"edge":"edge-07","acked":[[1,5],[7,7],[9,12]]}"#
        );
        for (ranges, field) in [
            (json!([[5, 1]]), "acked[0]"),
            (json!([[1, 5], [3, 8]]), "acked[1]"),
            (json!([[1, 5], [6, 8]]), "acked[1]"),
            (json!([[7, 9], [1, 2]]), "acked[1]"),
        ] {
            assert_invalid(
                decode_edited(decode_ack, &a, |v| v["acked"] = ranges),
                field,
            );
        }
        let e = decode_edited(decode_ack, &a, |v| v["acked"] = json!([[1, 2, 3]]));
        assert_eq!(e.unwrap_err().reason(), "malformed");
    }

    #[test]
    fn config_decoding() {
        let p = examples::config_push();
        common_json_checks(decode_config_push, &p);
        assert_invalid(
            decode_edited(decode_config_push, &p, |v| v["format"] = json!("yaml")),
            "format",
        );
        let a = examples::config_ack();
        common_json_checks(decode_config_ack, &a);
        assert_invalid(
            decode_edited(decode_config_ack, &a, |v| v["accepted"] = json!(true)),
            "errors",
        );
        assert_invalid(
            decode_edited(decode_config_ack, &a, |v| v["errors"] = json!([])),
            "errors",
        );
        let ok = decode_edited(decode_config_ack, &a, |v| {
            v["accepted"] = json!(true);
            v.as_object_mut().unwrap().remove("errors");
        });
        assert!(ok.unwrap().accepted);
    }

    fn telemetry_edited(
        edit: impl FnOnce(&mut TelemetryBatch),
    ) -> Result<TelemetryBatch, DecodeError> {
        let mut b = examples::telemetry();
        edit(&mut b);
        decode_telemetry(&encode_telemetry(&b))
    }

    #[test]
    fn telemetry_decoding() {
        let b = examples::telemetry();
        let enc = encode_telemetry(&b);
        assert_eq!(enc[0], 1, "the version varint comes first");
        assert_eq!(decode_telemetry(&enc).unwrap(), b);

        let big = vec![0u8; MAX_TELEMETRY_BYTES + 1];
        assert_eq!(
            decode_telemetry(&big).unwrap_err(),
            DecodeError::TooLarge {
                size: MAX_TELEMETRY_BYTES + 1,
                max: MAX_TELEMETRY_BYTES
            }
        );

        let mut trailing = enc.clone();
        trailing.push(0);
        for bad in [&[][..], &[0x80][..], &enc[..enc.len() - 1], &trailing[..]] {
            let e = decode_telemetry(bad).unwrap_err();
            assert_eq!(e.reason(), "malformed", "{bad:?}: {e}");
        }

        // A future version is recognised from the first varint alone.
        assert_eq!(
            decode_telemetry(&[2]).unwrap_err(),
            DecodeError::UnsupportedVersion(2)
        );
        assert_eq!(
            decode_telemetry(&[0x80, 0x01, 0xff]).unwrap_err(),
            DecodeError::UnsupportedVersion(128)
        );
        assert_eq!(
            telemetry_edited(|b| b.v = 300).unwrap_err(),
            DecodeError::UnsupportedVersion(300)
        );

        let f = |name: &str, v| (name.to_owned(), v);
        let cases: Vec<Case<'_, TelemetryBatch>> = vec![
            ("site", Box::new(|b| b.site = "hx park".to_owned())),
            ("created_at_ms", Box::new(|b| b.created_at_ms = i64::MIN)),
            (
                "points[0].measurement",
                Box::new(|b| b.points[0].measurement.clear()),
            ),
            (
                "points[0].measurement",
                Box::new(|b| b.points[0].measurement = "_internal".to_owned()),
            ),
            ("points[1].ts_ms", Box::new(|b| b.points[1].ts_ms = -5)),
            (
                "points[1].tags[1]",
                Box::new(|b| b.points[1].tags[1].0 = "sensor".to_owned()),
            ),
            (
                "points[1].tags[0]",
                Box::new(|b| b.points[1].tags[0].0 = "time".to_owned()),
            ),
            (
                "points[1].tags[0].value",
                Box::new(|b| b.points[1].tags[0].1.clear()),
            ),
            ("points[0].fields", Box::new(|b| b.points[0].fields.clear())),
            (
                "points[0].fields[0].value",
                Box::new(move |b| b.points[0].fields[0] = f("fps", FieldValue::F64(f64::NAN))),
            ),
            (
                "points[0].fields[0].value",
                Box::new(move |b| {
                    b.points[0].fields[0] = f("fps", FieldValue::F64(f64::NEG_INFINITY))
                }),
            ),
            (
                "points[0].fields[1]",
                Box::new(move |b| b.points[0].fields[1] = f("fps", FieldValue::U64(1))),
            ),
            (
                "points[0].fields[2].key",
                Box::new(move |b| b.points[0].fields[2] = f("", FieldValue::Bool(true))),
            ),
            (
                "points[0].tags",
                Box::new(|b| {
                    b.points[0].tags = (0..65).map(|i| (format!("k{i}"), "v".to_owned())).collect();
                }),
            ),
        ];
        for (field, edit) in cases {
            assert_invalid(telemetry_edited(edit), field);
        }

        let point = Point {
            measurement: "m".to_owned(),
            ts_ms: 0,
            tags: Vec::new(),
            fields: vec![("x".to_owned(), FieldValue::Bool(false))],
        };
        let at_limit = telemetry_edited(|b| b.points = vec![point.clone(); MAX_POINTS_PER_BATCH]);
        assert_eq!(at_limit.unwrap().points.len(), MAX_POINTS_PER_BATCH);
        assert_invalid(
            telemetry_edited(|b| b.points = vec![point; MAX_POINTS_PER_BATCH + 1]),
            "points",
        );
    }

    #[test]
    fn snapshot_checks() {
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F', 0, 0xFF, 0xD9,
        ];
        assert_eq!(check_snapshot(&jpeg), Ok(()));
        for bad in [
            &[][..],
            &[0xFF, 0xD8][..],
            b"\x89PNG\r\n\x1a\n",
            b"{\"v\":1}",
        ] {
            assert_eq!(check_snapshot(bad).unwrap_err().reason(), "malformed");
        }
        let mut big = vec![0u8; MAX_SNAPSHOT_BYTES + 1];
        big[..3].copy_from_slice(&JPEG_MAGIC);
        assert_eq!(check_snapshot(&big).unwrap_err().reason(), "too_large");
        big.pop();
        assert_eq!(check_snapshot(&big), Ok(()));
    }

    #[test]
    fn decode_message_dispatches_by_kind() {
        let alarm = examples::alarm_new();
        assert_eq!(
            decode_message(&TopicKind::Alarms, &encode_json(&alarm)),
            Ok(Message::Alarm(alarm.clone()))
        );
        assert_eq!(
            decode_message(&TopicKind::Status, &encode_json(&examples::status())),
            Ok(Message::Status(examples::status()))
        );
        assert_eq!(
            decode_message(
                &TopicKind::Telemetry,
                &encode_telemetry(&examples::telemetry())
            ),
            Ok(Message::Telemetry(examples::telemetry()))
        );
        assert_eq!(
            decode_message(&TopicKind::ConfigAck, &encode_json(&examples::config_ack())),
            Ok(Message::ConfigAck(examples::config_ack()))
        );
        let snap = TopicKind::Snapshot {
            alarm_id: "a1".to_owned(),
        };
        assert_eq!(
            decode_message(&snap, &JPEG_MAGIC),
            Ok(Message::Snapshot {
                alarm_id: "a1".to_owned(),
                jpeg: JPEG_MAGIC.to_vec()
            })
        );
        // An alarm on the status topic is not a status.
        assert!(decode_message(&TopicKind::Status, &encode_json(&alarm)).is_err());
        // Ingest-to-edge kinds are never accepted by ingest.
        for kind in [TopicKind::Config, TopicKind::Ack] {
            assert_invalid(
                decode_message(&kind, &encode_json(&examples::config_push())),
                "topic",
            );
        }
    }

    #[test]
    fn origin_must_match_the_topic() {
        let alarm = encode_json(&examples::alarm_new());
        let topic = |site: &str, edge: &str, kind| EdgeTopic::new(site, edge, kind).unwrap();
        let ok = decode_for_topic(
            &topic(examples::SITE, examples::EDGE, TopicKind::Alarms),
            &alarm,
        );
        assert_eq!(ok.unwrap().origin(), Some((examples::SITE, examples::EDGE)));
        assert_invalid(
            decode_for_topic(
                &topic("other-site", examples::EDGE, TopicKind::Alarms),
                &alarm,
            ),
            "site",
        );
        assert_invalid(
            decode_for_topic(&topic(examples::SITE, "edge-08", TopicKind::Alarms), &alarm),
            "edge",
        );
        let cfg_ack = encode_json(&examples::config_ack());
        assert_invalid(
            decode_for_topic(
                &topic(examples::SITE, "edge-08", TopicKind::ConfigAck),
                &cfg_ack,
            ),
            "edge",
        );
        let snap = TopicKind::Snapshot {
            alarm_id: "a1".to_owned(),
        };
        let msg = decode_for_topic(&topic("any", "any", snap), &JPEG_MAGIC).unwrap();
        assert_eq!(msg.origin(), None);
    }

    #[test]
    fn error_messages_carry_context() {
        let e = decode_edited(decode_alarm, &examples::alarm_new(), |v| {
            v["objects"][0]["score"] = json!(1.5)
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid field objects[0].score: 1.5 is not within 0..=1"
        );
        let e = decode_alarm(b"{\"v\":1,\"alarm_id\":}").unwrap_err();
        assert!(e.to_string().contains("line 1 column"), "{e}");
        assert_eq!(
            DecodeError::UnsupportedVersion(2).to_string(),
            "unsupported schema version 2 (this build speaks version 1)"
        );
    }

    #[test]
    fn encode_json_of_an_unencodable_value_is_rejected_downstream() {
        let mut m = std::collections::HashMap::new();
        m.insert((1u8, 2u8), 3u8);
        assert!(try_encode_json(&m).is_err());
        assert_eq!(
            decode_alarm(&encode_json(&m)).unwrap_err().reason(),
            "malformed"
        );
    }
}
