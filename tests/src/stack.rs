//! The parkwatch processes themselves, as the end-to-end tests start them:
//! `parkwatch-ingest` (embedded broker, writing to a [`VictoriaMetrics`])
//! and `parkwatch-edge`, each with a configuration written from the
//! documented keys (docs/configuration.md, docs/ingest.md) into a temporary
//! folder.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::process::{ChildGuard, ChildSpec, Server, run_ok, run_to_end};
use crate::{VictoriaMetrics, bin, free_port, repo_root};

/// The site id the tests use.
pub const SITE: &str = "etdz-test";

/// A bearer token every [`Ingest`] accepts, with the `viewer` role.
pub const VIEWER_TOKEN: &str = "test-viewer-token";

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A running `parkwatch-ingest` with an embedded broker.
#[derive(Debug)]
pub struct Ingest {
    child: ChildGuard,
    mqtt_port: u16,
    http_port: u16,
    dir: TempDir,
}

impl Ingest {
    /// Starts ingest with an embedded broker on a free port, accepting the
    /// given `(edge, password)` pairs, writing time series to `vm`.
    #[track_caller]
    pub fn start(vm: &VictoriaMetrics, edges: &[(&str, &str)]) -> Self {
        Self::start_with(vm, edges, "")
    }

    /// As [`Self::start`], with extra TOML appended to the configuration.
    #[track_caller]
    pub fn start_with(vm: &VictoriaMetrics, edges: &[(&str, &str)], extra: &str) -> Self {
        Self::start_custom(
            vm,
            &IngestOptions {
                edges,
                extra,
                ..IngestOptions::default()
            },
        )
    }

    pub fn mqtt_port(&self) -> u16 {
        self.mqtt_port
    }

    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("ingest.toml")
    }

    pub fn child(&mut self) -> &mut ChildGuard {
        &mut self.child
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.child.log_tail(lines)
    }

    /// `GET path` on ingest's HTTP listener: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.http_port, path)
    }

    /// `GET /api/v1{path}` with [`VIEWER_TOKEN`]; panics unless it answers
    /// 200 with JSON.
    #[track_caller]
    pub fn api(&self, path: &str) -> serde_json::Value {
        let (status, body) = http_get_bearer(
            self.http_port,
            &format!("/api/v1{path}"),
            Some(VIEWER_TOKEN),
        );
        assert_eq!(status, 200, "GET /api/v1{path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET /api/v1{path}: {e}: {body}"))
    }

    /// The Prometheus text of `/metrics`.
    #[track_caller]
    pub fn metrics(&self) -> String {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200, "/metrics: {body}");
        body
    }
}

/// Start again: same configuration and data; ready when both the broker
/// and the HTTP listener accept connections.
impl Server for Ingest {
    fn process(&mut self) -> &mut ChildGuard {
        &mut self.child
    }

    #[track_caller]
    fn wait_ready(&mut self) {
        for port in [self.mqtt_port, self.http_port] {
            self.child.wait_listening(port, Duration::from_secs(30));
        }
    }
}

/// A minimal blocking HTTP/1.1 GET on 127.0.0.1; (status, body). Status 0
/// when the connection fails.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    http_get_bearer(port, path, None)
}

