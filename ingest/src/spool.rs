//! The disk spool: telemetry that ingest accepted while the time-series
//! database was down, kept on disk until it can be written.
//!
//! # Design
//!
//! When a write has failed with a retryable error for longer than
//! `timeseries.spool_after_ms` (or the writer's queue is full while it
//! retries), the writer appends the whole group of batches, already encoded
//! as line protocol, to the spool as one record, fsyncs it, and only then
//! sends the batches' delivery acks: from the edge's point of view they are
//! stored. A drain task ([`crate::writer`]) writes the oldest record to the
//! database once it answers again and removes it; while the spool is not
//! empty, new groups go to the spool too, so records leave it in order.
//!
//! Bounded: the undrained records never exceed `timeseries.spool_max_bytes`.
//! An append that does not fit fails with [`SpoolError::Full`]; the writer
//! then keeps the group in memory and retries (no ack), its queue fills,
//! the consumer stops acknowledging MQTT messages and the edges' outboxes
//! hold the rest. Nothing is dropped for lack of room, and the full events
//! are counted (`parkwatch_ingest_spool_full_total`). On disk the spool may
//! use up to one segment more than the limit (the drained head of the
//! oldest segment, until that segment is done).
//!
//! # On disk
//!
//! Folder `data_dir/spool`, segment files `<id>.seg` (20 digits, rolled at
//! [`Spool::segment_bytes`]), and `cursor`. All integers little-endian:
//!
//! ```text
//! segment = "PWSPOOL" 0x01 (8 bytes) record*
//! record  = crc u32 | len u32 | body (len bytes)
//! body    = count u32 | batch{count}
//! batch   = site_len u16 | site | edge_len u16 | edge | seq u64 |
//!           points u32 | lines_len u32 | lines (line protocol, ns)
//! crc     = CRC-32 (IEEE) over the len field and the body
//! cursor  = "<segment id> <offset of the next undrained record>\n"
//! ```
//!
//! A record is appended with one `write(2)` and then `fdatasync`; a new
//! segment's folder entry is fsynced too. The cursor is replaced by a
//! rename after each drained record, without fsync: after `kill -9` it is
//! exact; after a power loss it may lag, and the records it lags by are
//! written to the database again (identical points: InfluxDB overwrites
//! them, VictoriaMetrics with `-dedup.minScrapeInterval` keeps one).
//!
//! Recovery ([`Spool::open`]) checks every record's length and CRC. A torn
//! or corrupt record ends its segment: the file is truncated there and the
//! cut is reported (a torn last record was never acknowledged to an edge,
//! because the fsync had not returned). Appends after a restart always go
//! to a new segment. Never panics on file content.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use bytes::Bytes;

const MAGIC: [u8; 8] = *b"PWSPOOL\x01";
const HEADER: u64 = MAGIC.len() as u64;
const CURSOR: &str = "cursor";
/// Largest record body accepted (a group of batches), in bytes.
pub const MAX_RECORD_BYTES: usize = 512 * 1024 * 1024;

/// One telemetry batch, encoded, as kept in the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolBatch {
    /// Site id.
    pub site: String,
    /// Edge id.
    pub edge: String,
    /// The edge's outbox sequence number of the batch.
    pub seq: u64,
    /// Points in `lines`.
    pub points: u32,
    /// The batch as line protocol (nanosecond timestamps).
    pub lines: Bytes,
}

/// Where a record sits, to consume it after [`Spool::peek`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordPos {
    segment: u64,
    offset: u64,
}

/// The oldest undrained record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolRecord {
    /// Its position, for [`Spool::consume`].
    pub pos: RecordPos,
    /// Its batches.
    pub batches: Vec<SpoolBatch>,
}

/// How much waits in the spool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolDepth {
    /// Records (groups of batches).
    pub records: u64,
    /// Telemetry batches.
    pub batches: u64,
    /// Bytes of undrained records.
    pub bytes: u64,
}

