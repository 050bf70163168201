//! The embedded MQTT broker (rumqttd), configured in code.
//!
//! [`EmbeddedBroker::start`] builds a `rumqttd::Config` from `[broker]`,
//! checks that the listen addresses are free (rumqttd would only log a bind
//! failure from its own thread), and runs `Broker::start` — which blocks
//! for the broker's lifetime — on a named thread, `mqtt-broker`.
//!
//! # Security model
//! - Authentication: every client sends a username and password; the
//!   username of an edge box is its edge id. Ingest checks logins itself,
//!   through rumqttd's external-auth hook ([`ConnectAuth`]): passwords are
//!   kept only as SHA-256 digests and compared in constant time. Ingest's
//!   own consumer logs in as [`INTERNAL_USER`] with a random password made
//!   at each start, which is never written anywhere. `allow_anonymous =
//!   true` turns authentication off entirely (any username, any password,
//!   or none): for local demos and tests only.
//! - Client ids are identities: a client id equal to a configured edge id
//!   may only be used by that edge's login, and ingest's own client id
//!   ([`INTERNAL_CLIENT_ID`]) only by [`INTERNAL_USER`] (which may use no
//!   other). MQTT sessions, and with them queued messages and the last
//!   will, belong to a client id, so no login can take over an edge's or
//!   ingest's session, kick it off, or have its will published. (Ingest's
//!   telemetry link uses the same id with `-telemetry` appended.) Other
//!   client ids (an operator's `mosquitto_sub`) are open to any valid
//!   login. Refused logins are logged and counted
//!   (`parkwatch_ingest_logins_refused_total{reason}`).
//! - Topic authorisation: rumqttd 0.20 has no per-topic ACL hook (its
//!   tenant prefixes need TLS client certificates and change the topic
//!   tree), and the consumer cannot see who published a message. So the
//!   rule "an edge publishes only under its own branch" is enforced where
//!   it can be: the consumer rejects (reason `branch`) a payload whose
//!   site or edge differs from its topic's and a topic naming an edge
//!   without a credential. An edge with valid credentials that forges
//!   another configured edge's topic *and* payload is not caught in
//!   embedded mode; with an external Mosquitto the ACL file in
//!   `deploy/mosquitto/` stops it at the broker.
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
use sha2::{Digest as _, Sha256};
use tracing::{info, warn};

use crate::config::BrokerConfig;
use crate::metrics::Metrics;
use crate::secret::Secret;

/// Username of ingest's own client on the embedded broker. `@` is not
/// allowed in edge ids, so no edge can take it.
pub const INTERNAL_USER: &str = "ingest@parkwatch";

/// Client id of ingest's own client on the embedded broker, reserved for
/// [`INTERNAL_USER`] (as is the same id with
/// [`crate::consumer::TELEMETRY_CLIENT_SUFFIX`], its telemetry link).
pub const INTERNAL_CLIENT_ID: &str = "parkwatch-ingest";

fn is_internal_client_id(id: &str) -> bool {
    id == INTERNAL_CLIENT_ID
        || id
            .strip_prefix(INTERNAL_CLIENT_ID)
            .is_some_and(|rest| rest == crate::consumer::TELEMETRY_CLIENT_SUFFIX)
}

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
        let mut config = rumqttd_config(cfg);
        if !cfg.allow_anonymous {
            let auth = ConnectAuth::new(passwords, &internal_password, Some(metrics.clone()));
            for servers in [config.v4.as_mut(), config.v5.as_mut()]
                .into_iter()
                .flatten()
            {
                for s in servers.values_mut() {
                    let a = auth.clone();
                    s.connections
                        .set_auth_handler(move |client_id, user, pass| {
                            std::future::ready(a.check(&client_id, &user, &pass).is_ok())
                        });
                }
            }
        }
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

/// Why a CONNECT was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefusal {
    /// No credential for this username.
    UnknownUser,
    /// Wrong password.
    BadPassword,
    /// The client id belongs to another identity (an edge id or ingest's
    /// own), or ingest's login used another client id.
    ClientId,
}

impl LoginRefusal {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginRefusal::UnknownUser => "unknown_user",
            LoginRefusal::BadPassword => "bad_password",
            LoginRefusal::ClientId => "client_id",
        }
    }
}

/// Ingest's check of every CONNECT on the embedded broker (rumqttd's
/// external-auth hook): credentials, and which client ids a login may use.
/// Holds SHA-256 digests of the passwords, never the passwords.
#[derive(Clone)]
pub struct ConnectAuth {
    digests: Arc<HashMap<String, [u8; 32]>>,
    metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for ConnectAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectAuth")
            .field("logins", &self.digests.len())
            .finish()
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

impl ConnectAuth {
    /// The logins: every edge's, and [`INTERNAL_USER`]'s.
    pub fn new(
        passwords: &std::collections::BTreeMap<String, Secret>,
        internal_password: &Secret,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        let mut digests: HashMap<String, [u8; 32]> = passwords
            .iter()
            .map(|(edge, pw)| (edge.clone(), digest(pw.expose())))
            .collect();
        digests.insert(INTERNAL_USER.to_owned(), digest(internal_password.expose()));
        ConnectAuth {
            digests: Arc::new(digests),
            metrics,
        }
    }

