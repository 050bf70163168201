//! VictoriaMetrics (Debian's `/usr/bin/victoria-metrics`, 1.79) as the
//! time-series database of the tests: it accepts the InfluxDB v2 write API.
//!
//! How InfluxDB line protocol lands in VictoriaMetrics (checked by
//! `tests/e2e/harness.rs`):
//! * `/api/v2/write` takes line protocol; `org`, `bucket` and the token are
//!   ignored (no `db` label is added); `precision` (`ns`, `us`, `ms`, `s`)
//!   is honoured; the answer is `204 No Content`.
//! * Each field becomes its own series named `{measurement}_{field}`, and
//!   the tags become labels: `cam,site=p1,camera=c1 fps=9.5,frames=120i`
//!   gives `cam_fps{site="p1",camera="c1"} 9.5` and
//!   `cam_frames{site="p1",camera="c1"} 120`. Integer, float and boolean
//!   fields become floats (`true` is 1); a string field becomes a series of
//!   zeros, so writers should not send strings as fields.
//! * Timestamps are stored in milliseconds.
//!
//! Visibility: freshly written points reach queries only after VM flushes
//! its in-memory buffers (up to about 10 s by itself). [`VictoriaMetrics::export`]
//! and [`VictoriaMetrics::query`] call `/internal/force_flush` first, after
//! which new points show in `export` within about 0.7 s and in instant
//! queries within about 1 s (measured); tests poll with [`crate::wait_until`]. The server runs with `-search.latencyOffset=0s`
//! (recent points are not hidden), `-search.disableCache` and
//! `-retentionPeriod=100y` (old timestamps in replay tests are kept).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::process::{ChildGuard, ChildSpec, Server};
use crate::{block_on, free_port, port_open};

const BINARY: &str = "/usr/bin/victoria-metrics";
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running VictoriaMetrics with its data in a temporary folder. Killed
/// (and the data removed) when dropped.
#[derive(Debug)]
pub struct VictoriaMetrics {
    child: ChildGuard,
    port: u16,
    data: TempDir,
    http: reqwest::Client,
}

impl VictoriaMetrics {
    /// Starts VictoriaMetrics on a free port with an empty data folder and
    /// waits until `/health` answers.
    ///
    /// # Panics
    /// When `/usr/bin/victoria-metrics` is missing (run `deploy/setup.sh`) or
    /// it does not become healthy.
    #[track_caller]
    pub fn start() -> Self {
        Self::start_with_args(&[])
    }

