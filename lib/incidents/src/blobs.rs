//! The content-addressed blob store: alarm snapshots and photos on disk.
//!
//! A blob is named by the SHA-256 of its bytes (64 lowercase hex digits)
//! and lives at `<dir>/<first two hex digits>/<all 64>`. Writing goes to a
//! temporary file in the same folder, is fsynced, then renamed into place
//! and the folder fsynced, so a blob either exists whole or not at all,
//! even across a crash; writing the same bytes twice is a no-op. Only
//! JPEG and PNG images are accepted (checked by their magic bytes), at most
//! [`MAX_BLOB_BYTES`].

use std::path::{Path, PathBuf};

use parkwatch_durable::atomic::{self, Durability};

pub use crate::hash::{hex, is_sha256, sha256_hex};

/// Largest blob accepted (the protocol's snapshot limit).
pub const MAX_BLOB_BYTES: usize = parkwatch_protocol::MAX_SNAPSHOT_BYTES;

/// Why a blob could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// Not a JPEG or PNG.
    #[error("not a JPEG or PNG image (first bytes {0})")]
    NotAnImage(String),
    /// Empty or too large.
    #[error("image size {0} bytes is outside 1..={MAX_BLOB_BYTES}")]
    Size(usize),
    /// Not a sha256 hex name.
    #[error("{0:?} is not a sha256 (64 lowercase hex digits)")]
    BadName(String),
    /// The disk.
    #[error("blob store {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The store, rooted at a folder.
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
}

/// The MIME type of an accepted image, from its magic bytes.
pub fn image_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&parkwatch_protocol::JPEG_MAGIC) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else {
        None
    }
}

impl BlobStore {
    /// A store in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        BlobStore { dir: dir.into() }
    }

    /// The root folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, sha: &str) -> Result<PathBuf, BlobError> {
        if !is_sha256(sha) {
            return Err(BlobError::BadName(sha.chars().take(80).collect()));
        }
        Ok(self.dir.join(&sha[..2]).join(sha))
    }

    /// Checks `bytes` is an accepted image; returns its MIME type.
    pub fn check(bytes: &[u8]) -> Result<&'static str, BlobError> {
        if bytes.is_empty() || bytes.len() > MAX_BLOB_BYTES {
            return Err(BlobError::Size(bytes.len()));
        }
        image_type(bytes).ok_or_else(|| BlobError::NotAnImage(hex(&bytes[..bytes.len().min(4)])))
    }

    /// Stores `bytes` durably; returns `(sha256, mime type)`.
    pub async fn put(&self, bytes: Vec<u8>) -> Result<(String, &'static str), BlobError> {
        let mime = Self::check(&bytes)?;
        let sha = sha256_hex(&bytes);
        let path = self.path_of(&sha)?;
        let blocking = tokio::task::spawn_blocking(move || write_atomically(&path, &bytes)).await;
        match blocking {
            Ok(r) => r?,
            Err(e) => {
                return Err(BlobError::Io {
                    path: self.dir.clone(),
                    source: std::io::Error::other(e.to_string()),
                });
            }
        }
        Ok((sha, mime))
    }

    /// Reads a blob; `None` when there is none with that name.
    pub async fn get(&self, sha: &str) -> Result<Option<Vec<u8>>, BlobError> {
        let path = self.path_of(sha)?;
        match tokio::fs::read(&path).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(BlobError::Io { path, source }),
        }
    }

    /// Whether a blob exists.
    pub async fn contains(&self, sha: &str) -> bool {
        match self.path_of(sha) {
            Ok(p) => tokio::fs::try_exists(p).await.unwrap_or(false),
            Err(_) => false,
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), BlobError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| BlobError::Io { path: p, source }
    };
    if path.exists() {
        return Ok(());
    }
    let Some(folder) = path.parent() else {
        return Err(BlobError::BadName(path.display().to_string()));
    };
    std::fs::create_dir_all(folder).map_err(io(folder))?;
    // A unique temporary name: two tasks may store the same blob at once.
    atomic::replace_concurrent(path, bytes, Durability::Synced).map_err(|e| BlobError::Io {
        path: e.path,
        source: e.source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stores_by_content_and_refuses_non_images() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path().join("blobs"));
        let jpeg = [&parkwatch_protocol::JPEG_MAGIC[..], b"rest of a jpeg"].concat();
        let (sha, mime) = store.put(jpeg.clone()).await.unwrap();
        assert_eq!(sha, sha256_hex(&jpeg));
        assert_eq!(mime, "image/jpeg");
        assert!(
            dir.path()
                .join("blobs")
                .join(&sha[..2])
                .join(&sha)
                .is_file()
        );
        // Same bytes again: same name, still one file.
        assert_eq!(store.put(jpeg.clone()).await.unwrap().0, sha);
        assert_eq!(store.get(&sha).await.unwrap(), Some(jpeg));
        assert!(store.contains(&sha).await);
        assert_eq!(store.get(&"0".repeat(64)).await.unwrap(), None);
        assert!(matches!(
            store.put(b"GIF89a".to_vec()).await,
            Err(BlobError::NotAnImage(_))
        ));
        assert!(matches!(
            store.get("../../etc/passwd").await,
            Err(BlobError::BadName(_))
        ));
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
