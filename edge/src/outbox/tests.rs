//! Tests of the outbox as the uplink and the producers use it, including a
//! real `kill -9` of a child process in the middle of appends and acks.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

/// A payload that embeds its seq and can be checked byte by byte.
fn payload(seq: u64, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len.max(8));
    v.extend_from_slice(&seq.to_le_bytes());
    for i in 8..len.max(8) {
        v.push((seq as usize).wrapping_mul(31).wrapping_add(i) as u8);
    }
    v
}

fn payload_ok(seq: u64, p: &[u8]) -> bool {
    p.len() >= 8 && p == payload(seq, p.len()).as_slice()
}

fn small_opts() -> OutboxOptions {
    OutboxOptions {
        segment_bytes: 4096,
        max_bytes: 16 << 20,
        fsync: FsyncPolicy::Never,
        ..OutboxOptions::default()
    }
}

fn open(dir: &Path, opts: OutboxOptions) -> (Outbox, RecoveryReport) {
    Outbox::open(dir, opts).unwrap()
}

fn drain(ob: &mut Outbox, now: Instant) -> Vec<OutboxRecord> {
    let mut v = Vec::new();
    while let Some(r) = ob.next_unsent(now) {
        v.push(r);
    }
    v
}

fn seqs(v: &[OutboxRecord]) -> Vec<u64> {
    v.iter().map(|r| r.seq).collect()
}

fn seg_files(dir: &Path, queue: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir.join(queue))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

fn append_n(ob: &mut Outbox, class: RecordClass, topic: &str, n: usize, len: usize) -> Vec<u64> {
    (0..n)
        .map(|_| ob.append_with(class, topic, |s| payload(s, len)).unwrap())
        .collect()
}

/// Five 100-byte alarms appended and the outbox closed: the urgent queue's
/// one segment file and the size of each record in it, for the tests that
/// damage the file and reopen.
fn five_alarms_on_disk(dir: &Path) -> (PathBuf, u64) {
    let (mut ob, _) = open(dir, small_opts());
    append_n(&mut ob, RecordClass::Alarm, "alarms", 5, 100);
    ob.close().unwrap();
    (
        seg_files(dir, "urgent").remove(0),
        record_size("alarms", 100),
    )
}

#[test]
fn outbox_can_move_to_another_thread() {
    fn is_send<T: Send>() {}
    is_send::<Outbox>();
}

#[test]
fn append_send_ack_and_reclaim_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ob, report) = open(dir.path(), small_opts());
    assert!(report.is_clean());
    assert_eq!(report.next_seq, 1);
    let rec = record_size("telemetry", 200);
    let per_segment = (4096 - SEGMENT_HEADER_BYTES) / rec;
    let appended = append_n(&mut ob, RecordClass::Telemetry, "telemetry", 100, 200);
    assert_eq!(appended, (1..=100).collect::<Vec<_>>());
    let files = seg_files(dir.path(), "telemetry");
    assert_eq!(files.len() as u64, 100_u64.div_ceil(per_segment));
    assert_eq!(
        files[0].file_name().unwrap().to_str().unwrap(),
        "00000000000000000001.seg"
    );

    let now = Instant::now();
    let sent = drain(&mut ob, now);
    assert_eq!(seqs(&sent), appended);
    assert!(
        sent.iter()
            .all(|r| payload_ok(r.seq, &r.payload) && r.topic == "telemetry")
    );
    assert_eq!(ob.stats().in_flight, 100);

    // Ack the first two segments' worth: exactly those files go.
    let first_two = 2 * per_segment;
    assert_eq!(ob.ack(&[(1, first_two)]), first_two as usize);
    assert_eq!(seg_files(dir.path(), "telemetry"), files[2..].to_vec());

    assert_eq!(ob.ack(&[(first_two + 1, 100)]), (100 - first_two) as usize);
    let left = seg_files(dir.path(), "telemetry");
    assert_eq!(left.len(), 1, "only the open segment stays");
    let st = ob.stats();
    assert_eq!(st.pending_records, 0);
    assert_eq!(st.in_flight, 0);
    assert_eq!(st.acked_total, 100);
    assert_eq!(st.appended_total, 100);
    assert_eq!(st.disk_bytes, fs::metadata(&left[0]).unwrap().len());
    assert!(ob.next_unsent(now).is_none());
}

