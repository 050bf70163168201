//! One on-disk queue: its segment files, the in-memory index of the records
//! in them, and the send cursor.
//!
//! Invariants kept by every method here and in `mod.rs`:
//! - `entries` is sorted by seq and its front is never `Acked` (acknowledged
//!   records are popped from the front, and marked in place elsewhere);
//! - `acked_inside` holds exactly the seqs of `Acked` entries in `entries`;
//! - every entry at or after `cursor` is `Unsent` or `Acked` (never sent
//!   since the last reconnect); `retry` holds seqs below the cursor that
//!   became unsent again;
//! - `segments` is sorted by `base_seq`; only the last one may be unsealed,
//!   and it is unsealed exactly when `writer` is `Some`;
//! - `live` of a segment counts its entries that are not `Acked`.

use std::collections::{BTreeSet, VecDeque};
use std::fs::File;
use std::path::PathBuf;

pub(crate) use parkwatch_durable::segment::segment_file_name;
use parkwatch_durable::segment::{SegmentWriter, remove_segment};

use super::format::{OUTBOX_FORMAT, SEGMENT_HEADER_LEN};
use super::ledger::{MAX_RUNS, QueueLedger};
use super::{OutboxError, QueueId, RecordClass};

/// One segment file.
#[derive(Debug)]
pub(crate) struct Segment {
    /// Seq of its first record; the key of the segment.
    pub base_seq: u64,
    pub path: PathBuf,
    /// File length.
    pub bytes: u64,
    pub records: u32,
    /// Records not yet acknowledged.
    pub live: u32,
    /// No more appends; deleted once `live` is 0.
    pub sealed: bool,
    /// Opened on first read.
    pub reader: Option<File>,
}

/// Delivery state of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Unsent,
    InFlight,
    Acked,
}

/// Index entry of one stored record (about 48 bytes).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub seq: u64,
    pub appended_ms: u64,
    /// `base_seq` of the segment holding it.
    pub segment: u64,
    /// Byte offset in the segment.
    pub offset: u64,
    /// On-disk record length.
    pub len: u32,
    /// Times handed out by `next_unsent`.
    pub sends: u32,
    pub class: RecordClass,
    pub state: State,
}

#[derive(Debug)]
pub(crate) struct Queue {
    pub id: QueueId,
    pub dir: PathBuf,
    pub segments: VecDeque<Segment>,
    /// The open, unsealed segment (the last one), appended to.
    pub writer: Option<SegmentWriter>,
    /// A segment was created since the directory was last synced.
    pub dir_dirty: bool,
    pub entries: VecDeque<Entry>,
    pub cursor: usize,
    pub retry: BTreeSet<u64>,
    pub acked_inside: BTreeSet<u64>,
    /// Sum of the segment file lengths.
    pub disk_bytes: u64,
}

impl Queue {
    pub(crate) fn new(id: QueueId, dir: PathBuf) -> Queue {
        Queue {
            id,
            dir,
            segments: VecDeque::new(),
            writer: None,
            dir_dirty: false,
            entries: VecDeque::new(),
            cursor: 0,
            retry: BTreeSet::new(),
            acked_inside: BTreeSet::new(),
            disk_bytes: 0,
        }
    }

    /// Index of the entry with `seq`.
    pub(crate) fn find(&self, seq: u64) -> Option<usize> {
        self.entries.binary_search_by_key(&seq, |e| e.seq).ok()
    }

    /// Index of the segment whose key is `base_seq`.
    pub(crate) fn segment_index(&self, base_seq: u64) -> Option<usize> {
        self.segments
            .binary_search_by_key(&base_seq, |s| s.base_seq)
            .ok()
    }

    /// Pops acknowledged entries off the front.
    pub(crate) fn pop_acked_front(&mut self) {
        while let Some(e) = self.entries.front() {
            if e.state != State::Acked {
                break;
            }
            self.acked_inside.remove(&e.seq);
            self.entries.pop_front();
            self.cursor = self.cursor.saturating_sub(1);
        }
    }

