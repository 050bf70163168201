//! The HTTP server: `/healthz` and `/metrics` (the `/api/v1` routes come later).
//!
//! - `GET /healthz`: JSON [`crate::metrics::Health`]; status 200 when
//!   healthy, 503 otherwise. Healthy means: the embedded broker runs (in
//!   embedded mode), the consumer is connected, the last time-series write
//!   attempt did not fail, and the writer queue is not full.
//! - `GET /metrics`: Prometheus text format 0.0.4.
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
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
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
}
