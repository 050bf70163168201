//! Incidents inside the running service: the configuration sections, and
//! alarms and snapshots published over MQTT to the embedded broker that
//! come out as incidents on the API and as delivery acks to the edge, on
//! SQLite and on PostgreSQL. Also measures alarm-to-incident latency.
//!
//! The benchmark (`#[ignore]`d): `cargo test --release -p parkwatch-ingest
//! --test incidents_ingest -- --ignored --nocapture`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod incidents_support;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use incidents_support::*;
use parkwatch_incidents::sse::SseParser;
use parkwatch_ingest::IngestConfig;
use parkwatch_ingest::api::auth::hash_token;
use parkwatch_protocol::{EdgeTopic, SnapshotRef, TopicKind, decode_ack, encode_json};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config_text(data: &Path, mqtt: u16, http: u16, store: &str) -> String {
    format!(
        r#"
topic_prefix = "parkwatch"
data_dir = "{data}"
site_dir = "{site}"
shutdown_grace_ms = 2000

[broker]
mode = "embedded"
listen = "127.0.0.1:{mqtt}"
allow_anonymous = true

[timeseries]
url = "http://127.0.0.1:9"

[http]
listen = "127.0.0.1:{http}"

{store}

[incidents]
overdue_check_secs = 5

[[api.tokens]]
name = "desk"
role = "supervisor"
sha256 = "{sup}"

[[api.tokens]]
name = "traffic"
role = "department"
department = "traffic"
sha256 = "{traffic}"
"#,
        data = data.display(),
        site = site_dir().display(),
        sup = hash_token("desk-token"),
        traffic = hash_token("traffic-token"),
    )
}

#[test]
fn the_configuration_sections_load_and_report_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ingest.toml");
    let good = config_text(dir.path(), 1884, 8081, "[store]\nkind = \"sqlite\"");
    let loaded = IngestConfig::load_str(&path, &good, &|_| None)
        .unwrap_or_else(|p| panic!("{}", parkwatch_ingest::format_problems(&p)));
    assert!(loaded.site.is_some(), "the site is loaded with the config");
    assert_eq!(loaded.config.api.tokens.len(), 2);

    let bad = good
        .replace("department = \"traffic\"", "department = \"nowhere\"")
        .replace(
            "[store]\nkind = \"sqlite\"",
            "[store]\nkind = \"postgres\"\nmax_connections = 1",
        )
        .replace("overdue_check_secs = 5", "overdue_check_secs = 0");
    let problems = match IngestConfig::load_str(&path, &bad, &|_| None) {
        Ok(_) => panic!("a bad config loaded"),
        Err(p) => parkwatch_ingest::format_problems(&p),
    };
    for key in [
        "api.tokens[1].department: no department \"nowhere\"",
        "store.url: kind = \"postgres\" needs url or url_file",
        "store.max_connections",
        "incidents.overdue_check_secs",
    ] {
        assert!(problems.contains(key), "{key} missing from:\n{problems}");
    }
    assert!(
        problems.contains("ingest.toml:"),
        "with file and line: {problems}"
    );

    let no_site = good.replace(&format!("site_dir = \"{}\"", site_dir().display()), "");
    let p = IngestConfig::load_str(&path, &no_site, &|_| None)
        .err()
        .map(|p| parkwatch_ingest::format_problems(&p))
        .unwrap_or_default();
    assert!(p.contains("site_dir: missing"), "{p}");
}

/// A running ingest (embedded broker, API) with an MQTT edge stand-in.
struct Running {
    http: String,
    client: AsyncClient,
    events: rumqttc::EventLoop,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), parkwatch_ingest::app::AppError>>,
    _dir: tempfile::TempDir,
}

