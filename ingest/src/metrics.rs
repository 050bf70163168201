//! Counters and gauges of ingest, and their Prometheus text rendering.
//!
//! Hand-written rather than a metrics library: the set is small and fixed.
//! Label values are `&'static str` chosen by the code (message kind, reject
//! reason, error class), never text from the network, so the number of
//! series is bounded by construction. The one exception is the `edge`
//! label of the ack-lag summary: edge ids come from topics, but only from
//! messages that passed every check (and, with authentication on, only
//! configured edges); it is capped at [`MAX_EDGE_LABELS`] edges, past which
//! edges share the label `_other`. Every method is cheap and lock-free
//! except the labelled ones, which take a short mutex.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Most distinct `edge` label values of the ack-lag metrics.
pub const MAX_EDGE_LABELS: usize = 10_000;

/// Upper bounds (seconds) of the alarm-store latency histogram buckets.
pub const ALARM_BUCKETS: [f64; 14] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

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
    /// Bit per MQTT link that is connected, and how many links there are.
    links_up: AtomicU64,
    links: AtomicU64,
    last_write_ok_ms: AtomicI64,
    last_write_err_ms: AtomicI64,
    last_write_error: Mutex<Option<String>>,
    duplicates: Labelled,
    logins_refused: Labelled,
    spool: SpoolGauges,
    deadletters_written: AtomicU64,
    deadletters_dropped: AtomicU64,
    deadletter_bytes: AtomicU64,
    dedup_ranges: AtomicU64,
    ack_lag: Mutex<BTreeMap<String, Lag>>,
    alarm_store: Mutex<Histogram>,
}

#[derive(Debug, Default)]
struct SpoolGauges {
    enabled: AtomicBool,
    full: AtomicBool,
    records: AtomicU64,
    batches: AtomicU64,
    bytes: AtomicU64,
    max_bytes: AtomicU64,
    spooled: AtomicU64,
    drained: AtomicU64,
    full_events: AtomicU64,
    errors: AtomicU64,
}

/// Ack lag of one edge: a summary without quantiles, and the latest ack's
/// largest lag.
#[derive(Debug, Default, Clone, Copy)]
struct Lag {
    sum: f64,
    count: u64,
    last_max: f64,
}

