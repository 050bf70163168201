//! The time-series writer: batches telemetry and writes it, with retries.
//!
//! # Design
//!
//! The consumer sends one [`WriteItem`] per accepted telemetry batch into a
//! bounded channel (`timeseries.queue_batches`). **When the channel is full
//! the consumer waits**: it stops acknowledging MQTT messages, so the broker
//! stops sending once its in-flight window is used up. Nothing is dropped
//! for lack of room; the edges' outboxes hold the rest.
//!
//! The writer task buffers items whole (a batch is never split across
//! requests) and flushes when `batch_points` points are buffered or
//! `flush_interval_ms` after the oldest buffered item arrived, whichever
//! comes first. A flush encodes the points as line protocol once and sends
//! the bytes through a [`TsdbSink`] (the `influxdb2` client in production,
//! a fake in tests). While a flush is in progress the channel is not read,
//! which is what turns a slow or absent database into backpressure.
//!
//! Failures are sorted by [`classify`]:
//! - **retry** with jittered exponential backoff ([`Backoff`]), forever
//!   until it works or shutdown's grace time is over: connection errors,
//!   timeouts, other transport errors, 408, 429, 5xx, and also 401, 403 and
//!   404, which mean a wrong token or bucket: dropping data because of a
//!   configuration mistake would lose everything until it is fixed;
//! - **isolate and drop**: 400, 413, 422 and other 4xx mean the request
//!   itself is refused. A group of several batches is split in halves and
//!   each half retried, so only the offending batch is dropped; a single
//!   refused batch is dropped, counted in `batches_dropped_total` and logged
//!   with site, edge, seq and the server's answer.
//!
//! After a successful write the `(site, edge, seq)` of every batch in it is
//! sent to the acker ([`crate::acks`]), which publishes delivery acks. A
//! dropped batch is acknowledged too: the database refused it for good, and
//! an edge resending it forever would gain nothing. (It is gone, which is
//! why it is counted and logged.)
//!
//! Seam for the disk spool (next issue): [`Writer::flush`] is the one place
//! where a group waits out a long outage; a spool goes between it and the
//! sink, taking groups that exceed a retry budget and acking them once they
//! are on disk. Dropped batches go to [`Writer::drop_batch`], where the
//! dead-letter file will be written.
//!
//! Shutdown: when every sender is gone the writer flushes what it holds and
//! returns. If the `abort` signal fires first (grace time over), it stops
//! retrying and returns; unflushed batches are not acknowledged, so edges
//! send them again later.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use influxdb2::models::DataPoint;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::acks::AckEntry;
use crate::metrics::Metrics;
use crate::points::encode_lines;

/// One accepted telemetry batch, converted and waiting to be written.
#[derive(Debug, Clone)]
pub struct WriteItem {
    /// Site id from the topic.
    pub site: String,
    /// Edge id from the topic.
    pub edge: String,
    /// The batch's outbox sequence number.
    pub seq: u64,
    /// Its points (possibly none, if all were skipped; it is still acked).
    pub points: Vec<DataPoint>,
}

/// Why a write failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// Could not connect to the database.
    #[error("cannot connect to {url}: {detail}")]
    Connect {
        /// The write endpoint (no credentials).
        url: String,
        /// The transport's message.
        detail: String,
    },
    /// No answer within the request timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Another transport-level failure (connection reset, broken body).
    #[error("request failed: {0}")]
    Transport(String),
    /// The server answered with an error status.
    #[error("HTTP {status}: {body}")]
    Http {
        /// HTTP status code.
        status: u16,
        /// Start of the response body.
        body: String,
    },
    /// Anything else (e.g. a response that could not be read).
    #[error("{0}")]
    Other(String),
}

/// What to do after a failed write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Wait and send the same bytes again.
    Retry,
    /// The request is refused: split the group, drop a single batch.
    Refused,
}

