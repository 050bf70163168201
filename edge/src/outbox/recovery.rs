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

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::format::{
    BODY_FIXED_LEN, Prefix, RECORD_PREFIX_LEN, SEGMENT_HEADER_LEN, check_segment_header,
    decode_record,
};
use super::ledger;
use super::queue::{Entry, Queue, Segment, State, parse_segment_name, segment_file_name};
use super::{OutboxError, OutboxOptions, QueueId};

/// Sequence numbers jump by this much when the ledger is lost, to stay clear
/// of any number handed out before.
pub(crate) const LEDGER_LOSS_JUMP: u64 = 1 << 32;

/// Largest body any version of the options could have written.
const MAX_BODY_LEN: u64 = (256 << 20) + BODY_FIXED_LEN as u64 + u16::MAX as u64;

/// A whole file set aside during recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantine {
    /// Where the file was.
    pub path: PathBuf,
    /// Where it is now.
    pub moved_to: PathBuf,
    /// Why.
    pub reason: String,
}

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
        let mut names = Vec::new();
        let listing = fs::read_dir(&qdir).map_err(|e| OutboxError::io("list", &qdir, e))?;
        for item in listing {
            let item = item.map_err(|e| OutboxError::io("list", &qdir, e))?;
            let path = item.path();
            let name = item.file_name();
            match name.to_str().and_then(parse_segment_name) {
                Some(base) => names.push((base, path)),
                None => {
                    let corrupt = name.to_str().is_some_and(|n| n.ends_with(".corrupt"));
                    if !corrupt {
                        report.ignored_files.push(path);
                    }
                }
            }
        }
        names.sort();
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
    let mut moved = path.as_os_str().to_owned();
    moved.push(".corrupt");
    let moved = PathBuf::from(moved);
    match fs::rename(path, &moved) {
        Ok(()) => report.quarantined.push(Quarantine {
            path: path.to_owned(),
            moved_to: moved,
            reason,
        }),
        Err(e) => report.quarantined.push(Quarantine {
            path: path.to_owned(),
            moved_to: path.to_owned(),
            reason: format!("{reason}; could not move it aside ({e}), left in place and ignored"),
        }),
    }
}

