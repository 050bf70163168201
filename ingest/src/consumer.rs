//! The MQTT consumer: receives everything edges publish and routes it.
//!
//! # How it connects
//!
//! Ingest's consumer is an ordinary MQTT client (rumqttc) in both broker
//! modes: in embedded mode it connects over loopback TCP to the embedded
//! broker's own listener, as [`crate::broker::INTERNAL_USER`]. One code
//! path serves both modes, external mode gets shared subscriptions
//! (`$share/<group>/...`) for free, and the consumer sees exactly what an
//! edge's traffic looks like on the wire. The cost, one loopback hop, is
//! small next to rumqttd's ~120k QoS 1 messages/s here. (rumqttd's
//! in-process `Broker::link` was the alternative; it ties ingest to
//! rumqttd's internals and has no external-mode counterpart.)
//!
//! Session: QoS 1, clean session **false** with a fixed client id, so the
//! broker keeps the subscription and queues messages while the client is
//! briefly away. (rumqttd keeps that session in memory only.)
//!
//! # Two links
//!
//! Ingest opens two connections ([`split_urgent`]): one for status,
//! alarms, snapshots and config acks (client id as configured), one for
//! telemetry (client id + [`TELEMETRY_CLIENT_SUFFIX`]), each with its own
//! poller and processor. A broker serves one connection's in-flight window
//! from whatever it has queued, and rumqttd 0.20 kept feeding a connection
//! from the telemetry backlog while an alarm waited: with 50 edges
//! saturating ingest, no alarm at all got through in 60 s on one shared
//! connection. On its own connection an alarm waits for nothing but other
//! urgent records, as in the edge's outbox. `/healthz` wants both links up.
//!
//! # Flow control
//!
//! Two tasks. The *poller* drives the rumqttc event loop (keep-alive,
//! reconnects, resubscribing) and forwards each publish to the *processor*
//! through a channel. Acks are manual: the processor acknowledges a publish
//! (MQTT PUBACK) only after it has handled it, and in order, which rumqttd
//! requires. When the writer's queue is full the processor waits, stops
//! acking, and the broker stops sending once its in-flight window (100 for
//! rumqttd, `max_inflight_messages` for Mosquitto) is full; meanwhile the
//! poller keeps the connection alive.
//!
//! Neither the processor nor the acker ever *waits* on rumqttc's request
//! queue: PUBACKs and delivery acks are handed over with `try_*` calls, and
//! what does not fit is kept (PUBACKs in order, in the processor; acks in
//! the acker's batcher) and handed over again shortly. Waiting there would
//! close a cycle: the request queue drains only while the poller polls,
//! the poller stops polling while the processor's channel is full, and the
//! processor (directly, or through writer → acker) would wait for the
//! request queue. A broker that keeps more publishes unacknowledged than
//! both channels hold (seen with Mosquitto 2.0 and 2 560 publishes in
//! flight from 20 clients) deadlocked ingest that way.
//!
//! A publish received on a connection that has since been replaced is not
//! acked (its packet id belongs to the old connection); the broker sends it
//! again on the new one. Delivery to the database is guaranteed end to end
//! by [`crate::acks`], not by MQTT acks.
//!
//! # Routing
//!
//! [`Classifier::classify`] (pure, tested without a broker) parses the topic
//! and decodes the payload with the protocol crate, checks the site filter
//! and the sender's branch. A rejected message is counted in
//! `parkwatch_ingest_rejected_total{reason}`, logged with its topic (at
//! most 5 lines per reason per minute) and kept in the dead-letter store
//! ([`crate::deadletter`], never blocking), then acked and forgotten: it
//! never stops the consumer. Reasons: `bad_topic`, `site_not_accepted`,
//! `branch`, `unexpected_topic`, and the decoder's `too_large`,
//! `malformed`, `unsupported_version`, `invalid`.
//!
//! Branch check (`branch`): an edge may publish only under its own
//! `{prefix}/{site}/{edge}/` branch. The consumer cannot see who published
//! a message, so it checks what it can: the payload's `site` and `edge`
//! must equal the topic's, and, when the embedded broker authenticates
//! edges, the topic's edge must be one with a configured credential
//! ([`Classifier::with_known_edges`]). The broker-side half of the rule is
//! in [`crate::broker`] (embedded) and `deploy/mosquitto/acl` (external).
//!
//! Alarms and snapshots go to the incident service (when `site_dir` is
//! configured): an alarm event's delivery ack, and its snapshot's, are
//! queued for the acker only after the service stored them durably (see
//! [`crate::incidents::intake`]); if storing fails the record is not
//! acknowledged and the edge sends it again.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parkwatch_protocol::{
    AlarmEvent, ConfigAck, DecodeError, EdgeStatus, EdgeTopic, Message, TopicKind, decode_message,
};
use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, EventLoop, MqttOptions, Outgoing, Packet, Publish, QoS,
    SubscribeFilter, SubscribeReasonCode,
};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::edges::EdgeRegistry;
use crate::metrics::Metrics;
use crate::points::{SkipReason, convert_batch};
use crate::ratelimit::{LogLimiter, Verdict};
use crate::secret::Secret;
use crate::writer::{Backoff, WriteItem};
use parkwatch_durable::now_ms;