#[test]
fn alarm_goes_before_a_telemetry_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ob, _) = open(dir.path(), small_opts());
    let tele = append_n(&mut ob, RecordClass::Telemetry, "telemetry", 1000, 100);
    let snap = ob
        .append(RecordClass::Snapshot, "snapshots/a-1", payload(0, 5000))
        .unwrap();
    let alarm = ob
        .append_with(RecordClass::Alarm, "alarms", |s| payload(s, 200))
        .unwrap();
    let status = ob
        .append_with(RecordClass::Status, "status", |s| payload(s, 50))
        .unwrap();
    let sent = drain(&mut ob, Instant::now());
    let mut expect = vec![alarm, status, snap];
    expect.extend(&tele);
    assert_eq!(seqs(&sent), expect);
    assert_eq!(sent[0].class, RecordClass::Alarm);
    assert_eq!(sent[0].topic, "alarms");
    assert_eq!(sent[2].topic, "snapshots/a-1");
}

#[test]
fn unacked_records_are_resent_after_the_timeout_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let opts = OutboxOptions {
        resend_after: Duration::from_secs(30),
        ..small_opts()
    };
    let (mut ob, _) = open(dir.path(), opts);
    let a = append_n(&mut ob, RecordClass::Alarm, "alarms", 3, 100);
    let t = append_n(&mut ob, RecordClass::Telemetry, "telemetry", 2, 100);
    let t0 = Instant::now();
    let first = drain(&mut ob, t0);
    assert!(first.iter().all(|r| r.attempt == 1));
    assert_eq!(first.len(), 5);
    assert_eq!(ob.ack(&[(a[1], a[1])]), 1);

    assert!(ob.next_unsent(t0 + Duration::from_secs(29)).is_none());
    let again = drain(&mut ob, t0 + Duration::from_secs(30));
    assert_eq!(seqs(&again), vec![a[0], a[2], t[0], t[1]]);
    assert!(again.iter().all(|r| r.attempt == 2));
    assert_eq!(ob.stats().in_flight, 4);
    // Not again before another full timeout from the re-send.
    assert!(ob.next_unsent(t0 + Duration::from_secs(59)).is_none());
    assert_eq!(seqs(&drain(&mut ob, t0 + Duration::from_secs(60))).len(), 4);
}

#[test]
fn reconnect_resends_everything_unacked_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ob, _) = open(dir.path(), small_opts());
    let t = append_n(&mut ob, RecordClass::Telemetry, "telemetry", 5, 100);
    let a = append_n(&mut ob, RecordClass::Alarm, "alarms", 4, 100);
    let now = Instant::now();
    // Send part of the backlog, and ack some of that out of order.
    for _ in 0..6 {
        ob.next_unsent(now).unwrap();
    }
    assert_eq!(ob.ack(&[(a[2], a[2]), (t[0], t[0])]), 2);
    ob.on_reconnect();
    assert_eq!(ob.stats().in_flight, 0);
    let again = drain(&mut ob, now);
    assert_eq!(seqs(&again), vec![a[0], a[1], a[3], t[1], t[2], t[3], t[4]]);
    let attempts: Vec<u32> = again.iter().map(|r| r.attempt).collect();
    assert_eq!(attempts, vec![2, 2, 2, 2, 1, 1, 1]);
}

#[test]
fn acks_of_unknown_duplicate_and_reversed_ranges_are_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ob, _) = open(dir.path(), small_opts());
    append_n(&mut ob, RecordClass::Alarm, "alarms", 5, 10);
    drain(&mut ob, Instant::now());
    assert_eq!(ob.ack(&[(1000, 2000), (u64::MAX, u64::MAX)]), 0);
    assert_eq!(ob.ack(&[(2, 2), (2, 2)]), 1);
    assert_eq!(ob.ack(&[(2, 2)]), 0);
    assert_eq!(ob.ack(&[(5, 3)]), 0, "reversed range ignored");
    assert_eq!(
        ob.ack(&[(4, 5), (1, 4)]),
        4,
        "1, 3, 4, 5: the overlap counts once"
    );
    assert_eq!(ob.ack(&[(0, u64::MAX)]), 0);
    let st = ob.stats();
    assert_eq!(st.pending_records, 0);
    assert_eq!(st.acked_total, 5);
    assert_eq!(st.in_flight, 0);
}

