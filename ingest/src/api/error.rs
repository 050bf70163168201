//! The one error body every `/api/v1` endpoint returns:
//!
//! ```json
//! {"error": {"status": 422, "code": "invalid", "message": "invalid input: location.lat: ...",
//!            "fields": [{"field": "location.lat", "message": "must be within -90..=90"}]}}
//! ```
//!
//! `code` is stable and machine-readable: `bad_request` (400, malformed
//! JSON or parameters), `unauthorized` (401, missing or unknown token),
//! `forbidden` (403, the role or assignment does not allow it),
//! `not_found` (404), `method_not_allowed` (405), `conflict` (409, the
//! incident is not in a status the step starts from, or changed since the
//! caller read it), `payload_too_large` (413), `invalid` (422, semantic
//! validation; `fields` names every bad field), `internal` (500, details
//! in ingest's log only).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tracing::error;

use parkwatch_incidents::IncidentError;
pub use parkwatch_incidents::wire::{ErrorBody, ErrorDetail, FieldError};
use parkwatch_incidents::workflow::StepError;

/// An API error, rendered as [`ErrorBody`].
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code.
    pub code: &'static str,
    /// For people.
    pub message: String,
    /// Bad fields.
    pub fields: Vec<FieldError>,
}

impl ApiError {
    /// An error without fields.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
        }
    }

    /// 400 naming fields.
    pub fn bad_request(fields: Vec<FieldError>) -> Self {
        let message = summary("bad request", &fields);
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message,
            fields,
        }
    }

    /// 422 naming fields.
    pub fn invalid(fields: Vec<FieldError>) -> Self {
        let message = summary("invalid input", &fields);
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid",
            message,
            fields,
        }
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500; the details go to the log, not to the client.
    pub fn internal(err: &dyn std::fmt::Display) -> Self {
        error!(err = %err, "API request failed.");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the ingest log",
        )
    }
}

fn summary(what: &str, fields: &[FieldError]) -> String {
    if fields.is_empty() {
        return what.to_owned();
    }
    format!(
        "{what}: {}",
        fields
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; ")
    )
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                status: self.status.as_u16(),
                code: self.code.to_owned(),
                message: self.message,
                fields: self.fields,
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"parkwatch\""),
            );
        }
        resp
    }
}

impl From<IncidentError> for ApiError {
    fn from(e: IncidentError) -> Self {
        match e {
            IncidentError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            IncidentError::Step(
                s @ (StepError::Forbidden { .. } | StepError::NotAssignee { .. }),
            ) => ApiError::forbidden(s.to_string()),
            IncidentError::Step(s @ StepError::WrongStatus { .. }) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", s.to_string())
            }
            IncidentError::Forbidden(m) => ApiError::forbidden(m),
            IncidentError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            IncidentError::Invalid(fields) => ApiError::invalid(fields),
            IncidentError::Blob(b @ parkwatch_incidents::blobs::BlobError::NotAnImage(_))
            | IncidentError::Blob(b @ parkwatch_incidents::blobs::BlobError::Size(_)) => {
                ApiError::invalid(vec![FieldError::new("body", b.to_string())])
            }
            IncidentError::Blob(b @ parkwatch_incidents::blobs::BlobError::BadName(_)) => {
                ApiError::bad_request(vec![FieldError::new("sha256", b.to_string())])
            }
            other => ApiError::internal(&other),
        }
    }
}

/// 404 for any path under `/api/v1` that does not exist.
pub async fn not_found_fallback(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no endpoint {}", uri.path()))
}

/// 405 for a path that exists with another method.
pub async fn method_not_allowed_fallback(
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}
