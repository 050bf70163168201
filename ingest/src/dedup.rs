//! Telemetry de-duplication: the per-edge record of telemetry batches
//! already stored, so that a re-sent batch is acknowledged again without
//! being written twice.
//!
//! # Why
//!
//! Delivery from an edge is at least once: the edge keeps a batch in its
//! outbox until ingest's delivery ack names its sequence number, and sends
//! it again after a reconnect, after `resend_after`, or when the ack was
//! lost (ingest restarted after writing but before acking, the edge
//! crashed before its ledger recorded the ack). Writing such a batch a
//! second time would store every point twice in VictoriaMetrics unless it
//! runs with `-dedup.minScrapeInterval` (InfluxDB overwrites identical
//! points by itself).
//!
//! # What is kept
//!
//! For each `(site, edge)` a [`SeqSet`]: the sequence numbers of telemetry
//! batches that were written, spooled ([`crate::spool`]) or refused for
//! good, as merged inclusive ranges. Sequence numbers are per edge and
//! strictly increasing across the edge's restarts (docs/outbox.md), shared
//! with the edge's alarms and statuses, so the telemetry set has a gap for
//! every alarm or status in between; each gap costs one range (16 bytes).
//! Each edge keeps at most `max_ranges` ranges (default
//! [`DEFAULT_MAX_RANGES`]); past that the *oldest* ranges are forgotten.
//! A forgotten batch that is re-sent is written again (a duplicate, never a
//! loss): by then the edge has long had its ack, so this needs an edge that
//! resends very old records.
//!
//! # On disk
//!
//! In `dir` (`data_dir/dedup`):
//! - `telemetry-seqs.json`: a snapshot, `{"version":1,"edges":[{"s":site,
//!   "e":edge,"r":[[first,last],..]},..]}`, replaced atomically (write a
//!   temporary file, fsync, rename, fsync the folder);
//! - `telemetry-seqs.log`: what was recorded since, one JSON line per edge
//!   per [`DedupStore::record`] call: `{"s":site,"e":edge,"r":[[a,b],..]}`.
//!
//! Opening loads the snapshot, replays the log (a torn last line from a
//! crash, or any unreadable line, is skipped and counted), then compacts:
//! a new snapshot, an empty log. The log is compacted again whenever it
//! grows past [`COMPACT_LOG_BYTES`].
//!
//! # Guarantees
//!
//! [`DedupStore::record`] appends with one `write(2)` before it returns, so
//! what it recorded survives `kill -9` of ingest (the page cache outlives
//! the process). The log is fsynced by [`DedupStore::sync_if_due`] at most
//! every [`SYNC_INTERVAL`]; a power loss may forget the last second of
//! records, which then costs a duplicate write, never a lost batch.
//! The writer records a batch *after* the database stored it and *before*
//! its delivery ack goes out; a crash between the database's answer and the
//! record makes the edge resend a batch that is stored already, and that
//! one window is why VictoriaMetrics should still run with
//! `-dedup.minScrapeInterval=1ms` (docs/timeseries.md).
//!
//! Never panics on file content: an unreadable snapshot is renamed to
//! `telemetry-seqs.json.corrupt` and reported, and ingest starts with what
//! the log holds.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parkwatch_durable::IoError;
use parkwatch_durable::atomic::{self, Durability};
use serde::{Deserialize, Serialize};

/// Ranges kept per edge by default (about 64 KiB per edge in memory).
pub const DEFAULT_MAX_RANGES: usize = 4096;
/// The log is compacted into the snapshot past this size.
pub const COMPACT_LOG_BYTES: u64 = 8 * 1024 * 1024;
/// Longest time between fsyncs of the log while records arrive.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);

const SNAPSHOT: &str = "telemetry-seqs.json";
const LOG: &str = "telemetry-seqs.log";

/// A set of `u64` as sorted, disjoint, non-adjacent inclusive ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeqSet {
    /// first -> last.
    ranges: BTreeMap<u64, u64>,
}

