//! The edge box configuration: one TOML file per box,
//! `sites/<site>/edges/<edge-id>.toml`, read by `parkwatch-edge --config`.
//!
//! [`load_edge_config`] parses the file with `deny_unknown_fields`
//! everywhere and then runs [`validate_edge`], which collects every semantic
//! problem (ids, geometry, rule references, ranges, URLs, sensor registers)
//! with its file, line and key. A config returned by it is guaranteed to
//! satisfy every rule listed in `docs/configuration.md`, so the edge can use
//! it without re-checking: zones are simple polygons inside the image, rules
//! name zones and lines of their own camera, and every kind's required keys
//! are present.
//!
//! Durations are plain numbers of seconds (integers or floats) in TOML;
//! helpers such as [`CameraConfig::stale_after`] turn them into
//! [`Duration`]s.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use parkwatch_protocol::{IdError, PrefixError, check_prefix, validate_config_id};
use serde::{Deserialize, Serialize};

use crate::coco::coco_class_id;
use crate::diag::{Problem, Problems, SourceMap, is_under, parse_lenient};
use crate::geometry::{Point, check_simple};
use crate::time::TimeWindow;

/// Where the ONNX Runtime library is looked for when neither the config
/// nor `ORT_DYLIB_PATH` names it.
pub const DEFAULT_ONNXRUNTIME: &str = "/opt/parkwatch/lib/libonnxruntime.so";
/// The parent of the default per-edge outbox directory.
pub const DEFAULT_OUTBOX_ROOT: &str = "/var/lib/parkwatch/outbox";

/// One edge box: its identity, uplink, detector and the devices it serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// Required. The box's id, `[A-Za-z0-9_.-]{1,64}`; also its MQTT client
    /// id and topic level. Must match the file name in a site directory.
    pub edge_id: String,
    /// Required. The site id (topic level), same character set.
    pub site: String,
    /// Optional. The point (pole, rooftop) the box sits at; in a site
    /// directory it must be a point of `site.toml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point: Option<String>,
    /// Optional. Path of `libonnxruntime.so`; default: env `ORT_DYLIB_PATH`,
    /// else `/opt/parkwatch/lib/libonnxruntime.so`. Relative paths resolve
    /// against the config file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onnxruntime: Option<PathBuf>,
    /// The MQTT uplink; all keys have defaults.
    #[serde(default)]
    pub mqtt: MqttConfig,
    /// Telemetry batching; all keys have defaults.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// The durable on-disk outbox; all keys have defaults.
    #[serde(default)]
    pub outbox: OutboxConfig,
    /// The object detector; all keys have defaults.
    #[serde(default)]
    pub detector: DetectorConfig,
    /// The Prometheus metrics listener; default `127.0.0.1:9108`.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Cameras pulled by this box (`[[cameras]]`); default none.
    #[serde(default)]
    pub cameras: Vec<CameraConfig>,
    /// Modbus TCP sensors polled by this box (`[[sensors]]`); default none.
    #[serde(default)]
    pub sensors: Vec<SensorConfig>,
    /// Directory of the file this was loaded from (relative paths resolve
    /// against it); set by the loader, not read from TOML.
    #[serde(skip)]
    pub config_dir: PathBuf,
}

/// The MQTT uplink.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker host name or address; default `"127.0.0.1"`.
    #[serde(default = "default_mqtt_host")]
    pub host: String,
    /// Broker port; default 1883.
    #[serde(default = "default_mqtt_port")]
    pub port: u16,
    /// Optional user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Optional password (prefer `password_file`); not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Optional file holding the password (surrounding whitespace trimmed);
    /// relative to the config file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// First topic level; default `"parkwatch"`. At most 256 bytes; no `+`,
    /// `#`, empty levels, leading/trailing `/` or leading `$`.
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    /// MQTT keepalive in seconds, 5..=65535; default 30.
    #[serde(default = "default_keepalive")]
    pub keepalive_secs: u64,
    /// Optional CA certificate (PEM); when set the connection uses TLS.
    /// Relative to the config file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

impl fmt::Debug for MqttConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("password_file", &self.password_file)
            .field("topic_prefix", &self.topic_prefix)
            .field("keepalive_secs", &self.keepalive_secs)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            host: default_mqtt_host(),
            port: default_mqtt_port(),
            username: None,
            password: None,
            password_file: None,
            topic_prefix: default_topic_prefix(),
            keepalive_secs: default_keepalive(),
            ca_file: None,
        }
    }
}

/// Telemetry batching.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Seconds between telemetry batches (sensor readings, stream and box
    /// health); > 0; default 10.
    #[serde(default = "default_telemetry_interval")]
    pub interval_secs: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            interval_secs: default_telemetry_interval(),
        }
    }
}

impl TelemetryConfig {
    /// `interval_secs` as a duration.
    pub fn interval(&self) -> Duration {
        secs(self.interval_secs)
    }
}

/// When the outbox calls fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// After every record: nothing acknowledged is ever lost, slowest.
    Always,
    /// Once per write batch (the default): a power cut loses at most the
    /// batch being written.
    #[default]
    Batch,
    /// Never; the OS decides. For tests and throw-away boxes.
    Never,
}

