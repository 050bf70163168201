//! Record classes, the queues they live in, and the outbox options with
//! their defaults and validation.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::OutboxError;

/// What kind of record this is. The class decides the queue a record waits
/// in (and so its sending priority) and what happens when the disk budget is
/// exhausted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordClass {
    /// An alarm event (`new` / `update` / `end`). Small, never dropped.
    Alarm,
    /// JPEG evidence for an alarm. Large, never dropped by the outbox, refused
    /// a little before alarms when the priority budget runs out.
    Snapshot,
    /// Edge status. Small, never dropped.
    Status,
    /// A telemetry batch. The oldest telemetry is dropped (and counted) when
    /// the outbox needs room.
    Telemetry,
}

impl RecordClass {
    /// Every class, in the order of `OutboxStats::classes`.
    pub const ALL: [RecordClass; 4] = [
        RecordClass::Alarm,
        RecordClass::Snapshot,
        RecordClass::Status,
        RecordClass::Telemetry,
    ];

    /// Lower-case name, as used in logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordClass::Alarm => "alarm",
            RecordClass::Snapshot => "snapshot",
            RecordClass::Status => "status",
            RecordClass::Telemetry => "telemetry",
        }
    }

    /// Position in [`RecordClass::ALL`].
    pub fn index(self) -> usize {
        match self {
            RecordClass::Alarm => 0,
            RecordClass::Snapshot => 1,
            RecordClass::Status => 2,
            RecordClass::Telemetry => 3,
        }
    }

    /// The byte stored on disk for this class.
    pub(crate) fn code(self) -> u8 {
        match self {
            RecordClass::Alarm => 1,
            RecordClass::Snapshot => 2,
            RecordClass::Status => 3,
            RecordClass::Telemetry => 4,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<RecordClass> {
        match code {
            1 => Some(RecordClass::Alarm),
            2 => Some(RecordClass::Snapshot),
            3 => Some(RecordClass::Status),
            4 => Some(RecordClass::Telemetry),
            _ => None,
        }
    }

    pub(crate) fn queue(self) -> QueueId {
        match self {
            RecordClass::Alarm | RecordClass::Status => QueueId::Urgent,
            RecordClass::Snapshot => QueueId::Snapshots,
            RecordClass::Telemetry => QueueId::Telemetry,
        }
    }
}

impl fmt::Display for RecordClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The three on-disk queues, in sending priority order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueueId {
    /// Alarms and status: small and urgent.
    Urgent,
    /// Snapshots: large, after alarms so a burst of JPEGs never delays an alarm.
    Snapshots,
    /// Telemetry: bulk, sent when nothing else waits, dropped first.
    Telemetry,
}

impl QueueId {
    /// Sending priority order.
    pub(crate) const ALL: [QueueId; 3] = [QueueId::Urgent, QueueId::Snapshots, QueueId::Telemetry];

    pub(crate) fn index(self) -> usize {
        match self {
            QueueId::Urgent => 0,
            QueueId::Snapshots => 1,
            QueueId::Telemetry => 2,
        }
    }

    /// Directory name under the outbox directory.
    pub(crate) fn dir_name(self) -> &'static str {
        match self {
            QueueId::Urgent => "urgent",
            QueueId::Snapshots => "snapshots",
            QueueId::Telemetry => "telemetry",
        }
    }

    /// Whether `class` may be stored in this queue.
    pub(crate) fn holds(self, class: RecordClass) -> bool {
        class.queue() == self
    }
}

/// When appended records are forced to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `fdatasync` after every append (and the directory after a new
    /// segment). A returned sequence number survives power loss. Slowest.
    Always,
    /// `fdatasync` when `interval` has passed or `bytes` were written since
    /// the last one (checked on append and on [`super::Outbox::sync_if_due`]),
    /// and every ledger write is synced. Survives `kill -9` completely (the
    /// page cache outlives the process); a power loss can lose the last
    /// interval.
    Batch {
        /// Longest time data may stay unsynced while appends or
        /// `sync_if_due` calls keep coming.
        interval: Duration,
        /// Unsynced bytes that force a sync before the interval is up.
        bytes: u64,
    },
    /// Never sync; the kernel writes back when it likes (about 30 s on
    /// Linux). Survives `kill -9`, not power loss.
    Never,
}

impl FsyncPolicy {
    /// Default batch interval: 200 ms.
    pub const DEFAULT_BATCH_INTERVAL: Duration = Duration::from_millis(200);
    /// Default batch size: 4 MiB.
    pub const DEFAULT_BATCH_BYTES: u64 = 4 << 20;

    /// Whether the ledger and sealed segments are synced.
    pub(crate) fn syncs(self) -> bool {
        !matches!(self, FsyncPolicy::Never)
    }
}

impl Default for FsyncPolicy {
    fn default() -> Self {
        FsyncPolicy::Batch {
            interval: Self::DEFAULT_BATCH_INTERVAL,
            bytes: Self::DEFAULT_BATCH_BYTES,
        }
    }
}