/// [`http_get`] with `Authorization: Bearer <token>` when `token` is given.
pub fn http_get_bearer(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    let Ok(mut sock) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    let _ = sock.set_read_timeout(Some(Duration::from_secs(10)));
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n");
    if sock.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut raw = Vec::new();
    let _ = sock.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = match text.split_once("\r\n\r\n") {
        Some((head, body))
            if head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked") =>
        {
            dechunk(body)
        }
        Some((_, body)) => body.to_owned(),
        None => String::new(),
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// What an edge configuration for a test holds.
#[derive(Debug, Clone)]
pub struct EdgeSpec<'a> {
    pub edge: &'a str,
    pub password: &'a str,
    pub mqtt_port: u16,
    pub telemetry_secs: f64,
    /// `(camera id, RTSP url, extra TOML inside the [[cameras]] table: zones, rules)`.
    pub cameras: Vec<(String, String, String)>,
    /// More TOML at the end of the file (e.g. `[[sensors]]` tables).
    pub extra: String,
}

impl<'a> EdgeSpec<'a> {
    /// An edge logging in as `edge`/`password` to the broker on
    /// 127.0.0.1:`mqtt_port`, with telemetry every second, no cameras and
    /// nothing more; change the rest with `EdgeSpec { .., ..EdgeSpec::new() }`.
    pub fn new(edge: &'a str, password: &'a str, mqtt_port: u16) -> Self {
        Self {
            edge,
            password,
            mqtt_port,
            telemetry_secs: 1.0,
            cameras: Vec::new(),
            extra: String::new(),
        }
    }
}

/// Writes an edge configuration into `dir` and returns its path. The
/// outbox lives in `dir/outbox`; the metrics listener is off.
pub fn edge_config(dir: &Path, spec: &EdgeSpec<'_>) -> PathBuf {
    edge_config_with_mqtt(dir, spec, "")
}

/// [`edge_config`] with more keys in its `[mqtt]` table (e.g.
/// `ca_file = "..."`), one per line.
pub fn edge_config_with_mqtt(dir: &Path, spec: &EdgeSpec<'_>, mqtt_extra: &str) -> PathBuf {
    write_edge_config(dir, spec, mqtt_extra, "")
}

/// [`edge_config`] with the edge's metrics listener on 127.0.0.1:`port`
/// (read it with [`telemetry_cut`]).
pub fn edge_config_with_metrics(dir: &Path, spec: &EdgeSpec<'_>, port: u16) -> PathBuf {
    write_edge_config(dir, spec, "", &format!("127.0.0.1:{port}"))
}

fn write_edge_config(
    dir: &Path,
    spec: &EdgeSpec<'_>,
    mqtt_extra: &str,
    metrics_listen: &str,
) -> PathBuf {
    let mut toml = format!(
        r#"edge_id = "{edge}"
site = "{SITE}"

[mqtt]
host = "127.0.0.1"
port = {port}
username = "{edge}"
password = "{password}"
keepalive_secs = 5
{mqtt_extra}
[telemetry]
interval_secs = {telemetry}

[outbox]
dir = "{outbox}"
fsync = "batch"

[detector]
model = "{model}"

[metrics]
listen = "{metrics_listen}"
"#,
        edge = spec.edge,
        port = spec.mqtt_port,
        password = spec.password,
        telemetry = spec.telemetry_secs,
        outbox = dir.join("outbox").display(),
        model = repo_root().join("models/nanodet-m-320.toml").display(),
    );
    for (id, url, extra) in &spec.cameras {
        toml.push_str(&format!(
            "\n[[cameras]]\nid = \"{id}\"\nurl = \"{url}\"\nstale_after_secs = 5\n{extra}\n"
        ));
    }
    toml.push_str(&spec.extra);
    let path = dir.join(format!("{}.toml", spec.edge));
    std::fs::write(&path, toml).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}

/// `parkwatch-edge <first>` (a subcommand, or `--config` for a run) from
/// the checkout's root, where configurations name their models; add more
/// arguments and run it with [`run_to_end`].
pub fn edge_command(first: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(bin("parkwatch-edge"));
    cmd.current_dir(repo_root()).arg(first);
    cmd
}

/// Starts `parkwatch-edge --config path`.
#[track_caller]
pub fn start_edge(config: &Path) -> ChildGuard {
    start_edge_with_env(config, &[])
}

/// The value of the Prometheus text line starting with `name_and_labels`
/// (e.g. `parkwatch_ingest_rejected_total{reason="branch"}`); 0 if absent.
pub fn metric_in(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            let rest = l.strip_prefix(name_and_labels)?;
            rest.strip_prefix(' ')?.trim().parse().ok()
        })
        .unwrap_or(0.0)
}

/// How many telemetry batches a running edge has queued in its outbox
/// (`parkwatch_edge_telemetry_batches_total` on its metrics listener,
/// 127.0.0.1:`port`); `None` while the listener does not answer.
pub fn edge_telemetry_batches(port: u16) -> Option<u64> {
    let (status, body) = http_get(port, "/metrics");
    (status == 200).then(|| metric_in(&body, "parkwatch_edge_telemetry_batches_total") as u64)
}