/// Sorts a write error into a metric class and a [`Disposition`].
pub fn classify(e: &WriteError) -> (&'static str, Disposition) {
    use Disposition::*;
    match e {
        WriteError::Connect { .. } => ("connect", Retry),
        WriteError::Timeout(_) => ("timeout", Retry),
        WriteError::Transport(_) => ("transport", Retry),
        WriteError::Http { status, .. } => match *status {
            408 => ("http_408", Retry),
            429 => ("http_429", Retry),
            401 | 403 => ("http_auth", Retry),
            404 => ("http_404", Retry),
            413 => ("http_413", Refused),
            400..=499 => ("http_4xx", Refused),
            500..=599 => ("http_5xx", Retry),
            _ => ("http_other", Retry),
        },
        WriteError::Other(_) => ("other", Retry),
    }
}

/// Jittered exponential backoff: attempt `n` (from 0) waits a random time
/// in `[d/2, d]` with `d = min(max, min * 2^n)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
}

/// A [`Backoff`] whose bounds are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid backoff: need 0 < min ({min:?}) <= max ({max:?})")]
pub struct BackoffError {
    min: Duration,
    max: Duration,
}

impl Backoff {
    /// A backoff from `min` to `max`; `0 < min <= max`.
    pub fn try_new(min: Duration, max: Duration) -> Result<Self, BackoffError> {
        if min.is_zero() || min > max {
            return Err(BackoffError { min, max });
        }
        Ok(Backoff { min, max })
    }

    /// The delay before retry `attempt` (0-based), given `jitter` in
    /// `[0, 1]` (0 gives the shortest, 1 the longest delay).
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(31));
        let full = self.min.saturating_mul(factor).min(self.max);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            1.0
        };
        full.mul_f64(0.5 + 0.5 * jitter)
    }
}

/// Where line protocol goes: the InfluxDB v2 write API, or a test fake.
pub trait TsdbSink: Send + Sync + 'static {
    /// Writes one request body of line protocol (nanosecond timestamps).
    fn write(&self, body: Bytes) -> impl Future<Output = Result<(), WriteError>> + Send;
}

/// [`TsdbSink`] backed by the `influxdb2` client.
#[derive(Debug, Clone)]
pub struct InfluxSink {
    client: influxdb2::Client,
    org: String,
    bucket: String,
    endpoint: String,
}

impl InfluxSink {
    /// A sink writing to `url` (checked by config validation: an absolute
    /// http(s) URL; a bad one is reported here instead of panicking).
    pub fn new(url: &str, org: &str, bucket: &str, token: &str) -> Result<Self, WriteError> {
        let parsed = url::Url::parse(url)
            .map_err(|e| WriteError::Other(format!("invalid time-series URL: {e}")))?;
        let mut endpoint = parsed.clone();
        endpoint.set_path("/api/v2/write");
        let client = influxdb2::ClientBuilder::new(url, org, token)
            .build()
            .map_err(|e| WriteError::Other(format!("cannot build HTTP client: {e}")))?;
        Ok(InfluxSink {
            client,
            org: org.to_owned(),
            bucket: bucket.to_owned(),
            endpoint: endpoint.to_string(),
        })
    }
}

impl TsdbSink for InfluxSink {
    async fn write(&self, body: Bytes) -> Result<(), WriteError> {
        match self
            .client
            .write_line_protocol(&self.org, &self.bucket, body)
            .await
        {
            Ok(()) => Ok(()),
            Err(influxdb2::RequestError::Http { status, text }) => {
                if status.is_success() {
                    // The crate wants exactly 204; any 2xx means stored.
                    return Ok(());
                }
                Err(WriteError::Http {
                    status: status.as_u16(),
                    body: truncate(&text, 300),
                })
            }
            Err(influxdb2::RequestError::ReqwestProcessing { source }) => {
                if source.is_timeout() {
                    Err(WriteError::Timeout(Duration::ZERO))
                } else if source.is_connect() {
                    Err(WriteError::Connect {
                        url: self.endpoint.clone(),
                        detail: root_cause(&source),
                    })
                } else {
                    Err(WriteError::Transport(source.to_string()))
                }
            }
            Err(e) => Err(WriteError::Other(e.to_string())),
        }
    }
}

/// The innermost error's message (reqwest's own text repeats its chain).
fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(inner) = cur.source() {
        cur = inner;
    }
    cur.to_string()
}

