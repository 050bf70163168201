//! Shared by the `ingest_*` end-to-end tests.
//!
//! * [`LoadEdge`]: a synthetic edge built on rumqttc that publishes known
//!   telemetry the way `parkwatch-edge` does: QoS 1 on
//!   `parkwatch/{site}/{edge}/telemetry`, each batch with its own sequence
//!   number, kept until ingest's delivery ack names it and sent again after
//!   every reconnect and every 10 s without an ack (an outbox in memory; the
//!   test process itself is never killed). Batch `seq` holds one point per
//!   stream, `loadtest,stream=sNNN v=<seq>` at `t0_ms + seq`, so what
//!   VictoriaMetrics must hold is known exactly.
//! * [`check_exactly_once`]: reads those points back with VictoriaMetrics'
//!   export API and counts, per series and timestamp, what is missing and
//!   what is doubled.
//! * [`start_loads`] / [`check_loads`]: the usual load of the `ingest_*`
//!   tests (20 batches/s of 50 points per edge, one time base) and its
//!   exactly-once check, with what it took to deliver.
//! * [`metric`] / [`wait_metrics`] / [`health`]: ingest's `/metrics` and
//!   `/healthz`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parkwatch_protocol::{
    FieldValue, Point, SCHEMA_VERSION, TelemetryBatch, decode_ack, encode_telemetry,
};
use parkwatch_tests::stack::{Ingest, SITE};
use parkwatch_tests::{VictoriaMetrics, now_ms, wait_for};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

/// What a [`LoadEdge`] publishes.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Edge id, also its MQTT username and client id.
    pub edge: String,
    /// Its password.
    pub password: String,
    /// The broker on 127.0.0.1.
    pub port: u16,
    /// Batches per second.
    pub rate: f64,
    /// Points (streams) per batch.
    pub streams: usize,
    /// Batches in all (seq 1..=batches).
    pub batches: u64,
    /// Timestamp base: batch `seq` is at `t0_ms + seq`.
    pub t0_ms: i64,
}

impl LoadSpec {
    pub fn new(edge: &str, password: &str, port: u16) -> Self {
        Self {
            edge: edge.to_owned(),
            password: password.to_owned(),
            port,
            rate: 20.0,
            streams: 50,
            batches: 200,
            t0_ms: t0(),
        }
    }
}

/// A fixed timestamp base an hour ago, so points are never in the future.
pub fn t0() -> i64 {
    let now = now_ms();
    now - 3_600_000 - now % 1000
}

#[derive(Debug, Default)]
struct State {
    produced: u64,
    sends: u64,
    connects: u64,
    acked: u64,
    /// seq -> (payload, first sent, last sent)
    pending: BTreeMap<u64, (Vec<u8>, Instant, Instant)>,
    ack_ms: Vec<f64>,
}

/// A synthetic edge publishing on its own thread. See the module doc.
pub struct LoadEdge {
    pub spec: LoadSpec,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LoadEdge {
    pub fn start(spec: LoadSpec) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st, sp) = (state.clone(), stop.clone(), spec.clone());
        let thread = std::thread::Builder::new()
            .name(format!("load-{}", spec.edge))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(publish_loop(sp, s, st));
            })
            .expect("spawn load edge");
        Self {
            spec,
            state,
            stop,
            thread: Some(thread),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Batches acknowledged by ingest so far.
    pub fn acked(&self) -> u64 {
        self.with(|s| s.acked)
    }

    /// Batches waiting for their ack.
    pub fn pending(&self) -> usize {
        self.with(|s| s.pending.len())
    }

    /// Publishes, resends included.
    pub fn sends(&self) -> u64 {
        self.with(|s| s.sends)
    }

    /// MQTT connections made.
    pub fn connects(&self) -> u64 {
        self.with(|s| s.connects)
    }

    /// Time from first publish to ack, per batch (ms), sorted.
    pub fn ack_latencies_ms(&self) -> Vec<f64> {
        let mut v = self.with(|s| s.ack_ms.clone());
        v.sort_by(f64::total_cmp);
        v
    }

    pub fn done(&self) -> bool {
        self.with(|s| s.produced == self.spec.batches && s.pending.is_empty())
    }

    /// Waits until every batch is produced and acknowledged.
    #[track_caller]
    pub fn wait_all_acked(&self, timeout: Duration) {
        wait_for(
            &format!("every batch of {} acknowledged", self.spec.edge),
            timeout,
            Duration::from_millis(200),
            || self.done().then_some(()),
        );
    }
}

