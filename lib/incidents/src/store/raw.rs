//! The SQL of the incident store, apart from the rules that use it (the
//! way moonfire-nvr keeps `db/raw.rs` apart from `db.rs`).
//!
//! Every function here takes a connection or an open transaction, runs its
//! statements and maps rows to [`crate::model`] types; none opens or
//! commits a transaction, takes a lock, checks a workflow rule or wakes the
//! feed: that is [`crate::service`]'s and [`crate::intake`]'s work. So a
//! function here does exactly what its SQL says, and what happens together
//! is decided by the caller's transaction. Statements use `$N`
//! placeholders and only types both SQLite and PostgreSQL share.

use std::str::FromStr;

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row};

use super::{Backend, DbContext, StoreError};
use crate::model::{
    AlarmEventRecord, AlarmRecord, AssigneeKind, Incident, LonLat, Page, Source, Status,
    TimelineEntry,
};
use crate::service::{AlarmFilter, IncidentFilter};
use parkwatch_protocol::AlarmEvent;

// ------------------------------------------------------------ row mapping

/// The columns of `incidents` in the order [`incident_from_row`] and
/// [`insert_incident`] use.
pub const INCIDENT_COLUMNS: &str = "id, status, source, item, class, title, description, severity, lon, lat, address, unit_grid, community_grid, responsibility_grid, grid_worker, outside_grid, department, assignee_kind, assignee, equipment_fault, camera, sensor, edge, rule_id, zone, alarm_kind, alarm_count, reporter, reporter_contact, time_limit, time_unit, created_at_ms, updated_at_ms, filed_at_ms, dispatched_at_ms, due_at_ms, handled_at_ms, closed_at_ms, cancelled_at_ms, overdue, escalated_at_ms, rework_count, version";

fn get<'r, T>(row: &'r AnyRow, table: &'static str, column: &'static str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    row.try_get(column).map_err(|e| StoreError::Corrupt {
        table,
        column,
        message: e.to_string(),
    })
}

fn parse<T: FromStr<Err = String>>(
    s: String,
    table: &'static str,
    column: &'static str,
) -> Result<T, StoreError> {
    s.parse().map_err(|message| StoreError::Corrupt {
        table,
        column,
        message,
    })
}

/// Decodes one `incidents` row selected with [`INCIDENT_COLUMNS`].
pub fn incident_from_row(r: &AnyRow) -> Result<Incident, StoreError> {
    const T: &str = "incidents";
    let lon: Option<f64> = get(r, T, "lon")?;
    let lat: Option<f64> = get(r, T, "lat")?;
    let assignee_kind: Option<String> = get(r, T, "assignee_kind")?;
    Ok(Incident {
        id: get(r, T, "id")?,
        status: parse::<Status>(get(r, T, "status")?, T, "status")?,
        source: parse::<Source>(get(r, T, "source")?, T, "source")?,
        item: get(r, T, "item")?,
        class: get(r, T, "class")?,
        title: get(r, T, "title")?,
        description: get(r, T, "description")?,
        severity: get(r, T, "severity")?,
        location: lon.zip(lat).map(|(lon, lat)| LonLat { lon, lat }),
        address: get(r, T, "address")?,
        unit_grid: get(r, T, "unit_grid")?,
        community_grid: get(r, T, "community_grid")?,
        responsibility_grid: get(r, T, "responsibility_grid")?,
        grid_worker: get(r, T, "grid_worker")?,
        outside_grid: get::<i64>(r, T, "outside_grid")? != 0,
        department: get(r, T, "department")?,
        assignee_kind: match assignee_kind {
            Some(k) => Some(parse::<AssigneeKind>(k, T, "assignee_kind")?),
            None => None,
        },
        assignee: get(r, T, "assignee")?,
        equipment_fault: get::<i64>(r, T, "equipment_fault")? != 0,
        camera: get(r, T, "camera")?,
        sensor: get(r, T, "sensor")?,
        edge: get(r, T, "edge")?,
        rule_id: get(r, T, "rule_id")?,
        zone: get(r, T, "zone")?,
        alarm_kind: get(r, T, "alarm_kind")?,
        alarm_count: get(r, T, "alarm_count")?,
        reporter: get(r, T, "reporter")?,
        reporter_contact: get(r, T, "reporter_contact")?,
        time_limit: get(r, T, "time_limit")?,
        time_unit: get(r, T, "time_unit")?,
        created_at_ms: get(r, T, "created_at_ms")?,
        updated_at_ms: get(r, T, "updated_at_ms")?,
        filed_at_ms: get(r, T, "filed_at_ms")?,
        dispatched_at_ms: get(r, T, "dispatched_at_ms")?,
        due_at_ms: get(r, T, "due_at_ms")?,
        handled_at_ms: get(r, T, "handled_at_ms")?,
        closed_at_ms: get(r, T, "closed_at_ms")?,
        cancelled_at_ms: get(r, T, "cancelled_at_ms")?,
        overdue: get::<i64>(r, T, "overdue")? != 0,
        escalated_at_ms: get(r, T, "escalated_at_ms")?,
        rework_count: get(r, T, "rework_count")?,
        version: get(r, T, "version")?,
    })
}

