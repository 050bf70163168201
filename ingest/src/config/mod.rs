//! The ingest configuration file: types, defaults, validation, secrets.
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

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use parkwatch_config::{Problem, Problems};

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

/// One semantic problem: the dotted key it is about and what is wrong.
///
/// Keys use the TOML path, with array indexes in brackets:
/// `broker.edges[1].password`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Dotted TOML key path.
    pub key: String,
    /// What is wrong, for a person.
    pub message: String,
}

impl Issue {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Issue {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The secrets named by the configuration, resolved to their values.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// Embedded broker: password per edge id.
    pub edge_passwords: BTreeMap<String, Secret>,
    /// External broker: the password, if any.
    pub broker_password: Option<Secret>,
    /// Time-series API token; empty means no `Authorization` header.
    pub tsdb_token: Secret,
    /// PostgreSQL store: the URL (it may hold a password).
    pub store_url: Option<Secret>,
}

/// A loaded, validated configuration with its secrets.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The configuration as written, defaults applied, paths absolute.
    pub config: IngestConfig,
    /// The resolved secrets.
    pub secrets: Secrets,
    /// The file it came from.
    pub path: PathBuf,
    /// The site of `site_dir`, loaded and checked (none without `site_dir`).
    pub site: Option<std::sync::Arc<parkwatch_config::Site>>,
}

