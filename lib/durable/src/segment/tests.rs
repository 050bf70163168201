//! Unit tests of the segment pieces and a model-based property test of
//! [`SegmentLog`].

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

const FORMAT: SegmentFormat = SegmentFormat {
    magic: *b"PWTEST\0\0",
    version: 3,
};

fn ropts() -> RecoverOptions {
    RecoverOptions {
        max_body_len: 1 << 20,
        save_corrupt_tails: true,
        sync: false,
    }
}

fn write_segment(path: &Path, bodies: &[&[u8]]) -> Vec<u64> {
    let mut w = SegmentWriter::create(path, FORMAT).unwrap();
    let offsets = bodies
        .iter()
        .map(|b| w.append(&b[..1], &b[1..]).unwrap())
        .collect();
    w.sync().unwrap();
    offsets
}

fn recover_all(path: &Path) -> (SegmentRecovery, Vec<(u64, Vec<u8>)>) {
    let mut got = Vec::new();
    let r = recover_segment(path, FORMAT, &ropts(), |off, body| {
        got.push((off, body.to_vec()));
        Ok(())
    })
    .unwrap();
    (r, got)
}

#[test]
fn header_round_trip_and_refusals() {
    let h = FORMAT.header();
    assert_eq!(&h[..8], b"PWTEST\0\0");
    assert_eq!(FORMAT.check_header(&h), Ok(()));
    assert!(
        FORMAT
            .check_header(&h[..15])
            .unwrap_err()
            .contains("15 of 16")
    );
    let other = SegmentFormat {
        magic: *b"PWOTHER\0",
        version: 3,
    };
    assert!(other.check_header(&h).unwrap_err().contains("bad magic"));
    let newer = SegmentFormat {
        magic: FORMAT.magic,
        version: 4,
    };
    assert!(newer.check_header(&h).unwrap_err().contains("version 3"));
}

#[test]
fn records_round_trip_and_every_bit_flip_is_detected() {
    let p = frame_prefix(&[b"he", b"llo"]);
    let mut rec = p.to_vec();
    rec.extend_from_slice(b"hello");
    assert_eq!(rec.len() as u64, record_len(5));
    assert_eq!(check_record(&rec), Ok(&b"hello"[..]));
    for byte in 0..rec.len() {
        for bit in 0..8 {
            let mut bad = rec.clone();
            bad[byte] ^= 1 << bit;
            assert!(check_record(&bad).is_err(), "flip at {byte}:{bit}");
        }
    }
    for n in 0..rec.len() {
        assert!(check_record(&rec[..n]).is_err());
    }
}

#[test]
fn segment_names_round_trip() {
    assert_eq!(segment_file_name(42), "00000000000000000042.seg");
    assert_eq!(parse_segment_name("00000000000000000042.seg"), Some(42));
    assert_eq!(parse_segment_name("42.seg"), None);
    assert_eq!(parse_segment_name("0000000000000000004x.seg"), None);
    assert_eq!(parse_segment_name("99999999999999999999.seg"), None);
    assert_eq!(parse_segment_name("00000000000000000042.seg.corrupt"), None);
}

#[test]
fn writer_appends_and_recovery_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(segment_file_name(1));
    let big = vec![7u8; 100_000];
    let offsets = write_segment(&path, &[b"one", b"two!", &big]);
    assert_eq!(offsets, vec![16, 16 + 11, 16 + 11 + 12]);
    let (r, got) = recover_all(&path);
    assert_eq!(r.fate, Fate::Kept);
    assert_eq!(r.cut, None);
    assert_eq!(r.records, 3);
    assert_eq!(r.len, fs::metadata(&path).unwrap().len());
    assert_eq!(got[1], (27, b"two!".to_vec()));
    assert_eq!(got[2].1, big);
}

#[test]
fn torn_tail_is_cut_and_not_saved() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(segment_file_name(1));
    let offsets = write_segment(&path, &[b"aaaa", b"bbbb", b"cccc"]);
    let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(offsets[2] + 5).unwrap();
    let (r, got) = recover_all(&path);
    let cut = r.cut.unwrap();
    assert_eq!(cut.offset, offsets[2]);
    assert!(cut.torn && cut.saved_to.is_none());
    assert!(cut.reason.contains("torn"), "{}", cut.reason);
    assert_eq!(got.len(), 2);
    assert_eq!(fs::metadata(&path).unwrap().len(), offsets[2]);
}

