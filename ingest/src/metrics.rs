//! Counters and gauges of ingest, and their Prometheus text rendering.
//!
//! Every metric lives in ONE `prometheus-client` [`Registry`] owned by
//! [`Metrics`] (shared as `Arc<Metrics>`); the methods below are the only
//! way the rest of ingest touches them, so call sites never see the crate.
//! [`Metrics::render`] encodes the registry in the Prometheus text
//! exposition format 0.0.4 ([`CONTENT_TYPE`]), the format `/metrics` has
//! always served.
//!
//! Names users scrape are fixed by docs/ingest.md (a test checks each one).
//! prometheus-client appends `_total` to a counter's name itself, so
//! counters are registered without it (`parkwatch_ingest_messages` is served
//! as `parkwatch_ingest_messages_total`), and it appends the final `.` of a
//! HELP text, so HELP texts are registered without it.
//!
//! The one family the registry cannot express is the ack-lag summary
//! (`parkwatch_ingest_ack_lag_seconds`, `_sum` and `_count` per edge, no
//! quantiles): prometheus-client 0.26 has no summary type. It is appended
//! after the registry's text by [`Metrics::render`], a dozen lines.
//!
//! Label values are `&'static str` chosen by the code (message kind, reject
//! reason, error class), never text from the network, so the number of
//! series is bounded by construction. The one exception is the `edge`
//! label of the ack-lag metrics: edge ids come from topics, but only from
//! messages that passed every check (and, with authentication on, only
//! configured edges); it is capped at [`MAX_EDGE_LABELS`] edges, past which
//! edges share the label `_other`. Unlabelled metrics are lock-free atomics;
//! labelled ones take prometheus-client's short read (or, for a new label
//! value, write) lock.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Most distinct `edge` label values of the ack-lag metrics.
pub const MAX_EDGE_LABELS: usize = 10_000;

/// Upper bounds (seconds) of the alarm-store latency histogram buckets.
pub const ALARM_BUCKETS: [f64; 14] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

/// The `Content-Type` of [`Metrics::render`]'s text: Prometheus text
/// format 0.0.4, UTF-8.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// A gauge of unsigned values (sizes, counts of things held).
type GaugeU64 = Gauge<u64, AtomicU64>;
/// A gauge of seconds.
type GaugeF64 = Gauge<f64, AtomicU64>;