    /// As [`Self::start`], with more command-line flags, e.g.
    /// `-dedup.minScrapeInterval=1ms` (what docs/timeseries.md recommends
    /// for production: identical re-sent points are kept once).
    #[track_caller]
    pub fn start_with_args(extra: &[&str]) -> Self {
        assert!(
            Path::new(BINARY).is_file(),
            "{BINARY} is missing: run `bash deploy/setup.sh` (Debian package victoria-metrics)"
        );
        let data = tempfile::Builder::new()
            .prefix("parkwatch-vm-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a data folder for VictoriaMetrics: {e}"));
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .timeout(HTTP_TIMEOUT)
            .build()
            .unwrap_or_else(|e| panic!("cannot build an HTTP client: {e}"));
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let mut child = ChildSpec::new("victoria-metrics", BINARY)
                .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
                .arg(format!("-storageDataPath={}", data.path().display()))
                .args([
                    "-search.latencyOffset=0s",
                    "-search.disableCache",
                    "-retentionPeriod=100y",
                ])
                .arg("-loggerLevel=WARN")
                .args(extra)
                .spawn();
            if wait_healthy(&http, port, &mut child) {
                return Self {
                    child,
                    port,
                    data,
                    http,
                };
            }
            last_log = child.log_tail(30);
            child.kill9();
        }
        panic!("VictoriaMetrics did not start in 5 tries; last log tail:\n{last_log}")
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The InfluxDB v2 write endpoint, `{base_url}/api/v2/write`. Query
    /// parameters (`org`, `bucket`, `precision`) may be appended.
    pub fn write_url(&self) -> String {
        format!("{}/api/v2/write", self.base_url())
    }

    /// The HTTP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data folder (kept across [`Self::stop`] and [`Self::start_again`]).
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// The process, for signals (e.g. [`ChildGuard::pause`] to make the
    /// database hang) and logs.
    pub fn child(&mut self) -> &mut ChildGuard {
        &mut self.child
    }

    /// Writes InfluxDB line protocol (nanosecond timestamps) through
    /// [`Self::write_url`], as a client of the v2 API would.
    ///
    /// # Panics
    /// When the request fails or the answer is not a success.
    #[track_caller]
    pub fn write_lines(&self, lines: &str) {
        let url = format!(
            "{}?org=parkwatch&bucket=parkwatch&precision=ns",
            self.write_url()
        );
        let (status, body) = self.send(self.http.post(&url).body(lines.to_owned()), &url);
        assert!(status.is_success(), "POST {url}: {status}: {body}");
    }

    /// Flushes VictoriaMetrics' in-memory buffers (`/internal/force_flush`)
    /// so that recent points become searchable.
    #[track_caller]
    pub fn flush(&self) {
        let url = format!("{}/internal/force_flush", self.base_url());
        let (status, body) = self.send(self.http.get(&url), &url);
        assert!(status.is_success(), "GET {url}: {status}: {body}");
    }

    /// Every stored series matching a selector (`/api/v1/export?match[]=`),
    /// e.g. `{__name__=~"camera_.*",camera="cam1"}` or `camera_fps`, after
    /// [`Self::flush`]. Each item is one series:
    /// `{"metric":{"__name__":..,labels..},"values":[..],"timestamps":[ms..]}`.
    /// Empty when nothing matches yet: poll with [`crate::wait_until`].
    ///
    /// # Panics
    /// When the request fails or a line is not JSON.
    #[track_caller]
    pub fn export(&self, match_selector: &str) -> Vec<Value> {
        self.flush();
        let url = format!("{}/api/v1/export", self.base_url());
        let req = self.http.get(&url).query(&[("match[]", match_selector)]);
        let (status, body) = self.send(req, &url);
        assert!(
            status.is_success(),
            "GET {url}?match[]={match_selector}: {status}: {body}"
        );
        body.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| {
                    panic!("export of {match_selector}: bad JSON line {l:?}: {e}")
                })
            })
            .collect()
    }

    /// An instant PromQL/MetricsQL query at the current time
    /// (`/api/v1/query`), after [`Self::flush`]; returns the `data` object:
    /// `{"resultType":"vector","result":[{"metric":{..},"value":[t,"v"]}..]}`.
    ///
    /// # Panics
    /// When the request fails or the status is not `success`.
    #[track_caller]
    pub fn query(&self, promql: &str) -> Value {
        self.flush();
        let url = format!("{}/api/v1/query", self.base_url());
        let req = self.http.get(&url).query(&[("query", promql)]);
        let (status, body) = self.send(req, &url);
        let json: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("query {promql:?}: {status}: not JSON ({e}): {body}"));
        assert!(
            status.is_success() && json["status"] == "success",
            "query {promql:?}: {status}: {body}"
        );
        json["data"].clone()
    }

    #[track_caller]
    fn send(&self, req: reqwest::RequestBuilder, url: &str) -> (reqwest::StatusCode, String) {
        let result = block_on(async move {
            let resp = req.send().await?;
            let status = resp.status();
            let body = resp.text().await?;
            Ok::<_, reqwest::Error>((status, body))
        });
        result.unwrap_or_else(|e| panic!("HTTP request to {url} failed: {e}"))
    }
}

/// Stop: the data stays. Start again: same port, same data; unflushed
/// points may be lost to a kill.
impl Server for VictoriaMetrics {
    fn process(&mut self) -> &mut ChildGuard {
        &mut self.child
    }

    /// # Panics
    /// When it does not become healthy (e.g. the port was taken meanwhile).
    #[track_caller]
    fn wait_ready(&mut self) {
        if !wait_healthy(&self.http, self.port, &mut self.child) {
            panic!(
                "VictoriaMetrics did not become healthy again on port {}; log tail:\n{}",
                self.port,
                self.child.log_tail(30)
            );
        }
    }
}

/// Polls `/health` until it answers `OK`; false when the process exits or
/// [`READY_TIMEOUT`] passes.
fn wait_healthy(http: &reqwest::Client, port: u16, child: &mut ChildGuard) -> bool {
    let url = format!("http://127.0.0.1:{port}/health");
    let start = std::time::Instant::now();
    while start.elapsed() < READY_TIMEOUT {
        if !child.is_running() {
            return false;
        }
        if port_open(port) {
            let req = http.get(&url);
            let ok = block_on(async move {
                match req.send().await {
                    Ok(resp) if resp.status().is_success() => {
                        resp.text().await.is_ok_and(|t| t.trim() == "OK")
                    }
                    _ => false,
                }
            });
            if ok {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
