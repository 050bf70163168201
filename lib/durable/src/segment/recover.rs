//! Recovery of one segment file: validate every record, cut a torn or
//! corrupt tail, set aside what is not a segment, say what was done.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::{HEADER_LEN, PREFIX_LEN, Prefix, SegmentFormat, check_record};
use crate::IoError;

/// How [`recover_segment`] treats a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoverOptions {
    /// Largest body any writer of this log could have written; a length
    /// field above it is corruption, not a torn record.
    pub max_body_len: u64,
    /// Keep cut-off bytes that are neither a torn last record nor zeros in
    /// `<name>.<offset>.corrupt`.
    pub save_corrupt_tails: bool,
    /// fsync a truncated file.
    pub sync: bool,
}

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

/// A tail cut off a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// Byte offset of the first bad record: the file now ends there (0 for
    /// a file removed because its header was incomplete).
    pub offset: u64,
    /// What was wrong and what was done, naming the `.corrupt` file the
    /// cut-off bytes were saved to, if any.
    pub reason: String,
    /// Where the cut-off bytes were saved.
    pub saved_to: Option<PathBuf>,
    /// The tail was an incomplete last record (what an interrupted write
    /// leaves), not damaged data.
    pub torn: bool,
}

/// What became of a segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// It holds records and stays, possibly cut.
    Kept,
    /// It held no record (or only an incomplete header) and was deleted.
    Removed,
    /// Its header is not this log's: moved aside (or left, if that failed)
    /// and skipped.
    Quarantined(Quarantine),
}

/// What [`recover_segment`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRecovery {
    /// The file.
    pub path: PathBuf,
    /// Kept, removed or set aside.
    pub fate: Fate,
    /// The tail cut off, if any.
    pub cut: Option<Cut>,
    /// File length after recovery (header plus the records kept).
    pub len: u64,
    /// Records kept.
    pub records: u32,
}

/// What [`scan_reader`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// Fewer bytes than a header.
    ShortHeader,
    /// The header is not this log's; the reason.
    BadHeader(String),
    /// The header is good; records were read.
    Records {
        /// Offset just after the last good record.
        end: u64,
        /// Good records.
        records: u32,
        /// Why reading stopped before the end of the file, and whether the
        /// bad record was torn (ran past the end of the file).
        bad: Option<(String, bool)>,
    },
}