#[test]
fn restart_keeps_unacked_records_and_seqs_keep_increasing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ob, _) = open(dir.path(), small_opts());
    let a = append_n(&mut ob, RecordClass::Alarm, "alarms", 10, 300);
    let t = append_n(&mut ob, RecordClass::Telemetry, "telemetry", 10, 700);
    drain(&mut ob, Instant::now());
    ob.ack(&[(a[0], a[4]), (t[9], t[9])]);
    ob.close().unwrap();

    // Clean restart: no gap, acked ones gone, the rest read from disk.
    let (mut ob, report) = open(dir.path(), small_opts());
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.recovered_records, 14);
    assert_eq!(report.next_seq, 21);
    let sent = drain(&mut ob, Instant::now());
    let mut expect: Vec<u64> = a[5..].to_vec();
    expect.extend(&t[..9]);
    assert_eq!(seqs(&sent), expect);
    for r in &sent {
        assert!(payload_ok(r.seq, &r.payload), "seq {}", r.seq);
        let topic = if r.seq <= 10 { "alarms" } else { "telemetry" };
        assert_eq!(r.topic, topic);
    }
    assert_eq!(ob.next_seq(), 21);
    let s = ob.append(RecordClass::Alarm, "alarms", vec![1]).unwrap();
    assert_eq!(s, 21);
    ob.ack(&[(a[5], a[9])]);
    ob.sync().unwrap();
    // Crash: no close. Acks written by `sync` hold; seqs jump above the
    // reserved block so nothing handed out before can be reused.
    std::mem::forget(ob);

    let (mut ob, report) = open(dir.path(), small_opts());
    assert_eq!(report.recovered_records, 10);
    assert!(report.next_seq > 21);
    let sent = drain(&mut ob, Instant::now());
    let mut expect = vec![21];
    expect.extend(&t[..9]);
    assert_eq!(seqs(&sent), expect);
    let next = ob.append(RecordClass::Alarm, "alarms", vec![2]).unwrap();
    assert_eq!(next, report.next_seq);
}

#[test]
fn out_of_order_acks_survive_close_and_crash() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ob, _) = open(dir.path(), small_opts());
    let a = append_n(&mut ob, RecordClass::Alarm, "alarms", 8, 100);
    drain(&mut ob, Instant::now());
    ob.ack(&[(a[2], a[2]), (a[4], a[5])]);
    ob.close().unwrap();
    let (mut ob, report) = open(dir.path(), small_opts());
    assert_eq!(report.acked_records, 3);
    let left = seqs(&drain(&mut ob, Instant::now()));
    assert_eq!(left, vec![a[0], a[1], a[3], a[6], a[7]]);
    ob.ack(&[(a[7], a[7]), (a[0], a[0])]);
    ob.sync().unwrap();
    std::mem::forget(ob);
    let (mut ob, _) = open(dir.path(), small_opts());
    assert_eq!(
        seqs(&drain(&mut ob, Instant::now())),
        vec![a[1], a[3], a[6]]
    );
}

#[test]
fn every_fsync_policy_stores_and_recovers() {
    for fsync in [
        FsyncPolicy::Always,
        FsyncPolicy::default(),
        FsyncPolicy::Never,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let opts = OutboxOptions {
            fsync,
            ..small_opts()
        };
        let (mut ob, _) = open(dir.path(), opts.clone());
        let s = append_n(&mut ob, RecordClass::Telemetry, "telemetry", 40, 300);
        ob.sync_if_due().unwrap();
        std::mem::forget(ob);
        let (mut ob, report) = open(dir.path(), opts);
        assert!(report.is_clean(), "{fsync:?}: {report:?}");
        let back = drain(&mut ob, Instant::now());
        assert_eq!(seqs(&back), s, "{fsync:?}");
        assert!(back.iter().all(|r| payload_ok(r.seq, &r.payload)));
    }
}

#[test]
fn records_are_read_back_from_disk_without_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let opts = OutboxOptions {
        cache_bytes: 0,
        segment_bytes: 1 << 20,
        ..small_opts()
    };
    let (mut ob, _) = open(dir.path(), opts.clone());
    let big = ob
        .append_with(RecordClass::Snapshot, "snapshots/big", |s| {
            payload(s, 3 << 20)
        })
        .unwrap();
    let small = append_n(&mut ob, RecordClass::Telemetry, "telemetry", 500, 1500);
    let sent = drain(&mut ob, Instant::now());
    assert_eq!(sent.len(), 501);
    assert_eq!(sent[0].seq, big);
    assert_eq!(sent[0].payload.len(), 3 << 20);
    assert!(sent.iter().all(|r| payload_ok(r.seq, &r.payload)));
    assert_eq!(seqs(&sent[1..]), small);
    ob.close().unwrap();
    let (mut ob, _) = open(dir.path(), opts);
    let sent = drain(&mut ob, Instant::now());
    assert_eq!(sent.len(), 501);
    assert!(sent.iter().all(|r| payload_ok(r.seq, &r.payload)));
}

#[test]
fn torn_tail_is_cut_at_the_last_intact_record() {
    let dir = tempfile::tempdir().unwrap();
    let (file, rec) = five_alarms_on_disk(dir.path());
    let fifth = SEGMENT_HEADER_BYTES + 4 * rec;
    // A write interrupted in the middle of the fifth record.
    fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(fifth + 30)
        .unwrap();

    let (mut ob, report) = open(dir.path(), small_opts());
    assert_eq!(report.truncated.len(), 1, "{report:?}");
    let (path, offset, reason) = &report.truncated[0];
    assert_eq!(path, &file);
    assert_eq!(*offset, fifth);
    assert!(reason.contains("torn"), "{reason}");
    assert_eq!(report.recovered_records, 4);
    assert_eq!(fs::metadata(&file).unwrap().len(), fifth);
    assert_eq!(seqs(&drain(&mut ob, Instant::now())), vec![1, 2, 3, 4]);
    // Seq 5 was handed out before the crash: it is not reused.
    assert_eq!(ob.append(RecordClass::Alarm, "alarms", vec![0]).unwrap(), 6);
}

