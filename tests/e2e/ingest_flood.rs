//! A flood of malformed, oversized and unknown-version payloads and of
//! topics outside the sender's branch, sent by an authenticated edge while
//! another edge publishes valid telemetry: every bad message is counted by
//! reason and kept in the dead letters (`GET /deadletters`, `parkctl
//! deadletters`), the valid traffic is stored exactly once and acknowledged
//! promptly, and ingest stays healthy.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parkwatch_protocol::{FieldValue, Point, SCHEMA_VERSION, TelemetryBatch, encode_telemetry};
use parkwatch_tests::stack::{Ingest, SITE};
use parkwatch_tests::{VictoriaMetrics, bin};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

use crate::ingest_support::{
    LoadEdge, LoadSpec, check_exactly_once, health, metric_in, t0, wait_metrics,
};

const ROUNDS: usize = 2000;
/// One round in this many also sends the two oversized payloads.
const BIG_EVERY: usize = 50;

fn valid_batch(edge: &str) -> Vec<u8> {
    encode_telemetry(&TelemetryBatch {
        v: SCHEMA_VERSION,
        site: SITE.to_owned(),
        edge: edge.to_owned(),
        seq: 1,
        created_at_ms: t0(),
        points: vec![Point {
            measurement: "forged".to_owned(),
            ts_ms: t0(),
            tags: vec![],
            fields: vec![("v".to_owned(), FieldValue::F64(1.0))],
        }],
    })
}

/// The flood: `(topic, payload, expected reason)` for one round.
fn round(i: usize) -> Vec<(String, Vec<u8>, &'static str)> {
    let t = |edge: &str, kind: &str| format!("parkwatch/{SITE}/{edge}/{kind}");
    let mut out = vec![
        (
            t("bad-edge", "telemetry"),
            b"\x01\xff\xff\xff\xff\x0fgarbage".to_vec(),
            "malformed",
        ),
        (
            t("bad-edge", "alarms"),
            b"not json at all".to_vec(),
            "malformed",
        ),
        (
            t("bad-edge", "status"),
            br#"{"v":99,"site":"x","edge":"bad-edge"}"#.to_vec(),
            "unsupported_version",
        ),
        // Another edge's topic, this edge's payload.
        (
            t("good-edge", "telemetry"),
            valid_batch("bad-edge"),
            "branch",
        ),
        // An edge that has no credential.
        (t("ghost", "telemetry"), valid_batch("ghost"), "branch"),
        // Inside ingest's subscriptions, but an alarm id too long for a topic.
        (
            t("bad-edge", &format!("snapshots/{}", "x".repeat(200))),
            b"\xff\xd8\xff".to_vec(),
            "bad_topic",
        ),
    ];
    if i.is_multiple_of(BIG_EVERY) {
        let mut big = vec![0x01u8];
        big.resize(1536 * 1024, 0x55);
        out.push((t("bad-edge", "telemetry"), big, "too_large"));
        let mut json = b"{\"v\":1,\"pad\":\"".to_vec();
        json.resize(300 * 1024, b'x');
        out.push((t("bad-edge", "alarms"), json, "too_large"));
    }
    out
}

/// Publishes every round as fast as the broker takes it (QoS 1) and waits
/// for all PUBACKs.
async fn flood(port: u16, rounds: std::ops::Range<usize>) -> usize {
    let mut o = MqttOptions::new("bad-edge", "127.0.0.1", port);
    o.set_credentials("bad-edge", "pw-bad")
        .set_keep_alive(Duration::from_secs(10))
        .set_max_packet_size(4 << 20, 4 << 20);
    let (client, mut el) = AsyncClient::new(o, 1000);
    let acked = Arc::new(AtomicU64::new(0));
    let a = acked.clone();
    let poller = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    a.fetch_add(1, Ordering::SeqCst);
                }
                Ok(_) => {}
                Err(e) => panic!("flood connection failed: {e}"),
            }
        }
    });
    let mut total = 0;
    for i in rounds {
        for (topic, payload, _) in round(i) {
            client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .expect("queue publish");
            total += 1;
        }
    }
    let start = Instant::now();
    while acked.load(Ordering::SeqCst) < total as u64 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "PUBACKs missing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    poller.abort();
    total
}

/// p-th percentile (0..=100) of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

