//! `parkctl tail`: follows `GET /api/v1/alarms/stream`.
//!
//! One readable line per event (or the event's JSON with `--json`). When
//! the connection drops or goes silent for 45 s (the server sends a
//! keep-alive every 15 s), it reconnects with jittered exponential backoff
//! (0.5 s up to 10 s) and resumes from the last event id it printed, so no
//! event is lost or shown twice. A refusal (bad token, bad filter) ends it
//! with the server's message.

use std::io::Write as _;
use std::time::Duration;

use clap::Args;
use futures::StreamExt as _;
use parkwatch_incidents::model::FeedEvent;
use parkwatch_incidents::sse::SseParser;

use super::ApiArgs;
use crate::client::{ApiClient, CliError, api_error};
use crate::format::{feed_line, parse_offset};

/// `parkctl tail` arguments.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// Connection and token.
    #[command(flatten)]
    pub api: ApiArgs,
    /// Only this camera.
    #[arg(long)]
    pub camera: Option<String>,
    /// Only this alarm kind (intrusion, dwell, line_crossing, crowd,
    /// camera_offline, sensor_threshold, device_offline).
    #[arg(long)]
    pub kind: Option<String>,
    /// Only this grid or the grids inside it (a grid code).
    #[arg(long)]
    pub grid: Option<String>,
    /// Only this severity and above (info, minor, major, critical).
    #[arg(long)]
    pub severity: Option<String>,
    /// Only these event types: alarm, incident (comma-separated; default both).
    #[arg(long, value_delimiter = ',')]
    pub types: Vec<String>,
    /// Print each event as one line of JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Start after this event id (0: everything stored); default: live only.
    #[arg(long, value_name = "ID")]
    pub since: Option<i64>,
    /// Exit after this many events.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

/// Runs `parkctl tail`.
pub async fn run(a: TailArgs) -> Result<(), CliError> {
    let client = ApiClient::new(&a.api)?;
    let offset = parse_offset(&a.api.utc_offset).ok_or_else(|| {
        CliError::Usage(format!("--utc-offset {:?} is not +HH:MM", a.api.utc_offset))
    })?;
    let mut query: Vec<(&str, String)> = Vec::new();
    for (k, v) in [
        ("camera", &a.camera),
        ("kind", &a.kind),
        ("grid", &a.grid),
        ("severity", &a.severity),
    ] {
        if let Some(v) = v {
            query.push((k, v.clone()));
        }
    }
    if !a.types.is_empty() {
        query.push(("types", a.types.join(",")));
    }
    let mut last_id: Option<String> = a.since.map(|s| s.to_string());
    let mut printed: u64 = 0;
    let mut failures: u32 = 0;
    let mut stdout = std::io::stdout();
    loop {
        let mut req = client
            .request(reqwest::Method::GET, "/alarms/stream")
            .query(&query)
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(id) = &last_id {
            req = req.header("Last-Event-ID", id.as_str());
        }
        let result: Result<(), CliError> = async {
            let resp = req.send().await.map_err(|e| CliError::Connect {
                url: client.url("/alarms/stream"),
                message: e.to_string(),
            })?;
            let status = resp.status();
            if !status.is_success() {
                let body = resp.bytes().await.unwrap_or_default();
                return Err(api_error(status.as_u16(), &body));
            }
            if failures > 0 {
                eprintln!("parkctl: reconnected.");
            }
            failures = 0;
            let mut parser = SseParser::default();
            let mut body = resp.bytes_stream();
            loop {
                let chunk = match tokio::time::timeout(Duration::from_secs(45), body.next()).await {
                    Err(_) => {
                        return Err(CliError::Connect {
                            url: client.url("/alarms/stream"),
                            message: "no data or keep-alive for 45 s".into(),
                        });
                    }
                    Ok(None) => {
                        return Err(CliError::Connect {
                            url: client.url("/alarms/stream"),
                            message: "the server closed the stream".into(),
                        });
                    }
                    Ok(Some(Err(e))) => {
                        return Err(CliError::Connect {
                            url: client.url("/alarms/stream"),
                            message: e.to_string(),
                        });
                    }
                    Ok(Some(Ok(c))) => c,
                };
                for msg in parser.push(&chunk) {
                    if let Some(id) = &msg.id {
                        last_id = Some(id.clone());
                    }
                    let line = if a.json {
                        msg.data.clone()
                    } else {
                        match serde_json::from_str::<FeedEvent>(&msg.data) {
                            Ok(ev) => feed_line(&ev, offset),
                            Err(_) => msg.data.clone(),
                        }
                    };
                    writeln!(stdout, "{line}")
                        .and_then(|()| stdout.flush())
                        .map_err(|e| CliError::Io(format!("cannot write: {e}")))?;
                    printed += 1;
                    if a.count.is_some_and(|n| printed >= n) {
                        return Ok(());
                    }
                }
            }
        }
        .await;
        match result {
            Ok(()) => return Ok(()),
            Err(e) if e.is_permanent() => return Err(e),
            Err(CliError::Io(m)) => return Err(CliError::Io(m)),
            Err(e) => {
                let base = 500u64.saturating_mul(1 << failures.min(5)).min(10_000);
                let delay = base / 2 + rand::random::<u64>() % (base / 2 + 1);
                eprintln!(
                    "parkctl: {e}; reconnecting in {:.1} s{}",
                    delay as f64 / 1000.0,
                    last_id
                        .as_ref()
                        .map(|i| format!(" (resuming after event {i})"))
                        .unwrap_or_default()
                );
                failures = failures.saturating_add(1);
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
        }
    }
}