#[test]
fn corrupt_record_is_cut_and_saved_unless_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(segment_file_name(1));
    let offsets = write_segment(&path, &[b"aaaa", b"bbbb", b"cccc"]);
    let mut bytes = fs::read(&path).unwrap();
    bytes[offsets[1] as usize + 9] ^= 1;
    fs::write(&path, &bytes).unwrap();
    let (r, got) = recover_all(&path);
    let cut = r.cut.unwrap();
    assert_eq!(cut.offset, offsets[1]);
    assert!(cut.reason.contains("checksum"), "{}", cut.reason);
    let saved = cut.saved_to.unwrap();
    assert_eq!(fs::read(&saved).unwrap(), bytes[offsets[1] as usize..]);
    assert!(cut.reason.contains(&saved.display().to_string()));
    assert_eq!(got.len(), 1);

    // Zeros after the last record (a crash on some file systems): cut,
    // nothing saved.
    let path = dir.path().join(segment_file_name(2));
    write_segment(&path, &[b"aaaa"]);
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend_from_slice(&[0u8; 100]);
    fs::write(&path, &bytes).unwrap();
    let (r, _) = recover_all(&path);
    assert!(r.cut.unwrap().saved_to.is_none());
}

#[test]
fn the_callback_can_end_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(segment_file_name(1));
    let offsets = write_segment(&path, &[b"good", b"evil", b"good"]);
    let r = recover_segment(&path, FORMAT, &ropts(), |_, body| {
        if body == b"evil" {
            Err("evil record".to_owned())
        } else {
            Ok(())
        }
    })
    .unwrap();
    assert_eq!(r.records, 1);
    assert_eq!(r.cut.unwrap().offset, offsets[1]);
}

#[test]
fn short_bad_and_empty_files() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join(segment_file_name(1));
    fs::write(&short, b"PWTEST").unwrap();
    let (r, _) = recover_all(&short);
    assert_eq!(r.fate, Fate::Removed);
    assert_eq!(r.cut.unwrap().offset, 0);
    assert!(!short.exists());

    let bad = dir.path().join(segment_file_name(2));
    fs::write(&bad, [b'x'; 40]).unwrap();
    let (r, _) = recover_all(&bad);
    let Fate::Quarantined(q) = r.fate else {
        panic!("{r:?}")
    };
    assert!(q.moved_to.to_string_lossy().ends_with(".seg.corrupt"));
    assert!(!bad.exists() && q.moved_to.exists());

    let empty = dir.path().join(segment_file_name(3));
    fs::write(&empty, FORMAT.header()).unwrap();
    let (r, _) = recover_all(&empty);
    assert_eq!((r.fate, r.cut), (Fate::Removed, None));
    assert!(!empty.exists());

    let huge = dir.path().join(segment_file_name(4));
    let mut b = FORMAT.header().to_vec();
    b.extend_from_slice(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 1, 2, 3]);
    fs::write(&huge, &b).unwrap();
    let (r, _) = recover_all(&huge);
    let cut = r.cut.unwrap();
    assert!(!cut.torn && cut.reason.contains("exceeds"), "{cut:?}");

    let listing = list_segments(dir.path()).unwrap();
    assert_eq!(listing, Listing::default());
}

fn log_opts(segment_bytes: u64, sync_each_append: bool) -> LogOptions {
    LogOptions {
        format: FORMAT,
        segment_bytes,
        max_body_len: 1 << 16,
        sync_each_append,
        save_corrupt_tails: false,
    }
}

fn open_log(
    dir: &Path,
    opts: LogOptions,
    below: Option<Position>,
) -> (SegmentLog<u64>, LogRecovery) {
    SegmentLog::open(dir, opts, below, |_, body| {
        let n: [u8; 8] = body
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or("short body")?;
        Ok(u64::from_le_bytes(n))
    })
    .unwrap()
}

fn body(n: u64, len: usize) -> Vec<u8> {
    let mut b = n.to_le_bytes().to_vec();
    b.extend((0..len).map(|i| (n as usize + i) as u8));
    b
}

