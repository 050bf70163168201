//! The `/api/v1` handlers (except the live stream, in [`super::sse`]).
//!
//! Each handler authenticates ([`Auth`]), parses and checks its input
//! (naming every bad field), calls the incident service and maps its
//! errors through [`ApiError`]. The `#[utoipa::path]` on each one is the
//! source of the OpenAPI document.

use axum::Json;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::auth::Auth;
use super::error::{ApiError, ErrorBody};
use super::input::{JsonBody, Obj, Params, PathId, PathText, read_body};
use parkwatch_incidents::model::{
    Action, AlarmDetail, AlarmRecord, Incident, IncidentDetail, Page, Principal, Role, Source,
    Status,
};
use parkwatch_incidents::service::{AlarmFilter, IncidentFilter, NewReport, StepRequest};
use parkwatch_incidents::stats::{GRID_LEVELS, Stats};
pub use parkwatch_incidents::wire::{ActionRequest, BlobInfo, LocationInput, ReportRequest};

/// Default and largest page size.
pub const DEFAULT_LIMIT: i64 = 50;
/// Largest page size.
pub const MAX_LIMIT: i64 = 500;

const ALL_ROLES_BUT_VIEWER: &[Role] = &[
    Role::Supervisor,
    Role::Dispatcher,
    Role::Department,
    Role::Worker,
    Role::Reporter,
];

fn paging(p: &mut Params) -> (i64, i64) {
    let limit = p.int("limit", 1, MAX_LIMIT).unwrap_or(DEFAULT_LIMIT);
    let offset = p.int("offset", 0, 1_000_000_000).unwrap_or(0);
    (limit, offset)
}

