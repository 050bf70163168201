//! The semantic checks of a parsed configuration: every rule, every
//! violation collected (no I/O; secret files are read in [`super::secrets`]).

use std::collections::BTreeSet;

use super::{BrokerMode, IngestConfig};

/// One semantic problem: the dotted key it is about and what is wrong.
///
/// Keys use the TOML path, with array indexes in brackets:
/// `broker.edges[1].password`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Dotted TOML key path.
    pub key: String,
    /// What is wrong, for a person.
    pub message: String,
}

impl Issue {
    pub(super) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Issue {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl IngestConfig {
    /// Checks every semantic rule and returns all violations (empty when valid).
    /// Does no I/O; secret files are checked by [`IngestConfig::resolve_secrets`].
    pub fn validate(&self) -> Vec<Issue> {
        let mut out = Vec::new();
        if let Some(site) = &self.site {
            check_id(&mut out, "site", site);
        }
        check_prefix(&mut out, &self.topic_prefix);
        if self.data_dir.as_os_str().is_empty() {
            out.push(Issue::new("data_dir", "must not be empty"));
        }
        check_range(
            &mut out,
            "shutdown_grace_ms",
            self.shutdown_grace_ms,
            100,
            600_000,
        );
        self.validate_broker(&mut out);
        self.validate_timeseries(&mut out);
        self.validate_incidents(&mut out);
        for (k, m) in self.deadletters.problems() {
            out.push(Issue::new(format!("deadletters.{k}"), m));
        }
        if self.broker.mode == BrokerMode::Embedded {
            let b = &self.broker;
            let http = self.http.listen;
            if http == b.listen_addr() || Some(http) == b.listen_v5 {
                out.push(Issue::new(
                    "http.listen",
                    format!("{http} is also an MQTT listener"),
                ));
            }
        }
        out
    }

    fn validate_broker(&self, out: &mut Vec<Issue>) {
        let b = &self.broker;
        check_range(
            out,
            "broker.max_payload_bytes",
            b.max_payload_bytes as u64,
            1024,
            268_435_455,
        );
        check_range(out, "broker.keep_alive_secs", b.keep_alive_secs, 5, 3600);
        match b.mode {
            BrokerMode::Embedded => {
                let not_here = "is only used with broker.mode = \"external\"";
                for (key, set) in [
                    ("broker.host", b.host.is_some()),
                    ("broker.port", b.port.is_some()),
                    ("broker.username", b.username.is_some()),
                    ("broker.password", b.password.is_some()),
                    ("broker.password_file", b.password_file.is_some()),
                    ("broker.client_id", b.client_id.is_some()),
                    ("broker.shared_group", b.shared_group.is_some()),
                ] {
                    if set {
                        out.push(Issue::new(key, not_here));
                    }
                }
                if let Some(n) = b.max_connections {
                    check_range(out, "broker.max_connections", n as u64, 1, 100_000);
                }
                if b.listen_v5.is_some() && b.listen_v5 == Some(b.listen_addr()) {
                    out.push(Issue::new(
                        "broker.listen_v5",
                        "must differ from broker.listen",
                    ));
                }
                if b.edges.is_empty() && !b.allow_anonymous {
                    out.push(Issue::new(
                        "broker.edges",
                        "no edge credentials: add [[broker.edges]] entries, or set \
                         broker.allow_anonymous = true for a local demo",
                    ));
                }
                let mut seen = BTreeSet::new();
                for (i, e) in b.edges.iter().enumerate() {
                    let key = format!("broker.edges[{i}]");
                    check_id(out, &format!("{key}.edge"), &e.edge);
                    if !seen.insert(e.edge.as_str()) {
                        out.push(Issue::new(
                            format!("{key}.edge"),
                            format!("edge {:?} is listed twice", e.edge),
                        ));
                    }
                    match (&e.password, &e.password_file) {
                        (Some(_), Some(_)) => out.push(Issue::new(
                            format!("{key}.password"),
                            "set either password or password_file, not both",
                        )),
                        (None, None) => out.push(Issue::new(
                            format!("{key}.password"),
                            "missing: set password or password_file",
                        )),
                        (Some(p), None) if p.is_empty() => {
                            out.push(Issue::new(format!("{key}.password"), "must not be empty"))
                        }
                        _ => {}
                    }
                }
            }
            BrokerMode::External => {
                let not_here = "is only used with broker.mode = \"embedded\"";
                for (key, set) in [
                    ("broker.listen", b.listen.is_some()),
                    ("broker.listen_v5", b.listen_v5.is_some()),
                    ("broker.edges", !b.edges.is_empty()),
                    ("broker.allow_anonymous", b.allow_anonymous),
                    ("broker.max_connections", b.max_connections.is_some()),
                ] {
                    if set {
                        out.push(Issue::new(key, not_here));
                    }
                }
                match b.host.as_deref() {
                    None => out.push(Issue::new(
                        "broker.host",
                        "missing: external mode needs the broker's host",
                    )),
                    Some(h) if h.trim().is_empty() || h.contains(char::is_whitespace) => {
                        out.push(Issue::new("broker.host", format!("invalid host {h:?}")))
                    }
                    Some(_) => {}
                }
                if b.port == Some(0) {
                    out.push(Issue::new("broker.port", "must be 1..=65535"));
                }
                if b.password.is_some() && b.password_file.is_some() {
                    out.push(Issue::new(
                        "broker.password",
                        "set either password or password_file, not both",
                    ));
                }
                if (b.password.is_some() || b.password_file.is_some()) && b.username.is_none() {
                    out.push(Issue::new(
                        "broker.username",
                        "missing: a password needs a username",
                    ));
                }
                if let Some(id) = &b.client_id
                    && (id.is_empty() || id.len() > 64 || id.contains(['+', '#', '/', '$']))
                {
                    out.push(Issue::new(
                        "broker.client_id",
                        "must be 1..=64 characters without + # / $",
                    ));
                }
                if let Some(g) = &b.shared_group
                    && g.contains(['+', '#', '/'])
                {
                    out.push(Issue::new("broker.shared_group", "must not contain + # /"));
                }
            }
        }
    }

    fn validate_incidents(&self, out: &mut Vec<Issue>) {
        let table = |t: &str, v: Vec<(String, String)>| {
            v.into_iter()
                .map(|(k, m)| Issue::new(format!("{t}.{k}"), m))
                .collect::<Vec<_>>()
        };
        out.extend(table("store", self.store.problems()));
        out.extend(table("incidents", self.incidents.problems()));
        // Departments and workers are checked against the site in `load_str`.
        out.extend(table("api", self.api.problems(None)));
        if self.site_dir.is_none() && !self.api.tokens.is_empty() {
            out.push(Issue::new(
                "site_dir",
                "missing: [[api.tokens]] are set, and the API needs the site directory",
            ));
        }
    }

    fn validate_timeseries(&self, out: &mut Vec<Issue>) {
        let t = &self.timeseries;
        match url::Url::parse(&t.url) {
            Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.has_host() => {
                if !u.username().is_empty() || u.password().is_some() {
                    out.push(Issue::new(
                        "timeseries.url",
                        "must not carry credentials; use token or token_file",
                    ));
                }
                if u.query().is_some() || u.fragment().is_some() {
                    out.push(Issue::new(
                        "timeseries.url",
                        "must be a base URL without query or fragment",
                    ));
                }
            }
            Ok(_) => out.push(Issue::new(
                "timeseries.url",
                "must be an http:// or https:// URL with a host",
            )),
            Err(e) => out.push(Issue::new("timeseries.url", format!("invalid URL: {e}"))),
        }
        if t.org.trim().is_empty() {
            out.push(Issue::new("timeseries.org", "must not be empty"));
        }
        if t.bucket.trim().is_empty() {
            out.push(Issue::new("timeseries.bucket", "must not be empty"));
        }
        if t.token.is_some() && t.token_file.is_some() {
            out.push(Issue::new(
                "timeseries.token",
                "set either token or token_file, not both",
            ));
        }
        check_range(
            out,
            "timeseries.batch_points",
            t.batch_points as u64,
            1,
            1_000_000,
        );
        check_range(
            out,
            "timeseries.flush_interval_ms",
            t.flush_interval_ms,
            10,
            600_000,
        );
        check_range(
            out,
            "timeseries.queue_batches",
            t.queue_batches as u64,
            1,
            1_000_000,
        );
        check_range(
            out,
            "timeseries.request_timeout_ms",
            t.request_timeout_ms,
            100,
            600_000,
        );
        check_range(out, "timeseries.retry_min_ms", t.retry_min_ms, 1, 60_000);
        check_range(
            out,
            "timeseries.retry_max_ms",
            t.retry_max_ms,
            t.retry_min_ms.max(1),
            600_000,
        );
        if t.spool_max_bytes != 0 {
            check_range(
                out,
                "timeseries.spool_max_bytes",
                t.spool_max_bytes,
                1 << 20,
                1 << 40,
            );
        }
        check_range(
            out,
            "timeseries.spool_after_ms",
            t.spool_after_ms,
            0,
            600_000,
        );
    }
}

fn check_id(out: &mut Vec<Issue>, key: &str, value: &str) {
    if let Err(e) = parkwatch_protocol::validate_id(value, parkwatch_protocol::MAX_ID_LEN) {
        out.push(Issue::new(key, format!("invalid id {value:?}: {e}")));
    }
}

fn check_prefix(out: &mut Vec<Issue>, prefix: &str) {
    if let Err(e) = parkwatch_protocol::validate_prefix(prefix) {
        out.push(Issue::new("topic_prefix", e.to_string()));
    }
}

fn check_range(out: &mut Vec<Issue>, key: &str, value: u64, min: u64, max: u64) {
    if value < min || value > max {
        out.push(Issue::new(
            key,
            format!("{value} is out of range {min}..={max}"),
        ));
    }
}