#[test]
fn corrupt_record_is_cut_reported_and_saved() {
    let dir = tempfile::tempdir().unwrap();
    let (file, rec) = five_alarms_on_disk(dir.path());
    let third = SEGMENT_HEADER_BYTES + 2 * rec;
    let mut bytes = fs::read(&file).unwrap();
    bytes[(third + rec - 10) as usize] ^= 0x40; // in the payload of seq 3
    fs::write(&file, &bytes).unwrap();

    let (mut ob, report) = open(dir.path(), small_opts());
    assert_eq!(report.truncated.len(), 1);
    let (path, offset, reason) = &report.truncated[0];
    assert_eq!((path, *offset), (&file, third));
    assert!(reason.contains("checksum"), "{reason}");
    let saved = PathBuf::from(format!("{}.{third}.corrupt", file.display()));
    assert!(reason.contains(&saved.display().to_string()), "{reason}");
    assert_eq!(fs::read(&saved).unwrap(), bytes[third as usize..].to_vec());
    assert_eq!(seqs(&drain(&mut ob, Instant::now())), vec![1, 2]);
    assert_eq!(ob.append(RecordClass::Alarm, "alarms", vec![0]).unwrap(), 6);
    drop(ob);
    // The saved tail is left alone on the next open.
    let (_, report) = open(dir.path(), small_opts());
    assert!(report.is_clean(), "{report:?}");
    assert!(report.ignored_files.is_empty());
}

#[test]
fn full_outbox_drops_oldest_telemetry_first_and_refuses_alarms_at_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let opts = OutboxOptions {
        segment_bytes: 4096,
        max_bytes: 64 << 10,
        ..small_opts()
    };
    let (mut ob, _) = open(dir.path(), opts);
    let rec = record_size("telemetry", 1000);
    let tele = append_n(&mut ob, RecordClass::Telemetry, "telemetry", 200, 1000);
    let st = ob.stats();
    assert!(st.disk_bytes <= 64 << 10);
    assert!(st.dropped_telemetry_records > 0);
    assert_eq!(
        st.dropped_telemetry_bytes,
        st.dropped_telemetry_records * rec
    );
    assert_eq!(
        st.dropped_telemetry_records + st.pending_records,
        200,
        "every record is either kept or counted as dropped"
    );
    // What is left is the newest telemetry, contiguous up to the last.
    let kept = seqs(&drain(&mut ob, Instant::now()));
    assert_eq!(kept, tele[tele.len() - kept.len()..].to_vec());
    ob.on_reconnect();

    // Alarms push the remaining telemetry out, then hit the hard limit.
    let mut alarms = 0u64;
    let err = loop {
        match ob.append_with(RecordClass::Alarm, "alarms", |s| payload(s, 1000)) {
            Ok(_) => alarms += 1,
            Err(e) => break e,
        }
    };
    match err {
        OutboxError::Full { class, limit, .. } => {
            assert_eq!(class, RecordClass::Alarm);
            assert_eq!(limit, 64 << 10);
        }
        other => panic!("expected Full, got {other}"),
    }
    let st = ob.stats();
    assert_eq!(st.dropped_telemetry_records, 200);
    assert_eq!(
        st.classes[RecordClass::Telemetry.index()].pending_records,
        0
    );
    assert_eq!(
        st.classes[RecordClass::Alarm.index()].pending_records,
        alarms
    );
    assert_eq!(st.classes[RecordClass::Alarm.index()].full_events, 1);
    assert_eq!(st.full_events, 1);
    // No alarm was dropped: all of them are still there, in order.
    let sent = drain(&mut ob, Instant::now());
    assert_eq!(sent.len() as u64, alarms);
    assert!(sent.iter().all(|r| r.class == RecordClass::Alarm));
    // Telemetry is refused too now, and counted.
    assert!(matches!(
        ob.append(RecordClass::Telemetry, "telemetry", vec![0; 1000]),
        Err(OutboxError::Full {
            class: RecordClass::Telemetry,
            ..
        })
    ));
    assert_eq!(ob.stats().full_events, 2);
    // Acks make room again.
    ob.ack(&[(0, u64::MAX)]);
    ob.append(RecordClass::Alarm, "alarms", vec![0; 1000])
        .unwrap();
}

