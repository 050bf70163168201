//! A small HTTP client for `/api/v1`, shared by the parkctl commands.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use super::ApiArgs;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments or a missing token.
    #[error("{0}")]
    Usage(String),
    /// Ingest could not be reached.
    #[error("cannot reach {url}: {message}")]
    Connect {
        /// The URL (no credentials are ever in it).
        url: String,
        /// What happened.
        message: String,
    },
    /// Ingest refused the request.
    #[error("{status} {code}: {message}{}", fields.iter().map(|(f, m)| format!("\n  {f}: {m}")).collect::<String>())]
    Api {
        /// HTTP status.
        status: u16,
        /// Error code from the body.
        code: String,
        /// Message from the body.
        message: String,
        /// Bad fields.
        fields: Vec<(String, String)>,
    },
    /// Reading a file or writing output failed.
    #[error("{0}")]
    Io(String),
}

impl CliError {
    /// 1 when the server refused, 2 otherwise.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Api { .. } => ExitCode::FAILURE,
            _ => ExitCode::from(2),
        }
    }

    /// Whether reconnecting cannot help (the server refused the request itself).
    pub fn is_permanent(&self) -> bool {
        matches!(self, CliError::Api { status, .. } if (400..500).contains(status) && *status != 408 && *status != 429)
            || matches!(self, CliError::Usage(_))
    }
}

/// A client of one ingest.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl ApiClient {
    /// From the common arguments (reads the token file).
    pub fn new(a: &ApiArgs) -> Result<Self, CliError> {
        let token = match (&a.token, &a.token_file) {
            (Some(t), _) => t.trim().to_owned(),
            (None, Some(f)) => std::fs::read_to_string(f)
                .map_err(|e| {
                    CliError::Usage(format!("cannot read --token-file {}: {e}", f.display()))
                })?
                .trim()
                .to_owned(),
            (None, None) => {
                return Err(CliError::Usage(
                    "no token: give --token, --token-file or PARKWATCH_TOKEN (see `parkctl token new`)"
                        .into(),
                ));
            }
        };
        let base = a.url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CliError::Usage(format!(
                "--url {base:?} must start with http:// or https://"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| CliError::Usage(format!("cannot build the HTTP client: {e}")))?;
        Ok(ApiClient { http, base, token })
    }

    /// The full URL of an API path (`/incidents` -> `<base>/api/v1/incidents`).
    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    /// A request with the token set.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    fn connect_err(&self, path: &str, e: &reqwest::Error) -> CliError {
        CliError::Connect {
            url: self.url(path),
            message: e.to_string(),
        }
    }

    /// Sends a request and decodes a JSON answer; a 4xx/5xx becomes [`CliError::Api`].
    pub async fn send(&self, path: &str, req: reqwest::RequestBuilder) -> Result<Value, CliError> {
        let resp = req
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| self.connect_err(path, &e))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| self.connect_err(path, &e))?;
        if !status.is_success() {
            return Err(api_error(status.as_u16(), &body));
        }
        serde_json::from_slice(&body).map_err(|e| CliError::Connect {
            url: self.url(path),
            message: format!("answer is not JSON: {e}"),
        })
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.send(path, self.request(reqwest::Method::GET, path))
            .await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.send(path, self.request(reqwest::Method::POST, path).json(body))
            .await
    }

    /// Uploads a photo file; returns its sha256.
    pub async fn upload(&self, file: &std::path::Path) -> Result<String, CliError> {
        let bytes = tokio::fs::read(file)
            .await
            .map_err(|e| CliError::Io(format!("cannot read {}: {e}", file.display())))?;
        let ct = if bytes.starts_with(b"\x89PNG") {
            "image/png"
        } else {
            "image/jpeg"
        };
        let v = self
            .send(
                "/blobs",
                self.request(reqwest::Method::POST, "/blobs")
                    .header(reqwest::header::CONTENT_TYPE, ct)
                    .body(bytes),
            )
            .await?;
        v.get("sha256")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| CliError::Io("upload answer has no sha256".into()))
    }
}

/// Decodes an error body (any shape) into [`CliError::Api`].
pub fn api_error(status: u16, body: &[u8]) -> CliError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let e = v.get("error");
    let s = |k: &str| {
        e.and_then(|e| e.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    CliError::Api {
        status,
        code: s("code").unwrap_or_else(|| "error".into()),
        message: s("message")
            .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect()),
        fields: e
            .and_then(|e| e.get("fields"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|f| {
                        let g = |k: &str| f.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                        (g("field"), g("message"))
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}
