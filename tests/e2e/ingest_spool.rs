//! VictoriaMetrics stops for 60 s while three synthetic edges publish
//! 3 000 points/s through ingest's embedded broker: ingest spools the
//! telemetry to disk and keeps acknowledging it (so the edges' backlogs do
//! not grow), reports the spool in `/healthz` and `/metrics`, and once the
//! database is back it drains the spool: every point is there, once
//! (VictoriaMetrics runs without `-dedup.minScrapeInterval`, so a doubled
//! point would show).

use std::time::{Duration, Instant};

use parkwatch_tests::stack::{Ingest, IngestOptions};
use parkwatch_tests::{Server as _, VictoriaMetrics, wait_for};

use crate::ingest_support::{LoadEdge, check_loads, health, metric, metric_in, start_loads};

const EDGES: [(&str, &str); 3] = [
    ("load-1", "pw-load-1"),
    ("load-2", "pw-load-2"),
    ("load-3", "pw-load-3"),
];

#[test]
fn victoriametrics_down_for_60s_under_load_every_point_once() {
    let mut vm = VictoriaMetrics::start();
    let ingest = Ingest::start_custom(
        &vm,
        &IngestOptions {
            edges: &EDGES,
            timeseries_extra: "spool_after_ms = 1000\nretry_max_ms = 2000\nrequest_timeout_ms = 3000",
            ..IngestOptions::default()
        },
    );
    // 20 batches/s x 50 points x 3 edges = 3 000 points/s for 85 s.
    let loads = start_loads(&EDGES, ingest.mqtt_port(), 1700);
    let acked = |l: &[LoadEdge]| l.iter().map(LoadEdge::acked).sum::<u64>();

    std::thread::sleep(Duration::from_secs(10));
    assert!(acked(&loads) > 300, "load is flowing before the outage");
    vm.stop();
    let down = Instant::now();

    // While the database is down the telemetry is spooled and acknowledged.
    wait_for(
        "telemetry spooled",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || (metric(&ingest, "parkwatch_ingest_spooled_batches_total") > 0.0).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(20).saturating_sub(down.elapsed()));
    let acked_at_20s = acked(&loads);
    std::thread::sleep(Duration::from_secs(50).saturating_sub(down.elapsed()));
    let acked_at_50s = acked(&loads);
    assert!(
        acked_at_50s >= acked_at_20s + 1500,
        "acks keep flowing during the outage: {acked_at_20s} -> {acked_at_50s}"
    );
    let pending: usize = loads.iter().map(LoadEdge::pending).sum();
    assert!(
        pending < 300,
        "edges' backlogs stay small: {pending} batches"
    );
    let (status, h) = health(&ingest);
    assert_eq!(status, 503, "database down is unhealthy: {h}");
    assert!(
        h["spool"]["batches"].as_u64().unwrap_or(0) > 1000,
        "spool depth in /healthz: {h}"
    );
    let text = ingest.metrics();
    assert!(
        metric_in(&text, "parkwatch_ingest_spool_bytes") > 0.0,
        "spool depth in /metrics"
    );
    assert!(
        metric_in(
            &text,
            "parkwatch_ingest_write_errors_total{class=\"connect\"}"
        ) > 0.0
    );

    std::thread::sleep(Duration::from_secs(60).saturating_sub(down.elapsed()));
    vm.start_again();
    println!(
        "VictoriaMetrics was down for {:.1} s",
        down.elapsed().as_secs_f64()
    );

    for l in &loads {
        l.wait_all_acked(Duration::from_secs(120));
    }
    wait_for(
        "the spool drained",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || (health(&ingest).1["spool"]["records"].as_u64() == Some(0)).then_some(()),
    );
    check_loads(&vm, &loads, Duration::from_secs(60));
    let text = ingest.metrics();
    let spooled = metric_in(&text, "parkwatch_ingest_spooled_batches_total");
    let drained = metric_in(&text, "parkwatch_ingest_spool_drained_batches_total");
    println!("spooled {spooled} batches, drained {drained}");
    assert!(
        spooled > 3000.0,
        "most of the outage went through the spool: {spooled}"
    );
    assert_eq!(spooled, drained);
    let (status, h) = health(&ingest);
    assert_eq!(status, 200, "healthy again: {h}");
}
