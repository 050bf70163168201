//! Loading a configuration file: parse with file/line/key problems, make
//! paths absolute against the file's folder, validate, load the site and
//! resolve secrets, reporting every problem at once.

use std::path::{Path, PathBuf};

use parkwatch_config::{Problem, Problems};

use super::{IngestConfig, Issue, Secrets};

/// A loaded, validated configuration with its secrets.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The configuration as written, defaults applied, paths absolute.
    pub config: IngestConfig,
    /// The resolved secrets.
    pub secrets: Secrets,
    /// The file it came from.
    pub path: PathBuf,
    /// The site of `site_dir`, loaded and checked (none without `site_dir`).
    pub site: Option<std::sync::Arc<parkwatch_config::Site>>,
}

impl IngestConfig {
    /// Loads, validates and resolves secrets of the file at `path`.
    ///
    /// Every problem found is returned at once, each with file, line (where
    /// the key exists in the file, else its nearest parent) and key.
    pub fn load(path: &Path) -> Result<LoadedConfig, Problems> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Problem::file(path, format!("cannot read: {e}")))?;
        Self::load_str(path, &text, &|name| std::env::var(name).ok())
    }

    /// Like [`IngestConfig::load`] for text in memory (`path` names it in
    /// problems and anchors relative paths); `env` looks up environment
    /// variables.
    pub fn load_str(
        path: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<LoadedConfig, Problems> {
        let (mut config, source_map) = parkwatch_config::parse_toml::<IngestConfig>(path, text)?;
        // Relative paths in the file are relative to the file's folder; make
        // that folder absolute so every derived path is too (a path joined
        // twice must not depend on the working directory).
        let parent = path.parent().unwrap_or(Path::new("."));
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        let base = std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf());
        config.make_paths_absolute(&base);
        let mut issues = config.validate();
        let mut site_problems = Vec::new();
        let site = match &config.site_dir {
            Some(dir) => match parkwatch_config::load_site(dir) {
                Ok(site) => {
                    issues.extend(
                        config
                            .api
                            .problems(Some(&site))
                            .into_iter()
                            .filter(|(_, m)| {
                                m.starts_with("no department") || m.starts_with("no worker")
                            })
                            .map(|(k, m)| Issue::new(format!("api.{k}"), m)),
                    );
                    Some(std::sync::Arc::new(site))
                }
                Err(p) => {
                    issues.push(Issue::new(
                        "site_dir",
                        format!(
                            "the site {} has {} problem(s), listed with their files",
                            dir.display(),
                            p.0.len()
                        ),
                    ));
                    site_problems = p.0;
                    None
                }
            },
            None => None,
        };
        match config.resolve_secrets(env) {
            Ok(secrets) if issues.is_empty() => {
                return Ok(LoadedConfig {
                    config,
                    secrets,
                    path: path.to_owned(),
                    site,
                });
            }
            Ok(_) => {}
            Err(more) => issues.extend(more),
        }
        Err(Problems(
            issues
                .into_iter()
                .map(|i| source_map.problem(i.key, i.message))
                .chain(site_problems)
                .collect(),
        )
        .sorted())
    }

    /// Makes relative paths absolute against `base` (the config's folder).
    pub fn make_paths_absolute(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() && !p.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.data_dir);
        if let Some(p) = self.site_dir.as_mut() {
            fix(p);
        }
        let data_dir = self.data_dir.clone();
        self.store.make_paths_absolute(&data_dir, base);
        for e in &mut self.broker.edges {
            if let Some(p) = e.password_file.as_mut() {
                fix(p);
            }
        }
        if let Some(p) = self.broker.password_file.as_mut() {
            fix(p);
        }
        if let Some(p) = self.timeseries.token_file.as_mut() {
            fix(p);
        }
    }
}
