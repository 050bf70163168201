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
use serde_json::Value;

use super::ApiArgs;
use super::client::{ApiClient, CliError, api_error};
use super::format::{feed_line, parse_offset};

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

/// One parsed SSE message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseMessage {
    /// `id:`.
    pub id: Option<String>,
    /// `event:`.
    pub event: Option<String>,
    /// `data:` lines joined by `\n`.
    pub data: String,
}

/// An incremental `text/event-stream` parser.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    cur: SseMessage,
    has_data: bool,
}

impl SseParser {
    /// Feeds bytes; returns the messages they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseMessage> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            if line.is_empty() {
                if self.has_data {
                    out.push(std::mem::take(&mut self.cur));
                } else {
                    self.cur = SseMessage::default();
                }
                self.has_data = false;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f.to_owned(), v.strip_prefix(' ').unwrap_or(v).to_owned()),
                None => (line.clone(), String::new()),
            };
            match field.as_str() {
                "id" => self.cur.id = Some(value),
                "event" => self.cur.event = Some(value),
                "data" => {
                    if self.has_data {
                        self.cur.data.push('\n');
                    }
                    self.cur.data.push_str(&value);
                    self.has_data = true;
                }
                _ => {}
            }
        }
        out
    }
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
                        match serde_json::from_str::<Value>(&msg.data) {
                            Ok(v) => feed_line(&v, offset),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_messages_split_across_chunks() {
        let mut p = SseParser::default();
        assert!(p.push(b": keep-alive\n\nid: 4\nevent: al").is_empty());
        let got = p.push(b"arm\ndata: {\"a\":1}\n\nid: 5\r\ndata: x\r\ndata: y\r\n\r\n");
        assert_eq!(
            got,
            vec![
                SseMessage {
                    id: Some("4".into()),
                    event: Some("alarm".into()),
                    data: "{\"a\":1}".into()
                },
                SseMessage {
                    id: Some("5".into()),
                    event: None,
                    data: "x\ny".into()
                },
            ]
        );
    }
}