#[test]
fn snapshots_are_refused_before_alarms() {
    let dir = tempfile::tempdir().unwrap();
    let opts = OutboxOptions {
        segment_bytes: 4096,
        max_bytes: 256 << 10,
        alarm_hard_limit_bytes: Some(128 << 10),
        ..small_opts()
    };
    let (mut ob, _) = open(dir.path(), opts.clone());
    let mut snaps = 0;
    let err = loop {
        match ob.append(RecordClass::Snapshot, "snapshots/x", vec![7; 3000]) {
            Ok(_) => snaps += 1,
            Err(e) => break e,
        }
    };
    assert!(snaps > 30);
    assert!(matches!(
        err,
        OutboxError::Full { class: RecordClass::Snapshot, limit, .. } if limit == opts.snapshot_limit()
    ));
    // The headroom left for alarm events.
    let mut alarms = 0;
    while ob
        .append(RecordClass::Alarm, "alarms", vec![1; 200])
        .is_ok()
    {
        alarms += 1;
    }
    assert!(
        alarms >= 10,
        "{alarms} alarm events fitted after snapshots stopped"
    );
    // Telemetry still has the rest of max_bytes.
    ob.append(RecordClass::Telemetry, "telemetry", vec![2; 1000])
        .unwrap();
}

#[test]
fn bad_topics_and_oversized_payloads_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let opts = OutboxOptions {
        max_record_bytes: 1000,
        ..small_opts()
    };
    let (mut ob, _) = open(dir.path(), opts);
    for bad in ["", "/alarms", "alarms/", "a/+/b", "a/#", "a\0b"] {
        assert!(
            matches!(
                ob.append(RecordClass::Alarm, bad, vec![]),
                Err(OutboxError::InvalidTopic { .. })
            ),
            "{bad:?}"
        );
    }
    let err = ob
        .append(RecordClass::Snapshot, "snapshots/a", vec![0; 1001])
        .unwrap_err();
    assert!(err.to_string().contains("snapshots/a"), "{err}");
    assert_eq!(ob.stats().pending_records, 0);
    assert!(ob.next_unsent(Instant::now()).is_none());
}

#[test]
fn options_validation_lists_every_problem() {
    let opts = OutboxOptions {
        segment_bytes: 10,
        max_bytes: 100,
        max_record_bytes: 0,
        alarm_hard_limit_bytes: Some(200),
        resend_after: Duration::ZERO,
        ..OutboxOptions::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let Err(OutboxError::InvalidOptions { problems }) = Outbox::open(dir.path(), opts) else {
        panic!("invalid options accepted");
    };
    let text = problems.join("\n");
    for field in [
        "segment_bytes",
        "max_bytes",
        "max_record_bytes",
        "alarm_hard_limit_bytes",
        "resend_after",
    ] {
        assert!(text.contains(field), "{field} missing from {text}");
    }
}

#[test]
fn stats_count_pending_per_class_and_age() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ob, _) = open(dir.path(), small_opts());
    append_n(&mut ob, RecordClass::Alarm, "alarms", 2, 100);
    append_n(&mut ob, RecordClass::Status, "status", 1, 10);
    append_n(&mut ob, RecordClass::Telemetry, "telemetry", 3, 100);
    std::thread::sleep(Duration::from_millis(20));
    let st = ob.stats();
    assert_eq!(st.pending_records, 6);
    assert_eq!(
        st.pending_bytes,
        2 * record_size("alarms", 100)
            + record_size("status", 10)
            + 3 * record_size("telemetry", 100)
    );
    assert!(st.oldest_pending_age_ms >= 20);
    let by = |c: RecordClass| st.classes[c.index()];
    assert_eq!(by(RecordClass::Alarm).pending_records, 2);
    assert_eq!(by(RecordClass::Status).pending_records, 1);
    assert_eq!(by(RecordClass::Snapshot).pending_records, 0);
    assert_eq!(by(RecordClass::Snapshot).oldest_pending_age_ms, 0);
    assert!(by(RecordClass::Status).oldest_pending_age_ms >= 20);
    assert_eq!(by(RecordClass::Telemetry).pending_records, 3);
    assert_eq!(st.next_seq, 7);
}