/// The next id of `table` (`MAX(id) + 1`); call under the write lock.
pub async fn next_id(
    conn: &mut AnyConnection,
    b: Backend,
    table: &'static str,
) -> Result<i64, StoreError> {
    let sql = match table {
        "incidents" => "SELECT COALESCE(MAX(id), 0) + 1 AS next FROM incidents",
        _ => "SELECT COALESCE(MAX(id), 0) + 1 AS next FROM feed",
    };
    let row = sqlx::query(sql)
        .fetch_one(conn)
        .await
        .ctx(b, format!("allocating an id in {table}"))?;
    get(&row, table, "next")
}

/// Inserts a new incident (its `id` already allocated) with its correlation key.
pub async fn insert_incident(
    conn: &mut AnyConnection,
    b: Backend,
    i: &Incident,
    correlation_key: Option<&str>,
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO incidents ({INCIDENT_COLUMNS}, correlation_key) VALUES ({})",
        (1..=44)
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    sqlx::query(&sql)
        .bind(i.id)
        .bind(i.status.as_str())
        .bind(i.source.as_str())
        .bind(i.item.clone())
        .bind(i.class.clone())
        .bind(i.title.clone())
        .bind(i.description.clone())
        .bind(i.severity.clone())
        .bind(i.location.map(|l| l.lon))
        .bind(i.location.map(|l| l.lat))
        .bind(i.address.clone())
        .bind(i.unit_grid.clone())
        .bind(i.community_grid.clone())
        .bind(i.responsibility_grid.clone())
        .bind(i.grid_worker.clone())
        .bind(i64::from(i.outside_grid))
        .bind(i.department.clone())
        .bind(i.assignee_kind.map(|k| k.as_str()))
        .bind(i.assignee.clone())
        .bind(i64::from(i.equipment_fault))
        .bind(i.camera.clone())
        .bind(i.sensor.clone())
        .bind(i.edge.clone())
        .bind(i.rule_id.clone())
        .bind(i.zone.clone())
        .bind(i.alarm_kind.clone())
        .bind(i.alarm_count)
        .bind(i.reporter.clone())
        .bind(i.reporter_contact.clone())
        .bind(i.time_limit)
        .bind(i.time_unit.clone())
        .bind(i.created_at_ms)
        .bind(i.updated_at_ms)
        .bind(i.filed_at_ms)
        .bind(i.dispatched_at_ms)
        .bind(i.due_at_ms)
        .bind(i.handled_at_ms)
        .bind(i.closed_at_ms)
        .bind(i.cancelled_at_ms)
        .bind(i64::from(i.overdue))
        .bind(i.escalated_at_ms)
        .bind(i.rework_count)
        .bind(i.version)
        .bind(correlation_key.map(str::to_owned))
        .execute(conn)
        .await
        .ctx(b, format!("inserting incident {}", i.id))?;
    Ok(())
}