/// A message that passed every check.
#[derive(Debug)]
pub enum Inbound {
    /// A telemetry batch, converted for the writer.
    Telemetry {
        /// The batch's points as line-protocol points, with site and edge.
        item: WriteItem,
        /// Points that could not be converted.
        skipped: Vec<SkipReason>,
    },
    /// An edge status.
    Status(EdgeStatus),
    /// An alarm event.
    Alarm(Box<AlarmEvent>),
    /// A snapshot JPEG.
    Snapshot {
        /// The topic it came on.
        topic: EdgeTopic,
        /// Its alarm id.
        alarm_id: String,
        /// The JPEG bytes.
        jpeg: Vec<u8>,
    },
    /// An edge's verdict on a pushed configuration.
    ConfigAck {
        /// The topic it came on.
        topic: EdgeTopic,
        /// The ack.
        ack: ConfigAck,
    },
}

impl Inbound {
    /// The message kind label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Inbound::Telemetry { .. } => "telemetry",
            Inbound::Status(_) => "status",
            Inbound::Alarm(_) => "alarms",
            Inbound::Snapshot { .. } => "snapshots",
            Inbound::ConfigAck { .. } => "config_ack",
        }
    }
}

/// Why a message was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Stable label for metrics.
    pub reason: &'static str,
    /// What exactly was wrong, for the log.
    pub error: String,
}

/// Parses, decodes and checks received messages.
#[derive(Debug, Clone)]
pub struct Classifier {
    prefix: String,
    site: Option<String>,
    known_edges: Option<Arc<BTreeSet<String>>>,
}

impl Classifier {
    /// A classifier for topics under `prefix`, accepting only `site` if set.
    pub fn new(prefix: &str, site: Option<&str>) -> Self {
        Classifier {
            prefix: prefix.to_owned(),
            site: site.map(str::to_owned),
            known_edges: None,
        }
    }

    /// Accepts topics only of these edges (those with a broker
    /// credential); any other edge id is rejected as `branch`.
    pub fn with_known_edges(mut self, edges: impl IntoIterator<Item = String>) -> Self {
        self.known_edges = Some(Arc::new(edges.into_iter().collect()));
        self
    }