#[test]
fn random_files_never_panic_and_intact_records_survive() {
    let mut rng = StdRng::seed_from_u64(0x0b0c);
    for round in 0..120 {
        let dir = tempfile::tempdir().unwrap();
        let (mut ob, _) = open(dir.path(), small_opts());
        let n = rng.random_range(0..40);
        for _ in 0..n {
            let len = rng.random_range(0..600);
            let class = RecordClass::ALL[rng.random_range(0..4)];
            ob.append_with(class, "t/x", |s| payload(s, len)).unwrap();
        }
        ob.close().unwrap();
        // Damage: random files, random headers, flipped bytes, cut files,
        // garbage ledger.
        for _ in 0..rng.random_range(1..4) {
            let queue = ["urgent", "snapshots", "telemetry"][rng.random_range(0..3)];
            let qdir = dir.path().join(queue);
            let existing = seg_files(dir.path(), queue);
            match rng.random_range(0..5) {
                0 => {
                    let len = rng.random_range(0..3000);
                    let junk: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                    let name = format!("{:020}.seg", rng.random_range(0..100u64));
                    fs::write(qdir.join(name), junk).unwrap();
                }
                1 => {
                    let mut junk = super::format::segment_header().to_vec();
                    junk.extend((0..rng.random_range(0..3000)).map(|_| rng.random::<u8>()));
                    let name = format!("{:020}.seg", rng.random_range(0..100u64));
                    fs::write(qdir.join(name), junk).unwrap();
                }
                2 if !existing.is_empty() => {
                    let f = &existing[rng.random_range(0..existing.len())];
                    let mut b = fs::read(f).unwrap();
                    for _ in 0..rng.random_range(1..5) {
                        let i = rng.random_range(0..b.len());
                        b[i] = rng.random();
                    }
                    fs::write(f, b).unwrap();
                }
                3 if !existing.is_empty() => {
                    let f = &existing[rng.random_range(0..existing.len())];
                    let len = fs::metadata(f).unwrap().len();
                    let cut = rng.random_range(0..=len);
                    fs::OpenOptions::new()
                        .write(true)
                        .open(f)
                        .unwrap()
                        .set_len(cut)
                        .unwrap();
                }
                _ => {
                    let junk: Vec<u8> = (0..rng.random_range(0..200))
                        .map(|_| rng.random())
                        .collect();
                    fs::write(dir.path().join("ledger.json"), junk).unwrap();
                }
            }
        }
        let (mut ob, report) = Outbox::open(dir.path(), small_opts())
            .unwrap_or_else(|e| panic!("round {round}: open failed: {e}"));
        let mut seen = HashSet::new();
        for r in drain(&mut ob, Instant::now()) {
            assert!(seen.insert(r.seq), "round {round}: seq {} twice", r.seq);
            assert!(r.seq <= n, "round {round}: invented seq {}", r.seq);
            assert!(
                payload_ok(r.seq, &r.payload),
                "round {round}: seq {} damaged",
                r.seq
            );
        }
        assert_eq!(seen.len() as u64, report.recovered_records);
        let next = ob.append(RecordClass::Alarm, "alarms", vec![1]).unwrap();
        assert!(next > n, "round {round}: seq {next} reused");
    }
}

// ---- kill -9 ---------------------------------------------------------------

const CHILD_DIR_ENV: &str = "PARKWATCH_OUTBOX_KILL9_DIR";
const CHILD_SEED_ENV: &str = "PARKWATCH_OUTBOX_KILL9_SEED";

fn kill9_opts() -> OutboxOptions {
    OutboxOptions {
        segment_bytes: 64 << 10,
        max_bytes: 1 << 30,
        fsync: FsyncPolicy::default(),
        ledger_interval: Duration::from_millis(5),
        resend_after: Duration::from_millis(300),
        ..OutboxOptions::default()
    }
}

/// The child side of `kill9_at_random_moments_loses_nothing`: appends, sends
/// and acks forever, printing `A <seq> .` after every append returned and
/// `I <first> <last> .` before every ack. Does nothing unless re-executed by
/// that test.
#[test]
#[ignore = "child process of kill9_at_random_moments_loses_nothing"]
fn kill9_child() {
    use std::io::Write;
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let seed = std::env::var(CHILD_SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut ob, _) = Outbox::open(&dir, kill9_opts()).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out).unwrap();
    let mut sent: Vec<u64> = Vec::new();
    loop {
        let (class, topic, len) = match rng.random_range(0..100) {
            0..30 => (RecordClass::Alarm, "alarms", 200),
            30..35 => (RecordClass::Status, "status", 100),
            35..40 => (
                RecordClass::Snapshot,
                "snapshots/a",
                rng.random_range(20_000..120_000),
            ),
            _ => (
                RecordClass::Telemetry,
                "telemetry",
                rng.random_range(500..20_000),
            ),
        };
        let seq = ob.append_with(class, topic, |s| payload(s, len)).unwrap();
        writeln!(out, "A {seq} .").unwrap();
        out.flush().unwrap();
        for _ in 0..rng.random_range(0..4) {
            if let Some(r) = ob.next_unsent(Instant::now()) {
                sent.push(r.seq);
            }
        }
        if sent.len() >= 8 && rng.random_bool(0.3) {
            sent.sort_unstable();
            let mut ranges = Vec::new();
            if rng.random_bool(0.5) {
                // In order: a prefix of what was sent, as one range (it may
                // cover unsent seqs in between, as a real ack may not).
                let k = rng.random_range(1..sent.len());
                ranges.push((sent[0], sent[k - 1]));
                sent.drain(..k);
            } else {
                // Out of order: single seqs.
                for _ in 0..rng.random_range(1..4) {
                    let s = sent.swap_remove(rng.random_range(0..sent.len()));
                    ranges.push((s, s));
                }
            }
            for (lo, hi) in &ranges {
                writeln!(out, "I {lo} {hi} .").unwrap();
            }
            out.flush().unwrap();
            ob.ack(&ranges);
        }
        ob.sync_if_due().unwrap();
    }
}