/// Writes back the mutable fields of `i` if the stored version is still
/// `expected_version`; sets the stored version to `i.version`. Returns
/// false when the row changed meanwhile (or is gone).
pub async fn save_incident(
    conn: &mut AnyConnection,
    b: Backend,
    i: &Incident,
    expected_version: i64,
    clear_correlation: bool,
) -> Result<bool, StoreError> {
    let sql = format!(
        "UPDATE incidents SET status = $1, severity = $2, assignee_kind = $3, assignee = $4, alarm_count = $5, updated_at_ms = $6, filed_at_ms = $7, dispatched_at_ms = $8, due_at_ms = $9, handled_at_ms = $10, closed_at_ms = $11, cancelled_at_ms = $12, overdue = $13, escalated_at_ms = $14, rework_count = $15, version = $16{} WHERE id = $17 AND version = $18",
        if clear_correlation {
            ", correlation_key = NULL"
        } else {
            ""
        }
    );
    let done = sqlx::query(&sql)
        .bind(i.status.as_str())
        .bind(i.severity.clone())
        .bind(i.assignee_kind.map(|k| k.as_str()))
        .bind(i.assignee.clone())
        .bind(i.alarm_count)
        .bind(i.updated_at_ms)
        .bind(i.filed_at_ms)
        .bind(i.dispatched_at_ms)
        .bind(i.due_at_ms)
        .bind(i.handled_at_ms)
        .bind(i.closed_at_ms)
        .bind(i.cancelled_at_ms)
        .bind(i64::from(i.overdue))
        .bind(i.escalated_at_ms)
        .bind(i.rework_count)
        .bind(i.version)
        .bind(i.id)
        .bind(expected_version)
        .execute(conn)
        .await
        .ctx(b, format!("saving incident {}", i.id))?;
    Ok(done.rows_affected() == 1)
}

/// Reads one incident.
pub async fn load_incident(
    conn: &mut AnyConnection,
    b: Backend,
    id: i64,
) -> Result<Option<Incident>, StoreError> {
    let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1");
    let row = sqlx::query(&sql)
        .bind(id)
        .fetch_optional(conn)
        .await
        .ctx(b, format!("reading incident {id}"))?;
    row.as_ref().map(incident_from_row).transpose()
}

/// The open incident with this correlation key.
pub async fn open_incident_for(
    conn: &mut AnyConnection,
    b: Backend,
    key: &str,
) -> Result<Option<Incident>, StoreError> {
    let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE correlation_key = $1");
    let row = sqlx::query(&sql)
        .bind(key.to_owned())
        .fetch_optional(conn)
        .await
        .ctx(b, "finding an open incident by correlation key")?;
    row.as_ref().map(incident_from_row).transpose()
}

/// Appends a timeline entry; returns its seq.
pub async fn append_entry(
    conn: &mut AnyConnection,
    b: Backend,
    incident_id: i64,
    e: &TimelineEntry,
) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM timeline WHERE incident_id = $1",
    )
    .bind(incident_id)
    .fetch_one(&mut *conn)
    .await
    .ctx(b, "allocating a timeline seq")?;
    let seq: i64 = get(&row, "timeline", "next")?;
    sqlx::query(
        "INSERT INTO timeline (incident_id, seq, at_ms, kind, actor, role, from_status, to_status, note, attachments, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(incident_id)
    .bind(seq)
    .bind(e.at_ms)
    .bind(e.kind.as_str())
    .bind(e.actor.clone())
    .bind(e.role.as_str())
    .bind(e.from_status.map(|s| s.as_str()))
    .bind(e.to_status.as_str())
    .bind(e.note.clone())
    .bind(serde_json::to_string(&e.attachments).unwrap_or_else(|_| "[]".into()))
    .bind(e.data.to_string())
    .execute(conn)
    .await
    .ctx(b, format!("appending to the timeline of incident {incident_id}"))?;
    Ok(seq)
}