/// The durable outbox: alarms and telemetry wait here until ingest
/// confirms it stored them (its delivery ack, not the broker's PubAck).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// Directory; default `/var/lib/parkwatch/outbox/<edge_id>` (see
    /// [`EdgeConfig::outbox_dir`]). Relative to the config file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Size cap in bytes, >= 1 MiB; default 1 GiB (1073741824).
    #[serde(default = "default_outbox_max_bytes")]
    pub max_bytes: u64,
    /// `"always"`, `"batch"` or `"never"`; default `"batch"`.
    #[serde(default)]
    pub fsync: FsyncPolicy,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            dir: None,
            max_bytes: default_outbox_max_bytes(),
            fsync: FsyncPolicy::default(),
        }
    }
}

/// The object detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorConfig {
    /// Model manifest (TOML); default `"models/nanodet-m-320.toml"`.
    /// A relative path is tried against the config file's directory, then
    /// the working directory (see [`EdgeConfig::model_manifest_path`]).
    #[serde(default = "default_model")]
    pub model: PathBuf,
    /// Inference threads, 1..=64; default 2.
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Detections below this score are dropped, 0..=1; default 0.35.
    #[serde(default = "default_min_score")]
    pub min_score: f64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            model: default_model(),
            threads: default_threads(),
            min_score: default_min_score(),
        }
    }
}

/// The Prometheus metrics listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `host:port` to serve `/metrics` on; default `"127.0.0.1:9108"`;
    /// `""` disables the listener.
    #[serde(default = "default_metrics_listen")]
    pub listen: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: default_metrics_listen(),
        }
    }
}

impl MetricsConfig {
    /// The listen address, or `None` when disabled (or, before validation,
    /// unparsable).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        if self.listen.is_empty() {
            None
        } else {
            self.listen.parse().ok()
        }
    }
}

/// What kind of video source a camera is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraKind {
    /// An ordinary fixed camera (the default).
    #[default]
    Fixed,
    /// A high-altitude "eagle-eye" panoramic system (stitched stream).
    Panoramic,
}

/// One camera (video source) pulled over RTSP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// Required. Id, `[A-Za-z0-9_.-]{1,64}`, unique in the file (and in a
    /// site directory, across the site).
    pub id: String,
    /// Optional human name, e.g. "North gate".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Required. `rtsp://` or `rtsps://` URL, credentials allowed
    /// (`rtsp://user:pass@host:554/path`); log it with [`Self::redacted_url`].
    pub url: String,
    /// `"fixed"` or `"panoramic"`; default `"fixed"`.
    #[serde(default)]
    pub kind: CameraKind,
    /// Whether the box pulls this camera; default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Frames per second run through the detector, > 0 and <= 60; default 5.
    #[serde(default = "default_detect_fps")]
    pub detect_fps: f64,
    /// Decode only keyframes (cheap, for slow scenes); default false.
    #[serde(default)]
    pub keyframes_only: bool,
    /// Frame watchdog: the stream counts as stale (reconnect, and a
    /// `camera_offline` alarm) after this many seconds without a frame,
    /// > 0; default 10.
    #[serde(default = "default_stale_after")]
    pub stale_after_secs: f64,
    /// Motion gating: while the scene is static the detector runs only
    /// every this many seconds, >= 0 (0 disables gating); default 2.
    #[serde(default = "default_static_recheck")]
    pub static_recheck_secs: f64,
    /// Optional compass heading of the view, 0..360 degrees (0 = north).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heading_deg: Option<f64>,
    /// Zones (`[[cameras.zones]]`); default none.
    #[serde(default)]
    pub zones: Vec<ZoneConfig>,
    /// Lines (`[[cameras.lines]]`); default none.
    #[serde(default)]
    pub lines: Vec<LineConfig>,
    /// Rules (`[[cameras.rules]]`); default none.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

impl CameraConfig {
    /// The URL with the password replaced by `***` (the user is kept), for
    /// logs and status messages. Never fails; an unparsable URL is redacted
    /// by the same rule (everything between the first `:` of the authority
    /// and its last `@`).
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// `stale_after_secs` as a duration.
    pub fn stale_after(&self) -> Duration {
        secs(self.stale_after_secs)
    }

    /// `static_recheck_secs` as a duration.
    pub fn static_recheck(&self) -> Duration {
        secs(self.static_recheck_secs)
    }

    /// The zone with this id.
    pub fn zone(&self, id: &str) -> Option<&ZoneConfig> {
        self.zones.iter().find(|z| z.id == id)
    }

    /// The line with this id.
    pub fn line(&self, id: &str) -> Option<&LineConfig> {
        self.lines.iter().find(|l| l.id == id)
    }
}

/// Replaces the password of a URL's userinfo with `***`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let auth_start = scheme_end + 3;
    let rest = &url[auth_start..];
    let auth_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..auth_len];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let user = match userinfo.find(':') {
        Some(colon) => format!("{}:***", &userinfo[..colon]),
        None => userinfo.to_owned(),
    };
    format!("{}{}{}", &url[..auth_start], user, &rest[at..])
}

/// A polygonal zone in normalised image coordinates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    /// Required. Id, unique among the camera's zones and lines.
    pub id: String,
    /// Required. Vertices `[x, y]`, each 0..=1, origin top-left, x right,
    /// y down; >= 3 points, a simple polygon (no self-intersection, non-zero
    /// area); implicitly closed (do not repeat the first point).
    pub polygon: Vec<Point>,
}

/// A directed segment A -> B in normalised image coordinates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineConfig {
    /// Required. Id, unique among the camera's zones and lines.
    pub id: String,
    /// Required. `[A, B]`, each point 0..=1, A != B.
    pub points: [Point; 2],
}

