//! Site views: cameras, edges (with their latest status when ingest's
//! consumer runs), grids and the event catalogue.

use axum::Json;
use axum::extract::{RawQuery, State};
use parkwatch_config::GridLevel;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::auth::Auth;
use super::error::{ApiError, ErrorBody};
use super::input::Params;
use parkwatch_incidents::model::LonLat;
use parkwatch_incidents::service::time_unit_str;

/// One camera of the site.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CameraView {
    /// Camera id.
    pub id: String,
    /// Name.
    pub name: Option<String>,
    /// `fixed` or `panoramic`.
    pub kind: String,
    /// Its edge box.
    pub edge: String,
    /// Its point.
    pub point: Option<String>,
    /// The point's position.
    pub location: Option<LonLat>,
    /// Unit grid of the position.
    pub unit_grid: Option<String>,
    /// Whether the edge pulls it.
    pub enabled: bool,
    /// Stream state reported by the edge (`connecting`, `streaming`, `stale`,
    /// `offline`), when known.
    pub state: Option<String>,
    /// Since when, ms.
    pub state_since_ms: Option<i64>,
}

/// One edge box of the site.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EdgeView {
    /// Edge id.
    pub id: String,
    /// Site id.
    pub site: String,
    /// Its point.
    pub point: Option<String>,
    /// The point's position.
    pub location: Option<LonLat>,
    /// Camera ids.
    pub cameras: Vec<String>,
    /// Sensor ids.
    pub sensors: Vec<String>,
    /// `online` or `offline` from its latest status, when known.
    pub state: Option<String>,
    /// Software version from its latest status.
    pub version: Option<String>,
    /// When ingest received its latest status, ms.
    pub status_received_at_ms: Option<i64>,
}

/// One grid.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GridView {
    /// Code.
    pub code: String,
    /// `unit`, `community` or `responsibility`.
    pub level: String,
    /// Parent code.
    pub parent: Option<String>,
    /// Name.
    pub name: String,
    /// Workers responsible (nearest first).
    pub workers: Vec<String>,
    /// Outer ring `[lon, lat]` (only with `geometry=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub polygon: Option<Vec<[f64; 2]>>,
}

/// One catalogue item.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CatalogueItemView {
    /// Code.
    pub code: String,
    /// Class code.
    pub class: String,
    /// Class name.
    pub class_name: Option<String>,
    /// Name.
    pub name: String,
    /// English name.
    pub name_en: Option<String>,
    /// Responsible department.
    pub department: String,
    /// Time limit.
    pub time_limit: u32,
    /// `emergency_hours`, `working_hours` or `working_days`.
    pub time_unit: String,
    /// Whether alarms of this item are filed at once.
    pub auto_file: bool,
}

fn point_location(s: &ApiState, point: Option<&str>) -> Option<LonLat> {
    point
        .and_then(|p| s.incidents.site().point(p))
        .map(|p| LonLat {
            lon: p.lon,
            lat: p.lat,
        })
}

