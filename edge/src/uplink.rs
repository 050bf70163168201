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
//! - Two windows pace the sending: at most [`PUBLISH_WINDOW`] publishes
//!   without a broker PubAck, and at most [`UNACKED_RECORDS`] records (and
//!   [`UNACKED_BYTES`] of snapshots and telemetry) without ingest's delivery
//!   ack, so a long backlog drains at the speed ingest stores it instead of
//!   piling up in the broker.
//! - After every (re)connect all unacknowledged records are sent again, in
//!   order within each class. Ingest recognises duplicates by sequence number
//!   and alarm id, so "at least once" on the wire is "exactly once" in effect.
//! - Reconnects back off with jitter (0.5 s doubling to 30 s).
//! - The retained status follows the cameras: when a camera's state changes
//!   (streaming, stale, offline...) the status is published again, with a
//!   higher `seq`, so a late subscriber always reads the current states.
//!
//! # TLS
//! With `mqtt.ca_file` set the connection is TLS (rustls with the *ring*
//! provider, TLS 1.2 and 1.3): the broker's certificate must chain to one of
//! the CA certificates in that PEM file and name the configured host (a DNS
//! name, or an IP address in its subjectAltName). Nothing else is trusted:
//! not the system's roots. The file is read once, at start-up, by
//! [`TlsSettings::load`], which fails with the file's name when it cannot be
//! read or holds no usable certificate; a handshake that fails later (wrong
//! CA, wrong name) is logged with host, port and CA file, and retried with
//! the usual backoff.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use parkwatch_protocol::{
    EdgeStatus, EdgeTopic, TopicKind, decode_ack, edge_subscriptions, encode_json,
};
use rumqttc::{
    AsyncClient, ConnectionError, Event, LastWill, MqttOptions, Packet, QoS, TlsConfiguration,
    Transport,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use tokio::sync::{Notify, mpsc, watch};
use tracing::{debug, error, info, warn};

use crate::metrics::EdgeMetrics;
use crate::outbox::Outbox;
use parkwatch_durable::backoff::Backoff;

/// Publishes in flight (sent, no PubAck yet) before the uplink waits.
const PUBLISH_WINDOW: usize = 128;

/// Records sent and not yet confirmed by ingest's delivery ack before the
/// uplink waits: end-to-end flow control. A broker acknowledges a publish
/// as soon as it has it in memory, so a window of PubAcks alone would let a
/// long backlog outrun ingest and overflow the broker's buffers (rumqttd
/// then drops the oldest messages, which the outbox sends again only after
/// `resend_after`).
pub const UNACKED_RECORDS: u64 = 1024;
/// Bytes of snapshots and telemetry sent and not yet confirmed by ingest
/// (alarms and status are held back only by [`UNACKED_RECORDS`]).
pub const UNACKED_BYTES: u64 = 8 * 1024 * 1024;

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
    /// TLS towards the broker; `None` is plain TCP.
    pub tls: Option<TlsSettings>,
}

/// Why the TLS settings could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("mqtt.ca_file {}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("mqtt.ca_file {}: not a PEM certificate file: {reason}", path.display())]
    Pem { path: PathBuf, reason: String },
    #[error("mqtt.ca_file {}: no usable CA certificate in the file{}", path.display(), if *.skipped > 0 { format!(" ({skipped} refused)") } else { String::new() })]
    NoCertificate { path: PathBuf, skipped: usize },
    #[error("TLS set-up: {0}")]
    Rustls(#[from] rustls::Error),
}

/// TLS towards the broker: the CA file it came from (for logs) and the
/// client configuration built from it.
#[derive(Clone)]
pub struct TlsSettings {
    pub ca_file: PathBuf,
    config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

/// Makes rustls' *ring* provider the process default, once. Another
/// provider installed earlier (by a library) is kept: rustls allows one.
pub fn install_crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let ring = rustls::crypto::ring::default_provider();
            match ring.install_default() {
                Ok(()) => {}
                Err(_already) => debug!("A rustls crypto provider was already installed."),
            }
            rustls::crypto::CryptoProvider::get_default()
                .cloned()
                .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
        })
        .clone()
}

impl TlsSettings {
    /// Reads the CA certificates (PEM) in `ca_file` and builds a client
    /// configuration that trusts exactly them.
    pub fn load(ca_file: &Path) -> Result<Self, TlsError> {
        let pem = std::fs::read(ca_file).map_err(|source| TlsError::Read {
            path: ca_file.to_owned(),
            source,
        })?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Pem {
                path: ca_file.to_owned(),
                reason: e.to_string(),
            })?;
        let mut roots = rustls::RootCertStore::empty();
        let (_added, skipped) = roots.add_parsable_certificates(certs);
        if roots.is_empty() {
            return Err(TlsError::NoCertificate {
                path: ca_file.to_owned(),
                skipped,
            });
        }
        let config = rustls::ClientConfig::builder_with_provider(install_crypto_provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            ca_file: ca_file.to_owned(),
            config: Arc::new(config),
        })
    }
}

