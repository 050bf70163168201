//! Local metrics: `/metrics` in Prometheus text format on a local address.
//!
//! The process's one prometheus-client [`Registry`] lives in
//! [`EdgeMetrics`]. Box-wide counters, gauges and the alarm latency
//! histogram are registered metrics, updated through [`Counter`], [`Gauge`]
//! and [`LatencyHistogram`]: thin handles that keep the methods the
//! pipeline calls (`inc`, `add`, `set`, `observe`). Per-camera and
//! per-sensor series are not copied anywhere: a collector in the same
//! registry reads the [`CameraStats`] and [`SensorStats`] the pipeline
//! already keeps, live at each scrape, labelled `camera`, and `sensor`,
//! `kind` (and `rule`). The outbox gauges are set from the outbox just
//! before each scrape ([`EdgeMetrics::observe_outbox`]).
//!
//! The exposition is the Prometheus text format 0.0.4 ([`CONTENT_TYPE`]).
//! The names users scrape are listed in docs/configuration.md (a test
//! checks each one); since the encoder appends `_total` to counters and the
//! final `.` to HELP texts, counters are registered without `_total` and
//! HELP texts without their `.`.
//!
//! The HTTP side is a deliberately tiny responder (one GET route, no
//! framework): edge boxes are small and this is all it serves.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, prometheus_text};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, info};

use crate::camera::CameraStats;
use crate::outbox::{Outbox, OutboxStats};
use crate::sensors::SensorStats;

/// The `Content-Type` of `/metrics`: Prometheus text format 0.0.4, UTF-8.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// A monotonically increasing counter: a handle on a registered one.
#[derive(Debug, Default, Clone)]
pub struct Counter(prometheus_client::metrics::counter::Counter);

impl Counter {
    pub fn inc(&self) {
        self.0.inc();
    }
    pub fn add(&self, n: u64) {
        self.0.inc_by(n);
    }
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// A value that goes up and down: a handle on a registered gauge.
#[derive(Debug, Default, Clone)]
pub struct Gauge(prometheus_client::metrics::gauge::Gauge<u64, AtomicU64>);

impl Gauge {
    pub fn set(&self, v: u64) {
        self.0.set(v);
    }
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// Upper bounds (ms) of the alarm latency histogram buckets.
pub const LATENCY_BUCKETS_MS: [u64; 10] = [50, 100, 200, 300, 500, 750, 1000, 2000, 5000, 10000];

/// A fixed-bucket histogram of milliseconds (Prometheus semantics:
/// cumulative buckets, sum and count): a handle on a registered one.
#[derive(Debug, Clone)]
pub struct LatencyHistogram(Histogram);

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self(Histogram::new(LATENCY_BUCKETS_MS.map(|ms| ms as f64)))
    }
}

impl LatencyHistogram {
    pub fn observe(&self, ms: u64) {
        self.0.observe(ms as f64);
    }
}

/// Box-wide metrics, and the registry that renders them with the
/// per-camera and per-sensor series.
#[derive(Debug)]
pub struct EdgeMetrics {
    pub alarms_raised: Counter,
    pub alarm_events: Counter,
    pub records_sent: Counter,
    pub records_acked: Counter,
    pub mqtt_connects: Counter,
    pub mqtt_disconnects: Counter,
    pub telemetry_batches: Counter,
    pub outbox_pending_records: Gauge,
    pub outbox_pending_bytes: Gauge,
    pub outbox_dropped_records: Gauge,
    pub outbox_full_events: Counter,
    pub snapshots_dropped: Counter,
    /// From the frame that confirmed an alarm's condition (its capture
    /// time) to the `new` event being in the outbox.
    pub alarm_latency_ms: LatencyHistogram,
    registry: Registry,
    /// What the collector reads: the stats handed to the current render.
    live: Arc<LiveStats>,
    /// One render at a time, so each encodes the stats it was given.
    rendering: Mutex<()>,
}

impl Default for EdgeMetrics {
    fn default() -> Self {
        let mut m = EdgeMetrics {
            alarms_raised: Counter::default(),
            alarm_events: Counter::default(),
            records_sent: Counter::default(),
            records_acked: Counter::default(),
            mqtt_connects: Counter::default(),
            mqtt_disconnects: Counter::default(),
            telemetry_batches: Counter::default(),
            outbox_pending_records: Gauge::default(),
            outbox_pending_bytes: Gauge::default(),
            outbox_dropped_records: Gauge::default(),
            outbox_full_events: Counter::default(),
            snapshots_dropped: Counter::default(),
            alarm_latency_ms: LatencyHistogram::default(),
            registry: Registry::default(),
            live: Arc::default(),
            rendering: Mutex::new(()),
        };
        m.register();
        m
    }
}

