//! Typed errors of the outbox, each carrying the file, class or option a
//! person needs to act on it.

use std::io;
use std::path::PathBuf;

use super::RecordClass;

/// Everything that can go wrong in the outbox.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// A file system operation failed.
    #[error("outbox: {op} {path}: {source}")]
    Io {
        /// What the outbox was doing ("create segment", "write record", ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// The outbox has no room for a record of this class. For telemetry this
    /// means the priority classes hold the whole budget; for alarms, status and
    /// snapshots it means the priority hard limit (`alarm_hard_limit_bytes`,
    /// a little less for snapshots) is reached. The record was not stored; its
    /// sequence number is not reused.
    #[error(
        "outbox full for {class} records: {needed} bytes needed, {used} of {limit} bytes in use"
    )]
    Full {
        /// The class of the refused record.
        class: RecordClass,
        /// On-disk size of the refused record.
        needed: u64,
        /// Bytes counted against `limit` when the record was refused.
        used: u64,
        /// The limit that was hit.
        limit: u64,
    },

    /// The payload is larger than `OutboxOptions::max_record_bytes`.
    #[error("outbox: {class} record on topic {topic:?} has {size} payload bytes, limit is {max}")]
    RecordTooLarge {
        /// RecordClass of the refused record.
        class: RecordClass,
        /// Topic suffix of the refused record.
        topic: String,
        /// Payload size.
        size: u64,
        /// `max_record_bytes`.
        max: u64,
    },

    /// The topic suffix cannot be used as (part of) an MQTT topic name.
    #[error("outbox: invalid topic suffix {topic:?}: {reason}")]
    InvalidTopic {
        /// The offending topic suffix.
        topic: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// The options do not make sense; every problem is listed.
    #[error("outbox: invalid options: {}", problems.join("; "))]
    InvalidOptions {
        /// One line per problem, naming the field.
        problems: Vec<String>,
    },

    /// A stored record failed its checks when it was read back for sending
    /// (the disk changed under the outbox after it was opened). The record
    /// is given up and counted in `OutboxStats::lost_records`.
    #[error("outbox: corrupt record seq {seq} in {path} at byte {offset}: {reason}")]
    Corrupt {
        /// Sequence number the index expected there.
        seq: u64,
        /// Segment file.
        path: PathBuf,
        /// Byte offset of the record in the segment.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
}

impl OutboxError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

impl From<parkwatch_durable::IoError> for OutboxError {
    fn from(e: parkwatch_durable::IoError) -> Self {
        Self::Io {
            op: e.op,
            path: e.path,
            source: e.source,
        }
    }
}
