//! `bench-ingest`: throughput and latency of `parkwatch-ingest` against
//! real servers, printed as numbers.
//!
//! It starts everything itself, each in a temporary folder: Debian's
//! VictoriaMetrics, `parkwatch-ingest` (the binary beside this one; build
//! both with `cargo build --release -p parkwatch-ingest --bins`), and for
//! the external run Debian's Mosquitto with parkwatch's ACL. Then:
//!
//! 1. **Messages/s from many simulated edges into storage**, once through
//!    the embedded rumqttd and once through Mosquitto in external mode,
//!    side by side: `--edges` rumqttc clients each publish telemetry
//!    batches of `--points` points (QoS 1), keeping at most `--window`
//!    batches not yet acknowledged by ingest (a real edge's uplink keeps
//!    up to 128 publishes in flight), for `--seconds`. A batch counts when ingest's delivery ack names it, that
//!    is once VictoriaMetrics stored it.
//! 2. **Points/s per core**: points written divided by the CPU seconds the
//!    ingest process used meanwhile (from `/proc/<pid>/stat`), beside
//!    VictoriaMetrics' and the broker's CPU.
//! 3. **Alarm latency, arrival to durable storage**: ingest runs with the
//!    etdz site (`firmware-config/sites/etdz`, SQLite store); `--alarms`
//!    alarm events are published at `--alarm-rate` per second; p50/p95
//!    come from ingest's own histogram
//!    `parkwatch_ingest_alarm_store_seconds` (MQTT arrival to the store's
//!    commit), interpolated within its buckets, with the publisher's view
//!    (publish to delivery ack, which adds the 200 ms ack batching) beside.
//!
//! Example: `target/release/bench-ingest --edges 50 --points 100 --seconds 20`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use clap::Parser;
use parkwatch_protocol::{
    AlarmEvent, AlarmEventType, AlarmKind, FieldValue, Point, SCHEMA_VERSION, Severity,
    TelemetryBatch, decode_ack, encode_json, encode_telemetry,
};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

/// Throughput and latency of parkwatch-ingest against real servers.
#[derive(Debug, Parser)]
#[command(name = "bench-ingest")]
struct Args {
    /// Simulated edges (MQTT clients).
    #[arg(long, default_value_t = 50)]
    edges: usize,
    /// Points per telemetry batch.
    #[arg(long, default_value_t = 100)]
    points: usize,
    /// Batches each edge may have unacknowledged by ingest (a real edge's
    /// uplink keeps up to 128 publishes in flight).
    #[arg(long, default_value_t = 128)]
    window: usize,
    /// Seconds of publishing per run.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Which throughput runs: embedded, mosquitto, both, none.
    #[arg(long, default_value = "both")]
    brokers: String,
    /// Alarm events for the latency run (0: skip it).
    #[arg(long, default_value_t = 500)]
    alarms: usize,
    /// Alarm events per second.
    #[arg(long, default_value_t = 50.0)]
    alarm_rate: f64,
    /// Also run the `--edges` telemetry edges during the alarm run.
    #[arg(long)]
    alarm_under_load: bool,
    /// `timeseries.batch_points` of ingest.
    #[arg(long, default_value_t = 5000)]
    batch_points: usize,
    /// The parkwatch-ingest binary (default: beside this one).
    #[arg(long)]
    ingest_bin: Option<PathBuf>,
}