impl EdgeMetrics {
    /// Puts every metric in the registry, in the order `/metrics` lists
    /// them. Counters without `_total`, HELP without its final `.`: the
    /// encoder adds both.
    fn register(&mut self) {
        let r = &mut self.registry;
        for (name, help, counter) in [
            (
                "parkwatch_edge_alarms_raised",
                "Alarms opened (new events)",
                &self.alarms_raised,
            ),
            (
                "parkwatch_edge_alarm_events",
                "Alarm events (new, update, end) queued",
                &self.alarm_events,
            ),
            (
                "parkwatch_edge_records_sent",
                "Outbox records published (including re-sends)",
                &self.records_sent,
            ),
            (
                "parkwatch_edge_records_acked",
                "Outbox records acknowledged by ingest",
                &self.records_acked,
            ),
            (
                "parkwatch_edge_mqtt_connects",
                "MQTT connections established",
                &self.mqtt_connects,
            ),
            (
                "parkwatch_edge_mqtt_disconnects",
                "MQTT connections lost",
                &self.mqtt_disconnects,
            ),
            (
                "parkwatch_edge_telemetry_batches",
                "Telemetry batches queued",
                &self.telemetry_batches,
            ),
            (
                "parkwatch_edge_outbox_full",
                "Appends refused because the outbox hit its hard limit",
                &self.outbox_full_events,
            ),
            (
                "parkwatch_edge_snapshots_dropped",
                "Snapshots not queued (outbox full or encode failure)",
                &self.snapshots_dropped,
            ),
        ] {
            r.register(name, help, counter.0.clone());
        }
        for (name, help, gauge) in [
            (
                "parkwatch_edge_outbox_pending_records",
                "Records waiting for ingest's acknowledgement",
                &self.outbox_pending_records,
            ),
            (
                "parkwatch_edge_outbox_pending_bytes",
                "Bytes waiting for ingest's acknowledgement",
                &self.outbox_pending_bytes,
            ),
            (
                "parkwatch_edge_outbox_dropped_records",
                "Telemetry records dropped because the outbox was full",
                &self.outbox_dropped_records,
            ),
        ] {
            r.register(name, help, gauge.0.clone());
        }
        r.register(
            "parkwatch_edge_alarm_latency_ms",
            "Milliseconds from the frame confirming an alarm to its new event in the outbox",
            self.alarm_latency_ms.0.clone(),
        );
        r.register_collector(Box::new(Arc::clone(&self.live)));
    }

    /// Sets the outbox gauges from `stats`.
    pub fn observe_outbox(&self, stats: &OutboxStats) {
        self.outbox_pending_records.set(stats.pending_records);
        self.outbox_pending_bytes.set(stats.pending_bytes);
        self.outbox_dropped_records
            .set(stats.dropped_telemetry_records);
    }

