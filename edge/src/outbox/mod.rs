//! The edge's durable on-disk outbox: every alarm, snapshot, status and
//! telemetry record is written here first, the MQTT uplink sends from here,
//! and a record is forgotten only when ingest's delivery ack names its
//! sequence number. Pure std I/O: no MQTT or async types.
//!
//! # Guarantees
//!
//! - **Sequence numbers** are assigned here, handed to the producer before the
//!   payload is built ([`Outbox::append_with`]), and strictly increase across
//!   restarts, crashes and power loss. They are not dense: a crash makes the
//!   next run continue above the last reserved block (up to 65 536 higher),
//!   and refused appends consume theirs.
//! - **Nothing is lost to `kill -9`** once `append_with` returned, with any
//!   fsync policy: the record is in the kernel's page cache, which outlives
//!   the process. Power loss loses nothing with [`FsyncPolicy::Always`], at
//!   most the last batch interval with `Batch` (the default), and whatever
//!   the kernel had not written back with `Never`.
//! - **At least once** towards ingest: a record is sent again when it is not
//!   acknowledged within `resend_after`, after every reconnect, and after a
//!   restart unless the ledger already recorded its ack. Ingest
//!   de-duplicates by `(edge, seq)`, which makes delivery exactly once in
//!   effect.
//! - **Priority**: alarms and status go first, then snapshots, then
//!   telemetry, each in seq order; an alarm never waits behind a telemetry
//!   backlog or a burst of JPEGs.
//! - **Bounded**: at most `max_bytes` of segment files. The oldest telemetry
//!   segment is dropped (and counted) to make room; alarm, status and
//!   snapshot records are never dropped, and appends of them are refused
//!   with [`OutboxError::Full`] at the priority hard limit.
//! - **No panic on any file content**: recovery validates every record and
//!   reports what it cut off or set aside ([`RecoveryReport`]).
//!
//! # Design
//!
//! ```text
//! <dir>/ledger.json                  seq ceiling + acked state (atomic replace)
//! <dir>/urgent/<first seq>.seg       alarms and status
//! <dir>/snapshots/<first seq>.seg    snapshots
//! <dir>/telemetry/<first seq>.seg    telemetry
//! ```
//!
//! Each queue is a list of append-only segment files (format in
//! [`format`]: length + CRC-32 per record), rolled at `segment_bytes`.
//! After every restart appends go to a new segment, so old files are never
//! written again except to cut a torn tail. A segment file is deleted when
//! every record in it is acknowledged (or, for telemetry, dropped).
//!
//! In memory each queue keeps an index of about 48 bytes per stored record
//! (seq, segment, offset, length, state), a send cursor and a retry set;
//! payloads appended by this process are kept in a cache of `cache_bytes`
//! so the hot path never reads the disk. After a restart, payloads are read
//! back from the segment with a 256 KiB read-ahead.
//!
//! Sequence numbers are reserved in blocks of 65 536 in the ledger (synced)
//! before any of them is handed out; after a crash the next run starts at
//! the reserved ceiling, so a number handed out before a power loss can never
//! be reused for a different record even if that record never reached the
//! disk. A clean [`Outbox::close`] writes the exact next number, so clean
//! restarts continue without a gap.
//!
//! The ledger also records, per queue, which records still on disk are
//! acknowledged (`acked_below` and out-of-order runs). It is written at most
//! every `ledger_interval`, on every reservation, [`Outbox::sync`] and
//! [`Outbox::close`]. An ack lost in a crash only means a re-send.
//!
//! # Use
//!
//! The outbox is a plain struct with blocking file I/O (an append of a small
//! record is one `write`, plus an `fdatasync` with `Always`). The uplink owns
//! it behind a mutex, calls [`Outbox::next_unsent`] while its publish window
//! has room, [`Outbox::ack`] for every delivery ack, [`Outbox::on_reconnect`]
//! on every new connection, and [`Outbox::sync_if_due`] on its timer tick
//! (every 100 ms or so) so batched data is synced even when appends stop.

mod error;
mod format;
mod ledger;
mod options;
mod queue;
mod recovery;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tracing::{debug, warn};

pub use error::OutboxError;
pub use options::{FsyncPolicy, OutboxOptions, RecordClass};
pub use recovery::{Quarantine, RecoveryReport};

use format::{SEGMENT_HEADER_LEN, decode_record, encode_head, record_len};
use ledger::Ledger;
pub(crate) use options::QueueId;
use queue::{Entry, Queue, Segment, State};

/// Sequence numbers reserved per ledger write.
const SEQ_BLOCK: u64 = 65_536;
/// Read-ahead when reading records back from disk.
const READ_AHEAD: usize = 256 << 10;
/// Cache bookkeeping overhead counted per entry.
const CACHE_ENTRY_OVERHEAD: u64 = 64;
/// Longest topic suffix accepted.
const MAX_TOPIC_LEN: usize = 1024;

