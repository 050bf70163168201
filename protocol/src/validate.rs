//! Validation of decoded payloads.
//!
//! Ids are checked with [`validate_id`], the single definition of a
//! well-formed id ([`crate::vocab`]), shared with topic segments. [`Validate`] checks everything about a
//! payload that serde's types cannot express: id syntax, finite floats,
//! ranges, cross-field consistency. Every `decode_*` function in
//! [`crate::codec`] runs it; an edge may run it before publishing to catch
//! its own bugs early. Errors name the offending field by its path, e.g.
//! `objects[2].box`.

use std::collections::HashSet;

use crate::error::DecodeError;
use crate::limits::{
    MAX_ALARM_ID_LEN, MAX_FIELDS_PER_POINT, MAX_ID_LEN, MAX_LABEL_LEN, MAX_POINTS_PER_BATCH,
    MAX_SNAPSHOT_BYTES, MAX_TAGS_PER_POINT, MAX_TIMESTAMP_MS,
};
use crate::payload::{
    AlarmEvent, AlarmEventType, ConfigAck, ConfigPush, DeliveryAck, DetectedObject, EdgeStatus,
    FieldValue, Location, ModelRef, Point, SnapshotRef, TelemetryBatch,
};
use crate::vocab::{AlarmKind, SCHEMA_VERSION, validate_id};

/// The only configuration format defined in schema version 1.
pub const CONFIG_FORMAT_TOML: &str = "toml";

/// Payload checks beyond what the types express.
pub trait Validate {
    /// Returns the first problem found as [`DecodeError::Invalid`], naming
    /// the field by its path.
    fn validate(&self) -> Result<(), DecodeError>;
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> DecodeError {
    DecodeError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

fn id(field: &str, s: &str, max: usize) -> Result<(), DecodeError> {
    validate_id(s, max).map_err(|e| invalid(field, format!("id {}", e)))
}

fn opt_id(field: &str, s: Option<&str>) -> Result<(), DecodeError> {
    s.map_or(Ok(()), |s| id(field, s, MAX_ID_LEN))
}

fn timestamp(field: &str, ms: i64) -> Result<(), DecodeError> {
    if (0..=MAX_TIMESTAMP_MS).contains(&ms) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("timestamp {ms} is outside 0..={MAX_TIMESTAMP_MS} ms since the Unix epoch"),
        ))
    }
}

/// A non-empty label of at most [`MAX_LABEL_LEN`] bytes without control chars.
fn label(field: &str, s: &str) -> Result<(), DecodeError> {
    if s.is_empty() {
        return Err(invalid(field, "is empty"));
    }
    if s.len() > MAX_LABEL_LEN {
        return Err(invalid(
            field,
            format!("is {} bytes long, more than {MAX_LABEL_LEN}", s.len()),
        ));
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(invalid(field, format!("contains control character {c:?}")));
    }
    Ok(())
}

/// A measurement, tag key or field key: a label, and not in InfluxDB's
/// reserved `_` namespace.
fn series_name(field: &str, s: &str) -> Result<(), DecodeError> {
    label(field, s)?;
    if s.starts_with('_') {
        return Err(invalid(
            field,
            format!("{s:?} starts with '_', which InfluxDB reserves"),
        ));
    }
    Ok(())
}

fn in_unit_range(field: &str, x: f32) -> Result<(), DecodeError> {
    if x.is_finite() && (0.0..=1.0).contains(&x) {
        Ok(())
    } else {
        Err(invalid(field, format!("{x} is not within 0..=1")))
    }
}

fn prefixed<T>(
    r: Result<T, DecodeError>,
    prefix: impl FnOnce() -> String,
) -> Result<T, DecodeError> {
    r.map_err(|e| match e {
        DecodeError::Invalid { field, reason } => DecodeError::Invalid {
            field: format!("{}.{field}", prefix()),
            reason,
        },
        other => other,
    })
}