#[test]
fn a_flood_of_bad_messages_is_counted_and_dead_lettered_and_valid_traffic_flows() {
    let vm = VictoriaMetrics::start();
    let ingest = Ingest::start(&vm, &[("good-edge", "pw-good"), ("bad-edge", "pw-bad")]);
    let good = LoadEdge::start(LoadSpec {
        rate: 20.0,
        streams: 50,
        batches: 600,
        ..LoadSpec::new("good-edge", "pw-good", ingest.mqtt_port())
    });
    std::thread::sleep(Duration::from_secs(3));

    // The flood, then one last round: messages on different topics reach
    // ingest in an order of the broker's choosing, so only the last round
    // is sure to be among the newest dead letters.
    let mut expected: std::collections::BTreeMap<&str, f64> = Default::default();
    for i in (0..ROUNDS).chain(0..1) {
        for (_, _, reason) in round(i) {
            *expected.entry(reason).or_default() += 1.0;
        }
    }
    let port = ingest.mqtt_port();
    let started = Instant::now();
    let sent = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async {
                let n = flood(port, 0..ROUNDS).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                n + flood(port, 0..1).await
            })
    })
    .join()
    .expect("flood thread");
    let flood_secs = started.elapsed().as_secs_f64();
    println!("flood: {sent} messages in {flood_secs:.1} s");

    // Every bad message counted under its reason.
    let rejected_as = |text: &str, reason: &str| {
        metric_in(
            text,
            &format!("parkwatch_ingest_rejected_total{{reason=\"{reason}\"}}"),
        )
    };
    let text = wait_metrics(
        &ingest,
        "every rejection counted",
        Duration::from_secs(60),
        |text| expected.iter().all(|(r, n)| rejected_as(text, r) >= *n),
    );
    for (reason, n) in &expected {
        let got = rejected_as(&text, reason);
        assert_eq!(got, *n, "rejected_total{{reason={reason}}}");
    }
    let rejected: f64 = expected.values().sum();
    assert_eq!(rejected, sent as f64);

    // ... and each one either dead-lettered or counted as not kept.
    let dead_letters = |text: &str| {
        (
            metric_in(text, "parkwatch_ingest_deadletters_written_total"),
            metric_in(text, "parkwatch_ingest_deadletters_dropped_total"),
        )
    };
    let text = wait_metrics(
        &ingest,
        "dead letters written",
        Duration::from_secs(30),
        |text| {
            let (w, d) = dead_letters(text);
            w + d >= rejected
        },
    );
    let (written, dropped) = dead_letters(&text);
    println!("dead letters: {written} written, {dropped} dropped (queue full)");
    assert_eq!(written + dropped, rejected);
    assert!(
        written > rejected / 2.0,
        "most are kept: {written} of {rejected}"
    );

    let (status, body) = ingest.get("/deadletters?limit=1000");
    assert_eq!(status, 200, "{body}");
    let list: Value = serde_json::from_str(&body).expect("JSON");
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 1000);
    for reason in expected.keys() {
        assert!(
            items.iter().any(|d| d["reason"] == *reason),
            "no {reason} among the newest dead letters"
        );
    }
    let big = items
        .iter()
        .find(|d| d["reason"] == "too_large" && d["size"] == 1536 * 1024)
        .expect("an oversized telemetry payload");
    assert_eq!(big["truncated"], true);
    assert_eq!(big["payload_hex"].as_str().map(str::len), Some(2 * 4096));
    let ghost = items
        .iter()
        .find(|d| d["topic"] == format!("parkwatch/{SITE}/ghost/telemetry"))
        .expect("the ghost edge's message");
    assert_eq!(ghost["reason"], "branch");
    assert!(
        ghost["error"]
            .as_str()
            .unwrap_or("")
            .contains("no broker credential")
    );

    // The operator's view.
    let out = Command::new(bin("parkctl"))
        .args(["deadletters", "--url"])
        .arg(format!("http://127.0.0.1:{}", ingest.http_port()))
        .args(["--limit", "8"])
        .output()
        .expect("run parkctl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "parkctl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(&format!("parkwatch/{SITE}/")), "{text}");

    // Valid traffic: all of it, once, acknowledged promptly throughout.
    good.wait_all_acked(Duration::from_secs(60));
    let c = check_exactly_once(&vm, &good.spec, Duration::from_secs(30));
    let lat = good.ack_latencies_ms();
    println!(
        "good edge: {c:?}; ack latency p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
        percentile(&lat, 50.0),
        percentile(&lat, 95.0),
        percentile(&lat, 100.0)
    );
    assert!(
        percentile(&lat, 95.0) < 3000.0,
        "valid telemetry was slowed down by the flood"
    );
    assert!(
        vm.export(r#"{__name__="forged_v"}"#).is_empty(),
        "no rejected payload reached the database"
    );
    let (status, h) = health(&ingest);
    assert_eq!(status, 200, "healthy after the flood: {h}");
}
