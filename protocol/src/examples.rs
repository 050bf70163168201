//! Sample payloads: one valid value of every payload type, and every topic
//! kind.
//!
//! They are the values behind the golden files in `protocol/testdata/`
//! (a test checks that each file decodes to the value built here), so they
//! double as ready-made, valid inputs for other crates' tests. Every value
//! returned here passes [`crate::Validate`].

use crate::payload::{
    AlarmEvent, AlarmEventType, CameraState, CameraStatus, ConfigAck, ConfigPush, DeliveryAck,
    DetectedObject, EdgeState, EdgeStatus, FieldValue, Location, ModelRef, Point, SnapshotRef,
    TelemetryBatch,
};
use crate::topic::TopicKind;
use crate::vocab::{AlarmKind, SCHEMA_VERSION, Severity};

/// Site id used by every sample.
pub const SITE: &str = "hx-park";
/// Edge id used by every sample.
pub const EDGE: &str = "edge-07";
/// Alarm id of the camera alarm samples (new, update, end).
pub const ALARM_ID: &str = "edge-07:cam-gate-n:20250601T083000Z:0001";
/// 2025-06-01T08:30:00Z in ms since the Unix epoch.
pub const T0_MS: i64 = 1_748_766_600_000;

/// An online edge with three cameras in different states.
pub fn status() -> EdgeStatus {
    EdgeStatus {
        v: SCHEMA_VERSION,
        site: SITE.to_owned(),
        edge: EDGE.to_owned(),
        seq: 42,
        state: EdgeState::Online,
        version: "0.1.0".to_owned(),
        started_at_ms: T0_MS - 3_600_000,
        at_ms: T0_MS,
        cameras: vec![
            CameraStatus {
                id: "cam-gate-n".to_owned(),
                state: CameraState::Streaming,
                since_ms: T0_MS - 3_590_000,
            },
            CameraStatus {
                id: "cam-dock-2".to_owned(),
                state: CameraState::Stale,
                since_ms: T0_MS - 12_000,
            },
            CameraStatus {
                id: "eagle-1".to_owned(),
                state: CameraState::Connecting,
                since_ms: T0_MS - 2_000,
            },
        ],
    }
}

fn person(score: f32, bbox: [f32; 4], track_id: u64) -> DetectedObject {
    DetectedObject {
        class: "person".to_owned(),
        score,
        bbox,
        track_id: Some(track_id),
    }
}

/// The first event of an intrusion alarm, with its snapshot reference.
pub fn alarm_new() -> AlarmEvent {
    AlarmEvent {
        v: SCHEMA_VERSION,
        alarm_id: ALARM_ID.to_owned(),
        event: AlarmEventType::New,
        seq: 1001,
        site: SITE.to_owned(),
        edge: EDGE.to_owned(),
        camera: Some("cam-gate-n".to_owned()),
        sensor: None,
        rule_id: "north-fence-intrusion".to_owned(),
        kind: AlarmKind::Intrusion,
        severity: Severity::Major,
        zone: Some("north-fence".to_owned()),
        objects: vec![person(0.87, [0.412, 0.305, 0.478, 0.69], 17)],
        started_at_ms: T0_MS,
        event_at_ms: T0_MS,
        ended_at_ms: None,
        snapshot: Some(SnapshotRef {
            seq: 1000,
            sha256: "9f2c4b6a1d3e5f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8".to_owned(),
            bytes: 48_213,
            width: 1280,
            height: 720,
        }),
        model: Some(ModelRef {
            name: "nanodet-m".to_owned(),
            version: "1.0".to_owned(),
        }),
        location: Some(Location {
            lon: 120.155_12,
            lat: 30.274_08,
        }),
        catalogue_item: Some("020301".to_owned()),
        value: None,
        unit: None,
        message: Some("person inside north fence zone".to_owned()),
    }
}

/// A later event of the same alarm: a second person, higher severity, a
/// newer snapshot.
pub fn alarm_update() -> AlarmEvent {
    let mut a = alarm_new();
    a.event = AlarmEventType::Update;
    a.seq = 1004;
    a.severity = Severity::Critical;
    a.objects = vec![
        person(0.91, [0.455, 0.31, 0.52, 0.702], 17),
        person(0.64, [0.6, 0.28, 0.655, 0.611], 23),
    ];
    a.event_at_ms = T0_MS + 4_200;
    a.snapshot = Some(SnapshotRef {
        seq: 1003,
        sha256: "0d1e2f3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6".to_owned(),
        bytes: 51_007,
        width: 1280,
        height: 720,
    });
    a.message = Some("2 persons inside north fence zone".to_owned());
    a
}