fn version(v: u16) -> Result<(), DecodeError> {
    if v == SCHEMA_VERSION {
        Ok(())
    } else {
        Err(DecodeError::UnsupportedVersion(v))
    }
}

impl Validate for EdgeStatus {
    fn validate(&self) -> Result<(), DecodeError> {
        version(self.v)?;
        id("site", &self.site, MAX_ID_LEN)?;
        id("edge", &self.edge, MAX_ID_LEN)?;
        label("version", &self.version)?;
        timestamp("started_at_ms", self.started_at_ms)?;
        timestamp("at_ms", self.at_ms)?;
        let mut seen = HashSet::new();
        for (i, cam) in self.cameras.iter().enumerate() {
            let field = || format!("cameras[{i}]");
            prefixed(id("id", &cam.id, MAX_ID_LEN), field)?;
            prefixed(timestamp("since_ms", cam.since_ms), field)?;
            if !seen.insert(cam.id.as_str()) {
                return Err(invalid(
                    format!("cameras[{i}].id"),
                    format!("camera {:?} is listed twice", cam.id),
                ));
            }
        }
        Ok(())
    }
}

impl Validate for DetectedObject {
    fn validate(&self) -> Result<(), DecodeError> {
        label("class", &self.class)?;
        in_unit_range("score", self.score)?;
        let [x1, y1, x2, y2] = self.bbox;
        for x in self.bbox {
            in_unit_range("box", x)?;
        }
        if x1 > x2 || y1 > y2 {
            return Err(invalid(
                "box",
                format!("[{x1}, {y1}, {x2}, {y2}] needs x1 <= x2 and y1 <= y2"),
            ));
        }
        Ok(())
    }
}

impl Validate for SnapshotRef {
    fn validate(&self) -> Result<(), DecodeError> {
        if self.sha256.len() != 64
            || !self
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(invalid("sha256", "is not 64 lowercase hex digits"));
        }
        let max = u32::try_from(MAX_SNAPSHOT_BYTES).unwrap_or(u32::MAX);
        if self.bytes == 0 || self.bytes > max {
            return Err(invalid(
                "bytes",
                format!("{} is not within 1..={max}", self.bytes),
            ));
        }
        if self.width == 0 || self.height == 0 {
            return Err(invalid(
                "width",
                format!("{}x{} image has no pixels", self.width, self.height),
            ));
        }
        Ok(())
    }
}

impl Validate for ModelRef {
    fn validate(&self) -> Result<(), DecodeError> {
        label("name", &self.name)?;
        label("version", &self.version)
    }
}

impl Validate for Location {
    fn validate(&self) -> Result<(), DecodeError> {
        if !(self.lon.is_finite() && (-180.0..=180.0).contains(&self.lon)) {
            return Err(invalid(
                "lon",
                format!("{} is not within -180..=180", self.lon),
            ));
        }
        if !(self.lat.is_finite() && (-90.0..=90.0).contains(&self.lat)) {
            return Err(invalid(
                "lat",
                format!("{} is not within -90..=90", self.lat),
            ));
        }
        Ok(())
    }
}

