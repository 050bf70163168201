//! Modbus TCP sensors: one poller per configured `[[sensors]]` entry turns
//! register reads into telemetry points and `sensor_threshold` /
//! `device_offline` alarms.
//!
//! # Design
//!
//! **One task and one TCP connection per sensor.** Sensors at the same
//! address (several units behind one RS-485 gateway, or several registers
//! of one device) do not share a connection: a shared connection serialises
//! requests, so one unit that does not answer would hold up every other one
//! by its timeout. With a connection each, a dead unit costs only its own
//! poller. (A gateway that accepts fewer TCP connections than it has
//! sensors configured is the price; none in the park does.)
//!
//! **Timing.** A sensor is polled every `poll_secs` (a tokio interval that
//! skips missed ticks, so a slow cycle never causes a burst). Every connect
//! and every request has its own timeout, `poll_secs` clamped to
//! 0.1..=3 s ([`request_timeout`]). Shutdown interrupts any wait at once.
//!
//! **Reconnects.** A connect failure, a timeout, a broken connection or an
//! answer out of step drops the connection; the next connect waits out a
//! jittered exponential [`Backoff`](parkwatch_durable::backoff::Backoff) from
//! `min(0.5 s, poll_secs)` doubling to `offline_after_secs / 2` (at most
//! 30 s, [`reconnect_backoff`]); poll cycles inside the backoff make no
//! attempt and are reported as offline. The first good reading resets it. A
//! Modbus exception keeps the connection (the exchange stayed in step).
//!
//! **What is reported.** Each poll cycle pushes one point, measurement
//! `sensor`, tags `sensor` (id), `kind` and `unit` (the unit is constant per
//! sensor, so series stay bounded; omitted when empty), timestamp = when
//! the cycle's answer (or failure) came, in ms:
//! - a good reading: fields `value` (f64, `raw * scale + offset`), `raw`
//!   (i64: the integer as read; for f32, the 32-bit pattern), `online` = 1,
//!   `errors` (cumulative) and `latency_ms` (the request's round trip);
//! - anything else: fields `online` (1 if the device itself answered, e.g.
//!   with a Modbus exception or an undecodable value; 0 otherwise) and
//!   `errors`.
//!
//! Field types never vary between sensors (InfluxDB rejects a field whose
//! type changes within a measurement). Counters for `/metrics` are in
//! [`SensorStats`] ([`render_metrics`]).
//!
//! **Alarm lifecycle** (pure logic in
//! [`sensor_rules`](parkwatch_edge_logic::sensor_rules), the same `new` / `update`
//! / `end` lifecycle as video alarms; ids `{edge}.{sensor}.{rule}.{started_ms}`
//! restricted to `[A-Za-z0-9_.:-]`, see
//! [`alarm_id`](parkwatch_edge_logic::sensor_rules::alarm_id)):
//! - `sensor_threshold` (rule id `threshold`, severity from the threshold):
//!   `new` once every reading for `seconds` has been `> above` (or
//!   `< below`), started at the confirming reading; `update` when a reading
//!   is worse than the last reported one by `max(hysteresis, 10 % of the
//!   limit)`, at most once a minute; `end` at the first reading
//!   `<= above - hysteresis` (or `>= below + hysteresis`). Every event
//!   carries the reading and unit. Failed polls neither confirm nor end.
//! - `device_offline` (rule id `device_offline`, severity major): `new` at
//!   the first failed cycle `offline_after_secs` or more after the device
//!   last answered (or after the poller started); `end` at its next answer.
//!   A Modbus exception from the device counts as an answer; exceptions
//!   0x0A/0x0B (a gateway saying the device is unreachable) do not.
//! - On shutdown every open alarm gets its `end`.
//!
//! **Delivery.** Alarms go to the caller's `mpsc::Sender<SensorAlarm>`; a
//! poller waits for room rather than drop one (the outbox behind it
//! absorbs them), except at shutdown, where it waits at most
//! [`poller::SHUTDOWN_SEND_TIMEOUT`]. Points go to the shared
//! [`PointBuffer`], which is bounded and drops its oldest points.
//!
//! **Clock.** Timestamps are wall-clock ms ([`parkwatch_durable::clock::now_ms`]). The
//! rules treat time going backwards as no time passing, so event times
//! stay ordered; a forward jump can shorten a hold or an offline window.