/// The end of the same alarm.
pub fn alarm_end() -> AlarmEvent {
    let mut a = alarm_new();
    a.event = AlarmEventType::End;
    a.seq = 1009;
    a.severity = Severity::Critical;
    a.objects = Vec::new();
    a.event_at_ms = T0_MS + 31_500;
    a.ended_at_ms = Some(T0_MS + 31_500);
    a.snapshot = None;
    a.message = Some("zone clear for 5 s".to_owned());
    a
}

/// A sensor threshold alarm: no camera, a reading and its unit.
pub fn alarm_sensor() -> AlarmEvent {
    AlarmEvent {
        v: SCHEMA_VERSION,
        alarm_id: "edge-07:gas-03:20250601T084512Z:0002".to_owned(),
        event: AlarmEventType::New,
        seq: 1010,
        site: SITE.to_owned(),
        edge: EDGE.to_owned(),
        camera: None,
        sensor: Some("gas-03".to_owned()),
        rule_id: "gas-03-h2s-high".to_owned(),
        kind: AlarmKind::SensorThreshold,
        severity: Severity::Critical,
        zone: Some("chem-store".to_owned()),
        objects: Vec::new(),
        started_at_ms: T0_MS + 912_000,
        event_at_ms: T0_MS + 912_000,
        ended_at_ms: None,
        snapshot: None,
        model: None,
        location: Some(Location {
            lon: 120.157_9,
            lat: 30.272_65,
        }),
        catalogue_item: Some("040102".to_owned()),
        value: Some(15.5),
        unit: Some("ppm".to_owned()),
        message: Some("H2S 15.5 ppm above limit 10 ppm".to_owned()),
    }
}

/// A batch with one point of every field type.
pub fn telemetry() -> TelemetryBatch {
    let tag = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    TelemetryBatch {
        v: SCHEMA_VERSION,
        site: SITE.to_owned(),
        edge: EDGE.to_owned(),
        seq: 1002,
        created_at_ms: T0_MS + 10_000,
        points: vec![
            Point {
                measurement: "camera".to_owned(),
                ts_ms: T0_MS + 5_000,
                tags: vec![tag("camera", "cam-gate-n")],
                fields: vec![
                    ("fps".to_owned(), FieldValue::F64(12.5)),
                    ("frames".to_owned(), FieldValue::U64(180_342)),
                    ("streaming".to_owned(), FieldValue::Bool(true)),
                ],
            },
            Point {
                measurement: "sensor".to_owned(),
                ts_ms: T0_MS + 6_000,
                tags: vec![tag("sensor", "gas-03"), tag("quantity", "h2s")],
                fields: vec![("value".to_owned(), FieldValue::F64(3.25))],
            },
            Point {
                measurement: "edge".to_owned(),
                ts_ms: T0_MS + 10_000,
                tags: Vec::new(),
                fields: vec![
                    ("outbox_backlog".to_owned(), FieldValue::I64(-1)),
                    ("build".to_owned(), FieldValue::Str("0.1.0".to_owned())),
                ],
            },
        ],
    }
}

/// An ack of 1..=5, 7 and 9..=12.
pub fn ack() -> DeliveryAck {
    DeliveryAck::from_seqs(EDGE, [1, 2, 3, 4, 5, 7, 9, 10, 11, 12])
}

/// A configuration push, revision 3.
pub fn config_push() -> ConfigPush {
    ConfigPush {
        v: SCHEMA_VERSION,
        edge: EDGE.to_owned(),
        revision: 3,
        format: "toml".to_owned(),
        body: "[edge]\nid = \"edge-07\"\nsite = \"hx-park\"\n\n[[cameras]]\nid = \"cam-gate-n\"\nurl = \"rtsp://10.0.7.21/stream1\"\n".to_owned(),
    }
}

/// A rejection of revision 3 with the edge's reasons.
pub fn config_ack() -> ConfigAck {
    ConfigAck {
        v: SCHEMA_VERSION,
        edge: EDGE.to_owned(),
        revision: 3,
        accepted: false,
        errors: vec![
            "config.toml:5: cameras[0].model: missing; every camera needs a detector model"
                .to_owned(),
        ],
    }
}

/// Every [`TopicKind`], in wire order; the snapshot one is for [`ALARM_ID`].
pub fn topic_kinds() -> Vec<TopicKind> {
    vec![
        TopicKind::Status,
        TopicKind::Alarms,
        TopicKind::Telemetry,
        TopicKind::Snapshot {
            alarm_id: ALARM_ID.to_owned(),
        },
        TopicKind::Config,
        TopicKind::ConfigAck,
        TopicKind::Ack,
    ]
}