    /// Checks one CONNECT; logs and counts a refusal.
    pub fn check(&self, client_id: &str, user: &str, password: &str) -> Result<(), LoginRefusal> {
        let r = self.verdict(client_id, user, password);
        if let Err(why) = r {
            if let Some(m) = &self.metrics {
                m.login_refused(why.as_str());
            }
            warn!(
                client_id = %truncate_id(client_id),
                username = %truncate_id(user),
                reason = why.as_str(),
                "MQTT login refused."
            );
        }
        r
    }

    fn verdict(&self, client_id: &str, user: &str, password: &str) -> Result<(), LoginRefusal> {
        let Some(want) = self.digests.get(user) else {
            return Err(LoginRefusal::UnknownUser);
        };
        // Constant time over the digests: no early exit on the first
        // differing byte.
        let got = digest(password);
        let diff = want
            .iter()
            .zip(got.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return Err(LoginRefusal::BadPassword);
        }
        let internal_user = user == INTERNAL_USER;
        let internal_id = is_internal_client_id(client_id);
        if internal_user != internal_id {
            return Err(LoginRefusal::ClientId);
        }
        if !internal_user && client_id != user && self.digests.contains_key(client_id) {
            return Err(LoginRefusal::ClientId);
        }
        Ok(())
    }
}

fn truncate_id(s: &str) -> &str {
    let mut end = s.len().min(128);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The rumqttd configuration for `cfg`, without authentication (which
/// [`EmbeddedBroker::start`] adds as a [`ConnectAuth`] hook unless
/// `allow_anonymous`).
pub fn rumqttd_config(cfg: &BrokerConfig) -> Config {
    let connections = ConnectionSettings {
        connection_timeout_ms: 5000,
        max_payload_size: cfg.max_payload_bytes,
        max_inflight_count: 100,
        auth: None,
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
    fn config_listens_where_configured_and_holds_no_passwords() {
        let cfg = BrokerConfig::default();
        let c = rumqttd_config(&cfg);
        let v4 = c.v4.as_ref().and_then(|m| m.get("1"));
        assert!(v4.is_some_and(|s| s.connections.auth.is_none()));
        assert!(c.v5.is_none());
        assert_eq!(
            v4.map(|s| s.listen.to_string()).as_deref(),
            Some("127.0.0.1:1883")
        );
    }

    #[test]
    fn logins_are_checked_and_client_ids_belong_to_their_identity() {
        let pw = BTreeMap::from([
            ("edge-p01".to_owned(), Secret::new("pw1")),
            ("edge-p02".to_owned(), Secret::new("pw2")),
        ]);
        let metrics = Arc::new(Metrics::default());
        let auth = ConnectAuth::new(&pw, &Secret::new("int"), Some(metrics.clone()));
        use LoginRefusal::*;
        for (client, user, pass, want) in [
            ("edge-p01", "edge-p01", "pw1", Ok(())),
            ("edge-p01", "edge-p01", "pw2", Err(BadPassword)),
            ("edge-p01", "edge-p01", "", Err(BadPassword)),
            ("edge-x", "edge-x", "pw1", Err(UnknownUser)),
            // Another edge's session (and last will) cannot be taken.
            ("edge-p02", "edge-p01", "pw1", Err(ClientId)),
            // Nor ingest's, and ingest's login is tied to its client id.
            (INTERNAL_CLIENT_ID, "edge-p01", "pw1", Err(ClientId)),
            (INTERNAL_CLIENT_ID, INTERNAL_USER, "int", Ok(())),
            ("parkwatch-ingest-telemetry", INTERNAL_USER, "int", Ok(())),
            (
                "parkwatch-ingest-telemetry",
                "edge-p01",
                "pw1",
                Err(ClientId),
            ),
            ("edge-p01", INTERNAL_USER, "int", Err(ClientId)),
            ("tool", INTERNAL_USER, "int", Err(ClientId)),
            // A tool with its own client id and a valid login is fine.
            ("alarm-tap", "edge-p02", "pw2", Ok(())),
        ] {
            assert_eq!(
                auth.check(client, user, pass),
                want,
                "{client} {user} {pass}"
            );
        }
        assert_eq!(metrics.logins_refused_count("client_id"), 5);
        assert_eq!(metrics.logins_refused_count("bad_password"), 2);
        assert!(!format!("{auth:?}").contains("pw1"));
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