    /// Classifies one message. Never panics, whatever the bytes.
    pub fn classify(&self, topic: &str, payload: &[u8]) -> Result<Inbound, Rejection> {
        let t = EdgeTopic::parse(&self.prefix, topic).map_err(|e| Rejection {
            reason: "bad_topic",
            error: e.to_string(),
        })?;
        if let Some(site) = &self.site
            && &t.site != site
        {
            return Err(Rejection {
                reason: "site_not_accepted",
                error: format!("site {:?} is not the configured site {site:?}", t.site),
            });
        }
        if let Some(known) = &self.known_edges
            && !known.contains(&t.edge)
        {
            return Err(Rejection {
                reason: "branch",
                error: format!("edge {:?} has no broker credential", t.edge),
            });
        }
        let msg = decode_message(&t.kind, payload).map_err(|e| Rejection {
            reason: match &e {
                DecodeError::Invalid { field, .. } if field == "topic" => "unexpected_topic",
                other => other.reason(),
            },
            error: e.to_string(),
        })?;
        msg.check_origin(&t).map_err(|e| Rejection {
            reason: match &e {
                DecodeError::Invalid { field, .. } if field == "site" || field == "edge" => {
                    "branch"
                }
                other => other.reason(),
            },
            error: e.to_string(),
        })?;
        Ok(match msg {
            Message::Telemetry(batch) => {
                let converted = convert_batch(&t.site, &t.edge, &batch);
                Inbound::Telemetry {
                    item: WriteItem {
                        site: t.site,
                        edge: t.edge,
                        seq: batch.seq,
                        points: converted.points,
                        received: None,
                    },
                    skipped: converted.skipped,
                }
            }
            Message::Status(s) => Inbound::Status(s),
            Message::Alarm(a) => Inbound::Alarm(Box::new(a)),
            Message::Snapshot { alarm_id, jpeg } => Inbound::Snapshot {
                topic: t,
                alarm_id,
                jpeg,
            },
            Message::ConfigAck(ack) => Inbound::ConfigAck { topic: t, ack },
        })
    }
}

/// How ingest's MQTT client connects.
#[derive(Debug, Clone)]
pub struct MqttSettings {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Client id (fixed, for a persistent session).
    pub client_id: String,
    /// Username, if any.
    pub username: Option<String>,
    /// Password (redacted in `Debug`).
    pub password: Option<Secret>,
    /// Keep-alive interval.
    pub keep_alive: Duration,
    /// Largest packet accepted, in bytes.
    pub max_packet_bytes: usize,
    /// Subscription filters, `$share/...` already applied.
    pub subscriptions: Vec<String>,
}

/// Capacity of the channel from poller to processor, and of rumqttc's
/// request channel: above every broker's in-flight window.
const CHANNEL: usize = 1024;

/// The MQTT client and its event loop, configured from `s`.
pub fn connect(s: &MqttSettings) -> (AsyncClient, EventLoop) {
    let mut o = MqttOptions::new(s.client_id.clone(), s.host.clone(), s.port);
    o.set_keep_alive(s.keep_alive)
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_max_packet_size(s.max_packet_bytes, s.max_packet_bytes)
        .set_request_channel_capacity(CHANNEL);
    if let Some(user) = &s.username {
        let pw = s.password.as_ref().map(Secret::expose).unwrap_or("");
        o.set_credentials(user.clone(), pw.to_owned());
    }
    AsyncClient::new(o, CHANNEL)
}

/// One publish handed from the poller to the processor.
#[derive(Debug)]
pub struct Received {
    publish: Publish,
    epoch: u64,
    /// When the poller took it from the connection.
    arrived: Instant,
}

