//! The ingest configuration file: types, defaults, validation, secrets.
//!
//! Layout: this module holds the types and their defaults; [`load`] reads a
//! file and anchors its paths, [`validate`] checks every semantic rule, and
//! [`secrets`] resolves passwords and tokens.
//!
//! [`IngestConfig::load`] parses the TOML with `parkwatch_config::parse_toml`
//! (unknown keys and type errors come back with file, line and key), then
//! runs [`IngestConfig::validate`] and resolves secrets ([`Secrets`]: inline
//! values, `*_file` paths relative to the config file's folder, and the
//! `PARKWATCH_TSDB_TOKEN` environment variable). Both passes collect every
//! problem, and one report holds all of them.
//!
//! Guarantees after a successful load: addresses parse, the time-series URL
//! is an absolute `http`/`https` URL (so building the client cannot panic),
//! ids are well formed and unique, limits are inside their documented
//! ranges, each option belongs to the broker mode in use, and every secret
//! file was readable. Secrets are [`Secret`]s, so `Debug` of the resolved
//! values never prints them.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::secret::Secret;

/// Environment variable read for the time-series token when the file names none.
pub const TOKEN_ENV: &str = "PARKWATCH_TSDB_TOKEN";

/// The whole `parkwatch-ingest` configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Only accept messages from this site id. Default: unset, any site.
    #[serde(default)]
    pub site: Option<String>,
    /// First segment of every MQTT topic. Default: `"parkwatch"`.
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    /// Folder for ingest's own state (spool, dead letters, database in later
    /// versions). Relative paths are taken from the config file's folder.
    /// Default: `"/var/lib/parkwatch/ingest"`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// How long shutdown may take to flush the writer and publish pending
    /// acks after the first SIGINT/SIGTERM, in ms (`100..=600000`).
    /// Default: `10000`.
    #[serde(default = "default_shutdown_grace_ms")]
    pub shutdown_grace_ms: u64,
    /// The MQTT broker: embedded or external. Default: embedded on
    /// `127.0.0.1:1883`.
    #[serde(default)]
    pub broker: BrokerConfig,
    /// Where time series go. Default: VictoriaMetrics on `127.0.0.1:8428`.
    #[serde(default)]
    pub timeseries: TimeseriesConfig,
    /// The HTTP server (`/healthz`, `/metrics`, `/api/v1`). Default: `127.0.0.1:8080`.
    #[serde(default)]
    pub http: HttpConfig,
    /// The site directory (`site.toml`, grids, catalogue, calendar,
    /// workers), e.g. `firmware-config/sites/etdz`; relative paths are
    /// taken from the config file's folder. Setting it turns on incidents
    /// (alarms are stored, correlated and acknowledged) and the `/api/v1`
    /// API. Default: unset, no incidents.
    #[serde(default)]
    pub site_dir: Option<PathBuf>,
    /// `[store]`: where incidents are kept (SQLite by default). See
    /// `docs/api.md`.
    #[serde(default)]
    pub store: crate::incidents::config::StoreConfig,
    /// `[incidents]`: blob folder and overdue checks.
    #[serde(default)]
    pub incidents: crate::incidents::config::IncidentsConfig,
    /// `[api]`: the bearer tokens of `/api/v1` (`[[api.tokens]]`).
    #[serde(default)]
    pub api: crate::api::auth::ApiConfig,
    /// `[deadletters]`: the bounded on-disk store of rejected messages
    /// (`data_dir/deadletter`). Default: 64 MiB, 4096 payload bytes each.
    #[serde(default)]
    pub deadletters: crate::deadletter::DeadLetterConfig,
}

/// Whether ingest runs its own broker or connects to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BrokerMode {
    /// rumqttd runs inside ingest; edges connect to `listen`.
    #[default]
    Embedded,
    /// Ingest is a client of an external broker (Mosquitto, EMQX, ...).
    External,
}

