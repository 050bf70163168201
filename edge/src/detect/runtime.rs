//! Finding and starting ONNX Runtime, once per process.
//!
//! ONNX Runtime is a shared library loaded at run time (the `ort` crate's
//! `load-dynamic` feature), so the edge binary builds without it and a box
//! can take the library from PyPI's `onnxruntime` wheel. [`init`] looks, in
//! this order, at:
//!
//! 1. the path given by the caller (the edge config's `onnxruntime` key or
//!    the `--onnxruntime` flag),
//! 2. the `ORT_DYLIB_PATH` environment variable,
//! 3. [`DEFAULT_LIBRARY`] (`/opt/parkwatch/lib/libonnxruntime.so`, the
//!    symlink the setup script makes).
//!
//! The first one that loads wins; when none does, the error names every path
//! tried and why it failed. A relative path is taken relative to the current
//! directory. ONNX Runtime's own log goes to `tracing` (target
//! `onnxruntime`) from level `warning` up; the `ORT_LOG` environment
//! variable (`verbose`, `info`, `warning`, `error`, `fatal`) changes that
//! level. The NanoDet export's harmless per-weight "initializer appears in
//! graph inputs" warnings (about 150 lines at every load) are logged at
//! debug level instead.
//!
//! Guarantees: the library is loaded and the environment created at most
//! once per process; later calls return the same [`Runtime`] whatever path
//! they pass (a different path is logged and ignored, since a process cannot
//! hold two ONNX Runtimes). A failed attempt can be retried.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use ort::environment::Environment;
use ort::logging::LogLevel;

use super::error::{DetectError, RuntimeCandidate};

/// Where the setup script links ONNX Runtime.
pub const DEFAULT_LIBRARY: &str = "/opt/parkwatch/lib/libonnxruntime.so";

/// The loaded ONNX Runtime and its environment, shared by every session.
#[derive(Debug)]
pub struct Runtime {
    library: PathBuf,
    origin: &'static str,
    build_info: String,
    environment: Environment,
}

impl Runtime {
    /// The library that was loaded (symlinks resolved).
    pub fn library(&self) -> &Path {
        &self.library
    }

    /// Where its path came from: `explicit`, `ORT_DYLIB_PATH` or `default`.
    pub fn origin(&self) -> &'static str {
        self.origin
    }

    /// ONNX Runtime's build information string (branch, commit, build type).
    pub fn build_info(&self) -> &str {
        &self.build_info
    }

    /// The process-wide environment sessions are created in.
    pub fn environment(&self) -> &Environment {
        &self.environment
    }
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static INIT_LOCK: Mutex<()> = Mutex::new(());

/// The places [`init`] tries, in order, with where each came from.
pub fn candidates(explicit: Option<&Path>) -> Vec<(&'static str, PathBuf)> {
    let mut out = Vec::new();
    if let Some(p) = explicit {
        out.push(("explicit", p.to_path_buf()));
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        out.push(("ORT_DYLIB_PATH", PathBuf::from(p)));
    }
    out.push(("default", PathBuf::from(DEFAULT_LIBRARY)));
    out
}