#[test]
fn log_rolls_consumes_and_resumes_after_the_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, report) = open_log(dir.path(), log_opts(256, true), None);
    assert_eq!(report, LogRecovery::default());
    let mut positions = Vec::new();
    for n in 0..20 {
        let b = body(n, 40);
        positions.push(log.append(&b[..8], &b[8..], n).unwrap());
    }
    assert!(log.segment_ids().count() > 3);
    assert_eq!(log.len(), 20);
    assert_eq!(log.read(positions[5]).unwrap(), body(5, 40));
    let mut cursor = None;
    for n in 0..7 {
        let p = log.pop_front().unwrap().unwrap();
        assert_eq!(p.meta, n);
        cursor = Some(p.next);
    }
    drop(log);
    let (mut log, report) = open_log(dir.path(), log_opts(256, true), cursor);
    assert_eq!(report.records, 13);
    assert_eq!(log.front().unwrap().2, 7);
    let dropped = log.remove_oldest_segment().unwrap();
    assert!(dropped > 0);
    assert_eq!(log.len(), 13 - dropped as u64);
    while log.pop_front().unwrap().is_some() {}
    assert!(log.is_empty() && log.bytes() == 0);
    assert!(list_segments(dir.path()).unwrap().segments.is_empty());
}

/// One step of the property test.
#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    Sync,
    Pop,
    DeleteSegment,
    /// Clean restart: sync, drop, open.
    Reopen,
    /// Crash: drop without sync; the file system loses a random part of the
    /// unsynced bytes of one segment (from a random byte on).
    Crash(prop::sample::Index, prop::sample::Index),
    /// A bad disk: a random segment ends at a random byte, synced or not.
    Truncate(prop::sample::Index, prop::sample::Index),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..120).prop_map(Op::Append),
        2 => Just(Op::Sync),
        2 => Just(Op::Pop),
        1 => Just(Op::DeleteSegment),
        1 => Just(Op::Reopen),
        1 => (any::<prop::sample::Index>(), any::<prop::sample::Index>())
            .prop_map(|(a, b)| Op::Crash(a, b)),
        1 => (any::<prop::sample::Index>(), any::<prop::sample::Index>())
            .prop_map(|(a, b)| Op::Truncate(a, b)),
    ]
}

#[derive(Debug, Clone)]
struct ModelRec {
    n: u64,
    pos: Position,
    len: u64,
    synced: bool,
}

/// The model: the records not consumed, in order, and the layout of every
/// record ever written into each file (consumed or not), to predict cuts.
#[derive(Default)]
struct Model {
    live: VecDeque<ModelRec>,
    layout: BTreeMap<u64, Vec<(u64, u64, bool)>>,
    next_n: u64,
    cursor: Option<Position>,
    /// The segment appends go to.
    active: Option<u64>,
}

impl Model {
    /// The file `seg` now ends at `at`: forget what lay beyond, and return
    /// the offset the log must report as cut, if any.
    fn cut(&mut self, seg: u64, at: u64) -> Option<u64> {
        let layout = self.layout.entry(seg).or_default();
        let expect = if at < HEADER_LEN {
            Some(0)
        } else {
            layout
                .iter()
                .find(|(off, len, _)| *off < at && at < off + len)
                .map(|(off, _, _)| *off)
        };
        layout.retain(|(off, len, _)| off + len <= at && at >= HEADER_LEN);
        self.live
            .retain(|r| r.pos.segment != seg || (r.pos.offset + r.len <= at && at >= HEADER_LEN));
        expect
    }
}

fn check(log: &SegmentLog<u64>, model: &Model) -> Result<(), TestCaseError> {
    let got: Vec<(Position, u64)> = log.iter().map(|(p, _, n)| (p, n)).collect();
    let want: Vec<(Position, u64)> = model.live.iter().map(|r| (r.pos, r.n)).collect();
    prop_assert_eq!(got, want);
    prop_assert_eq!(log.len(), model.live.len() as u64);
    prop_assert_eq!(log.bytes(), model.live.iter().map(|r| r.len).sum::<u64>());
    Ok(())
}

fn seg_files(dir: &Path) -> Vec<(u64, PathBuf)> {
    list_segments(dir).unwrap().segments
}

