//! The sensor pollers against the real Modbus TCP simulator
//! (`deploy/modbus-sim.py`, PyPI's pymodbus): readings with their scaled
//! values and units, a threshold alarm's `new` and `end`, a unit that stops
//! answering (offline alarm while the others keep reading) and comes back.
//!
//! Needs python3 and pymodbus in /opt/parkwatch/python (deploy/setup.sh),
//! or another directory named by `PARKWATCH_PYTHONPATH`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parkwatch_config::SensorConfig;
use parkwatch_edge::sensors::{SensorAlarm, spawn_sensors_with_stats};
use parkwatch_edge::telemetry::PointBuffer;
use parkwatch_protocol::{AlarmEventType, AlarmKind, FieldValue, Point, Severity, Validate};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

/// The simulator process; killed when dropped, whatever happens.
struct Sim {
    child: Child,
    port: u16,
    control: u16,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python_libs() -> PathBuf {
    std::env::var_os("PARKWATCH_PYTHONPATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/parkwatch/python"))
}

impl Sim {
    fn start(args: &[&str]) -> Sim {
        let libs = python_libs();
        assert!(
            libs.join("pymodbus").is_dir(),
            "pymodbus is not installed in {} (run deploy/setup.sh or set PARKWATCH_PYTHONPATH)",
            libs.display()
        );
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/modbus-sim.py");
        // Port 0: the simulator binds a free port itself and reports it,
        // so no other process can take it between a probe and the bind.
        let mut child = Command::new("python3")
            .arg(&script)
            .args(["--port", "0", "--exit-on-stdin-eof"])
            .args(args)
            .env("PYTHONPATH", &libs)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs");
        let stdout = child.stdout.take().unwrap();
        // From here on, Drop kills it even if the ready line never comes.
        let mut sim = Sim {
            child,
            port: 0,
            control: 0,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("simulator says ready within 30 s");
        assert!(line.starts_with("ready "), "simulator said {line:?}");
        for word in line.split_whitespace() {
            if let Some(p) = word.strip_prefix("port=") {
                sim.port = p.parse().unwrap();
            }
            if let Some(p) = word.strip_prefix("control=") {
                sim.control = p.parse().unwrap();
            }
        }
        assert!(sim.port != 0 && sim.control != 0, "no ports in {line:?}");
        sim
    }

    /// Sends one control command and returns the reply, which must be ok.
    async fn ctl(&self, cmd: &str) -> String {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", self.control))
            .await
            .unwrap();
        let (r, mut w) = stream.into_split();
        w.write_all(format!("{cmd}\n").as_bytes()).await.unwrap();
        let mut line = String::new();
        tokio::io::BufReader::new(r)
            .read_line(&mut line)
            .await
            .unwrap();
        assert!(line.starts_with("ok"), "{cmd:?} -> {line:?}");
        line.trim().to_owned()
    }
}

fn sensor(toml_text: &str) -> SensorConfig {
    toml::from_str(toml_text).unwrap()
}

fn field(p: &Point, k: &str) -> Option<FieldValue> {
    p.fields
        .iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.clone())
}

fn tag<'a>(p: &'a Point, k: &str) -> Option<&'a str> {
    p.tags.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// Every point pushed so far, kept across `take`s.
struct Points {
    buf: Arc<PointBuffer>,
    all: Vec<Point>,
}

impl Points {
    fn drain(&mut self) -> &[Point] {
        let (mut new, dropped) = self.buf.take();
        assert_eq!(dropped, 0);
        self.all.append(&mut new);
        &self.all
    }

    fn of(&mut self, sensor: &str) -> Vec<Point> {
        self.drain()
            .iter()
            .filter(|p| tag(p, "sensor") == Some(sensor))
            .cloned()
            .collect()
    }

    fn readings_since(&mut self, sensor: &str, ts_ms: i64) -> usize {
        self.of(sensor)
            .iter()
            .filter(|p| p.ts_ms >= ts_ms && field(p, "value").is_some())
            .count()
    }
}

