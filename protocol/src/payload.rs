//! Payload types: what each topic carries.
//!
//! Every payload struct starts with `v`, the schema version, so a receiver
//! can tell a future version apart before it interprets the rest. JSON field
//! names are snake_case; enum values are lowercase snake_case strings.
//!
//! Decoding accepts unknown fields (forward compatibility within a
//! version) and treats a missing optional field as `None` and a missing list
//! as empty. Encoding always writes every field, `null` included, so the
//! JSON on the wire shows the whole schema.
//!
//! These types carry no guarantees of their own: a value built in code may
//! hold a NaN or a malformed id. Values that come out of [`crate::codec`]'s
//! `decode_*` functions have passed [`crate::Validate`].

use serde::{Deserialize, Serialize};

use crate::vocab::{AlarmKind, SCHEMA_VERSION, Severity, str_enum_traits};

// ---------------------------------------------------------------- status

/// `{prefix}/{site}/{edge}/status`: the edge's liveness and camera states.
///
/// Published retained. The `offline` variant is registered as the MQTT last
/// will, so the broker publishes it when the edge disappears.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeStatus {
    /// Schema version, [`crate::SCHEMA_VERSION`].
    pub v: u16,
    /// Site id; must match the topic's site segment.
    pub site: String,
    /// Edge id; must match the topic's edge segment.
    pub edge: String,
    /// Counter, monotonic within one edge process run (`started_at_ms`);
    /// `(started_at_ms, seq)` orders status messages. Not acknowledged.
    pub seq: u64,
    /// Online or offline.
    pub state: EdgeState,
    /// The edge software version, e.g. "0.1.0".
    pub version: String,
    /// When this edge process started, ms since the Unix epoch.
    pub started_at_ms: i64,
    /// When this status was produced, ms since the Unix epoch.
    pub at_ms: i64,
    /// Every configured camera and its stream state.
    #[serde(default)]
    pub cameras: Vec<CameraStatus>,
}

/// Whether an edge is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeState {
    /// Connected and running.
    Online,
    /// Shut down cleanly, or gone (last will).
    Offline,
}

/// The stream state of one camera.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraStatus {
    /// Camera id from the site configuration.
    pub id: String,
    /// Current state.
    pub state: CameraState,
    /// Since when the camera is in this state, ms since the Unix epoch.
    pub since_ms: i64,
}

/// The state of one camera stream as the edge sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraState {
    /// Opening the RTSP session or waiting for the first keyframe.
    Connecting,
    /// Frames are arriving.
    Streaming,
    /// Connected but no frame within the watchdog interval.
    Stale,
    /// Not reachable; the edge is backing off between attempts.
    Offline,
}

// ---------------------------------------------------------------- alarms

/// `{prefix}/{site}/{edge}/alarms`: one event in the life of an alarm.
///
/// An alarm lives from its first `new` event, through any number of
/// `update`s, to one `end`. All events of one alarm share `alarm_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmEvent {
    /// Schema version, [`crate::SCHEMA_VERSION`].
    pub v: u16,
    /// Stable id of the alarm, the same in every event of it (up to
    /// [`crate::MAX_ALARM_ID_LEN`] chars of `[A-Za-z0-9_.:-]`).
    pub alarm_id: String,
    /// Which event in the alarm's life this is.
    pub event: AlarmEventType,
    /// Per-edge outbox sequence number of this record; ingest acknowledges it.
    pub seq: u64,
    /// Site id; must match the topic.
    pub site: String,
    /// Edge id; must match the topic.
    pub edge: String,
    /// Camera id, for camera alarms.
    #[serde(default)]
    pub camera: Option<String>,
    /// Sensor id, for sensor and device alarms.
    #[serde(default)]
    pub sensor: Option<String>,
    /// Id of the configured rule that raised the alarm.
    pub rule_id: String,
    /// What kind of alarm.
    pub kind: AlarmKind,
    /// How serious.
    pub severity: Severity,
    /// Zone id the alarm is about, if the rule is zoned.
    #[serde(default)]
    pub zone: Option<String>,
    /// Objects that triggered the rule in the frame of this event.
    #[serde(default)]
    pub objects: Vec<DetectedObject>,
    /// When the alarm started, ms since the Unix epoch.
    pub started_at_ms: i64,
    /// When this event happened, ms since the Unix epoch.
    pub event_at_ms: i64,
    /// When the alarm ended; set exactly on `end` events.
    #[serde(default)]
    pub ended_at_ms: Option<i64>,
    /// The JPEG evidence published on `snapshots/{alarm_id}`, if any.
    #[serde(default)]
    pub snapshot: Option<SnapshotRef>,
    /// The detector model that saw it, for camera alarms.
    #[serde(default)]
    pub model: Option<ModelRef>,
    /// Where it happened (WGS 84).
    #[serde(default)]
    pub location: Option<Location>,
    /// Event-catalogue item code this alarm maps to.
    #[serde(default)]
    pub catalogue_item: Option<String>,
    /// For sensor alarms: the reading that tripped the threshold.
    #[serde(default)]
    pub value: Option<f64>,
    /// Unit of `value`, e.g. "ppm".
    #[serde(default)]
    pub unit: Option<String>,
    /// Free text for people.
    #[serde(default)]
    pub message: Option<String>,
}

