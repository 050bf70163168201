//! Local metrics: `/metrics` in Prometheus text format on a local address.
//!
//! Box-wide counters live in [`EdgeMetrics`]; per-camera counters are the
//! [`CameraStats`] the pipeline already keeps, rendered with a `camera`
//! label. The HTTP side is a deliberately tiny responder (one GET route, no
//! framework): edge boxes are small and this is all it serves.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, info};

use crate::camera::CameraStats;
use crate::outbox::{Outbox, OutboxStats};
use crate::sensors::SensorStats;

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds (ms) of the alarm latency histogram buckets.
pub const LATENCY_BUCKETS_MS: [u64; 10] = [50, 100, 200, 300, 500, 750, 1000, 2000, 5000, 10000];

/// A fixed-bucket histogram of milliseconds (Prometheus semantics:
/// cumulative buckets, sum and count).
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BUCKETS_MS.len()],
    sum_ms: AtomicU64,
    count: AtomicU64,
}

impl LatencyHistogram {
    pub fn observe(&self, ms: u64) {
        for (i, bound) in LATENCY_BUCKETS_MS.iter().enumerate() {
            if ms <= *bound {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum_ms.fetch_add(ms, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP parkwatch_edge_{name} {help}");
        let _ = writeln!(out, "# TYPE parkwatch_edge_{name} histogram");
        for (i, bound) in LATENCY_BUCKETS_MS.iter().enumerate() {
            let v = self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "parkwatch_edge_{name}_bucket{{le=\"{bound}\"}} {v}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "parkwatch_edge_{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "parkwatch_edge_{name}_sum {}",
            self.sum_ms.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "parkwatch_edge_{name}_count {count}");
    }
}

/// Box-wide counters.
#[derive(Debug, Default)]
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
}

impl EdgeMetrics {
    /// Sets the outbox gauges from `stats`.
    pub fn observe_outbox(&self, stats: &OutboxStats) {
        self.outbox_pending_records.set(stats.pending_records);
        self.outbox_pending_bytes.set(stats.pending_bytes);
        self.outbox_dropped_records
            .set(stats.dropped_telemetry_records);
    }

    /// Renders every metric in Prometheus text exposition format.
    pub fn render(&self, cameras: &[Arc<CameraStats>], sensors: &[Arc<SensorStats>]) -> String {
        let mut out = String::with_capacity(4096);
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP parkwatch_edge_{name} {help}");
            let _ = writeln!(out, "# TYPE parkwatch_edge_{name} counter");
            let _ = writeln!(out, "parkwatch_edge_{name} {v}");
        };
        counter(
            "alarms_raised_total",
            "Alarms opened (new events).",
            self.alarms_raised.get(),
        );
        counter(
            "alarm_events_total",
            "Alarm events (new, update, end) queued.",
            self.alarm_events.get(),
        );
        counter(
            "records_sent_total",
            "Outbox records published (including re-sends).",
            self.records_sent.get(),
        );
        counter(
            "records_acked_total",
            "Outbox records acknowledged by ingest.",
            self.records_acked.get(),
        );
        counter(
            "mqtt_connects_total",
            "MQTT connections established.",
            self.mqtt_connects.get(),
        );
        counter(
            "mqtt_disconnects_total",
            "MQTT connections lost.",
            self.mqtt_disconnects.get(),
        );
        counter(
            "telemetry_batches_total",
            "Telemetry batches queued.",
            self.telemetry_batches.get(),
        );
        counter(
            "outbox_full_total",
            "Appends refused because the outbox hit its hard limit.",
            self.outbox_full_events.get(),
        );
        counter(
            "snapshots_dropped_total",
            "Snapshots not queued (outbox full or encode failure).",
            self.snapshots_dropped.get(),
        );
        let mut gauge = |name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP parkwatch_edge_{name} {help}");
            let _ = writeln!(out, "# TYPE parkwatch_edge_{name} gauge");
            let _ = writeln!(out, "parkwatch_edge_{name} {v}");
        };
        gauge(
            "outbox_pending_records",
            "Records waiting for ingest's acknowledgement.",
            self.outbox_pending_records.get(),
        );
        gauge(
            "outbox_pending_bytes",
            "Bytes waiting for ingest's acknowledgement.",
            self.outbox_pending_bytes.get(),
        );
        gauge(
            "outbox_dropped_records",
            "Telemetry records dropped because the outbox was full.",
            self.outbox_dropped_records.get(),
        );

        self.alarm_latency_ms.render(
            &mut out,
            "alarm_latency_ms",
            "Milliseconds from the frame confirming an alarm to its new event in the outbox.",
        );
        type Pick = fn(&CameraStats) -> u64;
        let per_camera: [(&str, &str, Pick); 9] = [
            (
                "camera_frames_received_total",
                "Compressed frames received.",
                |c| CameraStats::get(&c.frames_received),
            ),
            ("camera_frames_decoded_total", "Frames decoded.", |c| {
                CameraStats::get(&c.frames_decoded)
            }),
            (
                "camera_frames_dropped_total",
                "Frames dropped before decode (decoder lagging).",
                |c| CameraStats::get(&c.frames_dropped),
            ),
            (
                "camera_frames_detected_total",
                "Frames the detector ran on.",
                |c| CameraStats::get(&c.frames_detected),
            ),
            (
                "camera_detect_skipped_total",
                "Frames replaced by a newer one before detection.",
                |c| CameraStats::get(&c.detect_skipped),
            ),
            ("camera_reconnects_total", "RTSP reconnects.", |c| {
                CameraStats::get(&c.reconnects)
            }),
            ("camera_stale_total", "Frame watchdog firings.", |c| {
                CameraStats::get(&c.stale_events)
            }),
            (
                "camera_alarms_total",
                "Alarms opened for this camera.",
                |c| CameraStats::get(&c.alarms_raised),
            ),
            ("camera_online", "1 while frames flow, else 0.", |c| {
                u64::from(c.state() == parkwatch_protocol::CameraState::Streaming)
            }),
        ];
        for (name, help, pick) in per_camera {
            let kind = if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            let _ = writeln!(out, "# HELP parkwatch_edge_{name} {help}");
            let _ = writeln!(out, "# TYPE parkwatch_edge_{name} {kind}");
            for c in cameras {
                let _ = writeln!(
                    out,
                    "parkwatch_edge_{name}{{camera=\"{}\"}} {}",
                    c.id,
                    pick(c)
                );
            }
        }
        crate::sensors::render_metrics(sensors, &mut out);
        out
    }
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
                    (
                        "200 OK",
                        "text/plain; version=0.0.4",
                        metrics.render(&cameras, &sensors),
                    )
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
}
