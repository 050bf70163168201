//! The one error of this crate: a file system operation that failed, with
//! the operation and the path a person needs to act on it.

use std::io;
use std::path::{Path, PathBuf};

/// A file system operation failed.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}")]
pub struct IoError {
    /// What was being done ("create segment", "fsync directory", ...).
    pub op: &'static str,
    /// The file or directory concerned.
    pub path: PathBuf,
    /// The operating system's error.
    #[source]
    pub source: io::Error,
}

impl IoError {
    /// An error of `op` on `path`.
    pub fn new(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        IoError {
            op,
            path: path.into(),
            source,
        }
    }

    /// A closure for `map_err` that wraps an `io::Error`.
    pub fn on<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> IoError + 'a {
        move |source| IoError::new(op, path, source)
    }
}