impl SeqSet {
    /// Whether `seq` is in the set.
    pub fn contains(&self, seq: u64) -> bool {
        self.ranges
            .range(..=seq)
            .next_back()
            .is_some_and(|(_, &last)| seq <= last)
    }

    /// Adds `first..=last` (`first <= last`, else nothing), merging with
    /// overlapping and adjacent ranges.
    pub fn insert_range(&mut self, first: u64, last: u64) {
        if first > last {
            return;
        }
        let (mut lo, mut hi) = (first, last);
        // A range starting at or before `first` that reaches it (or its
        // predecessor) merges.
        if let Some((&f, &l)) = self.ranges.range(..=first).next_back()
            && l.saturating_add(1) >= first
        {
            lo = f;
            hi = hi.max(l);
            self.ranges.remove(&f);
        }
        // Ranges starting inside `lo..=hi+1` merge.
        loop {
            let next = self
                .ranges
                .range(lo..=hi.saturating_add(1))
                .next()
                .map(|(&f, &l)| (f, l));
            match next {
                Some((f, l)) => {
                    hi = hi.max(l);
                    self.ranges.remove(&f);
                }
                None => break,
            }
        }
        self.ranges.insert(lo, hi);
    }

    /// Adds one sequence number.
    pub fn insert(&mut self, seq: u64) {
        self.insert_range(seq, seq);
    }

    /// Number of ranges.
    pub fn range_count(&self) -> usize {
        self.ranges.len()
    }

    /// The ranges, ascending.
    pub fn ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().map(|(&f, &l)| (f, l))
    }

    /// Forgets the lowest ranges until at most `max` remain; returns how
    /// many were forgotten.
    pub fn trim(&mut self, max: usize) -> usize {
        let mut removed = 0;
        while self.ranges.len() > max {
            if self.ranges.pop_first().is_none() {
                break;
            }
            removed += 1;
        }
        removed
    }
}

/// Builds the ranges of a list of sequence numbers (any order, duplicates).
fn ranges_of(seqs: &[u64]) -> Vec<(u64, u64)> {
    let mut set = SeqSet::default();
    for &s in seqs {
        set.insert(s);
    }
    set.ranges().collect()
}

/// Why the store could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum DedupError {
    /// A file operation failed.
    #[error("dedup record {path}: {op}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

fn io<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> DedupError + 'a {
    move |source| DedupError::Io {
        path: path.to_owned(),
        op,
        source,
    }
}

/// What [`DedupStore::open`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DedupReport {
    /// Edges with a record.
    pub edges: usize,
    /// Ranges loaded, over all edges.
    pub ranges: usize,
    /// Log lines that could not be read (a torn last line after a crash).
    pub bad_log_lines: usize,
    /// The snapshot could not be read and was moved aside to this path.
    pub corrupt_snapshot: Option<PathBuf>,
}

#[derive(Serialize, Deserialize)]
struct EdgeLine {
    s: String,
    e: String,
    r: Vec<(u64, u64)>,
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    edges: Vec<EdgeLine>,
}

/// The per-edge record of stored telemetry batches. See the module doc.
#[derive(Debug)]
pub struct DedupStore {
    edges: HashMap<(String, String), SeqSet>,
    max_ranges: usize,
    files: Option<Files>,
}

#[derive(Debug)]
struct Files {
    dir: PathBuf,
    log: File,
    log_bytes: u64,
    dirty_since: Option<Instant>,
}

impl DedupStore {
    /// A store that keeps nothing on disk (tests, tools).
    pub fn in_memory(max_ranges: usize) -> Self {
        DedupStore {
            edges: HashMap::new(),
            max_ranges: max_ranges.max(1),
            files: None,
        }
    }