impl LineConfig {
    /// Which side of A -> B `p` is on: negative = left of A -> B as seen on
    /// the image (y down), positive = right, 0 = on the line.
    /// `(Bx-Ax)*(Py-Ay) - (By-Ay)*(Px-Ax)`.
    pub fn side(&self, p: Point) -> f64 {
        crate::geometry::cross(self.points[0], self.points[1], p)
    }
}

/// What a rule watches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// An object of `classes` is inside `zone` (for `seconds`, default 0).
    Intrusion,
    /// An object stays inside `zone` for `seconds` (required, > 0).
    Dwell,
    /// An object's track crosses `line` in `direction`.
    LineCrossing,
    /// At least `min_count` objects are inside `zone` for `seconds` (default 0).
    Crowd,
}

impl RuleKind {
    /// The snake_case name, as in TOML and alarm payloads.
    pub fn as_str(&self) -> &'static str {
        match self {
            RuleKind::Intrusion => "intrusion",
            RuleKind::Dwell => "dwell",
            RuleKind::LineCrossing => "line_crossing",
            RuleKind::Crowd => "crowd",
        }
    }
}

/// How serious an alarm is: the wire type, defined once in
/// `parkwatch-protocol` (re-exported as `parkwatch_config::Severity`). A
/// rule that names none is `major` ([`RuleConfig::severity`]).
pub use parkwatch_protocol::Severity;

/// Which crossings of a line count.
///
/// Stand at A looking towards B on the image as displayed (y down). An
/// object crossing from your left to your right crosses `a_to_b`; from
/// right to left, `b_to_a`. With [`LineConfig::side`], `a_to_b` is a track
/// whose side goes from negative to positive. Example: A = (0.2, 0.6),
/// B = (0.8, 0.6) (left to right across the image): `a_to_b` is moving
/// down the image, `b_to_a` moving up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the left of A -> B to its right.
    AToB,
    /// From the right of A -> B to its left.
    BToA,
    /// Either way (the default).
    #[default]
    Both,
}

impl Direction {
    /// Whether a move from side `before` to side `after` (values of
    /// [`LineConfig::side`]) is a crossing this direction counts.
    pub fn counts(&self, before: f64, after: f64) -> bool {
        let a_to_b = before < 0.0 && after > 0.0;
        let b_to_a = before > 0.0 && after < 0.0;
        match self {
            Direction::AToB => a_to_b,
            Direction::BToA => b_to_a,
            Direction::Both => a_to_b || b_to_a,
        }
    }
}

/// One alarm rule of a camera.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Required. Id, unique within the camera.
    pub id: String,
    /// Required. `intrusion` | `dwell` | `line_crossing` | `crowd`.
    pub kind: RuleKind,
    /// Zone id of this camera; required for intrusion, dwell and crowd,
    /// not allowed for line_crossing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Line id of this camera; required for line_crossing, not allowed otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<String>,
    /// Required, non-empty: COCO class names (e.g. `"person"`, `"car"`).
    pub classes: Vec<String>,
    /// Optional score threshold 0..=1; default the detector's `min_score`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_score: Option<f64>,
    /// `info` | `minor` | `major` | `critical`; default `major`.
    #[serde(default = "default_severity")]
    pub severity: Severity,
    /// Seconds, >= 0. Dwell: time inside the zone (required, > 0).
    /// Crowd: time the count must hold (default 0). Intrusion: time inside
    /// before alarming (default 0). Not allowed for line_crossing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// Crowd only, required, >= 2: objects inside the zone at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_count: Option<u32>,
    /// line_crossing only: `a_to_b` | `b_to_a` | `both`; default `both`.
    #[serde(default)]
    pub direction: Direction,
    /// After an alarm of this rule ends, a new one is not raised for this
    /// many seconds, >= 0; default 0.
    #[serde(default)]
    pub cooldown_secs: f64,
    /// Local-time windows `"HH:MM-HH:MM"` (may wrap midnight) when the rule
    /// is active; default always.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active_hours: Vec<TimeWindow>,
    /// Optional event catalogue item code overriding the site's mapping of
    /// this alarm kind (in a site directory it must exist in the catalogue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalogue_item: Option<String>,
}

impl RuleConfig {
    /// `seconds`, or its default 0.
    pub fn hold_secs(&self) -> f64 {
        self.seconds.unwrap_or(0.0)
    }

    /// `seconds` (default 0) as a duration.
    pub fn hold(&self) -> Duration {
        secs(self.hold_secs())
    }

    /// `cooldown_secs` as a duration.
    pub fn cooldown(&self) -> Duration {
        secs(self.cooldown_secs)
    }

    /// The score threshold: the rule's, else `detector_min_score`.
    pub fn score_threshold(&self, detector_min_score: f64) -> f64 {
        self.min_score.unwrap_or(detector_min_score)
    }

    /// Whether the rule is active at `minute` (minutes after local midnight).
    pub fn active_at(&self, minute: u16) -> bool {
        self.active_hours.is_empty() || self.active_hours.iter().any(|w| w.contains(minute))
    }
}

/// What a sensor measures (and so its default unit and catalogue mapping).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorKind {
    /// PM2.5 particulate, ug/m3.
    Pm25,
    /// PM10 particulate, ug/m3.
    Pm10,
    /// Sound level, dB(A).
    Noise,
    /// Air temperature, degC.
    Temperature,
    /// Relative humidity, %RH.
    Humidity,
    /// Combustible gas, %LEL.
    GasLel,
    /// Water level, m.
    WaterLevel,
    /// Anything else; give `unit`.
    Other,
}