/// A folder under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<Self> {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "bench-ingest-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).with_context(|| format!("create {}", p.display()))?;
        Ok(TempDir(p))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("BENCH_KEEP").is_some() {
            eprintln!("bench-ingest: kept {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A child process killed on drop.
struct Proc {
    name: &'static str,
    child: Child,
    _dir: Option<TempDir>,
}

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command, dir: Option<TempDir>) -> anyhow::Result<Self> {
        let log = match &dir {
            Some(d) => std::fs::File::create(d.path().join(format!("{name}.log")))
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null()),
            None => Stdio::null(),
        };
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        Ok(Proc {
            name,
            child,
            _dir: dir,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds (user + system) used so far.
    fn cpu_secs(&self) -> f64 {
        cpu_secs(self.pid()).unwrap_or(f64::NAN)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = self.name;
    }
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_port(port: u16, what: &str) -> anyhow::Result<()> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{what} did not listen on {port}")
}

fn http_get(port: u16, path: &str) -> anyhow::Result<String> {
    use std::io::Read as _;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default())
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn start_vm() -> anyhow::Result<(Proc, u16)> {
    let dir = TempDir::new()?;
    let port = free_port()?;
    let p = Proc::spawn(
        "victoria-metrics",
        Command::new("/usr/bin/victoria-metrics")
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!(
                "-storageDataPath={}",
                dir.path().join("vm").display()
            ))
            .args(["-retentionPeriod=100y", "-loggerLevel=WARN"]),
        Some(dir),
    )?;
    wait_port(port, "VictoriaMetrics")?;
    Ok((p, port))
}

fn start_mosquitto(users: &[(String, String)]) -> anyhow::Result<(Proc, u16)> {
    let dir = TempDir::new()?;
    let passwd = dir.path().join("passwd");
    for (i, (u, p)) in users.iter().enumerate() {
        let mut c = Command::new("/usr/bin/mosquitto_passwd");
        c.arg("-b");
        if i == 0 {
            c.arg("-c");
        }
        let st = c.arg(&passwd).args([u, p]).status()?;
        if !st.success() {
            bail!("mosquitto_passwd failed for {u}");
        }
    }
    let port = free_port()?;
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\nacl_file {}\n\
             persistence false\nmax_inflight_messages 100\nmax_queued_messages 100000\n\
             message_size_limit 5242880\n",
            passwd.display(),
            repo_root().join("deploy/mosquitto/acl").display()
        ),
    )?;
    let p = Proc::spawn(
        "mosquitto",
        Command::new("/usr/sbin/mosquitto").arg("-c").arg(&conf),
        Some(dir),
    )?;
    wait_port(port, "mosquitto")?;
    Ok((p, port))
}

struct Ingest {
    proc: Proc,
    http: u16,
    mqtt: u16,
}

