//! The MQTT uplink: sends what the outbox holds, and forgets a record only
//! when ingest says it stored it.
//!
//! # Design
//! - One MQTT session (rumqttc) with the edge id as client id. Its event loop
//!   runs in a task of its own and reports to the uplink task over a channel,
//!   so publishing (which may wait for room in rumqttc's request queue) can
//!   never stall the loop that drains that queue.
//! - Status is state, not an event: on every connect the edge publishes its
//!   retained `status` (online, version, cameras); the connection's last will
//!   is the same message saying offline, and a clean shutdown publishes it too.
//! - Everything else comes from the [`Outbox`]: alarms, snapshots, telemetry.
//!   The outbox decides the order (alarms ahead of a telemetry backlog) and
//!   re-sends what is not acknowledged. A broker PubAck only frees a slot in
//!   the publish window; the record stays in the outbox until a
//!   [`DeliveryAck`](parkwatch_protocol::DeliveryAck) from ingest names its
//!   sequence number (rumqttd keeps nothing across a restart, and a PubAck
//!   says nothing about ingest).
//! - After every (re)connect all unacknowledged records are sent again, in
//!   order within each class. Ingest recognises duplicates by sequence number
//!   and alarm id, so "at least once" on the wire is "exactly once" in effect.
//! - Reconnects back off with jitter (0.5 s doubling to 30 s).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use parkwatch_protocol::{
    EdgeStatus, EdgeTopic, TopicKind, decode_ack, edge_subscriptions, encode_json,
};
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use tokio::sync::{Notify, mpsc, watch};
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::metrics::EdgeMetrics;
use crate::outbox::Outbox;

/// Publishes in flight (sent, no PubAck yet) before the uplink waits.
const PUBLISH_WINDOW: usize = 128;

/// How the uplink reaches the broker.
#[derive(Clone)]
pub struct UplinkSpec {
    pub site: String,
    pub edge: String,
    pub prefix: String,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub keepalive: Duration,
}

impl std::fmt::Debug for UplinkSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UplinkSpec")
            .field("edge", &self.edge)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl UplinkSpec {
    fn topic(&self, kind: TopicKind) -> String {
        // Ids were validated with the configuration; a bad one would have
        // stopped the box at start-up, so fall back to a plain join.
        match EdgeTopic::new(&self.site, &self.edge, kind.clone()) {
            Ok(t) => t.render(&self.prefix),
            Err(_) => format!(
                "{}/{}/{}/{}",
                self.prefix,
                self.site,
                self.edge,
                kind.name()
            ),
        }
    }
}

/// Produces the current status message (online or offline).
pub type StatusFn = Arc<dyn Fn(bool) -> EdgeStatus + Send + Sync>;

