//! Appending to one segment file.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::{HEADER_LEN, SegmentFormat, frame_prefix};
use crate::IoError;

/// Bodies up to this size are copied behind the prefix and written with
/// one `write`; larger ones are written in two.
const SINGLE_WRITE_MAX: usize = 64 << 10;

/// The open segment of a log: appends records and syncs them.
///
/// After a failed append the file is cut back to the end of the last whole
/// record (if the cut fails, [`SegmentWriter::len`] is the file's actual
/// length) and the writer should not be used again: seal it and start a
/// new segment.
#[derive(Debug)]
pub struct SegmentWriter {
    path: PathBuf,
    file: File,
    len: u64,
    records: u32,
    dirty: bool,
    scratch: Vec<u8>,
}

impl SegmentWriter {
    /// Creates the segment file `path` (it must not exist) and writes its
    /// header. Nothing is synced: the first [`SegmentWriter::sync`] syncs the
    /// header with the records, and the caller syncs the directory.
    pub fn create(path: &Path, format: SegmentFormat) -> Result<SegmentWriter, IoError> {
        let mut file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(path)
            .map_err(IoError::on("create segment", path))?;
        if let Err(e) = file.write_all(&format.header()) {
            drop(file);
            let _ = std::fs::remove_file(path);
            return Err(IoError::new("write segment header", path, e));
        }
        Ok(SegmentWriter {
            path: path.to_owned(),
            file,
            len: HEADER_LEN,
            records: 0,
            dirty: true,
            scratch: Vec::new(),
        })
    }

    /// Appends one record whose body is `head` followed by `tail` (the
    /// split spares a copy of a large payload behind a small head) and
    /// returns its offset. Bodies must be at most `u32::MAX` bytes.
    pub fn append(&mut self, head: &[u8], tail: &[u8]) -> Result<u64, IoError> {
        let offset = self.len;
        let body_len = head.len() + tail.len();
        if u32::try_from(body_len).is_err() {
            return Err(IoError::new(
                "append record to",
                &self.path,
                std::io::Error::other(format!("body of {body_len} bytes exceeds u32")),
            ));
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(&frame_prefix(&[head, tail]));
        self.scratch.extend_from_slice(head);
        let written = if tail.len() <= SINGLE_WRITE_MAX {
            self.scratch.extend_from_slice(tail);
            self.file.write_all(&self.scratch)
        } else {
            self.file
                .write_all(&self.scratch)
                .and_then(|()| self.file.write_all(tail))
        };
        if self.scratch.capacity() > 2 * SINGLE_WRITE_MAX {
            self.scratch = Vec::new();
        }
        if let Err(e) = written {
            self.len = match self.file.set_len(offset) {
                Ok(()) => offset,
                Err(_) => self.file.metadata().map_or(offset, |m| m.len()),
            };
            return Err(IoError::new("write record", &self.path, e));
        }
        self.len += super::record_len(body_len as u64);
        self.records += 1;
        self.dirty = true;
        Ok(offset)
    }

    /// Flushes the appended records to stable storage (`fdatasync`), if
    /// anything was written since the last sync.
    pub fn sync(&mut self) -> Result<(), IoError> {
        if self.dirty {
            self.file
                .sync_data()
                .map_err(IoError::on("fsync segment", &self.path))?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Cuts the file back to `offset` (the start of a record this writer
    /// appended, e.g. one whose sync failed), forgetting the records from
    /// there on.
    pub fn cut_back(&mut self, offset: u64, records: u32) -> Result<(), IoError> {
        self.file
            .set_len(offset)
            .map_err(IoError::on("truncate segment", &self.path))?;
        self.len = offset;
        self.records = records;
        Ok(())
    }

    /// Whether records were appended since the last sync.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// The file length: header plus whole records.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no record was appended.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Records appended by this writer.
    pub fn records(&self) -> u32 {
        self.records
    }

    /// The segment file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