fn start_ingest(bin: &Path, body: &str, mqtt: Option<u16>) -> anyhow::Result<Ingest> {
    let dir = TempDir::new()?;
    let http = free_port()?;
    let mqtt_port = match mqtt {
        Some(p) => p,
        None => free_port()?,
    };
    let text = body
        .replace("{DATA}", &dir.path().join("data").display().to_string())
        .replace("{MQTT}", &mqtt_port.to_string())
        .replace("{HTTP}", &http.to_string());
    let path = dir.path().join("ingest.toml");
    std::fs::write(&path, text)?;
    let proc = Proc::spawn(
        "parkwatch-ingest",
        Command::new(bin).arg("--config").arg(&path).env(
            "RUST_LOG",
            std::env::var("BENCH_INGEST_LOG").unwrap_or_else(|_| "warn".to_owned()),
        ),
        Some(dir),
    )?;
    wait_port(http, "parkwatch-ingest")?;
    // Connected to the broker and healthy.
    let start = Instant::now();
    loop {
        let m = http_get(http, "/metrics").unwrap_or_default();
        if metric(&m, "parkwatch_ingest_consumer_connected") == 1.0 {
            break;
        }
        if start.elapsed() > Duration::from_secs(30) {
            bail!("ingest did not connect to its broker");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(Ingest {
        proc,
        http,
        mqtt: mqtt_port,
    })
}

/// What one simulated edge did.
#[derive(Default)]
struct EdgeCounts {
    acked: AtomicU64,
    published: AtomicU64,
}

async fn sim_edge(
    edge: String,
    password: String,
    port: u16,
    points: usize,
    window: usize,
    stop: Arc<AtomicBool>,
    counts: Arc<EdgeCounts>,
) {
    let mut o = MqttOptions::new(edge.clone(), "127.0.0.1", port);
    o.set_credentials(edge.clone(), password)
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(4 << 20, 4 << 20)
        .set_inflight(100);
    let (client, mut el) = AsyncClient::new(o, 1000);
    let site = "bench";
    let tel = format!("parkwatch/{site}/{edge}/telemetry");
    let ack = format!("parkwatch/{site}/{edge}/ack");
    let mut outstanding: BTreeMap<u64, ()> = BTreeMap::new();
    let mut next: u64 = 1;
    let mut subscribed = false;
    let t0 = 1_790_000_000_000i64;
    let stream_names: Vec<String> = (0..points).map(|i| format!("s{i:03}")).collect();
    loop {
        let draining = stop.load(Ordering::Relaxed);
        if draining && outstanding.is_empty() {
            let _ = client.try_disconnect();
            return;
        }
        if subscribed && !draining {
            while outstanding.len() < window {
                let ts = t0 + next as i64;
                let batch = TelemetryBatch {
                    v: SCHEMA_VERSION,
                    site: site.to_owned(),
                    edge: edge.clone(),
                    seq: next,
                    created_at_ms: ts,
                    points: stream_names
                        .iter()
                        .map(|s| Point {
                            measurement: "bench".to_owned(),
                            ts_ms: ts,
                            tags: vec![("stream".to_owned(), s.clone())],
                            fields: vec![("v".to_owned(), FieldValue::F64(next as f64))],
                        })
                        .collect(),
                };
                if client
                    .try_publish(
                        tel.clone(),
                        QoS::AtLeastOnce,
                        false,
                        encode_telemetry(&batch),
                    )
                    .is_err()
                {
                    break;
                }
                counts.published.fetch_add(1, Ordering::Relaxed);
                outstanding.insert(next, ());
                next += 1;
            }
        }
        let ev = tokio::time::timeout(Duration::from_millis(200), el.poll()).await;
        match ev {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                let _ = client.try_subscribe(ack.clone(), QoS::AtLeastOnce);
            }
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => subscribed = true,
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) if p.topic == ack => {
                if let Ok(a) = decode_ack(&p.payload) {
                    for r in &a.acked {
                        let keys: Vec<u64> = outstanding
                            .range(r.first..=r.last)
                            .map(|(k, _)| *k)
                            .collect();
                        for k in keys {
                            outstanding.remove(&k);
                            counts.acked.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

struct RunResult {
    batches: u64,
    secs: f64,
    points_written: f64,
    ingest_cpu: f64,
    vm_cpu: f64,
    broker_cpu: Option<f64>,
}

fn throughput(
    args: &Args,
    ingest: &Ingest,
    vm: &Proc,
    broker: Option<&Proc>,
) -> anyhow::Result<RunResult> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Vec<Arc<EdgeCounts>> = (0..args.edges).map(|_| Arc::default()).collect();
    let before = http_get(ingest.http, "/metrics")?;
    let (ic0, vc0, bc0) = (
        ingest.proc.cpu_secs(),
        vm.cpu_secs(),
        broker.map(Proc::cpu_secs),
    );
    let started = Instant::now();
    let tasks: Vec<_> = counts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            rt.spawn(sim_edge(
                format!("bench-{i:03}"),
                format!("pw-{i:03}"),
                ingest.mqtt,
                args.points,
                args.window,
                stop.clone(),
                c.clone(),
            ))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(args.seconds));
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        let all = futures::future::join_all(tasks);
        if tokio::time::timeout(Duration::from_secs(60), all)
            .await
            .is_err()
        {
            eprintln!("bench-ingest: some edges still had unacknowledged batches after 60 s");
        }
    });
    let secs = started.elapsed().as_secs_f64();
    let after = http_get(ingest.http, "/metrics")?;
    let w = "parkwatch_ingest_points_written_total";
    Ok(RunResult {
        batches: counts.iter().map(|c| c.acked.load(Ordering::Relaxed)).sum(),
        secs,
        points_written: metric(&after, w) - metric(&before, w),
        ingest_cpu: ingest.proc.cpu_secs() - ic0,
        vm_cpu: vm.cpu_secs() - vc0,
        broker_cpu: broker.map(Proc::cpu_secs).zip(bc0).map(|(a, b)| a - b),
    })
}

fn ingest_config(args: &Args, external: bool) -> String {
    let ts = format!(
        "[timeseries]\nurl = \"http://127.0.0.1:{{VM}}\"\nbatch_points = {}\nflush_interval_ms = 200\n\n[http]\nlisten = \"127.0.0.1:{{HTTP}}\"\n",
        args.batch_points
    );
    let mut s = String::from("site = \"bench\"\ndata_dir = \"{DATA}\"\n\n");
    if external {
        s.push_str(
            "[broker]\nmode = \"external\"\nhost = \"127.0.0.1\"\nport = {MQTT}\n\
             username = \"parkwatch-ingest\"\npassword = \"pw-ingest\"\n\n",
        );
    } else {
        s.push_str("[broker]\nlisten = \"127.0.0.1:{MQTT}\"\n");
        for i in 0..args.edges {
            s.push_str(&format!(
                "[[broker.edges]]\nedge = \"bench-{i:03}\"\npassword = \"pw-{i:03}\"\n"
            ));
        }
        s.push('\n');
    }
    s.push_str(&ts);
    s
}

fn print_run(name: &str, args: &Args, r: &RunResult) {
    let msgs = r.batches as f64 / r.secs;
    println!(
        "{name:<10} {:>9.0} msg/s {:>10.0} points/s  ({} batches x {} points acked in {:.1} s)",
        msgs,
        msgs * args.points as f64,
        r.batches,
        args.points,
        r.secs
    );
    println!(
        "{:<10} CPU s: ingest {:.1}, victoria-metrics {:.1}{}; points written per ingest CPU-second: {:.0}",
        "",
        r.ingest_cpu,
        r.vm_cpu,
        r.broker_cpu
            .map(|b| format!(", mosquitto {b:.1}"))
            .unwrap_or_default(),
        r.points_written / r.ingest_cpu
    );
}

fn alarm(i: usize, run: u32, now_ms: i64) -> AlarmEvent {
    AlarmEvent {
        v: SCHEMA_VERSION,
        alarm_id: format!("bench-{run}-{i}"),
        event: AlarmEventType::New,
        seq: i as u64 + 1,
        site: "etdz".into(),
        edge: "edge-p01".into(),
        camera: Some("cam-p01-1".into()),
        sensor: None,
        rule_id: "gate-no-parking".into(),
        kind: AlarmKind::Dwell,
        severity: Severity::Major,
        zone: Some(format!("z-{run}-{i}")),
        objects: Vec::new(),
        started_at_ms: now_ms,
        event_at_ms: now_ms,
        ended_at_ms: None,
        snapshot: None,
        model: None,
        location: None,
        catalogue_item: None,
        value: None,
        unit: None,
        message: Some("bench".into()),
    }
}

/// Quantile `q` from cumulative bucket counts (Prometheus
/// `histogram_quantile`: linear within the bucket).
fn hist_quantile(q: f64, bounds: &[f64], cumulative: &[f64]) -> f64 {
    let Some(&total) = cumulative.last() else {
        return f64::NAN;
    };
    let rank = q * total;
    let mut prev_c = 0.0;
    let mut prev_b = 0.0;
    for (b, c) in bounds.iter().zip(cumulative) {
        if *c >= rank {
            if *c == prev_c {
                return *b;
            }
            return prev_b + (b - prev_b) * (rank - prev_c) / (c - prev_c);
        }
        prev_c = *c;
        prev_b = *b;
    }
    f64::INFINITY
}

fn alarm_latency(args: &Args, bin: &Path, vm_port: u16) -> anyhow::Result<()> {
    let site = repo_root().join("firmware-config/sites/etdz");
    let body = format!(
        "data_dir = \"{{DATA}}\"\nsite_dir = \"{}\"\n[broker]\nlisten = \"127.0.0.1:{{MQTT}}\"\nallow_anonymous = true\n\
         [timeseries]\nurl = \"http://127.0.0.1:{vm_port}\"\n[http]\nlisten = \"127.0.0.1:{{HTTP}}\"\n",
        site.display()
    );
    let ingest = start_ingest(bin, &body, None)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Telemetry load beside the alarms, on its own runtime thread.
    let load_stop = Arc::new(AtomicBool::new(false));
    let load_counts: Vec<Arc<EdgeCounts>> = if args.alarm_under_load {
        (0..args.edges).map(|_| Arc::default()).collect()
    } else {
        Vec::new()
    };
    let load_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    for (i, c) in load_counts.iter().enumerate() {
        load_rt.spawn(sim_edge(
            format!("bench-{i:03}"),
            String::new(),
            ingest.mqtt,
            args.points,
            args.window,
            load_stop.clone(),
            c.clone(),
        ));
    }
    if args.alarm_under_load {
        std::thread::sleep(Duration::from_secs(3));
    }
    let load_started = Instant::now();
    let run: u32 = rand::random();
    let n = args.alarms;
    let gap = Duration::from_secs_f64(1.0 / args.alarm_rate.max(0.1));
    let client_ms: Vec<f64> = rt.block_on(async move {
        let mut o = MqttOptions::new("edge-p01", "127.0.0.1", ingest.mqtt);
        o.set_keep_alive(Duration::from_secs(30));
        let (client, mut el) = AsyncClient::new(o, 10_000);
        let ack = "parkwatch/etdz/edge-p01/ack".to_owned();
        let topic = "parkwatch/etdz/edge-p01/alarms".to_owned();
        // Subscribed first.
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = client.try_subscribe(ack.clone(), QoS::AtLeastOnce);
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => break,
                Ok(_) => {}
                Err(e) => return Err(anyhow!("alarm publisher: {e}")),
            }
        }
        let mut sent: BTreeMap<u64, Instant> = BTreeMap::new();
        let mut lat = Vec::new();
        let mut next = 0usize;
        let mut tick = tokio::time::interval(gap);
        let deadline = Instant::now() + gap * n as u32 + Duration::from_secs(30);
        while (next < n || !sent.is_empty()) && Instant::now() < deadline {
            tokio::select! {
                _ = tick.tick(), if next < n => {
                    let now_ms = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as i64)
                        .unwrap_or(0);
                    let a = alarm(next, run, now_ms);
                    sent.insert(a.seq, Instant::now());
                    client.try_publish(topic.clone(), QoS::AtLeastOnce, false, encode_json(&a))?;
                    next += 1;
                }
                ev = el.poll() => match ev {
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic == ack => {
                        if let Ok(a) = decode_ack(&p.payload) {
                            for s in a.seqs() {
                                if let Some(t) = sent.remove(&s) {
                                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                                }
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e) => return Err(anyhow!("alarm publisher: {e}")),
                }
            }
        }
        lat.sort_by(f64::total_cmp);
        Ok(lat)
    })?;
    load_stop.store(true, Ordering::Relaxed);
    if args.alarm_under_load {
        let batches: u64 = load_counts
            .iter()
            .map(|c| c.acked.load(Ordering::Relaxed))
            .sum();
        println!(
            "alarms     under load: {} telemetry batches x {} points acked meanwhile ({:.0} msg/s)",
            batches,
            args.points,
            batches as f64 / load_started.elapsed().as_secs_f64()
        );
    }
    drop(load_rt);
    let text = http_get(ingest.http, "/metrics")?;
    let mut bounds = Vec::new();
    let mut cumulative = Vec::new();
    for l in text.lines() {
        let Some(rest) = l.strip_prefix("parkwatch_ingest_alarm_store_seconds_bucket{le=\"") else {
            continue;
        };
        let Some((le, v)) = rest.split_once("\"} ") else {
            continue;
        };
        let b = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().unwrap_or(f64::NAN)
        };
        bounds.push(b * 1000.0);
        cumulative.push(v.trim().parse().unwrap_or(0.0));
    }
    let count = metric(&text, "parkwatch_ingest_alarm_store_seconds_count");
    let sum = metric(&text, "parkwatch_ingest_alarm_store_seconds_sum");
    let pct = |q: f64| {
        client_ms
            .get(((client_ms.len().saturating_sub(1)) as f64 * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "alarms     arrival->commit (ingest histogram, {count} alarms): p50 {:.1} ms, p95 {:.1} ms, mean {:.1} ms",
        hist_quantile(0.5, &bounds, &cumulative),
        hist_quantile(0.95, &bounds, &cumulative),
        if count > 0.0 {
            sum / count * 1000.0
        } else {
            f64::NAN
        }
    );
    println!(
        "{:<10} publish->delivery ack (publisher, includes the 200 ms ack batching): p50 {:.0} ms, p95 {:.0} ms, n={}",
        "",
        pct(0.5),
        pct(0.95),
        client_ms.len()
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = match &args.ingest_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .map(|d| d.join("parkwatch-ingest"))
            .ok_or_else(|| anyhow!("cannot locate parkwatch-ingest"))?,
    };
    if !bin.is_file() {
        bail!(
            "{} not found: build it (cargo build --release -p parkwatch-ingest --bins)",
            bin.display()
        );
    }
    println!(
        "bench-ingest: {} edges x {} points/batch, window {}, {} s per run, batch_points {}, {} cores",
        args.edges,
        args.points,
        args.window,
        args.seconds,
        args.batch_points,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let runs: &[&str] = match args.brokers.as_str() {
        "both" => &["embedded", "mosquitto"],
        "embedded" => &["embedded"],
        "mosquitto" => &["mosquitto"],
        "none" => &[],
        other => bail!("--brokers {other}: expected embedded, mosquitto, both or none"),
    };
    for mode in runs {
        let (vm, vm_port) = start_vm()?;
        let external = *mode == "mosquitto";
        let (broker, mqtt) = if external {
            let mut users = vec![("parkwatch-ingest".to_owned(), "pw-ingest".to_owned())];
            users.extend((0..args.edges).map(|i| (format!("bench-{i:03}"), format!("pw-{i:03}"))));
            let (p, port) = start_mosquitto(&users)?;
            (Some(p), Some(port))
        } else {
            (None, None)
        };
        let body = ingest_config(&args, external).replace("{VM}", &vm_port.to_string());
        let ingest = start_ingest(&bin, &body, mqtt)?;
        let r = throughput(&args, &ingest, &vm, broker.as_ref())?;
        print_run(mode, &args, &r);
        drop(ingest);
        drop(broker);
        drop(vm);
    }
    if args.alarms > 0 {
        let (_vm, vm_port) = start_vm()?;
        alarm_latency(&args, &bin, vm_port)?;
    }
    Ok(())
}
