//! The time-series sink: where line protocol goes (the InfluxDB v2 write
//! API through the `influxdb2` client, or a test fake behind [`TsdbSink`]),
//! its errors, and how each error is classified: retry or refused.
//!
//! Guarantees: [`classify`] is the whole retry policy's view of an error;
//! no credentials appear in an error ([`WriteError::Connect`] names the
//! write endpoint only).

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

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

#[cfg(test)]
mod tests {
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
}