impl IngestConfig {
    /// Loads, validates and resolves secrets of the file at `path`.
    ///
    /// Every problem found is returned at once, each with file, line (where
    /// the key exists in the file, else its nearest parent) and key.
    pub fn load(path: &Path) -> Result<LoadedConfig, Problems> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Problem::file(path, format!("cannot read: {e}")))?;
        Self::load_str(path, &text, &|name| std::env::var(name).ok())
    }

    /// Like [`IngestConfig::load`] for text in memory (`path` names it in
    /// problems and anchors relative paths); `env` looks up environment
    /// variables.
    pub fn load_str(
        path: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<LoadedConfig, Problems> {
        let (mut config, source_map) = parkwatch_config::parse_toml::<IngestConfig>(path, text)?;
        // Relative paths in the file are relative to the file's folder; make
        // that folder absolute so every derived path is too (a path joined
        // twice must not depend on the working directory).
        let parent = path.parent().unwrap_or(Path::new("."));
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        let base = std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf());
        config.make_paths_absolute(&base);
        let mut issues = config.validate();
        let mut site_problems = Vec::new();
        let site = match &config.site_dir {
            Some(dir) => match parkwatch_config::load_site(dir) {
                Ok(site) => {
                    issues.extend(
                        config
                            .api
                            .problems(Some(&site))
                            .into_iter()
                            .filter(|(_, m)| {
                                m.starts_with("no department") || m.starts_with("no worker")
                            })
                            .map(|(k, m)| Issue::new(format!("api.{k}"), m)),
                    );
                    Some(std::sync::Arc::new(site))
                }
                Err(p) => {
                    issues.push(Issue::new(
                        "site_dir",
                        format!(
                            "the site {} has {} problem(s), listed with their files",
                            dir.display(),
                            p.0.len()
                        ),
                    ));
                    site_problems = p.0;
                    None
                }
            },
            None => None,
        };
        match config.resolve_secrets(env) {
            Ok(secrets) if issues.is_empty() => {
                return Ok(LoadedConfig {
                    config,
                    secrets,
                    path: path.to_owned(),
                    site,
                });
            }
            Ok(_) => {}
            Err(more) => issues.extend(more),
        }
        Err(Problems(
            issues
                .into_iter()
                .map(|i| source_map.problem(i.key, i.message))
                .chain(site_problems)
                .collect(),
        )
        .sorted())
    }

    /// Makes relative paths absolute against `base` (the config's folder).
    pub fn make_paths_absolute(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() && !p.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.data_dir);
        if let Some(p) = self.site_dir.as_mut() {
            fix(p);
        }
        let data_dir = self.data_dir.clone();
        self.store.make_paths_absolute(&data_dir, base);
        for e in &mut self.broker.edges {
            if let Some(p) = e.password_file.as_mut() {
                fix(p);
            }
        }
        if let Some(p) = self.broker.password_file.as_mut() {
            fix(p);
        }
        if let Some(p) = self.timeseries.token_file.as_mut() {
            fix(p);
        }
    }

    /// Checks every semantic rule and returns all violations (empty when valid).
    /// Does no I/O; secret files are checked by [`IngestConfig::resolve_secrets`].
    pub fn validate(&self) -> Vec<Issue> {
        let mut out = Vec::new();
        if let Some(site) = &self.site {
            check_id(&mut out, "site", site);
        }
        check_prefix(&mut out, &self.topic_prefix);
        if self.data_dir.as_os_str().is_empty() {
            out.push(Issue::new("data_dir", "must not be empty"));
        }
        check_range(
            &mut out,
            "shutdown_grace_ms",
            self.shutdown_grace_ms,
            100,
            600_000,
        );
        self.validate_broker(&mut out);
        self.validate_timeseries(&mut out);
        self.validate_incidents(&mut out);
        for (k, m) in self.deadletters.problems() {
            out.push(Issue::new(format!("deadletters.{k}"), m));
        }
        if self.broker.mode == BrokerMode::Embedded {
            let b = &self.broker;
            let http = self.http.listen;
            if http == b.listen_addr() || Some(http) == b.listen_v5 {
                out.push(Issue::new(
                    "http.listen",
                    format!("{http} is also an MQTT listener"),
                ));
            }
        }
        out
    }

    fn validate_broker(&self, out: &mut Vec<Issue>) {
        let b = &self.broker;
        check_range(
            out,
            "broker.max_payload_bytes",
            b.max_payload_bytes as u64,
            1024,
            268_435_455,
        );
        check_range(out, "broker.keep_alive_secs", b.keep_alive_secs, 5, 3600);
        match b.mode {
            BrokerMode::Embedded => {
                let not_here = "is only used with broker.mode = \"external\"";
                for (key, set) in [
                    ("broker.host", b.host.is_some()),
                    ("broker.port", b.port.is_some()),
                    ("broker.username", b.username.is_some()),
                    ("broker.password", b.password.is_some()),
                    ("broker.password_file", b.password_file.is_some()),
                    ("broker.client_id", b.client_id.is_some()),
                    ("broker.shared_group", b.shared_group.is_some()),
                ] {
                    if set {
                        out.push(Issue::new(key, not_here));
                    }
                }
                if let Some(n) = b.max_connections {
                    check_range(out, "broker.max_connections", n as u64, 1, 100_000);
                }
                if b.listen_v5.is_some() && b.listen_v5 == Some(b.listen_addr()) {
                    out.push(Issue::new(
                        "broker.listen_v5",
                        "must differ from broker.listen",
                    ));
                }
                if b.edges.is_empty() && !b.allow_anonymous {
                    out.push(Issue::new(
                        "broker.edges",
                        "no edge credentials: add [[broker.edges]] entries, or set \
                         broker.allow_anonymous = true for a local demo",
                    ));
                }
                let mut seen = BTreeSet::new();
                for (i, e) in b.edges.iter().enumerate() {
                    let key = format!("broker.edges[{i}]");
                    check_id(out, &format!("{key}.edge"), &e.edge);
                    if !seen.insert(e.edge.as_str()) {
                        out.push(Issue::new(
                            format!("{key}.edge"),
                            format!("edge {:?} is listed twice", e.edge),
                        ));
                    }
                    match (&e.password, &e.password_file) {
                        (Some(_), Some(_)) => out.push(Issue::new(
                            format!("{key}.password"),
                            "set either password or password_file, not both",
                        )),
                        (None, None) => out.push(Issue::new(
                            format!("{key}.password"),
                            "missing: set password or password_file",
                        )),
                        (Some(p), None) if p.is_empty() => {
                            out.push(Issue::new(format!("{key}.password"), "must not be empty"))
                        }
                        _ => {}
                    }
                }
            }
            BrokerMode::External => {
                let not_here = "is only used with broker.mode = \"embedded\"";
                for (key, set) in [
                    ("broker.listen", b.listen.is_some()),
                    ("broker.listen_v5", b.listen_v5.is_some()),
                    ("broker.edges", !b.edges.is_empty()),
                    ("broker.allow_anonymous", b.allow_anonymous),
                    ("broker.max_connections", b.max_connections.is_some()),
                ] {
                    if set {
                        out.push(Issue::new(key, not_here));
                    }
                }
                match b.host.as_deref() {
                    None => out.push(Issue::new(
                        "broker.host",
                        "missing: external mode needs the broker's host",
                    )),
                    Some(h) if h.trim().is_empty() || h.contains(char::is_whitespace) => {
                        out.push(Issue::new("broker.host", format!("invalid host {h:?}")))
                    }
                    Some(_) => {}
                }
                if b.port == Some(0) {
                    out.push(Issue::new("broker.port", "must be 1..=65535"));
                }
                if b.password.is_some() && b.password_file.is_some() {
                    out.push(Issue::new(
                        "broker.password",
                        "set either password or password_file, not both",
                    ));
                }
                if (b.password.is_some() || b.password_file.is_some()) && b.username.is_none() {
                    out.push(Issue::new(
                        "broker.username",
                        "missing: a password needs a username",
                    ));
                }
                if let Some(id) = &b.client_id
                    && (id.is_empty() || id.len() > 64 || id.contains(['+', '#', '/', '$']))
                {
                    out.push(Issue::new(
                        "broker.client_id",
                        "must be 1..=64 characters without + # / $",
                    ));
                }
                if let Some(g) = &b.shared_group
                    && g.contains(['+', '#', '/'])
                {
                    out.push(Issue::new("broker.shared_group", "must not contain + # /"));
                }
            }
        }
    }

    fn validate_incidents(&self, out: &mut Vec<Issue>) {
        let table = |t: &str, v: Vec<(String, String)>| {
            v.into_iter()
                .map(|(k, m)| Issue::new(format!("{t}.{k}"), m))
                .collect::<Vec<_>>()
        };
        out.extend(table("store", self.store.problems()));
        out.extend(table("incidents", self.incidents.problems()));
        // Departments and workers are checked against the site in `load_str`.
        out.extend(table("api", self.api.problems(None)));
        if self.site_dir.is_none() && !self.api.tokens.is_empty() {
            out.push(Issue::new(
                "site_dir",
                "missing: [[api.tokens]] are set, and the API needs the site directory",
            ));
        }
    }

    fn validate_timeseries(&self, out: &mut Vec<Issue>) {
        let t = &self.timeseries;
        match url::Url::parse(&t.url) {
            Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.has_host() => {
                if !u.username().is_empty() || u.password().is_some() {
                    out.push(Issue::new(
                        "timeseries.url",
                        "must not carry credentials; use token or token_file",
                    ));
                }
                if u.query().is_some() || u.fragment().is_some() {
                    out.push(Issue::new(
                        "timeseries.url",
                        "must be a base URL without query or fragment",
                    ));
                }
            }
            Ok(_) => out.push(Issue::new(
                "timeseries.url",
                "must be an http:// or https:// URL with a host",
            )),
            Err(e) => out.push(Issue::new("timeseries.url", format!("invalid URL: {e}"))),
        }
        if t.org.trim().is_empty() {
            out.push(Issue::new("timeseries.org", "must not be empty"));
        }
        if t.bucket.trim().is_empty() {
            out.push(Issue::new("timeseries.bucket", "must not be empty"));
        }
        if t.token.is_some() && t.token_file.is_some() {
            out.push(Issue::new(
                "timeseries.token",
                "set either token or token_file, not both",
            ));
        }
        check_range(
            out,
            "timeseries.batch_points",
            t.batch_points as u64,
            1,
            1_000_000,
        );
        check_range(
            out,
            "timeseries.flush_interval_ms",
            t.flush_interval_ms,
            10,
            600_000,
        );
        check_range(
            out,
            "timeseries.queue_batches",
            t.queue_batches as u64,
            1,
            1_000_000,
        );
        check_range(
            out,
            "timeseries.request_timeout_ms",
            t.request_timeout_ms,
            100,
            600_000,
        );
        check_range(out, "timeseries.retry_min_ms", t.retry_min_ms, 1, 60_000);
        check_range(
            out,
            "timeseries.retry_max_ms",
            t.retry_max_ms,
            t.retry_min_ms.max(1),
            600_000,
        );
        if t.spool_max_bytes != 0 {
            check_range(
                out,
                "timeseries.spool_max_bytes",
                t.spool_max_bytes,
                1 << 20,
                1 << 40,
            );
        }
        check_range(
            out,
            "timeseries.spool_after_ms",
            t.spool_after_ms,
            0,
            600_000,
        );
    }

    /// Reads every secret: inline values, `*_file`s and, for the token, the
    /// environment (through `env`, so tests need not touch the process's).
    /// Returns every unreadable or empty secret as an [`Issue`].
    pub fn resolve_secrets(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Secrets, Vec<Issue>> {
        let mut issues = Vec::new();
        let mut secrets = Secrets::default();
        let b = &self.broker;
        if b.mode == BrokerMode::Embedded {
            for (i, e) in b.edges.iter().enumerate() {
                let key = format!("broker.edges[{i}].password_file");
                if let Some(p) = resolve_one(&mut issues, &key, &e.password, &e.password_file) {
                    secrets.edge_passwords.insert(e.edge.clone(), p);
                }
            }
        } else {
            secrets.broker_password = resolve_one(
                &mut issues,
                "broker.password_file",
                &b.password,
                &b.password_file,
            );
        }
        let t = &self.timeseries;
        secrets.tsdb_token = if t.token.is_some() || t.token_file.is_some() {
            resolve_one(
                &mut issues,
                "timeseries.token_file",
                &t.token,
                &t.token_file,
            )
            .unwrap_or_default()
        } else {
            env(TOKEN_ENV).map(Secret::new).unwrap_or_default()
        };
        if self.store.kind == crate::incidents::config::StoreKind::Postgres {
            match self.store.settings(&self.data_dir) {
                Ok(crate::incidents::StoreSettings::Postgres { url, .. }) if url.is_empty() => {
                    if self.store.url_file.is_some() {
                        issues.push(Issue::new("store.url_file", "the file is empty"));
                    }
                }
                Ok(crate::incidents::StoreSettings::Postgres { url, .. }) => {
                    if self.store.url_file.is_some()
                        && let Err(m) = crate::incidents::config::check_pg_url(&url)
                    {
                        issues.push(Issue::new("store.url_file", m));
                    }
                    secrets.store_url = Some(Secret::new(url));
                }
                Ok(_) => {}
                Err(e) => issues.push(Issue::new("store.url_file", e.to_string())),
            }
        }
        if issues.is_empty() {
            Ok(secrets)
        } else {
            Err(issues)
        }
    }
}