impl std::fmt::Debug for UplinkSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UplinkSpec")
            .field("edge", &self.edge)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
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
    if let Some(tls) = &spec.tls {
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            tls.config.clone(),
        )));
    }
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
    let log_spec = spec.clone();
    let poller = tokio::spawn(async move {
        let spec = log_spec;
        let ca_file = spec.tls.as_ref().map(|t| t.ca_file.display().to_string());
        let mut backoff = Backoff::network();
        // Whether the current connection got as far as a ConnAck: a failure
        // before that is a failed connect, not a lost link.
        let mut up = false;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff.reset();
                    up = true;
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
                    let delay_ms = delay.as_millis() as u64;
                    let (edge, host, port) = (&spec.edge, &spec.host, spec.port);
                    let ca = ca_file.as_deref().unwrap_or("-");
                    if matches!(e, ConnectionError::Tls(_)) {
                        error!(
                            edge = %edge, host = %host, port, ca_file = %ca, err = %e, delay_ms,
                            "TLS handshake with the MQTT broker failed (check that mqtt.ca_file \
                             holds the CA that signed the broker's certificate and that the \
                             certificate names the host); retrying."
                        );
                    } else if up {
                        warn!(edge = %edge, host = %host, port, err = %e, delay_ms, "MQTT connection lost; reconnecting.");
                    } else {
                        warn!(edge = %edge, host = %host, port, tls = ca_file.is_some(), err = %e, delay_ms, "MQTT connection failed; retrying.");
                    }
                    up = false;
                    tokio::time::sleep(delay).await;
                }
            }
        }
    });

    let mut connected = false;
    let mut window = 0usize;
    let mut status_pub = StatusPublisher {
        topic: status_topic.clone(),
        status: status.clone(),
        seq: 0,
        published: Vec::new(),
    };
    let mut tick = tokio::time::interval(Duration::from_millis(200));
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
                        if let Err(e) = status_pub.publish(&client).await {
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
            _ = tick.tick() => {
                // The batch fsync policy syncs on a timer as well as on volume.
                if let Err(e) = lock(&outbox).sync_if_due() {
                    warn!(edge = %spec.edge, err = %e, "Outbox sync failed.");
                }
                if connected && status_pub.cameras_changed() {
                    debug!(edge = %spec.edge, "Camera state changed; publishing status.");
                    if let Err(e) = status_pub.publish(&client).await {
                        warn!(edge = %spec.edge, err = %e, "Publishing status failed.");
                    }
                }
            }
            _ = shutdown.changed() => break,
        }
        if connected {
            while window < PUBLISH_WINDOW {
                let next = lock(&outbox).next_unsent_within(
                    Instant::now(),
                    UNACKED_RECORDS,
                    UNACKED_BYTES,
                );
                let Some(rec) = next else { break };
                let topic = format!("{}/{}/{}/{}", spec.prefix, spec.site, spec.edge, rec.topic);
                match client
                    .publish_bytes(topic, QoS::AtLeastOnce, false, rec.payload)
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
        let mut offline = status(false);
        offline.seq = status_pub.seq + 1;
        let offline = encode_json(&offline);
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
    if let Err(e) = lock(&outbox).sync() {
        warn!(edge = %spec.edge, err = %e, "Outbox sync at shutdown failed.");
    }
}

/// Publishes the retained online status: numbered within this run, and
/// again whenever a camera's state differs from the last one published.
struct StatusPublisher {
    topic: String,
    status: StatusFn,
    seq: u64,
    published: Vec<(String, parkwatch_protocol::CameraState)>,
}

impl StatusPublisher {
    async fn publish(&mut self, client: &AsyncClient) -> Result<(), rumqttc::ClientError> {
        self.seq += 1;
        let mut st = (self.status)(true);
        st.seq = self.seq;
        self.published = camera_states(&st);
        client
            .publish(self.topic.clone(), QoS::AtLeastOnce, true, encode_json(&st))
            .await
    }

    fn cameras_changed(&self) -> bool {
        camera_states(&(self.status)(true)) != self.published
    }
}

/// The `(camera, state)` pairs of a status message.
fn camera_states(status: &EdgeStatus) -> Vec<(String, parkwatch_protocol::CameraState)> {
    status
        .cameras
        .iter()
        .map(|c| (c.id.clone(), c.state))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_ca_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent-ca.pem");
        let err = TlsSettings::load(&path).unwrap_err();
        assert!(matches!(err, TlsError::Read { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("mqtt.ca_file") && msg.contains("absent-ca.pem"),
            "{msg}"
        );
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key-only.pem");
        std::fs::write(
            &path,
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIH8=\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let err = TlsSettings::load(&path).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err:?}");
        assert!(err.to_string().contains("key-only.pem"), "{err}");

        // A certificate block that is not DER is no usable CA either.
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = TlsSettings::load(&path).unwrap_err();
        assert!(
            matches!(err, TlsError::NoCertificate { skipped: 1, .. }),
            "{err:?}"
        );
    }
}