/// The whole timeline of an incident, oldest first.
pub async fn load_timeline(
    conn: &mut AnyConnection,
    b: Backend,
    incident_id: i64,
) -> Result<Vec<TimelineEntry>, StoreError> {
    const T: &str = "timeline";
    let rows = sqlx::query(
        "SELECT seq, at_ms, kind, actor, role, from_status, to_status, note, attachments, data FROM timeline WHERE incident_id = $1 ORDER BY seq",
    )
    .bind(incident_id)
    .fetch_all(conn)
    .await
    .ctx(b, format!("reading the timeline of incident {incident_id}"))?;
    rows.iter()
        .map(|r| {
            let attachments: String = get(r, T, "attachments")?;
            let data: String = get(r, T, "data")?;
            let from: Option<String> = get(r, T, "from_status")?;
            Ok(TimelineEntry {
                seq: get(r, T, "seq")?,
                at_ms: get(r, T, "at_ms")?,
                kind: parse(get(r, T, "kind")?, T, "kind")?,
                actor: get(r, T, "actor")?,
                role: parse(get(r, T, "role")?, T, "role")?,
                from_status: match from {
                    Some(s) => Some(parse(s, T, "from_status")?),
                    None => None,
                },
                to_status: parse(get(r, T, "to_status")?, T, "to_status")?,
                note: get(r, T, "note")?,
                attachments: serde_json::from_str(&attachments).map_err(|e| {
                    StoreError::Corrupt {
                        table: T,
                        column: "attachments",
                        message: e.to_string(),
                    }
                })?,
                data: serde_json::from_str(&data).map_err(|e| StoreError::Corrupt {
                    table: T,
                    column: "data",
                    message: e.to_string(),
                })?,
            })
        })
        .collect()
}

/// The columns of `alarms` in the order [`alarm_from_row`] uses.
pub const ALARM_COLUMNS: &str = "alarm_id, site, edge, camera, sensor, rule_id, kind, severity, zone, state, started_at_ms, last_event_at_ms, ended_at_ms, incident_id, snapshot, lon, lat, unit_grid, message, received_at_ms";

/// Decodes one `alarms` row selected with [`ALARM_COLUMNS`].
pub fn alarm_from_row(r: &AnyRow) -> Result<AlarmRecord, StoreError> {
    const T: &str = "alarms";
    let lon: Option<f64> = get(r, T, "lon")?;
    let lat: Option<f64> = get(r, T, "lat")?;
    Ok(AlarmRecord {
        alarm_id: get(r, T, "alarm_id")?,
        site: get(r, T, "site")?,
        edge: get(r, T, "edge")?,
        camera: get(r, T, "camera")?,
        sensor: get(r, T, "sensor")?,
        rule_id: get(r, T, "rule_id")?,
        kind: get(r, T, "kind")?,
        severity: get(r, T, "severity")?,
        zone: get(r, T, "zone")?,
        state: get(r, T, "state")?,
        started_at_ms: get(r, T, "started_at_ms")?,
        last_event_at_ms: get(r, T, "last_event_at_ms")?,
        ended_at_ms: get(r, T, "ended_at_ms")?,
        incident_id: get(r, T, "incident_id")?,
        snapshot: get(r, T, "snapshot")?,
        location: lon.zip(lat).map(|(lon, lat)| LonLat { lon, lat }),
        unit_grid: get(r, T, "unit_grid")?,
        message: get(r, T, "message")?,
        received_at_ms: get(r, T, "received_at_ms")?,
    })
}

/// Reads one alarm.
pub async fn load_alarm(
    conn: &mut AnyConnection,
    b: Backend,
    alarm_id: &str,
) -> Result<Option<AlarmRecord>, StoreError> {
    let sql = format!("SELECT {ALARM_COLUMNS} FROM alarms WHERE alarm_id = $1");
    let row = sqlx::query(&sql)
        .bind(alarm_id.to_owned())
        .fetch_optional(conn)
        .await
        .ctx(b, format!("reading alarm {alarm_id}"))?;
    row.as_ref().map(alarm_from_row).transpose()
}