/// Why a spool operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// No room: `need` bytes, `free` left under `spool_max_bytes`.
    #[error("spool full: a record of {need} bytes does not fit ({free} of {max} bytes free)")]
    Full {
        /// The record's size.
        need: u64,
        /// Room left.
        free: u64,
        /// The limit.
        max: u64,
    },
    /// A file operation failed.
    #[error("spool {path}: {op}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// A record read back does not match its checksum or cannot be parsed.
    #[error("spool {path}: corrupt record at byte {offset}: {reason}")]
    Corrupt {
        /// The segment.
        path: PathBuf,
        /// Where the record starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// [`Spool::consume`] was given a position that is not the oldest record.
    #[error("spool: record {0:?} is not the oldest undrained record")]
    NotHead(RecordPos),
    /// A group too large for one record.
    #[error("spool: a record of {0} bytes exceeds the {MAX_RECORD_BYTES}-byte limit")]
    TooLarge(usize),
}

fn io<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> SpoolError + 'a {
    move |source| SpoolError::Io {
        path: path.to_owned(),
        op,
        source,
    }
}

/// What [`Spool::open`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpoolReport {
    /// Undrained records and their size.
    pub depth: SpoolDepth,
    /// Segments cut short: (file, byte offset, reason).
    pub truncated: Vec<(PathBuf, u64, String)>,
}

#[derive(Debug, Clone, Copy)]
struct RecMeta {
    offset: u64,
    /// Whole record: 8 bytes of crc and len, then the body.
    len: u64,
    batches: u64,
}

#[derive(Debug)]
struct Segment {
    id: u64,
    path: PathBuf,
    records: VecDeque<RecMeta>,
}

/// The spool. Not thread-safe by itself; share it behind a mutex.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    segments: VecDeque<Segment>,
    /// The segment being appended to: (id, file, its length).
    active: Option<(u64, File, u64)>,
    next_id: u64,
    depth: SpoolDepth,
}