fn resolve_one(
    issues: &mut Vec<Issue>,
    file_key: &str,
    inline: &Option<Secret>,
    file: &Option<PathBuf>,
) -> Option<Secret> {
    if let Some(s) = inline {
        return Some(s.clone());
    }
    let path = file.as_ref()?;
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let value = text.trim_end_matches(['\n', '\r']);
            if value.is_empty() {
                issues.push(Issue::new(file_key, format!("{} is empty", path.display())));
                None
            } else {
                Some(Secret::new(value))
            }
        }
        Err(e) => {
            issues.push(Issue::new(
                file_key,
                format!("cannot read {}: {e}", path.display()),
            ));
            None
        }
    }
}

fn check_id(out: &mut Vec<Issue>, key: &str, value: &str) {
    if let Err(e) = parkwatch_protocol::validate_id(value, parkwatch_protocol::MAX_ID_LEN) {
        out.push(Issue::new(key, format!("invalid id {value:?}: {e}")));
    }
}

fn check_prefix(out: &mut Vec<Issue>, prefix: &str) {
    if let Err(e) = parkwatch_protocol::validate_prefix(prefix) {
        out.push(Issue::new("topic_prefix", e.to_string()));
    }
}

fn check_range(out: &mut Vec<Issue>, key: &str, value: u64, min: u64, max: u64) {
    if value < min || value > max {
        out.push(Issue::new(
            key,
            format!("{value} is out of range {min}..={max}"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> IngestConfig {
        match parkwatch_config::parse_toml::<IngestConfig>(Path::new("test.toml"), text) {
            Ok((c, _)) => c,
            Err(e) => panic!("test config does not parse: {e}"),
        }
    }

    fn keys(issues: &[Issue]) -> Vec<&str> {
        issues.iter().map(|i| i.key.as_str()).collect()
    }

    const EXAMPLE: &str = include_str!("../examples/ingest-local.toml");

    #[test]
    fn example_config_is_valid() {
        let c = parse(EXAMPLE);
        assert_eq!(c.validate(), vec![]);
        assert!(c.broker.allow_anonymous);
        assert_eq!(c.broker.listen_addr().to_string(), "127.0.0.1:1883");
    }

    #[test]
    fn defaults_apply() {
        let c = parse("[broker]\nallow_anonymous = true\n");
        assert_eq!(c.topic_prefix, "parkwatch");
        assert_eq!(c.timeseries.batch_points, 5000);
        assert_eq!(c.timeseries.flush_interval_ms, 1000);
        assert_eq!(c.timeseries.url, "http://127.0.0.1:8428");
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.shutdown_grace_ms, 10_000);
        assert_eq!(c.validate(), vec![]);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = |text: &str| match parkwatch_config::parse_toml::<IngestConfig>(
            Path::new("t.toml"),
            text,
        ) {
            Ok(_) => panic!("accepted {text:?}"),
            Err(p) => p.0.into_iter().map(|p| (p.line, p.key)).collect::<Vec<_>>(),
        };
        assert_eq!(err("sitee = \"x\""), vec![(1, "sitee".to_owned())]);
        assert_eq!(
            err("[timeseries]\nbatch = 1\nflush = 2"),
            vec![
                (2, "timeseries.batch".to_owned()),
                (3, "timeseries.flush".to_owned())
            ]
        );
    }

    #[test]
    fn semantic_problems_carry_file_line_and_key() {
        let text = "site = \"etdz\"\n[broker]\nmode = \"external\"\nlisten = \"127.0.0.1:1883\"\n\
                    [timeseries]\nbatch_points = 0\n";
        let problems =
            match IngestConfig::load_str(Path::new("/etc/pw/ingest.toml"), text, &|_| None) {
                Ok(_) => panic!("invalid config accepted"),
                Err(p) => p,
            };
        let lines: Vec<String> = problems.0.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            vec![
                "/etc/pw/ingest.toml:2: broker.host: missing: external mode needs the broker's host",
                "/etc/pw/ingest.toml:4: broker.listen: is only used with broker.mode = \"embedded\"",
                "/etc/pw/ingest.toml:6: timeseries.batch_points: 0 is out of range 1..=1000000",
            ]
        );
    }

    #[test]
    fn unreadable_secret_files_are_reported_with_other_problems() {
        let text = "[[broker.edges]]\nedge = \"edge-p01\"\npassword_file = \"nope.pw\"\n\
                    [timeseries]\nbatch_points = 0\n";
        let problems =
            match IngestConfig::load_str(Path::new("/nonexistent/i.toml"), text, &|_| None) {
                Ok(_) => panic!("invalid config accepted"),
                Err(p) => p,
            };
        let keys: Vec<&str> = problems.0.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            vec!["broker.edges[0].password_file", "timeseries.batch_points"]
        );
        assert!(problems.0[0].message.contains("/nonexistent/nope.pw"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let c = parse(
            r#"
            site = "bad site"
            topic_prefix = "a/#"
            [broker]
            mode = "embedded"
            host = "mqtt.example"
            [[broker.edges]]
            edge = "edge-1"
            [[broker.edges]]
            edge = "edge-1"
            password = "x"
            password_file = "y"
            [timeseries]
            url = "not a url"
            batch_points = 0
            retry_min_ms = 500
            retry_max_ms = 100
            "#,
        );
        let issues = c.validate();
        let k = keys(&issues);
        for expected in [
            "site",
            "topic_prefix",
            "broker.host",
            "broker.edges[0].password",
            "broker.edges[1].edge",
            "broker.edges[1].password",
            "timeseries.url",
            "timeseries.batch_points",
            "timeseries.retry_max_ms",
        ] {
            assert!(k.contains(&expected), "missing {expected} in {k:?}");
        }
    }

    #[test]
    fn embedded_without_credentials_needs_allow_anonymous() {
        let c = parse("[broker]\nmode = \"embedded\"\n");
        assert_eq!(keys(&c.validate()), vec!["broker.edges"]);
    }

    #[test]
    fn external_mode_checks_its_own_options() {
        let c = parse(
            r#"
            [broker]
            mode = "external"
            listen = "127.0.0.1:1883"
            password = "p"
            shared_group = "a/b"
            "#,
        );
        let issues = c.validate();
        let k = keys(&issues);
        assert!(k.contains(&"broker.listen"), "{k:?}");
        assert!(k.contains(&"broker.host"), "{k:?}");
        assert!(k.contains(&"broker.username"), "{k:?}");
        assert!(k.contains(&"broker.shared_group"), "{k:?}");

        let ok =
            parse("[broker]\nmode = \"external\"\nhost = \"127.0.0.1\"\nshared_group = \"\"\n");
        assert_eq!(ok.validate(), vec![]);
        assert_eq!(ok.broker.shared_group(), None);
        assert_eq!(ok.broker.port(), 1883);
        let dflt = parse("[broker]\nmode = \"external\"\nhost = \"h\"\n");
        assert_eq!(dflt.broker.shared_group(), Some("parkwatch-ingest"));
    }

    #[test]
    fn url_with_credentials_is_refused() {
        let c =
            parse("[broker]\nallow_anonymous = true\n[timeseries]\nurl = \"http://u:p@h:8086\"\n");
        assert_eq!(keys(&c.validate()), vec!["timeseries.url"]);
        let c = parse("[broker]\nallow_anonymous = true\n[timeseries]\nurl = \"ftp://h\"\n");
        assert_eq!(keys(&c.validate()), vec!["timeseries.url"]);
    }

    #[test]
    fn secrets_come_from_inline_file_or_env() {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("tempdir: {e}"),
        };
        let pw = dir.path().join("p01.pw");
        if let Err(e) = std::fs::write(&pw, "s3cret\n") {
            panic!("write: {e}");
        }
        let mut c = parse(
            r#"
            [[broker.edges]]
            edge = "edge-p01"
            password_file = "p01.pw"
            [[broker.edges]]
            edge = "edge-p02"
            password = "inline"
            [[broker.edges]]
            edge = "edge-p03"
            password_file = "missing.pw"
            "#,
        );
        c.make_paths_absolute(dir.path());
        assert_eq!(c.validate(), vec![]);
        let env = |name: &str| (name == TOKEN_ENV).then(|| "from-env".to_owned());
        let issues = match c.resolve_secrets(&env) {
            Ok(_) => panic!("missing file must be reported"),
            Err(i) => i,
        };
        assert_eq!(keys(&issues), vec!["broker.edges[2].password_file"]);

        c.broker.edges.pop();
        let s = match c.resolve_secrets(&env) {
            Ok(s) => s,
            Err(i) => panic!("{i:?}"),
        };
        assert_eq!(
            s.edge_passwords.get("edge-p01").map(Secret::expose),
            Some("s3cret")
        );
        assert_eq!(
            s.edge_passwords.get("edge-p02").map(Secret::expose),
            Some("inline")
        );
        assert_eq!(s.tsdb_token.expose(), "from-env");
        let dump = format!("{s:?} {c:?}");
        assert!(!dump.contains("s3cret") && !dump.contains("inline") && !dump.contains("from-env"));

        c.timeseries.token = Some(Secret::new("file-wins"));
        let s = c.resolve_secrets(&env).unwrap_or_default();
        assert_eq!(s.tsdb_token.expose(), "file-wins");
    }

    #[test]
    fn http_listener_must_not_collide_with_mqtt() {
        let c = parse("[broker]\nallow_anonymous = true\nlisten = \"127.0.0.1:8080\"\n");
        assert_eq!(keys(&c.validate()), vec!["http.listen"]);
    }
}
