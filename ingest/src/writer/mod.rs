//! The time-series writer: batches telemetry and writes it, with retries,
//! de-duplication and a disk spool for database outages.
//!
//! # Design
//!
//! The consumer sends one [`WriteItem`] per accepted telemetry batch into a
//! bounded channel (`timeseries.queue_batches`). **When the channel is full
//! the consumer waits**: it stops acknowledging MQTT messages, so the broker
//! stops sending once its in-flight window is used up.
//!
//! On arrival the writer checks the batch against the per-edge record of
//! stored batches ([`crate::dedup`]): a batch already stored (written,
//! spooled or refused for good) is acknowledged again and not written; a
//! second copy of a batch still on its way to the database is dropped (the
//! first copy's ack covers both); both are counted in
//! `parkwatch_ingest_duplicates_total{kind}`. Otherwise the batch is encoded
//! as line protocol once and buffered whole (a batch is never split across
//! requests). The writer flushes when `batch_points` points are buffered
//! or `flush_interval_ms` after the oldest buffered batch arrived.
//!
//! Failures are sorted by [`classify`]:
//! - **retry** with jittered exponential backoff ([`Backoff`]): connection
//!   errors, timeouts, other transport errors, 408, 429, 5xx, and also 401,
//!   403 and 404, which mean a wrong token or bucket (dropping data because
//!   of a configuration mistake would lose everything until it is fixed);
//! - **isolate and drop**: 400, 413, 422 and other 4xx mean the request
//!   itself is refused. A group of several batches is split in halves and
//!   each half retried, so only the offending batch is dropped; a single
//!   refused batch is counted in `batches_dropped_total`, logged with site,
//!   edge and seq, written to the dead letters ([`crate::deadletter`], reason
//!   `refused`) and acknowledged (an edge resending it forever would gain
//!   nothing).
//!
//! # The spool
//!
//! With the disk spool on (`timeseries.spool_max_bytes > 0`, see
//! [`crate::spool`]): when a group has failed retryably for
//! `spool_after_ms`, or the queue is full while it retries, the group is
//! appended to the spool, fsynced, recorded as stored and acknowledged.
//! While the spool holds anything, every new group goes there too (no
//! direct write), so the database sees the data in order, and a drain task
//! writes the oldest record as soon as the database answers, with the same
//! retry and refusal rules. If the spool is full, the group stays in memory
//! unacknowledged and the writer alternates between a direct write and
//! another append, with backoff, until one works: its queue fills, and
//! backpressure reaches the edges, whose outboxes hold the data. Nothing is
//! dropped for lack of room; full events are counted
//! (`parkwatch_ingest_spool_full_total`) and `/healthz` reports unhealthy.
//! Without the spool, a group is retried in memory until it is written.
//!
//! # Layout
//!
//! - `mod.rs`: the writer task (batching, dedup, groups, acks);
//! - [`sink`]: the time-series sink and the classification of its errors;
//! - [`retry`]: backoff between attempts and the drain's retry loop;
//! - [`drain`]: the spool drain task;
//! - [`storage`]: opening the dedup record and the spool.
//!
//! # Acks and the order of events
//!
//! For every batch: database stored it (or spool fsynced it, or database
//! refused it for good) → recorded in the dedup record → delivery ack
//! queued for the acker ([`crate::acks`]). A crash between the first two
//! steps is the one way a batch can be written twice (the edge resends it),
//! which VictoriaMetrics' `-dedup.minScrapeInterval=1ms` absorbs.
//!
//! Shutdown: when every sender is gone the writer flushes what it holds
//! (to the spool if the database is down) and returns; the drain task stops
//! after its current request and what remains in the spool is drained at
//! the next start. If the `abort` signal fires first (grace time over), it
//! stops retrying and returns; unflushed batches are not acknowledged, so
//! edges send them again later.

mod drain;
mod retry;
mod sink;
mod storage;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use influxdb2::models::DataPoint;
use parkwatch_durable::now_ms;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

pub use retry::{Backoff, BackoffError};
pub use sink::{Disposition, InfluxSink, TsdbSink, WriteError, classify};
pub use storage::{Durable, StorageError};

use crate::acks::AckEntry;
use crate::deadletter::DeadLetters;
use crate::dedup::DedupStore;
use crate::metrics::Metrics;
use crate::points::encode_lines;
use crate::spool::{SpoolBatch, SpoolError};
use drain::SpoolShared;
use retry::wait_true;

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
    /// When ingest received the MQTT message, for the ack-lag metric
    /// (`None`: not measured).
    pub received: Option<std::time::Instant>,
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