fn truncate(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// Writer limits, checked on construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterSettings {
    /// Flush when this many points are buffered.
    pub batch_points: usize,
    /// Flush this long after the oldest buffered item arrived.
    pub flush_interval: Duration,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// Delay between retries.
    pub backoff: Backoff,
}

/// The writer task's state. Build with [`Writer::new`], run with [`Writer::run`].
pub struct Writer<S> {
    sink: S,
    settings: WriterSettings,
    metrics: Arc<Metrics>,
    rx: mpsc::Receiver<WriteItem>,
    acks: mpsc::Sender<AckEntry>,
    abort: watch::Receiver<bool>,
    buffer: Vec<WriteItem>,
    buffered_points: usize,
}

/// The writer gave up because shutdown's grace time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aborted;

impl<S: TsdbSink> Writer<S> {
    /// A writer reading `rx`, writing to `sink`, reporting stored batches to
    /// `acks`; `abort` turning true makes it give up (see module doc).
    pub fn new(
        sink: S,
        settings: WriterSettings,
        metrics: Arc<Metrics>,
        rx: mpsc::Receiver<WriteItem>,
        acks: mpsc::Sender<AckEntry>,
        abort: watch::Receiver<bool>,
    ) -> Self {
        Writer {
            sink,
            settings,
            metrics,
            rx,
            acks,
            abort,
            buffer: Vec::new(),
            buffered_points: 0,
        }
    }

