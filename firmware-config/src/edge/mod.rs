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
//!
//! The file's parts, one submodule each (all re-exported here, so
//! `parkwatch_config::edge::X` names every item):
//! - [`services`]: the box's services: `[mqtt]`, `[telemetry]`, `[outbox]`,
//!   `[detector]`, `[metrics]`;
//! - [`camera`]: `[[cameras]]` with their zones, lines and rules;
//! - [`sensors`]: `[[sensors]]` and their thresholds;
//! - [`validate`]: the semantic checks ([`validate_edge`]);
//! - this module: [`EdgeConfig`] itself and loading ([`load_edge_config`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::diag::{Problem, Problems, SourceMap, is_under, parse_lenient};

pub mod camera;
pub mod sensors;
pub mod services;
pub mod validate;

pub use camera::{
    CameraConfig, CameraKind, Direction, LineConfig, RuleConfig, RuleKind, Severity, ZoneConfig,
    redact_url,
};
pub use sensors::{DataType, RegisterType, SensorConfig, SensorKind, ThresholdConfig, WordOrder};
pub use services::{
    DetectorConfig, FsyncPolicy, MetricsConfig, MqttConfig, OutboxConfig, TelemetryConfig,
};
pub use validate::{check_host_port, check_id, check_rtsp_url, check_topic_prefix, validate_edge};

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

impl EdgeConfig {
    /// One line for people who checked the file: `edge <id>, site <site>,
    /// <n> cameras, <m> sensors`.
    pub fn summary(&self) -> String {
        format!(
            "edge {}, site {}, {} cameras, {} sensors",
            self.edge_id,
            self.site,
            self.cameras.len(),
            self.sensors.len()
        )
    }

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

/// A configured number of seconds as a [`Duration`]; 0 for what validation rejects.
fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO)
}

/// A rule's or threshold's severity when the file names none.
fn default_severity() -> Severity {
    Severity::Major
}
