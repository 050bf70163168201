//! Dead letters: a bounded on-disk store of what ingest rejected, for
//! inspection (`GET /deadletters`, `parkctl deadletters`).
//!
//! Every message the consumer rejects (bad topic, malformed, unsupported
//! version, too large, invalid, outside the sender's branch, ...) and every
//! telemetry batch the database refused for good is recorded here with its
//! topic, time, reason, error text, size, and the first
//! `deadletters.payload_bytes` bytes of the payload in hex.
//!
//! # Guarantees
//!
//! - **Never stops or slows the consumer.** [`DeadLetters::record`] only
//!   formats the entry and `try_send`s it to a bounded queue
//!   ([`QUEUE`] entries); a dedicated thread writes the files. When the
//!   queue is full (a flood faster than the disk) the entry is dropped and
//!   counted in `parkwatch_ingest_deadletters_dropped_total`; the rejection
//!   itself is always counted in `parkwatch_ingest_rejected_total`.
//! - **Bounded.** Files `data_dir/deadletter/<id>.jsonl` (20 digits), one
//!   JSON object per line, each file at most a quarter of
//!   `deadletters.max_bytes`; when the files together exceed `max_bytes`
//!   the oldest file is deleted. So the store holds between the newest
//!   three quarters and all of `max_bytes`, a ring of files.
//! - **For inspection, not for replay.** Lines are written with `write(2)`
//!   without fsync: they survive a crash of ingest but maybe not a power
//!   loss. A torn last line is skipped when reading.
//!
//! Entry format (one line):
//!
//! ```json
//! {"at_ms":1700000000000,"topic":"parkwatch/etdz/edge-p01/telemetry",
//!  "reason":"malformed","error":"malformed payload: ...","size":12,
//!  "payload_hex":"ffffff...","truncated":false}
//! ```
//!
//! `topic` is cut to 256 bytes and `error` to 512; `truncated` says whether
//! the payload was longer than what `payload_hex` holds.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tokio::sync::mpsc;
use tracing::warn;

use crate::metrics::Metrics;

/// Entries that may wait for the writing thread.
pub const QUEUE: usize = 4096;
/// Longest topic kept, in bytes.
pub const MAX_TOPIC: usize = 256;
/// Longest error text kept, in bytes.
pub const MAX_ERROR: usize = 512;
/// Most entries one `GET /deadletters` returns.
pub const MAX_LIST: usize = 1000;

/// `[deadletters]` in the ingest configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterConfig {
    /// Most bytes the dead-letter files may hold together
    /// (`65536..=68719476736`). Default: `67108864` (64 MiB).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Bytes of each rejected payload kept, as hex (`0..=1048576`).
    /// Default: `4096`.
    #[serde(default = "default_payload_bytes")]
    pub payload_bytes: usize,
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        DeadLetterConfig {
            max_bytes: default_max_bytes(),
            payload_bytes: default_payload_bytes(),
        }
    }
}

fn default_max_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_payload_bytes() -> usize {
    4096
}

impl DeadLetterConfig {
    /// Every problem as `(key under [deadletters], message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !(65_536..=64 * 1024 * 1024 * 1024).contains(&self.max_bytes) {
            out.push((
                "max_bytes".to_owned(),
                format!("{} is out of range 65536..=68719476736", self.max_bytes),
            ));
        }
        if self.payload_bytes > 1024 * 1024 {
            out.push((
                "payload_bytes".to_owned(),
                format!("{} is out of range 0..=1048576", self.payload_bytes),
            ));
        }
        out
    }
}

pub use parkwatch_incidents::wire::{DeadLetter, ListResponse};

/// Why the store could not start.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// A file operation failed.
    #[error("dead letters {path}: {op}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The writing thread could not be started.
    #[error("cannot spawn the dead-letter thread: {0}")]
    Spawn(std::io::Error),
}

/// The handle: cheap to clone, shared by the consumer, the writer and the
/// HTTP route.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tx: Option<mpsc::Sender<DeadLetter>>,
    dir: PathBuf,
    payload_bytes: usize,
    metrics: Arc<Metrics>,
    written: AtomicU64,
}

