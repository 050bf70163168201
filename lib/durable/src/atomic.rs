//! Atomic replacement of a small file: write a temporary file in the same
//! directory, fsync it, rename it over the target, fsync the directory.
//!
//! A reader (or the next start after a crash) sees the old content or the
//! new one, never a mix. With [`Durability::Synced`] the new content is on
//! stable storage when [`replace`] returns; with [`Durability::Unsynced`]
//! nothing is fsynced: the swap is still atomic and survives `kill -9`, but
//! a power loss may bring back the old content (callers choose this where
//! a lagging file is harmless, e.g. the spool cursor).
//!
//! A failed replace removes its temporary file and leaves the target as it
//! was.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::IoError;

/// Whether [`replace`] fsyncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync the file before the rename and the directory after it.
    Synced,
    /// No fsync: atomic against crashes of the process, not power loss.
    Unsynced,
}

/// Replaces `path` with `bytes` atomically, through `<name>.tmp` in the same
/// directory. One writer per path at a time (a second concurrent writer of
/// the same path would share the temporary file): see
/// [`replace_concurrent`] otherwise.
pub fn replace(path: &Path, bytes: &[u8], durability: Durability) -> Result<(), IoError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    replace_via(path, &PathBuf::from(tmp), bytes, durability)
}

/// As [`replace`], with a temporary file name unique to this call
/// (`.<name>.tmp-<pid>-<n>`), for paths that several tasks may write at
/// once (content-addressed blobs).
pub fn replace_concurrent(
    path: &Path,
    bytes: &[u8],
    durability: Durability,
) -> Result<(), IoError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()));
    replace_via(path, &tmp, bytes, durability)
}

fn replace_via(
    path: &Path,
    tmp: &Path,
    bytes: &[u8],
    durability: Durability,
) -> Result<(), IoError> {
    let result = (|| {
        let mut f = File::create(tmp).map_err(IoError::on("create", tmp))?;
        f.write_all(bytes).map_err(IoError::on("write", tmp))?;
        if durability == Durability::Synced {
            f.sync_all().map_err(IoError::on("fsync", tmp))?;
        }
        drop(f);
        std::fs::rename(tmp, path).map_err(IoError::on("rename onto", path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(tmp);
        return result;
    }
    if durability == Durability::Synced {
        sync_dir(parent_of(path))?;
    }
    Ok(())
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes directory entries (new, renamed, removed files) durable.
pub fn sync_dir(dir: &Path) -> Result<(), IoError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(IoError::on("fsync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        replace(&path, b"one", Durability::Synced).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        replace(&path, b"two", Durability::Unsynced).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        replace_concurrent(&path, b"three", Durability::Synced).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"three");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }

    #[test]
    fn a_failed_replace_keeps_the_old_file_and_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        replace(&path, b"old", Durability::Synced).unwrap();
        // A directory where the target is: the rename fails.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("x"), b"x").unwrap();
        let err = replace(&blocked, b"new", Durability::Synced).unwrap_err();
        assert_eq!(err.path, blocked);
        assert!(err.to_string().contains("blocked"), "{err}");
        assert!(!dir.path().join("blocked.tmp").exists());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        let err = replace(&dir.path().join("nope/state"), b"x", Durability::Synced).unwrap_err();
        assert_eq!(err.op, "create");
    }
}
