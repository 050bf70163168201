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
//! [`Spool::segment_bytes`]), and `cursor`. The segments are the segment
//! log of `parkwatch_durable::segment`, the same format as the edge
//! outbox's with the spool's own magic. All integers little-endian:
//!
//! ```text
//! segment = "PWSPOOL" 0x00 (8 bytes) | version u32 (= 2) | reserved u32 record*
//! record  = crc u32 | len u32 | body (len bytes)
//! body    = count u32 | batch{count}
//! batch   = site_len u16 | site | edge_len u16 | edge | seq u64 |
//!           points u32 | lines_len u32 | lines (line protocol, ns)
//! crc     = CRC-32 (IEEE) over the len field and the body
//! cursor  = "<segment id> <offset of the next undrained record>\n"
//! ```
//!
//! The spool is transient: it holds only what waits for the database, and
//! its format may change between versions without a migration. Version 1
//! (an 8-byte header `"PWSPOOL" 0x01`, before the segment log was shared
//! with the outbox) is not read: such a segment is moved aside to
//! `<name>.corrupt` and reported at startup. Drain the spool (let the
//! database catch up) before upgrading across that change.
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
//! to a new segment, numbered above every segment and the cursor. Never
//! panics on file content.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use parkwatch_durable::IoError;
use parkwatch_durable::atomic::{self, Durability};
use parkwatch_durable::segment::{
    self, LogOptions, Position, Quarantine, ReadError, SegmentFormat, SegmentLog,
};

/// Header of every spool segment file.
const SPOOL_FORMAT: SegmentFormat = SegmentFormat {
    magic: *b"PWSPOOL\0",
    version: 2,
};
#[cfg(test)]
const HEADER: u64 = segment::HEADER_LEN;
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
pub type RecordPos = Position;

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

impl From<IoError> for SpoolError {
    fn from(e: IoError) -> Self {
        SpoolError::Io {
            path: e.path,
            op: e.op,
            source: e.source,
        }
    }
}

/// What [`Spool::open`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpoolReport {
    /// Undrained records and their size.
    pub depth: SpoolDepth,
    /// Segments cut short: (file, byte offset, reason).
    pub truncated: Vec<(PathBuf, u64, String)>,
    /// Files with a header that is not this spool's (an older spool
    /// format, or not a spool file), moved aside.
    pub quarantined: Vec<Quarantine>,
}

/// The spool. Not thread-safe by itself; share it behind a mutex.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    /// Batches of each undrained record are the log's per-record value.
    log: SegmentLog<u64>,
    depth: SpoolDepth,
}