/// Which event in an alarm's life an [`AlarmEvent`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmEventType {
    /// The first event of the alarm.
    New,
    /// The alarm is still active; objects, severity or snapshot changed.
    Update,
    /// The alarm is over; `ended_at_ms` is set.
    End,
}

impl AlarmEventType {
    /// Every value, in lifecycle order.
    pub const ALL: &'static [AlarmEventType] = &[Self::New, Self::Update, Self::End];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Update => "update",
            Self::End => "end",
        }
    }
}

str_enum_traits!(AlarmEventType, "alarm event type", "new, update, end");

/// One detected object in the frame an alarm event refers to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectedObject {
    /// Class label from the model, e.g. "person".
    pub class: String,
    /// Detector confidence, `0..=1`.
    pub score: f32,
    /// Bounding box `[x1, y1, x2, y2]`, normalised `0..=1` to the frame,
    /// origin top-left, `x1 <= x2` and `y1 <= y2`. JSON key `box`.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// Tracker id, stable while the object is tracked on this camera.
    #[serde(default)]
    pub track_id: Option<u64>,
}

/// Reference to the JPEG evidence of an alarm.
///
/// The JPEG itself travels on `snapshots/{alarm_id}` as its own outbox
/// record; ingest acknowledges that record by naming `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRef {
    /// Outbox sequence number of the snapshot record.
    pub seq: u64,
    /// SHA-256 of the JPEG bytes, 64 lowercase hex digits.
    pub sha256: String,
    /// Size of the JPEG in bytes, `1..=MAX_SNAPSHOT_BYTES`.
    pub bytes: u32,
    /// Image width in pixels, > 0.
    pub width: u32,
    /// Image height in pixels, > 0.
    pub height: u32,
}

/// Which detector model produced an alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    /// Model name from its manifest, e.g. "nanodet-m".
    pub name: String,
    /// Model version from its manifest.
    pub version: String,
}

/// A WGS 84 position.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// Longitude in degrees, `-180..=180`.
    pub lon: f64,
    /// Latitude in degrees, `-90..=90`.
    pub lat: f64,
}

// ------------------------------------------------------------- telemetry

/// `{prefix}/{site}/{edge}/telemetry`: a batch of time-series points,
/// encoded with postcard (see [`crate::encode_telemetry`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetryBatch {
    /// Schema version; the first varint of the encoding.
    pub v: u16,
    /// Site id; must match the topic.
    pub site: String,
    /// Edge id; must match the topic.
    pub edge: String,
    /// Per-edge outbox sequence number of this batch; ingest acknowledges it.
    pub seq: u64,
    /// When the batch was closed, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// The points, at most [`crate::MAX_POINTS_PER_BATCH`].
    pub points: Vec<Point>,
}

/// One time-series point, shaped like an InfluxDB line-protocol line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Measurement name, e.g. "camera_fps".
    pub measurement: String,
    /// Timestamp, ms since the Unix epoch.
    pub ts_ms: i64,
    /// Tag key/value pairs; keys unique within the point.
    pub tags: Vec<(String, String)>,
    /// Field key/value pairs, at least one; keys unique within the point.
    pub fields: Vec<(String, FieldValue)>,
}

/// A field value. JSON form: `{"f64": 1.5}`, `{"str": "x"}`, ...
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldValue {
    /// A float; must be finite.
    F64(f64),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer.
    U64(u64),
    /// A boolean.
    Bool(bool),
    /// A string.
    Str(String),
}

// ------------------------------------------------------------------ acks

/// `{prefix}/{site}/{edge}/ack`: the sequence numbers ingest has durably
/// stored. The edge forgets an outbox record only when it is acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAck {
    /// Schema version, [`crate::SCHEMA_VERSION`].
    pub v: u16,
    /// Edge id; must match the topic.
    pub edge: String,
    /// Acknowledged sequence numbers as inclusive ranges, sorted ascending,
    /// disjoint and not adjacent (merged).
    pub acked: Vec<SeqRange>,
}