/// A record handed to the uplink for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRecord {
    /// Per-edge sequence number; the payload embeds the same number.
    pub seq: u64,
    /// Class the producer gave it.
    pub class: RecordClass,
    /// Topic suffix, to be appended to `{prefix}/{site}/{edge}/`.
    pub topic: String,
    /// The payload as the producer built it.
    pub payload: Bytes,
    /// Wall-clock time of the append, milliseconds since the Unix epoch.
    pub appended_ms: u64,
    /// 1 for the first send, 2 for the first re-send, and so on (counted
    /// within this process).
    pub attempt: u32,
}

/// Per-class statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassStats {
    /// The class.
    pub class: RecordClass,
    /// Records stored and not yet acknowledged.
    pub pending_records: u64,
    /// Their on-disk bytes.
    pub pending_bytes: u64,
    /// Age of the oldest of them, 0 when none.
    pub oldest_pending_age_ms: u64,
    /// Appends refused with [`OutboxError::Full`] since open.
    pub full_events: u64,
}

/// A snapshot of the outbox's state. Counters (`*_total`, dropped, full,
/// lost) count since this process opened the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxStats {
    /// Records stored and not yet acknowledged (unsent and in flight).
    pub pending_records: u64,
    /// Their on-disk bytes.
    pub pending_bytes: u64,
    /// Age of the oldest pending record, 0 when none.
    pub oldest_pending_age_ms: u64,
    /// Records handed out by `next_unsent` and not yet acknowledged.
    pub in_flight: u64,
    /// Their on-disk bytes.
    pub in_flight_bytes: u64,
    /// Bytes of all segment files, including acknowledged records whose
    /// segment still holds pending ones.
    pub disk_bytes: u64,
    /// Segment files on disk.
    pub segments: u64,
    /// Telemetry records dropped, unsent or unacknowledged, to make room.
    pub dropped_telemetry_records: u64,
    /// Their on-disk bytes.
    pub dropped_telemetry_bytes: u64,
    /// Records acknowledged.
    pub acked_total: u64,
    /// Records appended.
    pub appended_total: u64,
    /// Appends refused with [`OutboxError::Full`], all classes.
    pub full_events: u64,
    /// Records given up because they could not be read back.
    pub lost_records: u64,
    /// File system errors met outside the calls that return them (segment
    /// deletion and ledger writes during `ack`, reads during `next_unsent`).
    pub io_errors: u64,
    /// The next sequence number.
    pub next_seq: u64,
    /// Per class, in [`RecordClass::ALL`] order.
    pub classes: [ClassStats; 4],
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    sent_at: Instant,
    queue: usize,
    seq: u64,
    sends: u32,
}

#[derive(Debug)]
struct Cached {
    topic: Box<str>,
    payload: Bytes,
}

impl Cached {
    fn cost(&self) -> u64 {
        self.payload.len() as u64 + self.topic.len() as u64 + CACHE_ENTRY_OVERHEAD
    }
}

#[derive(Debug, Default)]
struct ReadAhead {
    queue: usize,
    segment: u64,
    start: u64,
    buf: Vec<u8>,
}

#[derive(Debug, Default, Clone, Copy)]
struct ClassCounters {
    pending_records: u64,
    pending_bytes: u64,
    full_events: u64,
}

/// The durable outbox. See the module documentation.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    opts: OutboxOptions,
    segment_bytes: u64,
    queues: [Queue; 3],
    next_seq: u64,
    seq_ceiling: u64,
    in_flight: VecDeque<InFlight>,
    in_flight_count: u64,
    /// On-disk bytes of the records in flight.
    in_flight_bytes: u64,
    cache: BTreeMap<u64, Cached>,
    cache_used: u64,
    read_ahead: ReadAhead,
    classes: [ClassCounters; 4],
    appended_total: u64,
    acked_total: u64,
    dropped_telemetry_records: u64,
    dropped_telemetry_bytes: u64,
    lost_records: u64,
    io_errors: u64,
    unsynced_bytes: u64,
    last_sync: Instant,
    ledger_dirty: bool,
    last_ledger_write: Instant,
    scratch: Vec<u8>,
    closed: bool,
}