/// Drives the event loop until ingest's client sends DISCONNECT or `kill`
/// turns true. Forwards publishes to `tx`; resubscribes on every connect;
/// reports the connection state as MQTT link `link` in the metrics.
#[allow(clippy::too_many_arguments)]
pub async fn run_poller(
    mut eventloop: EventLoop,
    client: AsyncClient,
    subscriptions: Vec<String>,
    tx: mpsc::Sender<Received>,
    epoch: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
    mut kill: watch::Receiver<bool>,
    link: usize,
) {
    let backoff = Backoff::try_new(Duration::from_millis(200), Duration::from_secs(15));
    let mut failures: u32 = 0;
    let mut tx = Some(tx);
    loop {
        let ev = tokio::select! {
            ev = eventloop.poll() => ev,
            _ = kill.wait_for(|k| *k) => return,
        };
        match ev {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                failures = 0;
                let e = epoch.fetch_add(1, Ordering::SeqCst) + 1;
                metrics.set_link_connected(link, true);
                info!(
                    link,
                    session_present = ack.session_present,
                    connection = e,
                    "Connected to the MQTT broker."
                );
                let filters = subscriptions
                    .iter()
                    .map(|f| SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
                if let Err(e) = client.try_subscribe_many(filters) {
                    warn!(err = %e, "Cannot queue subscriptions.");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(s))) => {
                if s.return_codes
                    .iter()
                    .any(|c| matches!(c, SubscribeReasonCode::Failure))
                {
                    warn!(codes = ?s.return_codes, filters = ?subscriptions, "Broker refused a subscription.");
                } else {
                    debug!(filters = ?subscriptions, "Subscribed.");
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let Some(sender) = &tx else { continue };
                let r = Received {
                    publish: p,
                    epoch: epoch.load(Ordering::SeqCst),
                    arrived: Instant::now(),
                };
                if sender.send(r).await.is_err() {
                    // The processor stopped (shutdown): keep polling so acks
                    // and the final DISCONNECT still go out.
                    tx = None;
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                metrics.set_link_connected(link, false);
                info!("Disconnected from the MQTT broker.");
                return;
            }
            Ok(_) => {}
            Err(e) => {
                metrics.set_link_connected(link, false);
                let delay = match &backoff {
                    Ok(b) => b.delay(failures, rand::random::<f64>()),
                    Err(_) => Duration::from_secs(1),
                };
                if failures < 3 || failures.is_multiple_of(20) {
                    let hint = match &e {
                        rumqttc::ConnectionError::ConnectionRefused(
                            ConnectReturnCode::BadUserNamePassword
                            | ConnectReturnCode::NotAuthorized,
                        ) => " (check broker.username / password)",
                        _ => "",
                    };
                    warn!(
                        err = %e,
                        attempt = failures + 1,
                        retry_in_ms = delay.as_millis() as u64,
                        "MQTT connection failed{hint}; reconnecting."
                    );
                }
                failures = failures.saturating_add(1);
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = kill.wait_for(|k| *k) => return,
                }
            }
        }
    }
}

/// Everything the processor routes to.
#[derive(Debug, Clone)]
pub struct Routes {
    /// The time-series writer's queue.
    pub writer: mpsc::Sender<WriteItem>,
    /// Latest status per edge.
    pub edges: Arc<EdgeRegistry>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The incident service, when `site_dir` is configured: alarms and
    /// snapshots are stored and correlated there.
    pub incidents: Option<Arc<crate::incidents::Incidents>>,
    /// The acker's queue, for alarms and snapshots the incident service stored.
    pub acks: mpsc::Sender<crate::acks::AckEntry>,
    /// Where rejected messages are kept for inspection (`None`: not kept).
    pub deadletters: Option<crate::deadletter::DeadLetters>,
}

/// Handles received publishes until `rx` closes or `stop` turns true, then
/// drops the writer's sender (so the writer flushes and ends).
pub async fn run_processor(
    mut rx: mpsc::Receiver<Received>,
    client: AsyncClient,
    epoch: Arc<AtomicU64>,
    classifier: Classifier,
    routes: Routes,
    mut stop: watch::Receiver<bool>,
) {
    let mut limiter = LogLimiter::new(5, Duration::from_secs(60));
    // PUBACKs not yet taken by the client's request queue, oldest first,
    // with the connection they belong to (see "Flow control").
    let mut unacked: VecDeque<(u64, Publish)> = VecDeque::new();
    loop {
        flush_acks(&client, &mut unacked, &epoch);
        let r = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            r = rx.recv() => match r {
                Some(r) => r,
                None => break,
            },
            () = tokio::time::sleep(ACK_RETRY), if !unacked.is_empty() => continue,
        };
        let topic = r.publish.topic.as_str();
        match classifier.classify(topic, &r.publish.payload) {
            Ok(mut inbound) => {
                routes.metrics.message(inbound.kind());
                if let Inbound::Telemetry { item, .. } = &mut inbound {
                    item.received = Some(r.arrived);
                }
                if !route(inbound, r.arrived, &routes, &mut stop).await {
                    break;
                }
            }
            Err(rej) => {
                routes.metrics.rejected(rej.reason);
                if let Some(dl) = &routes.deadletters {
                    dl.record(topic, rej.reason, &rej.error, &r.publish.payload);
                }
                if let Verdict::Log { suppressed } = limiter.check(rej.reason, Instant::now()) {
                    warn!(
                        topic = %truncate_topic(topic),
                        reason = rej.reason,
                        err = %rej.error,
                        bytes = r.publish.payload.len(),
                        suppressed,
                        "Rejected message."
                    );
                }
            }
        }
        if r.epoch == epoch.load(Ordering::SeqCst) {
            // Only the packet id and QoS matter for the PUBACK.
            let mut p = r.publish;
            p.payload = bytes::Bytes::new();
            unacked.push_back((r.epoch, p));
        }
    }
    flush_acks(&client, &mut unacked, &epoch);
    debug!("Consumer stopped accepting messages.");
}