/// An inclusive range of sequence numbers, `first <= last`. JSON: `[first, last]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "(u64, u64)", into = "(u64, u64)")]
pub struct SeqRange {
    /// First sequence number in the range.
    pub first: u64,
    /// Last sequence number in the range (inclusive).
    pub last: u64,
}

impl From<(u64, u64)> for SeqRange {
    fn from((first, last): (u64, u64)) -> Self {
        SeqRange { first, last }
    }
}

impl From<SeqRange> for (u64, u64) {
    fn from(r: SeqRange) -> Self {
        (r.first, r.last)
    }
}

impl SeqRange {
    /// Whether `seq` lies in the range.
    pub fn contains(&self, seq: u64) -> bool {
        self.first <= seq && seq <= self.last
    }
}

impl DeliveryAck {
    /// Builds an ack for `edge` from sequence numbers in any order, with
    /// duplicates; the ranges come out sorted and merged.
    pub fn from_seqs(edge: &str, seqs: impl IntoIterator<Item = u64>) -> Self {
        let mut all: Vec<u64> = seqs.into_iter().collect();
        all.sort_unstable();
        all.dedup();
        let mut acked: Vec<SeqRange> = Vec::new();
        for seq in all {
            match acked.last_mut() {
                Some(r) if r.last.checked_add(1) == Some(seq) => r.last = seq,
                _ => acked.push(SeqRange {
                    first: seq,
                    last: seq,
                }),
            }
        }
        DeliveryAck {
            v: SCHEMA_VERSION,
            edge: edge.to_owned(),
            acked,
        }
    }

    /// Whether `seq` is acknowledged. Relies on the ranges being sorted,
    /// which [`DeliveryAck::from_seqs`] and [`crate::decode_ack`] ensure.
    pub fn contains(&self, seq: u64) -> bool {
        let idx = self.acked.partition_point(|r| r.last < seq);
        self.acked.get(idx).is_some_and(|r| r.contains(seq))
    }

    /// Every acknowledged sequence number, ascending.
    pub fn seqs(&self) -> impl Iterator<Item = u64> + '_ {
        self.acked.iter().flat_map(|r| r.first..=r.last)
    }
}

// ---------------------------------------------------------------- config

/// `{prefix}/{site}/{edge}/config`: a configuration pushed from the centre.
/// Published retained, so an edge that connects later still gets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigPush {
    /// Schema version, [`crate::SCHEMA_VERSION`].
    pub v: u16,
    /// Edge id the configuration is for; must match the topic.
    pub edge: String,
    /// Revision, increasing per edge; the edge ignores one not newer than
    /// what it runs.
    pub revision: u64,
    /// Format of `body`; only "toml" is defined.
    pub format: String,
    /// The configuration document.
    pub body: String,
}

/// `{prefix}/{site}/{edge}/config/ack`: the edge's verdict on a [`ConfigPush`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigAck {
    /// Schema version, [`crate::SCHEMA_VERSION`].
    pub v: u16,
    /// Edge id; must match the topic.
    pub edge: String,
    /// The revision this answers.
    pub revision: u64,
    /// Whether the edge applied it. `accepted` is true exactly when
    /// `errors` is empty.
    pub accepted: bool,
    /// Every problem found, with file, line and key where known.
    #[serde(default)]
    pub errors: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_seqs_sorts_dedups_and_merges() {
        let a = DeliveryAck::from_seqs("e1", [9, 3, 1, 2, 3, 7, 10, u64::MAX, 0]);
        let ranges: Vec<(u64, u64)> = a.acked.iter().map(|&r| r.into()).collect();
        assert_eq!(ranges, [(0, 3), (7, 7), (9, 10), (u64::MAX, u64::MAX)]);
        assert_eq!(a.v, crate::SCHEMA_VERSION);
        assert!(DeliveryAck::from_seqs("e1", []).acked.is_empty());
    }

    #[test]
    fn contains_matches_the_input_set() {
        let seqs = [0u64, 1, 2, 5, 8, 9, 100, u64::MAX];
        let a = DeliveryAck::from_seqs("e1", seqs);
        for s in 0..=120u64 {
            assert_eq!(a.contains(s), seqs.contains(&s), "{s}");
        }
        assert!(a.contains(u64::MAX));
        assert!(!a.contains(u64::MAX - 1));
        assert_eq!(a.seqs().collect::<Vec<_>>(), seqs);
    }

    #[test]
    fn enums_parse_their_wire_names() {
        // AlarmKind and Severity: see `crate::vocab`'s tests.
        for e in AlarmEventType::ALL {
            assert_eq!(e.as_str().parse::<AlarmEventType>(), Ok(*e));
            assert_eq!(serde_json::to_value(e).unwrap(), e.as_str());
        }
    }
}