async fn next_alarm(rx: &mut mpsc::Receiver<SensorAlarm>, within: Duration) -> SensorAlarm {
    let a = tokio::time::timeout(within, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no alarm within {within:?}"))
        .expect("alarm channel open");
    a.to_event("park-a", "edge-01", 1)
        .validate()
        .unwrap_or_else(|e| panic!("invalid event {a:?}: {e}"));
    a
}

fn now_ms() -> i64 {
    parkwatch_durable::clock::now_ms()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensors_against_the_modbus_simulator() {
    let sim = Sim::start(&[
        "--unit",
        "1",
        "--unit",
        "2",
        "--unit",
        "3",
        "--set",
        "1:h:0:u16:523",
        "--set",
        "2:i:10:f32:12.5:little",
        "--set",
        "3:h:5:i16:-42",
    ]);
    let addr = format!("127.0.0.1:{}", sim.port);
    let sensors = vec![
        sensor(&format!(
            r#"
            id = "pm25-gate"
            kind = "pm25"
            address = "{addr}"
            unit_id = 1
            register = 0
            scale = 0.1
            unit = "ug/m3"
            poll_secs = 0.3
            offline_after_secs = 2
            threshold = {{ above = 75.0, hysteresis = 5.0, severity = "major" }}
            "#
        )),
        sensor(&format!(
            r#"
            id = "gas-03"
            kind = "gas_lel"
            address = "{addr}"
            unit_id = 2
            register = 10
            register_type = "input"
            data_type = "f32"
            word_order = "little"
            poll_secs = 0.3
            offline_after_secs = 2
            "#
        )),
        sensor(&format!(
            r#"
            id = "water-07"
            kind = "water_level"
            address = "{addr}"
            unit_id = 3
            register = 5
            data_type = "i16"
            scale = 0.01
            poll_secs = 0.3
            offline_after_secs = 2
            "#
        )),
    ];
    let buf = PointBuffer::new(100_000);
    let mut points = Points {
        buf: buf.clone(),
        all: Vec::new(),
    };
    let (tx, mut rx) = mpsc::channel(64);
    let (stop, shutdown) = watch::channel(false);
    let spawned = spawn_sensors_with_stats("edge-01", &sensors, buf, tx, shutdown);
    assert_eq!(spawned.handles.len(), 3);

    // 1. Readings with scaled values, raw values and unit tags.
    let deadline = Instant::now() + Duration::from_secs(10);
    let expect = [
        ("pm25-gate", "pm25", "ug/m3", 52.3, 523),
        ("gas-03", "gas_lel", "%LEL", 12.5, 0x4148_0000),
        ("water-07", "water_level", "m", -0.42, -42),
    ];
    for (id, kind, unit, value, raw) in expect {
        let p = loop {
            let got = points.of(id);
            if let Some(p) = got.iter().find(|p| field(p, "value").is_some()) {
                break p.clone();
            }
            assert!(Instant::now() < deadline, "no reading from {id}: {got:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(p.measurement, "sensor");
        assert_eq!(tag(&p, "kind"), Some(kind));
        assert_eq!(tag(&p, "unit"), Some(unit));
        assert_eq!(field(&p, "value"), Some(FieldValue::F64(value)), "{id}");
        assert_eq!(field(&p, "raw"), Some(FieldValue::I64(raw)), "{id}");
        assert_eq!(field(&p, "online"), Some(FieldValue::I64(1)));
        assert_eq!(field(&p, "errors"), Some(FieldValue::U64(0)));
        assert!((now_ms() - p.ts_ms).abs() < 10_000, "timestamp {}", p.ts_ms);
        Validate::validate(&parkwatch_protocol::TelemetryBatch {
            v: parkwatch_protocol::SCHEMA_VERSION,
            site: "park-a".into(),
            edge: "edge-01".into(),
            seq: 1,
            created_at_ms: p.ts_ms,
            points: vec![p.clone()],
        })
        .unwrap();
    }
    assert!(rx.try_recv().is_err(), "no alarm while all is normal");

    // 2. PM2.5 over 75 raises `new`; 72 (inside the hysteresis) keeps it
    // open; 69 (below 75 - 5) ends it.
    sim.ctl("set 1 h 0 u16 800").await;
    let new = next_alarm(&mut rx, Duration::from_secs(3)).await;
    assert_eq!(
        (
            new.kind,
            new.event,
            new.sensor.as_str(),
            new.rule_id.as_str()
        ),
        (
            AlarmKind::SensorThreshold,
            AlarmEventType::New,
            "pm25-gate",
            "threshold"
        )
    );
    assert_eq!(
        (new.value, new.unit.as_deref()),
        (Some(80.0), Some("ug/m3"))
    );
    assert_eq!(new.severity, Severity::Major);
    assert_eq!(
        new.alarm_id,
        format!("edge-01.pm25-gate.threshold.{}", new.started_at_ms)
    );
    sim.ctl("set 1 h 0 u16 720").await;
    let t = now_ms();
    while points.readings_since("pm25-gate", t) < 3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        rx.try_recv().is_err(),
        "72 ug/m3 is inside the hysteresis band"
    );
    sim.ctl("set 1 h 0 u16 690").await;
    let end = next_alarm(&mut rx, Duration::from_secs(3)).await;
    assert_eq!(
        (end.alarm_id.as_str(), end.event, end.value),
        (new.alarm_id.as_str(), AlarmEventType::End, Some(69.0))
    );
    assert_eq!(end.ended_at_ms, Some(end.event_at_ms));
    assert!(end.event_at_ms >= new.started_at_ms);

    // 3. Unit 3 stops answering: online 0 and errors growing at once, an
    // offline alarm after 2 s; the other sensors keep reading meanwhile.
    sim.ctl("mute 3").await;
    let muted_at = now_ms();
    let muted = Instant::now();
    let off = next_alarm(&mut rx, Duration::from_secs(6)).await;
    let offline_after = muted.elapsed();
    assert_eq!(
        (
            off.kind,
            off.event,
            off.sensor.as_str(),
            off.rule_id.as_str()
        ),
        (
            AlarmKind::DeviceOffline,
            AlarmEventType::New,
            "water-07",
            "device_offline"
        )
    );
    assert_eq!(off.value, None);
    assert!(
        offline_after >= Duration::from_millis(1700),
        "offline after only {offline_after:?}"
    );
    let water: Vec<Point> = points
        .of("water-07")
        .into_iter()
        .filter(|p| p.ts_ms >= muted_at + 400)
        .collect();
    assert!(water.len() >= 3, "water points while muted: {water:?}");
    for p in &water {
        assert_eq!(field(p, "online"), Some(FieldValue::I64(0)), "{p:?}");
        assert_eq!(field(p, "value"), None);
    }
    let errors: Vec<u64> = water
        .iter()
        .filter_map(|p| match field(p, "errors") {
            Some(FieldValue::U64(n)) => Some(n),
            _ => None,
        })
        .collect();
    assert!(
        errors.windows(2).all(|w| w[0] <= w[1]) && errors.last() > errors.first(),
        "errors should grow: {errors:?}"
    );
    for id in ["pm25-gate", "gas-03"] {
        let n = points.readings_since(id, muted_at);
        // About 6 polls at 0.3 s in the 2 s before the alarm.
        assert!(n >= 4, "{id}: only {n} readings while water-07 was silent");
    }
    let water_stats = &spawned.stats[2];
    assert!(!water_stats.online());
    assert!(water_stats.offline_alarm());
    assert!(water_stats.errors() >= 2);
    assert!(spawned.stats[0].online() && spawned.stats[1].online());

    // 4. It answers again: the offline alarm ends, with the same id.
    sim.ctl("set 3 h 5 i16 -17").await;
    sim.ctl("unmute 3").await;
    let unmuted = Instant::now();
    let back = next_alarm(&mut rx, Duration::from_secs(5)).await;
    let recovery = unmuted.elapsed();
    assert_eq!(
        (back.alarm_id.as_str(), back.event, back.kind),
        (
            off.alarm_id.as_str(),
            AlarmEventType::End,
            AlarmKind::DeviceOffline
        )
    );
    let t = now_ms();
    let deadline = Instant::now() + Duration::from_secs(3);
    while points.readings_since("water-07", t - 2_000) == 0 {
        assert!(Instant::now() < deadline, "no water reading after recovery");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let last = points
        .of("water-07")
        .into_iter()
        .rev()
        .find(|p| field(p, "value").is_some())
        .unwrap();
    assert_eq!(field(&last, "value"), Some(FieldValue::F64(-0.17)));
    assert_eq!(field(&last, "online"), Some(FieldValue::I64(1)));

    // 5. Shutdown: every poller stops promptly; nothing was left open.
    let stats = spawned.stats.clone();
    stop.send(true).unwrap();
    let stopping = Instant::now();
    for h in spawned.handles {
        tokio::time::timeout(Duration::from_secs(5), h)
            .await
            .expect("poller stops within 5 s")
            .unwrap();
    }
    let stop_time = stopping.elapsed();
    assert!(
        rx.recv().await.is_none(),
        "no alarm left to end, channel closed"
    );

    let latencies: Vec<f64> = points
        .drain()
        .iter()
        .filter_map(|p| match field(p, "latency_ms") {
            Some(FieldValue::F64(ms)) => Some(ms),
            _ => None,
        })
        .collect();
    let mean = latencies.iter().sum::<f64>() / latencies.len().max(1) as f64;
    let max = latencies.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "modbus-sim: {} readings, request latency mean {mean:.2} ms max {max:.2} ms; \
         offline alarm {offline_after:?} after mute (window 2 s); recovery {recovery:?}; \
         shutdown {stop_time:?}; polls {:?} errors {:?}",
        latencies.len(),
        stats.iter().map(|s| s.polls()).collect::<Vec<_>>(),
        stats.iter().map(|s| s.errors()).collect::<Vec<_>>(),
    );
    drop(sim);
}