fn reopen(
    dir: &Path,
    model: &mut Model,
    expect_cut: Option<(PathBuf, u64)>,
) -> Result<SegmentLog<u64>, TestCaseError> {
    let (log, report) = open_log(dir, log_opts(400, false), model.cursor);
    let cuts: Vec<(PathBuf, u64)> = report
        .truncated
        .iter()
        .map(|(p, o, _)| (p.clone(), *o))
        .collect();
    prop_assert_eq!(cuts, expect_cut.into_iter().collect::<Vec<_>>());
    prop_assert!(report.quarantined.is_empty());
    model.active = None;
    for r in &mut model.live {
        // What the log read back from disk is there now.
        r.synced = true;
    }
    for l in model.layout.values_mut() {
        for e in l {
            e.2 = true;
        }
    }
    // Appends after an open go to new segments.
    check(&log, model)?;
    for r in &model.live {
        prop_assert_eq!(log.read(r.pos).unwrap(), body(r.n, r.len as usize - 16));
    }
    Ok(log)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn segment_log_matches_its_model(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let mut model = Model::default();
        let mut log = open_log(dir.path(), log_opts(400, false), None).0;
        for op in ops {
            match op {
                Op::Append(extra) => {
                    let n = model.next_n;
                    model.next_n += 1;
                    let b = body(n, extra);
                    let pos = log.append(&b[..8], &b[8..], n).unwrap();
                    let len = record_len(b.len() as u64);
                    let layout = model.layout.entry(pos.segment).or_default();
                    if pos.offset == HEADER_LEN {
                        // A new segment (its id may be one deleted before).
                        layout.clear();
                    }
                    layout.push((pos.offset, len, false));
                    model.active = Some(pos.segment);
                    model.live.push_back(ModelRec { n, pos, len, synced: false });
                }
                Op::Sync => {
                    log.sync().unwrap();
                    // Only the open segment's records become durable:
                    // segments rolled earlier were not synced.
                    let open = model.active;
                    for r in model.live.iter_mut().filter(|r| Some(r.pos.segment) == open) {
                        r.synced = true;
                    }
                    if let Some(l) = open.and_then(|s| model.layout.get_mut(&s)) {
                        for e in l {
                            e.2 = true;
                        }
                    }
                }
                Op::Pop => {
                    let p = log.pop_front().unwrap();
                    let m = model.live.pop_front();
                    prop_assert_eq!(p.map(|p| (p.pos, p.meta)), m.map(|m| (m.pos, m.n)));
                    if let Some(p) = p {
                        model.cursor = Some(p.next);
                    }
                }
                Op::DeleteSegment => {
                    let first = model.live.front().map(|r| r.pos.segment);
                    if first.is_some() && first == model.active {
                        model.active = None;
                    }
                    let n = log.remove_oldest_segment().unwrap();
                    let before = model.live.len();
                    model.live.retain(|r| Some(r.pos.segment) != first);
                    prop_assert_eq!(n, before - model.live.len());
                }
                Op::Reopen => {
                    log.sync().unwrap();
                    drop(log);
                    log = reopen(dir.path(), &mut model, None)?;
                }
                Op::Crash(which, at) => {
                    drop(log);
                    // Segments holding unsynced bytes, and where those start.
                    let files = seg_files(dir.path());
                    let candidates: Vec<(u64, PathBuf, u64)> = files
                        .into_iter()
                        .filter_map(|(id, path)| {
                            let l = model.layout.get(&id)?;
                            let first_unsynced = l.iter().find(|e| !e.2)?.0;
                            Some((id, path, first_unsynced))
                        })
                        .collect();
                    let mut expect = None;
                    if !candidates.is_empty() {
                        let (id, path, from) = &candidates[which.index(candidates.len())];
                        let len = fs::metadata(path).unwrap().len();
                        let cut = from + at.index((len - from + 1) as usize) as u64;
                        fs::OpenOptions::new().write(true).open(path).unwrap().set_len(cut).unwrap();
                        expect = model.cut(*id, cut).map(|o| (path.clone(), o));
                    }
                    // Everything synced must survive: the cut started after it.
                    let synced_before: Vec<u64> =
                        model.live.iter().filter(|r| r.synced).map(|r| r.n).collect();
                    log = reopen(dir.path(), &mut model, expect)?;
                    let after: Vec<u64> = log.iter().map(|(_, _, n)| n).collect();
                    for n in synced_before {
                        prop_assert!(after.contains(&n), "synced record {} lost", n);
                    }
                }
                Op::Truncate(which, at) => {
                    log.sync().unwrap();
                    drop(log);
                    let files = seg_files(dir.path());
                    let mut expect = None;
                    if !files.is_empty() {
                        let (id, path) = &files[which.index(files.len())];
                        let len = fs::metadata(path).unwrap().len();
                        let cut = at.index(len as usize + 1) as u64;
                        fs::OpenOptions::new().write(true).open(path).unwrap().set_len(cut).unwrap();
                        expect = model.cut(*id, cut).map(|o| (path.clone(), o));
                    }
                    log = reopen(dir.path(), &mut model, expect)?;
                }
            }
            check(&log, &model)?;
        }
    }
}
