//! A first-in first-out log of records in one directory of segments: append
//! at the back, read and consume at the front, roll segments at a size,
//! delete a segment once it is consumed. Ingest's spool is built on it.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

use super::{
    Fate, Quarantine, RecoverOptions, SegmentFormat, SegmentWriter, check_record, list_segments,
    record_len, recover_segment, remove_segment, segment_file_name,
};
use crate::{IoError, atomic::sync_dir};

/// Settings of a [`SegmentLog`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    /// Header of every segment.
    pub format: SegmentFormat,
    /// A segment holding records is rolled before it would exceed this.
    pub segment_bytes: u64,
    /// Largest body accepted and recovered.
    pub max_body_len: u64,
    /// fsync every append before it returns (and new segments with their
    /// directory entry); otherwise only [`SegmentLog::sync`] does.
    pub sync_each_append: bool,
    /// Keep cut-off corrupt bytes in `<name>.<offset>.corrupt`.
    pub save_corrupt_tails: bool,
}

/// Where a record is: segment id and byte offset. Positions order as the
/// records do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Segment id (its file name).
    pub segment: u64,
    /// Offset of the record in the segment.
    pub offset: u64,
}

/// What [`SegmentLog::open`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogRecovery {
    /// Records kept (not consumed).
    pub records: u64,
    /// Their on-disk bytes.
    pub bytes: u64,
    /// Tails cut: segment file, byte offset (the file now ends there), reason.
    pub truncated: Vec<(PathBuf, u64, String)>,
    /// Files with a bad header, moved aside.
    pub quarantined: Vec<Quarantine>,
    /// Segment files deleted because they held no record to keep.
    pub removed_segments: usize,
    /// Files in the directory that are not segments, left alone.
    pub ignored_files: Vec<PathBuf>,
}

/// A record taken off the front by [`SegmentLog::pop_front`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Popped<M> {
    /// Where it was.
    pub pos: Position,
    /// Its on-disk length.
    pub len: u64,
    /// What the caller attached to it.
    pub meta: M,
    /// Where the next record will be: the front record if any, else just
    /// after this one. A cursor saved there makes the next open skip what
    /// was consumed.
    pub next: Position,
}

/// Reading a record back failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The bytes are not the record that was written there.
    #[error("corrupt record in {path} at byte {offset}: {reason}")]
    Corrupt {
        /// The segment.
        path: PathBuf,
        /// Where the record starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// No record is at this position.
    #[error("no record at {0:?}")]
    NotFound(Position),
}

#[derive(Debug, Clone, Copy)]
struct Rec<M> {
    offset: u64,
    len: u64,
    meta: M,
}

#[derive(Debug)]
struct Segment<M> {
    id: u64,
    path: PathBuf,
    records: VecDeque<Rec<M>>,
}

/// The log. `M` is a small value the caller attaches to each record (from
/// the body on open, given on append), e.g. a count of what is inside.
/// Not thread-safe by itself; share it behind a mutex.
#[derive(Debug)]
pub struct SegmentLog<M> {
    dir: PathBuf,
    opts: LogOptions,
    segments: VecDeque<Segment<M>>,
    active: Option<(u64, SegmentWriter)>,
    next_id: u64,
    records: u64,
    bytes: u64,
}