impl Spool {
    /// Opens (creating) the spool in `dir` holding at most `max_bytes` of
    /// undrained records; recovers what is there.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<(Self, SpoolReport), SpoolError> {
        std::fs::create_dir_all(dir).map_err(io(dir, "create folder"))?;
        let cursor = read_cursor(dir);
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir, "list"))? {
            let entry = entry.map_err(io(dir, "list"))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(id) = name
                .strip_suffix(".seg")
                .filter(|s| s.len() == 20)
                .and_then(|s| s.parse::<u64>().ok())
            {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        let mut report = SpoolReport::default();
        let mut segments = VecDeque::new();
        let mut depth = SpoolDepth::default();
        let next_id = ids.last().map_or(1, |id| id.saturating_add(1));
        for id in ids {
            let path = seg_path(dir, id);
            let drained_below = match cursor {
                Some((cid, _)) if id < cid => u64::MAX,
                Some((cid, off)) if id == cid => off,
                _ => 0,
            };
            let (records, cut) = scan_segment(&path)?;
            if let Some((offset, reason)) = cut {
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io(&path, "open to truncate"))?;
                f.set_len(offset).map_err(io(&path, "truncate"))?;
                f.sync_all().map_err(io(&path, "fsync"))?;
                report.truncated.push((path.clone(), offset, reason));
            }
            let records: VecDeque<RecMeta> = records
                .into_iter()
                .filter(|r| r.offset >= drained_below)
                .collect();
            if records.is_empty() {
                std::fs::remove_file(&path).map_err(io(&path, "remove drained segment"))?;
                continue;
            }
            for r in &records {
                depth.records += 1;
                depth.batches += r.batches;
                depth.bytes += r.len;
            }
            segments.push_back(Segment { id, path, records });
        }
        report.depth = depth;
        let segment_bytes = (max_bytes / 16).clamp(64 * 1024, 64 * 1024 * 1024);
        Ok((
            Spool {
                dir: dir.to_owned(),
                max_bytes,
                segment_bytes,
                segments,
                active: None,
                next_id,
                depth,
            },
            report,
        ))
    }

    /// How much waits.
    pub fn depth(&self) -> SpoolDepth {
        self.depth
    }

    /// The size limit of undrained records.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Size at which a segment file is rolled.
    pub fn segment_bytes(&self) -> u64 {
        self.segment_bytes
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.depth.records == 0
    }

    /// Appends `batches` as one record, durably (fsynced) before it returns.
    pub fn append(&mut self, batches: &[SpoolBatch]) -> Result<(), SpoolError> {
        let body = encode_body(batches)?;
        let len = u32::try_from(body.len()).map_err(|_| SpoolError::TooLarge(body.len()))?;
        let need = 8 + body.len() as u64;
        let free = self.max_bytes.saturating_sub(self.depth.bytes);
        if need > free {
            return Err(SpoolError::Full {
                need,
                free,
                max: self.max_bytes,
            });
        }
        let mut rec = Vec::with_capacity(need as usize);
        let mut h = crc32fast::Hasher::new();
        h.update(&len.to_le_bytes());
        h.update(&body);
        rec.extend_from_slice(&h.finalize().to_le_bytes());
        rec.extend_from_slice(&len.to_le_bytes());
        rec.extend_from_slice(&body);

        let roll = match &self.active {
            None => true,
            Some((_, _, flen)) => *flen > HEADER && *flen + need > self.segment_bytes,
        };
        if roll {
            self.roll()?;
        }
        let Some((id, file, flen)) = self.active.as_mut() else {
            return Err(SpoolError::Io {
                path: self.dir.clone(),
                op: "open segment",
                source: std::io::Error::other("no active segment"),
            });
        };
        let path = seg_path(&self.dir, *id);
        let offset = *flen;
        let written = file.write_all(&rec).and_then(|()| file.sync_data());
        if let Err(e) = written {
            // Cut a partial record off and start a fresh segment next time.
            let _ = file.set_len(offset);
            self.active = None;
            return Err(io(&path, "append")(e));
        }
        *flen += need;
        let meta = RecMeta {
            offset,
            len: need,
            batches: batches.len() as u64,
        };
        match self.segments.back_mut() {
            Some(seg) if seg.id == *id => seg.records.push_back(meta),
            _ => self.segments.push_back(Segment {
                id: *id,
                path,
                records: VecDeque::from([meta]),
            }),
        }
        self.depth.records += 1;
        self.depth.batches += meta.batches;
        self.depth.bytes += need;
        Ok(())
    }

    fn roll(&mut self) -> Result<(), SpoolError> {
        let id = self.next_id;
        self.next_id = self.next_id.saturating_add(1);
        let path = seg_path(&self.dir, id);
        let mut f = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io(&path, "create segment"))?;
        f.write_all(&MAGIC).map_err(io(&path, "write header"))?;
        f.sync_all().map_err(io(&path, "fsync"))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir, "fsync folder"))?;
        // An earlier active segment with no undrained records is done.
        if let Some((old, _, _)) = self.active.take()
            && !self.segments.iter().any(|s| s.id == old)
        {
            let _ = std::fs::remove_file(seg_path(&self.dir, old));
        }
        self.active = Some((id, f, HEADER));
        Ok(())
    }

    /// Reads the oldest undrained record, if any.
    pub fn peek(&self) -> Result<Option<SpoolRecord>, SpoolError> {
        let Some(seg) = self.segments.front() else {
            return Ok(None);
        };
        let Some(meta) = seg.records.front() else {
            return Ok(None);
        };
        let mut f = File::open(&seg.path).map_err(io(&seg.path, "open"))?;
        f.seek(SeekFrom::Start(meta.offset))
            .map_err(io(&seg.path, "seek"))?;
        let mut buf = vec![0u8; meta.len as usize];
        f.read_exact(&mut buf).map_err(io(&seg.path, "read"))?;
        let corrupt = |reason: String| SpoolError::Corrupt {
            path: seg.path.clone(),
            offset: meta.offset,
            reason,
        };
        let (crc, rest) = buf.split_at(4);
        let mut h = crc32fast::Hasher::new();
        h.update(rest);
        if h.finalize().to_le_bytes() != crc {
            return Err(corrupt("checksum mismatch".to_owned()));
        }
        let batches = decode_body(&rest[4..]).map_err(corrupt)?;
        Ok(Some(SpoolRecord {
            pos: RecordPos {
                segment: seg.id,
                offset: meta.offset,
            },
            batches,
        }))
    }

    /// The position of the oldest undrained record, without reading it.
    pub fn head(&self) -> Option<RecordPos> {
        let seg = self.segments.front()?;
        let meta = seg.records.front()?;
        Some(RecordPos {
            segment: seg.id,
            offset: meta.offset,
        })
    }

    /// Marks the oldest record (at `pos`) drained; removes its segment when
    /// nothing else in it waits (and it is not being appended to).
    pub fn consume(&mut self, pos: RecordPos) -> Result<(), SpoolError> {
        if self.head() != Some(pos) {
            return Err(SpoolError::NotHead(pos));
        }
        let active = self.active.as_ref().map(|(id, _, _)| *id);
        let Some(seg) = self.segments.front_mut() else {
            return Err(SpoolError::NotHead(pos));
        };
        let Some(meta) = seg.records.pop_front() else {
            return Err(SpoolError::NotHead(pos));
        };
        self.depth.records = self.depth.records.saturating_sub(1);
        self.depth.batches = self.depth.batches.saturating_sub(meta.batches);
        self.depth.bytes = self.depth.bytes.saturating_sub(meta.len);
        let next = match seg.records.front() {
            Some(m) => (seg.id, m.offset),
            None => (seg.id, meta.offset + meta.len),
        };
        if seg.records.is_empty() {
            let path = seg.path.clone();
            let id = seg.id;
            self.segments.pop_front();
            if active != Some(id) {
                std::fs::remove_file(&path).map_err(io(&path, "remove drained segment"))?;
            }
        }
        self.write_cursor(next)
    }

    fn write_cursor(&self, (id, offset): (u64, u64)) -> Result<(), SpoolError> {
        let path = self.dir.join(CURSOR);
        let tmp = self.dir.join("cursor.tmp");
        std::fs::write(&tmp, format!("{id} {offset}\n")).map_err(io(&tmp, "write"))?;
        std::fs::rename(&tmp, &path).map_err(io(&path, "rename"))
    }
}

fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

fn read_cursor(dir: &Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(dir.join(CURSOR)).ok()?;
    let mut it = text.split_whitespace();
    let id = it.next()?.parse().ok()?;
    let off = it.next()?.parse().ok()?;
    Some((id, off))
}

/// Reads a segment's records; returns them and where (and why) it must be
/// cut, if a record is torn or corrupt.
#[allow(clippy::type_complexity)]
fn scan_segment(path: &Path) -> Result<(Vec<RecMeta>, Option<(u64, String)>), SpoolError> {
    let bytes = std::fs::read(path).map_err(io(path, "read"))?;
    if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
        return Ok((Vec::new(), Some((0, "bad segment header".to_owned()))));
    }
    let mut out = Vec::new();
    let mut at = MAGIC.len();
    while at < bytes.len() {
        let Some(head) = bytes.get(at..at + 8) else {
            return Ok((out, Some((at as u64, "torn record header".to_owned()))));
        };
        let crc = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let Some(body) = bytes.get(at + 8..at + 8 + len) else {
            return Ok((out, Some((at as u64, "torn record".to_owned()))));
        };
        let mut h = crc32fast::Hasher::new();
        h.update(&head[4..8]);
        h.update(body);
        if h.finalize() != crc {
            return Ok((out, Some((at as u64, "checksum mismatch".to_owned()))));
        }
        let count = match body.get(..4) {
            Some(c) => u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
            None => return Ok((out, Some((at as u64, "record too short".to_owned())))),
        };
        out.push(RecMeta {
            offset: at as u64,
            len: 8 + len as u64,
            batches: u64::from(count),
        });
        at += 8 + len;
    }
    Ok((out, None))
}