impl SensorKind {
    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            SensorKind::Pm25 => "pm25",
            SensorKind::Pm10 => "pm10",
            SensorKind::Noise => "noise",
            SensorKind::Temperature => "temperature",
            SensorKind::Humidity => "humidity",
            SensorKind::GasLel => "gas_lel",
            SensorKind::WaterLevel => "water_level",
            SensorKind::Other => "other",
        }
    }

    /// The unit used when the sensor gives none.
    pub fn default_unit(&self) -> &'static str {
        match self {
            SensorKind::Pm25 | SensorKind::Pm10 => "ug/m3",
            SensorKind::Noise => "dB(A)",
            SensorKind::Temperature => "degC",
            SensorKind::Humidity => "%RH",
            SensorKind::GasLel => "%LEL",
            SensorKind::WaterLevel => "m",
            SensorKind::Other => "",
        }
    }
}

/// Which Modbus register table is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterType {
    /// Holding registers, function code 3 (the default).
    #[default]
    Holding,
    /// Input registers, function code 4.
    Input,
}

/// How the raw register value is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    /// One register, unsigned (the default).
    #[default]
    U16,
    /// One register, two's complement.
    I16,
    /// Two registers, unsigned.
    U32,
    /// Two registers, two's complement.
    I32,
    /// Two registers, IEEE 754 single.
    F32,
}

impl DataType {
    /// Number of 16-bit registers read.
    pub fn registers(&self) -> u16 {
        match self {
            DataType::U16 | DataType::I16 => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
        }
    }
}

/// Order of the two registers of a 32-bit value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WordOrder {
    /// High word first, at `register` (the default).
    #[default]
    Big,
    /// Low word first.
    Little,
}

/// A Modbus TCP sensor polled by the box.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorConfig {
    /// Required. Id, `[A-Za-z0-9_.-]{1,64}`, unique (and distinct from camera ids).
    pub id: String,
    /// Optional human name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Required. What it measures.
    pub kind: SensorKind,
    /// Required. Modbus TCP `host:port`.
    pub address: String,
    /// Modbus unit (slave) id 0..=255; default 1.
    #[serde(default = "default_unit_id")]
    pub unit_id: u8,
    /// Required. Register address (0-based protocol address).
    pub register: u16,
    /// `holding` | `input`; default `holding`.
    #[serde(default)]
    pub register_type: RegisterType,
    /// `u16` | `i16` | `u32` | `i32` | `f32`; default `u16`. 32-bit types
    /// read `register` and `register + 1`.
    #[serde(default)]
    pub data_type: DataType,
    /// `big` | `little`: register order of 32-bit types; default `big`.
    #[serde(default)]
    pub word_order: WordOrder,
    /// value = raw * scale + offset; finite, non-zero; default 1.
    #[serde(default = "default_scale")]
    pub scale: f64,
    /// See `scale`; default 0.
    #[serde(default)]
    pub offset: f64,
    /// Unit of the scaled value; default by kind (see [`SensorKind::default_unit`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Seconds between polls, > 0; default 5.
    #[serde(default = "default_poll_secs")]
    pub poll_secs: f64,
    /// A `device_offline` alarm after this many seconds without an answer,
    /// >= `poll_secs`; default 30.
    #[serde(default = "default_offline_after")]
    pub offline_after_secs: f64,
    /// Optional alarm threshold (`[sensors.threshold]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<ThresholdConfig>,
    /// Optional catalogue item code overriding the site's mapping of this
    /// sensor kind's threshold alarm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalogue_item: Option<String>,
}

impl SensorConfig {
    /// The unit of the scaled value.
    pub fn unit(&self) -> &str {
        self.unit.as_deref().unwrap_or(self.kind.default_unit())
    }

    /// `poll_secs` as a duration.
    pub fn poll_interval(&self) -> Duration {
        secs(self.poll_secs)
    }

    /// `offline_after_secs` as a duration.
    pub fn offline_after(&self) -> Duration {
        secs(self.offline_after_secs)
    }
}

/// When a sensor value raises a `sensor_threshold` alarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdConfig {
    /// Alarm while value > `above`. At least one of `above` and `below`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
    /// Alarm while value < `below` (low alarm). With both, `below < above`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<f64>,
    /// The alarm ends when value <= above - hysteresis (or >= below +
    /// hysteresis), >= 0; default 0.
    #[serde(default)]
    pub hysteresis: f64,
    /// The condition must hold this many seconds, >= 0; default 0.
    #[serde(default)]
    pub seconds: f64,
    /// Alarm severity; default `major`.
    #[serde(default = "default_severity")]
    pub severity: Severity,
}