impl<M: Copy> SegmentLog<M> {
    /// Opens (creating) the log in `dir` and recovers every segment (see
    /// [`crate::segment`]). Records before `consumed_below` were consumed
    /// earlier: they are checked but not kept, and segments left without a
    /// record are deleted. `visit(position, body)` makes each kept record's
    /// `M`; refusing one ends its segment there like a corrupt record.
    /// Appends after an open always go to a new segment.
    pub fn open(
        dir: &Path,
        opts: LogOptions,
        consumed_below: Option<Position>,
        mut visit: impl FnMut(Position, &[u8]) -> Result<M, String>,
    ) -> Result<(Self, LogRecovery), IoError> {
        std::fs::create_dir_all(dir).map_err(IoError::on("create directory", dir))?;
        let listing = list_segments(dir)?;
        let listed = listing.segments;
        let mut report = LogRecovery {
            ignored_files: listing.others,
            ..LogRecovery::default()
        };
        // New segments sort after every file there is and after the
        // consumed position: a segment id below the cursor would make its
        // records count as consumed at the next open.
        let next_id = listed
            .last()
            .map(|(id, _)| *id)
            .max(consumed_below.map(|c| c.segment))
            .map_or(1, |id| id.saturating_add(1));
        let ropts = RecoverOptions {
            max_body_len: opts.max_body_len,
            save_corrupt_tails: opts.save_corrupt_tails,
            sync: true,
        };
        let mut segments = VecDeque::new();
        for (id, path) in listed {
            let mut records = VecDeque::new();
            let rec = recover_segment(&path, opts.format, &ropts, |offset, body| {
                let pos = Position {
                    segment: id,
                    offset,
                };
                let meta = visit(pos, body)?;
                if consumed_below.is_none_or(|c| pos >= c) {
                    records.push_back(Rec {
                        offset,
                        len: record_len(body.len() as u64),
                        meta,
                    });
                }
                Ok(())
            })?;
            if let Some(cut) = rec.cut {
                report
                    .truncated
                    .push((path.clone(), cut.offset, cut.reason));
            }
            match rec.fate {
                Fate::Removed => {
                    report.removed_segments += 1;
                    continue;
                }
                Fate::Quarantined(q) => {
                    report.quarantined.push(q);
                    continue;
                }
                Fate::Kept => {}
            }
            if records.is_empty() {
                remove_segment(&path)?;
                report.removed_segments += 1;
                continue;
            }
            for r in &records {
                report.records += 1;
                report.bytes += r.len;
            }
            segments.push_back(Segment { id, path, records });
        }
        let log = SegmentLog {
            dir: dir.to_owned(),
            opts,
            segments,
            active: None,
            next_id,
            records: report.records,
            bytes: report.bytes,
        };
        Ok((log, report))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options in use.
    pub fn options(&self) -> &LogOptions {
        &self.opts
    }

    /// Records not consumed.
    pub fn len(&self) -> u64 {
        self.records
    }

    /// Whether every record is consumed.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// On-disk bytes of the records not consumed.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Ids of the segments holding records not consumed, oldest first.
    pub fn segment_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.segments.iter().map(|s| s.id)
    }

    /// Appends a record whose body is `head` then `tail`, attaching `meta`;
    /// with `sync_each_append` it is on stable storage when this returns.
    /// A failed append leaves no part of the record behind (as far as the
    /// file system allows) and the next append starts a new segment.
    pub fn append(&mut self, head: &[u8], tail: &[u8], meta: M) -> Result<Position, IoError> {
        let body_len = (head.len() + tail.len()) as u64;
        if body_len > self.opts.max_body_len {
            return Err(IoError::new(
                "append record to",
                &self.dir,
                std::io::Error::other(format!(
                    "body of {body_len} bytes exceeds the limit of {}",
                    self.opts.max_body_len
                )),
            ));
        }
        let need = record_len(body_len);
        let roll = match &self.active {
            None => true,
            Some((_, w)) => !w.is_empty() && w.len() + need > self.opts.segment_bytes,
        };
        if roll {
            self.roll()?;
        }
        let Some((id, w)) = self.active.as_mut() else {
            return Err(IoError::new(
                "append record to",
                &self.dir,
                std::io::Error::other("no open segment"),
            ));
        };
        let id = *id;
        let before = w.records();
        let offset = match w.append(head, tail) {
            Ok(o) => o,
            Err(e) => {
                self.active = None;
                return Err(e);
            }
        };
        if self.opts.sync_each_append
            && let Err(e) = w.sync()
        {
            // Not acknowledged to the caller: do not let it come back.
            let _ = w.cut_back(offset, before);
            self.active = None;
            return Err(e);
        }
        let rec = Rec {
            offset,
            len: need,
            meta,
        };
        match self.segments.back_mut() {
            Some(seg) if seg.id == id => seg.records.push_back(rec),
            _ => self.segments.push_back(Segment {
                id,
                path: self.dir.join(segment_file_name(id)),
                records: VecDeque::from([rec]),
            }),
        }
        self.records += 1;
        self.bytes += need;
        Ok(Position {
            segment: id,
            offset,
        })
    }

    /// Flushes appended records to stable storage.
    pub fn sync(&mut self) -> Result<(), IoError> {
        match &mut self.active {
            Some((_, w)) => w.sync(),
            None => Ok(()),
        }
    }

    /// Stops appending to the current segment; the next append starts a
    /// new one.
    pub fn seal(&mut self) -> Result<(), IoError> {
        let result = self.sync();
        if let Some((id, _)) = self.active.take()
            && !self.segments.iter().any(|s| s.id == id)
        {
            remove_segment(&self.dir.join(segment_file_name(id)))?;
        }
        result
    }