/// A cut through a running edge's telemetry, from its own record: waits
/// until its batch counter moves and returns `(n, cut_ms)`, where `n` is the
/// count read right after the move and `cut_ms` the system time just after
/// that read.
///
/// What makes the cut exact: the edge stamps a batch (`created_at_ms`, the
/// timestamp of each of its points), then queues and counts it, one batch
/// after the other. The first `n` batches were counted before the read, so
/// their stamps are `<= cut_ms`. Batch `n + 1` is stamped after batch `n`
/// was counted, so before `cut_ms` only if its tick was already due then
/// (the edge running an interval late); it is then counted moments later,
/// which the 100 ms watch after the read sees, and the cut is taken again.
/// So each series the edge puts once in every batch (`edge_health`, a
/// camera's `camera_stream`) has exactly `n` points up to `cut_ms` when
/// nothing is lost or doubled, however irregular the edge's ticks were.
/// The one case the watch cannot see: batch `n + 1` stamped before the cut
/// and then held up for longer than the watch before it is counted (an
/// edge starved both just before and just after its tick).
#[track_caller]
pub fn telemetry_cut(port: u16, timeout: Duration) -> (u64, i64) {
    let start = std::time::Instant::now();
    let poll = Duration::from_millis(10);
    let mut last = None;
    loop {
        assert!(
            start.elapsed() < timeout,
            "no clean cut through the telemetry of the edge with metrics on port {port} in \
             {timeout:?} (its counter: {last:?})"
        );
        let n = edge_telemetry_batches(port);
        let cut_ms = crate::now_ms();
        let moved = matches!((last, n), (Some(a), Some(b)) if a != b);
        last = n.or(last);
        if !moved {
            std::thread::sleep(poll);
            continue;
        }
        let quiet = (0..10).all(|_| {
            std::thread::sleep(poll);
            edge_telemetry_batches(port) == n
        });
        if let (true, Some(n)) = (quiet, n) {
            return (n, cut_ms);
        }
        last = edge_telemetry_batches(port).or(last);
    }
}

/// `deploy/modbus-sim.py` (PyPI's pymodbus) playing the park's Modbus
/// devices, with its control port for changing registers and muting units.
#[derive(Debug)]
pub struct ModbusSim {
    child: ChildGuard,
    port: u16,
    control: u16,
}

impl ModbusSim {
    /// Starts the simulator with `args` (e.g. `--unit 1 --set 1:h:0:u16:523`)
    /// on ports it picks itself, and waits for its ready line.
    #[track_caller]
    pub fn start(args: &[&str]) -> Self {
        let pythonpath = std::env::var("PARKWATCH_PYTHONPATH")
            .unwrap_or_else(|_| "/opt/parkwatch/python".to_owned());
        let mut child = ChildSpec::new("modbus-sim", "python3")
            .arg(repo_root().join("deploy/modbus-sim.py"))
            .args(["--port", "0", "--control-port", "0"])
            .args(args)
            .env("PYTHONPATH", pythonpath)
            .spawn();
        let line = child.wait_for_log("ready port=", Duration::from_secs(30));
        let ready = line
            .lines()
            .find(|l| l.starts_with("ready "))
            .unwrap_or_else(|| panic!("no ready line from modbus-sim: {line}"))
            .to_owned();
        let field = |name: &str| -> u16 {
            ready
                .split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {ready:?}"))
        };
        let (port, control) = (field("port="), field("control="));
        Self {
            child,
            port,
            control,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sends one control command (`set 1 h 0 u16 800`, `mute 2`, ...) and
    /// returns the reply; panics unless it starts with `ok`.
    #[track_caller]
    pub fn control(&self, command: &str) -> String {
        use std::io::BufRead as _;
        let mut sock = std::net::TcpStream::connect(("127.0.0.1", self.control))
            .unwrap_or_else(|e| panic!("modbus-sim control port: {e}"));
        let _ = sock.set_read_timeout(Some(Duration::from_secs(5)));
        sock.write_all(format!("{command}\n").as_bytes())
            .unwrap_or_else(|e| panic!("modbus-sim control: {e}"));
        let mut reply = String::new();
        let _ = std::io::BufReader::new(&sock).read_line(&mut reply);
        assert!(reply.starts_with("ok"), "modbus-sim {command:?}: {reply:?}");
        reply.trim().to_owned()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.child.log_tail(lines)
    }
}

/// Alarm events seen on the broker, de-duplicated by the edge's sequence
/// number (the edge re-sends what ingest has not acknowledged).
pub struct AlarmTap {
    sub: ChildGuard,
}

impl AlarmTap {
    pub fn start(port: u16, user: &str, password: &str) -> Self {
        // Line-buffered: mosquitto_sub's stdout is a file here.
        let sub = ChildSpec::new("mosquitto_sub", "stdbuf")
            .args(["-oL", "/usr/bin/mosquitto_sub"])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-u",
                user,
                "-P",
                password,
            ])
            .args(["-t", "parkwatch/+/+/alarms", "-q", "1", "-i", "alarm-tap"])
            .spawn();
        Self { sub }
    }

