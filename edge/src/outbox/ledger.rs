//! The ledger: the small JSON file that says where to resume.
//!
//! It holds the sequence ceiling (no sequence number at or above it has been
//! handed out) and, per queue, which stored records are already acknowledged:
//! everything below `acked_below`, plus out-of-order acknowledged runs above
//! it. It is replaced atomically: write `ledger.json.tmp`, fsync it, rename
//! over `ledger.json`, fsync the directory. A reader therefore sees the old
//! or the new ledger, never a mix.

use std::fs;
use std::io;
use std::path::Path;

use parkwatch_durable::atomic::{self, Durability};

use serde::{Deserialize, Serialize};

use super::OutboxError;

/// File name of the ledger inside the outbox directory.
pub(crate) const LEDGER_FILE: &str = "ledger.json";
#[cfg(test)]
const LEDGER_TMP: &str = "ledger.json.tmp";
const LEDGER_VERSION: u32 = 1;
/// Out-of-order runs kept per queue. More are rare (ingest acknowledges in
/// ranges); the ones left out are only sent again after a crash.
pub(crate) const MAX_RUNS: usize = 10_000;

/// Acknowledgement state of one queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueueLedger {
    /// Every record of this queue with a smaller seq is acknowledged (or was
    /// dropped).
    pub acked_below: u64,
    /// Inclusive seq runs above `acked_below` whose records in this queue are
    /// all acknowledged, ascending.
    #[serde(default)]
    pub acked_runs: Vec<(u64, u64)>,
}

impl QueueLedger {
    /// Whether the record `seq` of this queue is acknowledged.
    pub(crate) fn is_acked(&self, seq: u64) -> bool {
        if seq < self.acked_below {
            return true;
        }
        let i = self.acked_runs.partition_point(|&(lo, _)| lo <= seq);
        i > 0 && self.acked_runs[i - 1].1 >= seq
    }

    fn normalize(&mut self) {
        self.acked_runs.retain(|&(lo, hi)| lo <= hi);
        self.acked_runs.sort_unstable();
    }
}

/// The whole ledger file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Ledger {
    pub version: u32,
    /// Lowest sequence number not yet reserved: nothing at or above it was
    /// ever handed out.
    pub seq_ceiling: u64,
    pub urgent: QueueLedger,
    pub snapshots: QueueLedger,
    pub telemetry: QueueLedger,
}

impl Ledger {
    pub(crate) fn new(seq_ceiling: u64, queues: [QueueLedger; 3]) -> Ledger {
        let [urgent, snapshots, telemetry] = queues;
        Ledger {
            version: LEDGER_VERSION,
            seq_ceiling,
            urgent,
            snapshots,
            telemetry,
        }
    }

    pub(crate) fn queue(&self, index: usize) -> &QueueLedger {
        match index {
            0 => &self.urgent,
            1 => &self.snapshots,
            _ => &self.telemetry,
        }
    }
}

/// Reads the ledger. `Ok(None)` when there is none; `Err(reason)` when it
/// exists but cannot be used (the caller reports it and carries on).
pub(crate) fn load(dir: &Path) -> Result<Option<Ledger>, String> {
    let path = dir.join(LEDGER_FILE);
    let text = match fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let mut ledger: Ledger = serde_json::from_slice(&text)
        .map_err(|e| format!("cannot parse {}: {e}", path.display()))?;
    if ledger.version != LEDGER_VERSION {
        return Err(format!(
            "{}: unsupported ledger version {}",
            path.display(),
            ledger.version
        ));
    }
    ledger.urgent.normalize();
    ledger.snapshots.normalize();
    ledger.telemetry.normalize();
    Ok(Some(ledger))
}

/// Replaces the ledger atomically; with `sync` the new content is on stable
/// storage when this returns.
pub(crate) fn store(dir: &Path, ledger: &Ledger, sync: bool) -> Result<(), OutboxError> {
    let path = dir.join(LEDGER_FILE);
    let text = serde_json::to_vec(ledger)
        .map_err(|e| OutboxError::io("encode ledger", &path, io::Error::other(e.to_string())))?;
    let durability = if sync {
        Durability::Synced
    } else {
        Durability::Unsynced
    };
    // Through `ledger.json.tmp`.
    atomic::replace(&path, &text, durability)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_then_load() {
        let dir = tempfile::tempdir().unwrap();
        let q = QueueLedger {
            acked_below: 10,
            acked_runs: vec![(12, 14), (20, 20)],
        };
        let l = Ledger::new(
            65_536,
            [q.clone(), QueueLedger::default(), QueueLedger::default()],
        );
        store(dir.path(), &l, true).unwrap();
        let back = load(dir.path()).unwrap().unwrap();
        assert_eq!(back, l);
        let u = back.queue(0);
        assert!(u.is_acked(9) && u.is_acked(12) && u.is_acked(14) && u.is_acked(20));
        assert!(!u.is_acked(10) && !u.is_acked(11) && !u.is_acked(15) && !u.is_acked(21));
        assert!(!dir.path().join(LEDGER_TMP).exists());
    }

    #[test]
    fn missing_is_none_and_garbage_is_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()), Ok(None));
        fs::write(dir.path().join(LEDGER_FILE), b"{\"version\":1,").unwrap();
        let err = load(dir.path()).unwrap_err();
        assert!(err.contains("ledger.json"), "{err}");
    }
}