/// Every stored event of one alarm, in sequence order.
pub async fn alarm_events(
    conn: &mut AnyConnection,
    b: Backend,
    alarm_id: &str,
) -> Result<Vec<AlarmEventRecord>, StoreError> {
    const T: &str = "alarm_events";
    let rows = sqlx::query(
        "SELECT seq, event, event_at_ms, received_at_ms, snapshot_sha256 FROM alarm_events WHERE alarm_id = $1 ORDER BY seq",
    )
    .bind(alarm_id.to_owned())
    .fetch_all(conn)
    .await
    .ctx(b, format!("reading the events of alarm {alarm_id}"))?;
    rows.iter()
        .map(|r| {
            Ok(AlarmEventRecord {
                seq: get(r, T, "seq")?,
                event: get(r, T, "event")?,
                event_at_ms: get(r, T, "event_at_ms")?,
                received_at_ms: get(r, T, "received_at_ms")?,
                snapshot_sha256: get(r, T, "snapshot_sha256")?,
            })
        })
        .collect()
}

/// Inserts or replaces the state of one alarm.
pub async fn upsert_alarm(
    conn: &mut AnyConnection,
    b: Backend,
    a: &AlarmRecord,
    exists: bool,
) -> Result<(), StoreError> {
    let sql = if exists {
        "UPDATE alarms SET site = $2, edge = $3, camera = $4, sensor = $5, rule_id = $6, kind = $7, severity = $8, zone = $9, state = $10, started_at_ms = $11, last_event_at_ms = $12, ended_at_ms = $13, incident_id = $14, snapshot = $15, lon = $16, lat = $17, unit_grid = $18, message = $19, received_at_ms = $20 WHERE alarm_id = $1"
    } else {
        "INSERT INTO alarms (alarm_id, site, edge, camera, sensor, rule_id, kind, severity, zone, state, started_at_ms, last_event_at_ms, ended_at_ms, incident_id, snapshot, lon, lat, unit_grid, message, received_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
    };
    sqlx::query(sql)
        .bind(a.alarm_id.clone())
        .bind(a.site.clone())
        .bind(a.edge.clone())
        .bind(a.camera.clone())
        .bind(a.sensor.clone())
        .bind(a.rule_id.clone())
        .bind(a.kind.clone())
        .bind(a.severity.clone())
        .bind(a.zone.clone())
        .bind(a.state.clone())
        .bind(a.started_at_ms)
        .bind(a.last_event_at_ms)
        .bind(a.ended_at_ms)
        .bind(a.incident_id)
        .bind(a.snapshot.clone())
        .bind(a.location.map(|l| l.lon))
        .bind(a.location.map(|l| l.lat))
        .bind(a.unit_grid.clone())
        .bind(a.message.clone())
        .bind(a.received_at_ms)
        .execute(conn)
        .await
        .ctx(b, format!("storing alarm {}", a.alarm_id))?;
    Ok(())
}

/// Alarms of an incident, oldest first.
pub async fn alarms_of(
    conn: &mut AnyConnection,
    b: Backend,
    incident_id: i64,
) -> Result<Vec<AlarmRecord>, StoreError> {
    let sql = format!(
        "SELECT {ALARM_COLUMNS} FROM alarms WHERE incident_id = $1 ORDER BY started_at_ms, alarm_id"
    );
    let rows = sqlx::query(&sql)
        .bind(incident_id)
        .fetch_all(conn)
        .await
        .ctx(b, format!("reading the alarms of incident {incident_id}"))?;
    rows.iter().map(alarm_from_row).collect()
}

/// Whether a blob is registered.
pub async fn blob_exists(
    conn: &mut AnyConnection,
    b: Backend,
    sha: &str,
) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT sha256 FROM blobs WHERE sha256 = $1")
        .bind(sha.to_owned())
        .fetch_optional(conn)
        .await
        .ctx(b, "looking up a blob")?;
    Ok(row.is_some())
}

/// Registers a blob (no-op if known).
pub async fn register_blob(
    conn: &mut AnyConnection,
    b: Backend,
    sha: &str,
    bytes: i64,
    content_type: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    if blob_exists(&mut *conn, b, sha).await? {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO blobs (sha256, bytes, content_type, created_at_ms) VALUES ($1, $2, $3, $4)",
    )
    .bind(sha.to_owned())
    .bind(bytes)
    .bind(content_type.to_owned())
    .bind(now_ms)
    .execute(conn)
    .await
    .ctx(b, "registering a blob")?;
    Ok(())
}