/// All of ingest's metrics and the registry that renders them. Shared as
/// `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    messages: Labelled,
    rejected: Labelled,
    write_errors: Labelled,
    points_skipped: Labelled,
    points_written: Counter,
    batches_written: Counter,
    batches_dropped: Counter,
    acks_published: Counter,
    queue_depth: Gauge,
    queue_capacity: GaugeU64,
    buffered_points: Gauge,
    /// 0 or 1; registered only with an embedded broker.
    broker_up: Gauge,
    embedded_broker: bool,
    /// 0 or 1: every MQTT link is connected.
    consumer_connected: Gauge,
    /// Bit per MQTT link that is connected, and how many links there are.
    links_up: AtomicU64,
    links: AtomicU64,
    last_write_ok_ms: AtomicI64,
    last_write_err_ms: AtomicI64,
    last_write_error: Mutex<Option<String>>,
    duplicates: Labelled,
    logins_refused: Labelled,
    spool: SpoolGauges,
    deadletters_written: Counter,
    deadletters_dropped: Counter,
    deadletter_bytes: GaugeU64,
    dedup_ranges: GaugeU64,
    /// Source of the ack-lag summary (not in the registry, see the module
    /// doc) and of the label cap.
    ack_lag: Mutex<BTreeMap<String, Lag>>,
    ack_lag_last_max: Family<[(&'static str, String); 1], GaugeF64>,
    alarm_store: Histogram,
}

#[derive(Debug, Default)]
struct SpoolGauges {
    enabled: AtomicBool,
    /// 0 or 1.
    full: Gauge,
    records: GaugeU64,
    batches: GaugeU64,
    bytes: GaugeU64,
    max_bytes: GaugeU64,
    spooled: Counter,
    drained: Counter,
    full_events: Counter,
    errors: Counter,
}

/// Ack lag of one edge: a summary without quantiles, and the latest ack's
/// largest lag.
#[derive(Debug, Default, Clone, Copy)]
struct Lag {
    sum: f64,
    count: u64,
    last_max: f64,
}

/// A counter family with one label whose values the code chooses.
#[derive(Debug, Clone)]
struct Labelled {
    key: &'static str,
    family: Family<[(&'static str, Cow<'static, str>); 1], Counter>,
}

impl Labelled {
    fn new(key: &'static str) -> Self {
        Self {
            key,
            family: Family::default(),
        }
    }
    fn inc(&self, label: &'static str, by: u64) {
        self.family
            .get_or_create(&[(self.key, Cow::Borrowed(label))])
            .inc_by(by);
    }
    fn get(&self, label: &str) -> u64 {
        self.family
            .get(&[(self.key, Cow::Owned(label.to_owned()))])
            .map_or(0, |c| c.get())
    }
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

impl Default for Metrics {
    /// No writer queue, external broker.
    fn default() -> Self {
        Self::new(0, false)
    }
}

impl Metrics {
    /// Creates the metrics with the writer queue's capacity and whether
    /// the broker is embedded (then `broker_up` is part of health and of
    /// `/metrics`), and registers them.
    pub fn new(queue_capacity: usize, embedded_broker: bool) -> Self {
        let mut m = Metrics {
            registry: Registry::default(),
            messages: Labelled::new("kind"),
            rejected: Labelled::new("reason"),
            write_errors: Labelled::new("class"),
            points_skipped: Labelled::new("reason"),
            points_written: Counter::default(),
            batches_written: Counter::default(),
            batches_dropped: Counter::default(),
            acks_published: Counter::default(),
            queue_depth: Gauge::default(),
            queue_capacity: GaugeU64::default(),
            buffered_points: Gauge::default(),
            broker_up: Gauge::default(),
            embedded_broker,
            consumer_connected: Gauge::default(),
            links_up: AtomicU64::new(0),
            links: AtomicU64::new(0),
            last_write_ok_ms: AtomicI64::new(0),
            last_write_err_ms: AtomicI64::new(0),
            last_write_error: Mutex::new(None),
            duplicates: Labelled::new("kind"),
            logins_refused: Labelled::new("reason"),
            spool: SpoolGauges::default(),
            deadletters_written: Counter::default(),
            deadletters_dropped: Counter::default(),
            deadletter_bytes: GaugeU64::default(),
            dedup_ranges: GaugeU64::default(),
            ack_lag: Mutex::new(BTreeMap::new()),
            ack_lag_last_max: Family::default(),
            alarm_store: Histogram::new(ALARM_BUCKETS),
        };
        m.queue_capacity.set(queue_capacity as u64);
        m.register();
        m
    }

    /// Puts every metric in the registry, in the order `/metrics` lists
    /// them. Counters without `_total`, HELP without its final `.`: the
    /// encoder adds both.
    fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "parkwatch_ingest_messages",
            "Messages accepted, by kind",
            self.messages.family.clone(),
        );
        r.register(
            "parkwatch_ingest_rejected",
            "Messages rejected, by reason",
            self.rejected.family.clone(),
        );
        r.register(
            "parkwatch_ingest_points_skipped",
            "Points of accepted batches that could not be written, by reason",
            self.points_skipped.family.clone(),
        );
        r.register(
            "parkwatch_ingest_write_errors",
            "Failed time-series write attempts, by error class",
            self.write_errors.family.clone(),
        );
        r.register(
            "parkwatch_ingest_points_written",
            "Points written to the time-series database",
            self.points_written.clone(),
        );
        r.register(
            "parkwatch_ingest_batches_written",
            "Telemetry batches written to the time-series database",
            self.batches_written.clone(),
        );
        r.register(
            "parkwatch_ingest_batches_dropped",
            "Telemetry batches refused by the database (non-retryable) and dropped",
            self.batches_dropped.clone(),
        );
        r.register(
            "parkwatch_ingest_acks_published",
            "Delivery acks published to edges",
            self.acks_published.clone(),
        );
        r.register(
            "parkwatch_ingest_queue_depth",
            "Telemetry batches waiting for the time-series writer",
            self.queue_depth.clone(),
        );
        r.register(
            "parkwatch_ingest_queue_capacity",
            "Capacity of the time-series writer queue, in batches",
            self.queue_capacity.clone(),
        );
        r.register(
            "parkwatch_ingest_buffered_points",
            "Points buffered in the writer, waiting for the next flush",
            self.buffered_points.clone(),
        );
        r.register(
            "parkwatch_ingest_consumer_connected",
            "1 when ingest's MQTT client is connected to the broker",
            self.consumer_connected.clone(),
        );
        if self.embedded_broker {
            r.register(
                "parkwatch_ingest_broker_up",
                "1 while the embedded MQTT broker runs",
                self.broker_up.clone(),
            );
        }
        r.register(
            "parkwatch_ingest_duplicates",
            "Telemetry batches received again, by kind (stored: acked again without writing; pending: first copy still in flight)",
            self.duplicates.family.clone(),
        );
        r.register(
            "parkwatch_ingest_logins_refused",
            "MQTT logins the embedded broker refused, by reason",
            self.logins_refused.family.clone(),
        );
        let g = &self.spool;
        r.register(
            "parkwatch_ingest_spool_records",
            "Records (groups of telemetry batches) in the disk spool",
            g.records.clone(),
        );
        r.register(
            "parkwatch_ingest_spool_batches",
            "Telemetry batches in the disk spool",
            g.batches.clone(),
        );
        r.register(
            "parkwatch_ingest_spool_bytes",
            "Bytes of undrained records in the disk spool",
            g.bytes.clone(),
        );
        r.register(
            "parkwatch_ingest_spool_max_bytes",
            "Size limit of the disk spool (0: spool off)",
            g.max_bytes.clone(),
        );
        r.register(
            "parkwatch_ingest_spool_full",
            "1 while the spool is full and telemetry waits in memory unacknowledged",
            g.full.clone(),
        );
        r.register(
            "parkwatch_ingest_spooled_batches",
            "Telemetry batches appended to the disk spool (and acknowledged)",
            g.spooled.clone(),
        );
        r.register(
            "parkwatch_ingest_spool_drained_batches",
            "Telemetry batches drained from the spool into the database",
            g.drained.clone(),
        );
        // Served as `parkwatch_ingest_spool_full_total`, beside the gauge
        // `parkwatch_ingest_spool_full` (fine in the 0.0.4 text format).
        r.register(
            "parkwatch_ingest_spool_full",
            "Appends refused because the spool was full",
            g.full_events.clone(),
        );
        r.register(
            "parkwatch_ingest_spool_errors",
            "Failed spool file operations",
            g.errors.clone(),
        );
        r.register(
            "parkwatch_ingest_deadletters_written",
            "Rejected messages written to the dead-letter store",
            self.deadletters_written.clone(),
        );
        r.register(
            "parkwatch_ingest_deadletters_dropped",
            "Dead letters not written (queue full or write error); the rejection is still counted",
            self.deadletters_dropped.clone(),
        );
        r.register(
            "parkwatch_ingest_deadletter_bytes",
            "Size of the dead-letter files",
            self.deadletter_bytes.clone(),
        );
        r.register(
            "parkwatch_ingest_dedup_ranges",
            "Sequence-number ranges held by the telemetry dedup record",
            self.dedup_ranges.clone(),
        );
        r.register(
            "parkwatch_ingest_ack_lag_last_max_seconds",
            "Largest ack lag among the records of the latest ack, per edge",
            self.ack_lag_last_max.clone(),
        );
        r.register(
            "parkwatch_ingest_alarm_store_seconds",
            "Time from an alarm event's arrival from the broker to its commit in the incident store",
            self.alarm_store.clone(),
        );
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
        self.points_written.inc_by(points);
        self.batches_written.inc_by(batches);
        self.last_write_ok_ms.store(now_ms, Ordering::Relaxed);
    }

    /// Points written so far.
    pub fn points_written(&self) -> u64 {
        self.points_written.get()
    }

    /// `n` telemetry batches were refused by the database and dropped.
    pub fn batches_dropped(&self, n: u64) {
        self.batches_dropped.inc_by(n);
    }

    /// Batches dropped so far.
    pub fn batches_dropped_count(&self) -> u64 {
        self.batches_dropped.get()
    }

    /// A delivery ack was published.
    pub fn ack_published(&self) {
        self.acks_published.inc();
    }

    /// Delivery acks published so far.
    pub fn acks_published(&self) -> u64 {
        self.acks_published.get()
    }

    /// Adds `delta` to the writer queue depth gauge.
    pub fn queue_add(&self, delta: i64) {
        self.queue_depth.inc_by(delta);
    }

    /// Sets the points-buffered-in-writer gauge.
    pub fn set_buffered_points(&self, n: usize) {
        self.buffered_points
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Sets whether the embedded broker runs.
    pub fn set_broker_up(&self, up: bool) {
        self.broker_up.set(i64::from(up));
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
        self.consumer_connected.set(i64::from(up));
    }

    /// The health verdict right now.
    pub fn health(&self) -> Health {
        let ok_ms = self.last_write_ok_ms.load(Ordering::Relaxed);
        let err_ms = self.last_write_err_ms.load(Ordering::Relaxed);
        let ts_ok = err_ms == 0 || ok_ms >= err_ms;
        let broker_up = self.embedded_broker.then(|| self.broker_up.get() == 1);
        let consumer_connected = self.consumer_connected.get() == 1;
        let queue_depth = self.queue_depth.get();
        let queue_capacity = self.queue_capacity.get();
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
        SpoolHealth {
            enabled: g.enabled.load(Ordering::Relaxed),
            records: g.records.get(),
            batches: g.batches.get(),
            bytes: g.bytes.get(),
            max_bytes: g.max_bytes.get(),
            full: g.full.get() == 1,
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
        self.spool.max_bytes.set(max_bytes);
    }

    /// Sets the spool depth gauges.
    pub fn set_spool_depth(&self, records: u64, batches: u64, bytes: u64) {
        self.spool.records.set(records);
        self.spool.batches.set(batches);
        self.spool.bytes.set(bytes);
    }

    /// Sets whether the spool is refusing appends for lack of room.
    pub fn set_spool_full(&self, full: bool) {
        self.spool.full.set(i64::from(full));
    }

    /// `n` batches were appended to the spool (and acked).
    pub fn spooled(&self, n: u64) {
        self.spool.spooled.inc_by(n);
    }

    /// Batches appended to the spool so far.
    pub fn spooled_count(&self) -> u64 {
        self.spool.spooled.get()
    }

    /// `n` batches left the spool (written, or refused and dead-lettered).
    pub fn spool_drained(&self, n: u64) {
        self.spool.drained.inc_by(n);
    }

    /// Batches drained from the spool so far.
    pub fn spool_drained_count(&self) -> u64 {
        self.spool.drained.get()
    }

    /// An append found the spool full.
    pub fn spool_full_event(&self) {
        self.spool.full_events.inc();
    }

    /// Times an append found the spool full.
    pub fn spool_full_count(&self) -> u64 {
        self.spool.full_events.get()
    }

    /// A spool file operation failed.
    pub fn spool_error(&self) {
        self.spool.errors.inc();
    }

    /// A dead letter was written.
    pub fn deadletter_written(&self) {
        self.deadletters_written.inc();
    }

    /// Dead letters written so far.
    pub fn deadletters_written(&self) -> u64 {
        self.deadletters_written.get()
    }

    /// A dead letter was dropped (queue full or write error).
    pub fn deadletter_dropped(&self) {
        self.deadletters_dropped.inc();
    }

    /// Dead letters dropped so far.
    pub fn deadletters_dropped(&self) -> u64 {
        self.deadletters_dropped.get()
    }

    /// Sets the size of the dead-letter files.
    pub fn set_deadletter_bytes(&self, bytes: u64) {
        self.deadletter_bytes.set(bytes);
    }

    /// Sets the number of ranges held by the telemetry dedup record.
    pub fn set_dedup_ranges(&self, n: u64) {
        self.dedup_ranges.set(n);
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
        // Under the map's lock, so the gauge's label set stays the map's.
        self.ack_lag_last_max
            .get_or_create(&[("edge", key.to_owned())])
            .set(max);
    }

    /// Ack lag of `edge`: (records, total seconds, largest in the last ack).
    pub fn ack_lag_of(&self, edge: &str) -> Option<(u64, f64, f64)> {
        let map = self.ack_lag.lock().ok()?;
        map.get(edge).map(|l| (l.count, l.sum, l.last_max))
    }

    /// An alarm event was durably stored `latency` after it arrived from
    /// the broker.
    pub fn alarm_stored(&self, latency: Duration) {
        self.alarm_store.observe(latency.as_secs_f64());
    }

    /// The Prometheus text exposition (format 0.0.4, [`CONTENT_TYPE`]) of
    /// every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        // Writing into a String cannot fail, and the encoder has no error
        // of its own.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        self.render_ack_lag_summary(&mut out);
        out
    }

    /// The ack-lag summary (`_sum` and `_count` per edge, no quantiles),
    /// written by hand because prometheus-client has no summary type.
    fn render_ack_lag_summary(&self, out: &mut String) {
        let Ok(map) = self.ack_lag.lock() else {
            return;
        };
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
    }
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