impl EdgeConfig {
    /// `p` resolved against the config file's directory (absolute paths unchanged).
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() || self.config_dir.as_os_str().is_empty() {
            p.to_path_buf()
        } else {
            self.config_dir.join(p)
        }
    }

    /// The outbox directory: `outbox.dir` resolved, else
    /// `/var/lib/parkwatch/outbox/<edge_id>`.
    pub fn outbox_dir(&self) -> PathBuf {
        match &self.outbox.dir {
            Some(d) => self.resolve(d),
            None => Path::new(DEFAULT_OUTBOX_ROOT).join(&self.edge_id),
        }
    }

    /// The ONNX Runtime library: `onnxruntime` resolved, else env
    /// `ORT_DYLIB_PATH`, else [`DEFAULT_ONNXRUNTIME`].
    pub fn onnxruntime_path(&self) -> PathBuf {
        if let Some(p) = &self.onnxruntime {
            return self.resolve(p);
        }
        match std::env::var_os("ORT_DYLIB_PATH") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => PathBuf::from(DEFAULT_ONNXRUNTIME),
        }
    }

    /// The model manifest: absolute as is; relative, against the config
    /// file's directory if that file exists, else as given (working directory).
    pub fn model_manifest_path(&self) -> PathBuf {
        let m = &self.detector.model;
        if m.is_absolute() {
            return m.clone();
        }
        let beside = self.resolve(m);
        if beside.exists() { beside } else { m.clone() }
    }

    /// The MQTT password: `password`, else the trimmed contents of
    /// `password_file` (resolved), else none.
    pub fn mqtt_password(&self) -> Result<Option<String>, Problem> {
        if let Some(p) = &self.mqtt.password {
            return Ok(Some(p.clone()));
        }
        let Some(file) = &self.mqtt.password_file else {
            return Ok(None);
        };
        let path = self.resolve(file);
        std::fs::read_to_string(&path)
            .map(|s| Some(s.trim().to_owned()))
            .map_err(|e| Problem {
                file: path,
                line: 0,
                key: "mqtt.password_file".into(),
                message: format!("cannot read the MQTT password file: {e}"),
            })
    }

    /// The CA file, resolved.
    pub fn mqtt_ca_file(&self) -> Option<PathBuf> {
        self.mqtt.ca_file.as_deref().map(|p| self.resolve(p))
    }

    /// The camera with this id.
    pub fn camera(&self, id: &str) -> Option<&CameraConfig> {
        self.cameras.iter().find(|c| c.id == id)
    }
}

/// Loads, parses and validates an edge config file; every problem found is
/// in the error.
pub fn load_edge_config(path: &Path) -> Result<EdgeConfig, Problems> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Problem::file(path, format!("cannot read: {e}")))?;
    parse_edge_config(&text, path)
}

/// Like [`load_edge_config`] for text already in memory (e.g. a config
/// pushed over MQTT); `origin` names it in problems and relative paths
/// resolve against its directory.
pub fn parse_edge_config(text: &str, origin: &Path) -> Result<EdgeConfig, Problems> {
    let checked = check_edge_text(text, origin);
    match checked.config {
        Some((cfg, _)) if checked.problems.is_empty() => Ok(cfg),
        _ if checked.problems.is_empty() => {
            Err(Problem::file(origin, "could not be read as an edge configuration").into())
        }
        _ => Err(Problems(checked.problems).sorted()),
    }
}

/// An edge file after every check: the config as far as it could be read
/// (faulty keys taken out) and every problem.
pub(crate) struct CheckedEdge {
    pub config: Option<(EdgeConfig, SourceMap)>,
    pub problems: Vec<Problem>,
}

/// Parses and validates one edge file's text without failing.
pub(crate) fn check_edge_text(text: &str, origin: &Path) -> CheckedEdge {
    let parsed = parse_lenient::<EdgeConfig>(origin, text);
    let mut problems = parsed.problems.clone();
    let config = match parsed.value {
        Some(mut cfg) => {
            cfg.config_dir = origin.parent().map(Path::to_path_buf).unwrap_or_default();
            // Keys taken out during parsing were reported already; stay quiet about them.
            problems.extend(
                validate_edge(&cfg, &parsed.map)
                    .into_iter()
                    .filter(|p| !parsed.removed.iter().any(|r| hidden_by_removal(&p.key, r))),
            );
            Some((cfg, parsed.map))
        }
        None => None,
    };
    CheckedEdge { config, problems }
}

/// Whether a semantic problem at `key` is a consequence of `removed` having
/// been taken out while parsing: it lies inside it, or it is a rule's
/// reference to a zone or line of a camera whose zones or lines were taken out.
fn hidden_by_removal(key: &str, removed: &str) -> bool {
    if is_under(key, removed) {
        return true;
    }
    let Some(end) = removed
        .starts_with("cameras[")
        .then(|| removed.find(']'))
        .flatten()
    else {
        return false;
    };
    let (camera, rest) = removed.split_at(end + 1);
    (rest.starts_with(".zones") || rest.starts_with(".lines"))
        && key.starts_with(&format!("{camera}.rules["))
        && (key.ends_with(".zone") || key.ends_with(".line"))
}

/// Checks an id: `[A-Za-z0-9_.-]{1,64}`, the configured-id rule
/// [`parkwatch_protocol::validate_config_id`]. Returns the reason when invalid.
pub fn check_id(id: &str) -> Result<(), String> {
    validate_config_id(id).map_err(|e| match e {
        IdError::Empty => "must not be empty".to_owned(),
        IdError::TooLong { len, max } => {
            format!("is {len} characters long, at most {max} allowed")
        }
        IdError::BadChar { ch, .. } => {
            format!("contains {ch:?}; only A-Z a-z 0-9 _ . - are allowed")
        }
    })
}