impl Outbox {
    /// Opens (creating if needed) the outbox in `dir`: validates every stored
    /// record, cuts torn or corrupt tails, applies the ledger, and reports
    /// what it found. Only one process may use a directory at a time.
    pub fn open(
        dir: impl AsRef<Path>,
        opts: OutboxOptions,
    ) -> Result<(Outbox, RecoveryReport), OutboxError> {
        opts.validate()?;
        let dir = dir.as_ref().to_owned();
        let rec = recovery::recover(&dir, &opts)?;
        let mut classes = [ClassCounters::default(); 4];
        for q in &rec.queues {
            for e in q.entries.iter().filter(|e| e.state != State::Acked) {
                let c = &mut classes[e.class.index()];
                c.pending_records += 1;
                c.pending_bytes += u64::from(e.len);
            }
        }
        let now = Instant::now();
        let mut outbox = Outbox {
            dir,
            segment_bytes: opts.effective_segment_bytes(),
            opts,
            queues: rec.queues,
            next_seq: rec.next_seq,
            seq_ceiling: rec.next_seq,
            in_flight: VecDeque::new(),
            in_flight_count: 0,
            in_flight_bytes: 0,
            cache: BTreeMap::new(),
            cache_used: 0,
            read_ahead: ReadAhead::default(),
            classes,
            appended_total: 0,
            acked_total: 0,
            dropped_telemetry_records: 0,
            dropped_telemetry_bytes: 0,
            lost_records: 0,
            io_errors: 0,
            unsynced_bytes: 0,
            last_sync: now,
            ledger_dirty: false,
            last_ledger_write: now,
            scratch: Vec::with_capacity(MAX_TOPIC_LEN + 64),
            closed: false,
        };
        // Record what recovery decided right away. A failure here (a full
        // disk) is not fatal: the ledger is written again, and must succeed,
        // before the first sequence number is handed out, and until then
        // the backlog can still be sent and acknowledged, freeing space.
        if let Err(e) = outbox.write_ledger(outbox.seq_ceiling, true) {
            outbox.io_errors += 1;
            warn!(err = %e, "Outbox: writing the ledger after recovery failed; appends will retry.");
        }
        Ok((outbox, rec.report))
    }

    /// The outbox directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options in use.
    pub fn options(&self) -> &OutboxOptions {
        &self.opts
    }

    /// The sequence number the next append will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Stores a record whose payload does not embed its sequence number.
    pub fn append(
        &mut self,
        class: RecordClass,
        topic: &str,
        payload: Vec<u8>,
    ) -> Result<u64, OutboxError> {
        self.append_with(class, topic, |_| payload)
    }