/// How soon PUBACKs that did not fit in the client's request queue are
/// offered again.
const ACK_RETRY: Duration = Duration::from_millis(5);

/// Hands queued PUBACKs to the client, in order, while its request queue
/// has room; drops those of a connection that has since been replaced
/// (the broker sends those messages again on the new one).
fn flush_acks(client: &AsyncClient, queue: &mut VecDeque<(u64, Publish)>, epoch: &AtomicU64) {
    let current = epoch.load(Ordering::SeqCst);
    while let Some((e, p)) = queue.front() {
        if *e == current && client.try_ack(p).is_err() {
            break;
        }
        queue.pop_front();
    }
}

/// Routes one accepted message; false when shutdown interrupted it.
async fn route(
    inbound: Inbound,
    arrived: Instant,
    routes: &Routes,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    match inbound {
        Inbound::Telemetry { item, skipped } => {
            for s in &skipped {
                routes.metrics.point_skipped(s.as_str(), 1);
            }
            if !skipped.is_empty() {
                debug!(edge = %item.edge, seq = item.seq, skipped = skipped.len(), "Skipped unwritable points.");
            }
            routes.metrics.queue_add(1);
            let sent = tokio::select! {
                r = routes.writer.send(item) => r.is_ok(),
                _ = stop.wait_for(|s| *s) => false,
            };
            if !sent {
                routes.metrics.queue_add(-1);
            }
            sent
        }
        Inbound::Status(s) => {
            let (site, edge, state, seq) = (s.site.clone(), s.edge.clone(), s.state, s.seq);
            let cameras = s.cameras.len();
            let applied = routes.edges.update(s, now_ms());
            info!(%site, %edge, state = ?state, seq, cameras, applied, "Edge status.");
            true
        }
        Inbound::Alarm(a) => {
            info!(
                site = %a.site,
                edge = %a.edge,
                alarm_id = %a.alarm_id,
                event = %a.event,
                kind = %a.kind,
                severity = %a.severity,
                camera = a.camera.as_deref().unwrap_or("-"),
                seq = a.seq,
                "Alarm."
            );
            let Some(incidents) = &routes.incidents else {
                return true;
            };
            match incidents.ingest_alarm(&a).await {
                Ok(out) => {
                    routes.metrics.alarm_stored(arrived.elapsed());
                    debug!(alarm_id = %a.alarm_id, seq = a.seq, incident = ?out.incident_id, opened = out.opened, duplicate = out.duplicate, "Alarm stored.");
                    send_acks(routes, stop, &a.site, &a.edge, out.acks, arrived).await
                }
                Err(e) => {
                    warn!(alarm_id = %a.alarm_id, edge = %a.edge, seq = a.seq, err = %e, "Cannot store an alarm; not acknowledged, the edge sends it again.");
                    true
                }
            }
        }
        Inbound::Snapshot {
            topic,
            alarm_id,
            jpeg,
        } => {
            let bytes = jpeg.len();
            let Some(incidents) = &routes.incidents else {
                debug!(site = %topic.site, edge = %topic.edge, %alarm_id, bytes, "Snapshot received (incidents are off: not stored).");
                return true;
            };
            match incidents
                .ingest_snapshot(&topic.edge, &alarm_id, jpeg)
                .await
            {
                Ok(out) => {
                    debug!(edge = %topic.edge, %alarm_id, bytes, acks = out.acks.len(), "Snapshot stored.");
                    send_acks(routes, stop, &topic.site, &topic.edge, out.acks, arrived).await
                }
                Err(e) => {
                    warn!(edge = %topic.edge, %alarm_id, bytes, err = %e, "Cannot store a snapshot; not acknowledged, the edge sends it again.");
                    true
                }
            }
        }
        Inbound::ConfigAck { topic, ack } => {
            info!(
                site = %topic.site,
                edge = %topic.edge,
                revision = ack.revision,
                accepted = ack.accepted,
                errors = ack.errors.len(),
                "Config ack."
            );
            true
        }
    }
}

