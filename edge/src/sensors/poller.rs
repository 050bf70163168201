//! The poll loop of one sensor: connect, read, decode, report, alarm.
//!
//! See the module doc of [`crate::sensors`] for the behaviour; this file
//! is the mechanics. The loop is generic over [`Connector`] so tests can
//! drive it with a scripted device.

use std::sync::Arc;
use std::time::Duration;

use parkwatch_config::SensorConfig;
use parkwatch_edge_logic::sensor_rules::{
    OFFLINE_RULE_ID, OfflineEvent, OfflineTracker, THRESHOLD_RULE_ID, ThresholdEvent,
    ThresholdRule, ThresholdTracker, UpdatePolicy, alarm_id,
};
use parkwatch_protocol::{AlarmEventType, AlarmKind, FieldValue};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

use super::decode::{DecodeError, Reading, decode};
use super::modbus::{Connector, ReadFailure, RegisterReader};
use super::stats::SensorStats;
use super::{SensorAlarm, protocol_severity};
use crate::telemetry::{PointBuffer, point};
use parkwatch_durable::backoff::Backoff;

/// Longest wait for one connect or one request.
pub const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Shortest wait for one connect or one request, whatever `poll_secs` is.
pub const MIN_REQUEST_TIMEOUT: Duration = Duration::from_millis(100);
/// How long the `end` events sent at shutdown may wait for room in the
/// alarm channel.
pub const SHUTDOWN_SEND_TIMEOUT: Duration = Duration::from_secs(2);

/// Why one poll got no reading, with the context a person needs.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// No TCP connection within the timeout.
    #[error("sensor {sensor}: connecting to {address}: no connection within {after:?}")]
    ConnectTimeout {
        /// Sensor id.
        sensor: String,
        /// `host:port`.
        address: String,
        /// The timeout.
        after: Duration,
    },
    /// No answer to a request within the timeout.
    #[error("sensor {sensor}: unit {unit} at {address}: no answer within {after:?}")]
    Timeout {
        /// Sensor id.
        sensor: String,
        /// `host:port`.
        address: String,
        /// Modbus unit id.
        unit: u8,
        /// The timeout.
        after: Duration,
    },
    /// Connecting or reading failed.
    #[error("sensor {sensor}: unit {unit} at {address}, register {register}: {source}")]
    Read {
        /// Sensor id.
        sensor: String,
        /// `host:port`.
        address: String,
        /// Modbus unit id.
        unit: u8,
        /// First register.
        register: u16,
        /// What failed.
        source: ReadFailure,
    },
    /// The answer did not decode to a finite value.
    #[error("sensor {sensor}: unit {unit} at {address}, register {register}: {source}")]
    Decode {
        /// Sensor id.
        sensor: String,
        /// `host:port`.
        address: String,
        /// Modbus unit id.
        unit: u8,
        /// First register.
        register: u16,
        /// What was wrong.
        source: DecodeError,
    },
}

impl PollError {
    /// Whether the device itself answered (so it is not offline).
    pub fn device_answered(&self) -> bool {
        match self {
            PollError::ConnectTimeout { .. } | PollError::Timeout { .. } => false,
            PollError::Read { source, .. } => source.device_answered(),
            PollError::Decode { .. } => true,
        }
    }
}

/// What one poll cycle came to.
#[derive(Debug)]
enum Outcome {
    Reading {
        reading: Reading,
        latency: Duration,
    },
    Failed(PollError),
    /// Disconnected and waiting out the reconnect backoff: no attempt made.
    BackingOff,
}

/// The timeout of each connect and request: `poll` capped at
/// [`MAX_REQUEST_TIMEOUT`], at least [`MIN_REQUEST_TIMEOUT`].
pub fn request_timeout(poll: Duration) -> Duration {
    poll.clamp(MIN_REQUEST_TIMEOUT, MAX_REQUEST_TIMEOUT)
}

/// The reconnect backoff of a sensor: from `min(0.5 s, poll)` doubling up
/// to half of `offline_after` (so a device is retried at least about twice
/// per offline window and a recovery is seen within half of it), never
/// more than 30 s.
pub fn reconnect_backoff(poll: Duration, offline_after: Duration) -> Backoff {
    let base = poll.clamp(Duration::from_millis(10), Duration::from_millis(500));
    let max = (offline_after / 2).clamp(base, Duration::from_secs(30));
    Backoff::try_new(base, max).unwrap_or_else(|_| Backoff::network())
}