    fn roll(&mut self) -> Result<(), IoError> {
        let id = self.next_id;
        self.next_id = self.next_id.saturating_add(1);
        let path = self.dir.join(segment_file_name(id));
        let mut w = SegmentWriter::create(&path, self.opts.format)?;
        if self.opts.sync_each_append {
            w.sync()?;
            sync_dir(&self.dir)?;
        }
        // An earlier open segment with nothing left to consume is done.
        if let Some((old, _)) = self.active.take()
            && !self.segments.iter().any(|s| s.id == old)
        {
            let _ = remove_segment(&self.dir.join(segment_file_name(old)));
        }
        self.active = Some((id, w));
        Ok(())
    }

    /// The oldest record not consumed, with its length and meta.
    pub fn front(&self) -> Option<(Position, u64, M)> {
        let seg = self.segments.front()?;
        let r = seg.records.front()?;
        Some((
            Position {
                segment: seg.id,
                offset: r.offset,
            },
            r.len,
            r.meta,
        ))
    }

    /// Every record not consumed, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (Position, u64, M)> + '_ {
        self.segments.iter().flat_map(|s| {
            s.records.iter().map(move |r| {
                (
                    Position {
                        segment: s.id,
                        offset: r.offset,
                    },
                    r.len,
                    r.meta,
                )
            })
        })
    }

    /// Reads back and checks the record at `pos`; returns its body.
    pub fn read(&self, pos: Position) -> Result<Vec<u8>, ReadError> {
        let seg = self
            .segments
            .iter()
            .find(|s| s.id == pos.segment)
            .ok_or(ReadError::NotFound(pos))?;
        let idx = seg
            .records
            .binary_search_by_key(&pos.offset, |r| r.offset)
            .map_err(|_| ReadError::NotFound(pos))?;
        let len = seg.records[idx].len;
        let path = &seg.path;
        let mut f = File::open(path).map_err(IoError::on("open segment", path))?;
        f.seek(SeekFrom::Start(pos.offset))
            .map_err(IoError::on("seek segment", path))?;
        let n = usize::try_from(len).map_err(|_| ReadError::NotFound(pos))?;
        let mut buf = vec![0u8; n];
        f.read_exact(&mut buf)
            .map_err(IoError::on("read segment", path))?;
        let corrupt = |reason: String| ReadError::Corrupt {
            path: path.clone(),
            offset: pos.offset,
            reason,
        };
        check_record(&buf).map_err(corrupt)?;
        buf.drain(..super::PREFIX_LEN);
        Ok(buf)
    }

    /// Consumes the oldest record; deletes its segment when nothing else in
    /// it waits and it is not the one appended to. `None` when empty.
    pub fn pop_front(&mut self) -> Result<Option<Popped<M>>, IoError> {
        let active = self.active.as_ref().map(|(id, _)| *id);
        let Some(seg) = self.segments.front_mut() else {
            return Ok(None);
        };
        let Some(r) = seg.records.pop_front() else {
            return Ok(None);
        };
        self.records = self.records.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(r.len);
        let pos = Position {
            segment: seg.id,
            offset: r.offset,
        };
        let next = Position {
            segment: seg.id,
            offset: seg.records.front().map_or(r.offset + r.len, |n| n.offset),
        };
        if seg.records.is_empty() {
            let path = seg.path.clone();
            let id = seg.id;
            self.segments.pop_front();
            if active != Some(id) {
                remove_segment(&path)?;
            }
        }
        Ok(Some(Popped {
            pos,
            len: r.len,
            meta: r.meta,
            next,
        }))
    }

    /// Deletes the oldest segment with every record in it, consumed or not
    /// (room must be made); returns how many records went. The segment
    /// being appended to is sealed first.
    pub fn remove_oldest_segment(&mut self) -> Result<usize, IoError> {
        let Some(seg) = self.segments.front() else {
            return Ok(0);
        };
        if self.active.as_ref().is_some_and(|(id, _)| *id == seg.id) {
            self.active = None;
        }
        let Some(seg) = self.segments.pop_front() else {
            return Ok(0);
        };
        for r in &seg.records {
            self.records = self.records.saturating_sub(1);
            self.bytes = self.bytes.saturating_sub(r.len);
        }
        remove_segment(&seg.path)?;
        Ok(seg.records.len())
    }
}