async fn start(store: &str) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let (mqtt, http) = (free_port(), free_port());
    let path = dir.path().join("ingest.toml");
    let text = config_text(&dir.path().join("data"), mqtt, http, store);
    let loaded = IngestConfig::load_str(&path, &text, &|_| None)
        .unwrap_or_else(|p| panic!("{}", parkwatch_ingest::format_problems(&p)));
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(parkwatch_ingest::app::run(loaded, async {
        let _ = stop_rx.await;
    }));
    let base = format!("http://127.0.0.1:{http}");
    let web = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = web
            .get(format!("{base}/api/v1/whoami"))
            .bearer_auth("desk-token")
            .send()
            .await;
        let health: Option<Value> = match web.get(format!("{base}/healthz")).send().await {
            Ok(h) => h.json().await.ok(),
            Err(_) => None,
        };
        let consumer_up = health.is_some_and(|h| h["consumer_connected"] == true);
        if consumer_up && matches!(&r, Ok(resp) if resp.status().is_success()) {
            // The consumer's SUBACK follows its CONNACK closely; an edge
            // re-sends anything unacknowledged anyway (see below).
            tokio::time::sleep(Duration::from_millis(300)).await;
            break;
        }
        assert!(Instant::now() < deadline, "ingest did not come up: {r:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut o = MqttOptions::new("edge-p01", "127.0.0.1", mqtt);
    o.set_keep_alive(Duration::from_secs(10))
        .set_max_packet_size(1 << 20, 1 << 20);
    let (client, events) = AsyncClient::new(o, 1000);
    client
        .subscribe(
            EdgeTopic::new("etdz", "edge-p01", TopicKind::Ack)
                .unwrap()
                .render("parkwatch"),
            QoS::AtLeastOnce,
        )
        .await
        .unwrap();
    Running {
        http: base,
        client,
        events,
        stop,
        task,
        _dir: dir,
    }
}

