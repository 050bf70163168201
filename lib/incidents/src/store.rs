//! The incident store: SQLite (embedded, the default) or PostgreSQL (for
//! several ingest instances), one set of migrations, one code path.
//!
//! # Design
//!
//! The store speaks sqlx's `Any` driver, so every query is written once.
//! The schema (`ingest/migrations/*.sql`) uses only types both databases
//! share (TEXT, BIGINT, DOUBLE PRECISION) and `$N` placeholders, which
//! both accept, so the two backends run the same SQL.
//!
//! **Writes are serialised.** Every write transaction first takes the
//! store's write lock: on SQLite the write pool has exactly one connection
//! (SQLite allows one writer anyway; this turns `SQLITE_BUSY` into a
//! queue), on PostgreSQL `pg_advisory_xact_lock` on a fixed key, held until
//! commit, so it also holds across ingest instances. Under that lock ids
//! are allocated as `MAX(id) + 1`, which makes the feed's ids commit-ordered
//! (an SSE client resuming from id N misses nothing) without
//! dialect-specific sequences. Incident workflow transactions are short
//! (a few statements), so one writer is not the bottleneck: reads, the bulk
//! of the API traffic, use a separate pool and run in parallel.
//!
//! **No lost update.** A workflow step reads the incident, checks the step
//! against the status it read, and writes it back with
//! `WHERE id = $1 AND version = $2`; the version increases with every
//! change. With writes serialised the version check cannot fail from a
//! concurrent writer, but it keeps the guarantee independent of the lock,
//! and callers may pass the version they saw to detect changes made since.
//!
//! **Migrations** are numbered SQL files embedded in the binary, applied in
//! order inside one transaction under the write lock and recorded with
//! their SHA-256 in `schema_migrations`; a changed file that was already
//! applied is refused (a new migration is needed instead).
//!
//! Durability: SQLite runs in WAL mode with `synchronous = FULL`, so a
//! committed transaction survives a crash or power cut; PostgreSQL commits
//! are durable by default.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Once;
use std::time::Duration;

use sqlx::AnyConnection;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Row, Transaction};

use super::blobs::sha256_hex;
use super::model::{
    AlarmEventRecord, AlarmRecord, AssigneeKind, Incident, LonLat, Source, Status, TimelineEntry,
};

/// The migrations, in order: (version, name, SQL).
pub const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "incidents",
    include_str!("../../migrations/0001_incidents.sql"),
)];

/// Advisory lock key of the PostgreSQL write lock ("pw" + "incd").
const PG_WRITE_LOCK: i64 = 0x7077_696e_6364;

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// Where the store lives. `Debug` hides the PostgreSQL password.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreSettings {
    /// A SQLite database file (created if missing).
    Sqlite {
        /// The file.
        path: PathBuf,
        /// Reader connections.
        readers: u32,
    },
    /// A PostgreSQL database.
    Postgres {
        /// `postgres://user:password@host:port/db`.
        url: String,
        /// Most connections.
        max_connections: u32,
    },
}

impl std::fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreSettings::Sqlite { path, readers } => f
                .debug_struct("Sqlite")
                .field("path", path)
                .field("readers", readers)
                .finish(),
            StoreSettings::Postgres {
                url,
                max_connections,
            } => f
                .debug_struct("Postgres")
                .field("url", &redact_url(url))
                .field("max_connections", max_connections)
                .finish(),
        }
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Connecting or a statement failed.
    #[error("{backend} store: {context}: {source}")]
    Db {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// What was being done.
        context: String,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// A migration that was applied before has changed.
    #[error(
        "migration {version} ({name}) changed after it was applied (checksum {applied} in the database, {now} in this build); add a new migration instead"
    )]
    MigrationChanged {
        /// Its version.
        version: i64,
        /// Its name.
        name: String,
        /// Checksum recorded.
        applied: String,
        /// Checksum now.
        now: String,
    },
    /// The database holds a migration this build does not know (it is newer).
    #[error(
        "the database has schema version {0}, newer than this build knows ({1}); upgrade ingest"
    )]
    TooNew(i64, i64),
    /// A stored value is not what this build writes.
    #[error("corrupt row in {table}: column {column}: {message}")]
    Corrupt {
        /// Table.
        table: &'static str,
        /// Column.
        column: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The SQLite folder cannot be created.
    #[error("cannot create {path}: {source}")]
    Dir {
        /// The folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Attaches context to a driver error.
pub(crate) trait DbContext<T> {
    fn ctx(self, backend: Backend, context: impl Into<String>) -> Result<T, StoreError>;
}

impl<T> DbContext<T> for Result<T, sqlx::Error> {
    fn ctx(self, backend: Backend, context: impl Into<String>) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Db {
            backend: backend.as_str(),
            context: context.into(),
            source,
        })
    }
}