use std::sync::Arc;

use parkwatch_config::SensorConfig;
use parkwatch_protocol::{AlarmEvent, AlarmEventType, AlarmKind, SCHEMA_VERSION, Severity};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::telemetry::PointBuffer;

pub mod decode;
pub mod modbus;
pub mod poller;
pub mod stats;

pub use decode::{DecodeError, Reading, decode};
pub use modbus::{Connector, ModbusTcp, ReadFailure, RegisterReader};
pub use poller::{PollError, reconnect_backoff, request_timeout};
pub use stats::{SensorStats, render_metrics};

/// One event of a sensor alarm, as the poller produces it. The caller
/// numbers it and turns it into the wire form with [`SensorAlarm::to_event`].
#[derive(Debug, Clone, PartialEq)]
pub struct SensorAlarm {
    /// Stable id, the same in every event of the alarm.
    pub alarm_id: String,
    /// `new`, `update` or `end`.
    pub event: AlarmEventType,
    /// Sensor id.
    pub sensor: String,
    /// [`AlarmKind::SensorThreshold`] or [`AlarmKind::DeviceOffline`].
    pub kind: AlarmKind,
    /// How serious.
    pub severity: Severity,
    /// [`THRESHOLD_RULE_ID`](parkwatch_edge_logic::sensor_rules::THRESHOLD_RULE_ID)
    /// or [`OFFLINE_RULE_ID`](parkwatch_edge_logic::sensor_rules::OFFLINE_RULE_ID).
    pub rule_id: String,
    /// The reading (threshold alarms; always set for them).
    pub value: Option<f64>,
    /// Unit of `value`.
    pub unit: Option<String>,
    /// When the alarm started, ms since the Unix epoch.
    pub started_at_ms: i64,
    /// When this event happened, ms; `>= started_at_ms`.
    pub event_at_ms: i64,
    /// Set exactly on `end` events (= `event_at_ms`).
    pub ended_at_ms: Option<i64>,
    /// Text for people.
    pub message: Option<String>,
    /// The sensor's `catalogue_item` override (threshold alarms only).
    pub catalogue_item: Option<String>,
}

impl SensorAlarm {
    /// The wire event: no camera, the sensor, no objects, no snapshot.
    pub fn to_event(&self, site: &str, edge: &str, seq: u64) -> AlarmEvent {
        AlarmEvent {
            v: SCHEMA_VERSION,
            alarm_id: self.alarm_id.clone(),
            event: self.event,
            seq,
            site: site.to_owned(),
            edge: edge.to_owned(),
            camera: None,
            sensor: Some(self.sensor.clone()),
            rule_id: self.rule_id.clone(),
            kind: self.kind,
            severity: self.severity,
            zone: None,
            objects: Vec::new(),
            started_at_ms: self.started_at_ms,
            event_at_ms: self.event_at_ms,
            ended_at_ms: self.ended_at_ms,
            snapshot: None,
            model: None,
            location: None,
            catalogue_item: self.catalogue_item.clone(),
            value: self.value,
            unit: self.unit.clone(),
            message: self.message.clone(),
        }
    }
}

/// The configuration's severity as the protocol's: the same type since the
/// vocabulary is defined once in `parkwatch-protocol`.
pub fn protocol_severity(s: parkwatch_config::Severity) -> Severity {
    s
}

/// The pollers' tasks and their counters, in configuration order.
#[derive(Debug)]
pub struct SpawnedSensors {
    /// One task per sensor; each ends after `shutdown` turns true (having
    /// sent `end` for its open alarms).
    pub handles: Vec<JoinHandle<()>>,
    /// One [`SensorStats`] per sensor, for `/metrics` ([`render_metrics`]).
    pub stats: Vec<Arc<SensorStats>>,
}

