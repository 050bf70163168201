//! The writer's state on disk: the dedup record and, when on, the spool;
//! opened once at startup, with what recovery found logged.

use std::path::Path;
use std::time::Duration;

use tracing::{info, warn};

use crate::dedup::DedupStore;
use crate::spool::{Spool, SpoolError};

/// Why the writer's on-disk state could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The dedup record.
    #[error(transparent)]
    Dedup(#[from] crate::dedup::DedupError),
    /// The spool.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The dead-letter store.
    #[error(transparent)]
    DeadLetters(#[from] crate::deadletter::DeadLetterError),
}

/// The writer's state on disk: the dedup record and, if on, the spool.
#[derive(Debug)]
pub struct Durable {
    /// Stored batches per edge.
    pub dedup: DedupStore,
    /// The disk spool, `None` when `spool_max_bytes = 0`.
    pub spool: Option<Spool>,
    /// How long a group may fail retryably before it is spooled.
    pub spool_after: Duration,
}

impl Durable {
    /// Opens `data_dir/dedup` and, when `spool_max_bytes > 0`,
    /// `data_dir/spool`, logging what recovery found.
    pub fn open(
        data_dir: &Path,
        spool_max_bytes: u64,
        spool_after: Duration,
    ) -> Result<Self, StorageError> {
        let (dedup, report) =
            DedupStore::open(&data_dir.join("dedup"), crate::dedup::DEFAULT_MAX_RANGES)?;
        if let Some(p) = &report.corrupt_snapshot {
            warn!(moved_to = %p.display(), "Telemetry dedup snapshot was unreadable; moved aside.");
        }
        info!(
            edges = report.edges,
            ranges = report.ranges,
            bad_lines = report.bad_log_lines,
            "Telemetry dedup record loaded."
        );
        let spool = if spool_max_bytes > 0 {
            let (spool, report) = Spool::open(&data_dir.join("spool"), spool_max_bytes)?;
            for (path, offset, reason) in &report.truncated {
                warn!(file = %path.display(), offset, %reason, "Spool segment cut at a bad record.");
            }
            for q in &report.quarantined {
                warn!(
                    file = %q.path.display(),
                    moved_to = %q.moved_to.display(),
                    reason = %q.reason,
                    "Spool file is not a spool segment of this version; moved aside."
                );
            }
            info!(
                records = report.depth.records,
                batches = report.depth.batches,
                bytes = report.depth.bytes,
                max_bytes = spool_max_bytes,
                "Disk spool open."
            );
            Some(spool)
        } else {
            None
        };
        Ok(Durable {
            dedup,
            spool,
            spool_after,
        })
    }
}