    pub fn events(&self) -> Vec<Value> {
        let mut by_seq: HashMap<(String, u64), Value> = HashMap::new();
        for line in self.sub.log().lines() {
            if let Ok(v) = serde_json::from_str::<Value>(line) {
                let key = (
                    v["edge"].as_str().unwrap_or("").to_owned(),
                    v["seq"].as_u64().unwrap_or(0),
                );
                by_seq.entry(key).or_insert(v);
            }
        }
        let mut all: Vec<Value> = by_seq.into_values().collect();
        all.sort_by_key(|v| v["seq"].as_u64());
        all
    }

    /// Waits (up to `timeout`) for the first event of `source`, `rule` and
    /// event type `event`, as [`Self::find`] finds it; `what` names it in
    /// the panic when it does not come.
    #[track_caller]
    pub fn wait_event(
        &self,
        what: &str,
        timeout: Duration,
        (source, rule, event): (&str, &str, &str),
    ) -> Value {
        crate::wait_for(what, timeout, Duration::from_millis(100), || {
            self.find(source, rule, event)
        })
    }

    /// The first event of `source` (a camera or a sensor id), rule and
    /// event type.
    pub fn find(&self, source: &str, rule: &str, event: &str) -> Option<Value> {
        self.events().into_iter().find(|v| {
            (v["camera"] == source || v["sensor"] == source)
                && v["rule_id"] == rule
                && v["event"] == event
        })
    }
}

/// `parkwatch/{SITE}/{edge}/status`, where an edge keeps its retained status.
pub fn status_topic(edge: &str) -> String {
    format!("parkwatch/{SITE}/{edge}/status")
}

/// Reads one message of `topic` with `mosquitto_sub -C 1` (a retained one
/// arrives at once) from the broker on 127.0.0.1:`port`, as any MQTT client
/// would. `args` are more `mosquitto_sub` options (`-u`, `-P`, `--cafile`).
/// `None` when nothing arrives within `timeout` (whole seconds, at least 1)
/// or the payload is not JSON.
pub fn mqtt_read_one(port: u16, args: &[&str], topic: &str, timeout: Duration) -> Option<Value> {
    let done = run_to_end(
        std::process::Command::new("/usr/bin/mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .args(["-t", topic, "-C", "1"])
            .args(["-W", &timeout.as_secs().max(1).to_string()])
            .stdin(std::process::Stdio::null()),
    );
    if !done.status.success() {
        return None;
    }
    serde_json::from_str(&done.stdout).ok()
}

/// The retained status of `edge` on ingest's broker, read with
/// [`mqtt_read_one`] as `user`.
pub fn edge_status(port: u16, user: &str, password: &str, edge: &str) -> Option<Value> {
    mqtt_read_one(
        port,
        &["-u", user, "-P", password],
        &status_topic(edge),
        Duration::from_secs(3),
    )
}

/// The state (`streaming`, `stale`, ...) of `camera` in an edge status.
pub fn camera_state<'a>(status: &'a Value, camera: &str) -> Option<&'a str> {
    status["cameras"]
        .as_array()?
        .iter()
        .find(|c| c["id"] == camera)?["state"]
        .as_str()
}