#[cfg(unix)]
#[test]
fn kill9_at_random_moments_loses_nothing() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::sync::mpsc;

    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("outbox");
    let exe = std::env::current_exe().unwrap();
    let seed: u64 = std::env::var(CHILD_SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("kill9 test seed {seed} (set {CHILD_SEED_ENV} to repeat)");
    let mut rng = StdRng::seed_from_u64(seed);

    let mut reported: BTreeSet<u64> = BTreeSet::new();
    let mut maybe_acked: Vec<(u64, u64)> = Vec::new();
    let mut seen_present: BTreeSet<u64> = BTreeSet::new();
    let mut max_seen = 0u64;
    let mut kills_mid_ack = 0;
    let mut torn_tails = 0;
    for round in 0..8 {
        let err_path = work.path().join(format!("child-{round}.stderr"));
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "outbox::tests::kill9_child",
                "--ignored",
                "--nocapture",
            ])
            .env(CHILD_DIR_ENV, &dir)
            .env(CHILD_SEED_ENV, seed.wrapping_add(round).to_string())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&err_path).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let target = rng.random_range(50..400);
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut lines = Vec::new();
        let mut appends = 0;
        while appends < target {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(l) => {
                    appends += usize::from(l.starts_with("A "));
                    lines.push(l);
                }
                Err(_) => {
                    let exited = child.try_wait().unwrap();
                    assert!(
                        exited.is_none() && Instant::now() < deadline,
                        "child stopped early ({exited:?}): {}",
                        fs::read_to_string(&err_path).unwrap_or_default()
                    );
                }
            }
        }
        std::thread::sleep(Duration::from_micros(rng.random_range(0..30_000)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());

        // What the child said.
        let mut round_appends = Vec::new();
        let mut last_was_intent = false;
        for l in &lines {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                ["A", s, "."] => {
                    round_appends.push(s.parse::<u64>().unwrap());
                    last_was_intent = false;
                }
                ["I", lo, hi, "."] => {
                    maybe_acked.push((lo.parse().unwrap(), hi.parse().unwrap()));
                    last_was_intent = true;
                }
                _ => {}
            }
        }
        kills_mid_ack += usize::from(last_was_intent);
        assert!(
            round_appends.windows(2).all(|w| w[0] < w[1]),
            "seqs not increasing"
        );
        assert!(
            round_appends[0] > max_seen,
            "round {round}: seq {} not above {max_seen} seen before the restart",
            round_appends[0]
        );
        let last_reported = *round_appends.last().unwrap();
        reported.extend(&round_appends);

        // What survived.
        let (mut ob, report) = Outbox::open(&dir, kill9_opts()).unwrap();
        assert!(report.quarantined.is_empty(), "{report:?}");
        assert_eq!(report.ledger_problem, None);
        torn_tails += report.truncated.len();
        let mut present = BTreeSet::new();
        for r in drain(&mut ob, Instant::now()) {
            assert!(present.insert(r.seq), "seq {} handed out twice", r.seq);
            assert!(payload_ok(r.seq, &r.payload), "seq {} damaged", r.seq);
        }
        let covered = |s: u64| maybe_acked.iter().any(|&(lo, hi)| lo <= s && s <= hi);
        for &s in &reported {
            assert!(
                present.contains(&s) || covered(s),
                "round {round}: seq {s} was appended, never acked, and is gone"
            );
        }
        for &s in &present {
            assert!(
                reported.contains(&s) || seen_present.contains(&s) || s > last_reported,
                "round {round}: seq {s} present but never appended"
            );
        }
        seen_present.extend(&present);
        max_seen = max_seen
            .max(present.last().copied().unwrap_or(0))
            .max(last_reported);
        drop(ob);
    }
    eprintln!(
        "kill9: {} appends over 8 kills, {kills_mid_ack} killed right after an ack intent, \
         {torn_tails} torn tails cut",
        reported.len(),
    );
}

// ---- write failures (a full file system) ----------------------------------

const SHORT_DISK_ENV: &str = "PARKWATCH_OUTBOX_SHORT_DISK_DIR";

