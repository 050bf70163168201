//! Configuration of the incident store and service: the `[store]` and
//! `[incidents]` tables of the ingest configuration (the `[api]` table is
//! in ingest's `api::auth`).
//!
//! ```toml
//! site_dir = "/etc/parkwatch/site"   # top level: grids, catalogue, calendar, workers
//!
//! [store]
//! kind = "sqlite"                    # or "postgres"
//! path = "incidents.sqlite"          # sqlite: relative to data_dir
//! # url = "postgres://parkwatch@127.0.0.1:5432/parkwatch"
//! # url_file = "/etc/parkwatch/pg-url"
//! max_connections = 8
//!
//! [incidents]
//! blob_dir = "blobs"                 # relative to data_dir
//! overdue_check_secs = 30
//! ```
//!
//! [`StoreConfig::problems`] and [`IncidentsConfig::problems`] return every
//! problem as `(key, message)`, keys relative to the table, in the style of
//! the rest of the configuration.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::store::StoreSettings;

/// Which database holds incidents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// A SQLite file inside ingest (one ingest instance).
    #[default]
    Sqlite,
    /// A PostgreSQL server (several ingest instances may share it).
    Postgres,
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `"sqlite"` or `"postgres"`. Default: `"sqlite"`.
    #[serde(default)]
    pub kind: StoreKind,
    /// SQLite: the database file; relative paths are taken from `data_dir`.
    /// Default: `"incidents.sqlite"`. Not allowed with postgres.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// PostgreSQL: `postgres://user:password@host:port/database`. Exactly one
    /// of `url`, `url_file` with postgres; neither with sqlite.
    #[serde(default)]
    pub url: Option<String>,
    /// PostgreSQL: a file whose content (trailing newline removed) is the URL,
    /// to keep the password out of the config file.
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// Most database connections (`2..=256`); with sqlite, the readers (one
    /// more connection writes). Default: `8`.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
}

fn default_max_connections() -> u32 {
    8
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            kind: StoreKind::Sqlite,
            path: None,
            url: None,
            url_file: None,
            max_connections: default_max_connections(),
        }
    }
}

/// Why the store settings could not be resolved.
#[derive(Debug, thiserror::Error)]
#[error("cannot read store.url_file {path}: {source}")]
pub struct UrlFileError {
    /// The file.
    pub path: PathBuf,
    /// The OS error.
    pub source: std::io::Error,
}

impl StoreConfig {
    /// Every problem, as `(key, message)` relative to `[store]`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !(2..=256).contains(&self.max_connections) {
            out.push((
                "max_connections".into(),
                format!("{} is outside 2..=256", self.max_connections),
            ));
        }
        match self.kind {
            StoreKind::Sqlite => {
                for (k, set) in [
                    ("url", self.url.is_some()),
                    ("url_file", self.url_file.is_some()),
                ] {
                    if set {
                        out.push((k.into(), "only for kind = \"postgres\"".into()));
                    }
                }
            }
            StoreKind::Postgres => {
                if self.path.is_some() {
                    out.push(("path".into(), "only for kind = \"sqlite\"".into()));
                }
                match (&self.url, &self.url_file) {
                    (Some(_), Some(_)) => {
                        out.push(("url_file".into(), "give url or url_file, not both".into()))
                    }
                    (None, None) => out.push((
                        "url".into(),
                        "kind = \"postgres\" needs url or url_file".into(),
                    )),
                    (Some(u), None) => {
                        if let Err(m) = check_pg_url(u) {
                            out.push(("url".into(), m));
                        }
                    }
                    (None, Some(_)) => {}
                }
            }
        }
        out
    }

    /// Makes `path` and `url_file` absolute: `path` against `data_dir`,
    /// `url_file` against the config file's folder.
    pub fn make_paths_absolute(&mut self, data_dir: &Path, config_dir: &Path) {
        if let Some(p) = &self.path
            && p.is_relative()
        {
            self.path = Some(data_dir.join(p));
        }
        if let Some(p) = &self.url_file
            && p.is_relative()
        {
            self.url_file = Some(config_dir.join(p));
        }
    }

    /// The store settings (reads `url_file`).
    pub fn settings(&self, data_dir: &Path) -> Result<StoreSettings, UrlFileError> {
        Ok(match self.kind {
            StoreKind::Sqlite => StoreSettings::Sqlite {
                path: match &self.path {
                    Some(p) if p.is_absolute() => p.clone(),
                    Some(p) => data_dir.join(p),
                    None => data_dir.join("incidents.sqlite"),
                },
                readers: self.max_connections,
            },
            StoreKind::Postgres => {
                let url = match (&self.url, &self.url_file) {
                    (Some(u), _) => u.clone(),
                    (None, Some(f)) => std::fs::read_to_string(f)
                        .map_err(|source| UrlFileError {
                            path: f.clone(),
                            source,
                        })?
                        .trim_end_matches(['\n', '\r'])
                        .to_owned(),
                    (None, None) => String::new(),
                };
                StoreSettings::Postgres {
                    url,
                    max_connections: self.max_connections,
                }
            }
        })
    }
}