/// Every JSON message on a topic filter, as `mosquitto_sub` received it, in
/// order (status changes, for example).
pub struct MqttTap {
    sub: ChildGuard,
}

impl MqttTap {
    /// Subscribes (QoS 1) to `filter` on 127.0.0.1:`port` with more
    /// `mosquitto_sub` options `args` (`-u`, `-P`, `--cafile`).
    pub fn start(port: u16, args: &[&str], filter: &str) -> Self {
        let sub = ChildSpec::new("mosquitto_sub", "stdbuf")
            .args(["-oL", "/usr/bin/mosquitto_sub"])
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .args(["-t", filter, "-q", "1"])
            .spawn();
        Self { sub }
    }

    /// The messages so far that parse as JSON.
    pub fn messages(&self) -> Vec<Value> {
        self.sub
            .log()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The subscriber's output (for failure messages).
    pub fn log_tail(&self, lines: usize) -> String {
        self.sub.log_tail(lines)
    }
}

/// [`start_edge`] with more environment variables (e.g. `RUST_LOG=debug`;
/// later values win over the default `RUST_LOG=info`).
#[track_caller]
pub fn start_edge_with_env(config: &Path, env: &[(&str, &str)]) -> ChildGuard {
    let mut spec = ChildSpec::new("parkwatch-edge", bin("parkwatch-edge"))
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .current_dir(repo_root());
    for (k, v) in env {
        spec = spec.env(k, v);
    }
    spec.spawn()
}

/// The broker side of [`Ingest::start_custom`] in external mode.
#[derive(Debug, Clone, Copy)]
pub struct ExternalBroker<'a> {
    /// The broker's port on 127.0.0.1.
    pub port: u16,
    /// Ingest's login.
    pub username: &'a str,
    /// Its password.
    pub password: &'a str,
    /// `broker.client_id`: unique per ingest instance.
    pub client_id: &'a str,
    /// `broker.shared_group` (`""`: no shared subscription).
    pub shared_group: &'a str,
}

/// Everything [`Ingest::start_custom`] can vary.
#[derive(Debug, Clone, Copy, Default)]
pub struct IngestOptions<'a> {
    /// `None`: the embedded broker on a free port, with `edges` as its
    /// logins. `Some`: a client of this external broker.
    pub external: Option<ExternalBroker<'a>>,
    /// `(edge, password)` logins of the embedded broker.
    pub edges: &'a [(&'a str, &'a str)],
    /// More keys inside `[timeseries]`, one per line (e.g.
    /// `spool_after_ms = 500`).
    pub timeseries_extra: &'a str,
    /// More TOML at the end of the file.
    pub extra: &'a str,
}