/// Runs every semantic check on a parsed edge config; `map` gives lines.
pub fn validate_edge(cfg: &EdgeConfig, map: &SourceMap) -> Vec<Problem> {
    let mut v = Validator {
        map,
        out: Vec::new(),
    };
    v.id("edge_id", &cfg.edge_id);
    v.id("site", &cfg.site);
    if let Some(p) = &cfg.point {
        v.id("point", p);
    }
    v.mqtt(&cfg.mqtt);
    if !(cfg.telemetry.interval_secs.is_finite() && cfg.telemetry.interval_secs > 0.0) {
        v.at("telemetry.interval_secs", "must be a number of seconds > 0");
    }
    if cfg.outbox.max_bytes < 1 << 20 {
        v.at("outbox.max_bytes", "must be at least 1048576 (1 MiB)");
    }
    if cfg
        .outbox
        .dir
        .as_ref()
        .is_some_and(|d| d.as_os_str().is_empty())
    {
        v.at(
            "outbox.dir",
            "must not be empty (leave it out for the default)",
        );
    }
    if cfg.detector.model.as_os_str().is_empty() {
        v.at("detector.model", "must not be empty");
    }
    if !(1..=64).contains(&cfg.detector.threads) {
        v.at("detector.threads", "must be 1..=64");
    }
    v.score("detector.min_score", cfg.detector.min_score);
    if !cfg.metrics.listen.is_empty() && cfg.metrics.listen.parse::<SocketAddr>().is_err() {
        v.at(
            "metrics.listen",
            format!(
                "{:?} is not an address:port like \"127.0.0.1:9108\" (\"\" disables)",
                cfg.metrics.listen
            ),
        );
    }

    let mut device_ids: HashMap<&str, String> = HashMap::new();
    for (ci, cam) in cfg.cameras.iter().enumerate() {
        let key = format!("cameras[{ci}]");
        if let Some(first) = device_ids.insert(&cam.id, key.clone()) {
            v.at(
                format!("{key}.id"),
                format!("duplicate id {:?} (also {first})", cam.id),
            );
        }
        v.camera(&key, cam);
    }
    for (si, s) in cfg.sensors.iter().enumerate() {
        let key = format!("sensors[{si}]");
        if let Some(first) = device_ids.insert(&s.id, key.clone()) {
            v.at(
                format!("{key}.id"),
                format!("duplicate id {:?} (also {first})", s.id),
            );
        }
        v.sensor(&key, s);
    }
    v.out
}

struct Validator<'a> {
    map: &'a SourceMap,
    out: Vec<Problem>,
}