/// Resolves when shutdown is signalled (or its sender is gone).
async fn until_shutdown(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// A value for messages: at most 3 decimals, no trailing zeros.
fn show(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

/// Everything one sensor's loop owns.
pub(crate) struct Poller<C: Connector> {
    edge: String,
    cfg: SensorConfig,
    unit: String,
    connector: C,
    points: Arc<PointBuffer>,
    alarms: mpsc::Sender<SensorAlarm>,
    shutdown: watch::Receiver<bool>,
    stats: Arc<SensorStats>,
    clock: fn() -> i64,
    threshold: Option<ThresholdTracker>,
    offline: OfflineTracker,
    timeout: Duration,
    backoff: Backoff,
    conn: Option<C::Conn>,
    retry_at: Option<Instant>,
    threshold_id: Option<String>,
    offline_id: Option<String>,
    last_id: Option<String>,
    failing: bool,
    last_error: Option<String>,
    alarms_closed_logged: bool,
}

impl<C: Connector> Poller<C> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        edge: &str,
        cfg: &SensorConfig,
        connector: C,
        points: Arc<PointBuffer>,
        alarms: mpsc::Sender<SensorAlarm>,
        shutdown: watch::Receiver<bool>,
        stats: Arc<SensorStats>,
        clock: fn() -> i64,
    ) -> Self {
        let threshold = cfg.threshold.as_ref().and_then(|t| {
            match ThresholdRule::try_new(t, UpdatePolicy::default()) {
                Ok(rule) => Some(ThresholdTracker::new(rule)),
                Err(e) => {
                    warn!(sensor = %cfg.id, err = %e, "Threshold ignored: invalid.");
                    None
                }
            }
        });
        let poll = cfg.poll_interval();
        let offline_after = cfg.offline_after();
        let offline_ms = i64::try_from(offline_after.as_millis()).unwrap_or(i64::MAX);
        Self {
            edge: edge.to_owned(),
            unit: cfg.unit().to_owned(),
            cfg: cfg.clone(),
            connector,
            points,
            alarms,
            shutdown,
            stats,
            clock,
            threshold,
            offline: OfflineTracker::new(offline_ms, clock()),
            timeout: request_timeout(poll),
            backoff: reconnect_backoff(poll, offline_after),
            conn: None,
            retry_at: None,
            threshold_id: None,
            offline_id: None,
            last_id: None,
            failing: false,
            last_error: None,
            alarms_closed_logged: false,
        }
    }

    /// Polls every `poll_secs` until shutdown, then ends open alarms.
    pub(crate) async fn run(mut self) {
        let poll = self.cfg.poll_interval().max(Duration::from_millis(10));
        info!(
            sensor = %self.cfg.id,
            address = %self.cfg.address,
            unit = self.cfg.unit_id,
            poll_ms = poll.as_millis() as u64,
            timeout_ms = self.timeout.as_millis() as u64,
            "Sensor poller started."
        );
        let mut ticker = tokio::time::interval(poll);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut shutdown = self.shutdown.clone();
        loop {
            tokio::select! {
                biased;
                _ = until_shutdown(&mut shutdown) => break,
                _ = ticker.tick() => {}
            }
            let outcome = tokio::select! {
                biased;
                _ = until_shutdown(&mut shutdown) => break,
                o = self.poll_once() => o,
            };
            self.report(outcome).await;
        }
        self.close().await;
        debug!(sensor = %self.cfg.id, "Sensor poller stopped.");
    }

    fn schedule_retry(&mut self) {
        self.conn = None;
        self.retry_at = Some(Instant::now() + self.backoff.next_delay());
    }

    fn read_error(&self, source: ReadFailure) -> PollError {
        PollError::Read {
            sensor: self.cfg.id.clone(),
            address: self.cfg.address.clone(),
            unit: self.cfg.unit_id,
            register: self.cfg.register,
            source,
        }
    }

    async fn poll_once(&mut self) -> Outcome {
        if self.conn.is_none() {
            if self.retry_at.is_some_and(|t| Instant::now() < t) {
                return Outcome::BackingOff;
            }
            match tokio::time::timeout(self.timeout, self.connector.connect()).await {
                Err(_) => {
                    self.schedule_retry();
                    return Outcome::Failed(PollError::ConnectTimeout {
                        sensor: self.cfg.id.clone(),
                        address: self.cfg.address.clone(),
                        after: self.timeout,
                    });
                }
                Ok(Err(e)) => {
                    self.schedule_retry();
                    return Outcome::Failed(self.read_error(e));
                }
                Ok(Ok(conn)) => {
                    self.stats.note_connect();
                    debug!(sensor = %self.cfg.id, address = %self.cfg.address, "Sensor connected.");
                    self.conn = Some(conn);
                }
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            return Outcome::BackingOff;
        };
        let started = Instant::now();
        let count = self.cfg.data_type.registers();
        let read = conn.read(self.cfg.register_type, self.cfg.register, count);
        match tokio::time::timeout(self.timeout, read).await {
            Err(_) => {
                // A late answer would arrive on this connection out of step:
                // start over on a fresh one.
                self.schedule_retry();
                Outcome::Failed(PollError::Timeout {
                    sensor: self.cfg.id.clone(),
                    address: self.cfg.address.clone(),
                    unit: self.cfg.unit_id,
                    after: self.timeout,
                })
            }
            Ok(Err(e)) => {
                if !e.keeps_connection() {
                    self.schedule_retry();
                }
                Outcome::Failed(self.read_error(e))
            }
            Ok(Ok(words)) => {
                let latency = started.elapsed();
                self.backoff.reset();
                self.retry_at = None;
                let c = &self.cfg;
                match decode(&words, c.data_type, c.word_order, c.scale, c.offset) {
                    Ok(reading) => Outcome::Reading { reading, latency },
                    Err(source) => Outcome::Failed(PollError::Decode {
                        sensor: c.id.clone(),
                        address: c.address.clone(),
                        unit: c.unit_id,
                        register: c.register,
                        source,
                    }),
                }
            }
        }
    }

    fn tags(&self) -> Vec<(&str, &str)> {
        let mut tags = vec![
            ("sensor", self.cfg.id.as_str()),
            ("kind", self.cfg.kind.as_str()),
        ];
        if !self.unit.is_empty() {
            tags.push(("unit", self.unit.as_str()));
        }
        tags
    }

    /// Records one cycle: stats, the telemetry point, the alarm rules.
    async fn report(&mut self, outcome: Outcome) {
        let now = (self.clock)();
        self.stats.note_poll();
        let mut alarms = Vec::new();
        match outcome {
            Outcome::Reading { reading, latency } => {
                self.stats.set_online(true);
                self.stats.note_reading(reading.value, now);
                let fields = vec![
                    ("value", FieldValue::F64(reading.value)),
                    ("raw", FieldValue::I64(reading.raw)),
                    ("online", FieldValue::I64(1)),
                    ("errors", FieldValue::U64(self.stats.errors())),
                    (
                        "latency_ms",
                        FieldValue::F64(latency.as_secs_f64() * 1000.0),
                    ),
                ];
                self.points.push(point("sensor", now, &self.tags(), fields));
                if self.failing {
                    info!(sensor = %self.cfg.id, value = reading.value, "Sensor answering again.");
                    self.failing = false;
                }
                if let Some(ev) = self.offline.answered(now) {
                    alarms.push(self.offline_alarm(ev));
                }
                let events = match self.threshold.as_mut() {
                    Some(t) => t.observe(reading.value, now),
                    None => Vec::new(),
                };
                for ev in events {
                    alarms.push(self.threshold_alarm(ev, false));
                }
            }
            Outcome::Failed(err) => {
                let answered = err.device_answered();
                let errors = self.stats.note_error();
                self.stats.set_online(answered);
                self.push_status(now, answered, errors);
                if self.failing {
                    debug!(sensor = %self.cfg.id, err = %err, errors, "Sensor poll failed.");
                } else {
                    warn!(sensor = %self.cfg.id, err = %err, "Sensor poll failed.");
                    self.failing = true;
                }
                self.last_error = Some(err.to_string());
                let ev = if answered {
                    self.offline.answered(now)
                } else {
                    self.offline.silent(now)
                };
                if let Some(ev) = ev {
                    alarms.push(self.offline_alarm(ev));
                }
            }
            Outcome::BackingOff => {
                self.stats.set_online(false);
                self.push_status(now, false, self.stats.errors());
                if let Some(ev) = self.offline.silent(now) {
                    alarms.push(self.offline_alarm(ev));
                }
            }
        }
        self.stats.set_alarms(
            self.threshold
                .as_ref()
                .is_some_and(|t| t.open_side().is_some()),
            self.offline.is_open(),
        );
        for a in alarms {
            self.emit(a).await;
        }
    }

    fn push_status(&self, now: i64, online: bool, errors: u64) {
        let fields = vec![
            ("online", FieldValue::I64(i64::from(online))),
            ("errors", FieldValue::U64(errors)),
        ];
        self.points.push(point("sensor", now, &self.tags(), fields));
    }

    /// A fresh alarm id, never the same as the previous one of this sensor.
    fn issue_id(&mut self, rule: &str, started_ms: i64) -> String {
        let mut id = alarm_id(&self.edge, &self.cfg.id, rule, started_ms);
        if self.last_id.as_deref() == Some(id.as_str()) {
            id = alarm_id(&self.edge, &self.cfg.id, rule, started_ms.saturating_add(1));
        }
        self.last_id = Some(id.clone());
        id
    }

    fn threshold_alarm(&mut self, ev: ThresholdEvent, shutting_down: bool) -> SensorAlarm {
        let id = match (ev.event, self.threshold_id.take()) {
            (AlarmEventType::New, _) | (_, None) => self.issue_id(THRESHOLD_RULE_ID, ev.started_ms),
            (_, Some(id)) => id,
        };
        if ev.event != AlarmEventType::End {
            self.threshold_id = Some(id.clone());
        }
        let limit = self
            .threshold
            .as_ref()
            .map(|t| t.rule().describe(ev.side))
            .unwrap_or_default();
        let who = self.cfg.name.as_deref().unwrap_or(&self.cfg.id);
        let reading = format!("{} {}", show(ev.value), self.unit);
        let reading = reading.trim_end();
        let message = match ev.event {
            AlarmEventType::New => format!("{who}: {reading}, {limit}"),
            AlarmEventType::Update => format!("{who}: worse, {reading}, {limit}"),
            AlarmEventType::End if shutting_down => {
                format!("{who}: edge shutting down, last reading {reading} ({limit})")
            }
            AlarmEventType::End => format!("{who}: back to {reading} (alarm was {limit})"),
        };
        let severity = self
            .cfg
            .threshold
            .as_ref()
            .map(|t| protocol_severity(t.severity))
            .unwrap_or(parkwatch_protocol::Severity::Major);
        SensorAlarm {
            alarm_id: id,
            event: ev.event,
            sensor: self.cfg.id.clone(),
            kind: AlarmKind::SensorThreshold,
            severity,
            rule_id: THRESHOLD_RULE_ID.to_owned(),
            value: Some(ev.value),
            unit: (!self.unit.is_empty()).then(|| self.unit.clone()),
            started_at_ms: ev.started_ms,
            event_at_ms: ev.at_ms,
            ended_at_ms: (ev.event == AlarmEventType::End).then_some(ev.at_ms),
            message: Some(message),
            catalogue_item: self.cfg.catalogue_item.clone(),
        }
    }

    fn offline_alarm(&mut self, ev: OfflineEvent) -> SensorAlarm {
        let id = match (ev.event, self.offline_id.take()) {
            (AlarmEventType::New, _) | (_, None) => self.issue_id(OFFLINE_RULE_ID, ev.started_ms),
            (_, Some(id)) => id,
        };
        let who = self.cfg.name.as_deref().unwrap_or(&self.cfg.id);
        let place = format!("unit {} at {}", self.cfg.unit_id, self.cfg.address);
        let message = match ev.event {
            AlarmEventType::End => {
                let secs = (ev.at_ms - ev.started_ms).max(0) as f64 / 1000.0;
                format!(
                    "{who} ({place}): answering again after {} s offline",
                    show(secs)
                )
            }
            _ => {
                self.offline_id = Some(id.clone());
                let silent = (ev.at_ms - ev.last_answer_ms).max(0) as f64 / 1000.0;
                warn!(sensor = %self.cfg.id, silent_secs = silent, "Sensor offline.");
                match &self.last_error {
                    Some(e) => format!(
                        "{who} ({place}): no answer for {} s; last error: {e}",
                        show(silent)
                    ),
                    None => format!("{who} ({place}): no answer for {} s", show(silent)),
                }
            }
        };
        SensorAlarm {
            alarm_id: id,
            event: ev.event,
            sensor: self.cfg.id.clone(),
            kind: AlarmKind::DeviceOffline,
            severity: parkwatch_protocol::Severity::Major,
            rule_id: OFFLINE_RULE_ID.to_owned(),
            value: None,
            unit: None,
            started_at_ms: ev.started_ms,
            event_at_ms: ev.at_ms,
            ended_at_ms: (ev.event == AlarmEventType::End).then_some(ev.at_ms),
            message: Some(message),
            catalogue_item: None,
        }
    }

    /// Sends an alarm, waiting for room; gives up only at shutdown.
    async fn emit(&mut self, alarm: SensorAlarm) {
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            biased;
            sent = self.alarms.send(alarm) => {
                if sent.is_err() && !self.alarms_closed_logged {
                    warn!(sensor = %self.cfg.id, "Alarm channel closed: sensor alarms are lost.");
                    self.alarms_closed_logged = true;
                }
            }
            _ = until_shutdown(&mut shutdown) => {
                warn!(sensor = %self.cfg.id, "Shutting down with the alarm channel full: an alarm event was dropped.");
            }
        }
    }

    /// Ends every open alarm (shutdown).
    async fn close(&mut self) {
        let now = (self.clock)();
        let mut alarms = Vec::new();
        if let Some(ev) = self.threshold.as_mut().and_then(|t| t.close(now)) {
            alarms.push(self.threshold_alarm(ev, true));
        }
        if let Some(ev) = self.offline.close(now) {
            alarms.push(self.offline_alarm(ev));
        }
        self.stats.set_alarms(false, false);
        for a in alarms {
            match tokio::time::timeout(SHUTDOWN_SEND_TIMEOUT, self.alarms.send(a)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    warn!(sensor = %self.cfg.id, "Alarm channel closed at shutdown: an end event was lost.")
                }
                Err(_) => {
                    warn!(sensor = %self.cfg.id, "Alarm channel full at shutdown: an end event was dropped.")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn timeouts_and_backoff_follow_the_poll_interval() {
        assert_eq!(
            request_timeout(Duration::from_secs(5)),
            Duration::from_secs(3)
        );
        assert_eq!(
            request_timeout(Duration::from_millis(500)),
            Duration::from_millis(500)
        );
        assert_eq!(
            request_timeout(Duration::from_millis(1)),
            MIN_REQUEST_TIMEOUT
        );
        // offline_after 2 s: retries at most 1 s apart.
        let mut b = reconnect_backoff(Duration::from_millis(500), Duration::from_secs(2));
        for _ in 0..20 {
            assert!(b.next_delay() <= Duration::from_millis(1001));
        }
        // Defaults (5 s poll, 30 s offline): capped at 15 s.
        let mut b = reconnect_backoff(Duration::from_secs(5), Duration::from_secs(30));
        let first = b.next_delay();
        assert!(first <= Duration::from_millis(501), "{first:?}");
        for _ in 0..20 {
            assert!(b.next_delay() <= Duration::from_millis(15_001));
        }
    }

    #[test]
    fn values_in_messages_are_short() {
        assert_eq!(show(52.300000000000004), "52.3");
        assert_eq!(show(80.0), "80");
        assert_eq!(show(-0.0001), "0");
        assert_eq!(show(-12.5), "-12.5");
    }

    /// What the scripted device does.
    #[derive(Debug, Clone)]
    enum Mode {
        Answer(Vec<u16>),
        Exception(u8),
        Hang,
        Refuse,
    }

    #[derive(Debug)]
    struct Script {
        mode: Mode,
        connects: u32,
    }

    #[derive(Debug, Clone)]
    struct Fake(Arc<Mutex<Script>>);

    impl Fake {
        fn new(mode: Mode) -> Self {
            Fake(Arc::new(Mutex::new(Script { mode, connects: 0 })))
        }
        fn set(&self, mode: Mode) {
            self.0.lock().unwrap().mode = mode;
        }
        fn mode(&self) -> Mode {
            self.0.lock().unwrap().mode.clone()
        }
        fn connects(&self) -> u32 {
            self.0.lock().unwrap().connects
        }
    }

    impl RegisterReader for Fake {
        async fn read(
            &mut self,
            _table: parkwatch_config::RegisterType,
            _address: u16,
            count: u16,
        ) -> Result<Vec<u16>, ReadFailure> {
            match self.mode() {
                Mode::Answer(w) => Ok(w.into_iter().take(usize::from(count)).collect()),
                Mode::Exception(code) => Err(ReadFailure::Exception {
                    code,
                    text: "scripted".into(),
                }),
                Mode::Hang => std::future::pending().await,
                Mode::Refuse => Err(ReadFailure::Io(std::io::ErrorKind::ConnectionReset.into())),
            }
        }
    }

    impl Connector for Fake {
        type Conn = Fake;
        async fn connect(&self) -> Result<Fake, ReadFailure> {
            self.0.lock().unwrap().connects += 1;
            match self.mode() {
                Mode::Refuse => Err(ReadFailure::Io(
                    std::io::ErrorKind::ConnectionRefused.into(),
                )),
                _ => Ok(self.clone()),
            }
        }
    }

    fn config(extra: &str) -> SensorConfig {
        toml::from_str(&format!(
            r#"
            id = "gas-03"
            kind = "gas_lel"
            address = "fake:502"
            register = 0
            poll_secs = 0.05
            offline_after_secs = 0.3
            {extra}
            "#
        ))
        .unwrap()
    }

    struct Rig {
        fake: Fake,
        points: Arc<PointBuffer>,
        rx: mpsc::Receiver<SensorAlarm>,
        stop: watch::Sender<bool>,
        stats: Arc<SensorStats>,
        task: tokio::task::JoinHandle<()>,
    }

    fn rig(mode: Mode, extra: &str) -> Rig {
        let cfg = config(extra);
        let fake = Fake::new(mode);
        let points = PointBuffer::new(10_000);
        let (tx, rx) = mpsc::channel(64);
        let (stop, shutdown) = watch::channel(false);
        let stats = SensorStats::new(&cfg);
        let p = Poller::new(
            "edge-01",
            &cfg,
            fake.clone(),
            points.clone(),
            tx,
            shutdown,
            stats.clone(),
            parkwatch_durable::clock::now_ms,
        );
        let task = tokio::spawn(p.run());
        Rig {
            fake,
            points,
            rx,
            stop,
            stats,
            task,
        }
    }

    async fn next_alarm(rx: &mut mpsc::Receiver<SensorAlarm>) -> SensorAlarm {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("an alarm within 5 s")
            .expect("channel open")
    }

    fn field(p: &parkwatch_protocol::Point, k: &str) -> Option<FieldValue> {
        p.fields
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    }

    #[tokio::test]
    async fn refused_device_backs_off_goes_offline_and_recovers() {
        let mut r = rig(Mode::Refuse, "data_type = \"f32\"");
        let new = next_alarm(&mut r.rx).await;
        assert_eq!(
            (new.kind, new.event),
            (AlarmKind::DeviceOffline, AlarmEventType::New)
        );
        assert!(
            new.message.as_deref().unwrap_or("").contains("refused"),
            "{new:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let polls = r.stats.polls();
        // Backoff: fewer connect attempts than poll cycles.
        assert!(
            u64::from(r.fake.connects()) < polls,
            "{} connects in {polls} polls",
            r.fake.connects()
        );
        assert!(!r.stats.online());
        r.fake.set(Mode::Answer(vec![0x4148, 0x0000]));
        let end = next_alarm(&mut r.rx).await;
        assert_eq!(
            (end.alarm_id.as_str(), end.event),
            (new.alarm_id.as_str(), AlarmEventType::End)
        );
        assert!(r.stats.online());
        assert_eq!(r.stats.last_value(), Some(12.5));
        r.stop.send(true).unwrap();
        r.task.await.unwrap();
        let (pts, _) = r.points.take();
        assert!(
            pts.iter()
                .any(|p| field(p, "online") == Some(FieldValue::I64(0)))
        );
        let good = pts
            .iter()
            .rev()
            .find(|p| field(p, "value").is_some())
            .unwrap();
        assert_eq!(field(good, "value"), Some(FieldValue::F64(12.5)));
        assert_eq!(field(good, "raw"), Some(FieldValue::I64(0x4148_0000)));
        assert_eq!(
            good.tags,
            vec![
                ("sensor".to_owned(), "gas-03".to_owned()),
                ("kind".to_owned(), "gas_lel".to_owned()),
                ("unit".to_owned(), "%LEL".to_owned()),
            ]
        );
    }

    #[tokio::test]
    async fn device_exceptions_count_as_errors_but_not_as_offline() {
        let mut r = rig(Mode::Exception(0x02), "");
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(
            r.rx.try_recv().is_err(),
            "no alarm for a device that answers"
        );
        assert!(r.stats.online());
        assert!(r.stats.errors() >= 5);
        // The connection is kept: an exception is an answer in step.
        assert_eq!(r.fake.connects(), 1);
        // A gateway saying the device did not respond is offline.
        r.fake.set(Mode::Exception(0x0B));
        let new = next_alarm(&mut r.rx).await;
        assert_eq!(new.kind, AlarmKind::DeviceOffline);
        assert!(!r.stats.online());
        r.stop.send(true).unwrap();
        // Shutdown ends the open alarm.
        let end = next_alarm(&mut r.rx).await;
        assert_eq!(
            (end.alarm_id, end.event),
            (new.alarm_id, AlarmEventType::End)
        );
        r.task.await.unwrap();
    }

    #[tokio::test]
    async fn a_hanging_device_times_out_and_shutdown_is_prompt() {
        let mut r = rig(Mode::Hang, "");
        let new = next_alarm(&mut r.rx).await;
        assert_eq!(new.kind, AlarmKind::DeviceOffline);
        // Every timeout drops the connection: more than one connect.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(r.fake.connects() >= 2, "{} connects", r.fake.connects());
        let t = std::time::Instant::now();
        r.stop.send(true).unwrap();
        r.task.await.unwrap();
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
    }

    #[tokio::test]
    async fn thresholds_raise_and_end_with_one_id() {
        let mut r = rig(
            Mode::Answer(vec![0x0000, 0x0000]),
            "data_type = \"f32\"\nthreshold = { above = 20.0, hysteresis = 5.0, severity = \"critical\" }",
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        r.fake.set(Mode::Answer(vec![0x41C8, 0x0000])); // 25.0
        let new = next_alarm(&mut r.rx).await;
        assert_eq!(
            (new.kind, new.event, new.value),
            (AlarmKind::SensorThreshold, AlarmEventType::New, Some(25.0))
        );
        assert_eq!(new.severity, parkwatch_protocol::Severity::Critical);
        assert!(
            new.alarm_id.starts_with("edge-01.gas-03.threshold."),
            "{}",
            new.alarm_id
        );
        assert!(r.stats.threshold_alarm());
        r.fake.set(Mode::Answer(vec![0x4190, 0x0000])); // 18.0: inside the band, no end
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(r.rx.try_recv().is_err());
        r.fake.set(Mode::Answer(vec![0x4120, 0x0000])); // 10.0
        let end = next_alarm(&mut r.rx).await;
        assert_eq!(
            (end.alarm_id, end.event, end.value),
            (new.alarm_id, AlarmEventType::End, Some(10.0))
        );
        assert_eq!(end.ended_at_ms, Some(end.event_at_ms));
        r.stop.send(true).unwrap();
        r.task.await.unwrap();
        assert!(r.rx.try_recv().is_err(), "nothing open at shutdown");
    }
}