/// Reads a segment of `file_len` bytes from `reader`: checks the header and
/// calls `visit(offset, body)` for each good record, in order. Stops at the
/// first torn or corrupt record, or the first one `visit` refuses. Never
/// panics on the content; allocates at most `max_body_len` for a body.
pub fn scan_reader<R: Read>(
    mut reader: R,
    file_len: u64,
    format: SegmentFormat,
    max_body_len: u64,
    mut visit: impl FnMut(u64, &[u8]) -> Result<(), String>,
) -> io::Result<Scan> {
    if file_len < HEADER_LEN {
        return Ok(Scan::ShortHeader);
    }
    let mut header = [0u8; HEADER_LEN as usize];
    reader.read_exact(&mut header)?;
    if let Err(reason) = format.check_header(&header) {
        return Ok(Scan::BadHeader(reason));
    }
    let mut offset = HEADER_LEN;
    let mut records = 0u32;
    let mut buf = Vec::new();
    let bad = loop {
        let left = file_len - offset;
        if left == 0 {
            break None;
        }
        if left < PREFIX_LEN as u64 {
            break Some((format!("torn record: prefix has {left} of 8 bytes"), true));
        }
        let mut p = [0u8; PREFIX_LEN];
        reader.read_exact(&mut p)?;
        let prefix = Prefix::parse(p);
        if u64::from(prefix.body_len) > max_body_len {
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
        // rec_len <= left, and the caller's max_body_len bounds it.
        let Ok(n) = usize::try_from(rec_len) else {
            break Some((format!("record of {rec_len} bytes"), false));
        };
        buf.resize(n, 0);
        buf[..PREFIX_LEN].copy_from_slice(&p);
        reader.read_exact(&mut buf[PREFIX_LEN..])?;
        let body = match check_record(&buf) {
            Ok(b) => b,
            Err(reason) => break Some((reason, false)),
        };
        if let Err(reason) = visit(offset, body) {
            break Some((reason, false));
        }
        records = records.saturating_add(1);
        offset += rec_len;
    };
    Ok(Scan::Records {
        end: offset,
        records,
        bad,
    })
}

/// Recovers one segment file (see the module documentation of
/// [`crate::segment`] for the rules): `visit(offset, body)` sees each good
/// record in order and may refuse one, which ends the segment there like a
/// corrupt record. Errors are file system failures only.
pub fn recover_segment(
    path: &Path,
    format: SegmentFormat,
    opts: &RecoverOptions,
    visit: impl FnMut(u64, &[u8]) -> Result<(), String>,
) -> Result<SegmentRecovery, IoError> {
    let file = File::open(path).map_err(IoError::on("open segment", path))?;
    let file_len = file
        .metadata()
        .map_err(IoError::on("stat segment", path))?
        .len();
    let reader = BufReader::with_capacity(1 << 20, file);
    let scan = scan_reader(reader, file_len, format, opts.max_body_len, visit)
        .map_err(IoError::on("read segment", path))?;
    let mut out = SegmentRecovery {
        path: path.to_owned(),
        fate: Fate::Kept,
        cut: None,
        len: file_len,
        records: 0,
    };
    let (end, records, bad) = match scan {
        Scan::ShortHeader => {
            fs::remove_file(path).map_err(IoError::on("delete segment", path))?;
            out.fate = Fate::Removed;
            out.len = 0;
            out.cut = Some(Cut {
                offset: 0,
                reason: format!(
                    "segment header incomplete ({file_len} of {HEADER_LEN} bytes); file removed"
                ),
                saved_to: None,
                torn: true,
            });
            return Ok(out);
        }
        Scan::BadHeader(reason) => {
            out.fate = Fate::Quarantined(quarantine(path, reason));
            return Ok(out);
        }
        Scan::Records { end, records, bad } => (end, records, bad),
    };
    if let Some((reason, torn)) = bad {
        let removed_bytes = file_len - end;
        let saved_to = if torn || !opts.save_corrupt_tails || tail_is_zero(path, end)? {
            None
        } else {
            Some(save_tail(path, end)?)
        };
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(IoError::on("open segment for repair", path))?;
        f.set_len(end)
            .map_err(IoError::on("truncate segment", path))?;
        if opts.sync {
            f.sync_all().map_err(IoError::on("fsync segment", path))?;
        }
        let reason = match &saved_to {
            Some(to) => format!(
                "{reason}; {removed_bytes} bytes cut off, saved to {}",
                to.display()
            ),
            None => format!("{reason}; {removed_bytes} bytes cut off"),
        };
        out.cut = Some(Cut {
            offset: end,
            reason,
            saved_to,
            torn,
        });
    }
    out.len = end;
    out.records = records;
    if records == 0 {
        fs::remove_file(path).map_err(IoError::on("delete segment", path))?;
        out.fate = Fate::Removed;
    }
    Ok(out)
}

/// Moves a file aside to `<name>.corrupt`. If that fails the file is left
/// in place and the reason says so; either way the caller skips it.
pub fn quarantine(path: &Path, reason: String) -> Quarantine {
    let mut moved = path.as_os_str().to_owned();
    moved.push(".corrupt");
    let moved = PathBuf::from(moved);
    match fs::rename(path, &moved) {
        Ok(()) => Quarantine {
            path: path.to_owned(),
            moved_to: moved,
            reason,
        },
        Err(e) => Quarantine {
            path: path.to_owned(),
            moved_to: path.to_owned(),
            reason: format!("{reason}; could not move it aside ({e}), left in place and ignored"),
        },
    }
}

fn tail_is_zero(path: &Path, offset: u64) -> Result<bool, IoError> {
    let mut f = File::open(path).map_err(IoError::on("open segment", path))?;
    f.seek(SeekFrom::Start(offset))
        .map_err(IoError::on("seek segment", path))?;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match f.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(IoError::new("read segment", path, e)),
        };
        if n == 0 {
            return Ok(true);
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
    }
}

fn save_tail(path: &Path, offset: u64) -> Result<PathBuf, IoError> {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{offset}.corrupt"));
    let to = PathBuf::from(name);
    let mut f = File::open(path).map_err(IoError::on("open segment", path))?;
    f.seek(SeekFrom::Start(offset))
        .map_err(IoError::on("seek segment", path))?;
    let mut out = File::create(&to).map_err(IoError::on("create", &to))?;
    io::copy(&mut f, &mut out).map_err(IoError::on("copy corrupt tail to", &to))?;
    Ok(to)
}
