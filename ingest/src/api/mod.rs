//! The HTTP API of incidents, mounted under `/api/v1`.
//!
//! | method and path | what |
//! | --- | --- |
//! | `GET /incidents` | list with filters and paging |
//! | `POST /incidents` | report from any channel |
//! | `GET /incidents/{id}` | one incident with its timeline and alarms |
//! | `POST /incidents/{id}/actions` | a workflow step |
//! | `GET /alarms` | alarms |
//! | `GET /alarms/stream` | alarms and incident changes, Server-Sent Events |
//! | `POST /blobs`, `GET /blobs/{sha256}` | photos and snapshots |
//! | `GET /cameras`, `/edges`, `/grids`, `/catalogue` | the site |
//! | `GET /stats` | evaluation figures |
//! | `GET /whoami` | the caller's token |
//! | `GET /openapi.json` | the OpenAPI document (no token needed) |
//!
//! Parts: [`auth`] (tokens, roles), [`error`] (the one error body),
//! [`input`] (parsing that names every bad field), [`handlers`], [`site`],
//! [`sse`], [`openapi`]. [`router`] returns the routes relative to
//! `/api/v1`; [`app`] nests them there (for tests and standalone use).

pub mod auth;
pub mod error;
pub mod handlers;
pub mod input;
pub mod openapi;
pub mod site;
pub mod sse;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::sync::watch;

use crate::edges::EdgeRegistry;
use parkwatch_incidents::Incidents;
use parkwatch_incidents::blobs::MAX_BLOB_BYTES;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The incident service.
    pub incidents: Arc<Incidents>,
    /// The configured tokens.
    pub tokens: auth::Tokens,
    /// Latest edge statuses, when the consumer runs.
    pub edges: Option<Arc<EdgeRegistry>>,
    /// Turns true when ingest shuts down: live streams end.
    pub closing: watch::Receiver<bool>,
}

/// The `/api/v1` routes (paths relative to `/api/v1`).
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route(
            "/incidents",
            get(handlers::list_incidents).post(handlers::create_incident),
        )
        .route("/incidents/{id}", get(handlers::get_incident))
        .route("/incidents/{id}/actions", post(handlers::act))
        .route("/alarms", get(handlers::list_alarms))
        .route("/alarms/stream", get(sse::stream))
        .route("/alarms/{alarm_id}", get(handlers::get_alarm))
        .route(
            "/blobs",
            post(handlers::upload_blob).layer(DefaultBodyLimit::max(MAX_BLOB_BYTES + 1024)),
        )
        .route("/blobs/{sha256}", get(handlers::get_blob))
        .route("/cameras", get(site::cameras))
        .route("/edges", get(site::edges))
        .route("/grids", get(site::grids))
        .route("/catalogue", get(site::catalogue))
        .route("/stats", get(handlers::stats))
        .route("/whoami", get(handlers::whoami))
        .route("/openapi.json", get(openapi::serve))
        .fallback(error::not_found_fallback)
        .method_not_allowed_fallback(error::method_not_allowed_fallback)
        .with_state(state)
}

/// The routes nested under `/api/v1`.
pub fn app(state: ApiState) -> Router {
    Router::new().nest("/api/v1", router(state))
}
