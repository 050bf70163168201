//! `GET /api/v1/alarms/stream`: alarms and incident changes as
//! Server-Sent Events, resumable.
//!
//! Each SSE message is one [`FeedEvent`]: `id:` is the feed id, `event:`
//! is `alarm` or `incident`, `data:` the event as one line of JSON. A
//! client that reconnects with `Last-Event-ID: N` (or `?last_event_id=N`)
//! gets every matching event after N, then the live ones; without it the
//! stream starts at the newest event (live only; `last_event_id=0` replays
//! everything). Filters: `types` (alarm, incident), `camera`, `kind` (alarm
//! kind), `grid` (a grid code; events in it or in grids inside it) and
//! `severity` (this severity and above). A comment line is sent every 15 s
//! so proxies keep the connection open. Streams end when ingest shuts down.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use parkwatch_protocol::{AlarmKind, Severity};
use tokio::sync::watch;
use tracing::warn;

use super::ApiState;
use super::auth::Auth;
use super::error::{ApiError, ErrorBody};
use super::input::Params;
use parkwatch_incidents::Incidents;
use parkwatch_incidents::feed::{FeedEvent, FeedFilter, FeedKind, FeedRow};
use parkwatch_incidents::service::FieldError;

/// Rows read per database round trip.
const PAGE: i64 = 200;
/// How often a stream looks for rows written by other ingest instances.
const POLL: Duration = Duration::from_secs(1);

/// Live alarms and incident changes.
#[utoipa::path(
    get, path = "/api/v1/alarms/stream", tag = "alarms",
    params(
        ("types" = Option<String>, Query, description = "Comma-separated: alarm, incident (default both)"),
        ("camera" = Option<String>, Query, description = "Only this camera"),
        ("kind" = Option<String>, Query, description = "Only this alarm kind, e.g. intrusion"),
        ("grid" = Option<String>, Query, pattern = "^[0-9]{0,20}$", description = "Only this grid or grids inside it (a grid code)"),
        ("severity" = Option<String>, Query, description = "This severity and above: info, minor, major, critical"),
        ("last_event_id" = Option<i64>, Query, minimum = 0, description = "Resume after this feed id (the Last-Event-ID header wins)"),
    ),
    responses(
        (status = 200, description = "An endless text/event-stream; each data line is a FeedEvent", content_type = "text/event-stream", body = FeedEvent),
        (status = 400, description = "Bad parameters", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn stream(
    State(s): State<ApiState>,
    _auth: Auth,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let mut p = Params::parse(q.as_deref());
    let mut filter = FeedFilter::default();
    for t in p
        .text("types")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
    {
        match t {
            "" => {}
            "alarm" | "alarms" => filter.kinds.push(FeedKind::Alarm),
            "incident" | "incidents" => filter.kinds.push(FeedKind::Incident),
            other => p.errors.push(FieldError::new(
                "types",
                format!("unknown type {other:?} (expected alarm, incident)"),
            )),
        }
    }
    filter.camera = p.text("camera");
    filter.alarm_kind = p.text("kind");
    if let Some(k) = &filter.alarm_kind
        && let Err(e) = k.parse::<AlarmKind>()
    {
        p.errors.push(FieldError::new("kind", e.to_string()));
    }
    filter.grid = p.grid("grid");
    if let Some(sev) = p.text("severity") {
        match sev.parse::<Severity>() {
            Ok(min) => {
                filter.severities = Severity::ALL
                    .iter()
                    .filter(|s| **s >= min)
                    .map(|s| s.as_str().to_owned())
                    .collect();
            }
            Err(e) => p.errors.push(FieldError::new("severity", e.to_string())),
        }
    }
    let from_query = p.int("last_event_id", 0, i64::MAX);
    let from_header = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let header_id = match from_header {
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => {
                p.errors.push(FieldError::new(
                    "Last-Event-ID",
                    "must be a feed id (a non-negative integer)",
                ));
                None
            }
        },
        None => None,
    };
    p.finish()?;
    let cursor = match header_id.or(from_query) {
        Some(id) => id,
        None => s.incidents.latest_feed_id().await?,
    };
    let st = Tail {
        svc: s.incidents.clone(),
        filter,
        cursor,
        buf: VecDeque::new(),
        wake: s.incidents.subscribe(),
        closing: s.closing.clone(),
    };
    let events = futures::stream::unfold(st, |mut st| async move {
        st.next().await.map(|ev| (Ok::<Event, Infallible>(ev), st))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// The state of one stream.
struct Tail {
    svc: Arc<Incidents>,
    filter: FeedFilter,
    cursor: i64,
    buf: VecDeque<FeedRow>,
    wake: watch::Receiver<i64>,
    closing: watch::Receiver<bool>,
}

impl Tail {
    /// The next event, or `None` when ingest shuts down.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if *self.closing.borrow() {
                return None;
            }
            if let Some(row) = self.buf.pop_front() {
                return Some(
                    Event::default()
                        .id(row.id.to_string())
                        .event(row.kind)
                        .data(row.payload),
                );
            }
            match self.svc.feed_after(self.cursor, &self.filter, PAGE).await {
                Ok((rows, scanned)) => {
                    self.cursor = scanned;
                    if !rows.is_empty() {
                        self.buf.extend(rows);
                        continue;
                    }
                }
                Err(e) => warn!(err = %e, "Live stream cannot read the feed; retrying."),
            }
            tokio::select! {
                _ = changed_or_never(&mut self.wake) => {}
                _ = closed_or_never(&mut self.closing) => return None,
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

async fn changed_or_never(rx: &mut watch::Receiver<i64>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn closed_or_never(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}