impl Drop for LoadEdge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn batch(spec: &LoadSpec, seq: u64) -> Vec<u8> {
    let ts = spec.t0_ms + seq as i64;
    encode_telemetry(&TelemetryBatch {
        v: SCHEMA_VERSION,
        site: SITE.to_owned(),
        edge: spec.edge.clone(),
        seq,
        created_at_ms: ts,
        points: (0..spec.streams)
            .map(|i| Point {
                measurement: "loadtest".to_owned(),
                ts_ms: ts,
                tags: vec![("stream".to_owned(), format!("s{i:03}"))],
                fields: vec![("v".to_owned(), FieldValue::F64(seq as f64))],
            })
            .collect(),
    })
}

async fn publish_loop(spec: LoadSpec, state: Arc<Mutex<State>>, stop: Arc<AtomicBool>) {
    let mut o = MqttOptions::new(spec.edge.clone(), "127.0.0.1", spec.port);
    o.set_credentials(spec.edge.clone(), spec.password.clone())
        .set_keep_alive(Duration::from_secs(5))
        .set_clean_session(true)
        .set_max_packet_size(4 << 20, 4 << 20)
        .set_inflight(100);
    let (client, mut el) = AsyncClient::new(o, 100_000);
    let tel = format!("parkwatch/{SITE}/{}/telemetry", spec.edge);
    let ack = format!("parkwatch/{SITE}/{}/ack", spec.edge);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / spec.rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut resend = tokio::time::interval(Duration::from_secs(2));
    let mut check_stop = tokio::time::interval(Duration::from_millis(100));
    let mut connected = false;
    let mut next: u64 = 1;
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        tokio::select! {
            ev = el.poll() => match ev {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    connected = true;
                    let _ = client.try_subscribe(ack.clone(), QoS::AtLeastOnce);
                    let mut s = lock();
                    s.connects += 1;
                    let now = Instant::now();
                    let mut sent = 0;
                    for (p, _, last) in s.pending.values_mut() {
                        if client.try_publish(tel.clone(), QoS::AtLeastOnce, false, p.clone()).is_ok() {
                            *last = now;
                            sent += 1;
                        }
                    }
                    s.sends += sent;
                }
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic == ack => {
                    if let Ok(a) = decode_ack(&p.payload) {
                        let mut s = lock();
                        let now = Instant::now();
                        for r in &a.acked {
                            let keys: Vec<u64> = s.pending.range(r.first..=r.last).map(|(k, _)| *k).collect();
                            for k in keys {
                                if let Some((_, first, _)) = s.pending.remove(&k) {
                                    s.acked += 1;
                                    s.ack_ms.push(now.duration_since(first).as_secs_f64() * 1000.0);
                                }
                            }
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    connected = false;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            },
            _ = tick.tick(), if next <= spec.batches => {
                let payload = batch(&spec, next);
                let now = Instant::now();
                let mut s = lock();
                if connected && client.try_publish(tel.clone(), QoS::AtLeastOnce, false, payload.clone()).is_ok() {
                    s.sends += 1;
                }
                s.pending.insert(next, (payload, now, now));
                s.produced = next;
                next += 1;
            }
            _ = resend.tick() => {
                if connected {
                    let mut s = lock();
                    let now = Instant::now();
                    let mut sent = 0;
                    for (p, _, last) in s.pending.values_mut() {
                        if now.duration_since(*last) >= Duration::from_secs(10)
                            && client.try_publish(tel.clone(), QoS::AtLeastOnce, false, p.clone()).is_ok()
                        {
                            *last = now;
                            sent += 1;
                        }
                    }
                    s.sends += sent;
                }
            }
            _ = check_stop.tick() => {
                if stop.load(Ordering::SeqCst) {
                    let _ = client.try_disconnect();
                    return;
                }
            }
        }
    }
}

/// What [`check_exactly_once`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Count {
    pub series: usize,
    pub samples: usize,
    pub missing: usize,
    pub doubled: usize,
    pub wrong_value: usize,
}