    /// The lowest-seq unsent entry, moving the cursor past it.
    pub(crate) fn pick(&mut self) -> Option<usize> {
        while let Some(seq) = self.retry.pop_first() {
            if let Some(i) = self.find(seq)
                && self.entries[i].state == State::Unsent
            {
                return Some(i);
            }
        }
        while self.cursor < self.entries.len() {
            let i = self.cursor;
            self.cursor += 1;
            if self.entries[i].state == State::Unsent {
                return Some(i);
            }
        }
        None
    }

    /// Whether a record of `rec_len` bytes needs a new segment.
    pub(crate) fn needs_new_segment(&self, rec_len: u64, segment_bytes: u64) -> bool {
        match (&self.writer, self.segments.back()) {
            (Some(_), Some(seg)) => seg.records > 0 && seg.bytes + rec_len > segment_bytes,
            _ => true,
        }
    }

    /// Bytes a record of `rec_len` adds to the disk, header of a new segment
    /// included.
    pub(crate) fn bytes_needed(&self, rec_len: u64, segment_bytes: u64) -> u64 {
        if self.needs_new_segment(rec_len, segment_bytes) {
            rec_len + SEGMENT_HEADER_LEN
        } else {
            rec_len
        }
    }

    /// Stops appending to the current segment, syncing it first when `sync`.
    pub(crate) fn seal(&mut self, sync: bool) -> Result<(), OutboxError> {
        let Some(mut w) = self.writer.take() else {
            return Ok(());
        };
        let Some(seg) = self.segments.back_mut() else {
            return Ok(());
        };
        seg.sealed = true;
        if sync {
            w.sync()?;
        }
        Ok(())
    }

    /// Creates a new segment whose first record will be `seq` and makes it the
    /// one appended to.
    pub(crate) fn create_segment(&mut self, seq: u64) -> Result<(), OutboxError> {
        let path = self.dir.join(segment_file_name(seq));
        let writer = SegmentWriter::create(&path, OUTBOX_FORMAT)?;
        self.segments.push_back(Segment {
            base_seq: seq,
            path,
            bytes: SEGMENT_HEADER_LEN,
            records: 0,
            live: 0,
            sealed: false,
            reader: None,
        });
        self.disk_bytes += SEGMENT_HEADER_LEN;
        self.writer = Some(writer);
        self.dir_dirty = true;
        Ok(())
    }

    /// Deletes every sealed segment with no live record. Returns how many
    /// were deleted and the first error (the failed ones stay listed and are
    /// tried again next time).
    pub(crate) fn reclaim(&mut self) -> (usize, Result<(), OutboxError>) {
        let mut result = Ok(());
        let mut deleted = 0;
        let mut i = 0;
        while i < self.segments.len() {
            let seg = &self.segments[i];
            if !(seg.sealed && seg.live == 0) {
                i += 1;
                continue;
            }
            if let Err(e) = remove_segment(&seg.path) {
                if result.is_ok() {
                    result = Err(e.into());
                }
                i += 1;
                continue;
            }
            self.disk_bytes = self.disk_bytes.saturating_sub(seg.bytes);
            self.segments.remove(i);
            deleted += 1;
        }
        (deleted, result)
    }

    /// What the ledger needs to know about this queue.
    pub(crate) fn ledger_state(&self, next_seq: u64) -> QueueLedger {
        let acked_below = self.entries.front().map_or(next_seq, |e| e.seq);
        let mut runs: Vec<(u64, u64)> = Vec::new();
        let mut last_pos = usize::MAX;
        for &seq in &self.acked_inside {
            let Some(pos) = self.find(seq) else { continue };
            match runs.last_mut() {
                Some(run) if last_pos.checked_add(1) == Some(pos) => run.1 = seq,
                _ => {
                    if runs.len() == MAX_RUNS {
                        break;
                    }
                    runs.push((seq, seq));
                }
            }
            last_pos = pos;
        }
        QueueLedger {
            acked_below,
            acked_runs: runs,
        }
    }
}