/// Content type of a registered blob.
pub async fn blob_type(
    conn: &mut AnyConnection,
    b: Backend,
    sha: &str,
) -> Result<Option<String>, StoreError> {
    let row = sqlx::query("SELECT content_type FROM blobs WHERE sha256 = $1")
        .bind(sha.to_owned())
        .fetch_optional(conn)
        .await
        .ctx(b, "looking up a blob")?;
    row.map(|r| get(&r, "blobs", "content_type")).transpose()
}

// ------------------------------------------------------------ alarm events and snapshots

/// Whether the event `seq` of `alarm_id` is stored already (a re-send).
pub async fn alarm_event_stored(
    conn: &mut AnyConnection,
    b: Backend,
    alarm_id: &str,
    seq: u64,
) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT seq FROM alarm_events WHERE alarm_id = $1 AND seq = $2")
        .bind(alarm_id.to_owned())
        .bind(seq_to_db(seq))
        .fetch_optional(&mut *conn)
        .await
        .ctx(b, "checking for a re-sent alarm event")?;
    Ok(row.is_some())
}

/// Stores one alarm event as the edge sent it, received at `now`.
pub async fn insert_alarm_event(
    conn: &mut AnyConnection,
    b: Backend,
    ev: &AlarmEvent,
    now: i64,
) -> Result<(), StoreError> {
    let payload = serde_json::to_string(ev).unwrap_or_else(|_| "{}".into());
    sqlx::query(
        "INSERT INTO alarm_events (alarm_id, seq, edge, event, event_at_ms, received_at_ms, snapshot_seq, snapshot_sha256, payload) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(ev.alarm_id.clone())
    .bind(seq_to_db(ev.seq))
    .bind(ev.edge.clone())
    .bind(ev.event.as_str())
    .bind(ev.event_at_ms)
    .bind(now)
    .bind(ev.snapshot.as_ref().map(|s| seq_to_db(s.seq)))
    .bind(ev.snapshot.as_ref().map(|s| s.sha256.clone()))
    .bind(payload)
    .execute(&mut *conn)
    .await
    .ctx(b, format!("storing alarm event {} seq {}", ev.alarm_id, ev.seq))?;
    Ok(())
}

/// The outbox sequence numbers of the snapshots that events of `alarm_id`
/// name by `sha` (the snapshot messages to acknowledge once it is stored).
pub async fn snapshot_seqs(
    conn: &mut AnyConnection,
    b: Backend,
    alarm_id: &str,
    sha: &str,
) -> Result<Vec<u64>, StoreError> {
    let rows = sqlx::query(
        "SELECT snapshot_seq FROM alarm_events WHERE alarm_id = $1 AND snapshot_sha256 = $2",
    )
    .bind(alarm_id.to_owned())
    .bind(sha.to_owned())
    .fetch_all(&mut *conn)
    .await
    .ctx(b, "finding the alarm events naming a snapshot")?;
    let mut acks = Vec::new();
    for r in &rows {
        let s: Option<i64> = r
            .try_get("snapshot_seq")
            .ctx(b, "alarm_events.snapshot_seq")?;
        if let Some(s) = s {
            acks.push(seq_from_db(s));
        }
    }
    Ok(acks)
}

/// Links a stored snapshot to its alarm; returns whether the link is new.
pub async fn link_snapshot(
    conn: &mut sqlx::AnyConnection,
    b: Backend,
    alarm_id: &str,
    sha: &str,
    edge: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let known =
        sqlx::query("SELECT sha256 FROM alarm_snapshots WHERE alarm_id = $1 AND sha256 = $2")
            .bind(alarm_id.to_owned())
            .bind(sha.to_owned())
            .fetch_optional(&mut *conn)
            .await
            .ctx(b, "looking up a snapshot link")?;
    if known.is_some() {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO alarm_snapshots (alarm_id, sha256, edge, received_at_ms) VALUES ($1, $2, $3, $4)",
    )
    .bind(alarm_id.to_owned())
    .bind(sha.to_owned())
    .bind(edge.to_owned())
    .bind(now)
    .execute(conn)
    .await
    .ctx(b, "linking a snapshot to its alarm")?;
    Ok(true)
}

/// sha256 of the snapshots linked to an alarm, oldest first.
pub async fn snapshots_of(
    conn: &mut sqlx::AnyConnection,
    b: Backend,
    alarm_id: &str,
) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query(
        "SELECT sha256 FROM alarm_snapshots WHERE alarm_id = $1 ORDER BY received_at_ms, sha256",
    )
    .bind(alarm_id.to_owned())
    .fetch_all(conn)
    .await
    .ctx(b, "reading an alarm's snapshots")?;
    rows.iter()
        .map(|r| r.try_get("sha256").ctx(b, "alarm_snapshots.sha256"))
        .collect()
}