    /// Renders every metric in Prometheus text exposition format 0.0.4
    /// ([`CONTENT_TYPE`]), the per-camera and per-sensor series read from
    /// `cameras` and `sensors` now.
    pub fn render(&self, cameras: &[Arc<CameraStats>], sensors: &[Arc<SensorStats>]) -> String {
        let _one_at_a_time = self
            .rendering
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *self
            .live
            .sources
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Sources {
            cameras: cameras.to_vec(),
            sensors: sensors.to_vec(),
        };
        let mut out = String::with_capacity(8192);
        // Writing into a String cannot fail, and the encoder has no error
        // of its own.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

/// The collector of the per-camera and per-sensor series.
#[derive(Debug, Default)]
struct LiveStats {
    sources: RwLock<Sources>,
}

/// The stats a render reads.
#[derive(Debug, Default)]
struct Sources {
    cameras: Vec<Arc<CameraStats>>,
    sensors: Vec<Arc<SensorStats>>,
}

impl Collector for LiveStats {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let sources = self.sources.read().unwrap_or_else(PoisonError::into_inner);
        encode_cameras(&sources.cameras, &mut encoder)?;
        crate::sensors::render_metrics(&sources.sensors, &mut encoder)
    }
}

/// The per-camera families, one series per camera (none without cameras).
fn encode_cameras(
    cameras: &[Arc<CameraStats>],
    encoder: &mut DescriptorEncoder<'_>,
) -> fmt::Result {
    if cameras.is_empty() {
        return Ok(());
    }
    type Pick = fn(&CameraStats) -> u64;
    let per_camera: [(&str, &str, MetricType, Pick); 9] = [
        (
            "parkwatch_edge_camera_frames_received",
            "Compressed frames received.",
            MetricType::Counter,
            |c| CameraStats::get(&c.frames_received),
        ),
        (
            "parkwatch_edge_camera_frames_decoded",
            "Frames decoded.",
            MetricType::Counter,
            |c| CameraStats::get(&c.frames_decoded),
        ),
        (
            "parkwatch_edge_camera_frames_dropped",
            "Frames dropped before decode (decoder lagging).",
            MetricType::Counter,
            |c| CameraStats::get(&c.frames_dropped),
        ),
        (
            "parkwatch_edge_camera_frames_detected",
            "Frames the detector ran on.",
            MetricType::Counter,
            |c| CameraStats::get(&c.frames_detected),
        ),
        (
            "parkwatch_edge_camera_detect_skipped",
            "Frames replaced by a newer one before detection.",
            MetricType::Counter,
            |c| CameraStats::get(&c.detect_skipped),
        ),
        (
            "parkwatch_edge_camera_reconnects",
            "RTSP reconnects.",
            MetricType::Counter,
            |c| CameraStats::get(&c.reconnects),
        ),
        (
            "parkwatch_edge_camera_stale",
            "Frame watchdog firings.",
            MetricType::Counter,
            |c| CameraStats::get(&c.stale_events),
        ),
        (
            "parkwatch_edge_camera_alarms",
            "Alarms opened for this camera.",
            MetricType::Counter,
            |c| CameraStats::get(&c.alarms_raised),
        ),
        (
            "parkwatch_edge_camera_online",
            "1 while frames flow, else 0.",
            MetricType::Gauge,
            |c| u64::from(c.state() == parkwatch_protocol::CameraState::Streaming),
        ),
    ];
    for (name, help, kind, pick) in per_camera {
        let mut family = encoder.encode_descriptor(name, help, None, kind)?;
        for c in cameras {
            let labels = [("camera", c.id.as_str())];
            let series = family.encode_family(&labels)?;
            if kind == MetricType::Counter {
                ConstCounter::new(pick(c)).encode(series)?;
            } else {
                ConstGauge::new(pick(c)).encode(series)?;
            }
        }
    }
    Ok(())
}

/// Serves `GET /metrics` (and `GET /healthz`) until shutdown.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<EdgeMetrics>,
    cameras: Arc<Vec<Arc<CameraStats>>>,
    sensors: Arc<Vec<Arc<SensorStats>>>,
    outbox: Arc<Mutex<Outbox>>,
    mut shutdown: watch::Receiver<bool>,
) {
    if let Ok(addr) = listener.local_addr() {
        info!(addr = %addr, "Metrics listening.");
    }
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let Ok((mut sock, peer)) = accepted else {
            continue;
        };
        let metrics = metrics.clone();
        let cameras = cameras.clone();
        let sensors = sensors.clone();
        let outbox = outbox.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let n =
                match tokio::time::timeout(std::time::Duration::from_secs(5), sock.read(&mut buf))
                    .await
                {
                    Ok(Ok(n)) => n,
                    _ => return,
                };
            let req = String::from_utf8_lossy(&buf[..n]);
            let path = req.split_whitespace().nth(1).unwrap_or("");
            let (status, ctype, body) = match path {
                "/metrics" => {
                    // The outbox gauges as of now, not of the last telemetry tick.
                    let stats = outbox.lock().unwrap_or_else(|e| e.into_inner()).stats();
                    metrics.observe_outbox(&stats);
                    ("200 OK", CONTENT_TYPE, metrics.render(&cameras, &sensors))
                }
                "/healthz" => ("200 OK", "text/plain", "ok\n".to_owned()),
                _ => ("404 Not Found", "text/plain", "not found\n".to_owned()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            if sock.write_all(head.as_bytes()).await.is_ok() {
                let _ = sock.write_all(body.as_bytes()).await;
            }
            debug!(peer = %peer, path = %path, "Metrics request.");
        });
    }
}