    /// Opens (creating) the store in `dir`, loads it and compacts it.
    pub fn open(dir: &Path, max_ranges: usize) -> Result<(Self, DedupReport), DedupError> {
        std::fs::create_dir_all(dir).map_err(io(dir, "create folder"))?;
        let mut report = DedupReport::default();
        let mut edges: HashMap<(String, String), SeqSet> = HashMap::new();
        let snap_path = dir.join(SNAPSHOT);
        match std::fs::read(&snap_path) {
            Ok(bytes) => match serde_json::from_slice::<Snapshot>(&bytes) {
                Ok(snap) if snap.version == 1 => {
                    for line in snap.edges {
                        merge_line(&mut edges, line);
                    }
                }
                _ => {
                    let aside = dir.join(format!("{SNAPSHOT}.corrupt"));
                    std::fs::rename(&snap_path, &aside).map_err(io(&snap_path, "move aside"))?;
                    report.corrupt_snapshot = Some(aside);
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&snap_path, "read")(e)),
        }
        let log_path = dir.join(LOG);
        match File::open(&log_path) {
            Ok(f) => {
                for line in BufReader::new(f).split(b'\n') {
                    let line = line.map_err(io(&log_path, "read"))?;
                    if line.is_empty() {
                        continue;
                    }
                    match serde_json::from_slice::<EdgeLine>(&line) {
                        Ok(l) => merge_line(&mut edges, l),
                        Err(_) => report.bad_log_lines += 1,
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&log_path, "open")(e)),
        }
        let max_ranges = max_ranges.max(1);
        for set in edges.values_mut() {
            set.trim(max_ranges);
        }
        report.edges = edges.len();
        report.ranges = edges.values().map(SeqSet::range_count).sum();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io(&log_path, "open for append"))?;
        let mut store = DedupStore {
            edges,
            max_ranges,
            files: Some(Files {
                dir: dir.to_owned(),
                log,
                log_bytes: 0,
                dirty_since: None,
            }),
        };
        store.compact()?;
        Ok((store, report))
    }

    /// Whether batch `seq` of `(site, edge)` was recorded.
    pub fn contains(&self, site: &str, edge: &str, seq: u64) -> bool {
        self.edges
            .get(&(site.to_owned(), edge.to_owned()))
            .is_some_and(|s| s.contains(seq))
    }