impl DeadLetters {
    /// Opens the store in `dir` and starts its writing thread. The thread
    /// ends when every handle is dropped.
    pub fn start(
        dir: &Path,
        cfg: &DeadLetterConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Self, DeadLetterError> {
        let mut files = Files::open(dir, cfg.max_bytes)?;
        metrics.set_deadletter_bytes(files.total);
        let (tx, mut rx) = mpsc::channel::<DeadLetter>(QUEUE);
        let inner = Arc::new(Inner {
            tx: Some(tx),
            dir: dir.to_owned(),
            payload_bytes: cfg.payload_bytes,
            metrics: metrics.clone(),
            written: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("deadletters".to_owned())
            .spawn(move || {
                let mut errors: u64 = 0;
                while let Some(dl) = rx.blocking_recv() {
                    match files.append(&dl) {
                        Ok(()) => {
                            metrics.deadletter_written();
                            metrics.set_deadletter_bytes(files.total);
                            if let Some(i) = weak.upgrade() {
                                i.written.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(e) => {
                            metrics.deadletter_dropped();
                            errors += 1;
                            if errors < 5 || errors.is_multiple_of(1000) {
                                warn!(err = %e, errors, "Cannot write a dead letter.");
                            }
                        }
                    }
                }
            })
            .map_err(DeadLetterError::Spawn)?;
        Ok(DeadLetters { inner })
    }

    /// Records a rejected payload. Never blocks: when the queue is full the
    /// entry is dropped and counted.
    pub fn record(&self, topic: &str, reason: &str, error: &str, payload: &[u8]) {
        let Some(tx) = &self.inner.tx else { return };
        let keep = payload.len().min(self.inner.payload_bytes);
        let dl = DeadLetter {
            at_ms: parkwatch_durable::now_ms(),
            topic: cut(topic, MAX_TOPIC),
            reason: reason.to_owned(),
            error: cut(error, MAX_ERROR),
            size: payload.len(),
            payload_hex: hex(&payload[..keep]),
            truncated: keep < payload.len(),
        };
        if tx.try_send(dl).is_err() {
            self.inner.metrics.deadletter_dropped();
        }
    }

    /// Entries written by this process so far.
    pub fn written(&self) -> u64 {
        self.inner.written.load(Ordering::Relaxed)
    }

    /// The newest `limit` entries (at most [`MAX_LIST`]), newest first.
    /// Blocking file I/O: call from a blocking context.
    pub fn list(&self, limit: usize) -> Result<Vec<DeadLetter>, DeadLetterError> {
        list_dir(&self.inner.dir, limit.min(MAX_LIST))
    }
}

/// The route `GET /deadletters?limit=N` (default 50, at most
/// [`MAX_LIST`]): `{"count":n,"items":[DeadLetter,..]}`, newest first.
pub fn router(store: DeadLetters) -> Router {
    Router::new()
        .route("/deadletters", get(list_handler))
        .with_state(store)
}

/// Query of `GET /deadletters`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// How many entries, newest first. Default 50.
    pub limit: Option<usize>,
}

async fn list_handler(State(store): State<DeadLetters>, Query(q): Query<ListQuery>) -> Response {
    let limit = q.limit.unwrap_or(50);
    let result = tokio::task::spawn_blocking(move || store.list(limit)).await;
    match result {
        Ok(Ok(items)) => axum::Json(ListResponse {
            count: items.len(),
            items,
        })
        .into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

pub use parkwatch_incidents::hash::{hex, unhex};

fn io<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> DeadLetterError + 'a {
    move |source| DeadLetterError::Io {
        path: path.to_owned(),
        op,
        source,
    }
}

fn file_ids(dir: &Path) -> Result<Vec<u64>, DeadLetterError> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir, "list"))? {
        let entry = entry.map_err(io(dir, "list"))?;
        let name = entry.file_name();
        if let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".jsonl"))
            .filter(|n| n.len() == 20)
            .and_then(|n| n.parse::<u64>().ok())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

fn file_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.jsonl"))
}

fn list_dir(dir: &Path, limit: usize) -> Result<Vec<DeadLetter>, DeadLetterError> {
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    for id in file_ids(dir)?.into_iter().rev() {
        let path = file_path(dir, id);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            // Deleted by the ring meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&path, "read")(e)),
        };
        for line in text.split(|&b| b == b'\n').rev() {
            if line.is_empty() {
                continue;
            }
            if let Ok(dl) = serde_json::from_slice::<DeadLetter>(line) {
                out.push(dl);
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
    }
    Ok(out)
}

/// The ring of files, owned by the writing thread.
struct Files {
    dir: PathBuf,
    max_bytes: u64,
    file_cap: u64,
    /// (id, size), oldest first; the last one is appended to.
    files: VecDeque<(u64, u64)>,
    current: Option<File>,
    total: u64,
}

impl Files {
    fn open(dir: &Path, max_bytes: u64) -> Result<Self, DeadLetterError> {
        std::fs::create_dir_all(dir).map_err(io(dir, "create folder"))?;
        let mut files = VecDeque::new();
        let mut total = 0;
        for id in file_ids(dir)? {
            let path = file_path(dir, id);
            let len = std::fs::metadata(&path).map_err(io(&path, "stat"))?.len();
            total += len;
            files.push_back((id, len));
        }
        Ok(Files {
            dir: dir.to_owned(),
            max_bytes,
            file_cap: (max_bytes / 4).max(4096),
            files,
            // After a restart, appends start a new file.
            current: None,
            total,
        })
    }

    fn append(&mut self, dl: &DeadLetter) -> Result<(), DeadLetterError> {
        let mut line = serde_json::to_vec(dl).unwrap_or_default();
        line.push(b'\n');
        let len = line.len() as u64;
        let full = self
            .files
            .back()
            .is_none_or(|(_, size)| size + len > self.file_cap && *size > 0);
        if self.current.is_none() || full {
            let id = self.files.back().map_or(1, |(id, _)| id + 1);
            let path = file_path(&self.dir, id);
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io(&path, "create"))?;
            self.current = Some(f);
            self.files.push_back((id, 0));
        }
        let (Some(f), Some((id, size))) = (self.current.as_mut(), self.files.back_mut()) else {
            return Ok(());
        };
        let path = file_path(&self.dir, *id);
        f.write_all(&line).map_err(io(&path, "append"))?;
        *size += len;
        self.total += len;
        while self.total > self.max_bytes && self.files.len() > 1 {
            if let Some((old, size)) = self.files.pop_front() {
                let p = file_path(&self.dir, old);
                match std::fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(&p, "remove")(e)),
                }
                self.total = self.total.saturating_sub(size);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn entry(i: usize) -> DeadLetter {
        DeadLetter {
            at_ms: i as i64,
            topic: format!("parkwatch/s/e/t{i}"),
            reason: "malformed".into(),
            error: "x".repeat(100),
            size: 10,
            payload_hex: "00".repeat(100),
            truncated: false,
        }
    }

    #[test]
    fn ring_stays_under_its_limit_and_lists_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Files::open(dir.path(), 10_000).unwrap();
        for i in 0..500 {
            files.append(&entry(i)).unwrap();
            let on_disk: u64 = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().metadata().unwrap().len())
                .sum();
            assert!(on_disk <= 10_000, "{on_disk} bytes after {i}");
        }
        let listed = list_dir(dir.path(), 1000).unwrap();
        assert!(listed.len() > 10, "keeps recent entries");
        assert_eq!(listed[0].at_ms, 499, "newest first");
        assert!(listed.windows(2).all(|w| w[0].at_ms == w[1].at_ms + 1));
        assert_eq!(list_dir(dir.path(), 3).unwrap().len(), 3);
        // A restart starts a new file and keeps the old entries.
        drop(files);
        let mut files = Files::open(dir.path(), 10_000).unwrap();
        files.append(&entry(1000)).unwrap();
        assert_eq!(list_dir(dir.path(), 2).unwrap()[1].at_ms, 499);
    }

