//! Resolving the secrets a configuration names: inline values, `*_file`
//! paths and the token's environment variable, into [`Secret`]s whose
//! `Debug` never prints them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{BrokerMode, IngestConfig, Issue, TOKEN_ENV};
use crate::secret::Secret;

/// The secrets named by the configuration, resolved to their values.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// Embedded broker: password per edge id.
    pub edge_passwords: BTreeMap<String, Secret>,
    /// External broker: the password, if any.
    pub broker_password: Option<Secret>,
    /// Time-series API token; empty means no `Authorization` header.
    pub tsdb_token: Secret,
    /// PostgreSQL store: the URL (it may hold a password).
    pub store_url: Option<Secret>,
}

impl IngestConfig {
    /// Reads every secret: inline values, `*_file`s and, for the token, the
    /// environment (through `env`, so tests need not touch the process's).
    /// Returns every unreadable or empty secret as an [`Issue`].
    pub fn resolve_secrets(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Secrets, Vec<Issue>> {
        let mut issues = Vec::new();
        let mut secrets = Secrets::default();
        let b = &self.broker;
        if b.mode == BrokerMode::Embedded {
            for (i, e) in b.edges.iter().enumerate() {
                let key = format!("broker.edges[{i}].password_file");
                if let Some(p) = resolve_one(&mut issues, &key, &e.password, &e.password_file) {
                    secrets.edge_passwords.insert(e.edge.clone(), p);
                }
            }
        } else {
            secrets.broker_password = resolve_one(
                &mut issues,
                "broker.password_file",
                &b.password,
                &b.password_file,
            );
        }
        let t = &self.timeseries;
        secrets.tsdb_token = if t.token.is_some() || t.token_file.is_some() {
            resolve_one(
                &mut issues,
                "timeseries.token_file",
                &t.token,
                &t.token_file,
            )
            .unwrap_or_default()
        } else {
            env(TOKEN_ENV).map(Secret::new).unwrap_or_default()
        };
        if self.store.kind == crate::incidents::config::StoreKind::Postgres {
            match self.store.settings(&self.data_dir) {
                Ok(crate::incidents::StoreSettings::Postgres { url, .. }) if url.is_empty() => {
                    if self.store.url_file.is_some() {
                        issues.push(Issue::new("store.url_file", "the file is empty"));
                    }
                }
                Ok(crate::incidents::StoreSettings::Postgres { url, .. }) => {
                    if self.store.url_file.is_some()
                        && let Err(m) = crate::incidents::config::check_pg_url(&url)
                    {
                        issues.push(Issue::new("store.url_file", m));
                    }
                    secrets.store_url = Some(Secret::new(url));
                }
                Ok(_) => {}
                Err(e) => issues.push(Issue::new("store.url_file", e.to_string())),
            }
        }
        if issues.is_empty() {
            Ok(secrets)
        } else {
            Err(issues)
        }
    }
}

fn resolve_one(
    issues: &mut Vec<Issue>,
    file_key: &str,
    inline: &Option<Secret>,
    file: &Option<PathBuf>,
) -> Option<Secret> {
    if let Some(s) = inline {
        return Some(s.clone());
    }
    let path = file.as_ref()?;
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let value = text.trim_end_matches(['\n', '\r']);
            if value.is_empty() {
                issues.push(Issue::new(file_key, format!("{} is empty", path.display())));
                None
            } else {
                Some(Secret::new(value))
            }
        }
        Err(e) => {
            issues.push(Issue::new(
                file_key,
                format!("cannot read {}: {e}", path.display()),
            ));
            None
        }
    }
}
