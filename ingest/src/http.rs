//! The HTTP server: `/healthz` and `/metrics` (the `/api/v1` routes come later).
//!
//! - `GET /healthz`: JSON [`crate::metrics::Health`]; status 200 when
//!   healthy, 503 otherwise. Healthy means: the embedded broker runs (in
//!   embedded mode), the consumer is connected, the last time-series write
//!   attempt did not fail, and the writer queue is not full.
//! - `GET /metrics`: Prometheus text format 0.0.4
//!   ([`crate::metrics::CONTENT_TYPE`]), rendered from the process's one
//!   prometheus-client registry ([`Metrics::render`]).
//!
//! The server shuts down gracefully when the given future resolves.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::metrics::Metrics;

/// Why the HTTP server could not run.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The listen address is taken or not ours.
    #[error("cannot listen on {addr} (http.listen): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// The routes, with their shared state.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .with_state(metrics)
}

async fn healthz(State(m): State<Arc<Metrics>>) -> Response {
    let h = m.health();
    let status = if h.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(h)).into_response()
}

async fn metrics_text(State(m): State<Arc<Metrics>>) -> Response {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        m.render(),
    )
        .into_response()
}

/// Binds `addr` (so a taken port fails at startup, not later).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, HttpError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HttpError> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(HttpError::Serve)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn get_raw(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut out = String::new();
        s.read_to_string(&mut out)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        out
    }

    #[tokio::test]
    async fn healthz_and_metrics_answer_over_http() {
        let metrics = Arc::new(Metrics::new(4, true));
        let listener = bind("127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, router(metrics.clone()), async {
            let _ = rx.await;
        }));

        let down = get_raw(addr, "/healthz").await;
        assert!(down.starts_with("HTTP/1.1 503"), "{down}");
        assert!(down.contains("\"consumer_connected\":false"), "{down}");

        metrics.set_broker_up(true);
        metrics.set_consumer_connected(true);
        let up = get_raw(addr, "/healthz").await;
        assert!(up.starts_with("HTTP/1.1 200"), "{up}");

        metrics.message("telemetry");
        let text = get_raw(addr, "/metrics").await;
        assert!(text.contains("text/plain; version=0.0.4"), "{text}");
        assert!(
            text.contains("parkwatch_ingest_messages_total{kind=\"telemetry\"} 1"),
            "{text}"
        );

        let _ = tx.send(());
        let r = server.await;
        assert!(matches!(r, Ok(Ok(()))), "{r:?}");
    }

    /// The `/metrics` table of docs/ingest.md: (family, type) per name,
    /// with the `_spool_batches` shorthand expanded.
    fn documented_families() -> Vec<(String, String)> {
        let doc = include_str!("../../docs/ingest.md");
        let table = doc
            .split_once("`GET /metrics`")
            .map(|(_, rest)| rest)
            .unwrap_or_else(|| panic!("no /metrics section in docs/ingest.md"));
        let mut out = Vec::new();
        for row in table.lines().skip_while(|l| !l.starts_with('|')) {
            if !row.starts_with("| `") {
                if row.starts_with('|') {
                    continue;
                }
                break;
            }
            let cols: Vec<&str> = row.split('|').map(str::trim).collect();
            let ty = cols[2].split_whitespace().next().unwrap_or("").to_owned();
            for name in cols[1].split('`').skip(1).step_by(2) {
                let name = match name.strip_prefix('_') {
                    Some(short) => format!("parkwatch_ingest_{short}"),
                    None => name.to_owned(),
                };
                out.push((name, ty.clone()));
            }
        }
        out
    }

    #[tokio::test]
    async fn every_documented_metric_is_served_with_its_type() {
        let m = Arc::new(Metrics::new(4, true));
        // One sample in every family (labelled families are empty until
        // their first label value).
        m.message("telemetry");
        m.rejected("branch");
        m.point_skipped("bad_name", 1);
        m.write_error("connect", "refused".into(), 1);
        m.duplicate("stored");
        m.login_refused("bad_password");
        m.ack_lag("edge-p01", &[std::time::Duration::from_millis(5)]);
        let listener = bind("127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, router(m), async {
            let _ = rx.await;
        }));
        let raw = get_raw(addr, "/metrics").await;
        let _ = tx.send(());
        let _ = server.await;

        let (head, body) = raw
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("{raw}"));
        assert!(
            head.lines().any(|l| l
                .eq_ignore_ascii_case(&format!("content-type: {}", crate::metrics::CONTENT_TYPE))),
            "{head}"
        );
        assert_eq!(
            crate::metrics::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let mut types = std::collections::BTreeMap::new();
        let mut samples = std::collections::BTreeSet::new();
        for line in body.lines() {
            if let Some(t) = line.strip_prefix("# TYPE ") {
                let (name, ty) = t.split_once(' ').unwrap_or_else(|| panic!("{line}"));
                let before = types.insert(name.to_owned(), ty.to_owned());
                assert_eq!(before, None, "{name} declared twice");
            } else if !line.starts_with('#') && !line.is_empty() {
                let name = line
                    .split(['{', ' '])
                    .next()
                    .unwrap_or_else(|| panic!("{line}"));
                let value = line.rsplit(' ').next().unwrap_or("");
                assert!(value.parse::<f64>().is_ok(), "bad value in {line:?}");
                samples.insert(name.to_owned());
            }
        }
        let documented = documented_families();
        assert_eq!(documented.len(), 31, "{documented:?}");
        for (name, ty) in &documented {
            assert_eq!(types.get(name), Some(ty), "# TYPE of {name} in\n{body}");
            let want: &[&str] = match ty.as_str() {
                "summary" => &["_sum", "_count"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            for suffix in want {
                assert!(
                    samples.contains(&format!("{name}{suffix}")),
                    "no sample of {name}{suffix} in\n{body}"
                );
            }
        }
        let undocumented: Vec<_> = types
            .keys()
            .filter(|n| !documented.iter().any(|(d, _)| d == *n))
            .collect();
        assert!(
            undocumented.is_empty(),
            "not in docs/ingest.md: {undocumented:?}"
        );
    }
}