#[derive(Debug, Default)]
struct Histogram {
    /// Counts per bucket of [`ALARM_BUCKETS`], not cumulative; the last
    /// slot is `+Inf`.
    counts: [u64; ALARM_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

/// Spool depth and state, as `/healthz` reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SpoolHealth {
    /// Whether the disk spool is on (`timeseries.spool_max_bytes > 0`).
    pub enabled: bool,
    /// Records (groups of batches) waiting to be written.
    pub records: u64,
    /// Telemetry batches waiting.
    pub batches: u64,
    /// Bytes waiting.
    pub bytes: u64,
    /// The size limit.
    pub max_bytes: u64,
    /// The last append did not fit: the writer holds batches in memory and
    /// acks nothing until the spool drains.
    pub full: bool,
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
    /// The disk spool.
    pub spool: SpoolHealth,
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

    /// Sets whether ingest's MQTT client is connected (link 0).
    pub fn set_consumer_connected(&self, up: bool) {
        self.set_link_connected(0, up);
    }

    /// Ingest uses `n` MQTT links (1..=64); default 1.
    pub fn set_consumer_links(&self, n: usize) {
        self.links
            .store((n as u64).clamp(1, 64) - 1, Ordering::Relaxed);
        self.update_connected();
    }

    /// Sets whether MQTT link `link` (0-based) is connected.
    pub fn set_link_connected(&self, link: usize, up: bool) {
        let bit = 1u64 << (link.min(63));
        if up {
            self.links_up.fetch_or(bit, Ordering::Relaxed);
        } else {
            self.links_up.fetch_and(!bit, Ordering::Relaxed);
        }
        self.update_connected();
    }

    fn update_connected(&self) {
        let n = self.links.load(Ordering::Relaxed) + 1;
        let all = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
        let up = self.links_up.load(Ordering::Relaxed) & all == all;
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
        let spool = self.spool_health();
        Health {
            healthy: broker_up != Some(false)
                && consumer_connected
                && ts_ok
                && !queue_full
                && !spool.full,
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
            spool,
        }
    }

    /// The spool's part of [`Health`].
    pub fn spool_health(&self) -> SpoolHealth {
        let g = &self.spool;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SpoolHealth {
            enabled: g.enabled.load(Ordering::Relaxed),
            records: l(&g.records),
            batches: l(&g.batches),
            bytes: l(&g.bytes),
            max_bytes: l(&g.max_bytes),
            full: g.full.load(Ordering::Relaxed),
        }
    }

    /// A telemetry batch arrived again: `kind` is `stored` (already written
    /// or spooled: acked again, not written) or `pending` (its first copy
    /// is still on its way to the database: dropped, that copy's ack
    /// covers it).
    pub fn duplicate(&self, kind: &'static str) {
        self.duplicates.inc(kind, 1);
    }

    /// The embedded broker refused a login for `reason` (`unknown_user`,
    /// `bad_password`, `client_id`).
    pub fn login_refused(&self, reason: &'static str) {
        self.logins_refused.inc(reason, 1);
    }

    /// Logins refused for `reason`.
    pub fn logins_refused_count(&self, reason: &str) -> u64 {
        self.logins_refused.get(reason)
    }

    /// Duplicates seen of `kind`.
    pub fn duplicate_count(&self, kind: &str) -> u64 {
        self.duplicates.get(kind)
    }

    /// The spool is on, with this limit.
    pub fn set_spool_enabled(&self, max_bytes: u64) {
        self.spool.enabled.store(true, Ordering::Relaxed);
        self.spool.max_bytes.store(max_bytes, Ordering::Relaxed);
    }

    /// Sets the spool depth gauges.
    pub fn set_spool_depth(&self, records: u64, batches: u64, bytes: u64) {
        self.spool.records.store(records, Ordering::Relaxed);
        self.spool.batches.store(batches, Ordering::Relaxed);
        self.spool.bytes.store(bytes, Ordering::Relaxed);
    }

    /// Sets whether the spool is refusing appends for lack of room.
    pub fn set_spool_full(&self, full: bool) {
        self.spool.full.store(full, Ordering::Relaxed);
    }

    /// `n` batches were appended to the spool (and acked).
    pub fn spooled(&self, n: u64) {
        self.spool.spooled.fetch_add(n, Ordering::Relaxed);
    }

    /// Batches appended to the spool so far.
    pub fn spooled_count(&self) -> u64 {
        self.spool.spooled.load(Ordering::Relaxed)
    }

    /// `n` batches left the spool (written, or refused and dead-lettered).
    pub fn spool_drained(&self, n: u64) {
        self.spool.drained.fetch_add(n, Ordering::Relaxed);
    }

    /// Batches drained from the spool so far.
    pub fn spool_drained_count(&self) -> u64 {
        self.spool.drained.load(Ordering::Relaxed)
    }

    /// An append found the spool full.
    pub fn spool_full_event(&self) {
        self.spool.full_events.fetch_add(1, Ordering::Relaxed);
    }

    /// Times an append found the spool full.
    pub fn spool_full_count(&self) -> u64 {
        self.spool.full_events.load(Ordering::Relaxed)
    }

    /// A spool file operation failed.
    pub fn spool_error(&self) {
        self.spool.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A dead letter was written.
    pub fn deadletter_written(&self) {
        self.deadletters_written.fetch_add(1, Ordering::Relaxed);
    }

    /// Dead letters written so far.
    pub fn deadletters_written(&self) -> u64 {
        self.deadletters_written.load(Ordering::Relaxed)
    }

    /// A dead letter was dropped (queue full or write error).
    pub fn deadletter_dropped(&self) {
        self.deadletters_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Dead letters dropped so far.
    pub fn deadletters_dropped(&self) -> u64 {
        self.deadletters_dropped.load(Ordering::Relaxed)
    }

    /// Sets the size of the dead-letter files.
    pub fn set_deadletter_bytes(&self, bytes: u64) {
        self.deadletter_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Sets the number of ranges held by the telemetry dedup record.
    pub fn set_dedup_ranges(&self, n: u64) {
        self.dedup_ranges.store(n, Ordering::Relaxed);
    }

    /// An ack for `edge` was published; `lags` are the times from each
    /// acknowledged record's arrival to now (records whose arrival is not
    /// known are left out).
    pub fn ack_lag(&self, edge: &str, lags: &[Duration]) {
        if lags.is_empty() {
            return;
        }
        let Ok(mut map) = self.ack_lag.lock() else {
            return;
        };
        let key = if map.contains_key(edge) || map.len() < MAX_EDGE_LABELS {
            edge
        } else {
            "_other"
        };
        let e = map.entry(key.to_owned()).or_default();
        let mut max: f64 = 0.0;
        for l in lags {
            let s = l.as_secs_f64();
            e.sum += s;
            max = max.max(s);
        }
        e.count += lags.len() as u64;
        e.last_max = max;
    }

    /// Ack lag of `edge`: (records, total seconds, largest in the last ack).
    pub fn ack_lag_of(&self, edge: &str) -> Option<(u64, f64, f64)> {
        let map = self.ack_lag.lock().ok()?;
        map.get(edge).map(|l| (l.count, l.sum, l.last_max))
    }

    /// An alarm event was durably stored `latency` after it arrived from
    /// the broker.
    pub fn alarm_stored(&self, latency: Duration) {
        let s = latency.as_secs_f64();
        if let Ok(mut h) = self.alarm_store.lock() {
            let idx = ALARM_BUCKETS
                .iter()
                .position(|b| s <= *b)
                .unwrap_or(ALARM_BUCKETS.len());
            h.counts[idx] += 1;
            h.sum += s;
            h.count += 1;
        }
    }

    /// The alarm-store latency histogram: cumulative counts per bucket of
    /// [`ALARM_BUCKETS`] then `+Inf`, the sum in seconds and the count.
    pub fn alarm_store_histogram(&self) -> (Vec<u64>, f64, u64) {
        let Ok(h) = self.alarm_store.lock() else {
            return (Vec::new(), 0.0, 0);
        };
        let mut acc = 0;
        let cumulative = h
            .counts
            .iter()
            .map(|c| {
                acc += c;
                acc
            })
            .collect();
        (cumulative, h.sum, h.count)
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
        self.render_more(&mut out);
        out
    }

    fn render_more(&self, out: &mut String) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed) as i64;
        labelled(
            out,
            "parkwatch_ingest_duplicates_total",
            "Telemetry batches received again, by kind (stored: acked again without writing; pending: first copy still in flight).",
            "kind",
            &self.duplicates.snapshot(),
        );
        labelled(
            out,
            "parkwatch_ingest_logins_refused_total",
            "MQTT logins the embedded broker refused, by reason.",
            "reason",
            &self.logins_refused.snapshot(),
        );
        let g = &self.spool;
        for (name, kind, help, v) in [
            (
                "parkwatch_ingest_spool_records",
                "gauge",
                "Records (groups of telemetry batches) in the disk spool.",
                load(&g.records),
            ),
            (
                "parkwatch_ingest_spool_batches",
                "gauge",
                "Telemetry batches in the disk spool.",
                load(&g.batches),
            ),
            (
                "parkwatch_ingest_spool_bytes",
                "gauge",
                "Bytes of undrained records in the disk spool.",
                load(&g.bytes),
            ),
            (
                "parkwatch_ingest_spool_max_bytes",
                "gauge",
                "Size limit of the disk spool (0: spool off).",
                load(&g.max_bytes),
            ),
            (
                "parkwatch_ingest_spool_full",
                "gauge",
                "1 while the spool is full and telemetry waits in memory unacknowledged.",
                i64::from(g.full.load(Ordering::Relaxed)),
            ),
            (
                "parkwatch_ingest_spooled_batches_total",
                "counter",
                "Telemetry batches appended to the disk spool (and acknowledged).",
                load(&g.spooled),
            ),
            (
                "parkwatch_ingest_spool_drained_batches_total",
                "counter",
                "Telemetry batches drained from the spool into the database.",
                load(&g.drained),
            ),
            (
                "parkwatch_ingest_spool_full_total",
                "counter",
                "Appends refused because the spool was full.",
                load(&g.full_events),
            ),
            (
                "parkwatch_ingest_spool_errors_total",
                "counter",
                "Failed spool file operations.",
                load(&g.errors),
            ),
            (
                "parkwatch_ingest_deadletters_written_total",
                "counter",
                "Rejected messages written to the dead-letter store.",
                load(&self.deadletters_written),
            ),
            (
                "parkwatch_ingest_deadletters_dropped_total",
                "counter",
                "Dead letters not written (queue full or write error); the rejection is still counted.",
                load(&self.deadletters_dropped),
            ),
            (
                "parkwatch_ingest_deadletter_bytes",
                "gauge",
                "Size of the dead-letter files.",
                load(&self.deadletter_bytes),
            ),
            (
                "parkwatch_ingest_dedup_ranges",
                "gauge",
                "Sequence-number ranges held by the telemetry dedup record.",
                load(&self.dedup_ranges),
            ),
        ] {
            single(out, name, kind, help, v);
        }
        if let Ok(map) = self.ack_lag.lock() {
            let name = "parkwatch_ingest_ack_lag_seconds";
            let _ = writeln!(
                out,
                "# HELP {name} Time from a record's arrival at ingest to the publish of its delivery ack, per edge."
            );
            let _ = writeln!(out, "# TYPE {name} summary");
            for (edge, l) in map.iter() {
                let e = escape_label(edge);
                let _ = writeln!(out, "{name}_sum{{edge=\"{e}\"}} {}", l.sum);
                let _ = writeln!(out, "{name}_count{{edge=\"{e}\"}} {}", l.count);
            }
            let name = "parkwatch_ingest_ack_lag_last_max_seconds";
            let _ = writeln!(
                out,
                "# HELP {name} Largest ack lag among the records of the latest ack, per edge."
            );
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (edge, l) in map.iter() {
                let _ = writeln!(
                    out,
                    "{name}{{edge=\"{}\"}} {}",
                    escape_label(edge),
                    l.last_max
                );
            }
        }
        let (cumulative, sum, count) = self.alarm_store_histogram();
        let name = "parkwatch_ingest_alarm_store_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from an alarm event's arrival from the broker to its commit in the incident store."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (i, c) in cumulative.iter().enumerate() {
            let le = ALARM_BUCKETS
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
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

        let two = Metrics::new(2, true);
        two.set_broker_up(true);
        two.set_consumer_links(2);
        two.set_link_connected(0, true);
        assert!(!two.health().consumer_connected, "one of two links down");
        two.set_link_connected(1, true);
        assert!(two.health().healthy);

        let external = Metrics::new(2, false);
        external.set_consumer_connected(true);
        let h = external.health();
        assert_eq!(h.broker_up, None);
        assert!(h.healthy);
    }

    #[test]
    fn spool_lag_and_alarm_latency_are_rendered() {
        let m = Metrics::new(8, false);
        m.set_spool_enabled(1 << 30);
        m.set_spool_depth(2, 5, 1234);
        m.spooled(5);
        m.duplicate("stored");
        m.ack_lag(
            "edge-p01",
            &[Duration::from_millis(100), Duration::from_millis(300)],
        );
        m.alarm_stored(Duration::from_millis(4));
        m.alarm_stored(Duration::from_millis(40));
        m.alarm_stored(Duration::from_secs(60));
        let text = m.render();
        for line in [
            "parkwatch_ingest_spool_records 2",
            "parkwatch_ingest_spool_batches 5",
            "parkwatch_ingest_spool_bytes 1234",
            "parkwatch_ingest_spool_max_bytes 1073741824",
            "parkwatch_ingest_spooled_batches_total 5",
            "parkwatch_ingest_duplicates_total{kind=\"stored\"} 1",
            "# TYPE parkwatch_ingest_ack_lag_seconds summary",
            "parkwatch_ingest_ack_lag_seconds_sum{edge=\"edge-p01\"} 0.4",
            "parkwatch_ingest_ack_lag_seconds_count{edge=\"edge-p01\"} 2",
            "parkwatch_ingest_ack_lag_last_max_seconds{edge=\"edge-p01\"} 0.3",
            "parkwatch_ingest_alarm_store_seconds_bucket{le=\"0.005\"} 1",
            "parkwatch_ingest_alarm_store_seconds_bucket{le=\"0.05\"} 2",
            "parkwatch_ingest_alarm_store_seconds_bucket{le=\"5\"} 2",
            "parkwatch_ingest_alarm_store_seconds_bucket{le=\"+Inf\"} 3",
            "parkwatch_ingest_alarm_store_seconds_count 3",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        let h = m.health();
        assert_eq!((h.spool.records, h.spool.bytes), (2, 1234));
        assert!(h.spool.enabled && !h.spool.full);
    }

    #[test]
    fn ack_lag_labels_are_capped() {
        let m = Metrics::default();
        for i in 0..MAX_EDGE_LABELS + 5 {
            m.ack_lag(&format!("e{i}"), &[Duration::from_millis(1)]);
        }
        assert_eq!(m.ack_lag_of("_other").map(|l| l.0), Some(5));
        assert!(m.ack_lag_of("e0").is_some());
    }
}
