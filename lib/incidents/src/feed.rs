//! The live feed: every alarm event and every incident change, in commit
//! order, behind `GET /api/v1/alarms/stream`.
//!
//! Each write transaction that changes something appends a row to the
//! `feed` table in the same transaction, so the feed never shows a change
//! that did not commit, and never misses one that did. Feed ids are
//! allocated under the store's write lock, so they increase in commit
//! order: a client that saw id N and reconnects with `Last-Event-ID: N`
//! gets exactly what came after. After each commit the service bumps a
//! `watch` channel with the newest id, which wakes every stream at once;
//! streams also poll every second, which picks up rows written by other
//! ingest instances sharing a PostgreSQL store.

use sqlx::AnyConnection;
use sqlx::Row;

use super::model::{EntryKind, Incident, TimelineEntry};
// The events themselves are part of the HTTP contract, so they live in
// the always-built model.
pub use super::model::{AlarmFeed, FeedEvent, FeedKind, IncidentFeed};
use super::store::raw::next_id;
use super::store::{Backend, DbContext, StoreError};

/// Filter columns of a feed row.
#[derive(Debug, Clone, Default)]
pub struct FeedTags {
    /// Camera id.
    pub camera: Option<String>,
    /// Alarm kind.
    pub alarm_kind: Option<String>,
    /// Severity.
    pub severity: Option<String>,
    /// The most specific grid code known (unit, else responsibility).
    pub grid: Option<String>,
}

impl FeedTags {
    /// Tags of an incident.
    pub fn of_incident(i: &Incident) -> Self {
        FeedTags {
            camera: i.camera.clone(),
            alarm_kind: i.alarm_kind.clone(),
            severity: i.severity.clone(),
            grid: i
                .unit_grid
                .clone()
                .or_else(|| i.responsibility_grid.clone()),
        }
    }
}

/// Appends an incident change; returns its feed id.
pub async fn push_incident(
    conn: &mut AnyConnection,
    b: Backend,
    incident: &Incident,
    entry: &TimelineEntry,
) -> Result<i64, StoreError> {
    let tags = FeedTags::of_incident(incident);
    let feed = IncidentFeed {
        entry: entry.clone(),
        incident: incident.clone(),
    };
    push(
        conn,
        b,
        entry.at_ms,
        FeedKind::Incident,
        Some(incident.id),
        None,
        &tags,
        |id| FeedEvent {
            id,
            at_ms: entry.at_ms,
            kind: FeedKind::Incident,
            incident_id: Some(incident.id),
            alarm: None,
            incident: Some(feed),
        },
    )
    .await
}