    /// Stores a record: assigns the next sequence number, calls `build` with
    /// it to make the payload, and appends the record to its queue. When this
    /// returns `Ok(seq)` the record survives `kill -9` (and power loss with
    /// [`FsyncPolicy::Always`]).
    ///
    /// Errors: [`OutboxError::Full`] when there is no room for this class
    /// (telemetry: the priority classes fill the whole budget; alarms and
    /// status: `alarm_hard_limit_bytes` reached; snapshots: within 1/32 of
    /// it). The producer then drops the record and counts it: the newest
    /// snapshot is dropped first, alarm events (small) keep fitting in the
    /// headroom snapshots leave. [`OutboxError::RecordTooLarge`],
    /// [`OutboxError::InvalidTopic`] and [`OutboxError::Io`] (the ledger or
    /// the segment could not be written, e.g. a full file system) also refuse
    /// the record. A refused record's sequence number is not reused. A
    /// failed fsync after the record was written does not refuse it (it is
    /// stored and will be sent); it is logged and counted in `io_errors`.
    pub fn append_with<F>(
        &mut self,
        class: RecordClass,
        topic: &str,
        build: F,
    ) -> Result<u64, OutboxError>
    where
        F: FnOnce(u64) -> Vec<u8>,
    {
        check_topic(topic)?;
        if self.next_seq >= self.seq_ceiling {
            let ceiling = self.next_seq.saturating_add(SEQ_BLOCK);
            self.write_ledger(ceiling, true)?;
            self.seq_ceiling = ceiling;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let payload = build(seq);
        if payload.len() as u64 > self.opts.max_record_bytes {
            return Err(OutboxError::RecordTooLarge {
                class,
                topic: topic.to_owned(),
                size: payload.len() as u64,
                max: self.opts.max_record_bytes,
            });
        }
        let rec_len = record_len(topic.len(), payload.len());
        self.make_room(class, rec_len)?;

        let q = class.queue().index();
        let appended_ms = unix_ms();
        let queue = &mut self.queues[q];
        if queue.needs_new_segment(rec_len, self.segment_bytes) {
            if let Err(e) = queue.seal(self.opts.fsync.syncs()) {
                // Sealed anyway; its records are stored, their power-loss
                // durability is in doubt.
                self.io_errors += 1;
                warn!(err = %e, "Outbox: fsync of a full segment failed.");
            }
            if let (_, Err(e)) = queue.reclaim() {
                // Not this record's problem: retried on the next ack.
                self.io_errors += 1;
                warn!(err = %e, "Outbox: deleting an acknowledged segment failed; will retry.");
            }
            queue.create_segment(seq)?;
        }
        let (segment, offset) = write_record(
            queue,
            &mut self.scratch,
            seq,
            appended_ms,
            class,
            topic,
            &payload,
        )?;
        queue.entries.push_back(Entry {
            seq,
            appended_ms,
            segment,
            offset,
            len: rec_len as u32,
            sends: 0,
            class,
            state: State::Unsent,
        });
        let c = &mut self.classes[class.index()];
        c.pending_records += 1;
        c.pending_bytes += rec_len;
        self.appended_total += 1;
        self.cache_insert(
            seq,
            Cached {
                topic: topic.into(),
                payload: Bytes::from(payload),
            },
        );
        self.unsynced_bytes += rec_len;
        let due = match self.opts.fsync {
            FsyncPolicy::Always => true,
            FsyncPolicy::Batch { interval, bytes } => {
                self.unsynced_bytes >= bytes || self.last_sync.elapsed() >= interval
            }
            FsyncPolicy::Never => false,
        };
        if due && let Err(e) = self.sync_data() {
            // The record is stored (it survives kill -9 and will be sent);
            // only its durability against power loss is in doubt.
            self.io_errors += 1;
            warn!(seq, err = %e, "Outbox: fsync failed; the record is queued but may not survive a power loss.");
        }
        Ok(seq)
    }

    /// The next record to send, or `None` when everything stored is in
    /// flight or acknowledged. Alarms and status come first, then
    /// snapshots, then telemetry; within a queue the lowest seq first. The
    /// record becomes in flight; if it is not acknowledged within
    /// `resend_after` of `now` it is handed out again.
    ///
    /// A record that cannot be read back (the disk changed or failed under
    /// the outbox) is given up: logged, counted in `lost_records`, and the
    /// next one is returned instead.
    pub fn next_unsent(&mut self, now: Instant) -> Option<OutboxRecord> {
        self.next_unsent_within(now, u64::MAX, u64::MAX)
    }

    /// As [`Self::next_unsent`], but `None` while `max_records` records are
    /// already in flight (handed out and neither acknowledged nor timed
    /// out), and no snapshot or telemetry while `max_bytes` bytes are: the
    /// sender's window of records the receiver has not confirmed. Alarms
    /// and status ignore the byte limit. Expired records leave the window
    /// first, so a lost ack never blocks sending for longer than
    /// `resend_after`.
    pub fn next_unsent_within(
        &mut self,
        now: Instant,
        max_records: u64,
        max_bytes: u64,
    ) -> Option<OutboxRecord> {
        self.expire(now);
        for q in 0..self.queues.len() {
            // Alarms and status are small: only the record count holds them
            // back, so a window full of snapshots never delays an alarm.
            let bytes_full =
                self.queues[q].id != QueueId::Urgent && self.in_flight_bytes >= max_bytes;
            if self.in_flight_count >= max_records || bytes_full {
                return None;
            }
            while let Some(i) = self.queues[q].pick() {
                let e = &mut self.queues[q].entries[i];
                e.state = State::InFlight;
                e.sends = e.sends.saturating_add(1);
                let (seq, sends) = (e.seq, e.sends);
                self.in_flight_count += 1;
                self.in_flight_bytes += u64::from(e.len);
                self.in_flight.push_back(InFlight {
                    sent_at: now,
                    queue: q,
                    seq,
                    sends,
                });
                match self.load(q, i) {
                    Ok(rec) => return Some(rec),
                    Err(err) => {
                        warn!(seq, err = %err, "Outbox: record cannot be read back; given up.");
                        self.lose(q, i);
                    }
                }
            }
        }
        None
    }

    /// Marks the records in the inclusive seq `ranges` acknowledged and
    /// returns how many were pending. Ranges may come in any order, overlap,
    /// repeat, or name unknown seqs (ignored); a range with `first > last` is
    /// ignored. Segments whose records are all acknowledged are deleted.
    ///
    /// Deleting files and writing the ledger can fail; the acks still count
    /// in memory, the failure is logged and counted in `io_errors`, and the
    /// work is retried on the next `ack` or `sync`.
    pub fn ack(&mut self, ranges: &[(u64, u64)]) -> usize {
        let mut n = 0usize;
        for &(lo, hi) in ranges {
            if lo > hi {
                continue;
            }
            for q in 0..self.queues.len() {
                n += self.ack_range(q, lo, hi);
            }
        }
        if n == 0 {
            return 0;
        }
        self.acked_total += n as u64;
        self.ledger_dirty = true;
        for q in &mut self.queues {
            q.pop_acked_front();
        }
        if let Err(e) = self.reclaim_all() {
            self.io_errors += 1;
            warn!(err = %e, "Outbox: reclaiming acknowledged segments failed; will retry.");
        }
        if self.last_ledger_write.elapsed() >= self.opts.ledger_interval
            && let Err(e) = self.write_ledger(self.seq_ceiling, false)
        {
            self.io_errors += 1;
            warn!(err = %e, "Outbox: writing the ledger failed; will retry.");
        }
        n
    }

    /// Makes every record that is not acknowledged unsent again, so it is
    /// sent again in seq order (per queue). Call on every new connection:
    /// the broker may have lost whatever was in flight.
    pub fn on_reconnect(&mut self) {
        for q in &mut self.queues {
            for e in q.entries.iter_mut() {
                if e.state == State::InFlight {
                    e.state = State::Unsent;
                }
            }
            q.cursor = 0;
            q.retry.clear();
        }
        self.in_flight.clear();
        self.in_flight_count = 0;
        self.in_flight_bytes = 0;
    }

    /// Syncs batched data when the batch interval has passed, and writes the
    /// ledger when acks are waiting and `ledger_interval` has passed. Call it
    /// on a timer (every 100 ms or so).
    pub fn sync_if_due(&mut self) -> Result<(), OutboxError> {
        if let FsyncPolicy::Batch { interval, .. } = self.opts.fsync
            && self.unsynced_bytes > 0
            && self.last_sync.elapsed() >= interval
        {
            self.sync_data()?;
        }
        if self.ledger_dirty && self.last_ledger_write.elapsed() >= self.opts.ledger_interval {
            self.reclaim_all()?;
            self.write_ledger(self.seq_ceiling, false)?;
        }
        Ok(())
    }

    /// Syncs all appended data and writes the ledger now, whatever the
    /// policy.
    pub fn sync(&mut self) -> Result<(), OutboxError> {
        self.sync_data()?;
        self.reclaim_all()?;
        self.write_ledger(self.seq_ceiling, true)
    }

    /// Syncs everything and records the exact next sequence number, so the
    /// next open continues without a gap.
    pub fn close(mut self) -> Result<(), OutboxError> {
        self.closed = true;
        self.sync_data()?;
        self.reclaim_all()?;
        self.write_ledger(self.next_seq, true)
    }

    /// Current statistics.
    pub fn stats(&self) -> OutboxStats {
        let now = unix_ms();
        let age = |ms: Option<u64>| ms.map_or(0, |ms| now.saturating_sub(ms));
        let mut classes = RecordClass::ALL.map(|class| {
            let c = self.classes[class.index()];
            ClassStats {
                class,
                pending_records: c.pending_records,
                pending_bytes: c.pending_bytes,
                oldest_pending_age_ms: 0,
                full_events: c.full_events,
            }
        });
        let mut oldest: Option<u64> = None;
        for q in &self.queues {
            // The front entry is never acknowledged; for the urgent queue,
            // which holds two classes, look for the first of each.
            let mut missing: Vec<RecordClass> = RecordClass::ALL
                .into_iter()
                .filter(|c| q.id.holds(*c) && self.classes[c.index()].pending_records > 0)
                .collect();
            for e in q.entries.iter().filter(|e| e.state != State::Acked) {
                if missing.is_empty() {
                    break;
                }
                if let Some(pos) = missing.iter().position(|c| *c == e.class) {
                    missing.swap_remove(pos);
                    classes[e.class.index()].oldest_pending_age_ms = age(Some(e.appended_ms));
                    oldest = Some(oldest.map_or(e.appended_ms, |o: u64| o.min(e.appended_ms)));
                }
            }
        }
        let pending_records = classes.iter().map(|c| c.pending_records).sum();
        let pending_bytes = classes.iter().map(|c| c.pending_bytes).sum();
        OutboxStats {
            pending_records,
            pending_bytes,
            oldest_pending_age_ms: age(oldest),
            in_flight: self.in_flight_count,
            in_flight_bytes: self.in_flight_bytes,
            disk_bytes: self.disk_bytes(),
            segments: self.queues.iter().map(|q| q.segments.len() as u64).sum(),
            dropped_telemetry_records: self.dropped_telemetry_records,
            dropped_telemetry_bytes: self.dropped_telemetry_bytes,
            acked_total: self.acked_total,
            appended_total: self.appended_total,
            full_events: classes.iter().map(|c| c.full_events).sum(),
            lost_records: self.lost_records,
            io_errors: self.io_errors,
            next_seq: self.next_seq,
            classes,
        }
    }

    fn disk_bytes(&self) -> u64 {
        self.queues.iter().map(|q| q.disk_bytes).sum()
    }

    /// Drops the oldest telemetry until a record of `rec_len` fits, or
    /// refuses it.
    fn make_room(&mut self, class: RecordClass, rec_len: u64) -> Result<(), OutboxError> {
        let q = class.queue().index();
        if class != RecordClass::Telemetry {
            let needed = self.queues[q].bytes_needed(rec_len, self.segment_bytes);
            let used = self.queues[QueueId::Urgent.index()].disk_bytes
                + self.queues[QueueId::Snapshots.index()].disk_bytes;
            let limit = if class == RecordClass::Snapshot {
                self.opts.snapshot_limit()
            } else {
                self.opts.priority_limit()
            };
            if used + needed > limit {
                return Err(self.full(class, needed, used, limit));
            }
        }
        loop {
            let needed = self.queues[q].bytes_needed(rec_len, self.segment_bytes);
            let used = self.disk_bytes();
            if used + needed <= self.opts.max_bytes {
                return Ok(());
            }
            if !self.drop_oldest_telemetry()? {
                return Err(self.full(class, needed, used, self.opts.max_bytes));
            }
        }
    }

    fn full(&mut self, class: RecordClass, needed: u64, used: u64, limit: u64) -> OutboxError {
        self.classes[class.index()].full_events += 1;
        warn!(class = %class, needed, used, limit, "Outbox full: record refused.");
        OutboxError::Full {
            class,
            needed,
            used,
            limit,
        }
    }

    /// Deletes the oldest telemetry segment; false when there is none.
    fn drop_oldest_telemetry(&mut self) -> Result<bool, OutboxError> {
        let tq = &mut self.queues[QueueId::Telemetry.index()];
        if tq.segments.len() == 1 {
            // The only one may be the open one: stop appending to it first.
            tq.seal(false)?;
        }
        let Some(seg) = tq.segments.pop_front() else {
            return Ok(false);
        };
        let (mut records, mut bytes) = (0u64, 0u64);
        while let Some(e) = tq.entries.front().copied() {
            if e.segment > seg.base_seq {
                break;
            }
            tq.entries.pop_front();
            tq.acked_inside.remove(&e.seq);
            tq.cursor = tq.cursor.saturating_sub(1);
            if e.state == State::Acked {
                continue;
            }
            if e.state == State::InFlight {
                self.in_flight_count = self.in_flight_count.saturating_sub(1);
                self.in_flight_bytes = self.in_flight_bytes.saturating_sub(u64::from(e.len));
            }
            records += 1;
            bytes += u64::from(e.len);
            if let Some(c) = self.cache.remove(&e.seq) {
                self.cache_used = self.cache_used.saturating_sub(c.cost());
            }
        }
        tq.pop_acked_front();
        tq.disk_bytes = tq.disk_bytes.saturating_sub(seg.bytes);
        let c = &mut self.classes[RecordClass::Telemetry.index()];
        c.pending_records = c.pending_records.saturating_sub(records);
        c.pending_bytes = c.pending_bytes.saturating_sub(bytes);
        self.dropped_telemetry_records += records;
        self.dropped_telemetry_bytes += bytes;
        self.ledger_dirty = true;
        warn!(
            segment = %seg.path.display(),
            records,
            bytes,
            "Outbox full: oldest telemetry dropped."
        );
        match std::fs::remove_file(&seg.path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(OutboxError::io("delete segment", &seg.path, e)),
        }
    }

    /// Marks pending entries of queue `q` with seq in `lo..=hi` acked.
    fn ack_range(&mut self, q: usize, lo: u64, hi: u64) -> usize {
        let queue = &mut self.queues[q];
        let start = queue.entries.partition_point(|e| e.seq < lo);
        let mut n = 0;
        for i in start..queue.entries.len() {
            let e = &mut queue.entries[i];
            if e.seq > hi {
                break;
            }
            if e.state == State::Acked {
                continue;
            }
            if e.state == State::InFlight {
                self.in_flight_count = self.in_flight_count.saturating_sub(1);
                self.in_flight_bytes = self.in_flight_bytes.saturating_sub(u64::from(e.len));
            }
            e.state = State::Acked;
            let e = *e;
            n += 1;
            queue.acked_inside.insert(e.seq);
            if let Some(si) = queue.segment_index(e.segment) {
                let seg = &mut queue.segments[si];
                seg.live = seg.live.saturating_sub(1);
            }
            let c = &mut self.classes[e.class.index()];
            c.pending_records = c.pending_records.saturating_sub(1);
            c.pending_bytes = c.pending_bytes.saturating_sub(u64::from(e.len));
            if let Some(c) = self.cache.remove(&e.seq) {
                self.cache_used = self.cache_used.saturating_sub(c.cost());
            }
        }
        n
    }

    /// Gives up entry `i` of queue `q` (unreadable): treated as acknowledged
    /// so it is never handed out again, counted as lost.
    fn lose(&mut self, q: usize, i: usize) {
        let queue = &mut self.queues[q];
        let e = &mut queue.entries[i];
        if e.state == State::InFlight {
            self.in_flight_count = self.in_flight_count.saturating_sub(1);
            self.in_flight_bytes = self.in_flight_bytes.saturating_sub(u64::from(e.len));
        }
        e.state = State::Acked;
        let e = *e;
        queue.acked_inside.insert(e.seq);
        if let Some(si) = queue.segment_index(e.segment) {
            let seg = &mut queue.segments[si];
            seg.live = seg.live.saturating_sub(1);
        }
        queue.pop_acked_front();
        let c = &mut self.classes[e.class.index()];
        c.pending_records = c.pending_records.saturating_sub(1);
        c.pending_bytes = c.pending_bytes.saturating_sub(u64::from(e.len));
        self.lost_records += 1;
        self.ledger_dirty = true;
    }

    /// Turns in-flight records older than `resend_after` back into unsent
    /// ones, and forgets bookkeeping of records no longer in flight.
    fn expire(&mut self, now: Instant) {
        while let Some(f) = self.in_flight.front().copied() {
            let queue = &mut self.queues[f.queue];
            let current = queue.find(f.seq).filter(|&i| {
                let e = &queue.entries[i];
                e.state == State::InFlight && e.sends == f.sends
            });
            match current {
                None => {
                    self.in_flight.pop_front();
                }
                Some(i) => {
                    if now.saturating_duration_since(f.sent_at) < self.opts.resend_after {
                        break;
                    }
                    self.in_flight.pop_front();
                    queue.entries[i].state = State::Unsent;
                    queue.retry.insert(f.seq);
                    let len = u64::from(queue.entries[i].len);
                    self.in_flight_bytes = self.in_flight_bytes.saturating_sub(len);
                    self.in_flight_count = self.in_flight_count.saturating_sub(1);
                    debug!(seq = f.seq, "Outbox: no ack in time; will resend.");
                }
            }
        }
    }

    /// Reads entry `i` of queue `q` back, from the cache or the disk.
    fn load(&mut self, q: usize, i: usize) -> Result<OutboxRecord, OutboxError> {
        let e = self.queues[q].entries[i];
        if let Some(c) = self.cache.get(&e.seq) {
            return Ok(OutboxRecord {
                seq: e.seq,
                class: e.class,
                topic: c.topic.to_string(),
                payload: c.payload.clone(),
                appended_ms: e.appended_ms,
                attempt: e.sends,
            });
        }
        let queue = &mut self.queues[q];
        let corrupt = |path: &Path, reason: String| OutboxError::Corrupt {
            seq: e.seq,
            path: path.to_owned(),
            offset: e.offset,
            reason,
        };
        let Some(si) = queue.segment_index(e.segment) else {
            return Err(corrupt(
                &queue.dir,
                format!("segment {} is gone", e.segment),
            ));
        };
        let seg = &mut queue.segments[si];
        let len = e.len as usize;
        let bytes = if len >= READ_AHEAD / 2 {
            // Large records (snapshots) get their own buffer: no extra copy.
            let mut buf = vec![0u8; len];
            read_at(seg, e.offset, &mut buf)?;
            Bytes::from(buf)
        } else {
            let ra = &mut self.read_ahead;
            let hit = ra.queue == q
                && ra.segment == seg.base_seq
                && e.offset >= ra.start
                && e.offset + e.len as u64 <= ra.start + ra.buf.len() as u64;
            if !hit {
                let want = (READ_AHEAD as u64)
                    .min(seg.bytes.saturating_sub(e.offset))
                    .max(u64::from(e.len));
                ra.buf.resize(want as usize, 0);
                ra.queue = q;
                ra.segment = seg.base_seq;
                ra.start = e.offset;
                if let Err(err) = read_at(seg, e.offset, &mut ra.buf) {
                    ra.buf.clear();
                    return Err(err);
                }
            }
            let at = (e.offset - ra.start) as usize;
            // One copy of a small record out of the shared read-ahead buffer.
            Bytes::copy_from_slice(&ra.buf[at..at + len])
        };
        let d = decode_record(&bytes).map_err(|r| corrupt(&seg.path, r))?;
        if d.seq != e.seq || d.class != e.class {
            return Err(corrupt(
                &seg.path,
                format!("found seq {} class {} instead", d.seq, d.class),
            ));
        }
        let topic = d.topic.to_owned();
        // The payload is the rest of the record.
        let payload = bytes.slice(len - d.payload.len()..);
        Ok(OutboxRecord {
            seq: e.seq,
            class: e.class,
            topic,
            payload,
            appended_ms: e.appended_ms,
            attempt: e.sends,
        })
    }

    fn cache_insert(&mut self, seq: u64, c: Cached) {
        let cost = c.cost();
        if cost > self.opts.cache_bytes {
            return;
        }
        self.cache_used += cost;
        self.cache.insert(seq, c);
        while self.cache_used > self.opts.cache_bytes {
            let Some((_, old)) = self.cache.pop_first() else {
                break;
            };
            self.cache_used = self.cache_used.saturating_sub(old.cost());
        }
    }

    fn sync_data(&mut self) -> Result<(), OutboxError> {
        for q in &mut self.queues {
            if let Some(w) = &mut q.writer {
                w.sync()?;
            }
            if q.dir_dirty {
                parkwatch_durable::sync_dir(&q.dir)?;
                q.dir_dirty = false;
            }
        }
        self.unsynced_bytes = 0;
        self.last_sync = Instant::now();
        Ok(())
    }

    fn reclaim_all(&mut self) -> Result<(), OutboxError> {
        let mut result = Ok(());
        for q in &mut self.queues {
            let (_, r) = q.reclaim();
            if result.is_ok() {
                result = r;
            }
        }
        result
    }

    /// Writes the ledger with `ceiling`; `force_sync` syncs it even with
    /// `FsyncPolicy::Never`.
    fn write_ledger(&mut self, ceiling: u64, force_sync: bool) -> Result<(), OutboxError> {
        let states = [0, 1, 2].map(|i| self.queues[i].ledger_state(self.next_seq));
        let sync = force_sync || self.opts.fsync.syncs();
        ledger::store(&self.dir, &Ledger::new(ceiling, states), sync)?;
        self.ledger_dirty = false;
        self.last_ledger_write = Instant::now();
        Ok(())
    }
}

impl Drop for Outbox {
    /// Best effort clean close when [`Outbox::close`] was not called.
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        let result = self
            .sync_data()
            .and_then(|()| self.write_ledger(self.next_seq, true));
        if let Err(e) = result {
            warn!(err = %e, "Outbox: closing on drop failed; the next open recovers.");
        }
    }
}

