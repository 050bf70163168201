//! A small typed HTTP client for `/api/v1`, shared by the parkctl commands.
//!
//! Known answers are decoded into `parkwatch-incidents`' types (the same
//! types ingest serialises), so the compiler checks the contract between
//! the two; an answer that does not match is an error, never a guess.
//! `--json` output is the server's answer itself ([`ApiClient::send_json`]).
//! Every refusal becomes [`CliError::Api`] from the API's one error body.

use std::process::ExitCode;
use std::time::Duration;

use parkwatch_incidents::wire::{BlobInfo, ErrorBody};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::cmds::ApiArgs;

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

    /// Sends a request and returns the body of a successful answer; a
    /// 4xx/5xx becomes [`CliError::Api`].
    async fn body(
        &self,
        path: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<bytes::Bytes, CliError> {
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
        Ok(body)
    }

    /// Sends a request and decodes the answer as JSON, whatever its shape
    /// (for `--json`, which prints it).
    pub async fn send_json(
        &self,
        path: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<Value, CliError> {
        let body = self.body(path, req).await?;
        serde_json::from_slice(&body).map_err(|e| CliError::Connect {
            url: self.url(path),
            message: format!("answer is not JSON: {e}"),
        })
    }

    /// Sends a request and decodes the answer into `T`.
    pub async fn send<T: DeserializeOwned>(
        &self,
        path: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<T, CliError> {
        let body = self.body(path, req).await?;
        serde_json::from_slice(&body).map_err(|e| CliError::Connect {
            url: self.url(path),
            message: if e.is_syntax() || e.is_eof() {
                format!("answer is not JSON: {e}")
            } else {
                format!("unexpected answer ({e})")
            },
        })
    }

    /// `GET path`, decoded into `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        self.send(path, self.request(reqwest::Method::GET, path))
            .await
    }

    /// `GET path` for `--json`.
    pub async fn get_json(&self, path: &str) -> Result<Value, CliError> {
        self.send_json(path, self.request(reqwest::Method::GET, path))
            .await
    }

    /// Uploads every photo file in order; returns their sha256s.
    pub async fn upload_all(&self, files: &[std::path::PathBuf]) -> Result<Vec<String>, CliError> {
        let mut shas = Vec::with_capacity(files.len());
        for f in files {
            shas.push(self.upload(f).await?);
        }
        Ok(shas)
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
        let info: BlobInfo = self
            .send(
                "/blobs",
                self.request(reqwest::Method::POST, "/blobs")
                    .header(reqwest::header::CONTENT_TYPE, ct)
                    .body(bytes),
            )
            .await?;
        Ok(info.sha256)
    }
}

/// Decodes an error body into [`CliError::Api`]: the API's [`ErrorBody`],
/// or (from something in front of ingest) the start of whatever came.
pub fn api_error(status: u16, body: &[u8]) -> CliError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => CliError::Api {
            status,
            code: error.code,
            message: error.message,
            fields: error
                .fields
                .into_iter()
                .map(|f| (f.field, f.message))
                .collect(),
        },
        Err(_) => CliError::Api {
            status,
            code: "error".into(),
            message: String::from_utf8_lossy(body).chars().take(300).collect(),
            fields: Vec::new(),
        },
    }
}
