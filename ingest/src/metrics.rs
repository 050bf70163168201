//! Counters and gauges of ingest, and their Prometheus text rendering.
//!
//! Hand-written rather than a metrics library: the set is small and fixed.
//! Label values are `&'static str` chosen by the code (message kind, reject
//! reason, error class), never text from the network, so the number of
//! series is bounded by construction. Every method is cheap and lock-free
//! except the labelled counters, which take a short mutex.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// All of ingest's metrics. Shared as `Arc<Metrics>`.
#[derive(Debug, Default)]
pub struct Metrics {
    messages: Labelled,
    rejected: Labelled,
    write_errors: Labelled,
    points_skipped: Labelled,
    points_written: AtomicU64,
    batches_written: AtomicU64,
    batches_dropped: AtomicU64,
    acks_published: AtomicU64,
    queue_depth: AtomicI64,
    queue_capacity: AtomicU64,
    buffered_points: AtomicI64,
    broker_up: AtomicBool,
    embedded_broker: AtomicBool,
    consumer_connected: AtomicBool,
    last_write_ok_ms: AtomicI64,
    last_write_err_ms: AtomicI64,
    last_write_error: Mutex<Option<String>>,
}

#[derive(Debug, Default)]
struct Labelled(Mutex<BTreeMap<&'static str, u64>>);

impl Labelled {
    fn inc(&self, label: &'static str, by: u64) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(label).or_insert(0) += by;
        }
    }
    fn get(&self, label: &str) -> u64 {
        self.0
            .lock()
            .ok()
            .and_then(|m| m.get(label).copied())
            .unwrap_or(0)
    }
    fn snapshot(&self) -> Vec<(&'static str, u64)> {
        self.0
            .lock()
            .map(|m| m.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default()
    }
}

/// What `/healthz` reports.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Health {
    /// Overall verdict; `/healthz` answers 200 when true, 503 otherwise.
    pub healthy: bool,
    /// Embedded mode: the broker thread runs. External mode: `null`.
    pub broker_up: Option<bool>,
    /// Ingest's MQTT client holds a connection to the broker.
    pub consumer_connected: bool,
    /// The time-series side.
    pub timeseries: TimeseriesHealth,
    /// Telemetry batches waiting for the writer.
    pub queue_depth: i64,
    /// Capacity of that queue.
    pub queue_capacity: u64,
}

/// The time-series part of [`Health`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TimeseriesHealth {
    /// Whether the most recent write attempt succeeded (`true` before any).
    pub ok: bool,
    /// Last successful write, ms since the Unix epoch.
    pub last_ok_ms: Option<i64>,
    /// Last failed write attempt, ms since the Unix epoch.
    pub last_error_ms: Option<i64>,
    /// What the last failure was.
    pub last_error: Option<String>,
}

impl Metrics {
    /// Creates the metrics with the writer queue's capacity and whether
    /// the broker is embedded (then `broker_up` is part of health).
    pub fn new(queue_capacity: usize, embedded_broker: bool) -> Self {
        let m = Metrics::default();
        m.queue_capacity
            .store(queue_capacity as u64, Ordering::Relaxed);
        m.embedded_broker.store(embedded_broker, Ordering::Relaxed);
        m
    }

    /// A message of `kind` (status, alarm, telemetry, ...) was accepted.
    pub fn message(&self, kind: &'static str) {
        self.messages.inc(kind, 1);
    }

    /// A message was rejected for `reason`.
    pub fn rejected(&self, reason: &'static str) {
        self.rejected.inc(reason, 1);
    }

    /// How many messages were rejected for `reason`.
    pub fn rejected_count(&self, reason: &str) -> u64 {
        self.rejected.get(reason)
    }

    /// How many messages of `kind` were accepted.
    pub fn message_count(&self, kind: &str) -> u64 {
        self.messages.get(kind)
    }

    /// A point inside an accepted batch could not be written for `reason`.
    pub fn point_skipped(&self, reason: &'static str, n: u64) {
        self.points_skipped.inc(reason, n);
    }

