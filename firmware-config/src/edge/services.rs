//! `[mqtt]`, `[telemetry]`, `[outbox]`, `[detector]` and `[metrics]`: the
//! services of an edge box, each with its defaults.
//!
//! These types only hold values; [`super::validate_edge`] checks them.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use parkwatch_protocol::DEFAULT_PREFIX;
use serde::{Deserialize, Serialize};

use super::secs;

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

fn default_mqtt_host() -> String {
    "127.0.0.1".into()
}
fn default_mqtt_port() -> u16 {
    1883
}
fn default_topic_prefix() -> String {
    DEFAULT_PREFIX.into()
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
