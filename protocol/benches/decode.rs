//! Decode throughput of the payloads ingest sees most: alarms (JSON) and
//! telemetry batches (postcard), including validation. No harness
//! dependency: run with `cargo bench -p parkwatch-protocol` and read the
//! printed rates.

use std::hint::black_box;
use std::time::{Duration, Instant};

use parkwatch_protocol::{
    FieldValue, Point, TopicKind, decode_alarm, decode_message, decode_status, decode_telemetry,
    encode_json, encode_telemetry, examples,
};

/// Runs `f` repeatedly for about a second and prints calls/s and MB/s.
fn bench(name: &str, bytes: usize, mut f: impl FnMut()) {
    for _ in 0..100 {
        f();
    }
    let mut n = 0u64;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        for _ in 0..100 {
            f();
        }
        n += 100;
    }
    let secs = start.elapsed().as_secs_f64();
    let per_s = n as f64 / secs;
    println!(
        "{name:<40} {bytes:>8} B  {:>10.0} /s  {:>8.1} MB/s  {:>8.2} us each",
        per_s,
        per_s * bytes as f64 / 1e6,
        1e6 / per_s
    );
}

fn main() {
    let alarm = encode_json(&examples::alarm_update());
    bench("decode_alarm (update, 2 objects)", alarm.len(), || {
        black_box(decode_alarm(black_box(&alarm)).is_ok());
    });
    let status = encode_json(&examples::status());
    bench("decode_status (3 cameras)", status.len(), || {
        black_box(decode_status(black_box(&status)).is_ok());
    });

    let small = encode_telemetry(&examples::telemetry());
    bench("decode_telemetry (3 points)", small.len(), || {
        black_box(decode_telemetry(black_box(&small)).is_ok());
    });

    // A full-size batch: 5 000 points of 2 tags and 3 fields.
    let mut batch = examples::telemetry();
    batch.points = (0..5_000)
        .map(|i| Point {
            measurement: "camera".to_owned(),
            ts_ms: examples::T0_MS + i,
            tags: vec![
                ("camera".to_owned(), format!("cam-{:02}", i % 32)),
                ("edge".to_owned(), "edge-07".to_owned()),
            ],
            fields: vec![
                ("fps".to_owned(), FieldValue::F64(12.5)),
                ("frames".to_owned(), FieldValue::U64(i as u64 * 12)),
                ("streaming".to_owned(), FieldValue::Bool(true)),
            ],
        })
        .collect();
    let big = encode_telemetry(&batch);
    bench("decode_telemetry (5000 points)", big.len(), || {
        black_box(decode_telemetry(black_box(&big)).is_ok());
    });
    bench("encode_telemetry (5000 points)", big.len(), || {
        black_box(encode_telemetry(black_box(&batch)));
    });
    let as_json = encode_json(&batch);
    println!(
        "size of the 5000-point batch: postcard {} B, JSON {} B",
        big.len(),
        as_json.len()
    );

    // Hostile: 1 MiB of the smallest possible points (4 bytes each). Decoded
    // in full, then rejected for exceeding MAX_POINTS_PER_BATCH.
    let mut hostile = examples::telemetry();
    hostile.points = vec![
        Point {
            measurement: String::new(),
            ts_ms: 0,
            tags: Vec::new(),
            fields: Vec::new(),
        };
        262_000
    ];
    let hostile = encode_telemetry(&hostile);
    assert!(decode_telemetry(&hostile).is_err());
    bench(
        "decode_telemetry hostile (262k points)",
        hostile.len(),
        || {
            black_box(decode_telemetry(black_box(&hostile)).is_err());
        },
    );

    // Hostile: one point with 1 MiB of empty tags (2 bytes each).
    let mut tags = examples::telemetry();
    tags.points.truncate(1);
    tags.points[0].tags = vec![(String::new(), String::new()); 524_000];
    let tags = encode_telemetry(&tags);
    assert!(decode_telemetry(&tags).is_err());
    bench("decode_telemetry hostile (524k tags)", tags.len(), || {
        black_box(decode_telemetry(black_box(&tags)).is_err());
    });

    let garbage = vec![0xA5u8; 64 * 1024];
    bench("decode_message garbage (telemetry)", garbage.len(), || {
        black_box(decode_message(&TopicKind::Telemetry, black_box(&garbage)).is_err());
    });
}
