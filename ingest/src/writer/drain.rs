//! The spool drain task: writes the spool's oldest record to the database
//! and removes it, in order, with the writer's retry and refusal rules,
//! until told to stop. Spool file I/O runs on tokio's blocking pool.
//!
//! Guarantees: a record leaves the spool only after the database stored
//! it or refused each of its batches for good (refused batches are counted
//! and dead-lettered); an unreadable record is skipped, counted and
//! logged; stopping between records or retries loses nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use parkwatch_durable::now_ms;
use tokio::sync::{Notify, watch};
use tracing::{error, info};

use super::retry::{Drained, wait_true, write_retrying};
use super::{TsdbSink, WriterSettings, body_of, refused};
use crate::deadletter::DeadLetters;
use crate::metrics::Metrics;
use crate::spool::{Spool, SpoolError};

/// The spool as shared by the writer and its drain task. File I/O runs on
/// the blocking pool.
#[derive(Debug, Clone)]
pub(super) struct SpoolShared {
    pub(super) spool: Arc<Mutex<Spool>>,
    pub(super) notify: Arc<Notify>,
    pub(super) after: Duration,
}

fn spool_task_error(e: impl std::fmt::Display) -> SpoolError {
    SpoolError::Io {
        path: std::path::PathBuf::from("spool"),
        op: "blocking task",
        source: std::io::Error::other(e.to_string()),
    }
}

impl SpoolShared {
    pub(super) async fn with<T, F>(&self, f: F) -> Result<T, SpoolError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Spool) -> Result<T, SpoolError> + Send + 'static,
    {
        let sp = self.spool.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = sp.lock().map_err(spool_task_error)?;
            f(&mut guard)
        })
        .await
        .map_err(spool_task_error)?
    }

    pub(super) fn is_empty(&self) -> bool {
        self.spool.lock().map(|s| s.is_empty()).unwrap_or(false)
    }
}

/// The drain task: writes the spool's oldest record to the database and
/// removes it, until `stop` (between records and retries) or `abort`.
pub(super) async fn drain<S: TsdbSink>(
    sink: Arc<S>,
    spool: SpoolShared,
    settings: WriterSettings,
    metrics: Arc<Metrics>,
    deadletters: Option<(DeadLetters, String)>,
    mut stop: watch::Receiver<bool>,
    mut abort: watch::Receiver<bool>,
) {
    let mut io_failures: u32 = 0;
    loop {
        if *stop.borrow() || *abort.borrow() {
            return;
        }
        let rec = match spool.with(|s| s.peek()).await {
            Ok(Some(rec)) => {
                io_failures = 0;
                rec
            }
            Ok(None) => {
                tokio::select! {
                    () = spool.notify.notified() => {}
                    _ = wait_true(&mut stop) => return,
                    _ = wait_true(&mut abort) => return,
                }
                continue;
            }
            Err(e @ SpoolError::Corrupt { .. }) => {
                metrics.spool_error();
                error!(err = %e, "Spool record unreadable; skipped (its batches are lost).");
                let skipped = spool
                    .with(|s| match s.head() {
                        Some(pos) => {
                            s.consume(pos)?;
                            Ok(s.depth())
                        }
                        None => Ok(s.depth()),
                    })
                    .await;
                if let Ok(d) = skipped {
                    metrics.set_spool_depth(d.records, d.batches, d.bytes);
                }
                continue;
            }
            Err(e) => {
                metrics.spool_error();
                let delay = settings.backoff.delay(io_failures, rand::random::<f64>());
                if io_failures < 3 || io_failures.is_multiple_of(20) {
                    error!(err = %e, retry_in_ms = delay.as_millis() as u64, "Cannot read the spool.");
                }
                io_failures = io_failures.saturating_add(1);
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = wait_true(&mut stop) => return,
                    _ = wait_true(&mut abort) => return,
                }
                continue;
            }
        };
        let n = rec.batches.len() as u64;
        let (body, points) = body_of(rec.batches.iter());
        let outcome = if body.is_empty() {
            Drained::Written
        } else {
            write_retrying(&*sink, &body, &settings, &metrics, &mut stop, &mut abort).await
        };
        match outcome {
            Drained::Stopped => return,
            Drained::Written => metrics.written(points, n, now_ms()),
            Drained::Refused(_) => {
                // Find the refused batch(es): one request per batch.
                for b in &rec.batches {
                    if b.lines.is_empty() {
                        continue;
                    }
                    match write_retrying(
                        &*sink, &b.lines, &settings, &metrics, &mut stop, &mut abort,
                    )
                    .await
                    {
                        Drained::Stopped => return,
                        Drained::Written => metrics.written(u64::from(b.points), 1, now_ms()),
                        Drained::Refused(e) => refused(&metrics, deadletters.as_ref(), b, &e),
                    }
                }
            }
        }
        let pos = rec.pos;
        match spool
            .with(move |s| {
                s.consume(pos)?;
                Ok(s.depth())
            })
            .await
        {
            Ok(d) => {
                metrics.spool_drained(n);
                metrics.set_spool_depth(d.records, d.batches, d.bytes);
                if d.records == 0 {
                    info!("Spool drained.");
                }
            }
            Err(e) => {
                metrics.spool_error();
                error!(err = %e, "Cannot remove a drained record from the spool; it may be written again.");
            }
        }
    }
}