/// Latencies (ms) from publishing each alarm to its incident's `report`
/// event on the live stream, and whether every seq was acked.
async fn alarms_to_incidents(r: &mut Running, n: usize, pace: Duration) -> Vec<f64> {
    let web = reqwest::Client::new();
    let resp = web
        .get(format!("{}/api/v1/alarms/stream?types=incident", r.http))
        .bearer_auth("desk-token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut body = resp.bytes_stream();
    let alarms_topic = EdgeTopic::new("etdz", "edge-p01", TopicKind::Alarms)
        .unwrap()
        .render("parkwatch");
    let run_id = rand::random::<u32>();
    let publisher = r.client.clone();
    let sent: std::sync::Arc<std::sync::Mutex<HashMap<String, Instant>>> = Default::default();
    let sent2 = sent.clone();
    let snap = jpeg("mqtt snapshot");
    let snap_sha = parkwatch_incidents::blobs::sha256_hex(&snap);
    let publishing = tokio::spawn(async move {
        for i in 0..n {
            let id = format!("mq-{run_id}-{i}");
            let mut a = parking_alarm(&id, 2 * i as u64 + 1, &format!("z-{run_id}-{i}"));
            a.started_at_ms = parkwatch_durable::clock::now_ms();
            a.event_at_ms = a.started_at_ms;
            if i == 0 {
                a.snapshot = Some(SnapshotRef {
                    seq: 0,
                    sha256: snap_sha.clone(),
                    bytes: snap.len() as u32,
                    width: 640,
                    height: 360,
                });
                let t = EdgeTopic::new(
                    "etdz",
                    "edge-p01",
                    TopicKind::Snapshot {
                        alarm_id: id.clone(),
                    },
                )
                .unwrap()
                .render("parkwatch");
                publisher
                    .publish(t, QoS::AtLeastOnce, false, snap.clone())
                    .await
                    .unwrap();
            }
            sent2.lock().unwrap().insert(id, Instant::now());
            publisher
                .publish(
                    alarms_topic.clone(),
                    QoS::AtLeastOnce,
                    false,
                    encode_json(&a),
                )
                .await
                .unwrap();
            tokio::time::sleep(pace).await;
        }
    });
    let mut want: BTreeSet<u64> = (0..n).map(|i| 2 * i as u64 + 1).collect();
    want.insert(0);
    let mut latencies = Vec::new();
    let mut parser = SseParser::default();
    let mut resend = tokio::time::interval(Duration::from_secs(3));
    resend.tick().await;
    let resender = r.client.clone();
    let alarms_topic2 = EdgeTopic::new("etdz", "edge-p01", TopicKind::Alarms)
        .unwrap()
        .render("parkwatch");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60 + n as u64 / 5);
    while latencies.len() < n || !want.is_empty() {
        tokio::select! {
            ev = r.events.poll() => {
                if let Ok(Event::Incoming(Packet::Publish(p))) = ev {
                    let ack = decode_ack(&p.payload).unwrap();
                    for s in ack.seqs() {
                        want.remove(&s);
                    }
                }
            }
            chunk = body.next() => {
                let chunk = chunk.expect("stream open").unwrap();
                for m in parser.push(&chunk) {
                    let v: Value = serde_json::from_str(&m.data).unwrap();
                    let e = &v["incident"]["entry"];
                    if e["kind"] == "report"
                        && let Some(id) = e["data"]["alarm_id"].as_str()
                        && let Some(t) = sent.lock().unwrap().remove(id)
                    {
                        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                }
            }
            _ = resend.tick() => {
                // Like the edge's outbox: what is not acknowledged is sent again.
                if publishing.is_finished() {
                    for seq in want.iter().copied().filter(|s| s % 2 == 1) {
                        let i = (seq - 1) / 2;
                        let mut a = parking_alarm(&format!("mq-{run_id}-{i}"), seq, &format!("z-{run_id}-{i}"));
                        a.started_at_ms = parkwatch_durable::clock::now_ms();
                        a.event_at_ms = a.started_at_ms;
                        let _ = resender.try_publish(alarms_topic2.clone(), QoS::AtLeastOnce, false, encode_json(&a));
                    }
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                panic!("timeout: {} of {n} incidents seen, not acked: {want:?}", latencies.len());
            }
        }
    }
    latencies
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let i = ((s.len() as f64 - 1.0) * p).round() as usize;
    s[i.min(s.len() - 1)]
}

async fn stop(r: Running) {
    let _ = r.stop.send(());
    let mut events = r.events;
    let poll = tokio::spawn(async move { while events.poll().await.is_ok() {} });
    let done = tokio::time::timeout(Duration::from_secs(15), r.task).await;
    poll.abort();
    assert!(
        matches!(done, Ok(Ok(Ok(())))),
        "ingest stopped cleanly: {done:?}"
    );
}

/// `GET url` as the desk, decoded as JSON.
async fn get_json(web: &reqwest::Client, url: String) -> Value {
    web.get(url)
        .bearer_auth("desk-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn check(store: &str) {
    let mut r = start(store).await;
    let lat = alarms_to_incidents(&mut r, 20, Duration::from_millis(20)).await;
    println!(
        "alarm -> incident on the stream: n={} p50={:.1} ms p95={:.1} ms",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.95)
    );
    let web = reqwest::Client::new();
    let list = get_json(
        &web,
        format!("{}/api/v1/incidents?camera=cam-p01-1&limit=500", r.http),
    )
    .await;
    assert_eq!(list["total"], 20, "one incident per zone");
    let first = list["items"].as_array().unwrap().last().unwrap();
    let d = get_json(&web, format!("{}/api/v1/incidents/{}", r.http, first["id"])).await;
    assert!(
        d["alarms"][0]["snapshot"].is_string(),
        "snapshot linked: {d}"
    );
    assert!(percentile(&lat, 0.95) < 2000.0, "{lat:?}");
    stop(r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_over_mqtt_become_incidents_and_are_acked_on_sqlite() {
    check("[store]\nkind = \"sqlite\"").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_over_mqtt_become_incidents_and_are_acked_on_postgres() {
    let pg = pg::PgServer::start().unwrap_or_else(|e| panic!("cannot start PostgreSQL: {e}"));
    let url = pg.database("parkwatch_mqtt").await.unwrap();
    check(&format!("[store]\nkind = \"postgres\"\nurl = \"{url}\"")).await;
}

/// Benchmark: alarm arrival to incident visible, p50/p95, on both stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run with --release -- --ignored --nocapture"]
async fn bench_alarm_to_incident_latency() {
    let pg = pg::PgServer::start().unwrap_or_else(|e| panic!("cannot start PostgreSQL: {e}"));
    let url = pg.database("parkwatch_bench").await.unwrap();
    for (name, store) in [
        ("sqlite", "[store]\nkind = \"sqlite\"".to_owned()),
        (
            "postgres",
            format!("[store]\nkind = \"postgres\"\nurl = \"{url}\""),
        ),
    ] {
        let mut r = start(&store).await;
        let n = 500;
        let lat = alarms_to_incidents(&mut r, n, Duration::from_millis(10)).await;
        println!(
            "BENCH alarm->incident {name}: n={n} p50={:.1} ms p95={:.1} ms p99={:.1} ms max={:.1} ms",
            percentile(&lat, 0.5),
            percentile(&lat, 0.95),
            percentile(&lat, 0.99),
            percentile(&lat, 1.0)
        );
        stop(r).await;
    }
}