/// Queues delivery acks for records the incident service stored; false
/// when shutdown interrupted it (the edge then sends them again).
async fn send_acks(
    routes: &Routes,
    stop: &mut watch::Receiver<bool>,
    site: &str,
    edge: &str,
    seqs: Vec<u64>,
    arrived: Instant,
) -> bool {
    for seq in seqs {
        let entry = crate::acks::AckEntry {
            site: site.to_owned(),
            edge: edge.to_owned(),
            seq,
            received: Some(arrived),
        };
        let sent = tokio::select! {
            r = routes.acks.send(entry) => r.is_ok(),
            _ = stop.wait_for(|s| *s) => false,
        };
        if !sent {
            return false;
        }
    }
    true
}

fn truncate_topic(t: &str) -> &str {
    let mut end = t.len().min(200);
    while !t.is_char_boundary(end) {
        end -= 1;
    }
    &t[..end]
}

/// Appended to ingest's client id for its telemetry connection.
pub const TELEMETRY_CLIENT_SUFFIX: &str = "-telemetry";

/// Splits subscription filters into (urgent, telemetry): filters ending in
/// `/telemetry` go to the telemetry link, all others to the urgent one.
pub fn split_urgent(filters: Vec<String>) -> (Vec<String>, Vec<String>) {
    filters
        .into_iter()
        .partition(|f| !f.ends_with("/telemetry"))
}

/// Applies `$share/<group>/` to each filter when a group is set.
pub fn shared(filters: Vec<String>, group: Option<&str>) -> Vec<String> {
    match group {
        Some(g) => filters
            .into_iter()
            .map(|f| format!("$share/{g}/{f}"))
            .collect(),
        None => filters,
    }
}

/// Publishes delivery acks through ingest's MQTT client.
#[derive(Debug, Clone)]
pub struct MqttAckPublisher(pub AsyncClient);

impl crate::acks::AckPublisher for MqttAckPublisher {
    /// Never waits: a full request queue is an error, and the acker
    /// offers the ack again at its next tick.
    async fn publish(&self, topic: String, payload: Vec<u8>) -> Result<(), String> {
        self.0
            .try_publish(topic, QoS::AtLeastOnce, false, payload)
            .map_err(|_| "the MQTT client's request queue is full".to_owned())
    }
}

/// A topic name for `kind` of one edge (for tests and tools).
pub fn topic_of(prefix: &str, site: &str, edge: &str, kind: TopicKind) -> Option<String> {
    EdgeTopic::new(site, edge, kind)
        .ok()
        .map(|t| t.render(prefix))
}

#[cfg(test)]
mod tests {
    use parkwatch_protocol::{
        EdgeState, FieldValue, Point, TelemetryBatch, encode_json, encode_telemetry,
    };

    use super::*;

    fn batch(site: &str, edge: &str) -> TelemetryBatch {
        TelemetryBatch {
            v: parkwatch_protocol::SCHEMA_VERSION,
            site: site.into(),
            edge: edge.into(),
            seq: 42,
            created_at_ms: 1_700_000_000_000,
            points: vec![Point {
                measurement: "camera_stream".into(),
                ts_ms: 1_700_000_000_000,
                tags: vec![("camera".into(), "cam-01".into())],
                fields: vec![("frames_received".into(), FieldValue::U64(25))],
            }],
        }
    }