    /// Runs until every sender is dropped (then flushes and returns) or
    /// abort is signalled.
    pub async fn run(mut self) {
        let mut deadline: Option<Instant> = None;
        loop {
            let timer = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                item = self.rx.recv() => match item {
                    Some(item) => {
                        self.metrics.queue_add(-1);
                        if self.buffer.is_empty() {
                            deadline = Some(Instant::now() + self.settings.flush_interval);
                        }
                        self.buffered_points += item.points.len();
                        self.buffer.push(item);
                        self.metrics.set_buffered_points(self.buffered_points);
                        if self.buffered_points >= self.settings.batch_points {
                            deadline = None;
                            if self.flush().await.is_err() {
                                return;
                            }
                        }
                    }
                    None => {
                        let _ = self.flush().await;
                        debug!("Time-series writer finished.");
                        return;
                    }
                },
                () = timer => {
                    deadline = None;
                    if self.flush().await.is_err() {
                        return;
                    }
                }
                _ = wait_true(&mut self.abort) => {
                    self.log_abandoned();
                    return;
                }
            }
        }
    }

    fn log_abandoned(&self) {
        if !self.buffer.is_empty() {
            warn!(
                batches = self.buffer.len(),
                points = self.buffered_points,
                "Shutdown grace time over; unwritten batches are not acked and edges will resend them."
            );
        }
    }

    /// Writes everything buffered, isolating refused batches. Returns
    /// `Err(Aborted)` if the abort signal fired while retrying.
    pub async fn flush(&mut self) -> Result<(), Aborted> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let items = std::mem::take(&mut self.buffer);
        let mut stack = vec![items];
        while let Some(group) = stack.pop() {
            match self.write_group(&group).await {
                Ok(()) => {
                    self.buffered_points = self
                        .buffered_points
                        .saturating_sub(group.iter().map(|i| i.points.len()).sum());
                    self.metrics.set_buffered_points(self.buffered_points);
                    for item in &group {
                        self.ack(item).await;
                    }
                }
                Err(GroupError::Refused(e)) => {
                    if group.len() > 1 {
                        let mut first = group;
                        let second = first.split_off(first.len() / 2);
                        // Pop order: first half, then second.
                        stack.push(second);
                        stack.push(first);
                    } else {
                        for item in group {
                            self.buffered_points =
                                self.buffered_points.saturating_sub(item.points.len());
                            self.drop_batch(&item, &e);
                            self.ack(&item).await;
                        }
                        self.metrics.set_buffered_points(self.buffered_points);
                    }
                }
                Err(GroupError::Aborted) => {
                    // Put back what is left, so the abandon log is accurate.
                    self.buffer = stack.into_iter().flatten().chain(group).collect();
                    self.log_abandoned();
                    return Err(Aborted);
                }
            }
        }
        Ok(())
    }

    /// The one place a refused batch leaves ingest (dead letters go here).
    fn drop_batch(&self, item: &WriteItem, e: &WriteError) {
        self.metrics.batches_dropped(1);
        warn!(
            site = %item.site,
            edge = %item.edge,
            seq = item.seq,
            points = item.points.len(),
            err = %e,
            "Time-series database refused a telemetry batch; dropped."
        );
    }

    async fn ack(&self, item: &WriteItem) {
        let entry = AckEntry {
            site: item.site.clone(),
            edge: item.edge.clone(),
            seq: item.seq,
        };
        if self.acks.send(entry).await.is_err() {
            debug!(edge = %item.edge, seq = item.seq, "Acker gone; ack not sent.");
        }
    }

    async fn write_group(&mut self, group: &[WriteItem]) -> Result<(), GroupError> {
        let points: usize = group.iter().map(|i| i.points.len()).sum();
        let mut buf = Vec::with_capacity(points * 96);
        for item in group {
            encode_lines(&item.points, &mut buf);
        }
        if buf.is_empty() {
            return Ok(());
        }
        let body = Bytes::from(buf);
        let mut attempt: u32 = 0;
        loop {
            let started = Instant::now();
            let result = tokio::select! {
                r = tokio::time::timeout(self.settings.request_timeout, self.sink.write(body.clone())) => {
                    r.unwrap_or(Err(WriteError::Timeout(self.settings.request_timeout)))
                }
                _ = wait_true(&mut self.abort) => return Err(GroupError::Aborted),
            };
            let err = match result {
                Ok(()) => {
                    self.metrics
                        .written(points as u64, group.len() as u64, now_ms());
                    debug!(
                        points,
                        batches = group.len(),
                        bytes = body.len(),
                        ms = started.elapsed().as_millis() as u64,
                        "Wrote points."
                    );
                    if attempt > 0 {
                        info!(
                            attempts = attempt + 1,
                            "Time-series write succeeded after retries."
                        );
                    }
                    return Ok(());
                }
                Err(WriteError::Timeout(_)) => WriteError::Timeout(self.settings.request_timeout),
                Err(e) => e,
            };
            let (class, disposition) = classify(&err);
            self.metrics.write_error(class, err.to_string(), now_ms());
            if disposition == Disposition::Refused {
                return Err(GroupError::Refused(err));
            }
            let delay = self.settings.backoff.delay(attempt, rand::random::<f64>());
            if attempt < 3 || attempt.is_multiple_of(10) {
                warn!(
                    class,
                    err = %err,
                    attempt = attempt + 1,
                    retry_in_ms = delay.as_millis() as u64,
                    batches = group.len(),
                    points,
                    "Time-series write failed; will retry."
                );
            }
            attempt = attempt.saturating_add(1);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = wait_true(&mut self.abort) => return Err(GroupError::Aborted),
            }
        }
    }
}

enum GroupError {
    Refused(WriteError),
    Aborted,
}