/// Counts the `loadtest_v` samples of `spec`'s edge in VictoriaMetrics:
/// every stream must hold exactly one sample per batch.
pub fn count_points(vm: &VictoriaMetrics, spec: &LoadSpec) -> Count {
    let series = vm.export(&format!(
        r#"{{__name__="loadtest_v",edge="{}",site="{SITE}"}}"#,
        spec.edge
    ));
    let mut c = Count {
        series: series.len(),
        ..Count::default()
    };
    let mut seen_streams = 0;
    for s in &series {
        seen_streams += 1;
        let ts = s["timestamps"].as_array().cloned().unwrap_or_default();
        let vs = s["values"].as_array().cloned().unwrap_or_default();
        let mut per_ts: HashMap<i64, u32> = HashMap::new();
        for (t, v) in ts.iter().zip(vs.iter()) {
            let t = t.as_i64().unwrap_or(0);
            *per_ts.entry(t).or_default() += 1;
            c.samples += 1;
            if v.as_f64() != Some((t - spec.t0_ms) as f64) {
                c.wrong_value += 1;
            }
        }
        for seq in 1..=spec.batches {
            match per_ts.get(&(spec.t0_ms + seq as i64)) {
                None => c.missing += 1,
                Some(1) => {}
                Some(n) => c.doubled += (*n as usize) - 1,
            }
        }
    }
    c.missing += (spec.streams - seen_streams.min(spec.streams)) * spec.batches as usize;
    c
}

/// Waits until VictoriaMetrics holds every point of `spec` (nothing
/// missing), then asserts that none is doubled or wrong.
#[track_caller]
pub fn check_exactly_once(vm: &VictoriaMetrics, spec: &LoadSpec, timeout: Duration) -> Count {
    let start = Instant::now();
    let last = loop {
        let c = count_points(vm, spec);
        if c.missing == 0 || start.elapsed() > timeout {
            break c;
        }
        std::thread::sleep(Duration::from_millis(700));
    };
    let want = spec.streams * spec.batches as usize;
    assert_eq!(
        (last.missing, last.doubled, last.wrong_value, last.samples),
        (0, 0, 0, want),
        "{}: {last:?} (want {want} samples in {} series)",
        spec.edge,
        spec.streams
    );
    last
}

/// One [`LoadEdge`] per `(edge, password)` on the broker at 127.0.0.1:`port`,
/// each sending `batches` batches of 50 points at 20 batches/s, all on one
/// time base ([`t0`]).
pub fn start_loads(edges: &[(&str, &str)], port: u16, batches: u64) -> Vec<LoadEdge> {
    let base = t0();
    edges
        .iter()
        .map(|(e, p)| {
            LoadEdge::start(LoadSpec {
                rate: 20.0,
                streams: 50,
                batches,
                t0_ms: base,
                ..LoadSpec::new(e, p, port)
            })
        })
        .collect()
}

/// [`check_exactly_once`] for each of `loads`, printing what it found and
/// what delivery took (sends per batch, connections).
#[track_caller]
pub fn check_loads(vm: &VictoriaMetrics, loads: &[LoadEdge], timeout: Duration) {
    for l in loads {
        let c = check_exactly_once(vm, &l.spec, timeout);
        println!(
            "{}: {c:?}; {} sends for {} batches, {} connections",
            l.spec.edge,
            l.sends(),
            l.spec.batches,
            l.connects()
        );
    }
}

/// The value of the `/metrics` line starting with `name_and_labels`
/// (e.g. `parkwatch_ingest_rejected_total{reason="branch"}`); 0 if absent.
pub fn metric(ingest: &Ingest, name_and_labels: &str) -> f64 {
    metric_in(&ingest.metrics(), name_and_labels)
}

pub use parkwatch_tests::stack::metric_in;

/// Polls ingest's `/metrics` until `done` holds for its text, and returns
/// that text.
#[track_caller]
pub fn wait_metrics(
    ingest: &Ingest,
    what: &str,
    timeout: Duration,
    done: impl Fn(&str) -> bool,
) -> String {
    wait_for(what, timeout, Duration::from_millis(300), || {
        let text = ingest.metrics();
        done(&text).then_some(text)
    })
}

/// `/healthz` as (status, JSON).
pub fn health(ingest: &Ingest) -> (u16, Value) {
    let (status, body) = ingest.get("/healthz");
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}