/// Loads ONNX Runtime (see the module documentation for the search order)
/// and creates the process environment; returns the existing one when it
/// is already loaded.
pub fn init(explicit: Option<&Path>) -> Result<&'static Runtime, DetectError> {
    if let Some(rt) = RUNTIME.get() {
        warn_if_different(rt, explicit);
        return Ok(rt);
    }
    let _guard = INIT_LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(rt) = RUNTIME.get() {
        warn_if_different(rt, explicit);
        return Ok(rt);
    }
    let mut tried = Vec::new();
    for (origin, path) in candidates(explicit) {
        let absolute = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
        if !absolute.exists() {
            tried.push(RuntimeCandidate {
                origin,
                path,
                reason: "no such file".into(),
            });
            continue;
        }
        let builder = match ort::init_from(&absolute) {
            Ok(b) => b,
            Err(e) => {
                tried.push(RuntimeCandidate {
                    origin,
                    path,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let library = std::fs::canonicalize(&absolute).unwrap_or(absolute);
        let environment = builder
            .with_name("parkwatch")
            .with_telemetry(false)
            .with_logger(Arc::new(forward_log))
            .build()
            .map_err(|e| DetectError::Runtime {
                library: library.clone(),
                message: e.to_string(),
            })?;
        environment.set_log_level(log_level_from_env());
        for skipped in &tried {
            tracing::warn!(path = %skipped.path.display(), origin = skipped.origin, reason = %skipped.reason, "ONNX Runtime not usable here; tried the next place.");
        }
        let build_info = ort::info().to_string();
        tracing::info!(library = %library.display(), origin, build = %build_info, "ONNX Runtime loaded.");
        return Ok(RUNTIME.get_or_init(|| Runtime {
            library,
            origin,
            build_info,
            environment,
        }));
    }
    Err(DetectError::RuntimeNotFound { tried })
}

/// `ORT_LOG` (`verbose`, `info`, `warning`, `error`, `fatal`), default `warning`.
fn log_level_from_env() -> LogLevel {
    match std::env::var("ORT_LOG").as_deref() {
        Ok("verbose") => LogLevel::Verbose,
        Ok("info") => LogLevel::Info,
        Ok("error") => LogLevel::Error,
        Ok("fatal") => LogLevel::Fatal,
        _ => LogLevel::Warning,
    }
}

/// Marks ONNX Runtime's message about weights stored as graph inputs
/// (one per weight of the NanoDet export at load; harmless).
const INITIALIZER_NOISE: &str = "appears in graph inputs and will not be treated as constant";

/// ONNX Runtime's logger: messages go to `tracing` under the target
/// `onnxruntime`, the known initialiser noise at debug level.
fn forward_log(level: LogLevel, category: &str, _id: &str, location: &str, message: &str) {
    let level = if message.contains(INITIALIZER_NOISE) {
        LogLevel::Verbose
    } else {
        level
    };
    match level {
        LogLevel::Verbose => {
            tracing::debug!(target: "onnxruntime", category, location, "{message}")
        }
        LogLevel::Info => tracing::info!(target: "onnxruntime", category, location, "{message}"),
        LogLevel::Warning => tracing::warn!(target: "onnxruntime", category, location, "{message}"),
        LogLevel::Error | LogLevel::Fatal => {
            tracing::error!(target: "onnxruntime", category, location, "{message}")
        }
    }
}

fn warn_if_different(rt: &Runtime, explicit: Option<&Path>) {
    if let Some(p) = explicit {
        let p = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        if p != rt.library {
            tracing::warn!(
                requested = %p.display(),
                loaded = %rt.library.display(),
                "ONNX Runtime is already loaded from another path; keeping it."
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_path_comes_first_and_default_last() {
        let c = candidates(Some(Path::new("/x/libonnxruntime.so")));
        assert_eq!(
            c.first().map(|(o, p)| (*o, p.as_path())),
            Some(("explicit", Path::new("/x/libonnxruntime.so")))
        );
        assert_eq!(
            c.last().map(|(o, p)| (*o, p.as_path())),
            Some(("default", Path::new(DEFAULT_LIBRARY)))
        );
    }

    #[test]
    fn not_found_error_names_every_place() {
        let err = DetectError::RuntimeNotFound {
            tried: vec![
                RuntimeCandidate {
                    origin: "explicit",
                    path: "/a/lib.so".into(),
                    reason: "no such file".into(),
                },
                RuntimeCandidate {
                    origin: "default",
                    path: DEFAULT_LIBRARY.into(),
                    reason: "no such file".into(),
                },
            ],
        };
        let text = err.to_string();
        assert!(
            text.contains("/a/lib.so (explicit): no such file"),
            "{text}"
        );
        assert!(
            text.contains(&format!("{DEFAULT_LIBRARY} (default)")),
            "{text}"
        );
    }
}