    /// A write attempt failed with error class `class`.
    pub fn write_error(&self, class: &'static str, message: String, now_ms: i64) {
        self.write_errors.inc(class, 1);
        self.last_write_err_ms.store(now_ms, Ordering::Relaxed);
        if let Ok(mut e) = self.last_write_error.lock() {
            *e = Some(message);
        }
    }

    /// How many write attempts failed with `class`.
    pub fn write_error_count(&self, class: &str) -> u64 {
        self.write_errors.get(class)
    }

    /// `points` points in `batches` telemetry batches were written.
    pub fn written(&self, points: u64, batches: u64, now_ms: i64) {
        self.points_written.fetch_add(points, Ordering::Relaxed);
        self.batches_written.fetch_add(batches, Ordering::Relaxed);
        self.last_write_ok_ms.store(now_ms, Ordering::Relaxed);
    }

    /// Points written so far.
    pub fn points_written(&self) -> u64 {
        self.points_written.load(Ordering::Relaxed)
    }

    /// `n` telemetry batches were refused by the database and dropped.
    pub fn batches_dropped(&self, n: u64) {
        self.batches_dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Batches dropped so far.
    pub fn batches_dropped_count(&self) -> u64 {
        self.batches_dropped.load(Ordering::Relaxed)
    }

    /// A delivery ack was published.
    pub fn ack_published(&self) {
        self.acks_published.fetch_add(1, Ordering::Relaxed);
    }

    /// Delivery acks published so far.
    pub fn acks_published(&self) -> u64 {
        self.acks_published.load(Ordering::Relaxed)
    }

    /// Adds `delta` to the writer queue depth gauge.
    pub fn queue_add(&self, delta: i64) {
        self.queue_depth.fetch_add(delta, Ordering::Relaxed);
    }

    /// Sets the points-buffered-in-writer gauge.
    pub fn set_buffered_points(&self, n: usize) {
        self.buffered_points
            .store(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    /// Sets whether the embedded broker runs.
    pub fn set_broker_up(&self, up: bool) {
        self.broker_up.store(up, Ordering::Relaxed);
    }

    /// Sets whether ingest's MQTT client is connected.
    pub fn set_consumer_connected(&self, up: bool) {
        self.consumer_connected.store(up, Ordering::Relaxed);
    }

    /// The health verdict right now.
    pub fn health(&self) -> Health {
        let ok_ms = self.last_write_ok_ms.load(Ordering::Relaxed);
        let err_ms = self.last_write_err_ms.load(Ordering::Relaxed);
        let ts_ok = err_ms == 0 || ok_ms >= err_ms;
        let broker_up = self
            .embedded_broker
            .load(Ordering::Relaxed)
            .then(|| self.broker_up.load(Ordering::Relaxed));
        let consumer_connected = self.consumer_connected.load(Ordering::Relaxed);
        let queue_depth = self.queue_depth.load(Ordering::Relaxed);
        let queue_capacity = self.queue_capacity.load(Ordering::Relaxed);
        let queue_full = queue_capacity > 0 && queue_depth >= queue_capacity as i64;
        Health {
            healthy: broker_up != Some(false) && consumer_connected && ts_ok && !queue_full,
            broker_up,
            consumer_connected,
            timeseries: TimeseriesHealth {
                ok: ts_ok,
                last_ok_ms: (ok_ms != 0).then_some(ok_ms),
                last_error_ms: (err_ms != 0).then_some(err_ms),
                last_error: if ts_ok {
                    None
                } else {
                    self.last_write_error.lock().ok().and_then(|e| e.clone())
                },
            },
            queue_depth,
            queue_capacity,
        }
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        labelled(
            &mut out,
            "parkwatch_ingest_messages_total",
            "Messages accepted, by kind.",
            "kind",
            &self.messages.snapshot(),
        );
        labelled(
            &mut out,
            "parkwatch_ingest_rejected_total",
            "Messages rejected, by reason.",
            "reason",
            &self.rejected.snapshot(),
        );
        labelled(
            &mut out,
            "parkwatch_ingest_points_skipped_total",
            "Points of accepted batches that could not be written, by reason.",
            "reason",
            &self.points_skipped.snapshot(),
        );
        labelled(
            &mut out,
            "parkwatch_ingest_write_errors_total",
            "Failed time-series write attempts, by error class.",
            "class",
            &self.write_errors.snapshot(),
        );
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        single(
            &mut out,
            "parkwatch_ingest_points_written_total",
            "counter",
            "Points written to the time-series database.",
            load(&self.points_written) as i64,
        );
        single(
            &mut out,
            "parkwatch_ingest_batches_written_total",
            "counter",
            "Telemetry batches written to the time-series database.",
            load(&self.batches_written) as i64,
        );
        single(
            &mut out,
            "parkwatch_ingest_batches_dropped_total",
            "counter",
            "Telemetry batches refused by the database (non-retryable) and dropped.",
            load(&self.batches_dropped) as i64,
        );
        single(
            &mut out,
            "parkwatch_ingest_acks_published_total",
            "counter",
            "Delivery acks published to edges.",
            load(&self.acks_published) as i64,
        );
        single(
            &mut out,
            "parkwatch_ingest_queue_depth",
            "gauge",
            "Telemetry batches waiting for the time-series writer.",
            self.queue_depth.load(Ordering::Relaxed),
        );
        single(
            &mut out,
            "parkwatch_ingest_queue_capacity",
            "gauge",
            "Capacity of the time-series writer queue, in batches.",
            load(&self.queue_capacity) as i64,
        );
        single(
            &mut out,
            "parkwatch_ingest_buffered_points",
            "gauge",
            "Points buffered in the writer, waiting for the next flush.",
            self.buffered_points.load(Ordering::Relaxed),
        );
        single(
            &mut out,
            "parkwatch_ingest_consumer_connected",
            "gauge",
            "1 when ingest's MQTT client is connected to the broker.",
            i64::from(self.consumer_connected.load(Ordering::Relaxed)),
        );
        if self.embedded_broker.load(Ordering::Relaxed) {
            single(
                &mut out,
                "parkwatch_ingest_broker_up",
                "gauge",
                "1 while the embedded MQTT broker runs.",
                i64::from(self.broker_up.load(Ordering::Relaxed)),
            );
        }
        out
    }
}

fn labelled(out: &mut String, name: &str, help: &str, label: &str, values: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    for (value, n) in values {
        let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {n}", escape_label(value));
    }
}

fn single(out: &mut String, name: &str, kind: &str, help: &str, value: i64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_has_labelled_counters_and_gauges() {
        let m = Metrics::new(8, true);
        m.message("telemetry");
        m.message("telemetry");
        m.rejected("site_mismatch");
        m.write_error("http_5xx", "503".into(), 5);
        m.written(10, 2, 6);
        m.queue_add(3);
        let text = m.render();
        for line in [
            "parkwatch_ingest_messages_total{kind=\"telemetry\"} 2",
            "parkwatch_ingest_rejected_total{reason=\"site_mismatch\"} 1",
            "parkwatch_ingest_write_errors_total{class=\"http_5xx\"} 1",
            "parkwatch_ingest_points_written_total 10",
            "parkwatch_ingest_batches_dropped_total 0",
            "parkwatch_ingest_queue_depth 3",
            "# TYPE parkwatch_ingest_queue_depth gauge",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn health_follows_its_inputs() {
        let m = Metrics::new(2, true);
        assert!(!m.health().healthy, "nothing connected yet");
        m.set_broker_up(true);
        m.set_consumer_connected(true);
        assert!(m.health().healthy);

        m.write_error("connect", "refused".into(), 100);
        let h = m.health();
        assert!(!h.healthy);
        assert_eq!(h.timeseries.last_error.as_deref(), Some("refused"));
        m.written(1, 1, 101);
        assert!(m.health().healthy, "a later success heals");

        m.queue_add(2);
        assert!(!m.health().healthy, "a full queue is unhealthy");
        m.queue_add(-1);
        assert!(m.health().healthy);

        let external = Metrics::new(2, false);
        external.set_consumer_connected(true);
        let h = external.health();
        assert_eq!(h.broker_up, None);
        assert!(h.healthy);
    }
}
