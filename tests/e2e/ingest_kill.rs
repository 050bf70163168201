//! `kill -9` of ingest under load, three times, each time started again:
//! with the edges' outboxes nothing is lost and nothing is doubled.
//!
//! Load: two real `parkwatch-edge` processes (their durable outbox, box
//! health every 0.5 s) and two synthetic edges (rumqttc, 1 000 points/s
//! each, resending whatever is not acknowledged) publish through the
//! embedded broker, which dies with ingest each time.
//!
//! What makes "once" hold: ingest's telemetry dedup record (a batch it
//! recorded as stored is acknowledged again without being written) and,
//! for the one window it cannot close (the database stored a write but
//! ingest died before reading the answer), VictoriaMetrics'
//! `-dedup.minScrapeInterval=1ms`, which docs/timeseries.md requires in
//! production and which this test therefore uses.

use std::time::Duration;

use parkwatch_tests::stack::{
    EdgeSpec, Ingest, edge_config_with_metrics, start_edge, telemetry_cut,
};
use parkwatch_tests::{ChildGuard, Server as _, VictoriaMetrics, free_port};

use crate::ingest_support::{check_loads, metric, start_loads};

const INTERVAL_S: f64 = 0.5;

/// The timestamps of every stored box-health sample of a real edge
/// (each of its telemetry batches carries one), ascending, duplicates kept.
fn health_samples(vm: &VictoriaMetrics, edge: &str) -> Vec<i64> {
    let series = vm.export(&format!(
        r#"{{__name__="edge_health_process_uptime_s",edge="{edge}"}}"#
    ));
    let mut ts: Vec<i64> = series
        .iter()
        .flat_map(|s| {
            s["timestamps"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|t| t.as_i64())
        })
        .collect();
    ts.sort_unstable();
    ts
}

#[test]
fn kill9_ingest_under_load_loses_and_doubles_nothing() {
    let vm = VictoriaMetrics::start_with_args(&["-dedup.minScrapeInterval=1ms"]);
    let creds = [
        ("edge-k1", "pw-k1"),
        ("edge-k2", "pw-k2"),
        ("load-k1", "pw-lk1"),
        ("load-k2", "pw-lk2"),
    ];
    let mut ingest = Ingest::start(&vm, &creds);
    let dir = tempfile::tempdir().unwrap();
    let metrics_ports = [free_port(), free_port()];
    let mut edges: Vec<ChildGuard> = creds[..2]
        .iter()
        .zip(metrics_ports)
        .map(|((edge, password), metrics_port)| {
            let sub = dir.path().join(edge);
            std::fs::create_dir_all(&sub).unwrap();
            let config = edge_config_with_metrics(
                &sub,
                &EdgeSpec {
                    telemetry_secs: INTERVAL_S,
                    ..EdgeSpec::new(edge, password, ingest.mqtt_port())
                },
                metrics_port,
            );
            start_edge(&config)
        })
        .collect();
    let loads = start_loads(&creds[2..], ingest.mqtt_port(), 900);

    let mut duplicates_seen = 0.0;
    for round in 0..3 {
        std::thread::sleep(Duration::from_secs(8));
        duplicates_seen += metric(
            &ingest,
            "parkwatch_ingest_duplicates_total{kind=\"stored\"}",
        );
        let status = ingest.child().kill9();
        println!("round {round}: ingest killed ({status:?})");
        std::thread::sleep(Duration::from_secs(2));
        ingest.start_again();
    }

    for l in &loads {
        l.wait_all_acked(Duration::from_secs(120));
    }
    check_loads(&vm, &loads, Duration::from_secs(60));
    for l in &loads {
        assert!(
            l.connects() >= 4,
            "{}: reconnected after every kill",
            l.spec.edge
        );
    }

    // The real edges: every batch they queued up to a cut (their own count)
    // is stored once, none missing. A gap between samples proves nothing
    // (a starved edge stamps late); the count does.
    for ((edge, _), port) in creds[..2].iter().zip(metrics_ports) {
        let (queued, cut_ms) = telemetry_cut(port, Duration::from_secs(30));
        let stored_to_cut = |ts: &[i64]| ts.iter().filter(|t| **t <= cut_ms).count();
        // What is still on its way has 30 s to arrive; then the counts judge.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let ts = loop {
            let ts = health_samples(&vm, edge);
            if stored_to_cut(&ts) >= queued as usize || std::time::Instant::now() > deadline {
                break ts;
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        let mut distinct = ts.clone();
        distinct.dedup();
        println!(
            "{edge}: queued {queued} batches up to {cut_ms}; {} samples stored up to then, \
             {} in all, {} distinct",
            stored_to_cut(&ts),
            ts.len(),
            distinct.len()
        );
        assert_eq!(ts.len() - distinct.len(), 0, "{edge}: doubled samples");
        assert_eq!(
            stored_to_cut(&ts),
            queued as usize,
            "{edge}: box-health samples stored up to {cut_ms} vs telemetry batches it queued"
        );
    }
    for e in &mut edges {
        assert!(e.is_running(), "edge exited: {}", e.log_tail(30));
    }
    duplicates_seen += metric(
        &ingest,
        "parkwatch_ingest_duplicates_total{kind=\"stored\"}",
    );
    println!("re-sent batches ingest recognised as stored: {duplicates_seen}");
}
