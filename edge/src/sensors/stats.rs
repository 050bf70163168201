//! Per-sensor counters for `/metrics`, updated by the poller with relaxed
//! atomics (no lock, nothing a reader can block), and read at each scrape
//! by the edge registry's collector ([`render_metrics`]).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use parkwatch_config::{SensorConfig, SensorKind};
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Counters and gauges of one sensor. Shared (`Arc`) between its poller,
/// which writes, and `/metrics`, which reads.
#[derive(Debug)]
pub struct SensorStats {
    /// Sensor id from the configuration.
    pub id: String,
    /// What it measures.
    pub kind: SensorKind,
    /// Unit of its values (may be empty for no unit).
    pub unit: String,
    polls: AtomicU64,
    readings: AtomicU64,
    errors: AtomicU64,
    connects: AtomicU64,
    online: AtomicBool,
    last_value_bits: AtomicU64,
    last_reading_ms: AtomicI64,
    threshold_alarm: AtomicBool,
    offline_alarm: AtomicBool,
}

impl SensorStats {
    /// Fresh counters for `cfg`: nothing polled, offline, no value.
    pub fn new(cfg: &SensorConfig) -> Arc<Self> {
        Arc::new(Self {
            id: cfg.id.clone(),
            kind: cfg.kind,
            unit: cfg.unit().to_owned(),
            polls: AtomicU64::new(0),
            readings: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            online: AtomicBool::new(false),
            last_value_bits: AtomicU64::new(f64::NAN.to_bits()),
            last_reading_ms: AtomicI64::new(i64::MIN),
            threshold_alarm: AtomicBool::new(false),
            offline_alarm: AtomicBool::new(false),
        })
    }

    /// Poll cycles run (one per `poll_secs`, including cycles spent
    /// waiting out a reconnect backoff).
    pub fn polls(&self) -> u64 {
        self.polls.load(Ordering::Relaxed)
    }

    /// Good readings.
    pub fn readings(&self) -> u64 {
        self.readings.load(Ordering::Relaxed)
    }

    /// Failed attempts: connects refused or timed out, requests timed out,
    /// transport errors, Modbus exceptions, undecodable answers.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// TCP connections established.
    pub fn connects(&self) -> u64 {
        self.connects.load(Ordering::Relaxed)
    }

    /// Whether the latest poll got an answer from the device.
    pub fn online(&self) -> bool {
        self.online.load(Ordering::Relaxed)
    }

    /// The latest good value, if any.
    pub fn last_value(&self) -> Option<f64> {
        let v = f64::from_bits(self.last_value_bits.load(Ordering::Relaxed));
        (!v.is_nan()).then_some(v)
    }

    /// When the latest good value was read, ms since the Unix epoch.
    pub fn last_reading_ms(&self) -> Option<i64> {
        let v = self.last_reading_ms.load(Ordering::Relaxed);
        (v != i64::MIN).then_some(v)
    }

    /// Whether a `sensor_threshold` alarm is open.
    pub fn threshold_alarm(&self) -> bool {
        self.threshold_alarm.load(Ordering::Relaxed)
    }

    /// Whether a `device_offline` alarm is open.
    pub fn offline_alarm(&self) -> bool {
        self.offline_alarm.load(Ordering::Relaxed)
    }