/// Reads one segment; `None` when it holds no usable record (and was removed
/// or moved aside). Entries come back with `segment` unset.
fn scan_segment(
    path: &Path,
    queue: QueueId,
    opts: &OutboxOptions,
    prev_seq: Option<u64>,
    report: &mut RecoveryReport,
) -> Result<Option<(Segment, Vec<Entry>)>, OutboxError> {
    let file = File::open(path).map_err(|e| OutboxError::io("open segment", path, e))?;
    let file_len = file
        .metadata()
        .map_err(|e| OutboxError::io("stat segment", path, e))?
        .len();
    if file_len < SEGMENT_HEADER_LEN {
        drop(file);
        fs::remove_file(path).map_err(|e| OutboxError::io("delete segment", path, e))?;
        report.truncated.push((
            path.to_owned(),
            0,
            format!("segment header incomplete ({file_len} of 16 bytes); file removed"),
        ));
        report.empty_segments_removed += 1;
        return Ok(None);
    }
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
    reader
        .read_exact(&mut header)
        .map_err(|e| OutboxError::io("read segment", path, e))?;
    if let Err(reason) = check_segment_header(&header) {
        quarantine(path, reason, report);
        return Ok(None);
    }

    let mut entries = Vec::new();
    let mut offset = SEGMENT_HEADER_LEN;
    let mut last = prev_seq;
    let mut buf = Vec::new();
    // (reason, torn): torn means an incomplete last record, what an
    // interrupted write leaves.
    let bad: Option<(String, bool)> = loop {
        let left = file_len - offset;
        if left == 0 {
            break None;
        }
        if left < RECORD_PREFIX_LEN as u64 {
            break Some((format!("torn record: prefix has {left} of 8 bytes"), true));
        }
        let mut p = [0u8; RECORD_PREFIX_LEN];
        reader
            .read_exact(&mut p)
            .map_err(|e| OutboxError::io("read segment", path, e))?;
        let prefix = Prefix::parse(p);
        if u64::from(prefix.body_len) > MAX_BODY_LEN {
            break Some((
                format!(
                    "length field {} exceeds any possible record",
                    prefix.body_len
                ),
                false,
            ));
        }
        let rec_len = prefix.record_len();
        if rec_len > left {
            break Some((
                format!("torn record: needs {rec_len} bytes, {left} left in the file"),
                true,
            ));
        }
        // rec_len <= MAX_BODY_LEN + 8, well within usize.
        buf.resize(rec_len as usize, 0);
        buf[..RECORD_PREFIX_LEN].copy_from_slice(&p);
        reader
            .read_exact(&mut buf[RECORD_PREFIX_LEN..])
            .map_err(|e| OutboxError::io("read segment", path, e))?;
        let d = match decode_record(&buf) {
            Ok(d) => d,
            Err(reason) => break Some((reason, false)),
        };
        if d.class.queue() != queue {
            break Some((
                format!(
                    "{} record does not belong in the {} queue",
                    d.class,
                    queue.dir_name()
                ),
                false,
            ));
        }
        if let Some(prev) = last
            && d.seq <= prev
        {
            break Some((format!("seq {} does not follow seq {prev}", d.seq), false));
        }
        last = Some(d.seq);
        entries.push(Entry {
            seq: d.seq,
            appended_ms: d.appended_ms,
            segment: 0,
            offset,
            len: rec_len as u32,
            sends: 0,
            class: d.class,
            state: State::Unsent,
        });
        offset += rec_len;
    };
    drop(reader);

    if let Some((reason, torn)) = bad {
        let removed_bytes = file_len - offset;
        let saved_to = if torn || tail_is_zero(path, offset)? {
            None
        } else {
            Some(save_tail(path, offset)?)
        };
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| OutboxError::io("open segment for repair", path, e))?;
        f.set_len(offset)
            .map_err(|e| OutboxError::io("truncate segment", path, e))?;
        if opts.fsync.syncs() {
            f.sync_all()
                .map_err(|e| OutboxError::io("fsync segment", path, e))?;
        }
        let reason = match saved_to {
            Some(to) => format!(
                "{reason}; {removed_bytes} bytes cut off, saved to {}",
                to.display()
            ),
            None => format!("{reason}; {removed_bytes} bytes cut off"),
        };
        report.truncated.push((path.to_owned(), offset, reason));
    }
    if entries.is_empty() {
        fs::remove_file(path).map_err(|e| OutboxError::io("delete segment", path, e))?;
        report.empty_segments_removed += 1;
        return Ok(None);
    }
    let records = entries.len() as u32;
    Ok(Some((
        Segment {
            base_seq: 0,
            path: path.to_owned(),
            bytes: offset,
            records,
            live: 0,
            sealed: true,
            reader: None,
        },
        entries,
    )))
}

fn tail_is_zero(path: &Path, offset: u64) -> Result<bool, OutboxError> {
    let mut f = File::open(path).map_err(|e| OutboxError::io("open segment", path, e))?;
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| OutboxError::io("seek segment", path, e))?;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match f.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(OutboxError::io("read segment", path, e)),
        };
        if n == 0 {
            return Ok(true);
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
    }
}

fn save_tail(path: &Path, offset: u64) -> Result<PathBuf, OutboxError> {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{offset}.corrupt"));
    let to = PathBuf::from(name);
    let mut f = File::open(path).map_err(|e| OutboxError::io("open segment", path, e))?;
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| OutboxError::io("seek segment", path, e))?;
    let mut out = File::create(&to).map_err(|e| OutboxError::io("create", &to, e))?;
    io::copy(&mut f, &mut out).map_err(|e| OutboxError::io("copy corrupt tail to", &to, e))?;
    Ok(to)
}