impl Validator<'_> {
    fn at(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.out.push(self.map.problem(key, message));
    }

    fn at_value(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.out.push(self.map.value_problem(key, message));
    }

    fn id(&mut self, key: &str, id: &str) {
        if let Err(e) = check_id(id) {
            self.at(key, format!("id {id:?} {e}"));
        }
    }

    fn score(&mut self, key: &str, s: f64) {
        if !(0.0..=1.0).contains(&s) {
            self.at(key, format!("{s} is outside 0..=1"));
        }
    }

    fn secs(&mut self, key: &str, s: f64, positive: bool) {
        let ok = s.is_finite() && if positive { s > 0.0 } else { s >= 0.0 };
        if !ok {
            let want = if positive { "> 0" } else { ">= 0" };
            self.at(key, format!("{s} is not a number of seconds {want}"));
        }
    }

    fn not_allowed(&mut self, key: String, what: &str) {
        if self.map.contains(&key) {
            self.at(key, format!("not allowed for {what}"));
        }
    }

    fn mqtt(&mut self, m: &MqttConfig) {
        if m.host.trim().is_empty() {
            self.at("mqtt.host", "must not be empty");
        }
        if m.port == 0 {
            self.at("mqtt.port", "must be 1..=65535");
        }
        if m.password.is_some() && m.password_file.is_some() {
            self.at(
                "mqtt.password_file",
                "give either password or password_file, not both",
            );
        }
        if (m.password.is_some() || m.password_file.is_some()) && m.username.is_none() {
            self.at("mqtt.username", "a password needs a username");
        }
        if let Err(e) = check_topic_prefix(&m.topic_prefix) {
            self.at("mqtt.topic_prefix", e);
        }
        if !(5..=65535).contains(&m.keepalive_secs) {
            self.at("mqtt.keepalive_secs", "must be 5..=65535 seconds");
        }
    }

    fn camera(&mut self, key: &str, cam: &CameraConfig) {
        self.id(&format!("{key}.id"), &cam.id);
        if let Err(e) = check_rtsp_url(&cam.url) {
            // Never echo the URL: it may carry a password.
            self.at(
                format!("{key}.url"),
                format!("{e} (URL {})", cam.redacted_url()),
            );
        }
        if !(cam.detect_fps.is_finite() && cam.detect_fps > 0.0 && cam.detect_fps <= 60.0) {
            self.at(
                format!("{key}.detect_fps"),
                format!("{} is outside (0, 60]", cam.detect_fps),
            );
        }
        self.secs(
            &format!("{key}.stale_after_secs"),
            cam.stale_after_secs,
            true,
        );
        self.secs(
            &format!("{key}.static_recheck_secs"),
            cam.static_recheck_secs,
            false,
        );
        if let Some(h) = cam.heading_deg
            && !(0.0..360.0).contains(&h)
        {
            self.at(
                format!("{key}.heading_deg"),
                format!("{h} is outside 0..360"),
            );
        }

        let mut shapes: HashMap<&str, String> = HashMap::new();
        for (zi, z) in cam.zones.iter().enumerate() {
            let zk = format!("{key}.zones[{zi}]");
            self.id(&format!("{zk}.id"), &z.id);
            if let Some(first) = shapes.insert(&z.id, zk.clone()) {
                self.at(
                    format!("{zk}.id"),
                    format!("duplicate zone/line id {:?} (also {first})", z.id),
                );
            }
            self.zone(&zk, z);
        }
        for (li, l) in cam.lines.iter().enumerate() {
            let lk = format!("{key}.lines[{li}]");
            self.id(&format!("{lk}.id"), &l.id);
            if let Some(first) = shapes.insert(&l.id, lk.clone()) {
                self.at(
                    format!("{lk}.id"),
                    format!("duplicate zone/line id {:?} (also {first})", l.id),
                );
            }
            for (pi, p) in l.points.iter().enumerate() {
                if !in_unit_square(*p) {
                    self.at_value(
                        format!("{lk}.points[{pi}]"),
                        format!("point [{}, {}] is outside the image (0..=1)", p[0], p[1]),
                    );
                }
            }
            if l.points[0] == l.points[1] {
                self.at(format!("{lk}.points"), "A and B are the same point");
            }
        }
        let mut rule_ids: HashMap<&str, usize> = HashMap::new();
        for (ri, r) in cam.rules.iter().enumerate() {
            let rk = format!("{key}.rules[{ri}]");
            self.id(&format!("{rk}.id"), &r.id);
            if let Some(first) = rule_ids.insert(&r.id, ri) {
                self.at(
                    format!("{rk}.id"),
                    format!("duplicate rule id {:?} (also {key}.rules[{first}])", r.id),
                );
            }
            self.rule(&rk, cam, r);
        }
    }

    fn zone(&mut self, zk: &str, z: &ZoneConfig) {
        let mut inside = true;
        for (pi, p) in z.polygon.iter().enumerate() {
            if !in_unit_square(*p) {
                inside = false;
                self.at_value(
                    format!("{zk}.polygon[{pi}]"),
                    format!("point [{}, {}] is outside the image (0..=1)", p[0], p[1]),
                );
            }
        }
        if inside && let Err(e) = check_simple(&z.polygon) {
            self.at(
                format!("{zk}.polygon"),
                format!("not a simple polygon: {e}"),
            );
        }
    }

    fn rule(&mut self, rk: &str, cam: &CameraConfig, r: &RuleConfig) {
        let kind = r.kind.as_str();
        let what = format!("{kind} rules");
        let zone_ids = || {
            cam.zones
                .iter()
                .map(|z| z.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let line_ids = || {
            cam.lines
                .iter()
                .map(|l| l.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match r.kind {
            RuleKind::Intrusion | RuleKind::Dwell | RuleKind::Crowd => {
                match &r.zone {
                    None => self.at(format!("{rk}.zone"), format!("{what} need a zone")),
                    Some(z) if cam.zone(z).is_none() => self.at(
                        format!("{rk}.zone"),
                        format!(
                            "camera {:?} has no zone {z:?} (zones: {})",
                            cam.id,
                            or_none(zone_ids())
                        ),
                    ),
                    Some(_) => {}
                }
                self.not_allowed(format!("{rk}.line"), &what);
                self.not_allowed(format!("{rk}.direction"), &what);
            }
            RuleKind::LineCrossing => {
                match &r.line {
                    None => self.at(format!("{rk}.line"), "line_crossing rules need a line"),
                    Some(l) if cam.line(l).is_none() => self.at(
                        format!("{rk}.line"),
                        format!(
                            "camera {:?} has no line {l:?} (lines: {})",
                            cam.id,
                            or_none(line_ids())
                        ),
                    ),
                    Some(_) => {}
                }
                self.not_allowed(format!("{rk}.zone"), &what);
                self.not_allowed(format!("{rk}.seconds"), &what);
            }
        }
        match (r.kind, r.min_count) {
            (RuleKind::Crowd, None) => self.at(
                format!("{rk}.min_count"),
                "crowd rules need min_count (>= 2)",
            ),
            (RuleKind::Crowd, Some(n)) if n < 2 => {
                self.at(format!("{rk}.min_count"), format!("{n} is less than 2"))
            }
            (RuleKind::Crowd, Some(_)) => {}
            _ => self.not_allowed(format!("{rk}.min_count"), &what),
        }
        match (r.kind, r.seconds) {
            (RuleKind::Dwell, None) => {
                self.at(format!("{rk}.seconds"), "dwell rules need seconds (> 0)")
            }
            (RuleKind::Dwell, Some(s)) => self.secs(&format!("{rk}.seconds"), s, true),
            (_, Some(s)) => self.secs(&format!("{rk}.seconds"), s, false),
            (_, None) => {}
        }
        if r.classes.is_empty() {
            self.at(
                format!("{rk}.classes"),
                "must name at least one class, e.g. [\"person\"]",
            );
        }
        for (i, c) in r.classes.iter().enumerate() {
            if coco_class_id(c).is_none() {
                self.at_value(
                    format!("{rk}.classes[{i}]"),
                    format!("{c:?} is not a COCO class name"),
                );
            }
        }
        if let Some(s) = r.min_score {
            self.score(&format!("{rk}.min_score"), s);
        }
        self.secs(&format!("{rk}.cooldown_secs"), r.cooldown_secs, false);
        if r.catalogue_item
            .as_ref()
            .is_some_and(|c| c.trim().is_empty())
        {
            self.at(format!("{rk}.catalogue_item"), "must not be empty");
        }
    }

    fn sensor(&mut self, key: &str, s: &SensorConfig) {
        self.id(&format!("{key}.id"), &s.id);
        if let Err(e) = check_host_port(&s.address) {
            self.at(format!("{key}.address"), e);
        }
        let last = u32::from(s.register) + u32::from(s.data_type.registers()) - 1;
        if last > u32::from(u16::MAX) {
            self.at(
                format!("{key}.register"),
                format!(
                    "a {:?} value at {} runs past register 65535",
                    s.data_type, s.register
                ),
            );
        }
        if self.map.contains(&format!("{key}.word_order")) && s.data_type.registers() == 1 {
            self.at(
                format!("{key}.word_order"),
                "only applies to 32-bit data types (u32, i32, f32)",
            );
        }
        if !(s.scale.is_finite() && s.scale != 0.0) {
            self.at(format!("{key}.scale"), "must be a finite, non-zero number");
        }
        if !s.offset.is_finite() {
            self.at(format!("{key}.offset"), "must be a finite number");
        }
        if s.kind == SensorKind::Other && s.unit.is_none() {
            self.at(
                format!("{key}.unit"),
                "sensors of kind \"other\" need a unit",
            );
        }
        self.secs(&format!("{key}.poll_secs"), s.poll_secs, true);
        self.secs(
            &format!("{key}.offline_after_secs"),
            s.offline_after_secs,
            true,
        );
        if s.offline_after_secs < s.poll_secs {
            self.at(
                format!("{key}.offline_after_secs"),
                format!(
                    "{} is shorter than poll_secs ({})",
                    s.offline_after_secs, s.poll_secs
                ),
            );
        }
        if let Some(t) = &s.threshold {
            let tk = format!("{key}.threshold");
            match (t.above, t.below) {
                (None, None) => self.at(&tk, "give above, below or both"),
                (Some(a), Some(b)) if b >= a => self.at(
                    format!("{tk}.below"),
                    format!("below ({b}) must be less than above ({a})"),
                ),
                _ => {}
            }
            for (k, x) in [("above", t.above), ("below", t.below)] {
                if x.is_some_and(|x| !x.is_finite()) {
                    self.at(format!("{tk}.{k}"), "must be a finite number");
                }
            }
            if !(t.hysteresis.is_finite() && t.hysteresis >= 0.0) {
                self.at(format!("{tk}.hysteresis"), "must be >= 0");
            } else if let (Some(a), Some(b)) = (t.above, t.below)
                && b < a
                && t.hysteresis * 2.0 >= a - b
            {
                self.at(
                    format!("{tk}.hysteresis"),
                    "with both above and below, 2 x hysteresis must be less than above - below",
                );
            }
            self.secs(&format!("{tk}.seconds"), t.seconds, false);
        }
        if s.catalogue_item
            .as_ref()
            .is_some_and(|c| c.trim().is_empty())
        {
            self.at(format!("{key}.catalogue_item"), "must not be empty");
        }
    }
}

fn or_none(s: String) -> String {
    if s.is_empty() { "none".into() } else { s }
}

fn in_unit_square(p: Point) -> bool {
    (0.0..=1.0).contains(&p[0]) && (0.0..=1.0).contains(&p[1])
}

/// Checks an MQTT topic prefix against the protocol's one prefix rule
/// ([`parkwatch_protocol::check_prefix`]): 1..=256 bytes, non-empty
/// levels, no wildcards or NUL, no leading `$`.
pub fn check_topic_prefix(p: &str) -> Result<(), String> {
    match check_prefix(p) {
        Ok(()) => Ok(()),
        Err(PrefixError::Empty) => Err("must not be empty".into()),
        Err(e) => Err(format!("{p:?} {e}")),
    }
}

/// Checks `host:port` (host a name, IPv4 or `[IPv6]`; port 1..=65535).
pub fn check_host_port(s: &str) -> Result<(), String> {
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!("{s:?} is not host:port"));
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty()
        || host.contains(['/', ' ', '@'])
        || (host.contains(':') && host.parse::<std::net::Ipv6Addr>().is_err())
    {
        return Err(format!("{s:?} has no valid host"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("{s:?} has no valid port (1..=65535)")),
    }
}

/// Checks a camera URL: `rtsp://` or `rtsps://`, a host, an optional numeric port.
pub fn check_rtsp_url(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("not a URL (expected rtsp://host[:port]/path)".into());
    };
    if !matches!(scheme.to_ascii_lowercase().as_str(), "rtsp" | "rtsps") {
        return Err(format!("scheme {scheme:?} is not rtsp or rtsps"));
    }
    let auth_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..auth_len];
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if hostport.is_empty() {
        return Err("no host".into());
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, rest)) => (h, rest.strip_prefix(':')),
            None => return Err("unclosed '[' in host".into()),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err("no valid host".into());
    }
    if let Some(p) = port
        && !matches!(p.parse::<u16>(), Ok(n) if n > 0)
    {
        return Err(format!("port {p:?} is not 1..=65535"));
    }
    Ok(())
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO)
}

fn default_severity() -> Severity {
    Severity::Major
}

fn default_true() -> bool {
    true
}
fn default_mqtt_host() -> String {
    "127.0.0.1".into()
}
fn default_mqtt_port() -> u16 {
    1883
}
fn default_topic_prefix() -> String {
    "parkwatch".into()
}
fn default_keepalive() -> u64 {
    30
}
fn default_telemetry_interval() -> f64 {
    10.0
}
fn default_outbox_max_bytes() -> u64 {
    1 << 30
}
fn default_model() -> PathBuf {
    PathBuf::from("models/nanodet-m-320.toml")
}
fn default_threads() -> usize {
    2
}
fn default_min_score() -> f64 {
    0.35
}
fn default_metrics_listen() -> String {
    "127.0.0.1:9108".into()
}
fn default_detect_fps() -> f64 {
    5.0
}
fn default_stale_after() -> f64 {
    10.0
}
fn default_static_recheck() -> f64 {
    2.0
}
fn default_unit_id() -> u8 {
    1
}
fn default_scale() -> f64 {
    1.0
}
fn default_poll_secs() -> f64 {
    5.0
}
fn default_offline_after() -> f64 {
    30.0
}