    #[test]
    fn torn_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = serde_json::to_vec(&entry(1)).unwrap();
        text.extend_from_slice(b"\n{\"at_ms\":2,\"top");
        std::fs::write(file_path(dir.path(), 1), text).unwrap();
        let listed = list_dir(dir.path(), 10).unwrap();
        assert_eq!(listed, vec![entry(1)]);
    }

    #[test]
    fn hex_round_trips_and_cut_respects_utf8() {
        assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(unhex("00abff"), Some(vec![0, 0xab, 0xff]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(cut("ab\u{00e9}", 3), "ab");
    }

    async fn wait_some<T>(mut f: impl FnMut() -> Option<T>) -> T {
        for _ in 0..500 {
            if let Some(v) = f() {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out")
    }

    #[tokio::test]
    async fn record_truncates_payload_and_never_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        let cfg = DeadLetterConfig {
            max_bytes: 1 << 20,
            payload_bytes: 4,
        };
        let dl = DeadLetters::start(dir.path(), &cfg, metrics.clone()).unwrap();
        dl.record(
            "parkwatch/s/e/telemetry",
            "malformed",
            "bad",
            &[1, 2, 3, 4, 5, 6],
        );
        let store = dl.clone();
        let first = wait_some(|| {
            let all = store.list(MAX_LIST).ok()?;
            all.into_iter().find(|d| d.reason == "malformed")
        })
        .await;
        assert_eq!(first.payload_hex, "01020304");
        assert!(first.truncated);
        assert_eq!(first.size, 6);
        assert_eq!(first.topic, "parkwatch/s/e/telemetry");
        let started = std::time::Instant::now();
        for _ in 0..20_000 {
            dl.record("t", "too_large", "big", &[0u8; 64]);
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "recording is a try_send"
        );
        // Everything recorded was either written or counted as dropped.
        let all = wait_some(|| {
            let w = metrics.deadletters_written();
            let d = metrics.deadletters_dropped();
            (w + d == 20_001).then_some((w, d))
        })
        .await;
        assert!(all.0 > 0);
    }
}