/// Binds the metrics listener; `None` when disabled by an empty address.
pub async fn bind(listen: &str) -> std::io::Result<Option<TcpListener>> {
    if listen.trim().is_empty() {
        return Ok(None);
    }
    let addr: SocketAddr = listen.parse().map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{listen}: {e}"))
    })?;
    TcpListener::bind(addr).await.map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_box_and_camera_metrics() {
        let m = EdgeMetrics::default();
        m.alarms_raised.add(3);
        let c = CameraStats::new("cam-7", 0);
        c.note_frame(10, 1);
        let text = m.render(&[c], &[]);
        assert!(
            text.contains("parkwatch_edge_alarms_raised_total 3"),
            "{text}"
        );
        assert!(
            text.contains("parkwatch_edge_camera_frames_received_total{camera=\"cam-7\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE parkwatch_edge_camera_online gauge"),
            "{text}"
        );
    }

    /// The `/metrics` table of docs/configuration.md: (family, type) per
    /// name, `_x` standing for `parkwatch_edge_x`.
    fn documented_families() -> Vec<(String, String)> {
        let doc = include_str!("../../docs/configuration.md");
        let (_, section) = doc
            .split_once("`GET /metrics`")
            .unwrap_or_else(|| panic!("no /metrics section in docs/configuration.md"));
        let rows = section
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .filter(|l| l.starts_with("| `"));
        let mut out = Vec::new();
        for row in rows {
            let cols: Vec<&str> = row.split('|').map(str::trim).collect();
            let ty = cols[2].split_whitespace().next().unwrap_or("");
            for name in cols[1].split('`').skip(1).step_by(2) {
                let full = match name.strip_prefix('_') {
                    Some(short) => format!("parkwatch_edge_{short}"),
                    None => name.to_owned(),
                };
                out.push((full, ty.to_owned()));
            }
        }
        out
    }

    #[tokio::test]
    async fn every_documented_metric_is_served_with_its_type() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (outbox, _) = Outbox::open(dir.path(), crate::outbox::OutboxOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let m = Arc::new(EdgeMetrics::default());
        m.alarm_latency_ms.observe(120);
        let cfg: parkwatch_config::SensorConfig = toml::from_str(
            "id = \"pm25-gate\"\nkind = \"pm25\"\naddress = \"127.0.0.1:502\"\nregister = 0\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let sensor = SensorStats::new(&cfg);
        sensor.note_reading(52.5, 1);
        let listener = bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("not bound"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(serve(
            listener,
            m,
            Arc::new(vec![CameraStats::new("cam-1", 0)]),
            Arc::new(vec![sensor]),
            Arc::new(Mutex::new(outbox)),
            stopped,
        ));
        let mut sock = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        sock.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut raw = String::new();
        sock.read_to_string(&mut raw)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let _ = stop.send(true);
        let _ = server.await;

        let (head, body) = raw
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("{raw}"));
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert!(
            head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            "{head}"
        );
        let mut types = std::collections::BTreeMap::new();
        let mut samples = std::collections::BTreeSet::new();
        for line in body.lines().filter(|l| !l.is_empty()) {
            if let Some(decl) = line.strip_prefix("# TYPE ") {
                let (name, ty) = decl.split_once(' ').unwrap_or_else(|| panic!("{line}"));
                assert!(types.insert(name, ty).is_none(), "{name} declared twice");
            } else if !line.starts_with('#') {
                let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
                assert!(value.parse::<f64>().is_ok(), "bad value in {line:?}");
                samples.insert(series.split('{').next().unwrap_or(series));
            }
        }
        let documented = documented_families();
        assert_eq!(documented.len(), 29, "{documented:?}");
        for (name, ty) in &documented {
            assert_eq!(
                types.get(name.as_str()),
                Some(&ty.as_str()),
                "# TYPE of {name} in\n{body}"
            );
            let suffixes: &[&str] = if ty == "histogram" {
                &["_bucket", "_sum", "_count"]
            } else {
                &[""]
            };
            for suffix in suffixes {
                let sample = format!("{name}{suffix}");
                assert!(samples.contains(sample.as_str()), "no {sample} in\n{body}");
            }
        }
        for name in types.keys() {
            assert!(
                documented.iter().any(|(d, _)| d == name),
                "{name} is not in docs/configuration.md"
            );
        }
    }
}
