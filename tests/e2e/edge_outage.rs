//! An outage of the centre, end to end. A real `parkwatch-edge` streams a
//! real camera with an intrusion rule on the walkway, polls a Modbus gas
//! sensor (pymodbus) whose reading the test swings over and under its
//! threshold every few seconds, and sends a telemetry batch every second to
//! `parkwatch-ingest` (embedded broker) and on to VictoriaMetrics.
//!
//! Ingest is stopped for 60 s. Meanwhile the edge keeps raising alarms and
//! producing telemetry into its on-disk outbox, is killed with SIGKILL and
//! started again on the same outbox. When ingest is back:
//!
//! * every alarm event the edge logged (alarm id and sequence number, from
//!   both of its lives) is in ingest's store exactly once
//!   (`GET /api/v1/alarms/{id}`), no alarm is stored that the edge did not
//!   raise, and every snapshot an event names can be fetched;
//! * the camera's stream points in VictoriaMetrics (one in every telemetry
//!   batch) are exactly the batches the edge counted in its two lives (its
//!   `/metrics`, read through [`telemetry_cut`] before the kill and at the
//!   end), and no timestamp is stored twice.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parkwatch_tests::scene::walkway_intrusion;
use parkwatch_tests::stack::{
    EdgeSpec, Ingest, ModbusSim, VIEWER_TOKEN, edge_config_with_metrics, http_get_bearer,
    start_edge, telemetry_cut,
};
use parkwatch_tests::{
    RtspServer, Server as _, VictoriaMetrics, free_port, media, now_ms, wait_for,
};
use serde_json::Value;

const EDGE: &str = "outage-edge";
const INTERVAL_MS: i64 = 1000;
const OUTAGE: Duration = Duration::from_secs(60);
/// The gas reading swings over and under its threshold this often.
const SWING: Duration = Duration::from_secs(3);

