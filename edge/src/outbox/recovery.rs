//! Opening an outbox directory: scan and validate every segment, repair what
//! a crash or a bad disk left, apply the ledger, and say what was done.
//!
//! Rules (the same for every segment, since after a restart all of them are
//! sealed and appends go to a fresh one):
//! - a file shorter than the 16-byte header holds no record: deleted;
//! - a bad header (magic, version): the whole file is renamed to
//!   `<name>.corrupt` and skipped;
//! - records are read in order; the first one that is torn (runs past the end
//!   of the file), fails its checksum, has an impossible field, or does not
//!   have a higher seq than the one before, ends the segment: the file is
//!   truncated at that record's offset. The cut-off bytes are kept in
//!   `<name>.<offset>.corrupt` unless they are just a torn last record or
//!   zeros (what a crash leaves), so nothing is destroyed silently. Records
//!   after a corrupt one in the same segment are not sent: resynchronising
//!   inside damaged data could deliver garbage that happens to look valid;
//!   the next segment is read as usual;
//! - a segment whose records do not continue the seq order of the previous
//!   one is renamed to `.corrupt` (only manual tampering does this).

use std::fs;
use std::path::{Path, PathBuf};

pub use parkwatch_durable::segment::Quarantine;
use parkwatch_durable::segment::{self, Fate, RecoverOptions, recover_segment};

use super::format::{BODY_FIXED_LEN, OUTBOX_FORMAT, RECORD_PREFIX_LEN, decode_body};
use super::ledger;
use super::queue::{Entry, Queue, Segment, State, segment_file_name};
use super::{OutboxError, OutboxOptions, QueueId};

/// Sequence numbers jump by this much when the ledger is lost, to stay clear
/// of any number handed out before.
pub(crate) const LEDGER_LOSS_JUMP: u64 = 1 << 32;

/// Largest body any version of the options could have written.
const MAX_BODY_LEN: u64 = (256 << 20) + BODY_FIXED_LEN as u64 + u16::MAX as u64;

/// What [`super::Outbox::open`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Intact records not yet acknowledged, ready to send.
    pub recovered_records: u64,
    /// Their on-disk bytes.
    pub recovered_bytes: u64,
    /// Intact records that the ledger says were acknowledged.
    pub acked_records: u64,
    /// Segment files kept.
    pub segments: usize,
    /// Segment files deleted because all their records were acknowledged.
    pub reclaimed_segments: usize,
    /// Segment files deleted because they held no record.
    pub empty_segments_removed: usize,
    /// Torn or corrupt tails cut off: segment file, byte offset of the first
    /// bad record (the file now ends there), and the reason (which also
    /// names the `.corrupt` file the cut-off bytes were saved to, if any).
    pub truncated: Vec<(PathBuf, u64, String)>,
    /// Files that are not outbox segments or do not fit, moved aside.
    pub quarantined: Vec<Quarantine>,
    /// Unknown files found in queue directories and left alone.
    pub ignored_files: Vec<PathBuf>,
    /// Why the ledger could not be used, when it could not.
    pub ledger_problem: Option<String>,
    /// The next sequence number to be handed out.
    pub next_seq: u64,
}

impl RecoveryReport {
    /// True when nothing had to be repaired or set aside.
    pub fn is_clean(&self) -> bool {
        self.truncated.is_empty() && self.quarantined.is_empty() && self.ledger_problem.is_none()
    }
}

/// The state rebuilt from disk.
pub(crate) struct Recovered {
    pub queues: [Queue; 3],
    pub next_seq: u64,
    pub report: RecoveryReport,
}