/// How an [`super::Outbox`] behaves. Build with `OutboxOptions::default()`
/// and change fields; [`super::Outbox::open`] validates them and lists every
/// problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxOptions {
    /// A queue starts a new segment file when the next record would make the
    /// current one larger than this. Default 8 MiB; 4 KiB ..= 1 GiB; capped
    /// at `max_bytes / 8` so that dropping the oldest telemetry segment frees
    /// at most an eighth of the budget.
    pub segment_bytes: u64,
    /// Total disk budget of all segment files. Telemetry is dropped, oldest
    /// segment first, to stay under it. Default 1 GiB; at least 64 KiB.
    pub max_bytes: u64,
    /// Disk budget of the priority queues (alarms, status, snapshots).
    /// `None` (the default) means `max_bytes`: priority records may take the
    /// whole budget once telemetry is gone. Snapshots are refused when 1/32
    /// of this is still free, so that alarm events keep fitting after
    /// snapshots stop. Must be at most `max_bytes`.
    pub alarm_hard_limit_bytes: Option<u64>,
    /// Largest payload accepted. Default 16 MiB; at most 256 MiB.
    pub max_record_bytes: u64,
    /// When data is synced to disk. Default `Batch` every 200 ms / 4 MiB.
    pub fsync: FsyncPolicy,
    /// An in-flight record that is not acknowledged within this time is sent
    /// again. Default 30 s.
    pub resend_after: Duration,
    /// Memory for payloads appended by this process, so sending them needs
    /// no disk read. Oldest entries leave first. Default 32 MiB; 0 disables.
    pub cache_bytes: u64,
    /// Acknowledgements are written to the ledger at most this often (and on
    /// `sync`, `close`, and every sequence block reservation). Acks lost in a
    /// crash only cause re-sends that ingest de-duplicates. Default 1 s.
    pub ledger_interval: Duration,
}

impl Default for OutboxOptions {
    fn default() -> Self {
        Self {
            segment_bytes: 8 << 20,
            max_bytes: 1 << 30,
            alarm_hard_limit_bytes: None,
            max_record_bytes: 16 << 20,
            fsync: FsyncPolicy::default(),
            resend_after: Duration::from_secs(30),
            cache_bytes: 32 << 20,
            ledger_interval: Duration::from_secs(1),
        }
    }
}

impl OutboxOptions {
    /// The priority hard limit in effect.
    pub fn priority_limit(&self) -> u64 {
        self.alarm_hard_limit_bytes.unwrap_or(self.max_bytes)
    }

    /// The segment size in effect: `segment_bytes`, capped at an eighth of
    /// `max_bytes` (at least 4 KiB).
    pub fn effective_segment_bytes(&self) -> u64 {
        self.segment_bytes.min((self.max_bytes / 8).max(4096))
    }

    /// The limit snapshots hit: the priority hard limit less 1/32 of it.
    pub fn snapshot_limit(&self) -> u64 {
        let hard = self.priority_limit();
        hard - hard / 32
    }

    /// Checks every field and returns all problems at once.
    pub fn validate(&self) -> Result<(), OutboxError> {
        let mut problems = Vec::new();
        if !(4096..=(1 << 30)).contains(&self.segment_bytes) {
            problems.push(format!(
                "segment_bytes = {}: must be between 4096 and 1073741824",
                self.segment_bytes
            ));
        }
        if !(1..=(256 << 20)).contains(&self.max_record_bytes) {
            problems.push(format!(
                "max_record_bytes = {}: must be between 1 and 268435456",
                self.max_record_bytes
            ));
        }
        if self.max_bytes < 65536 {
            problems.push(format!(
                "max_bytes = {}: must be at least 65536",
                self.max_bytes
            ));
        }
        if let Some(hard) = self.alarm_hard_limit_bytes {
            if hard > self.max_bytes {
                problems.push(format!(
                    "alarm_hard_limit_bytes = {hard}: must not exceed max_bytes ({})",
                    self.max_bytes
                ));
            }
            if hard < 4096 {
                problems.push(format!(
                    "alarm_hard_limit_bytes = {hard}: must be at least 4096"
                ));
            }
        }
        if self.resend_after.is_zero() {
            problems.push("resend_after = 0: must be positive".to_owned());
        }
        if let FsyncPolicy::Batch { interval, bytes } = self.fsync {
            if interval.is_zero() {
                problems.push("fsync batch interval = 0: use FsyncPolicy::Always".to_owned());
            }
            if bytes == 0 {
                problems.push("fsync batch bytes = 0: use FsyncPolicy::Always".to_owned());
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(OutboxError::InvalidOptions { problems })
        }
    }
}

impl From<parkwatch_config::FsyncPolicy> for FsyncPolicy {
    /// The site configuration names the policy; the batch limits are the
    /// defaults.
    fn from(p: parkwatch_config::FsyncPolicy) -> Self {
        match p {
            parkwatch_config::FsyncPolicy::Always => FsyncPolicy::Always,
            parkwatch_config::FsyncPolicy::Batch => FsyncPolicy::default(),
            parkwatch_config::FsyncPolicy::Never => FsyncPolicy::Never,
        }
    }
}