/// Converts an outbox sequence number to the stored BIGINT and back,
/// bijectively (values above `i64::MAX` wrap to negatives).
pub fn seq_to_db(seq: u64) -> i64 {
    i64::from_ne_bytes(seq.to_ne_bytes())
}

/// Inverse of [`seq_to_db`].
pub fn seq_from_db(v: i64) -> u64 {
    u64::from_ne_bytes(v.to_ne_bytes())
}

// ------------------------------------------------------------ lists and scans

/// Incidents still with their handler (dispatched or accepted) whose time
/// limit passed by `now` and that are not marked overdue yet, by id.
pub async fn overdue_incidents(
    conn: &mut AnyConnection,
    b: Backend,
    now: i64,
) -> Result<Vec<Incident>, StoreError> {
    let sql = format!(
        "SELECT {} FROM incidents WHERE overdue = 0 AND due_at_ms IS NOT NULL AND due_at_ms <= $1 AND status IN ('dispatched', 'accepted') ORDER BY id",
        INCIDENT_COLUMNS
    );
    let rows = sqlx::query(&sql)
        .bind(now)
        .fetch_all(&mut *conn)
        .await
        .ctx(b, "finding overdue incidents")?;
    rows.iter().map(incident_from_row).collect()
}

/// A page of incidents matching `f`, newest first, with the total count.
pub async fn list_incidents(
    conn: &mut AnyConnection,
    b: Backend,
    f: &IncidentFilter,
) -> Result<Page<Incident>, StoreError> {
    let mut w = Where::default();
    if !f.status.is_empty() {
        w.any("status", f.status.iter().map(|s| s.as_str().to_owned()));
    }
    if !f.source.is_empty() {
        w.any("source", f.source.iter().map(|s| s.as_str().to_owned()));
    }
    for (col, v) in [
        ("class", &f.class),
        ("item", &f.item),
        ("camera", &f.camera),
        ("assignee", &f.assignee),
    ] {
        if let Some(v) = v {
            w.text(&format!("{col} = ?"), v);
        }
    }
    if let Some(d) = &f.department {
        w.text2(
            "(department = ? OR (assignee_kind = 'department' AND assignee = ?))",
            d,
        );
    }
    if let Some(g) = &f.grid {
        w.text3(
            "(unit_grid = ? OR community_grid = ? OR responsibility_grid = ?)",
            g,
        );
    }
    if let Some(o) = f.overdue {
        w.int("overdue = ?", i64::from(o));
    }
    if let Some(o) = f.outside_grid {
        w.int("outside_grid = ?", i64::from(o));
    }
    w.range("created_at_ms", f.from_ms, f.to_ms);
    let l = Listing {
        table: "incidents",
        columns: INCIDENT_COLUMNS,
        order: "id DESC",
    };
    page(conn, b, &w, l, (f.limit, f.offset), incident_from_row).await
}

/// A page of alarms matching `f`, newest first, with the total count.
pub async fn list_alarms(
    conn: &mut AnyConnection,
    b: Backend,
    f: &AlarmFilter,
) -> Result<Page<AlarmRecord>, StoreError> {
    let mut w = Where::default();
    for (col, v) in [
        ("camera", &f.camera),
        ("edge", &f.edge),
        ("kind", &f.kind),
        ("state", &f.state),
    ] {
        if let Some(v) = v {
            w.text(&format!("{col} = ?"), v);
        }
    }
    if let Some(i) = f.incident_id {
        w.int("incident_id = ?", i);
    }
    w.range("started_at_ms", f.from_ms, f.to_ms);
    let l = Listing {
        table: "alarms",
        columns: ALARM_COLUMNS,
        order: "started_at_ms DESC, alarm_id DESC",
    };
    page(conn, b, &w, l, (f.limit, f.offset), alarm_from_row).await
}