fn encode_body(batches: &[SpoolBatch]) -> Result<Vec<u8>, SpoolError> {
    let size: usize = 4 + batches
        .iter()
        .map(|b| 2 + b.site.len() + 2 + b.edge.len() + 8 + 4 + 4 + b.lines.len())
        .sum::<usize>();
    if size > MAX_RECORD_BYTES {
        return Err(SpoolError::TooLarge(size));
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(batches.len() as u32).to_le_bytes());
    for b in batches {
        for s in [&b.site, &b.edge] {
            let n = u16::try_from(s.len()).map_err(|_| SpoolError::TooLarge(s.len()))?;
            out.extend_from_slice(&n.to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        out.extend_from_slice(&b.seq.to_le_bytes());
        out.extend_from_slice(&b.points.to_le_bytes());
        out.extend_from_slice(&(b.lines.len() as u32).to_le_bytes());
        out.extend_from_slice(&b.lines);
    }
    Ok(out)
}

/// A cursor over a record body that fails instead of panicking.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!("{} bytes left, {n} needed", self.0.len()));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn string(&mut self) -> Result<String, String> {
        let n = self.u16()? as usize;
        std::str::from_utf8(self.take(n)?)
            .map(str::to_owned)
            .map_err(|e| format!("id is not UTF-8: {e}"))
    }
}