impl Validate for AlarmEvent {
    fn validate(&self) -> Result<(), DecodeError> {
        version(self.v)?;
        id("alarm_id", &self.alarm_id, MAX_ALARM_ID_LEN)?;
        id("site", &self.site, MAX_ID_LEN)?;
        id("edge", &self.edge, MAX_ID_LEN)?;
        opt_id("camera", self.camera.as_deref())?;
        opt_id("sensor", self.sensor.as_deref())?;
        id("rule_id", &self.rule_id, MAX_ID_LEN)?;
        opt_id("zone", self.zone.as_deref())?;
        opt_id("catalogue_item", self.catalogue_item.as_deref())?;

        if self.kind.is_camera_kind() && self.camera.is_none() {
            return Err(invalid(
                "camera",
                format!("a {} alarm must name its camera", self.kind),
            ));
        }
        match self.kind {
            AlarmKind::SensorThreshold => {
                if self.sensor.is_none() {
                    return Err(invalid(
                        "sensor",
                        "a sensor_threshold alarm must name its sensor",
                    ));
                }
                if self.value.is_none() {
                    return Err(invalid(
                        "value",
                        "a sensor_threshold alarm must carry the reading that tripped it",
                    ));
                }
            }
            AlarmKind::DeviceOffline if self.camera.is_none() && self.sensor.is_none() => {
                return Err(invalid(
                    "sensor",
                    "a device_offline alarm must name a sensor or a camera",
                ));
            }
            _ => {}
        }

        for (i, o) in self.objects.iter().enumerate() {
            prefixed(o.validate(), || format!("objects[{i}]"))?;
        }

        timestamp("started_at_ms", self.started_at_ms)?;
        timestamp("event_at_ms", self.event_at_ms)?;
        if self.event_at_ms < self.started_at_ms {
            return Err(invalid(
                "event_at_ms",
                format!(
                    "{} is before started_at_ms {}",
                    self.event_at_ms, self.started_at_ms
                ),
            ));
        }
        match (self.event, self.ended_at_ms) {
            (AlarmEventType::End, None) => {
                return Err(invalid("ended_at_ms", "an end event must carry it"));
            }
            (AlarmEventType::New | AlarmEventType::Update, Some(_)) => {
                return Err(invalid(
                    "ended_at_ms",
                    format!("a {} event must not carry it", self.event),
                ));
            }
            (_, Some(end)) => {
                timestamp("ended_at_ms", end)?;
                if end < self.started_at_ms {
                    return Err(invalid(
                        "ended_at_ms",
                        format!("{end} is before started_at_ms {}", self.started_at_ms),
                    ));
                }
            }
            (_, None) => {}
        }

        if let Some(s) = &self.snapshot {
            prefixed(s.validate(), || "snapshot".to_owned())?;
        }
        if let Some(m) = &self.model {
            prefixed(m.validate(), || "model".to_owned())?;
        }
        if let Some(l) = &self.location {
            prefixed(l.validate(), || "location".to_owned())?;
        }
        if let Some(v) = self.value
            && !v.is_finite()
        {
            return Err(invalid("value", format!("{v} is not finite")));
        }
        if let Some(u) = &self.unit {
            label("unit", u)?;
        }
        Ok(())
    }
}

/// Index of the first key that repeats an earlier one, if any. Allocates
/// only for long lists; telemetry points usually have a handful of keys.
fn first_duplicate<'a>(keys: impl ExactSizeIterator<Item = &'a str> + Clone) -> Option<usize> {
    if keys.len() <= 16 {
        return keys
            .clone()
            .enumerate()
            .find(|&(i, k)| keys.clone().take(i).any(|prev| prev == k))
            .map(|(i, _)| i);
    }
    let mut seen = HashSet::with_capacity(keys.len());
    keys.enumerate()
        .find(|&(_, k)| !seen.insert(k))
        .map(|(i, _)| i)
}

/// A tag or field key: a series name that is not InfluxDB's `time`.
fn key(field: impl Fn() -> String, k: &str) -> Result<(), DecodeError> {
    prefixed(series_name("key", k), &field)?;
    if k == "time" {
        return Err(invalid(field(), "\"time\" is reserved by InfluxDB"));
    }
    Ok(())
}