/// List incidents, newest first.
#[utoipa::path(
    get, path = "/api/v1/incidents", tag = "incidents",
    params(
        ("status" = Option<String>, Query, description = "Comma-separated statuses: reported, filed, cancelled, dispatched, accepted, handled, closed"),
        ("source" = Option<String>, Query, description = "Comma-separated sources"),
        ("class" = Option<String>, Query, description = "Catalogue class code, e.g. 01"),
        ("item" = Option<String>, Query, description = "Catalogue item code, e.g. 0105"),
        ("department" = Option<String>, Query, description = "Responsible or assigned department id"),
        ("grid" = Option<String>, Query, pattern = "^[0-9]{0,20}$", description = "Grid code at any level"),
        ("assignee" = Option<String>, Query, description = "Assigned department or worker id"),
        ("camera" = Option<String>, Query, description = "Camera id"),
        ("overdue" = Option<bool>, Query, description = "Only overdue (true) or not overdue (false)"),
        ("outside_grid" = Option<bool>, Query, description = "Only incidents outside every grid (true) or inside one (false)"),
        ("from_ms" = Option<i64>, Query, minimum = 0, description = "Reported at or after (ms since the Unix epoch)"),
        ("to_ms" = Option<i64>, Query, minimum = 0, description = "Reported before (ms since the Unix epoch)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Page size, default 50"),
        ("offset" = Option<i64>, Query, minimum = 0, maximum = 1000000000, description = "Items to skip"),
    ),
    responses(
        (status = 200, description = "A page of incidents", body = Page<Incident>),
        (status = 400, description = "Bad parameters", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_incidents(
    State(s): State<ApiState>,
    _auth: Auth,
    RawQuery(q): RawQuery,
) -> Result<Json<Page<Incident>>, ApiError> {
    let mut p = Params::parse(q.as_deref());
    let (limit, offset) = paging(&mut p);
    let f = IncidentFilter {
        status: p.enums::<Status>("status"),
        source: p.enums::<Source>("source"),
        class: p.text("class"),
        item: p.text("item"),
        department: p.text("department"),
        grid: p.grid("grid"),
        assignee: p.text("assignee"),
        camera: p.text("camera"),
        overdue: p.bool("overdue"),
        outside_grid: p.bool("outside_grid"),
        from_ms: p.int("from_ms", 0, i64::MAX),
        to_ms: p.int("to_ms", 0, i64::MAX),
        limit,
        offset,
    };
    p.finish()?;
    Ok(Json(s.incidents.list(&f).await?))
}

/// Report an incident from any channel.
#[utoipa::path(
    post, path = "/api/v1/incidents", tag = "incidents",
    request_body = ReportRequest,
    responses(
        (status = 201, description = "Opened; status `reported`", body = IncidentDetail,
            headers(("location" = String, description = "/api/v1/incidents/{id}"))),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "The role may not report", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Invalid fields, each named", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_incident(
    State(s): State<ApiState>,
    Auth(who): Auth,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let mut o = Obj::new(
        &body,
        &[
            "source",
            "item",
            "location",
            "title",
            "description",
            "address",
            "photos",
            "reporter",
            "reporter_contact",
        ],
    )?;
    let source = o.req_enum::<Source>("source");
    let item = o.req_str("item", 16);
    let location = o.location("location");
    let title = o.opt_str("title", 200, false);
    let description = o.opt_str("description", 4000, true);
    let address = o.opt_str("address", 500, false);
    let photos = o.sha_list("photos", 20);
    let reporter = o.opt_str("reporter", 100, false);
    let reporter_contact = o.opt_str("reporter_contact", 100, false);
    let errors = std::mem::take(&mut o.errors);
    if !errors.is_empty() {
        // Permission first: a viewer gets 403, not a list of field errors.
        if !parkwatch_incidents::workflow::may_report(who.role) {
            return Err(ApiError::forbidden(format!(
                "role {} may not report incidents",
                who.role
            )));
        }
        return Err(ApiError::invalid(errors));
    }
    let (Some(source), Some(item), Some(location)) = (source, item, location) else {
        return Err(ApiError::invalid(Vec::new()));
    };
    let detail = s
        .incidents
        .report(
            &who,
            NewReport {
                source,
                item,
                title,
                description,
                location,
                address,
                photos,
                reporter,
                reporter_contact,
            },
        )
        .await?;
    let loc = format!("/api/v1/incidents/{}", detail.incident.id);
    let mut resp = (StatusCode::CREATED, Json(detail)).into_response();
    if let Ok(v) = HeaderValue::from_str(&loc) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// One incident with its whole timeline and its alarms.
#[utoipa::path(
    get, path = "/api/v1/incidents/{id}", tag = "incidents",
    params(("id" = i64, Path, description = "Incident id")),
    responses(
        (status = 200, description = "The incident", body = IncidentDetail),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 404, description = "No such incident", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_incident(
    State(s): State<ApiState>,
    _auth: Auth,
    PathId(id): PathId,
) -> Result<Json<IncidentDetail>, ApiError> {
    Ok(Json(s.incidents.detail(id).await?))
}

/// Take a workflow step.
#[utoipa::path(
    post, path = "/api/v1/incidents/{id}/actions", tag = "incidents",
    params(("id" = i64, Path, description = "Incident id")),
    request_body = ActionRequest,
    responses(
        (status = 200, description = "Done; the incident after the step", body = IncidentDetail),
        (status = 400, description = "Not JSON, or bad id", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "The role or assignment does not allow this step", body = ErrorBody),
        (status = 404, description = "No such incident", body = ErrorBody),
        (status = 409, description = "The incident is not in a status this step starts from, or changed since `version`", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Invalid fields, each named", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn act(
    State(s): State<ApiState>,
    Auth(who): Auth,
    PathId(id): PathId,
    JsonBody(body): JsonBody,
) -> Result<Json<IncidentDetail>, ApiError> {
    let mut o = Obj::new(
        &body,
        &[
            "action",
            "note",
            "attachments",
            "department",
            "worker",
            "version",
        ],
    )?;
    let action = o.req_enum::<Action>("action");
    let note = o.opt_str("note", 4000, true);
    let attachments = o.sha_list("attachments", 20);
    let department = o.opt_str("department", 64, false);
    let worker = o.opt_str("worker", 64, false);
    let version = o.opt_i64("version", 1, i64::MAX);
    if let Some(a) = action {
        // Permission first: a worker closing gets 403 whatever the body.
        parkwatch_incidents::workflow::role_may(who.role, a)
            .map_err(|e| ApiError::forbidden(e.to_string()))?;
    } else if who.role == Role::Viewer {
        return Err(ApiError::forbidden("role viewer may not change incidents"));
    }
    o.finish()?;
    let Some(action) = action else {
        return Err(ApiError::invalid(Vec::new()));
    };
    let detail = s
        .incidents
        .act(
            &who,
            id,
            StepRequest {
                action,
                note,
                attachments,
                department,
                worker,
                version,
            },
        )
        .await?;
    Ok(Json(detail))
}

/// List alarms, newest first.
#[utoipa::path(
    get, path = "/api/v1/alarms", tag = "alarms",
    params(
        ("camera" = Option<String>, Query, description = "Camera id"),
        ("edge" = Option<String>, Query, description = "Edge id"),
        ("kind" = Option<String>, Query, description = "Alarm kind, e.g. intrusion"),
        ("state" = Option<String>, Query, description = "active or ended"),
        ("incident_id" = Option<i64>, Query, description = "Incident id"),
        ("from_ms" = Option<i64>, Query, minimum = 0, description = "Started at or after (ms)"),
        ("to_ms" = Option<i64>, Query, minimum = 0, description = "Started before (ms)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Page size, default 50"),
        ("offset" = Option<i64>, Query, minimum = 0, maximum = 1000000000, description = "Items to skip"),
    ),
    responses(
        (status = 200, description = "A page of alarms", body = Page<AlarmRecord>),
        (status = 400, description = "Bad parameters", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_alarms(
    State(s): State<ApiState>,
    _auth: Auth,
    RawQuery(q): RawQuery,
) -> Result<Json<Page<AlarmRecord>>, ApiError> {
    let mut p = Params::parse(q.as_deref());
    let (limit, offset) = paging(&mut p);
    let kind = p.text("kind");
    if let Some(k) = &kind
        && k.parse::<parkwatch_protocol::AlarmKind>().is_err()
    {
        p.errors.push(parkwatch_incidents::service::FieldError::new(
            "kind",
            format!("unknown alarm kind {k:?}"),
        ));
    }
    let state = p.text("state");
    if let Some(st) = &state
        && !matches!(st.as_str(), "active" | "ended")
    {
        p.errors.push(parkwatch_incidents::service::FieldError::new(
            "state",
            "must be active or ended",
        ));
    }
    let f = AlarmFilter {
        camera: p.text("camera"),
        edge: p.text("edge"),
        kind,
        state,
        incident_id: p.int("incident_id", i64::MIN, i64::MAX),
        from_ms: p.int("from_ms", 0, i64::MAX),
        to_ms: p.int("to_ms", 0, i64::MAX),
        limit,
        offset,
    };
    p.finish()?;
    Ok(Json(s.incidents.alarms(&f).await?))
}

/// One alarm with every event ingest stored for it (each `(alarm id, seq)`
/// once, however often the edge re-sent it).
#[utoipa::path(
    get, path = "/api/v1/alarms/{alarm_id}", tag = "alarms",
    params(("alarm_id" = String, Path, pattern = "^[A-Za-z0-9_.:-]{1,128}$", description = "The edge's alarm id")),
    responses(
        (status = 200, description = "The alarm and its events, in sequence order", body = AlarmDetail),
        (status = 400, description = "Not an alarm id", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 404, description = "No such alarm", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_alarm(
    State(s): State<ApiState>,
    _auth: Auth,
    PathText(alarm_id): PathText,
) -> Result<Json<AlarmDetail>, ApiError> {
    if let Err(e) = parkwatch_protocol::validate_id(&alarm_id, parkwatch_protocol::MAX_ALARM_ID_LEN)
    {
        return Err(ApiError::bad_request(vec![
            parkwatch_incidents::service::FieldError::new(
                "alarm_id",
                format!("not an alarm id: {e}"),
            ),
        ]));
    }
    Ok(Json(s.incidents.alarm_detail(&alarm_id).await?))
}

/// Upload a photo (JPEG or PNG, up to 4 MiB); returns its sha256 to
/// reference in reports and steps.
#[utoipa::path(
    post, path = "/api/v1/blobs", tag = "blobs",
    request_body(content = Vec<u8>, content_type = "image/jpeg", description = "The image bytes (image/jpeg or image/png)"),
    responses(
        (status = 201, description = "Stored (or already there)", body = BlobInfo),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "Viewers may not upload", body = ErrorBody),
        (status = 413, description = "Larger than 4 MiB", body = ErrorBody),
        (status = 422, description = "Not a JPEG or PNG", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn upload_blob(
    State(s): State<ApiState>,
    auth: Auth,
    req: Request,
) -> Result<Response, ApiError> {
    auth.require(ALL_ROLES_BUT_VIEWER, "upload photos")?;
    let bytes = read_body(req, &()).await?;
    let len = bytes.len();
    let (sha, mime) = s.incidents.put_blob(bytes.to_vec()).await?;
    Ok((
        StatusCode::CREATED,
        Json(BlobInfo {
            sha256: sha,
            content_type: mime.to_owned(),
            bytes: len,
        }),
    )
        .into_response())
}

/// Download a snapshot or photo by its sha256.
#[utoipa::path(
    get, path = "/api/v1/blobs/{sha256}", tag = "blobs",
    params(("sha256" = String, Path, pattern = "^[0-9a-f]{64}$", description = "SHA-256 of the bytes, 64 lowercase hex digits")),
    responses(
        (status = 200, description = "The image", content_type = "image/jpeg", body = Vec<u8>),
        (status = 400, description = "Not a sha256", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 404, description = "No such blob", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_blob(
    State(s): State<ApiState>,
    _auth: Auth,
    PathText(sha): PathText,
) -> Result<Response, ApiError> {
    if !parkwatch_incidents::blobs::is_sha256(&sha) {
        return Err(ApiError::bad_request(vec![
            parkwatch_incidents::service::FieldError::new(
                "sha256",
                "not a sha256 (64 lowercase hex digits)",
            ),
        ]));
    }
    let (bytes, mime) = s.incidents.get_blob(&sha).await?;
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&mime) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("\"{sha}\"")) {
        h.insert(header::ETAG, v);
    }
    Ok(resp)
}

/// Evaluation figures per grid, department and worker.
#[utoipa::path(
    get, path = "/api/v1/stats", tag = "stats",
    params(
        ("from_ms" = Option<i64>, Query, minimum = 0, description = "Period start (reported at or after, ms); default 30 days ago"),
        ("to_ms" = Option<i64>, Query, minimum = 0, description = "Period end (exclusive, ms); default now"),
        ("grid_level" = Option<String>, Query, description = "unit, community (default) or responsibility"),
    ),
    responses(
        (status = 200, description = "The figures", body = Stats),
        (status = 400, description = "Bad parameters", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn stats(
    State(s): State<ApiState>,
    _auth: Auth,
    RawQuery(q): RawQuery,
) -> Result<Json<Stats>, ApiError> {
    let mut p = Params::parse(q.as_deref());
    let now = s.incidents.now_ms();
    let to = p.int("to_ms", 0, i64::MAX).unwrap_or(now);
    let from = p
        .int("from_ms", 0, i64::MAX)
        .unwrap_or(to.saturating_sub(30 * 86_400_000));
    let level = p.text("grid_level").unwrap_or_else(|| "community".into());
    if !GRID_LEVELS.contains(&level.as_str()) {
        p.errors.push(parkwatch_incidents::service::FieldError::new(
            "grid_level",
            "must be unit, community or responsibility",
        ));
    }
    if from > to {
        p.errors.push(parkwatch_incidents::service::FieldError::new(
            "from_ms",
            "must not be after to_ms",
        ));
    }
    p.finish()?;
    Ok(Json(s.incidents.stats(from, to, &level).await?))
}

/// Who the token belongs to.
#[utoipa::path(
    get, path = "/api/v1/whoami", tag = "site",
    responses(
        (status = 200, description = "The caller", body = Principal),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn whoami(Auth(who): Auth) -> Json<Principal> {
    Json(who)
}