    /// Records batches as stored: `(site, edge, seq)` each. Appends one log
    /// line per edge with one `write(2)`; compacts when the log is large.
    pub fn record<'a>(
        &mut self,
        batches: impl IntoIterator<Item = (&'a str, &'a str, u64)>,
    ) -> Result<(), DedupError> {
        let mut by_edge: BTreeMap<(&str, &str), Vec<u64>> = BTreeMap::new();
        for (site, edge, seq) in batches {
            by_edge.entry((site, edge)).or_default().push(seq);
        }
        if by_edge.is_empty() {
            return Ok(());
        }
        let mut text = Vec::new();
        for ((site, edge), seqs) in by_edge {
            let r = ranges_of(&seqs);
            let set = self
                .edges
                .entry((site.to_owned(), edge.to_owned()))
                .or_default();
            for &(f, l) in &r {
                set.insert_range(f, l);
            }
            set.trim(self.max_ranges);
            if self.files.is_some() {
                let line = EdgeLine {
                    s: site.to_owned(),
                    e: edge.to_owned(),
                    r,
                };
                if serde_json::to_writer(&mut text, &line).is_ok() {
                    text.push(b'\n');
                }
            }
        }
        let Some(files) = self.files.as_mut() else {
            return Ok(());
        };
        let log_path = files.dir.join(LOG);
        files
            .log
            .write_all(&text)
            .map_err(io(&log_path, "append"))?;
        files.log_bytes += text.len() as u64;
        files.dirty_since.get_or_insert_with(Instant::now);
        if files.log_bytes > COMPACT_LOG_BYTES {
            self.compact()?;
        }
        Ok(())
    }

    /// Fsyncs the log if records were appended more than [`SYNC_INTERVAL`]
    /// ago and not synced since.
    pub fn sync_if_due(&mut self) -> Result<(), DedupError> {
        let due = self
            .files
            .as_ref()
            .and_then(|f| f.dirty_since)
            .is_some_and(|t| t.elapsed() >= SYNC_INTERVAL);
        if due { self.sync() } else { Ok(()) }
    }

    /// Fsyncs the log now (at shutdown).
    pub fn sync(&mut self) -> Result<(), DedupError> {
        let Some(files) = self.files.as_mut() else {
            return Ok(());
        };
        if files.dirty_since.take().is_some() {
            let log_path = files.dir.join(LOG);
            files.log.sync_data().map_err(io(&log_path, "fsync"))?;
        }
        Ok(())
    }

    /// Edges recorded.
    pub fn edge_count(&self) -> usize {
        self.edges.len()
    }

    /// Ranges held, over all edges.
    pub fn range_count(&self) -> usize {
        self.edges.values().map(SeqSet::range_count).sum()
    }

    /// Writes a snapshot of everything and empties the log.
    fn compact(&mut self) -> Result<(), DedupError> {
        let Some(files) = self.files.as_mut() else {
            return Ok(());
        };
        let mut keys: Vec<&(String, String)> = self.edges.keys().collect();
        keys.sort();
        let snap = Snapshot {
            version: 1,
            edges: keys
                .into_iter()
                .filter_map(|k| {
                    self.edges.get(k).map(|set| EdgeLine {
                        s: k.0.clone(),
                        e: k.1.clone(),
                        r: set.ranges().collect(),
                    })
                })
                .collect(),
        };
        let bytes = serde_json::to_vec(&snap).unwrap_or_default();
        let path = files.dir.join(SNAPSHOT);
        // Through `<snapshot>.tmp`, fsynced, renamed, folder fsynced.
        atomic::replace(&path, &bytes, Durability::Synced)?;
        let log_path = files.dir.join(LOG);
        files.log.set_len(0).map_err(io(&log_path, "truncate"))?;
        files.log.sync_all().map_err(io(&log_path, "fsync"))?;
        files.log_bytes = 0;
        files.dirty_since = None;
        Ok(())
    }
}

fn merge_line(edges: &mut HashMap<(String, String), SeqSet>, line: EdgeLine) {
    let set = edges.entry((line.s, line.e)).or_default();
    for (f, l) in line.r {
        set.insert_range(f, l);
    }
}