/// Every camera of the site.
#[utoipa::path(
    get, path = "/api/v1/cameras", tag = "site",
    responses(
        (status = 200, description = "Cameras", body = Vec<CameraView>),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn cameras(State(s): State<ApiState>, _auth: Auth) -> Json<Vec<CameraView>> {
    let site = s.incidents.site();
    let out = site
        .cameras()
        .map(|(e, c)| {
            let location = point_location(&s, e.point.as_deref());
            let status = s
                .edges
                .as_ref()
                .and_then(|r| r.get(&e.site, &e.edge_id))
                .and_then(|entry| {
                    entry
                        .status
                        .cameras
                        .iter()
                        .find(|cs| cs.id == c.id)
                        .map(|cs| (cs.state, cs.since_ms))
                });
            CameraView {
                id: c.id.clone(),
                name: c.name.clone(),
                kind: format!("{:?}", c.kind).to_lowercase(),
                edge: e.edge_id.clone(),
                point: e.point.clone(),
                location,
                unit_grid: location
                    .and_then(|l| site.unit_grid_at([l.lon, l.lat]))
                    .map(|g| g.code.clone()),
                enabled: c.enabled,
                state: status.map(|(st, _)| {
                    serde_json::to_value(st)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                }),
                state_since_ms: status.map(|(_, t)| t),
            }
        })
        .collect();
    Json(out)
}

/// Every edge box of the site.
#[utoipa::path(
    get, path = "/api/v1/edges", tag = "site",
    responses(
        (status = 200, description = "Edges", body = Vec<EdgeView>),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn edges(State(s): State<ApiState>, _auth: Auth) -> Json<Vec<EdgeView>> {
    let site = s.incidents.site();
    let out = site
        .edges
        .iter()
        .map(|e| {
            let entry = s.edges.as_ref().and_then(|r| r.get(&e.site, &e.edge_id));
            EdgeView {
                id: e.edge_id.clone(),
                site: e.site.clone(),
                point: e.point.clone(),
                location: point_location(&s, e.point.as_deref()),
                cameras: e.cameras.iter().map(|c| c.id.clone()).collect(),
                sensors: e.sensors.iter().map(|c| c.id.clone()).collect(),
                state: entry.as_ref().map(|x| {
                    serde_json::to_value(x.status.state)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                }),
                version: entry.as_ref().map(|x| x.status.version.clone()),
                status_received_at_ms: entry.as_ref().map(|x| x.received_at_ms),
            }
        })
        .collect();
    Json(out)
}

/// The grids.
#[utoipa::path(
    get, path = "/api/v1/grids", tag = "site",
    params(
        ("level" = Option<String>, Query, description = "unit, community or responsibility"),
        ("parent" = Option<String>, Query, pattern = "^[0-9]{0,20}$", description = "Only children of this grid"),
        ("geometry" = Option<bool>, Query, description = "Include polygons"),
    ),
    responses(
        (status = 200, description = "Grids", body = Vec<GridView>),
        (status = 400, description = "Bad parameters", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn grids(
    State(s): State<ApiState>,
    _auth: Auth,
    RawQuery(q): RawQuery,
) -> Result<Json<Vec<GridView>>, ApiError> {
    let mut p = Params::parse(q.as_deref());
    let level = p.text("level");
    let level = match level.as_deref() {
        None => None,
        Some("unit") => Some(GridLevel::Unit),
        Some("community") => Some(GridLevel::Community),
        Some("responsibility") => Some(GridLevel::Responsibility),
        Some(_) => {
            p.errors.push(parkwatch_incidents::service::FieldError::new(
                "level",
                "must be unit, community or responsibility",
            ));
            None
        }
    };
    let parent = p.grid("parent");
    let geometry = p.bool("geometry").unwrap_or(false);
    p.finish()?;
    let site = s.incidents.site();
    let out = site
        .grids
        .iter()
        .filter(|g| level.is_none_or(|l| g.level == l))
        .filter(|g| parent.as_ref().is_none_or(|p| g.parent.as_ref() == Some(p)))
        .map(|g| GridView {
            code: g.code.clone(),
            level: g.level.as_str().to_owned(),
            parent: g.parent.clone(),
            name: g.name.clone(),
            workers: site
                .workers_for_grid(&g.code)
                .iter()
                .map(|w| w.id.clone())
                .collect(),
            polygon: geometry.then(|| g.polygon.clone()),
        })
        .collect();
    Ok(Json(out))
}

/// The event catalogue.
#[utoipa::path(
    get, path = "/api/v1/catalogue", tag = "site",
    responses(
        (status = 200, description = "Items", body = Vec<CatalogueItemView>),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn catalogue(State(s): State<ApiState>, _auth: Auth) -> Json<Vec<CatalogueItemView>> {
    let c = &s.incidents.site().catalogue;
    Json(
        c.items
            .iter()
            .map(|i| CatalogueItemView {
                code: i.code.clone(),
                class: i.class.clone(),
                class_name: c.class(&i.class).map(|x| x.name.clone()),
                name: i.name.clone(),
                name_en: i.name_en.clone(),
                department: i.department.clone(),
                time_limit: i.time_limit,
                time_unit: time_unit_str(i.time_unit).to_owned(),
                auto_file: i.auto_file,
            })
            .collect(),
    )
}