impl Backend {
    /// `sqlite` or `postgres`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The store: a write pool and a read pool.
#[derive(Debug, Clone)]
pub struct Store {
    write: AnyPool,
    read: AnyPool,
    backend: Backend,
}

/// A write transaction holding the store's write lock.
pub type WriteTx = Transaction<'static, Any>;

static DRIVERS: Once = Once::new();

impl Store {
    /// Connects (creating a SQLite file if needed) and applies migrations.
    pub async fn open(settings: &StoreSettings) -> Result<Store, StoreError> {
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let store = match settings {
            StoreSettings::Sqlite { path, readers } => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                        path: dir.to_path_buf(),
                        source,
                    })?;
                }
                let url = sqlite_url(path);
                let b = Backend::Sqlite;
                let write = sqlite_pool(1)
                    .connect(&url)
                    .await
                    .ctx(b, format!("opening {}", path.display()))?;
                let read = sqlite_pool((*readers).max(1))
                    .connect(&url)
                    .await
                    .ctx(b, format!("opening {} for reading", path.display()))?;
                Store {
                    write,
                    read,
                    backend: b,
                }
            }
            StoreSettings::Postgres {
                url,
                max_connections,
            } => {
                let b = Backend::Postgres;
                let pool = AnyPoolOptions::new()
                    .max_connections((*max_connections).max(2))
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
                    .await
                    .ctx(b, format!("connecting to {}", redact_url(url)))?;
                Store {
                    write: pool.clone(),
                    read: pool,
                    backend: b,
                }
            }
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Which database.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool for reads.
    pub fn reader(&self) -> &AnyPool {
        &self.read
    }

    /// Begins a write transaction holding the write lock.
    pub async fn begin(&self) -> Result<WriteTx, StoreError> {
        let b = self.backend;
        let mut tx = self.write.begin().await.ctx(b, "beginning a transaction")?;
        if b == Backend::Postgres {
            sqlx::query("SELECT 1 AS locked FROM pg_advisory_xact_lock($1)")
                .bind(PG_WRITE_LOCK)
                .execute(&mut *tx)
                .await
                .ctx(b, "taking the write lock")?;
        }
        Ok(tx)
    }

    /// Commits `tx`.
    pub async fn commit(&self, tx: WriteTx) -> Result<(), StoreError> {
        tx.commit().await.ctx(self.backend, "committing")
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let b = self.backend;
        let mut tx = self.begin().await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at_ms BIGINT NOT NULL)",
        )
        .execute(&mut *tx)
        .await
        .ctx(b, "creating schema_migrations")?;
        let rows = sqlx::query("SELECT version, name, checksum FROM schema_migrations")
            .fetch_all(&mut *tx)
            .await
            .ctx(b, "reading schema_migrations")?;
        let latest = MIGRATIONS.last().map_or(0, |m| m.0);
        let mut applied = Vec::new();
        for r in &rows {
            let version: i64 = r.try_get("version").ctx(b, "schema_migrations.version")?;
            let checksum: String = r.try_get("checksum").ctx(b, "schema_migrations.checksum")?;
            if version > latest {
                return Err(StoreError::TooNew(version, latest));
            }
            applied.push((version, checksum));
        }
        for (version, name, sql) in MIGRATIONS {
            let sum = sha256_hex(sql.as_bytes());
            if let Some((_, was)) = applied.iter().find(|(v, _)| v == version) {
                if *was != sum {
                    return Err(StoreError::MigrationChanged {
                        version: *version,
                        name: (*name).to_owned(),
                        applied: was.clone(),
                        now: sum,
                    });
                }
                continue;
            }
            for stmt in split_statements(sql) {
                sqlx::query(stmt.as_str()).execute(&mut *tx).await.ctx(
                    b,
                    format!("migration {version} ({name}): {}", first_line(&stmt)),
                )?;
            }
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at_ms) VALUES ($1, $2, $3, $4)",
            )
            .bind(*version)
            .bind(*name)
            .bind(sum)
            .bind(super::clock::system_now_ms())
            .execute(&mut *tx)
            .await
            .ctx(b, "recording a migration")?;
        }
        self.commit(tx).await
    }
}

fn sqlite_pool(max: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                for pragma in [
                    "PRAGMA journal_mode = WAL",
                    "PRAGMA synchronous = FULL",
                    "PRAGMA busy_timeout = 10000",
                    "PRAGMA foreign_keys = ON",
                ] {
                    sqlx::query(pragma).execute(&mut *conn).await?;
                }
                Ok(())
            })
        })
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// `url` without its password.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<unparsable url>".to_owned(),
    }
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or("")
}

/// Splits a migration into statements: each ends with a line ending in `;`.
/// Comment-only chunks are dropped.
pub fn split_statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in sql.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("--") || trimmed.is_empty() {
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
        if trimmed.ends_with(';') {
            let stmt = cur.trim().trim_end_matches(';').trim().to_owned();
            if !stmt.is_empty() {
                out.push(stmt);
            }
            cur.clear();
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_owned());
    }
    out
}

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

/// Converts an outbox sequence number to the stored BIGINT and back,
/// bijectively (values above `i64::MAX` wrap to negatives).
pub fn seq_to_db(seq: u64) -> i64 {
    i64::from_ne_bytes(seq.to_ne_bytes())
}

/// Inverse of [`seq_to_db`].
pub fn seq_from_db(v: i64) -> u64 {
    u64::from_ne_bytes(v.to_ne_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_split_into_statements() {
        let stmts = split_statements(MIGRATIONS[0].2);
        assert!(stmts.len() >= 10, "{}", stmts.len());
        assert!(
            stmts[0].starts_with("CREATE TABLE incidents"),
            "{}",
            stmts[0]
        );
        assert!(stmts.iter().all(|s| !s.ends_with(';')));
        assert_eq!(
            INCIDENT_COLUMNS.split(", ").count(),
            43,
            "insert_incident binds 43 columns plus the correlation key"
        );
    }

    #[test]
    fn seq_round_trips_through_the_database_type() {
        for s in [0, 1, i64::MAX as u64, u64::MAX] {
            assert_eq!(seq_from_db(seq_to_db(s)), s);
        }
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
    }
}
