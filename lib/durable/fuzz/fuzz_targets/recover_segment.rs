//! Feeds arbitrary bytes to segment recovery as the content of a segment
//! file: in memory (the scanner) and on disk (recovery with its repairs).
//! A panic is a bug; so is a recovered file that does not scan cleanly
//! afterwards, or a report that does not match what was left.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;
use parkwatch_durable::segment::{
    self, Fate, RecoverOptions, Scan, SegmentFormat, recover_segment, scan_reader,
};

const FORMAT: SegmentFormat = SegmentFormat {
    magic: *b"PWOUTBOX",
    version: 1,
};
const MAX_BODY: u64 = 1 << 20;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("pw-durable-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    // Half the inputs get a valid header, so the fuzzer reaches records
    // without having to find the magic first.
    let (with_header, rest) = match data.split_first() {
        Some((&b, rest)) => (b & 1 == 1, rest),
        None => (false, data),
    };
    let mut bytes = Vec::with_capacity(rest.len() + 16);
    if with_header {
        bytes.extend_from_slice(&FORMAT.header());
    }
    bytes.extend_from_slice(rest);

    // In memory.
    let mut offsets = Vec::new();
    let scan = scan_reader(&bytes[..], bytes.len() as u64, FORMAT, MAX_BODY, |off, body| {
        offsets.push((off, body.len()));
        Ok(())
    })
    .expect("reading a slice cannot fail");
    if let Scan::Records { end, records, .. } = &scan {
        assert!(*end <= bytes.len() as u64);
        assert_eq!(*records as usize, offsets.len());
        let mut at = segment::HEADER_LEN;
        for &(off, len) in &offsets {
            assert_eq!(off, at);
            at += segment::record_len(len as u64);
        }
        assert_eq!(at, *end);
    }

    // On disk.
    static N: AtomicU64 = AtomicU64::new(0);
    let path = dir().join(segment::segment_file_name(N.fetch_add(1, Ordering::Relaxed)));
    std::fs::write(&path, &bytes).expect("write input");
    let opts = RecoverOptions {
        max_body_len: MAX_BODY,
        save_corrupt_tails: true,
        sync: false,
    };
    let rec = recover_segment(&path, FORMAT, &opts, |_, _| Ok(())).expect("recover");
    match &rec.fate {
        Fate::Kept => {
            assert_eq!(std::fs::metadata(&path).expect("kept").len(), rec.len);
            let again = recover_segment(&path, FORMAT, &opts, |_, _| Ok(())).expect("again");
            assert!(again.cut.is_none(), "recovered file is not clean: {again:?}");
            assert_eq!(again.records, rec.records);
        }
        Fate::Removed => assert!(!path.exists()),
        Fate::Quarantined(q) => {
            let _ = std::fs::remove_file(&q.moved_to);
        }
    }
    if let Some(cut) = &rec.cut {
        if let Some(saved) = &cut.saved_to {
            let tail = std::fs::read(saved).expect("saved tail");
            assert_eq!(tail, bytes[cut.offset as usize..]);
            let _ = std::fs::remove_file(saved);
        }
    }
    let _ = std::fs::remove_file(&path);
});