/// Resolves once the watch value is true (never if the sender is gone
/// while false).
async fn wait_true(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn classification_matches_the_retry_policy() {
        let http = |status| WriteError::Http {
            status,
            body: String::new(),
        };
        let retry = [
            WriteError::Connect {
                url: "u".into(),
                detail: "refused".into(),
            },
            WriteError::Timeout(Duration::from_secs(1)),
            WriteError::Transport("reset".into()),
            http(408),
            http(429),
            http(500),
            http(503),
            http(401),
            http(404),
        ];
        for e in retry {
            assert_eq!(classify(&e).1, Disposition::Retry, "{e:?}");
        }
        for status in [400, 413, 422] {
            assert_eq!(classify(&http(status)).1, Disposition::Refused, "{status}");
        }
        assert_eq!(classify(&http(429)).0, "http_429");
        assert_eq!(classify(&http(502)).0, "http_5xx");
    }

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let b = match Backoff::try_new(Duration::from_millis(100), Duration::from_secs(2)) {
            Ok(b) => b,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(b.delay(0, 1.0), Duration::from_millis(100));
        assert_eq!(b.delay(0, 0.0), Duration::from_millis(50));
        assert_eq!(b.delay(3, 1.0), Duration::from_millis(800));
        assert_eq!(b.delay(10, 1.0), Duration::from_secs(2));
        assert_eq!(b.delay(u32::MAX, 1.0), Duration::from_secs(2));
        assert_eq!(b.delay(u32::MAX, 0.0), Duration::from_secs(1));
        assert!(Backoff::try_new(Duration::ZERO, Duration::from_secs(1)).is_err());
        assert!(Backoff::try_new(Duration::from_secs(2), Duration::from_secs(1)).is_err());
    }

    /// A sink that answers from a script and records what it got.
    #[derive(Clone, Default)]
    struct FakeSink {
        script: Arc<Mutex<VecDeque<Result<(), WriteError>>>>,
        bodies: Arc<Mutex<Vec<String>>>,
        /// Refuse any body containing this text with HTTP 400.
        poison: Option<&'static str>,
    }

    impl TsdbSink for FakeSink {
        async fn write(&self, body: Bytes) -> Result<(), WriteError> {
            let text = String::from_utf8_lossy(&body).into_owned();
            if let Ok(mut b) = self.bodies.lock() {
                b.push(text.clone());
            }
            if let Some(p) = self.poison
                && text.contains(p)
            {
                return Err(WriteError::Http {
                    status: 400,
                    body: "bad point".into(),
                });
            }
            self.script
                .lock()
                .ok()
                .and_then(|mut s| s.pop_front())
                .unwrap_or(Ok(()))
        }
    }

    fn item(edge: &str, seq: u64, measurements: &[&str]) -> WriteItem {
        WriteItem {
            site: "etdz".into(),
            edge: edge.into(),
            seq,
            points: measurements
                .iter()
                .map(|m| {
                    DataPoint::builder(*m)
                        .tag("edge", edge)
                        .field("v", seq as i64)
                        .timestamp(1)
                        .build()
                        .unwrap_or_else(|e| panic!("{e}"))
                })
                .collect(),
        }
    }

    struct Harness {
        tx: mpsc::Sender<WriteItem>,
        acks: mpsc::Receiver<AckEntry>,
        abort: watch::Sender<bool>,
        metrics: Arc<Metrics>,
        task: tokio::task::JoinHandle<()>,
    }

    fn start(sink: FakeSink, batch_points: usize) -> Harness {
        let (tx, rx) = mpsc::channel(16);
        let (ack_tx, acks) = mpsc::channel(64);
        let (abort, abort_rx) = watch::channel(false);
        let metrics = Arc::new(Metrics::new(16, false));
        let settings = WriterSettings {
            batch_points,
            flush_interval: Duration::from_millis(1000),
            request_timeout: Duration::from_secs(5),
            backoff: Backoff::try_new(Duration::from_millis(100), Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("{e}")),
        };
        let w = Writer::new(sink, settings, metrics.clone(), rx, ack_tx, abort_rx);
        Harness {
            tx,
            acks,
            abort,
            metrics,
            task: tokio::spawn(w.run()),
        }
    }

    async fn send(h: &Harness, i: WriteItem) {
        h.metrics.queue_add(1);
        if h.tx.send(i).await.is_err() {
            panic!("writer gone");
        }
    }

    fn drain_acks(rx: &mut mpsc::Receiver<AckEntry>) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        while let Ok(a) = rx.try_recv() {
            out.push((a.edge, a.seq));
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn flushes_on_size_and_on_interval() {
        let sink = FakeSink::default();
        let mut h = start(sink.clone(), 3);
        send(&h, item("e1", 1, &["a", "b"])).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(
            drain_acks(&mut h.acks).is_empty(),
            "2 < 3 points: no flush yet"
        );
        send(&h, item("e1", 2, &["c"])).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            drain_acks(&mut h.acks),
            vec![("e1".into(), 1), ("e1".into(), 2)]
        );
        assert_eq!(sink.bodies.lock().map(|b| b.len()).unwrap_or(0), 1);

        send(&h, item("e2", 9, &["d"])).await;
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert!(drain_acks(&mut h.acks).is_empty(), "interval not over");
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(drain_acks(&mut h.acks), vec![("e2".into(), 9)]);
        assert_eq!(h.metrics.points_written(), 4);
        assert_eq!(h.metrics.health().queue_depth, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_errors_with_backoff_then_acks() {
        let sink = FakeSink::default();
        if let Ok(mut s) = sink.script.lock() {
            s.push_back(Err(WriteError::Connect {
                url: "u".into(),
                detail: "refused".into(),
            }));
            s.push_back(Err(WriteError::Http {
                status: 503,
                body: String::new(),
            }));
        }
        let mut h = start(sink.clone(), 1);
        send(&h, item("e1", 5, &["a"])).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(drain_acks(&mut h.acks).is_empty(), "first attempt failed");
        assert!(!h.metrics.health().timeseries.ok);
        // Two retries: at most 100 ms + 200 ms of backoff.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(drain_acks(&mut h.acks), vec![("e1".into(), 5)]);
        assert_eq!(sink.bodies.lock().map(|b| b.len()).unwrap_or(0), 3);
        assert_eq!(h.metrics.write_error_count("connect"), 1);
        assert_eq!(h.metrics.write_error_count("http_5xx"), 1);
        assert!(h.metrics.health().timeseries.ok);
    }

    #[tokio::test(start_paused = true)]
    async fn refused_batch_is_isolated_dropped_and_acked() {
        let sink = FakeSink {
            poison: Some("poison"),
            ..FakeSink::default()
        };
        let mut h = start(sink.clone(), 4);
        send(&h, item("e1", 1, &["a"])).await;
        send(&h, item("e1", 2, &["poison"])).await;
        send(&h, item("e2", 3, &["b"])).await;
        send(&h, item("e2", 4, &["c"])).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        let mut acks = drain_acks(&mut h.acks);
        acks.sort();
        assert_eq!(
            acks,
            vec![
                ("e1".into(), 1),
                ("e1".into(), 2),
                ("e2".into(), 3),
                ("e2".into(), 4)
            ]
        );
        assert_eq!(h.metrics.batches_dropped_count(), 1);
        assert_eq!(h.metrics.points_written(), 3);
        let bodies = sink.bodies.lock().map(|b| b.clone()).unwrap_or_default();
        assert!(
            bodies
                .iter()
                .any(|b| b.contains("b,") && !b.contains("poison")),
            "good batches written without the poison one: {bodies:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn closing_the_channel_flushes_and_abort_gives_up() {
        let sink = FakeSink::default();
        let mut h = start(sink.clone(), 100);
        send(&h, item("e1", 1, &["a"])).await;
        let Harness { tx, task, .. } = h;
        drop(tx);
        if let Err(e) = task.await {
            panic!("{e}");
        }
        assert_eq!(drain_acks(&mut h.acks), vec![("e1".into(), 1)]);

        let down = FakeSink::default();
        if let Ok(mut s) = down.script.lock() {
            for _ in 0..1000 {
                s.push_back(Err(WriteError::Transport("down".into())));
            }
        }
        let mut h = start(down, 1);
        send(&h, item("e1", 7, &["a"])).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        let _ = h.abort.send(true);
        let done = tokio::time::timeout(Duration::from_secs(1), h.task).await;
        assert!(done.is_ok(), "writer stops retrying on abort");
        assert!(
            drain_acks(&mut h.acks).is_empty(),
            "unwritten batch not acked"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn full_queue_makes_the_sender_wait() {
        let down = FakeSink::default();
        if let Ok(mut s) = down.script.lock() {
            for _ in 0..1000 {
                s.push_back(Err(WriteError::Transport("down".into())));
            }
        }
        let h = start(down, 1);
        // One item is being retried by the writer; 16 fill the channel.
        for seq in 0..17 {
            send(&h, item("e1", seq, &["a"])).await;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        let blocked =
            tokio::time::timeout(Duration::from_secs(5), h.tx.send(item("e1", 99, &["a"]))).await;
        assert!(blocked.is_err(), "send waits while the writer is stuck");
        assert!(!h.metrics.health().healthy);
    }
}