/// Spawns one poller per sensor on the current tokio runtime and returns
/// their tasks; see [`spawn_sensors_with_stats`] to get their counters too.
///
/// Must be called from within a tokio runtime. Pollers stop when
/// `shutdown` becomes true or its sender is dropped.
pub fn spawn_sensors(
    edge_id: &str,
    sensors: &[SensorConfig],
    points: Arc<PointBuffer>,
    alarms: mpsc::Sender<SensorAlarm>,
    shutdown: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    spawn_sensors_with_stats(edge_id, sensors, points, alarms, shutdown).handles
}

/// [`spawn_sensors`], also returning each sensor's [`SensorStats`].
pub fn spawn_sensors_with_stats(
    edge_id: &str,
    sensors: &[SensorConfig],
    points: Arc<PointBuffer>,
    alarms: mpsc::Sender<SensorAlarm>,
    shutdown: watch::Receiver<bool>,
) -> SpawnedSensors {
    let mut out = SpawnedSensors {
        handles: Vec::with_capacity(sensors.len()),
        stats: Vec::with_capacity(sensors.len()),
    };
    for cfg in sensors {
        let stats = SensorStats::new(cfg);
        let connector = ModbusTcp {
            address: cfg.address.clone(),
            unit: cfg.unit_id,
        };
        let poller = poller::Poller::new(
            edge_id,
            cfg,
            connector,
            points.clone(),
            alarms.clone(),
            shutdown.clone(),
            stats.clone(),
            parkwatch_durable::clock::now_ms,
        );
        out.handles.push(tokio::spawn(poller.run()));
        out.stats.push(stats);
    }
    out
}

#[cfg(test)]
mod tests {
    use parkwatch_edge_logic::sensor_rules::{OFFLINE_RULE_ID, THRESHOLD_RULE_ID, alarm_id};
    use parkwatch_protocol::Validate;

    use super::*;

    fn alarm(kind: AlarmKind, event: AlarmEventType) -> SensorAlarm {
        let threshold = kind == AlarmKind::SensorThreshold;
        SensorAlarm {
            alarm_id: alarm_id("edge-01", "pm25-gate", "threshold", 1_000),
            event,
            sensor: "pm25-gate".into(),
            kind,
            severity: Severity::Major,
            rule_id: if threshold {
                THRESHOLD_RULE_ID
            } else {
                OFFLINE_RULE_ID
            }
            .into(),
            value: threshold.then_some(80.5),
            unit: threshold.then(|| "ug/m3".to_owned()),
            started_at_ms: 1_000,
            event_at_ms: 2_000,
            ended_at_ms: (event == AlarmEventType::End).then_some(2_000),
            message: Some("pm25-gate: 80.5 ug/m3, above 75".into()),
            catalogue_item: None,
        }
    }

    #[test]
    fn events_pass_protocol_validation() {
        for kind in [AlarmKind::SensorThreshold, AlarmKind::DeviceOffline] {
            for ev in AlarmEventType::ALL {
                let e = alarm(kind, *ev).to_event("park-a", "edge-01", 7);
                e.validate()
                    .unwrap_or_else(|err| panic!("{kind} {ev}: {err}"));
                assert_eq!(
                    (e.camera, e.sensor.as_deref(), e.seq),
                    (None, Some("pm25-gate"), 7)
                );
                assert!(e.objects.is_empty());
            }
        }
    }

    #[test]
    fn validation_catches_what_the_poller_must_never_send() {
        let mut a = alarm(AlarmKind::SensorThreshold, AlarmEventType::New);
        a.value = None;
        assert!(a.to_event("park-a", "edge-01", 1).validate().is_err());
        let mut a = alarm(AlarmKind::DeviceOffline, AlarmEventType::End);
        a.ended_at_ms = None;
        assert!(a.to_event("park-a", "edge-01", 1).validate().is_err());
    }

    #[test]
    fn severities_map_one_to_one() {
        use parkwatch_config::Severity as C;
        let mapped: Vec<Severity> = [C::Info, C::Minor, C::Major, C::Critical]
            .into_iter()
            .map(protocol_severity)
            .collect();
        assert_eq!(mapped, Severity::ALL);
    }
}