pub(crate) fn recover(dir: &Path, opts: &OutboxOptions) -> Result<Recovered, OutboxError> {
    fs::create_dir_all(dir).map_err(|e| OutboxError::io("create directory", dir, e))?;
    let mut report = RecoveryReport::default();
    let ledger = match ledger::load(dir) {
        Ok(l) => l,
        Err(reason) => {
            let path = dir.join(ledger::LEDGER_FILE);
            let moved = dir.join(format!("{}.corrupt", ledger::LEDGER_FILE));
            if fs::rename(&path, &moved).is_ok() {
                report.quarantined.push(Quarantine {
                    path,
                    moved_to: moved,
                    reason: reason.clone(),
                });
            }
            report.ledger_problem = Some(reason);
            None
        }
    };

    let mut max_seen: Option<u64> = None;
    let mut found_segments = false;
    let mut queues = QueueId::ALL.map(|id| Queue::new(id, dir.join(id.dir_name())));
    for queue in &mut queues {
        let qdir = queue.dir.clone();
        fs::create_dir_all(&qdir).map_err(|e| OutboxError::io("create directory", &qdir, e))?;
        let listing = segment::list_segments(&qdir)?;
        let names = listing.segments;
        report.ignored_files.extend(listing.others);
        found_segments |= !names.is_empty();
        let qledger = ledger.as_ref().map(|l| l.queue(queue.id.index()));
        let mut last_seq: Option<u64> = None;
        for (_, path) in names {
            let Some((mut seg, entries)) =
                scan_segment(&path, queue.id, opts, last_seq, &mut report)?
            else {
                continue;
            };
            let Some(first) = entries.first() else {
                continue;
            };
            if let Some(prev) = last_seq
                && first.seq <= prev
            {
                let reason = format!(
                    "first seq {} does not follow the previous segment's last seq {prev}",
                    first.seq
                );
                quarantine(&path, reason, &mut report);
                continue;
            }
            // The key of a segment is its first seq; make the name agree.
            let canonical = queue.dir.join(segment_file_name(first.seq));
            if canonical != path {
                if canonical.exists() {
                    quarantine(
                        &path,
                        "segment name does not match its first record".into(),
                        &mut report,
                    );
                    continue;
                }
                fs::rename(&path, &canonical)
                    .map_err(|e| OutboxError::io("rename segment to", &canonical, e))?;
                seg.path = canonical;
            }
            seg.base_seq = first.seq;
            let mut live = 0u32;
            for mut e in entries {
                e.segment = seg.base_seq;
                if qledger.is_some_and(|l| l.is_acked(e.seq)) {
                    e.state = State::Acked;
                    report.acked_records += 1;
                    queue.acked_inside.insert(e.seq);
                } else {
                    live += 1;
                    report.recovered_records += 1;
                    report.recovered_bytes += u64::from(e.len);
                }
                last_seq = Some(e.seq);
                queue.entries.push_back(e);
            }
            max_seen = max_seen.max(last_seq);
            seg.live = live;
            queue.disk_bytes += seg.bytes;
            queue.segments.push_back(seg);
        }
        queue.pop_acked_front();
        let (reclaimed, result) = queue.reclaim();
        result?;
        report.reclaimed_segments += reclaimed;
        report.segments += queue.segments.len();
    }

    let after_seen = max_seen.map_or(1, |s| s.saturating_add(1));
    let next_seq = match &ledger {
        Some(l) => l.seq_ceiling.max(after_seen),
        None if report.ledger_problem.is_none() && !found_segments => 1,
        None => {
            let jump = after_seen.saturating_add(LEDGER_LOSS_JUMP);
            let problem = report
                .ledger_problem
                .take()
                .unwrap_or_else(|| "ledger.json is missing but segments exist".to_owned());
            report.ledger_problem = Some(format!(
                "{problem}; sequence numbers continue at {jump} to stay clear of any handed out before"
            ));
            jump
        }
    };
    report.next_seq = next_seq;
    Ok(Recovered {
        queues,
        next_seq,
        report,
    })
}

fn quarantine(path: &Path, reason: String, report: &mut RecoveryReport) {
    report.quarantined.push(segment::quarantine(path, reason));
}

/// Reads one segment; `None` when it holds no usable record (and was removed
/// or moved aside). Entries come back with `segment` unset. The segment log's
/// recovery checks the framing and cuts a bad tail; this adds the outbox's
/// own rules: a record must belong in this queue and follow the seq before.
fn scan_segment(
    path: &Path,
    queue: QueueId,
    opts: &OutboxOptions,
    prev_seq: Option<u64>,
    report: &mut RecoveryReport,
) -> Result<Option<(Segment, Vec<Entry>)>, OutboxError> {
    let mut entries = Vec::new();
    let mut last = prev_seq;
    let ropts = RecoverOptions {
        max_body_len: MAX_BODY_LEN,
        save_corrupt_tails: true,
        sync: opts.fsync.syncs(),
    };
    let rec = recover_segment(path, OUTBOX_FORMAT, &ropts, |offset, body| {
        let d = decode_body(body)?;
        if d.class.queue() != queue {
            return Err(format!(
                "{} record does not belong in the {} queue",
                d.class,
                queue.dir_name()
            ));
        }
        if let Some(prev) = last
            && d.seq <= prev
        {
            return Err(format!("seq {} does not follow seq {prev}", d.seq));
        }
        last = Some(d.seq);
        entries.push(Entry {
            seq: d.seq,
            appended_ms: d.appended_ms,
            segment: 0,
            offset,
            // Bodies are at most MAX_BODY_LEN, well within u32.
            len: (RECORD_PREFIX_LEN + body.len()) as u32,
            sends: 0,
            class: d.class,
            state: State::Unsent,
        });
        Ok(())
    })?;
    if let Some(cut) = rec.cut {
        report
            .truncated
            .push((path.to_owned(), cut.offset, cut.reason));
    }
    match rec.fate {
        Fate::Kept => {}
        Fate::Removed => {
            report.empty_segments_removed += 1;
            return Ok(None);
        }
        Fate::Quarantined(q) => {
            report.quarantined.push(q);
            return Ok(None);
        }
    }
    let records = entries.len() as u32;
    Ok(Some((
        Segment {
            base_seq: 0,
            path: path.to_owned(),
            bytes: rec.len,
            records,
            live: 0,
            sealed: true,
            reader: None,
        },
        entries,
    )))
}