    fn reason(r: Result<Inbound, Rejection>) -> &'static str {
        match r {
            Ok(i) => panic!("accepted: {i:?}"),
            Err(rej) => rej.reason,
        }
    }

    #[test]
    fn telemetry_is_converted_with_topic_ids() {
        let c = Classifier::new("parkwatch", None);
        let payload = encode_telemetry(&batch("etdz", "edge-p01"));
        match c.classify("parkwatch/etdz/edge-p01/telemetry", &payload) {
            Ok(Inbound::Telemetry { item, skipped }) => {
                assert_eq!(
                    (item.site.as_str(), item.edge.as_str(), item.seq),
                    ("etdz", "edge-p01", 42)
                );
                assert_eq!(item.points.len(), 1);
                assert!(skipped.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mismatches_and_garbage_are_rejected_with_reasons() {
        let c = Classifier::new("parkwatch", None);
        let other_edge = encode_telemetry(&batch("etdz", "edge-p02"));
        assert_eq!(
            reason(c.classify("parkwatch/etdz/edge-p01/telemetry", &other_edge)),
            "branch"
        );
        let other_site = encode_telemetry(&batch("other", "edge-p01"));
        assert_eq!(
            reason(c.classify("parkwatch/etdz/edge-p01/telemetry", &other_site)),
            "branch"
        );
        assert_eq!(
            reason(c.classify("parkwatch/etdz/edge-p01/telemetry", b"\xff\xff\xff")),
            "malformed"
        );
        assert_eq!(
            reason(c.classify("parkwatch/etdz/edge-p01/status", b"{\"v\": 99}")),
            "unsupported_version"
        );
        assert_eq!(
            reason(c.classify("parkwatch/etdz/edge-p01/bogus", b"{}")),
            "bad_topic"
        );
        assert_eq!(
            reason(c.classify("other/etdz/edge-p01/status", b"{}")),
            "bad_topic"
        );
        assert_eq!(
            reason(c.classify("parkwatch/etdz/edge-p01/ack", b"{}")),
            "unexpected_topic"
        );
        assert_eq!(
            reason(c.classify("parkwatch/etdz/edge-p01/snapshots/a1", b"not a jpeg")),
            "malformed"
        );
    }

    #[test]
    fn only_edges_with_credentials_are_accepted_when_known() {
        let c = Classifier::new("parkwatch", None).with_known_edges(["edge-p01".to_owned()]);
        let own = encode_telemetry(&batch("etdz", "edge-p01"));
        assert!(
            c.classify("parkwatch/etdz/edge-p01/telemetry", &own)
                .is_ok()
        );
        let stranger = encode_telemetry(&batch("etdz", "edge-x"));
        let rej = c
            .classify("parkwatch/etdz/edge-x/telemetry", &stranger)
            .err();
        assert_eq!(rej.as_ref().map(|r| r.reason), Some("branch"));
        assert!(rej.is_some_and(|r| r.error.contains("edge-x")));
        // Without the list, any well-formed edge id passes the check.
        let open = Classifier::new("parkwatch", None);
        assert!(
            open.classify("parkwatch/etdz/edge-x/telemetry", &stranger)
                .is_ok()
        );
    }

    #[test]
    fn site_filter_applies() {
        let c = Classifier::new("parkwatch", Some("etdz"));
        let payload = encode_telemetry(&batch("north", "edge-p01"));
        assert_eq!(
            reason(c.classify("parkwatch/north/edge-p01/telemetry", &payload)),
            "site_not_accepted"
        );
    }

    #[test]
    fn status_is_decoded() {
        let c = Classifier::new("parkwatch", None);
        let s = EdgeStatus {
            v: parkwatch_protocol::SCHEMA_VERSION,
            site: "etdz".into(),
            edge: "edge-p01".into(),
            seq: 1,
            state: EdgeState::Online,
            version: "0.1.0".into(),
            started_at_ms: 1_700_000_000_000,
            at_ms: 1_700_000_000_000,
            cameras: vec![],
        };
        match c.classify("parkwatch/etdz/edge-p01/status", &encode_json(&s)) {
            Ok(Inbound::Status(got)) => assert_eq!(got, s),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn telemetry_gets_its_own_link() {
        let all = parkwatch_protocol::ingest_subscriptions("pw");
        let (urgent, telemetry) = split_urgent(shared(all.clone(), Some("g")));
        assert_eq!(telemetry, vec!["$share/g/pw/+/+/telemetry"]);
        assert_eq!(urgent.len(), all.len() - 1);
        assert!(urgent.iter().any(|f| f.ends_with("/alarms")));
    }

    #[test]
    fn share_prefix_is_applied_only_with_a_group() {
        let f = vec!["p/+/+/status".to_owned()];
        assert_eq!(shared(f.clone(), Some("g")), vec!["$share/g/p/+/+/status"]);
        assert_eq!(shared(f.clone(), None), f);
    }
}
