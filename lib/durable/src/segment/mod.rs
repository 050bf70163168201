//! The CRC-framed segment log: append-only files of length-prefixed,
//! checksummed records, and their recovery after a crash or a bad disk.
//!
//! # Format (all integers little-endian)
//!
//! ```text
//! segment = header record*
//! header  = magic (8 bytes) | version u32 | reserved u32 (= 0)
//! record  = crc u32 | len u32 | body (len bytes)
//! crc     = CRC-32 (IEEE) of the len field and the body
//! ```
//!
//! The magic names the kind of log (`PWOUTBOX` for the edge outbox,
//! `PWSPOOL2` for ingest's spool) and the version its body layout, so a
//! file of one kind is never read as another ([`SegmentFormat`]). The body
//! is the user's: this module never looks inside it. Segment files are
//! named `<20-digit id>.seg` ([`segment_file_name`]); the id is the user's
//! key (the outbox uses the first record's sequence number, the spool a
//! counter).
//!
//! # Guarantees
//!
//! - An append is one `write(2)` of the whole record (two for bodies over
//!   64 KiB); a failed write cuts the file back to where the record started
//!   ([`SegmentWriter::append`]). A record is durable against power loss
//!   once [`SegmentWriter::sync`] returned after it.
//! - Recovery ([`recover_segment`]) reads records in order and stops at the
//!   first one that is torn (runs past the end of the file), fails its
//!   checksum, has an impossible length, or that the caller's check refuses.
//!   The file is truncated there and the cut is reported with the file and
//!   the byte offset. Records after a bad one are not used: resynchronising
//!   inside damaged data could deliver garbage that happens to look valid.
//!   Cut-off bytes that are neither a torn last record nor zeros (what a
//!   crash leaves) can be kept in `<name>.<offset>.corrupt`, so nothing is
//!   destroyed silently.
//! - A file shorter than the header holds no record and is deleted; a file
//!   with a bad header is renamed to `<name>.corrupt` and skipped; a file
//!   left without a record is deleted.
//! - Nothing here panics on file content (fuzzed: `lib/durable/fuzz`).
//!
//! [`SegmentLog`] puts the pieces together for a first-in first-out log in
//! one directory (ingest's spool). The edge outbox keeps its own index of
//! records over several directories and uses the pieces directly.

mod log;
mod recover;
mod writer;

pub use log::{LogOptions, LogRecovery, Popped, Position, ReadError, SegmentLog};
pub use recover::{
    Cut, Fate, Quarantine, RecoverOptions, Scan, SegmentRecovery, quarantine, recover_segment,
    scan_reader,
};
pub use writer::SegmentWriter;

use std::path::{Path, PathBuf};

use crate::IoError;

/// Size of the segment header.
pub const HEADER_LEN: u64 = 16;
/// crc and len in front of each body.
pub const PREFIX_LEN: usize = 8;

/// What a segment's header says: the kind of log and its body version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentFormat {
    /// First eight bytes of every segment file.
    pub magic: [u8; 8],
    /// Version of the body layout, written after the magic.
    pub version: u32,
}

impl SegmentFormat {
    /// The 16-byte header of a new segment.
    pub fn header(&self) -> [u8; HEADER_LEN as usize] {
        let mut h = [0u8; HEADER_LEN as usize];
        h[..8].copy_from_slice(&self.magic);
        h[8..12].copy_from_slice(&self.version.to_le_bytes());
        h
    }

    /// Checks a segment header; the error says what is wrong.
    pub fn check_header(&self, h: &[u8]) -> Result<(), String> {
        if h.len() < HEADER_LEN as usize {
            return Err(format!("segment header has {} of 16 bytes", h.len()));
        }
        if h[..8] != self.magic {
            return Err(format!(
                "not a {} segment (bad magic)",
                String::from_utf8_lossy(&self.magic).trim_end_matches('\0')
            ));
        }
        let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
        if version != self.version {
            return Err(format!("unsupported segment format version {version}"));
        }
        Ok(())
    }
}

/// Total on-disk size of a record with a body of `body_len` bytes.
pub fn record_len(body_len: u64) -> u64 {
    PREFIX_LEN as u64 + body_len
}

/// The 8-byte prefix (crc, len) of a record whose body is the concatenation
/// of `parts`. Bodies are at most `u32::MAX` bytes; callers check that.
pub fn frame_prefix(parts: &[&[u8]]) -> [u8; PREFIX_LEN] {
    let body_len: usize = parts.iter().map(|p| p.len()).sum();
    let len = u32::try_from(body_len).unwrap_or(u32::MAX).to_le_bytes();
    let mut h = crc32fast::Hasher::new();
    h.update(&len);
    for p in parts {
        h.update(p);
    }
    let mut out = [0u8; PREFIX_LEN];
    out[..4].copy_from_slice(&h.finalize().to_le_bytes());
    out[4..].copy_from_slice(&len);
    out
}

/// The crc and body length read from the 8 bytes in front of a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    /// Stored checksum.
    pub crc: u32,
    /// Body length.
    pub body_len: u32,
}

impl Prefix {
    /// Reads a prefix.
    pub fn parse(b: [u8; PREFIX_LEN]) -> Prefix {
        Prefix {
            crc: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            body_len: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    /// Whole record size, prefix included.
    pub fn record_len(self) -> u64 {
        record_len(u64::from(self.body_len))
    }
}

/// Checks one whole record (prefix included; `rec` must be exactly the
/// record's bytes) and returns its body.
pub fn check_record(rec: &[u8]) -> Result<&[u8], String> {
    let Some((prefix, body)) = rec.split_first_chunk::<PREFIX_LEN>() else {
        return Err(format!("record prefix has {} of 8 bytes", rec.len()));
    };
    let prefix = Prefix::parse(*prefix);
    if u64::from(prefix.body_len) != body.len() as u64 {
        return Err(format!(
            "record length field says {} bytes, {} present",
            prefix.body_len,
            body.len()
        ));
    }
    let mut h = crc32fast::Hasher::new();
    h.update(&rec[4..]);
    let crc = h.finalize();
    if crc != prefix.crc {
        return Err(format!(
            "checksum mismatch (stored {:08x}, computed {crc:08x})",
            prefix.crc
        ));
    }
    Ok(body)
}

/// File name of segment `id`.
pub fn segment_file_name(id: u64) -> String {
    format!("{id:020}.seg")
}

/// The id encoded in a segment file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The files of a segment directory, from [`list_segments`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Segment files, sorted by id.
    pub segments: Vec<(u64, PathBuf)>,
    /// Other files (set-aside `.corrupt` files not included: they are
    /// expected).
    pub others: Vec<PathBuf>,
}

/// The segment files in `dir`, sorted by id, and the other files.
pub fn list_segments(dir: &Path) -> Result<Listing, IoError> {
    let mut segments = Vec::new();
    let mut others = Vec::new();
    for item in std::fs::read_dir(dir).map_err(IoError::on("list", dir))? {
        let item = item.map_err(IoError::on("list", dir))?;
        let path = item.path();
        let name = item.file_name();
        match name.to_str().and_then(parse_segment_name) {
            Some(id) => segments.push((id, path)),
            None => {
                if !name.to_str().is_some_and(|n| n.ends_with(".corrupt")) {
                    others.push(path);
                }
            }
        }
    }
    segments.sort();
    Ok(Listing { segments, others })
}

/// Deletes a segment file; one already gone counts as deleted.
pub fn remove_segment(path: &Path) -> Result<(), IoError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(IoError::new("delete segment", path, e)),
    }
}

#[cfg(test)]
mod tests;