/// The child side of `failed_writes_are_refused_and_leave_no_torn_record`:
/// appends 1 KB records under a 20 KB file size limit, printing `A <seq> .`
/// for each stored one and `E <error>` for each refused one.
#[test]
#[ignore = "child process of failed_writes_are_refused_and_leave_no_torn_record"]
fn short_disk_child() {
    use std::io::Write;
    let Ok(dir) = std::env::var(SHORT_DISK_ENV) else {
        return;
    };
    let opts = OutboxOptions {
        segment_bytes: 64 << 10,
        ..small_opts()
    };
    let (mut ob, _) = Outbox::open(&dir, opts).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out).unwrap();
    for _ in 0..100 {
        match ob.append_with(RecordClass::Alarm, "alarms", |s| payload(s, 1000)) {
            Ok(seq) => writeln!(out, "A {seq} .").unwrap(),
            Err(e) => writeln!(out, "E {e}").unwrap(),
        }
    }
    out.flush().unwrap();
    std::mem::forget(ob);
}

/// A write that fails half way (here EFBIG from a file size limit, as
/// ENOSPC would) is refused, cut back, and the outbox carries on in a new
/// segment; nothing stored before or after is lost.
#[cfg(target_os = "linux")]
#[test]
fn failed_writes_are_refused_and_leave_no_torn_record() {
    use std::process::Command;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("outbox");
    let exe = std::env::current_exe().unwrap();
    // An ignored SIGXFSZ survives exec, so writes past the limit fail with
    // EFBIG instead of killing the child. `ulimit -f` counts 512-byte blocks.
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"trap "" XFSZ; ulimit -f 40 && exec "$0" "$@""#)
        .arg(&exe)
        .args([
            "--exact",
            "outbox::tests::short_disk_child",
            "--ignored",
            "--nocapture",
        ])
        .env(SHORT_DISK_ENV, &dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("A ")?.strip_suffix(" .")?.parse().ok())
        .collect();
    let refused: Vec<&str> = text.lines().filter(|l| l.starts_with("E ")).collect();
    assert!(!refused.is_empty(), "no write failed: {text}");
    assert!(
        refused.iter().all(|l| l.contains("write record")),
        "{refused:?}"
    );
    assert_eq!(stored.len() + refused.len(), 100);
    assert!(stored.len() > refused.len());

    let (mut ob, report) = Outbox::open(&dir, small_opts()).unwrap();
    assert!(report.truncated.is_empty(), "{report:?}");
    let back = drain(&mut ob, Instant::now());
    assert_eq!(seqs(&back), stored);
    assert!(back.iter().all(|r| payload_ok(r.seq, &r.payload)));
}

#[test]
fn the_unacked_window_holds_back_bulk_records_but_not_alarms() {
    let dir = tempfile::tempdir().unwrap();
    let opts = OutboxOptions {
        resend_after: Duration::from_secs(30),
        ..small_opts()
    };
    let (mut ob, _) = open(dir.path(), opts);
    let rec = record_size("telemetry", 1000);
    let telemetry = append_n(&mut ob, RecordClass::Telemetry, "telemetry", 10, 1000);
    let now = Instant::now();
    // A window of 3 records' bytes: the fourth waits.
    let window = 3 * rec;
    let mut sent = Vec::new();
    while let Some(r) = ob.next_unsent_within(now, 100, window) {
        sent.push(r.seq);
    }
    assert_eq!(sent, telemetry[..3]);
    assert_eq!(ob.stats().in_flight, 3);
    assert_eq!(ob.stats().in_flight_bytes, window);

    // An alarm is not held back by the byte window.
    let alarm = append_n(&mut ob, RecordClass::Alarm, "alarms", 1, 200)[0];
    let next = ob.next_unsent_within(now, 100, window).unwrap();
    assert_eq!(next.seq, alarm);
    assert!(ob.next_unsent_within(now, 100, window).is_none());

    // An ack frees room for exactly as much.
    assert_eq!(ob.ack(&[(telemetry[0], telemetry[0])]), 1);
    assert_eq!(
        ob.stats().in_flight_bytes,
        2 * rec + record_size("alarms", 200)
    );
    let next = ob.next_unsent_within(now, 100, window).unwrap();
    assert_eq!(next.seq, telemetry[3]);
    assert!(ob.next_unsent_within(now, 100, window).is_none());

    // The record limit holds alarms too.
    assert!(ob.next_unsent_within(now, 4, u64::MAX).is_none());

    // A lost ack blocks no longer than resend_after: the expired records
    // leave the window and are handed out again, oldest first.
    let later = now + Duration::from_secs(31);
    let again = ob.next_unsent_within(later, 100, window).unwrap();
    assert_eq!(again.seq, alarm, "alarms first");
    let again = ob.next_unsent_within(later, 100, window).unwrap();
    assert_eq!(again.seq, telemetry[1]);

    // A reconnect empties the window.
    ob.on_reconnect();
    assert_eq!((ob.stats().in_flight, ob.stats().in_flight_bytes), (0, 0));
}