/// What a list reads: the table, its columns and the order of its rows.
struct Listing {
    table: &'static str,
    columns: &'static str,
    order: &'static str,
}

/// One page (`limit`, `offset`) of `l.table`'s rows matching `w`, in
/// `l.order`, with the count of all matching rows.
async fn page<T>(
    conn: &mut AnyConnection,
    b: Backend,
    w: &Where,
    l: Listing,
    (limit, offset): (i64, i64),
    from_row: fn(&AnyRow) -> Result<T, StoreError>,
) -> Result<Page<T>, StoreError> {
    let table = l.table;
    let count_sql = format!("SELECT COUNT(*) AS n FROM {table}{}", w.sql());
    let total: i64 = w
        .bind(sqlx::query(&count_sql))
        .fetch_one(&mut *conn)
        .await
        .ctx(b, format!("counting {table}"))?
        .try_get("n")
        .ctx(b, format!("{table} count"))?;
    let n = w.params.len();
    let sql = format!(
        "SELECT {} FROM {table}{} ORDER BY {} LIMIT ${} OFFSET ${}",
        l.columns,
        w.sql(),
        l.order,
        n + 1,
        n + 2
    );
    let rows = w
        .bind(sqlx::query(&sql))
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *conn)
        .await
        .ctx(b, format!("listing {table}"))?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    let next = offset.saturating_add(limit);
    Ok(Page {
        next_offset: (next < total).then_some(next),
        items,
        total,
    })
}

/// A WHERE clause under construction, with its parameters in order.
#[derive(Debug, Default)]
struct Where {
    clauses: Vec<String>,
    params: Vec<Param>,
}

#[derive(Debug, Clone)]
enum Param {
    Text(String),
    Int(i64),
}

impl Where {
    fn placeholder(&mut self, p: Param) -> String {
        self.params.push(p);
        format!("${}", self.params.len())
    }

    fn fill(&mut self, clause: &str, values: Vec<Param>) {
        let mut out = String::new();
        let mut values = values.into_iter();
        for c in clause.chars() {
            if c == '?' {
                if let Some(v) = values.next() {
                    let ph = self.placeholder(v);
                    out.push_str(&ph);
                }
            } else {
                out.push(c);
            }
        }
        self.clauses.push(out);
    }

    fn text(&mut self, clause: &str, v: &str) {
        self.fill(clause, vec![Param::Text(v.to_owned())]);
    }

    fn text2(&mut self, clause: &str, v: &str) {
        self.fill(clause, vec![Param::Text(v.to_owned()); 2]);
    }

    fn text3(&mut self, clause: &str, v: &str) {
        self.fill(clause, vec![Param::Text(v.to_owned()); 3]);
    }

    fn int(&mut self, clause: &str, v: i64) {
        self.fill(clause, vec![Param::Int(v)]);
    }

    /// `col >= from` and `col < to`, each if given.
    fn range(&mut self, col: &str, from: Option<i64>, to: Option<i64>) {
        if let Some(t) = from {
            self.int(&format!("{col} >= ?"), t);
        }
        if let Some(t) = to {
            self.int(&format!("{col} < ?"), t);
        }
    }

    fn any(&mut self, col: &str, values: impl Iterator<Item = String>) {
        let values: Vec<Param> = values.map(Param::Text).collect();
        let marks = vec!["?"; values.len()].join(", ");
        self.fill(&format!("{col} IN ({marks})"), values);
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    fn bind<'q>(
        &self,
        mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        for p in &self.params {
            q = match p {
                Param::Text(t) => q.bind(t.clone()),
                Param::Int(i) => q.bind(*i),
            };
        }
        q
    }
}
