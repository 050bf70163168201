//! The OpenAPI 3.1 document, generated from the handlers' annotations and
//! the types' `ToSchema` derives (never written by hand), served at
//! `GET /api/v1/openapi.json` without a token.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{handlers, site, sse};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "parkwatch incidents API",
        description = "Incidents handled in the GB/T 30428 closed loop (report -> file or cancel -> dispatch -> accept -> handle -> verify: close or rework), the alarms behind them, a live stream, and evaluation figures. Every endpoint except this document needs `Authorization: Bearer <token>`; errors share one body shape (ErrorBody). See docs/api.md."
    ),
    paths(
        handlers::list_incidents,
        handlers::create_incident,
        handlers::get_incident,
        handlers::act,
        handlers::list_alarms,
        handlers::get_alarm,
        sse::stream,
        handlers::upload_blob,
        handlers::get_blob,
        handlers::stats,
        handlers::whoami,
        site::cameras,
        site::edges,
        site::grids,
        site::catalogue,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "incidents", description = "The closed loop"),
        (name = "alarms", description = "Alarms from edge boxes, and the live stream"),
        (name = "blobs", description = "Snapshots and photos, content-addressed"),
        (name = "stats", description = "Evaluation: closure, on-time and rework rates"),
        (name = "site", description = "Cameras, edges, grids, catalogue"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token from `parkctl token new`; its sha256 goes into [[api.tokens]].",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as JSON (built once).
pub fn json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi().to_pretty_json().unwrap_or_else(|e| {
            format!("{{\"error\": \"cannot render the OpenAPI document: {e}\"}}")
        })
    })
}

/// `GET /api/v1/openapi.json`.
pub async fn serve() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], json()).into_response()
}