/// Appends an alarm event; returns its feed id.
pub async fn push_alarm(
    conn: &mut AnyConnection,
    b: Backend,
    at_ms: i64,
    alarm: AlarmFeed,
) -> Result<i64, StoreError> {
    let tags = FeedTags {
        camera: alarm.alarm.camera.clone(),
        alarm_kind: Some(alarm.alarm.kind.clone()),
        severity: Some(alarm.alarm.severity.clone()),
        grid: alarm.alarm.unit_grid.clone(),
    };
    let incident_id = alarm.alarm.incident_id;
    let alarm_id = alarm.alarm.alarm_id.clone();
    push(
        conn,
        b,
        at_ms,
        FeedKind::Alarm,
        incident_id,
        Some(alarm_id),
        &tags,
        |id| FeedEvent {
            id,
            at_ms,
            kind: FeedKind::Alarm,
            incident_id,
            alarm: Some(alarm),
            incident: None,
        },
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn push(
    conn: &mut AnyConnection,
    b: Backend,
    at_ms: i64,
    kind: FeedKind,
    incident_id: Option<i64>,
    alarm_id: Option<String>,
    tags: &FeedTags,
    event: impl FnOnce(i64) -> FeedEvent,
) -> Result<i64, StoreError> {
    let id = next_id(&mut *conn, b, "feed").await?;
    let payload = serde_json::to_string(&event(id)).map_err(|e| StoreError::Corrupt {
        table: "feed",
        column: "payload",
        message: e.to_string(),
    })?;
    sqlx::query(
        "INSERT INTO feed (id, at_ms, kind, incident_id, alarm_id, camera, alarm_kind, severity, unit_grid, payload) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(id)
    .bind(at_ms)
    .bind(kind.as_str())
    .bind(incident_id)
    .bind(alarm_id)
    .bind(tags.camera.clone())
    .bind(tags.alarm_kind.clone())
    .bind(tags.severity.clone())
    .bind(tags.grid.clone())
    .bind(payload)
    .execute(conn)
    .await
    .ctx(b, "appending to the feed")?;
    Ok(id)
}

/// Which feed events a stream wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedFilter {
    /// Only these kinds (empty: all).
    pub kinds: Vec<FeedKind>,
    /// Only this camera.
    pub camera: Option<String>,
    /// Only this alarm kind.
    pub alarm_kind: Option<String>,
    /// Only this grid or grids inside it (digits: a code prefix).
    pub grid: Option<String>,
    /// Only these severities (empty: all).
    pub severities: Vec<String>,
}

/// One stored feed row, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedRow {
    /// Feed id.
    pub id: i64,
    /// `alarm` or `incident`.
    pub kind: String,
    /// The JSON of a [`FeedEvent`].
    pub payload: String,
}

/// Rows in `(after_id, upto]` matching `f`, oldest first, at most `limit`.
pub async fn read_after(
    conn: &mut AnyConnection,
    b: Backend,
    after_id: i64,
    upto: i64,
    f: &FeedFilter,
    limit: i64,
) -> Result<Vec<FeedRow>, StoreError> {
    let mut sql = String::from("SELECT id, kind, payload FROM feed WHERE id > $1 AND id <= $2");
    let mut texts: Vec<String> = Vec::new();
    let mut n = 2;
    let mut add = |sql: &mut String, clause: &str, v: String| {
        n += 1;
        sql.push_str(&clause.replace('?', &format!("${n}")));
        texts.push(v);
    };
    if !f.kinds.is_empty() && f.kinds.len() < 2 {
        add(&mut sql, " AND kind = ?", f.kinds[0].as_str().to_owned());
    }
    if let Some(c) = &f.camera {
        add(&mut sql, " AND camera = ?", c.clone());
    }
    if let Some(k) = &f.alarm_kind {
        add(&mut sql, " AND alarm_kind = ?", k.clone());
    }
    if let Some(g) = &f.grid {
        add(&mut sql, " AND unit_grid LIKE ?", format!("{g}%"));
    }
    if !f.severities.is_empty() {
        sql.push_str(" AND severity IN (");
        for (i, s) in f.severities.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            add(&mut sql, "?", s.clone());
        }
        sql.push(')');
    }
    n += 1;
    sql.push_str(&format!(" ORDER BY id LIMIT ${n}"));
    let mut q = sqlx::query(&sql).bind(after_id).bind(upto);
    for t in texts {
        q = q.bind(t);
    }
    let rows = q
        .bind(limit)
        .fetch_all(conn)
        .await
        .ctx(b, "reading the feed")?;
    rows.iter()
        .map(|r| {
            let col = |c: &'static str, e: sqlx::Error| StoreError::Corrupt {
                table: "feed",
                column: c,
                message: e.to_string(),
            };
            Ok(FeedRow {
                id: r.try_get("id").map_err(|e| col("id", e))?,
                kind: r.try_get("kind").map_err(|e| col("kind", e))?,
                payload: r.try_get("payload").map_err(|e| col("payload", e))?,
            })
        })
        .collect()
}

/// The newest feed id (0 when empty).
pub async fn latest_id(conn: &mut AnyConnection, b: Backend) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT COALESCE(MAX(id), 0) AS latest FROM feed")
        .fetch_one(conn)
        .await
        .ctx(b, "reading the newest feed id")?;
    row.try_get("latest").ctx(b, "feed.latest")
}

/// Whether an entry kind is a workflow step people take (vs. ingest's notes).
pub fn is_step(kind: EntryKind) -> bool {
    !matches!(
        kind,
        EntryKind::Evidence | EntryKind::AlarmUpdate | EntryKind::AlarmEnd | EntryKind::Escalate
    )
}