/// Runs the uplink until `shutdown` turns true, then says offline.
pub async fn run_uplink(
    spec: UplinkSpec,
    outbox: Arc<Mutex<Outbox>>,
    wake: Arc<Notify>,
    status: StatusFn,
    metrics: Arc<EdgeMetrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let status_topic = spec.topic(TopicKind::Status);
    let ack_topic = spec.topic(TopicKind::Ack);
    let mut options = MqttOptions::new(spec.edge.clone(), spec.host.clone(), spec.port);
    options.set_keep_alive(spec.keepalive);
    options.set_clean_session(true);
    options.set_max_packet_size(8 * 1024 * 1024, 8 * 1024 * 1024);
    if let Some(user) = &spec.username {
        options.set_credentials(user.clone(), spec.password.clone().unwrap_or_default());
    }
    options.set_last_will(LastWill::new(
        status_topic.clone(),
        encode_json(&status(false)),
        QoS::AtLeastOnce,
        true,
    ));
    let (client, mut eventloop) = AsyncClient::new(options, 256);

    // The event loop task: polls rumqttc, forwards what matters.
    let (ev_tx, mut ev_rx) = mpsc::channel::<LinkEvent>(1024);
    let edge_for_log = spec.edge.clone();
    let poller = tokio::spawn(async move {
        let mut backoff = Backoff::network();
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff.reset();
                    if ev_tx.send(LinkEvent::Connected).await.is_err() {
                        return;
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    if ev_tx.send(LinkEvent::PubAck).await.is_err() {
                        return;
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let msg = LinkEvent::Message {
                        topic: p.topic.clone(),
                        payload: p.payload.to_vec(),
                    };
                    if ev_tx.send(msg).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if ev_tx.send(LinkEvent::Disconnected).await.is_err() {
                        return;
                    }
                    let delay = backoff.next_delay();
                    warn!(edge = %edge_for_log, err = %e, delay_ms = delay.as_millis() as u64, "MQTT connection lost; reconnecting.");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    });

    let mut connected = false;
    let mut window = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            ev = ev_rx.recv() => {
                let Some(ev) = ev else { break };
                match ev {
                    LinkEvent::Connected => {
                        connected = true;
                        window = 0;
                        metrics.mqtt_connects.inc();
                        info!(edge = %spec.edge, host = %spec.host, port = spec.port, "MQTT connected.");
                        for filter in edge_subscriptions(&spec.prefix, &spec.site, &spec.edge) {
                            if let Err(e) = client.subscribe(filter.clone(), QoS::AtLeastOnce).await {
                                warn!(edge = %spec.edge, filter = %filter, err = %e, "Subscribe failed.");
                            }
                        }
                        let online = encode_json(&status(true));
                        if let Err(e) = client.publish(status_topic.clone(), QoS::AtLeastOnce, true, online).await {
                            warn!(edge = %spec.edge, err = %e, "Publishing status failed.");
                        }
                        lock(&outbox).on_reconnect();
                    }
                    LinkEvent::Disconnected => {
                        if connected {
                            metrics.mqtt_disconnects.inc();
                        }
                        connected = false;
                        window = 0;
                    }
                    LinkEvent::PubAck => window = window.saturating_sub(1),
                    LinkEvent::Message { topic, payload } => {
                        if topic == ack_topic {
                            match decode_ack(&payload) {
                                Ok(ack) if ack.edge == spec.edge => {
                                    let ranges: Vec<(u64, u64)> =
                                        ack.acked.iter().map(|r| (r.first, r.last)).collect();
                                    let n = lock(&outbox).ack(&ranges);
                                    metrics.records_acked.add(n as u64);
                                    debug!(edge = %spec.edge, records = n, "Delivery ack.");
                                }
                                Ok(ack) => warn!(edge = %spec.edge, other = %ack.edge, "Ack for another edge ignored."),
                                Err(e) => warn!(edge = %spec.edge, topic = %topic, err = %e, "Bad delivery ack ignored."),
                            }
                        } else {
                            debug!(edge = %spec.edge, topic = %topic, "Message on an unhandled topic.");
                        }
                    }
                }
            }
            _ = wake.notified() => {}
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
        }
        if connected {
            while window < PUBLISH_WINDOW {
                let next = lock(&outbox).next_unsent(Instant::now());
                let Some(rec) = next else { break };
                let topic = format!("{}/{}/{}/{}", spec.prefix, spec.site, spec.edge, rec.topic);
                match client
                    .publish(topic, QoS::AtLeastOnce, false, rec.payload.to_vec())
                    .await
                {
                    Ok(()) => {
                        window += 1;
                        metrics.records_sent.inc();
                    }
                    Err(e) => {
                        warn!(edge = %spec.edge, err = %e, "Publish refused by the client; will resend.");
                        break;
                    }
                }
            }
        }
    }

    // Clean shutdown: say offline while the link is still up.
    if connected {
        let offline = encode_json(&status(false));
        let _ = client
            .publish(status_topic, QoS::AtLeastOnce, true, offline)
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            // Give the event loop a moment to flush the status.
            while let Some(ev) = ev_rx.recv().await {
                if matches!(ev, LinkEvent::PubAck) {
                    break;
                }
            }
        })
        .await;
        let _ = client.disconnect().await;
    }
    poller.abort();
}

enum LinkEvent {
    Connected,
    Disconnected,
    PubAck,
    Message { topic: String, payload: Vec<u8> },
}

fn lock(outbox: &Mutex<Outbox>) -> std::sync::MutexGuard<'_, Outbox> {
    outbox.lock().unwrap_or_else(|e| e.into_inner())
}