impl From<IoError> for DedupError {
    fn from(e: IoError) -> Self {
        DedupError::Io {
            path: e.path,
            op: e.op,
            source: e.source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_of(ranges: &[(u64, u64)]) -> SeqSet {
        let mut s = SeqSet::default();
        for &(f, l) in ranges {
            s.insert_range(f, l);
        }
        s
    }

    #[test]
    fn ranges_merge_when_they_overlap_or_touch() {
        let mut s = SeqSet::default();
        for seq in [5, 3, 4, 9, 11, 10, 20] {
            s.insert(seq);
        }
        assert_eq!(
            s.ranges().collect::<Vec<_>>(),
            vec![(3, 5), (9, 11), (20, 20)]
        );
        s.insert_range(6, 8);
        assert_eq!(s.ranges().collect::<Vec<_>>(), vec![(3, 11), (20, 20)]);
        s.insert_range(0, 100);
        assert_eq!(s.ranges().collect::<Vec<_>>(), vec![(0, 100)]);
        s.insert(u64::MAX);
        s.insert(u64::MAX - 1);
        assert_eq!(
            s.ranges().collect::<Vec<_>>(),
            vec![(0, 100), (u64::MAX - 1, u64::MAX)]
        );
        s.insert_range(7, 3);
        assert_eq!(s.range_count(), 2, "an empty range adds nothing");
    }

    #[test]
    fn contains_matches_a_plain_set() {
        // Pseudo-random inserts checked against a BTreeSet.
        let mut s = SeqSet::default();
        let mut plain = std::collections::BTreeSet::new();
        let mut x: u64 = 12345;
        for _ in 0..2000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let seq = (x >> 33) % 500;
            let len = (x >> 20) % 4;
            s.insert_range(seq, seq + len);
            for v in seq..=seq + len {
                plain.insert(v);
            }
        }
        for v in 0..510 {
            assert_eq!(s.contains(v), plain.contains(&v), "seq {v}");
        }
        let mut prev: Option<u64> = None;
        for (f, l) in s.ranges() {
            assert!(f <= l);
            if let Some(p) = prev {
                assert!(f > p + 1, "ranges are disjoint and not adjacent");
            }
            prev = Some(l);
        }
    }

    #[test]
    fn trim_forgets_the_oldest_ranges() {
        let mut s = set_of(&[(1, 1), (3, 3), (5, 5), (7, 7)]);
        assert_eq!(s.trim(2), 2);
        assert_eq!(s.ranges().collect::<Vec<_>>(), vec![(5, 5), (7, 7)]);
        assert!(!s.contains(1));
    }

    #[test]
    fn records_survive_reopen_and_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("dedup");
        {
            let (mut st, report) = DedupStore::open(&d, 100).unwrap();
            assert_eq!(report, DedupReport::default());
            st.record([("s", "e1", 1), ("s", "e1", 2), ("s", "e2", 7)])
                .unwrap();
            st.record([("s", "e1", 4)]).unwrap();
            assert!(st.contains("s", "e1", 2));
            assert!(!st.contains("s", "e1", 3));
            // Dropped without sync or compaction, as by kill -9.
        }
        // A torn line, as a crash in the middle of an append leaves.
        let mut f = OpenOptions::new().append(true).open(d.join(LOG)).unwrap();
        f.write_all(b"{\"s\":\"s\",\"e\":\"e1\",\"r\":[[9,")
            .unwrap();
        drop(f);
        let (st, report) = DedupStore::open(&d, 100).unwrap();
        assert_eq!(report.bad_log_lines, 1);
        assert_eq!(report.edges, 2);
        for (edge, seq, want) in [
            ("e1", 1, true),
            ("e1", 2, true),
            ("e1", 3, false),
            ("e1", 4, true),
            ("e1", 9, false),
            ("e2", 7, true),
            ("e3", 7, false),
        ] {
            assert_eq!(st.contains("s", edge, seq), want, "{edge} {seq}");
        }
        assert!(!st.contains("other-site", "e1", 1), "sites are separate");
        // Opening compacted: the log is empty, the snapshot holds it all.
        assert_eq!(std::fs::metadata(d.join(LOG)).unwrap().len(), 0);
        let (st2, _) = DedupStore::open(&d, 100).unwrap();
        assert!(st2.contains("s", "e1", 4));
    }

    #[test]
    fn a_corrupt_snapshot_is_moved_aside_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SNAPSHOT), b"\x00garbage").unwrap();
        std::fs::write(
            dir.path().join(LOG),
            b"{\"s\":\"s\",\"e\":\"e\",\"r\":[[3,4]]}\n",
        )
        .unwrap();
        let (st, report) = DedupStore::open(dir.path(), 10).unwrap();
        assert_eq!(
            report.corrupt_snapshot.as_deref(),
            Some(dir.path().join("telemetry-seqs.json.corrupt").as_path())
        );
        assert!(st.contains("s", "e", 4), "the log still counts");
    }

    #[test]
    fn per_edge_limit_applies_on_record_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, _) = DedupStore::open(dir.path(), 3).unwrap();
        st.record((0..10).map(|i| ("s", "e", i * 2))).unwrap();
        assert_eq!(st.range_count(), 3);
        assert!(st.contains("s", "e", 18) && !st.contains("s", "e", 0));
        st.sync().unwrap();
        drop(st);
        let (st, _) = DedupStore::open(dir.path(), 2).unwrap();
        assert_eq!(st.range_count(), 2);
    }
}