/// `[broker]`. Options are flat; each belongs to one mode, and setting one
/// that the chosen mode does not use is reported as a problem.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    /// `"embedded"` or `"external"`. Default: `"embedded"`.
    #[serde(default)]
    pub mode: BrokerMode,
    /// Embedded: MQTT 3.1.1 TCP listener. Default: `"127.0.0.1:1883"`.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Embedded: optional MQTT 5 TCP listener. Default: none.
    #[serde(default)]
    pub listen_v5: Option<SocketAddr>,
    /// Embedded: credentials of each edge box (username = edge id).
    /// Default: none.
    #[serde(default)]
    pub edges: Vec<EdgeCredential>,
    /// Embedded: let clients connect without checking username and
    /// password. For local demos and tests only. Default: `false`.
    #[serde(default)]
    pub allow_anonymous: bool,
    /// Embedded: most clients connected at once (`1..=100000`).
    /// Default: `1000`.
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// Both modes: largest MQTT payload accepted, in bytes
    /// (`1024..=268435455`). Default: `5242880` (5 MiB: snapshots may be 4 MiB).
    #[serde(default = "default_max_payload_bytes")]
    pub max_payload_bytes: usize,
    /// Both modes: MQTT keep-alive of ingest's own client, in seconds
    /// (`5..=3600`). Default: `30`.
    #[serde(default = "default_keep_alive_secs")]
    pub keep_alive_secs: u64,
    /// External: broker host name or address. Required in external mode.
    #[serde(default)]
    pub host: Option<String>,
    /// External: broker TCP port. Default: `1883`.
    #[serde(default)]
    pub port: Option<u16>,
    /// External: username. Default: none (anonymous).
    #[serde(default)]
    pub username: Option<String>,
    /// External: password, inline. Default: none.
    #[serde(default)]
    pub password: Option<Secret>,
    /// External: file whose content (trailing newline removed) is the
    /// password. Default: none.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// External: MQTT client id; must be unique per ingest instance.
    /// Default: `"parkwatch-ingest"`.
    #[serde(default)]
    pub client_id: Option<String>,
    /// External: shared-subscription group; ingest subscribes with
    /// `$share/<group>/...` so several instances split the load. `""`
    /// subscribes without sharing. Default: `"parkwatch-ingest"`.
    #[serde(default)]
    pub shared_group: Option<String>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            mode: BrokerMode::Embedded,
            listen: None,
            listen_v5: None,
            edges: Vec::new(),
            allow_anonymous: false,
            max_connections: None,
            max_payload_bytes: default_max_payload_bytes(),
            keep_alive_secs: default_keep_alive_secs(),
            host: None,
            port: None,
            username: None,
            password: None,
            password_file: None,
            client_id: None,
            shared_group: None,
        }
    }
}

impl BrokerConfig {
    /// The embedded MQTT 3.1.1 listener address (default applied).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen.unwrap_or(DEFAULT_LISTEN)
    }

    /// Embedded: the most connections (default applied).
    pub fn max_connections(&self) -> usize {
        self.max_connections.unwrap_or(1000)
    }

    /// External: the port (default applied).
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(1883)
    }

    /// External: the client id (default applied).
    pub fn client_id(&self) -> &str {
        self.client_id.as_deref().unwrap_or(DEFAULT_CLIENT_ID)
    }

    /// External: the shared-subscription group, `None` when sharing is off.
    pub fn shared_group(&self) -> Option<&str> {
        match self.shared_group.as_deref() {
            None => Some(DEFAULT_CLIENT_ID),
            Some("") => None,
            Some(g) => Some(g),
        }
    }
}

/// One `[[broker.edges]]` entry: the login of one edge box.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeCredential {
    /// Edge id; it is also the MQTT username. Required.
    pub edge: String,
    /// The password, inline. Exactly one of `password`, `password_file`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// File whose content (trailing newline removed) is the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

