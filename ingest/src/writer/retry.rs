//! The retry policy of the writer and the drain: jittered exponential
//! backoff between attempts ([`Backoff`], from `parkwatch_durable`, shared
//! with the edge), and the retry loop for one request body used by the
//! spool drain. Which errors are retried is [`super::classify`]'s call.

use bytes::Bytes;
use parkwatch_durable::now_ms;
use tokio::sync::watch;
use tracing::warn;

pub use parkwatch_durable::backoff::{Backoff, BackoffError};

use super::WriterSettings;
use super::sink::{Disposition, TsdbSink, WriteError, classify};
use crate::metrics::Metrics;

/// How a drain write ended.
pub(super) enum Drained {
    Written,
    Refused(WriteError),
    Stopped,
}

/// Writes `body` with retries until it is stored, refused, or the drain
/// must stop (`stop` between attempts, `abort` at any time).
pub(super) async fn write_retrying<S: TsdbSink>(
    sink: &S,
    body: &Bytes,
    settings: &WriterSettings,
    metrics: &Metrics,
    stop: &mut watch::Receiver<bool>,
    abort: &mut watch::Receiver<bool>,
) -> Drained {
    let mut attempt: u32 = 0;
    loop {
        let timeout = settings.request_timeout;
        let result = tokio::select! {
            r = tokio::time::timeout(timeout, sink.write(body.clone())) => {
                r.unwrap_or(Err(WriteError::Timeout(timeout)))
            }
            _ = wait_true(abort) => return Drained::Stopped,
        };
        let err = match result {
            Ok(()) => return Drained::Written,
            Err(WriteError::Timeout(_)) => WriteError::Timeout(timeout),
            Err(e) => e,
        };
        let (class, disposition) = classify(&err);
        metrics.write_error(class, err.to_string(), now_ms());
        if disposition == Disposition::Refused {
            return Drained::Refused(err);
        }
        let delay = settings.backoff.delay(attempt, rand::random::<f64>());
        if attempt < 3 || attempt.is_multiple_of(10) {
            warn!(
                class,
                err = %err,
                attempt = attempt + 1,
                retry_in_ms = delay.as_millis() as u64,
                "Spool drain: time-series write failed; will retry."
            );
        }
        attempt = attempt.saturating_add(1);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = wait_true(stop) => return Drained::Stopped,
            _ = wait_true(abort) => return Drained::Stopped,
        }
    }
}

/// Resolves once the watch value is true (never if the sender is gone
/// while false).
pub(super) async fn wait_true(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}