/// One batch in the writer: encoded once, with its arrival time.
#[derive(Debug, Clone)]
struct Pending {
    batch: SpoolBatch,
    received: Option<std::time::Instant>,
}

/// The line-protocol body of a group and its point count.
fn body_of<'a>(batches: impl Iterator<Item = &'a SpoolBatch>) -> (Bytes, u64) {
    let mut buf = Vec::new();
    let mut points = 0u64;
    for b in batches {
        buf.extend_from_slice(&b.lines);
        points += u64::from(b.points);
    }
    (Bytes::from(buf), points)
}

/// The writer task's state. Build with [`Writer::new`], run with [`Writer::run`].
pub struct Writer<S> {
    sink: Arc<S>,
    settings: WriterSettings,
    metrics: Arc<Metrics>,
    rx: mpsc::Receiver<WriteItem>,
    acks: mpsc::Sender<AckEntry>,
    abort: watch::Receiver<bool>,
    buffer: Vec<Pending>,
    buffered_points: usize,
    dedup: DedupStore,
    in_flight: HashSet<(String, String, u64)>,
    spool: Option<SpoolShared>,
    deadletters: Option<(DeadLetters, String)>,
}

/// The writer gave up because shutdown's grace time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aborted;

enum GroupError {
    Refused(WriteError),
    /// Failing retryably for longer than `spool_after` (or the queue is
    /// full): spool it.
    Outage,
    Aborted,
}

impl<S: TsdbSink> Writer<S> {
    /// A writer reading `rx`, writing to `sink`, reporting stored batches to
    /// `acks`; `abort` turning true makes it give up (see module doc). It
    /// starts with an in-memory dedup record and no spool; see
    /// [`Writer::with_durable`].
    pub fn new(
        sink: S,
        settings: WriterSettings,
        metrics: Arc<Metrics>,
        rx: mpsc::Receiver<WriteItem>,
        acks: mpsc::Sender<AckEntry>,
        abort: watch::Receiver<bool>,
    ) -> Self {
        Writer {
            sink: Arc::new(sink),
            settings,
            metrics,
            rx,
            acks,
            abort,
            buffer: Vec::new(),
            buffered_points: 0,
            dedup: DedupStore::in_memory(crate::dedup::DEFAULT_MAX_RANGES),
            in_flight: HashSet::new(),
            spool: None,
            deadletters: None,
        }
    }

    /// Uses the dedup record and spool of `durable`.
    pub fn with_durable(mut self, durable: Durable) -> Self {
        self.dedup = durable.dedup;
        self.metrics
            .set_dedup_ranges(self.dedup.range_count() as u64);
        self.spool = durable.spool.map(|s| {
            self.metrics.set_spool_enabled(s.max_bytes());
            let d = s.depth();
            self.metrics.set_spool_depth(d.records, d.batches, d.bytes);
            SpoolShared {
                spool: Arc::new(Mutex::new(s)),
                notify: Arc::new(Notify::new()),
                after: durable.spool_after,
            }
        });
        self
    }

    /// Writes batches the database refuses for good to `store`, under their
    /// telemetry topic with `prefix`.
    pub fn with_deadletters(mut self, store: DeadLetters, prefix: &str) -> Self {
        self.deadletters = Some((store, prefix.to_owned()));
        self
    }