fn decode_body(body: &[u8]) -> Result<Vec<SpoolBatch>, String> {
    let mut r = Reader(body);
    let count = r.u32()? as usize;
    let mut out = Vec::with_capacity(count.min(body.len() / 20 + 1));
    for _ in 0..count {
        let site = r.string()?;
        let edge = r.string()?;
        let seq = r.u64()?;
        let points = r.u32()?;
        let n = r.u32()? as usize;
        let lines = Bytes::copy_from_slice(r.take(n)?);
        out.push(SpoolBatch {
            site,
            edge,
            seq,
            points,
            lines,
        });
    }
    if !r.0.is_empty() {
        return Err(format!("{} bytes after the last batch", r.0.len()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(edge: &str, seq: u64, size: usize) -> SpoolBatch {
        SpoolBatch {
            site: "etdz".into(),
            edge: edge.into(),
            seq,
            points: 1,
            lines: Bytes::from(vec![b'x'; size]),
        }
    }

    fn drain_all(sp: &mut Spool) -> Vec<u64> {
        let mut seqs = Vec::new();
        while let Some(rec) = sp.peek().unwrap() {
            seqs.extend(rec.batches.iter().map(|b| b.seq));
            sp.consume(rec.pos).unwrap();
        }
        seqs
    }

    #[test]
    fn records_come_back_in_order_and_segments_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut sp, report) = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(report, SpoolReport::default());
        assert_eq!(sp.segment_bytes(), 64 * 1024);
        for seq in 0..40 {
            sp.append(&[batch("e1", seq * 2, 3000), batch("e2", seq * 2 + 1, 10)])
                .unwrap();
        }
        let d = sp.depth();
        assert_eq!((d.records, d.batches), (40, 80));
        let segs = std::fs::read_dir(dir.path()).unwrap().count();
        assert!(segs >= 2, "rolled into several segments ({segs} files)");
        let first = sp.peek().unwrap().unwrap();
        assert_eq!(first.batches[0], batch("e1", 0, 3000));
        assert_eq!(drain_all(&mut sp), (0..80).collect::<Vec<_>>());
        assert_eq!(sp.depth(), SpoolDepth::default());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
            .collect();
        assert!(left.len() <= 1, "only the active segment may remain");
    }

    #[test]
    fn full_spool_refuses_and_frees_room_as_it_drains() {
        let dir = tempfile::tempdir().unwrap();
        let (mut sp, _) = Spool::open(dir.path(), 10_000).unwrap();
        sp.append(&[batch("e", 1, 6000)]).unwrap();
        match sp.append(&[batch("e", 2, 6000)]) {
            Err(SpoolError::Full { max, .. }) => assert_eq!(max, 10_000),
            other => panic!("expected Full, got {other:?}"),
        }
        let rec = sp.peek().unwrap().unwrap();
        sp.consume(rec.pos).unwrap();
        sp.append(&[batch("e", 2, 6000)]).unwrap();
        assert_eq!(drain_all(&mut sp), vec![2]);
    }

    #[test]
    fn reopen_resumes_after_the_cursor() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut sp, _) = Spool::open(dir.path(), 1 << 20).unwrap();
            for seq in 0..5 {
                sp.append(&[batch("e", seq, 100)]).unwrap();
            }
            for _ in 0..2 {
                let rec = sp.peek().unwrap().unwrap();
                sp.consume(rec.pos).unwrap();
            }
            // Dropped as by kill -9.
        }
        let (mut sp, report) = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(report.depth.records, 3);
        sp.append(&[batch("e", 5, 100)]).unwrap();
        assert_eq!(drain_all(&mut sp), vec![2, 3, 4, 5]);
        let (sp, report) = Spool::open(dir.path(), 1 << 20).unwrap();
        assert!(sp.is_empty(), "{report:?}");
    }

    #[test]
    fn torn_and_corrupt_records_are_cut_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut sp, _) = Spool::open(dir.path(), 1 << 20).unwrap();
            for seq in 0..3 {
                sp.append(&[batch("e", seq, 100)]).unwrap();
            }
        }
        let seg = seg_path(dir.path(), 1);
        let mut bytes = std::fs::read(&seg).unwrap();
        let rec_len = (bytes.len() - 8) / 3;
        // Flip a byte in the second record's body.
        bytes[8 + rec_len + 20] ^= 0xff;
        std::fs::write(&seg, &bytes).unwrap();
        let (mut sp, report) = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(report.truncated.len(), 1, "{report:?}");
        assert_eq!(report.truncated[0].1, 8 + rec_len as u64);
        assert_eq!(drain_all(&mut sp), vec![0]);

        // Garbage and a torn tail never panic.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(seg_path(dir.path(), 7), b"garbage").unwrap();
        let mut torn = MAGIC.to_vec();
        torn.extend_from_slice(&[1, 2, 3, 4, 200, 0, 0, 0, 9]);
        std::fs::write(seg_path(dir.path(), 8), &torn).unwrap();
        let (mut sp, report) = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(report.truncated.len(), 2);
        assert!(sp.is_empty());
        sp.append(&[batch("e", 1, 10)]).unwrap();
        assert_eq!(
            sp.head().map(|p| p.segment),
            Some(9),
            "appends go to a new segment"
        );
    }

    #[test]
    fn consume_must_name_the_head() {
        let dir = tempfile::tempdir().unwrap();
        let (mut sp, _) = Spool::open(dir.path(), 1 << 20).unwrap();
        sp.append(&[batch("e", 1, 10)]).unwrap();
        let pos = sp.head().unwrap();
        sp.consume(pos).unwrap();
        assert!(matches!(sp.consume(pos), Err(SpoolError::NotHead(_))));
    }

    #[test]
    fn body_decoder_refuses_garbage() {
        assert!(decode_body(&[]).is_err());
        assert!(decode_body(&[1, 0, 0, 0, 5, 0]).is_err());
        let body = encode_body(&[batch("e", 1, 3)]).unwrap();
        assert_eq!(decode_body(&body).unwrap(), vec![batch("e", 1, 3)]);
        let mut extra = body.clone();
        extra.push(0);
        assert!(decode_body(&extra).is_err());
    }
}
