//! The embedded MQTT broker (rumqttd), configured in code.
//!
//! [`EmbeddedBroker::start`] builds a `rumqttd::Config` from `[broker]`,
//! checks that the listen addresses are free (rumqttd would only log a bind
//! failure from its own thread), and runs `Broker::start` — which blocks
//! for the broker's lifetime — on a named thread, `mqtt-broker`.
//!
//! # Security model (so far)
//! - Authentication: every client sends a username and password; the
//!   username of an edge box is its edge id. rumqttd compares passwords in
//!   constant time. Ingest's own consumer logs in as [`INTERNAL_USER`] with
//!   a random password made at each start, which is never written anywhere.
//!   `allow_anonymous = true` turns authentication off entirely (any
//!   username, any password, or none): for local demos and tests only.
//! - No authorisation: rumqttd has no per-topic ACLs, so an authenticated
//!   edge could publish under another edge's topic. Ingest checks that each
//!   payload's site and edge match its topic, which catches mistakes but not
//!   a malicious edge that forges both.
//! - No TLS yet (rumqttd is built without it): keep the listener on a
//!   trusted network, or in front of a TLS-terminating proxy.
//! - Passwords never reach logs: ingest holds them as
//!   [`crate::secret::Secret`] and never formats a `rumqttd::Config` (whose
//!   `Debug` would print them). The one rumqttd log line that could carry
//!   one (the debug print of an unexpected packet, e.g. a second CONNECT on
//!   an open connection) is filtered out by [`redact_filter`].
//!
//! Limits: nothing persists across a restart of ingest (sessions, retained
//! status, queued messages); delivery rests on the edges' outboxes and
//! delivery acks. Each subscription filter keeps at most
//! [`SEGMENT_BYTES`] × [`SEGMENT_COUNT`] bytes of messages in memory; older
//! ones are evicted.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;

use rand::Rng as _;
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use tracing::info;

use crate::config::BrokerConfig;
use crate::metrics::Metrics;
use crate::secret::Secret;

/// Username of ingest's own client on the embedded broker. `@` is not
/// allowed in edge ids, so no edge can take it.
pub const INTERNAL_USER: &str = "ingest@parkwatch";

/// Bytes per commitlog segment of one subscription filter.
pub const SEGMENT_BYTES: usize = 8 * 1024 * 1024;
/// Segments kept per subscription filter.
pub const SEGMENT_COUNT: usize = 8;

/// Why the embedded broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// A listen address is taken or not ours.
    #[error("cannot listen on {addr} (broker.{key}): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// `listen` or `listen_v5`.
        key: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The broker thread could not be spawned.
    #[error("cannot spawn the broker thread: {0}")]
    Spawn(std::io::Error),
}

/// The running embedded broker.
#[derive(Debug)]
pub struct EmbeddedBroker {
    thread: JoinHandle<()>,
    /// Address ingest's own client connects to.
    pub connect_addr: SocketAddr,
    /// Password of [`INTERNAL_USER`] (random per start).
    pub internal_password: Secret,
}