impl Spool {
    /// Opens (creating) the spool in `dir` holding at most `max_bytes` of
    /// undrained records; recovers what is there.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<(Self, SpoolReport), SpoolError> {
        std::fs::create_dir_all(dir).map_err(IoError::on("create folder", dir))?;
        let cursor = read_cursor(dir).map(|(segment, offset)| Position { segment, offset });
        let opts = LogOptions {
            format: SPOOL_FORMAT,
            segment_bytes: (max_bytes / 16).clamp(64 * 1024, 64 * 1024 * 1024),
            max_body_len: MAX_RECORD_BYTES as u64,
            sync_each_append: true,
            save_corrupt_tails: false,
        };
        let (log, rec) = SegmentLog::open(dir, opts, cursor, |_, body| match body.get(..4) {
            Some(c) => Ok(u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
            None => Err("record too short".to_owned()),
        })?;
        let depth = SpoolDepth {
            records: log.len(),
            batches: log.iter().map(|(_, _, batches)| batches).sum(),
            bytes: log.bytes(),
        };
        let report = SpoolReport {
            depth,
            truncated: rec.truncated,
            quarantined: rec.quarantined,
        };
        Ok((
            Spool {
                dir: dir.to_owned(),
                max_bytes,
                log,
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
        self.log.options().segment_bytes
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.depth.records == 0
    }

    /// Appends `batches` as one record, durably (fsynced) before it returns.
    pub fn append(&mut self, batches: &[SpoolBatch]) -> Result<(), SpoolError> {
        let body = encode_body(batches)?;
        u32::try_from(body.len()).map_err(|_| SpoolError::TooLarge(body.len()))?;
        let need = segment::record_len(body.len() as u64);
        let free = self.max_bytes.saturating_sub(self.depth.bytes);
        if need > free {
            return Err(SpoolError::Full {
                need,
                free,
                max: self.max_bytes,
            });
        }
        let count = batches.len() as u64;
        self.log.append(&body, &[], count)?;
        self.depth.records += 1;
        self.depth.batches += count;
        self.depth.bytes += need;
        Ok(())
    }

    /// Reads the oldest undrained record, if any.
    pub fn peek(&self) -> Result<Option<SpoolRecord>, SpoolError> {
        let Some((pos, _, _)) = self.log.front() else {
            return Ok(None);
        };
        let corrupt = |reason: String| SpoolError::Corrupt {
            path: self.dir.join(segment::segment_file_name(pos.segment)),
            offset: pos.offset,
            reason,
        };
        let body = match self.log.read(pos) {
            Ok(b) => b,
            Err(ReadError::Io(e)) => return Err(e.into()),
            Err(ReadError::Corrupt {
                path,
                offset,
                reason,
            }) => {
                return Err(SpoolError::Corrupt {
                    path,
                    offset,
                    reason,
                });
            }
            Err(e @ ReadError::NotFound(_)) => return Err(corrupt(e.to_string())),
        };
        let batches = decode_body(&body).map_err(corrupt)?;
        Ok(Some(SpoolRecord { pos, batches }))
    }

    /// The position of the oldest undrained record, without reading it.
    pub fn head(&self) -> Option<RecordPos> {
        self.log.front().map(|(pos, _, _)| pos)
    }

    /// Marks the oldest record (at `pos`) drained; removes its segment when
    /// nothing else in it waits (and it is not being appended to).
    pub fn consume(&mut self, pos: RecordPos) -> Result<(), SpoolError> {
        if self.head() != Some(pos) {
            return Err(SpoolError::NotHead(pos));
        }
        let Some(done) = self.log.pop_front()? else {
            return Err(SpoolError::NotHead(pos));
        };
        self.depth.records = self.depth.records.saturating_sub(1);
        self.depth.batches = self.depth.batches.saturating_sub(done.meta);
        self.depth.bytes = self.depth.bytes.saturating_sub(done.len);
        self.write_cursor(done.next)
    }

    fn write_cursor(&self, next: Position) -> Result<(), SpoolError> {
        let path = self.dir.join(CURSOR);
        let text = format!("{} {}\n", next.segment, next.offset);
        // Through `cursor.tmp`; not fsynced (see the module documentation).
        atomic::replace(&path, text.as_bytes(), Durability::Unsynced)?;
        Ok(())
    }
}

#[cfg(test)]
fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(segment::segment_file_name(id))
}

fn read_cursor(dir: &Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(dir.join(CURSOR)).ok()?;
    let mut it = text.split_whitespace();
    let id = it.next()?.parse().ok()?;
    let off = it.next()?.parse().ok()?;
    Some((id, off))
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
        let header = HEADER as usize;
        let rec_len = (bytes.len() - header) / 3;
        // Flip a byte in the second record's body.
        bytes[header + rec_len + 20] ^= 0xff;
        std::fs::write(&seg, &bytes).unwrap();
        let (mut sp, report) = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(report.truncated.len(), 1, "{report:?}");
        assert_eq!(report.truncated[0].1, HEADER + rec_len as u64);
        assert_eq!(drain_all(&mut sp), vec![0]);

        // Garbage and a torn tail never panic.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(seg_path(dir.path(), 7), b"garbage").unwrap();
        let mut torn = SPOOL_FORMAT.header().to_vec();
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
    fn a_version_1_segment_is_moved_aside_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = b"PWSPOOL\x01".to_vec();
        old.extend_from_slice(&[0u8; 40]);
        std::fs::write(seg_path(dir.path(), 3), &old).unwrap();
        let (sp, report) = Spool::open(dir.path(), 1 << 20).unwrap();
        assert!(sp.is_empty());
        assert_eq!(report.quarantined.len(), 1, "{report:?}");
        assert!(report.quarantined[0].reason.contains("bad magic"));
        assert!(report.quarantined[0].moved_to.exists());
    }

    #[test]
    fn segments_made_after_a_full_drain_sort_after_the_cursor() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut sp, _) = Spool::open(dir.path(), 1 << 20).unwrap();
            for seq in 0..3 {
                sp.append(&[batch("e", seq, 100)]).unwrap();
            }
        }
        {
            // Drained after a restart: every segment file is gone, only
            // the cursor is left.
            let (mut sp, _) = Spool::open(dir.path(), 1 << 20).unwrap();
            assert_eq!(drain_all(&mut sp), vec![0, 1, 2]);
        }
        {
            let (mut sp, _) = Spool::open(dir.path(), 1 << 20).unwrap();
            sp.append(&[batch("e", 3, 100)]).unwrap();
        }
        let (mut sp, report) = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(report.depth.records, 1, "{report:?}");
        assert_eq!(drain_all(&mut sp), vec![3]);
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