/// Checks a PostgreSQL URL's shape (without printing its password).
pub fn check_pg_url(u: &str) -> Result<(), String> {
    match url::Url::parse(u) {
        Ok(p) if matches!(p.scheme(), "postgres" | "postgresql") => Ok(()),
        Ok(p) => Err(format!(
            "scheme {:?} is not postgres:// or postgresql://",
            p.scheme()
        )),
        Err(e) => Err(format!("not a URL: {e}")),
    }
}

/// `[incidents]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentsConfig {
    /// Folder of snapshots and photos; relative paths are taken from
    /// `data_dir`. Default: `"blobs"`.
    #[serde(default = "default_blob_dir")]
    pub blob_dir: PathBuf,
    /// How often overdue cases are looked for, in seconds (`1..=3600`).
    /// Default: `30`.
    #[serde(default = "default_overdue_check_secs")]
    pub overdue_check_secs: u64,
}

fn default_blob_dir() -> PathBuf {
    PathBuf::from("blobs")
}

fn default_overdue_check_secs() -> u64 {
    30
}

impl Default for IncidentsConfig {
    fn default() -> Self {
        IncidentsConfig {
            blob_dir: default_blob_dir(),
            overdue_check_secs: default_overdue_check_secs(),
        }
    }
}

impl IncidentsConfig {
    /// Every problem, as `(key, message)` relative to `[incidents]`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !(1..=3600).contains(&self.overdue_check_secs) {
            out.push((
                "overdue_check_secs".into(),
                format!("{} is outside 1..=3600", self.overdue_check_secs),
            ));
        }
        out
    }

    /// The blob folder, absolute.
    pub fn blob_dir(&self, data_dir: &Path) -> PathBuf {
        if self.blob_dir.is_absolute() {
            self.blob_dir.clone()
        } else {
            data_dir.join(&self.blob_dir)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> StoreConfig {
        toml::from_str(s).unwrap()
    }

    #[test]
    fn store_problems_name_their_keys() {
        assert!(StoreConfig::default().problems().is_empty());
        let keys = |c: StoreConfig| c.problems().into_iter().map(|p| p.0).collect::<Vec<_>>();
        assert_eq!(keys(parse("kind = \"postgres\"")), ["url"]);
        assert_eq!(
            keys(parse(
                "kind = \"postgres\"\nurl = \"mysql://x\"\npath = \"a\""
            )),
            ["path", "url"]
        );
        assert_eq!(keys(parse("url = \"postgres://x/y\"")), ["url"]);
        assert_eq!(keys(parse("max_connections = 1")), ["max_connections"]);
        assert!(toml::from_str::<StoreConfig>("kind = \"mysql\"").is_err());
    }

    #[test]
    fn sqlite_paths_resolve_against_the_data_dir() {
        let c = StoreConfig::default();
        match c.settings(Path::new("/var/lib/pw")).unwrap() {
            StoreSettings::Sqlite { path, .. } => {
                assert_eq!(path, Path::new("/var/lib/pw/incidents.sqlite"))
            }
            other => panic!("{other:?}"),
        }
    }
}