    pub(crate) fn note_poll(&self) {
        self.polls.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn note_connect(&self) {
        self.connects.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an error; returns the new cumulative count.
    pub(crate) fn note_error(&self) -> u64 {
        self.errors.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn set_online(&self, online: bool) {
        self.online.store(online, Ordering::Relaxed);
    }

    pub(crate) fn note_reading(&self, value: f64, at_ms: i64) {
        self.readings.fetch_add(1, Ordering::Relaxed);
        self.last_value_bits
            .store(value.to_bits(), Ordering::Relaxed);
        self.last_reading_ms.store(at_ms, Ordering::Relaxed);
    }

    pub(crate) fn set_alarms(&self, threshold: bool, offline: bool) {
        self.threshold_alarm.store(threshold, Ordering::Relaxed);
        self.offline_alarm.store(offline, Ordering::Relaxed);
    }
}

/// The labels of a sensor's series.
fn labels(s: &SensorStats) -> [(&'static str, &str); 2] {
    [("sensor", &s.id), ("kind", s.kind.as_str())]
}

/// Encodes the sensor metrics into the edge's registry (called by its
/// collector at each scrape), one series per sensor with labels `sensor`
/// and `kind`: `parkwatch_edge_sensor_{polls,readings,errors,connects}_total`
/// (counters), `parkwatch_edge_sensor_online`,
/// `parkwatch_edge_sensor_alarm_open{rule="threshold"|"device_offline"}`
/// and `parkwatch_edge_sensor_value` (gauges; `value` only once read).
/// Nothing without sensors. Names are given without `_total`, which the
/// encoder appends to counters.
pub fn render_metrics(
    stats: &[Arc<SensorStats>],
    encoder: &mut DescriptorEncoder<'_>,
) -> fmt::Result {
    if stats.is_empty() {
        return Ok(());
    }
    type Getter = fn(&SensorStats) -> u64;
    let counters: [(&str, &str, Getter); 4] = [
        (
            "parkwatch_edge_sensor_polls",
            "Sensor poll cycles run.",
            SensorStats::polls,
        ),
        (
            "parkwatch_edge_sensor_readings",
            "Good sensor readings.",
            SensorStats::readings,
        ),
        (
            "parkwatch_edge_sensor_errors",
            "Failed sensor polls (connect, timeout, exception, decode).",
            SensorStats::errors,
        ),
        (
            "parkwatch_edge_sensor_connects",
            "Modbus TCP connections established.",
            SensorStats::connects,
        ),
    ];
    for (name, help, get) in counters {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for s in stats {
            ConstCounter::new(get(s)).encode(family.encode_family(&labels(s))?)?;
        }
    }
    let mut family = encoder.encode_descriptor(
        "parkwatch_edge_sensor_online",
        "1 when the latest poll got an answer.",
        None,
        MetricType::Gauge,
    )?;
    for s in stats {
        ConstGauge::new(u64::from(s.online())).encode(family.encode_family(&labels(s))?)?;
    }
    let mut family = encoder.encode_descriptor(
        "parkwatch_edge_sensor_alarm_open",
        "1 while an alarm of the rule is open.",
        None,
        MetricType::Gauge,
    )?;
    for s in stats {
        let [sensor, kind] = labels(s);
        for (rule, open) in [
            ("threshold", s.threshold_alarm()),
            ("device_offline", s.offline_alarm()),
        ] {
            let l = [sensor, kind, ("rule", rule)];
            ConstGauge::new(u64::from(open)).encode(family.encode_family(&l)?)?;
        }
    }
    if stats.iter().any(|s| s.last_value().is_some()) {
        let mut family = encoder.encode_descriptor(
            "parkwatch_edge_sensor_value",
            "Latest good reading, in the sensor's unit.",
            None,
            MetricType::Gauge,
        )?;
        for s in stats {
            if let Some(v) = s.last_value() {
                ConstGauge::new(v).encode(family.encode_family(&labels(s))?)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SensorConfig {
        toml::from_str(
            r#"
            id = "pm25-gate"
            kind = "pm25"
            address = "127.0.0.1:502"
            register = 0
            "#,
        )
        .unwrap()
    }

    #[test]
    fn counts_and_renders_prometheus_text() {
        let s = SensorStats::new(&cfg());
        assert_eq!(s.unit, "ug/m3");
        assert_eq!(s.last_value(), None);
        s.note_poll();
        s.note_poll();
        s.note_connect();
        assert_eq!(s.note_error(), 1);
        s.note_reading(52.3, 1000);
        s.set_online(true);
        s.set_alarms(false, true);
        assert_eq!(
            (s.polls(), s.errors(), s.readings(), s.connects()),
            (2, 1, 1, 1)
        );
        assert_eq!(s.last_value(), Some(52.3));
        assert_eq!(s.last_reading_ms(), Some(1000));
        let out = crate::metrics::EdgeMetrics::default().render(&[], &[s]);
        let l = r#"{sensor="pm25-gate",kind="pm25"}"#;
        for line in [
            format!("parkwatch_edge_sensor_polls_total{l} 2"),
            format!("parkwatch_edge_sensor_errors_total{l} 1"),
            format!("parkwatch_edge_sensor_online{l} 1"),
            format!("parkwatch_edge_sensor_value{l} 52.3"),
            r#"parkwatch_edge_sensor_alarm_open{sensor="pm25-gate",kind="pm25",rule="device_offline"} 1"#.to_owned(),
        ] {
            assert!(out.lines().any(|x| x == line), "missing {line:?} in\n{out}");
        }
    }
}
