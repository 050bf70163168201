//! The incident store: SQLite (embedded, the default) or PostgreSQL (for
//! several ingest instances), one set of migrations, one code path.
//!
//! # Design
//!
//! The store speaks sqlx's `Any` driver, so every query is written once.
//! The schema (`lib/incidents/migrations/*.sql`) uses only types both databases
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
//! # Layers
//!
//! This module is the database itself: settings, the two pools, the write
//! lock, transactions, migrations and errors. [`raw`] holds the SQL: plain
//! functions that take a connection or transaction and run statements,
//! mapping rows to the model; they decide nothing. The rules (which step
//! is allowed, what a change records, when to commit and whom to wake)
//! live in [`crate::service`] and [`crate::intake`], which call [`raw`]
//! inside the transactions they open here. The feed table's statements
//! stay beside the feed ([`crate::feed`]) and the evaluation figures'
//! aggregate beside them ([`crate::stats`]).
//!
//! Durability: SQLite runs in WAL mode with `synchronous = FULL`, so a
//! committed transaction survives a crash or power cut; PostgreSQL commits
//! are durable by default.

pub mod raw;

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{Any, AnyPool, Row, Transaction};

use crate::blobs::sha256_hex;

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
            .bind(parkwatch_durable::clock::now_ms())
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

#[cfg(test)]
mod tests {
    use super::raw::{INCIDENT_COLUMNS, seq_from_db, seq_to_db};
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