/// `[timeseries]`: the InfluxDB v2 write API target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeseriesConfig {
    /// Base URL of the InfluxDB v2 API; ingest posts to `/api/v2/write`.
    /// VictoriaMetrics accepts the same. Default: `"http://127.0.0.1:8428"`.
    #[serde(default = "default_tsdb_url")]
    pub url: String,
    /// InfluxDB organisation (VictoriaMetrics ignores it). Default: `"parkwatch"`.
    #[serde(default = "default_org")]
    pub org: String,
    /// InfluxDB bucket (VictoriaMetrics ignores it). Default: `"parkwatch"`.
    #[serde(default = "default_org")]
    pub bucket: String,
    /// API token, inline. At most one of `token`, `token_file`; when
    /// neither is set the `PARKWATCH_TSDB_TOKEN` environment variable is
    /// used, and without it no `Authorization` header is sent. Default: none.
    #[serde(default)]
    pub token: Option<Secret>,
    /// File whose content (trailing newline removed) is the token. Default: none.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Flush as soon as this many points are buffered (`1..=1000000`).
    /// Default: `5000`.
    #[serde(default = "default_batch_points")]
    pub batch_points: usize,
    /// Flush buffered points at least this often, in ms (`10..=600000`).
    /// Default: `1000`.
    #[serde(default = "default_flush_interval_ms")]
    pub flush_interval_ms: u64,
    /// Telemetry batches that may wait for the writer (`1..=1000000`);
    /// when full, the consumer waits (backpressure to the broker).
    /// Default: `1024`.
    #[serde(default = "default_queue_batches")]
    pub queue_batches: usize,
    /// Timeout of one write request, in ms (`100..=600000`). Default: `10000`.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// First retry delay after a failed write, in ms (`1..=60000`).
    /// Default: `100`.
    #[serde(default = "default_retry_min_ms")]
    pub retry_min_ms: u64,
    /// Longest retry delay, in ms (`retry_min_ms..=600000`). Default: `30000`.
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// Size limit of the disk spool (`data_dir/spool`) that holds telemetry
    /// while the database is down, in bytes: `0` (spool off) or
    /// `1048576..=1099511627776`. Default: `1073741824` (1 GiB).
    #[serde(default = "default_spool_max_bytes")]
    pub spool_max_bytes: u64,
    /// How long a write may fail retryably before its batches go to the
    /// spool (and are acknowledged), in ms (`0..=600000`). Default: `2000`.
    #[serde(default = "default_spool_after_ms")]
    pub spool_after_ms: u64,
}

impl Default for TimeseriesConfig {
    fn default() -> Self {
        TimeseriesConfig {
            url: default_tsdb_url(),
            org: default_org(),
            bucket: default_org(),
            token: None,
            token_file: None,
            batch_points: default_batch_points(),
            flush_interval_ms: default_flush_interval_ms(),
            queue_batches: default_queue_batches(),
            request_timeout_ms: default_request_timeout_ms(),
            retry_min_ms: default_retry_min_ms(),
            retry_max_ms: default_retry_max_ms(),
            spool_max_bytes: default_spool_max_bytes(),
            spool_after_ms: default_spool_after_ms(),
        }
    }
}

/// `[http]`: the HTTP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address for `/healthz` and `/metrics`. Default: `"127.0.0.1:8080"`.
    #[serde(default = "default_http_listen")]
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_http_listen(),
        }
    }
}

const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 1883);
const DEFAULT_CLIENT_ID: &str = "parkwatch-ingest";

fn default_prefix() -> String {
    parkwatch_protocol::DEFAULT_PREFIX.to_owned()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/parkwatch/ingest")
}
fn default_shutdown_grace_ms() -> u64 {
    10_000
}
fn default_max_payload_bytes() -> usize {
    5 * 1024 * 1024
}
fn default_keep_alive_secs() -> u64 {
    30
}
fn default_tsdb_url() -> String {
    "http://127.0.0.1:8428".to_owned()
}
fn default_org() -> String {
    "parkwatch".to_owned()
}
fn default_batch_points() -> usize {
    5000
}
fn default_flush_interval_ms() -> u64 {
    1000
}
fn default_queue_batches() -> usize {
    1024
}
fn default_request_timeout_ms() -> u64 {
    10_000
}
fn default_retry_min_ms() -> u64 {
    100
}
fn default_retry_max_ms() -> u64 {
    30_000
}
fn default_spool_max_bytes() -> u64 {
    1 << 30
}
fn default_spool_after_ms() -> u64 {
    2000
}
fn default_http_listen() -> SocketAddr {
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080)
}

mod load;
mod secrets;
mod validate;

#[cfg(test)]
mod tests;

pub use load::LoadedConfig;
pub use secrets::Secrets;
pub use validate::Issue;