/// Appends one record to the open segment of `queue`; returns the segment
/// key and the record's offset. On a failed write the segment is cut back and
/// sealed, so the next append starts a fresh one.
fn write_record(
    queue: &mut Queue,
    scratch: &mut Vec<u8>,
    seq: u64,
    appended_ms: u64,
    class: RecordClass,
    topic: &str,
    payload: &[u8],
) -> Result<(u64, u64), OutboxError> {
    let (Some(w), Some(seg)) = (queue.writer.as_mut(), queue.segments.back_mut()) else {
        return Err(OutboxError::io(
            "append to",
            &queue.dir,
            std::io::Error::other("no open segment"),
        ));
    };
    scratch.clear();
    encode_head(scratch, seq, appended_ms, class, topic);
    let before = seg.bytes;
    match w.append(scratch, payload) {
        Ok(offset) => {
            seg.bytes = w.len();
            seg.records += 1;
            seg.live += 1;
            queue.disk_bytes += seg.bytes - before;
            Ok((seg.base_seq, offset))
        }
        Err(e) => {
            seg.bytes = w.len();
            seg.sealed = true;
            queue.writer = None;
            queue.disk_bytes = queue.segments.iter().map(|s| s.bytes).sum();
            Err(e.into())
        }
    }
}

/// Reads `buf.len()` bytes at `offset` of a segment, opening it on first use.
fn read_at(seg: &mut Segment, offset: u64, buf: &mut [u8]) -> Result<(), OutboxError> {
    let path = &seg.path;
    let file = match &mut seg.reader {
        Some(f) => f,
        None => seg
            .reader
            .insert(File::open(path).map_err(|e| OutboxError::io("open segment", path, e))?),
    };
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| OutboxError::io("seek segment", path, e))?;
    file.read_exact(buf)
        .map_err(|e| OutboxError::io("read segment", path, e))
}

fn check_topic(topic: &str) -> Result<(), OutboxError> {
    let reason = if topic.is_empty() {
        "empty"
    } else if topic.len() > MAX_TOPIC_LEN {
        "longer than 1024 bytes"
    } else if topic.contains(['+', '#']) {
        "contains an MQTT wildcard (+ or #)"
    } else if topic.contains('\0') {
        "contains NUL"
    } else if topic.starts_with('/') || topic.ends_with('/') {
        "starts or ends with '/'"
    } else {
        return Ok(());
    };
    Err(OutboxError::InvalidTopic {
        topic: topic.chars().take(64).collect(),
        reason,
    })
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// For tests and the benchmark: the on-disk size of a record.
pub fn record_size(topic: &str, payload_len: usize) -> u64 {
    record_len(topic.len(), payload_len)
}

/// Size of the header at the start of every segment file.
pub const SEGMENT_HEADER_BYTES: u64 = SEGMENT_HEADER_LEN;
