//! The request and response bodies of ingest's HTTP API that are not part
//! of the incident model ([`crate::model`]): what a client sends to report
//! or act, the stored-blob answer, the one error body, and the listing of
//! `GET /deadletters`.
//!
//! These are the types both sides compile against: ingest's handlers
//! produce them (and document them in the OpenAPI document through the
//! `openapi` feature), `parkctl` sends and decodes them. Field names and
//! their JSON shapes are the wire contract and do not change.
//!
//! The server reads request bodies field by field so that it can name
//! every bad field at once (`ingest/src/api/input.rs`); the request types
//! here are what a well-behaved client sends and what the document shows.
//! `source` and `action` are carried as their wire names: the server, not
//! the client, decides which names it accepts.

use serde::{Deserialize, Serialize};
#[cfg(feature = "openapi")]
use utoipa::ToSchema;

#[cfg(feature = "openapi")]
use crate::model::{Action, Source};

/// A report from any channel (`POST /api/v1/incidents`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ReportRequest {
    /// The channel: `hotline_12345`, `grid_worker`, `wechat`, `web_portal`,
    /// `sms`, `snap_report`, `video` or `sensor`.
    #[cfg_attr(feature = "openapi", schema(value_type = Source))]
    pub source: String,
    /// Catalogue item code, e.g. `"0101"` (see `GET /api/v1/catalogue`).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 16))]
    pub item: String,
    /// Where it is (WGS 84).
    pub location: LocationInput,
    /// Summary; default the item's name.
    #[cfg_attr(feature = "openapi", schema(max_length = 200))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What the reporter said.
    #[cfg_attr(feature = "openapi", schema(max_length = 4000))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Address as told.
    #[cfg_attr(feature = "openapi", schema(max_length = 500))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// sha256 of photos uploaded with `POST /api/v1/blobs`.
    #[cfg_attr(feature = "openapi", schema(max_items = 20))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub photos: Option<Vec<String>>,
    /// Reporter's name.
    #[cfg_attr(feature = "openapi", schema(max_length = 100))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reporter: Option<String>,
    /// Reporter's phone or account.
    #[cfg_attr(feature = "openapi", schema(max_length = 100))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reporter_contact: Option<String>,
}

/// A WGS 84 position in a request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LocationInput {
    /// Longitude.
    #[cfg_attr(feature = "openapi", schema(minimum = -180.0, maximum = 180.0))]
    pub lon: f64,
    /// Latitude.
    #[cfg_attr(feature = "openapi", schema(minimum = -90.0, maximum = 90.0))]
    pub lat: f64,
}

/// A workflow step (`POST /api/v1/incidents/{id}/actions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ActionRequest {
    /// `file`, `cancel`, `dispatch`, `accept`, `handle`, `close` or `rework`.
    #[cfg_attr(feature = "openapi", schema(value_type = Action))]
    pub action: String,
    /// Free text; required for `cancel` and `rework`.
    #[cfg_attr(feature = "openapi", schema(max_length = 4000))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// sha256 of uploaded photos; `handle` needs at least one (the after-photo).
    #[cfg_attr(feature = "openapi", schema(max_items = 20))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Vec<String>>,
    /// `dispatch`: the department id (default: the catalogue's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// `dispatch`: the worker id (instead of a department).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// The incident version you read; if it changed since, 409.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
}

/// A stored blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BlobInfo {
    /// Its name: SHA-256 of the bytes.
    pub sha256: String,
    /// `image/jpeg` or `image/png`.
    pub content_type: String,
    /// Size.
    pub bytes: usize,
}

/// The error body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorDetail {
    /// The HTTP status.
    pub status: u16,
    /// Stable code: `bad_request`, `unauthorized`, `forbidden`, `not_found`,
    /// `method_not_allowed`, `conflict`, `payload_too_large`, `invalid`, `internal`.
    pub code: String,
    /// For people.
    pub message: String,
    /// Every bad field (400 and 422), else empty.
    pub fields: Vec<FieldError>,
}

/// One bad input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct FieldError {
    /// The field, as a JSON path (`location.lon`, `attachments[1]`) or query parameter.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

// ---------------------------------------------------------------- dead letters

/// One dead letter (a line of ingest's dead-letter store, an item of
/// `GET /deadletters`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// When it was rejected, ms since the Unix epoch.
    pub at_ms: i64,
    /// The MQTT topic (cut to 256 bytes).
    pub topic: String,
    /// The reason label, as in `parkwatch_ingest_rejected_total{reason}`
    /// (or `refused` for a batch the database refused).
    pub reason: String,
    /// What exactly was wrong (cut to 512 bytes).
    pub error: String,
    /// The payload's full size in bytes.
    pub size: usize,
    /// The first `payload_bytes` bytes of the payload, lowercase hex.
    pub payload_hex: String,
    /// Whether the payload was longer than what `payload_hex` holds.
    pub truncated: bool,
}

/// The answer of `GET /deadletters`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ListResponse {
    /// Entries returned.
    pub count: usize,
    /// The entries, newest first.
    pub items: Vec<DeadLetter>,
}