/// `(timestamp ms, value)` of every stored sample of the camera's
/// frames-received counter, sorted by time (duplicates kept).
fn samples(vm: &VictoriaMetrics) -> Vec<(i64, f64)> {
    let selector =
        format!(r#"{{__name__="camera_stream_frames_received",camera="cam1",edge="{EDGE}"}}"#);
    let mut out = Vec::new();
    for series in vm.export(&selector) {
        let (Some(ts), Some(vs)) = (series["timestamps"].as_array(), series["values"].as_array())
        else {
            continue;
        };
        for (t, v) in ts.iter().zip(vs) {
            if let (Some(t), Some(v)) = (t.as_i64(), v.as_f64()) {
                out.push((t, v));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    out
}

/// What the samples say about completeness.
#[derive(Debug)]
struct Coverage {
    /// Distinct timestamps.
    points: usize,
    /// Timestamps stored more than once with the same value (re-sends).
    exact_resends: usize,
    /// Timestamps stored more than once with different values.
    conflicting: Vec<i64>,
    last: i64,
}

fn coverage(samples: &[(i64, f64)]) -> Coverage {
    let mut by_ts: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for (t, v) in samples {
        by_ts.entry(*t).or_default().push(*v);
    }
    let mut exact_resends = 0;
    let mut conflicting = Vec::new();
    for (t, vs) in &by_ts {
        if vs.len() > 1 {
            if vs.iter().all(|v| v == &vs[0]) {
                exact_resends += vs.len() - 1;
            } else {
                conflicting.push(*t);
            }
        }
    }
    Coverage {
        points: by_ts.len(),
        exact_resends,
        conflicting,
        last: by_ts.keys().next_back().copied().unwrap_or(0),
    }
}

/// Distinct stored timestamps in `from < t <= to`.
fn stored_between(samples: &[(i64, f64)], from: i64, to: i64) -> usize {
    let mut ts: Vec<i64> = samples
        .iter()
        .map(|s| s.0)
        .filter(|t| from < *t && *t <= to)
        .collect();
    ts.dedup();
    ts.len()
}

/// Alarm events as the edge logged them (`Alarm.` lines, written once the
/// event is in the outbox): alarm id -> sequence numbers.
fn logged_alarms(log: &str) -> BTreeMap<String, BTreeSet<i64>> {
    let mut out: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for line in log.lines().filter(|l| l.contains(" Alarm. ")) {
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .map(|v| v.trim_matches('"').to_owned())
        };
        let (Some(id), Some(seq)) = (field("alarm="), field("seq=")) else {
            panic!("an alarm log line without alarm id or seq: {line}");
        };
        let seq = seq
            .parse()
            .unwrap_or_else(|e| panic!("seq {seq:?} in {line}: {e}"));
        out.entry(id).or_default().insert(seq);
    }
    out
}

/// What ingest stored for each of `ids`: alarm id -> (seq, snapshot sha256)
/// of every stored event, in the order the API lists them.
fn stored_events(ingest: &Ingest, ids: &[&String]) -> BTreeMap<String, Vec<(i64, Option<String>)>> {
    let mut out = BTreeMap::new();
    for id in ids {
        let (status, body) = http_get_bearer(
            ingest.http_port(),
            &format!("/api/v1/alarms/{id}"),
            Some(VIEWER_TOKEN),
        );
        if status == 404 {
            continue;
        }
        assert_eq!(status, 200, "GET /api/v1/alarms/{id}: {body}");
        let detail: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        let events = detail["events"]
            .as_array()
            .unwrap_or_else(|| panic!("no events in {body}"))
            .iter()
            .map(|e| {
                (
                    e["seq"].as_i64().unwrap_or(-1),
                    e["snapshot_sha256"].as_str().map(str::to_owned),
                )
            })
            .collect();
        out.insert((*id).clone(), events);
    }
    out
}

/// Logged events not (yet) stored.
fn missing(
    logged: &BTreeMap<String, BTreeSet<i64>>,
    stored: &BTreeMap<String, Vec<(i64, Option<String>)>>,
) -> Vec<(String, i64)> {
    logged
        .iter()
        .flat_map(|(id, seqs)| {
            seqs.iter().filter_map(move |seq| {
                let have = stored
                    .get(id)
                    .is_some_and(|ev| ev.iter().any(|(s, _)| s == seq));
                (!have).then(|| (id.clone(), *seq))
            })
        })
        .collect()
}

#[test]
fn alarms_and_telemetry_survive_an_ingest_outage_and_an_edge_crash() {
    let vm = VictoriaMetrics::start();
    let rtsp = RtspServer::start(&[("cam1", &media("vtest-h264.mp4"))]);
    let sim = ModbusSim::start(&["--unit", "1", "--set", "1:h:0:u16:100"]);
    let mut ingest = Ingest::start(&vm, &[(EDGE, "pw-outage")]);
    let dir = tempfile::tempdir().unwrap();
    // Gas in %LEL tenths: alarm over 50 %LEL, ends at or under 45.
    let sensor = format!(
        r#"
[[sensors]]
id = "gas-store"
kind = "gas_lel"
address = "127.0.0.1:{}"
unit_id = 1
register = 0
data_type = "u16"
scale = 0.1
unit = "%LEL"
poll_secs = 0.5
offline_after_secs = 10
  [sensors.threshold]
  above = 50.0
  hysteresis = 5.0
"#,
        sim.port()
    );
    let metrics_port = free_port();
    let config = edge_config_with_metrics(
        dir.path(),
        &EdgeSpec {
            telemetry_secs: INTERVAL_MS as f64 / 1000.0,
            cameras: vec![("cam1".into(), rtsp.url("cam1"), walkway_intrusion())],
            extra: sensor,
            ..EdgeSpec::new(EDGE, "pw-outage", ingest.mqtt_port())
        },
        metrics_port,
    );
    let mut edge = start_edge(&config);

    // The gas reading swings between 80 and 10 %LEL for the whole run.
    let swinging = Arc::new(AtomicBool::new(true));
    let swing = {
        let swinging = swinging.clone();
        let sim = &sim;
        move || {
            let mut high = true;
            while swinging.load(Ordering::Relaxed) {
                sim.control(&format!("set 1 h 0 u16 {}", if high { 800 } else { 100 }));
                high = !high;
                std::thread::sleep(SWING);
            }
            sim.control("set 1 h 0 u16 100");
        }
    };
    /// Stops the swing when the test ends, also when it fails.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(false, Ordering::Relaxed);
        }
    }
    std::thread::scope(|scope| {
        let _stop = StopOnDrop(swinging.clone());
        scope.spawn(swing);
        run_outage(&vm, &mut ingest, &mut edge, metrics_port);
    });
    edge.assert_running();
}

fn run_outage(
    vm: &VictoriaMetrics,
    ingest: &mut Ingest,
    edge: &mut parkwatch_tests::ChildGuard,
    metrics_port: u16,
) {
    // Telemetry and alarms flow for a few seconds before the outage.
    let first = wait_for(
        "camera telemetry in VictoriaMetrics",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || samples(vm).first().map(|s| s.0),
    );
    wait_for(
        "a sensor alarm stored before the outage",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || {
            let logged = logged_alarms(&edge.log());
            let ids: Vec<&String> = logged.keys().collect();
            (!ids.is_empty() && missing(&logged, &stored_events(ingest, &ids)).is_empty())
                .then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(3));

    // The centre goes away.
    let outage_start = Instant::now();
    let outage_start_ms = now_ms();
    let before_outage = logged_alarms(&edge.log());
    let status = ingest.child().stop();
    assert!(status.success(), "ingest did not stop cleanly: {status:?}");

    // A third of the way in, the edge crashes and is started again on the
    // same outbox. Its first life queued `first_life` batches, stamped up to
    // `killed_at_ms` (the kill follows the cut before the next tick).
    std::thread::sleep(OUTAGE / 3);
    let (first_life, killed_at_ms) = telemetry_cut(metrics_port, Duration::from_secs(30));
    edge.kill9();
    edge.start_again();
    let recovered = edge.wait_for_log("Outbox open.", Duration::from_secs(20));
    let pending_after_crash: u64 = recovered
        .split_whitespace()
        .find_map(|w| w.strip_prefix("pending="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(
        pending_after_crash >= 15,
        "the restarted edge found only {pending_after_crash} pending records in its outbox \
         after ~{}s of outage: {recovered}",
        (OUTAGE / 3).as_secs()
    );

    std::thread::sleep(OUTAGE.saturating_sub(outage_start.elapsed()));
    let during_outage = logged_alarms(&edge.log());
    let raised_in_outage: usize = during_outage
        .iter()
        .map(|(id, seqs)| seqs.len() - before_outage.get(id).map_or(0, BTreeSet::len))
        .sum();
    let back = Instant::now();
    let back_ms = now_ms();
    ingest.start_again();
    edge.assert_running();
    // The edge notices on its next reconnect attempt (its backoff grew
    // while the broker was away).
    edge.wait_for_log("MQTT connected", Duration::from_secs(45));
    let reconnect_time = back.elapsed();
    assert!(
        raised_in_outage >= 10,
        "the edge logged only {raised_in_outage} alarm events during the {OUTAGE:?} outage"
    );

    // Every alarm event logged up to the end of the outage is stored.
    let alarms_drained = wait_for(
        "every alarm event raised during the outage to be stored",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || {
            let ids: Vec<&String> = during_outage.keys().collect();
            missing(&during_outage, &stored_events(ingest, &ids))
                .is_empty()
                .then(|| back.elapsed())
        },
    );

    // Telemetry: live points after the outage, and every batch of both
    // lives up to a cut in the second one (`second_life` batches stamped up
    // to `cut_ms`) stored.
    let (second_life, cut_ms) = telemetry_cut(metrics_port, Duration::from_secs(30));
    let drained = wait_for(
        "the telemetry backlog to reach VictoriaMetrics",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || {
            let all = samples(vm);
            let c = coverage(&all);
            (c.last > back_ms + INTERVAL_MS
                && stored_between(&all, i64::MIN, killed_at_ms) >= first_life as usize
                && stored_between(&all, killed_at_ms, cut_ms) >= second_life as usize)
                .then_some(c)
        },
    );
    let drain_time = back.elapsed();

    // Let a few live batches and alarms through, then judge the whole run.
    std::thread::sleep(Duration::from_secs(3));
    let ids: Vec<String> = logged_alarms(&edge.log()).into_keys().collect();
    let stored = stored_events(ingest, &ids.iter().collect::<Vec<_>>());
    // Read after the store: whatever ingest holds was logged by then.
    let logged = logged_alarms(&edge.log());
    let lost = missing(&logged, &stored);
    let logged_events: usize = logged.values().map(BTreeSet::len).sum();
    let stored_events_n: usize = stored.values().map(Vec::len).sum();
    let mut doubled = Vec::new();
    let mut unknown = Vec::new();
    let mut snapshots = BTreeSet::new();
    for (id, events) in &stored {
        let mut seen = BTreeSet::new();
        for (seq, snap) in events {
            if !seen.insert(*seq) {
                doubled.push((id.clone(), *seq));
            }
            if !logged.get(id).is_some_and(|s| s.contains(seq)) {
                unknown.push((id.clone(), *seq));
            }
            snapshots.extend(snap.clone());
        }
    }
    let listed = ingest.api(&format!("/alarms?edge={EDGE}&limit=500"));
    let all = samples(vm);
    let c = coverage(&all);
    let outage_points = all
        .iter()
        .filter(|(t, _)| (outage_start_ms..back_ms).contains(t))
        .count();
    let stored_first = stored_between(&all, i64::MIN, killed_at_ms);
    let stored_second = stored_between(&all, killed_at_ms, cut_ms);
    eprintln!(
        "outage {OUTAGE:?}: the edge logged {logged_events} alarm events on {} alarms \
         ({raised_in_outage} during the outage), ingest stored {stored_events_n}, listing {} \
         alarms, with {} snapshots; telemetry: {} distinct points from {first} to {}, \
         {outage_points} produced during the outage; after ingest came back the edge \
         reconnected in {reconnect_time:?}, the outage's alarms were stored after \
         {alarms_drained:?} and the telemetry backlog after {drain_time:?} (coverage complete \
         then: {} points); batches queued / stored: {first_life} / {stored_first} up to the \
         kill at {killed_at_ms}, {second_life} / {stored_second} from then to {cut_ms}; \
         timestamps stored twice: {} same value, {:?} different",
        logged.len(),
        listed["total"],
        snapshots.len(),
        c.points,
        c.last,
        drained.points,
        c.exact_resends,
        c.conflicting
    );

    // Alarms: every logged event stored, once, and nothing else.
    assert!(lost.is_empty(), "alarm events lost: {lost:?}");
    assert!(doubled.is_empty(), "alarm events stored twice: {doubled:?}");
    assert!(
        unknown.is_empty(),
        "stored events the edge never logged: {unknown:?}"
    );
    assert_eq!(
        listed["total"].as_u64(),
        Some(logged.len() as u64),
        "ingest lists other alarms than the edge raised: {listed}"
    );
    for sha in &snapshots {
        let (status, _) = http_get_bearer(
            ingest.http_port(),
            &format!("/api/v1/blobs/{sha}"),
            Some(VIEWER_TOKEN),
        );
        assert_eq!(status, 200, "snapshot {sha} named by an alarm event");
    }

    // Telemetry: every point once, none missing.
    assert!(
        c.conflicting.is_empty() && c.exact_resends == 0,
        "timestamps stored twice: {} with the same value, {:?} with different values",
        c.exact_resends,
        c.conflicting
    );
    assert_eq!(
        stored_first, first_life as usize,
        "telemetry of the edge's first life: stored points up to the kill at {killed_at_ms} vs \
         batches it queued"
    );
    assert_eq!(
        stored_second, second_life as usize,
        "telemetry of the edge's second life: stored points from the kill at {killed_at_ms} to \
         {cut_ms} vs batches it queued"
    );
    // The outage itself is covered at about one point per interval (less
    // the restart: SIGKILL, start-up with the model load, camera reconnect
    // and the first interval), so the edge really kept producing while cut
    // off.
    let restart_allowance_ms = 8_000;
    let expected = (back_ms - outage_start_ms) / INTERVAL_MS - restart_allowance_ms / INTERVAL_MS;
    assert!(
        outage_points as i64 >= expected,
        "only {outage_points} points during the outage, want at least {expected}"
    );
    assert!(
        drain_time < Duration::from_secs(45),
        "the backlog took {drain_time:?} to drain"
    );
}