impl EmbeddedBroker {
    /// Starts the broker for `cfg` with the edges' `passwords`.
    pub fn start(
        cfg: &BrokerConfig,
        passwords: &std::collections::BTreeMap<String, Secret>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, BrokerError> {
        let listen = cfg.listen_addr();
        check_free(listen, "listen")?;
        if let Some(v5) = cfg.listen_v5 {
            check_free(v5, "listen_v5")?;
        }
        let internal_password = Secret::new(random_password());
        let config = rumqttd_config(cfg, passwords, &internal_password);
        let thread = std::thread::Builder::new()
            .name("mqtt-broker".to_owned())
            .spawn(move || {
                let mut broker = Broker::new(config);
                metrics.set_broker_up(true);
                if let Err(e) = broker.start() {
                    tracing::error!(err = %e, "Embedded MQTT broker stopped.");
                }
                metrics.set_broker_up(false);
            })
            .map_err(BrokerError::Spawn)?;
        info!(
            %listen,
            listen_v5 = ?cfg.listen_v5,
            edges = passwords.len(),
            anonymous = cfg.allow_anonymous,
            "Embedded MQTT broker starting."
        );
        Ok(EmbeddedBroker {
            thread,
            connect_addr: connect_addr(listen),
            internal_password,
        })
    }

    /// Whether the broker thread has ended (it should run until exit).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }
}

fn check_free(addr: SocketAddr, key: &'static str) -> Result<(), BrokerError> {
    TcpListener::bind(addr)
        .map(drop)
        .map_err(|source| BrokerError::Bind { addr, key, source })
}

/// The address a local client uses to reach a listener on `listen`
/// (a wildcard address is reached on loopback).
pub fn connect_addr(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => {
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        }
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => {
            std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
        }
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

fn random_password() -> String {
    let mut rng = rand::rng();
    (0..32)
        .map(|_| {
            let n: u8 = rng.random_range(0..62);
            match n {
                0..=9 => char::from(b'0' + n),
                10..=35 => char::from(b'a' + n - 10),
                _ => char::from(b'A' + n - 36),
            }
        })
        .collect()
}

/// The rumqttd configuration for `cfg`. Do not format the result: its
/// `Debug` prints passwords.
pub fn rumqttd_config(
    cfg: &BrokerConfig,
    passwords: &std::collections::BTreeMap<String, Secret>,
    internal_password: &Secret,
) -> Config {
    let auth = if cfg.allow_anonymous {
        None
    } else {
        let mut map: HashMap<String, String> = passwords
            .iter()
            .map(|(edge, pw)| (edge.clone(), pw.expose().to_owned()))
            .collect();
        map.insert(
            INTERNAL_USER.to_owned(),
            internal_password.expose().to_owned(),
        );
        Some(map)
    };
    let connections = ConnectionSettings {
        connection_timeout_ms: 5000,
        max_payload_size: cfg.max_payload_bytes,
        max_inflight_count: 100,
        auth,
        external_auth: None,
        // Accept publishes on topics nobody subscribes to yet (an edge may
        // connect before ingest's client, acks go to edges not yet back).
        dynamic_filters: true,
    };
    let server = |name: &str, listen: SocketAddr| ServerSettings {
        name: name.to_owned(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: connections.clone(),
    };
    let v4 = HashMap::from([("1".to_owned(), server("mqtt-v4", cfg.listen_addr()))]);
    let v5 = cfg
        .listen_v5
        .map(|addr| HashMap::from([("1".to_owned(), server("mqtt-v5", addr))]));
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: cfg.max_connections(),
            max_outgoing_packet_count: 200,
            max_segment_size: SEGMENT_BYTES,
            max_segment_count: SEGMENT_COUNT,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(v4),
        v5,
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: None,
    }
}

/// A per-layer filter that drops rumqttd events carrying a `packet` field:
/// rumqttd logs unexpected packets with their `Debug`, which for a CONNECT
/// includes the password. Everything else from rumqttd passes.
pub fn redact_filter()
-> tracing_subscriber::filter::FilterFn<impl Fn(&tracing::Metadata<'_>) -> bool> {
    tracing_subscriber::filter::filter_fn(|meta| {
        !(meta.target().starts_with("rumqttd") && meta.fields().field("packet").is_some())
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn auth_map_has_edges_and_internal_user_unless_anonymous() {
        let mut cfg = BrokerConfig::default();
        let pw = BTreeMap::from([("edge-p01".to_owned(), Secret::new("pw1"))]);
        let internal = Secret::new("int");
        let c = rumqttd_config(&cfg, &pw, &internal);
        let v4 = c.v4.as_ref().and_then(|m| m.get("1"));
        let auth = v4
            .and_then(|s| s.connections.auth.clone())
            .unwrap_or_default();
        assert_eq!(auth.get("edge-p01").map(String::as_str), Some("pw1"));
        assert_eq!(auth.get(INTERNAL_USER).map(String::as_str), Some("int"));
        assert_eq!(auth.len(), 2);
        assert!(c.v5.is_none());
        assert_eq!(
            v4.map(|s| s.listen.to_string()).as_deref(),
            Some("127.0.0.1:1883")
        );

        cfg.allow_anonymous = true;
        let c = rumqttd_config(&cfg, &pw, &internal);
        assert!(
            c.v4.as_ref()
                .and_then(|m| m.get("1"))
                .is_some_and(|s| s.connections.auth.is_none())
        );
    }

    #[test]
    fn internal_user_cannot_be_an_edge_id() {
        assert!(
            parkwatch_protocol::validate_id(INTERNAL_USER, parkwatch_protocol::MAX_ID_LEN).is_err()
        );
    }

    #[test]
    fn wildcard_listen_is_reached_on_loopback() {
        let a: SocketAddr = "0.0.0.0:1883".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(connect_addr(a).to_string(), "127.0.0.1:1883");
        let b: SocketAddr = "[::]:1884".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(connect_addr(b).to_string(), "[::1]:1884");
        let c: SocketAddr = "10.1.2.3:1883".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(connect_addr(c), c);
    }

    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut v) = self.0.lock() {
                v.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn redact_filter_drops_rumqttd_packet_dumps_only() {
        use tracing_subscriber::Layer as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        let out = Captured::default();
        let writer = out.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_filter(redact_filter());
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let packet = "Connect { login: Some(Login { username: \"e\", password: \"LEAKME\" }) }";
            tracing::warn!(target: "rumqttd::router::routing", packet = ?packet, "Unexpected packet received");
            tracing::warn!(target: "rumqttd::server::broker", error = "InvalidAuth", "Error while handling MQTT connect packet");
            tracing::warn!(target: "parkwatch_ingest::x", packet = 1, "Ours stays");
        });
        let text = out
            .0
            .lock()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default();
        assert!(!text.contains("LEAKME"), "{text}");
        assert!(text.contains("InvalidAuth"), "{text}");
        assert!(text.contains("Ours stays"), "{text}");
    }

    #[test]
    fn random_passwords_differ_and_are_long() {
        let (a, b) = (random_password(), random_password());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