impl Ingest {
    /// Starts ingest with `opts`, writing time series to `vm`, and waits
    /// until it listens (in external mode: until its HTTP port is open and
    /// the broker's port answers).
    #[track_caller]
    pub fn start_custom(vm: &VictoriaMetrics, opts: &IngestOptions<'_>) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let http_port = free_port();
        let data = dir.path().join("data");
        // The etdz site gives the API its grids and catalogue; the test
        // edges' cameras are not on its map, so their alarms' incidents
        // are filed outside any grid.
        let mut toml = format!(
            "site = \"{SITE}\"\ntopic_prefix = \"parkwatch\"\ndata_dir = \"{}\"\nsite_dir = \"{}\"\n\n",
            data.display(),
            repo_root().join("firmware-config/sites/etdz").display()
        );
        let mqtt_port = match &opts.external {
            Some(b) => {
                toml.push_str(&format!(
                    "[broker]\nmode = \"external\"\nhost = \"127.0.0.1\"\nport = {}\n\
                     username = \"{}\"\npassword = \"{}\"\nclient_id = \"{}\"\n\
                     shared_group = \"{}\"\n",
                    b.port, b.username, b.password, b.client_id, b.shared_group
                ));
                b.port
            }
            None => {
                let port = free_port();
                toml.push_str(&format!(
                    "[broker]\nmode = \"embedded\"\nlisten = \"127.0.0.1:{port}\"\n\
                     allow_anonymous = false\n"
                ));
                for (edge, password) in opts.edges {
                    toml.push_str(&format!(
                        "\n[[broker.edges]]\nedge = \"{edge}\"\npassword = \"{password}\"\n"
                    ));
                }
                port
            }
        };
        // A read-only API token for the tests ([`VIEWER_TOKEN`]).
        toml.push_str(&format!(
            "\n[[api.tokens]]\nname = \"test-viewer\"\nrole = \"viewer\"\nsha256 = \"{}\"\n",
            sha256_hex(VIEWER_TOKEN.as_bytes())
        ));
        toml.push_str(&format!(
            "\n[timeseries]\nurl = \"{url}\"\norg = \"parkwatch\"\nbucket = \"parkwatch\"\n\
             batch_points = 1000\nflush_interval_ms = 200\n{ts}\n\n[http]\n\
             listen = \"127.0.0.1:{http_port}\"\n{extra}",
            url = vm.base_url(),
            ts = opts.timeseries_extra,
            extra = opts.extra,
        ));
        let path = dir.path().join("ingest.toml");
        std::fs::write(&path, toml).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let child = ChildSpec::new("parkwatch-ingest", bin("parkwatch-ingest"))
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "info")
            .current_dir(repo_root())
            .spawn();
        let mut ingest = Self {
            child,
            mqtt_port,
            http_port,
            dir,
        };
        ingest.wait_ready();
        ingest
    }

    /// Ingest's `data_dir` (spool, dedup record, dead letters).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

/// Debian's Mosquitto (`/usr/sbin/mosquitto`, 2.0) as an external broker,
/// on a free port with its configuration in a temporary folder: logins
/// from a password file made with `mosquitto_passwd`, and parkwatch's ACL
/// (`deploy/mosquitto/acl`: each edge writes only under its own branch;
/// the login `parkwatch-ingest` reads everything and writes acks).
#[derive(Debug)]
pub struct Mosquitto {
    child: ChildGuard,
    port: u16,
    _dir: TempDir,
}

impl Mosquitto {
    /// Starts Mosquitto with these `(username, password)` logins and waits
    /// until it accepts connections.
    #[track_caller]
    pub fn start(users: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let passwd = dir.path().join("passwd");
        for (i, (user, password)) in users.iter().enumerate() {
            let mut cmd = std::process::Command::new("/usr/bin/mosquitto_passwd");
            cmd.arg("-b");
            if i == 0 {
                cmd.arg("-c");
            }
            run_ok(
                cmd.arg(&passwd).args([user, password]),
                &format!("adding the login {user}"),
            );
        }
        // Mosquitto started as root drops to the `mosquitto` user before it
        // reads the ACL: give it a copy it can reach whatever the checkout's
        // permissions (a fresh clone under `mktemp -d` is 0700).
        let shipped = repo_root().join("deploy/mosquitto/acl");
        let acl = dir.path().join("acl");
        std::fs::copy(&shipped, &acl)
            .unwrap_or_else(|e| panic!("copying {}: {e}", shipped.display()));
        {
            use std::os::unix::fs::PermissionsExt as _;
            for (path, mode) in [
                (dir.path(), 0o755),
                (acl.as_path(), 0o644),
                (passwd.as_path(), 0o644),
            ] {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                    .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
            }
        }
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n\
                 acl_file {}\npersistence false\nmax_inflight_messages 100\n\
                 max_queued_messages 100000\nmessage_size_limit 5242880\nlog_dest stderr\n",
                passwd.display(),
                acl.display()
            ),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", conf.display()));
        let mut child = ChildSpec::new("mosquitto", "/usr/sbin/mosquitto")
            .arg("-c")
            .arg(&conf)
            .spawn();
        child.wait_listening(port, Duration::from_secs(10));
        Self {
            child,
            port,
            _dir: dir,
        }
    }

    /// The MQTT port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's log (for failure messages).
    pub fn log_tail(&self, lines: usize) -> String {
        self.child.log_tail(lines)
    }
}