impl Validate for Point {
    fn validate(&self) -> Result<(), DecodeError> {
        series_name("measurement", &self.measurement)?;
        timestamp("ts_ms", self.ts_ms)?;
        if self.tags.len() > MAX_TAGS_PER_POINT {
            return Err(invalid(
                "tags",
                format!("{} tags, more than {MAX_TAGS_PER_POINT}", self.tags.len()),
            ));
        }
        for (i, (k, v)) in self.tags.iter().enumerate() {
            let field = || format!("tags[{i}]");
            key(field, k)?;
            prefixed(label("value", v), field)?;
        }
        if let Some(i) = first_duplicate(self.tags.iter().map(|(k, _)| k.as_str())) {
            return Err(invalid(
                format!("tags[{i}]"),
                format!("tag key {:?} appears twice", self.tags[i].0),
            ));
        }
        if self.fields.is_empty() {
            return Err(invalid("fields", "a point needs at least one field"));
        }
        if self.fields.len() > MAX_FIELDS_PER_POINT {
            return Err(invalid(
                "fields",
                format!(
                    "{} fields, more than {MAX_FIELDS_PER_POINT}",
                    self.fields.len()
                ),
            ));
        }
        for (i, (k, v)) in self.fields.iter().enumerate() {
            let field = || format!("fields[{i}]");
            key(field, k)?;
            if let FieldValue::F64(x) = v
                && !x.is_finite()
            {
                return Err(invalid(
                    format!("fields[{i}].value"),
                    format!("{x} is not finite"),
                ));
            }
        }
        if let Some(i) = first_duplicate(self.fields.iter().map(|(k, _)| k.as_str())) {
            return Err(invalid(
                format!("fields[{i}]"),
                format!("field key {:?} appears twice", self.fields[i].0),
            ));
        }
        Ok(())
    }
}

impl Validate for TelemetryBatch {
    fn validate(&self) -> Result<(), DecodeError> {
        version(self.v)?;
        id("site", &self.site, MAX_ID_LEN)?;
        id("edge", &self.edge, MAX_ID_LEN)?;
        timestamp("created_at_ms", self.created_at_ms)?;
        if self.points.len() > MAX_POINTS_PER_BATCH {
            return Err(invalid(
                "points",
                format!(
                    "{} points, more than {MAX_POINTS_PER_BATCH}",
                    self.points.len()
                ),
            ));
        }
        for (i, p) in self.points.iter().enumerate() {
            prefixed(p.validate(), || format!("points[{i}]"))?;
        }
        Ok(())
    }
}

impl Validate for DeliveryAck {
    fn validate(&self) -> Result<(), DecodeError> {
        version(self.v)?;
        id("edge", &self.edge, MAX_ID_LEN)?;
        let mut prev: Option<u64> = None;
        for (i, r) in self.acked.iter().enumerate() {
            if r.first > r.last {
                return Err(invalid(
                    format!("acked[{i}]"),
                    format!("range [{}, {}] has first > last", r.first, r.last),
                ));
            }
            if let Some(p) = prev
                && r.first <= p.saturating_add(1)
            {
                return Err(invalid(
                    format!("acked[{i}]"),
                    format!(
                        "range [{}, {}] is not after the previous one (ending {p}) with a gap: ranges must be sorted and merged",
                        r.first, r.last
                    ),
                ));
            }
            prev = Some(r.last);
        }
        Ok(())
    }
}

impl Validate for ConfigPush {
    fn validate(&self) -> Result<(), DecodeError> {
        version(self.v)?;
        id("edge", &self.edge, MAX_ID_LEN)?;
        if self.format != CONFIG_FORMAT_TOML {
            return Err(invalid(
                "format",
                format!(
                    "{:?} is not a known format (expected \"toml\")",
                    self.format
                ),
            ));
        }
        Ok(())
    }
}

impl Validate for ConfigAck {
    fn validate(&self) -> Result<(), DecodeError> {
        version(self.v)?;
        id("edge", &self.edge, MAX_ID_LEN)?;
        if self.accepted && !self.errors.is_empty() {
            return Err(invalid("errors", "an accepted config must have no errors"));
        }
        if !self.accepted && self.errors.is_empty() {
            return Err(invalid(
                "errors",
                "a rejected config must say at least one reason",
            ));
        }
        Ok(())
    }
}