    /// Runs until every sender is dropped (then flushes and returns) or
    /// abort is signalled.
    pub async fn run(mut self) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let drainer = self.spool.clone().map(|sp| {
            tokio::spawn(drain::drain(
                self.sink.clone(),
                sp,
                self.settings,
                self.metrics.clone(),
                self.deadletters.clone(),
                stop_rx,
                self.abort.clone(),
            ))
        });
        self.main_loop().await;
        let _ = stop_tx.send(true);
        if let Some(d) = drainer {
            let _ = d.await;
        }
        if let Err(e) = self.dedup.sync() {
            warn!(err = %e, "Cannot sync the telemetry dedup record.");
        }
    }

    async fn main_loop(&mut self) {
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
                        if !self.accept(item).await {
                            continue;
                        }
                        if self.buffer.len() == 1 {
                            deadline = Some(Instant::now() + self.settings.flush_interval);
                        }
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
            if let Err(e) = self.dedup.sync_if_due() {
                warn!(err = %e, "Cannot sync the telemetry dedup record.");
            }
        }
    }

    /// Takes one item: acks a batch already stored, drops a second copy of
    /// one in flight, buffers the rest. True when it was buffered.
    async fn accept(&mut self, item: WriteItem) -> bool {
        if self.dedup.contains(&item.site, &item.edge, item.seq) {
            self.metrics.duplicate("stored");
            debug!(site = %item.site, edge = %item.edge, seq = item.seq, "Batch already stored; acked again.");
            self.ack(&item.site, &item.edge, item.seq, item.received)
                .await;
            return false;
        }
        let key = (item.site.clone(), item.edge.clone(), item.seq);
        if self.in_flight.contains(&key) {
            self.metrics.duplicate("pending");
            debug!(site = %item.site, edge = %item.edge, seq = item.seq, "Second copy of a batch in flight; dropped.");
            return false;
        }
        self.in_flight.insert(key);
        let mut buf = Vec::with_capacity(item.points.len() * 96);
        encode_lines(&item.points, &mut buf);
        self.buffered_points += item.points.len();
        self.buffer.push(Pending {
            batch: SpoolBatch {
                site: item.site,
                edge: item.edge,
                seq: item.seq,
                points: u32::try_from(item.points.len()).unwrap_or(u32::MAX),
                lines: Bytes::from(buf),
            },
            received: item.received,
        });
        true
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

    fn queue_full(&self) -> bool {
        self.rx.len() >= self.rx.max_capacity()
    }

    /// Writes (or spools) everything buffered, isolating refused batches.
    /// Returns `Err(Aborted)` if the abort signal fired while retrying.
    pub async fn flush(&mut self) -> Result<(), Aborted> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let items = std::mem::take(&mut self.buffer);
        if self.spool.as_ref().is_some_and(|s| !s.is_empty()) {
            // Outage mode: the spool keeps the order.
            return self.store_via_spool(items).await;
        }
        match self.flush_direct(items, true).await? {
            None => Ok(()),
            Some(rest) => self.store_via_spool(rest).await,
        }
    }

    /// Writes `items` to the database, splitting refused groups. With
    /// `allow_outage`, returns what is left (in order) once a group has
    /// failed for longer than `spool_after`.
    async fn flush_direct(
        &mut self,
        items: Vec<Pending>,
        allow_outage: bool,
    ) -> Result<Option<Vec<Pending>>, Aborted> {
        let mut stack = vec![items];
        while let Some(group) = stack.pop() {
            match self.write_group(&group, allow_outage).await {
                Ok(()) => self.done(group).await,
                Err(GroupError::Refused(e)) => {
                    if group.len() > 1 {
                        let mut first = group;
                        let second = first.split_off(first.len() / 2);
                        // Pop order: first half, then second.
                        stack.push(second);
                        stack.push(first);
                    } else {
                        for p in group {
                            self.drop_batch(p, &e).await;
                        }
                    }
                }
                Err(GroupError::Outage) => {
                    let mut rest = group;
                    rest.extend(stack.into_iter().rev().flatten());
                    return Ok(Some(rest));
                }
                Err(GroupError::Aborted) => {
                    // Put back what is left, so the abandon log is accurate.
                    self.buffer = stack.into_iter().flatten().chain(group).collect();
                    self.log_abandoned();
                    return Err(Aborted);
                }
            }
        }
        Ok(None)
    }

    /// Appends `items` to the spool and acks them; while the spool is full
    /// (or failing), alternates with direct writes until one works.
    async fn store_via_spool(&mut self, items: Vec<Pending>) -> Result<(), Aborted> {
        let Some(spool) = self.spool.clone() else {
            return match self.flush_direct(items, false).await? {
                None => Ok(()),
                Some(_) => Ok(()),
            };
        };
        let mut attempt: u32 = 0;
        let mut full_reported = false;
        loop {
            let batches: Vec<SpoolBatch> = items.iter().map(|p| p.batch.clone()).collect();
            let n = batches.len();
            match spool
                .with(move |s| {
                    s.append(&batches)?;
                    Ok(s.depth())
                })
                .await
            {
                Ok(d) => {
                    self.metrics.spooled(n as u64);
                    self.metrics.set_spool_depth(d.records, d.batches, d.bytes);
                    self.metrics.set_spool_full(false);
                    spool.notify.notify_one();
                    debug!(batches = n, spool_records = d.records, "Spooled telemetry.");
                    self.done(items).await;
                    return Ok(());
                }
                Err(SpoolError::Full { need, free, max }) => {
                    if !full_reported {
                        full_reported = true;
                        self.metrics.spool_full_event();
                        self.metrics.set_spool_full(true);
                        warn!(
                            need,
                            free,
                            max,
                            batches = n,
                            "Spool full; holding telemetry unacknowledged (edges keep it) until the database or the spool has room."
                        );
                    }
                }
                Err(e) => {
                    self.metrics.spool_error();
                    if attempt < 3 || attempt.is_multiple_of(20) {
                        error!(err = %e, batches = n, "Cannot append to the spool; holding telemetry unacknowledged.");
                    }
                }
            }
            // No room: one direct attempt.
            let (body, points) = body_of(items.iter().map(|p| &p.batch));
            let r = if body.is_empty() {
                Ok(())
            } else {
                match self.attempt(&body).await {
                    Ok(r) => r,
                    Err(Aborted) => {
                        self.buffer = items;
                        self.log_abandoned();
                        return Err(Aborted);
                    }
                }
            };
            match r {
                Ok(()) => {
                    self.metrics.written(points, n as u64, now_ms());
                    self.metrics.set_spool_full(false);
                    self.done(items).await;
                    return Ok(());
                }
                Err(e) if classify(&e).1 == Disposition::Refused => {
                    // The database answers: isolate the refused batch.
                    self.metrics.set_spool_full(false);
                    return match self.flush_direct(items, false).await? {
                        None => Ok(()),
                        Some(_) => Ok(()),
                    };
                }
                Err(_) => {}
            }
            let delay = self.settings.backoff.delay(attempt, rand::random::<f64>());
            attempt = attempt.saturating_add(1);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = wait_true(&mut self.abort) => {
                    self.buffer = items;
                    self.log_abandoned();
                    return Err(Aborted);
                }
            }
        }
    }

    /// A group is stored (written, spooled, or refused for good): record it
    /// as stored, then ack each batch.
    async fn done(&mut self, group: Vec<Pending>) {
        if let Err(e) = self.dedup.record(
            group
                .iter()
                .map(|p| (p.batch.site.as_str(), p.batch.edge.as_str(), p.batch.seq)),
        ) {
            self.metrics.spool_error();
            error!(err = %e, "Cannot append to the telemetry dedup record; a re-sent batch may be written twice.");
        }
        self.metrics
            .set_dedup_ranges(self.dedup.range_count() as u64);
        let points: usize = group.iter().map(|p| p.batch.points as usize).sum();
        self.buffered_points = self.buffered_points.saturating_sub(points);
        self.metrics.set_buffered_points(self.buffered_points);
        for p in group {
            self.ack(&p.batch.site, &p.batch.edge, p.batch.seq, p.received)
                .await;
            self.in_flight
                .remove(&(p.batch.site, p.batch.edge, p.batch.seq));
        }
    }

    /// The one place a refused batch leaves ingest: counted, logged,
    /// dead-lettered, recorded and acked.
    async fn drop_batch(&mut self, p: Pending, e: &WriteError) {
        refused(&self.metrics, self.deadletters.as_ref(), &p.batch, e);
        self.done(vec![p]).await;
    }

    async fn ack(&self, site: &str, edge: &str, seq: u64, received: Option<std::time::Instant>) {
        let entry = AckEntry {
            site: site.to_owned(),
            edge: edge.to_owned(),
            seq,
            received,
        };
        if self.acks.send(entry).await.is_err() {
            debug!(%edge, seq, "Acker gone; ack not sent.");
        }
    }

    /// One request, bounded by the request timeout; `Err(Aborted)` if abort
    /// fired meanwhile. A failure is counted by class.
    async fn attempt(&mut self, body: &Bytes) -> Result<Result<(), WriteError>, Aborted> {
        let timeout = self.settings.request_timeout;
        let result = tokio::select! {
            r = tokio::time::timeout(timeout, self.sink.write(body.clone())) => {
                r.unwrap_or(Err(WriteError::Timeout(timeout)))
            }
            _ = wait_true(&mut self.abort) => return Err(Aborted),
        };
        let result = match result {
            Err(WriteError::Timeout(_)) => Err(WriteError::Timeout(timeout)),
            other => other,
        };
        if let Err(err) = &result {
            self.metrics
                .write_error(classify(err).0, err.to_string(), now_ms());
        }
        Ok(result)
    }

    async fn write_group(
        &mut self,
        group: &[Pending],
        allow_outage: bool,
    ) -> Result<(), GroupError> {
        let (body, points) = body_of(group.iter().map(|p| &p.batch));
        if body.is_empty() {
            return Ok(());
        }
        let mut attempt: u32 = 0;
        let mut failing_since: Option<Instant> = None;
        loop {
            let started = Instant::now();
            let err = match self.attempt(&body).await {
                Err(Aborted) => return Err(GroupError::Aborted),
                Ok(Ok(())) => {
                    self.metrics.written(points, group.len() as u64, now_ms());
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
                Ok(Err(e)) => e,
            };
            let (class, disposition) = classify(&err);
            if disposition == Disposition::Refused {
                return Err(GroupError::Refused(err));
            }
            let since = *failing_since.get_or_insert(started);
            if allow_outage
                && let Some(sp) = &self.spool
                && (since.elapsed() >= sp.after || self.queue_full())
            {
                warn!(
                    class,
                    err = %err,
                    failing_ms = since.elapsed().as_millis() as u64,
                    batches = group.len(),
                    points,
                    "Time-series database unavailable; spooling telemetry to disk."
                );
                return Err(GroupError::Outage);
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

/// Counts, logs and dead-letters a batch the database refused for good.
fn refused(
    metrics: &Metrics,
    deadletters: Option<&(DeadLetters, String)>,
    b: &SpoolBatch,
    e: &WriteError,
) {
    metrics.batches_dropped(1);
    warn!(
        site = %b.site,
        edge = %b.edge,
        seq = b.seq,
        points = b.points,
        err = %e,
        "Time-series database refused a telemetry batch; dropped (see /deadletters)."
    );
    if let Some((dl, prefix)) = deadletters {
        dl.record(
            &format!("{prefix}/{}/{}/telemetry", b.site, b.edge),
            "refused",
            &format!("seq {}: {e}", b.seq),
            &b.lines,
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::path::Path;
    use std::sync::Mutex;

    use super::*;
    use crate::spool::Spool;

    /// A sink that answers from a script and records what it got.
    #[derive(Clone, Default)]
    struct FakeSink {
        script: Arc<Mutex<VecDeque<Result<(), WriteError>>>>,
        bodies: Arc<Mutex<Vec<String>>>,
        /// Refuse any body containing this text with HTTP 400.
        poison: Option<&'static str>,
        /// While true, every write fails to connect.
        down: Arc<std::sync::atomic::AtomicBool>,
        /// Bodies that were stored (answered Ok).
        stored: Arc<Mutex<Vec<String>>>,
    }

    impl FakeSink {
        fn set_down(&self, down: bool) {
            self.down.store(down, std::sync::atomic::Ordering::SeqCst);
        }

        /// Every stored line, in order.
        fn stored_lines(&self) -> Vec<String> {
            self.stored
                .lock()
                .map(|b| {
                    b.iter()
                        .flat_map(|t| t.lines().map(str::to_owned).collect::<Vec<_>>())
                        .collect()
                })
                .unwrap_or_default()
        }
    }

    impl TsdbSink for FakeSink {
        async fn write(&self, body: Bytes) -> Result<(), WriteError> {
            if self.down.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(WriteError::Connect {
                    url: "fake".into(),
                    detail: "down".into(),
                });
            }
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
            let r = self
                .script
                .lock()
                .ok()
                .and_then(|mut s| s.pop_front())
                .unwrap_or(Ok(()));
            if r.is_ok()
                && let Ok(mut b) = self.stored.lock()
            {
                b.push(text);
            }
            r
        }
    }

    fn item(edge: &str, seq: u64, measurements: &[&str]) -> WriteItem {
        WriteItem {
            site: "etdz".into(),
            edge: edge.into(),
            seq,
            received: None,
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
        start_with(sink, batch_points, None)
    }

    fn start_with(sink: FakeSink, batch_points: usize, durable: Option<Durable>) -> Harness {
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
        let mut w = Writer::new(sink, settings, metrics.clone(), rx, ack_tx, abort_rx);
        if let Some(d) = durable {
            w = w.with_durable(d);
        }
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

    fn durable(dir: &Path, spool_max: u64) -> Durable {
        Durable::open(dir, spool_max, Duration::from_millis(500)).unwrap()
    }

    /// Waits (in paused time) until `f` holds, letting blocking I/O finish.
    async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
        for _ in 0..2000 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never happened: {what}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_resent_batch_is_acked_again_but_written_once() {
        let sink = FakeSink::default();
        let mut h = start(sink.clone(), 1);
        send(&h, item("e1", 7, &["a"])).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(drain_acks(&mut h.acks), vec![("e1".into(), 7)]);
        send(&h, item("e1", 7, &["a"])).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            drain_acks(&mut h.acks),
            vec![("e1".into(), 7)],
            "acked again"
        );
        assert_eq!(sink.stored_lines().len(), 1, "written once");
        assert_eq!(h.metrics.duplicate_count("stored"), 1);
        // The same seq from another edge is another batch.
        send(&h, item("e2", 7, &["a"])).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(drain_acks(&mut h.acks), vec![("e2".into(), 7)]);
        assert_eq!(sink.stored_lines().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_copy_in_flight_is_dropped_and_covered_by_the_first() {
        let sink = FakeSink::default();
        // Flush on the interval only: both copies meet in the buffer.
        let mut h = start(sink.clone(), 100);
        send(&h, item("e1", 3, &["a"])).await;
        send(&h, item("e1", 3, &["a"])).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(drain_acks(&mut h.acks), vec![("e1".into(), 3)]);
        assert_eq!(sink.stored_lines().len(), 1);
        assert_eq!(h.metrics.duplicate_count("pending"), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_dedup_record_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let sink = FakeSink::default();
        let mut h = start_with(sink.clone(), 1, Some(durable(dir.path(), 0)));
        send(&h, item("e1", 11, &["a"])).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(drain_acks(&mut h.acks).len(), 1);
        // kill -9: the task is dropped without shutdown.
        h.task.abort();
        let _ = h.task.await;

        let mut h = start_with(sink.clone(), 1, Some(durable(dir.path(), 0)));
        send(&h, item("e1", 11, &["a"])).await;
        send(&h, item("e1", 12, &["b"])).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            drain_acks(&mut h.acks),
            vec![("e1".into(), 11), ("e1".into(), 12)]
        );
        assert_eq!(sink.stored_lines().len(), 2, "seq 11 was not written again");
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_spools_acks_at_once_and_drains_everything_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let sink = FakeSink::default();
        sink.set_down(true);
        let mut h = start_with(sink.clone(), 1, Some(durable(dir.path(), 1 << 20)));
        for seq in 1..=5 {
            send(&h, item("e1", seq, &[&format!("m{seq}")])).await;
        }
        // Spooled after ~500 ms of failures, and acked although nothing is
        // written yet.
        let acks = &mut h.acks;
        let mut got = Vec::new();
        eventually("all five acked", || {
            got.extend(drain_acks(acks));
            got.len() == 5
        })
        .await;
        assert_eq!(
            got,
            (1..=5).map(|s| ("e1".to_owned(), s)).collect::<Vec<_>>()
        );
        assert!(sink.stored_lines().is_empty());
        assert_eq!(h.metrics.spooled_count(), 5);
        assert_eq!(h.metrics.health().spool.batches, 5);
        // More data while the spool holds something goes to the spool too.
        send(&h, item("e1", 6, &["m6"])).await;
        let m = h.metrics.clone();
        eventually("seq 6 spooled", || m.spooled_count() == 6).await;
        sink.set_down(false);
        let s = sink.clone();
        eventually("drained", || s.stored_lines().len() == 6).await;
        let m = h.metrics.clone();
        eventually("spool empty", || m.health().spool.records == 0).await;
        let lines = sink.stored_lines();
        let order: Vec<&str> = lines.iter().map(|l| &l[..2]).collect();
        assert_eq!(order, vec!["m1", "m2", "m3", "m4", "m5", "m6"]);
        assert_eq!(h.metrics.spool_drained_count(), 6);
        assert_eq!(h.metrics.points_written(), 6);
        // Back to direct writes once the spool is empty.
        send(&h, item("e1", 7, &["m7"])).await;
        let s = sink.clone();
        eventually("direct write", || s.stored_lines().len() == 7).await;
        assert_eq!(h.metrics.spooled_count(), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn spooled_batches_are_drained_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let sink = FakeSink::default();
        sink.set_down(true);
        let mut h = start_with(sink.clone(), 1, Some(durable(dir.path(), 1 << 20)));
        send(&h, item("e1", 1, &["a"])).await;
        let acks = &mut h.acks;
        eventually("spooled and acked", || !drain_acks(acks).is_empty()).await;
        h.task.abort();
        let _ = h.task.await;

        sink.set_down(false);
        let h = start_with(sink.clone(), 1, Some(durable(dir.path(), 1 << 20)));
        let s = sink.clone();
        eventually("drained after restart", || s.stored_lines().len() == 1).await;
        // The batch is recorded as stored: a resend is acked, not written.
        let mut h = h;
        send(&h, item("e1", 1, &["a"])).await;
        let acks = &mut h.acks;
        eventually("acked again", || !drain_acks(acks).is_empty()).await;
        assert_eq!(sink.stored_lines().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_spool_stops_acking_until_there_is_room() {
        let dir = tempfile::tempdir().unwrap();
        let sink = FakeSink::default();
        sink.set_down(true);
        // Room for one small record only.
        let mut d = durable(dir.path(), 0);
        d.spool = Some(Spool::open(&dir.path().join("spool"), 80).unwrap().0);
        let mut h = start_with(sink.clone(), 1, Some(d));
        send(&h, item("e1", 1, &["a"])).await;
        send(&h, item("e1", 2, &["b"])).await;
        let acks = &mut h.acks;
        let mut got = Vec::new();
        eventually("first spooled", || {
            got.extend(drain_acks(acks));
            !got.is_empty()
        })
        .await;
        tokio::time::sleep(Duration::from_secs(30)).await;
        got.extend(drain_acks(&mut h.acks));
        assert_eq!(got, vec![("e1".into(), 1)], "seq 2 held, not acked");
        assert_eq!(h.metrics.spool_full_count(), 1);
        assert!(h.metrics.health().spool.full);
        assert!(!h.metrics.health().healthy);
        sink.set_down(false);
        let acks = &mut h.acks;
        eventually("seq 2 stored", || {
            got.extend(drain_acks(acks));
            got.len() == 2
        })
        .await;
        let s = sink.clone();
        eventually("both written", || s.stored_lines().len() == 2).await;
        assert!(!h.metrics.health().spool.full);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_refused_while_draining_is_dead_lettered() {
        let dir = tempfile::tempdir().unwrap();
        let sink = FakeSink {
            poison: Some("poison"),
            ..FakeSink::default()
        };
        sink.set_down(true);
        let (tx, rx) = mpsc::channel(16);
        let (ack_tx, mut acks) = mpsc::channel(64);
        let (_abort, abort_rx) = watch::channel(false);
        let metrics = Arc::new(Metrics::new(16, false));
        let dl = DeadLetters::start(
            &dir.path().join("dl"),
            &crate::deadletter::DeadLetterConfig::default(),
            metrics.clone(),
        )
        .unwrap();
        let settings = WriterSettings {
            batch_points: 3,
            flush_interval: Duration::from_millis(100),
            request_timeout: Duration::from_secs(5),
            backoff: Backoff::try_new(Duration::from_millis(100), Duration::from_secs(1)).unwrap(),
        };
        let w = Writer::new(
            sink.clone(),
            settings,
            metrics.clone(),
            rx,
            ack_tx,
            abort_rx,
        )
        .with_durable(durable(dir.path(), 1 << 20))
        .with_deadletters(dl.clone(), "pw");
        let _task = tokio::spawn(w.run());
        for (seq, m) in [(1, "a"), (2, "poison"), (3, "c")] {
            metrics.queue_add(1);
            tx.send(item("e1", seq, &[m])).await.unwrap();
        }
        let mut got = Vec::new();
        eventually("spooled", || {
            got.extend(drain_acks(&mut acks));
            got.len() == 3
        })
        .await;
        sink.set_down(false);
        let s = sink.clone();
        eventually("good ones drained", || s.stored_lines().len() == 2).await;
        let m = metrics.clone();
        eventually("spool empty", || m.health().spool.records == 0).await;
        assert_eq!(metrics.batches_dropped_count(), 1);
        // The dead letter is written by its own thread.
        let mut letters = Vec::new();
        for _ in 0..200 {
            letters = dl.list(10).unwrap();
            if !letters.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].reason, "refused");
        assert_eq!(letters[0].topic, "pw/etdz/e1/telemetry");
        let payload = crate::deadletter::unhex(&letters[0].payload_hex).unwrap();
        assert!(String::from_utf8_lossy(&payload).starts_with("poison"));
    }
}
