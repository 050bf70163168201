//! The semantic checks of an edge file: ids, geometry, rule references,
//! ranges, URLs, sensor registers. [`validate_edge`] collects every problem
//! with its key (the caller's [`SourceMap`] gives lines), never only the
//! first.
//!
//! The id and topic-prefix rules are the protocol's
//! ([`parkwatch_protocol::validate_config_id`], [`parkwatch_protocol::check_prefix`]).

use std::collections::HashMap;
use std::net::SocketAddr;

use parkwatch_protocol::{IdError, PrefixError, check_prefix, validate_config_id};

use super::{
    CameraConfig, EdgeConfig, MqttConfig, RuleConfig, RuleKind, SensorConfig, SensorKind,
    ZoneConfig,
};
use crate::coco::coco_class_id;
use crate::diag::{Problem, SourceMap};
use crate::geometry::{Point, check_simple};

/// Checks an id: `[A-Za-z0-9_.-]{1,64}`, the configured-id rule
/// [`parkwatch_protocol::validate_config_id`]. Returns the reason when invalid.
pub fn check_id(id: &str) -> Result<(), String> {
    validate_config_id(id).map_err(|e| match e {
        IdError::Empty => "must not be empty".to_owned(),
        IdError::TooLong { len, max } => {
            format!("is {len} characters long, at most {max} allowed")
        }
        IdError::BadChar { ch, .. } => {
            format!("contains {ch:?}; only A-Z a-z 0-9 _ . - are allowed")
        }
    })
}

/// Runs every semantic check on a parsed edge config; `map` gives lines.
pub fn validate_edge(cfg: &EdgeConfig, map: &SourceMap) -> Vec<Problem> {
    let mut v = Validator {
        map,
        out: Vec::new(),
    };
    v.id("edge_id", &cfg.edge_id);
    v.id("site", &cfg.site);
    if let Some(p) = &cfg.point {
        v.id("point", p);
    }
    v.mqtt(&cfg.mqtt);
    if !(cfg.telemetry.interval_secs.is_finite() && cfg.telemetry.interval_secs > 0.0) {
        v.at("telemetry.interval_secs", "must be a number of seconds > 0");
    }
    if cfg.outbox.max_bytes < 1 << 20 {
        v.at("outbox.max_bytes", "must be at least 1048576 (1 MiB)");
    }
    if cfg
        .outbox
        .dir
        .as_ref()
        .is_some_and(|d| d.as_os_str().is_empty())
    {
        v.at(
            "outbox.dir",
            "must not be empty (leave it out for the default)",
        );
    }
    if cfg.detector.model.as_os_str().is_empty() {
        v.at("detector.model", "must not be empty");
    }
    if !(1..=64).contains(&cfg.detector.threads) {
        v.at("detector.threads", "must be 1..=64");
    }
    v.score("detector.min_score", cfg.detector.min_score);
    if !cfg.metrics.listen.is_empty() && cfg.metrics.listen.parse::<SocketAddr>().is_err() {
        v.at(
            "metrics.listen",
            format!(
                "{:?} is not an address:port like \"127.0.0.1:9108\" (\"\" disables)",
                cfg.metrics.listen
            ),
        );
    }

    let mut device_ids: HashMap<&str, String> = HashMap::new();
    for (ci, cam) in cfg.cameras.iter().enumerate() {
        let key = format!("cameras[{ci}]");
        v.unique(&mut device_ids, &cam.id, &key, "id");
        v.camera(&key, cam);
    }
    for (si, s) in cfg.sensors.iter().enumerate() {
        let key = format!("sensors[{si}]");
        v.unique(&mut device_ids, &s.id, &key, "id");
        v.sensor(&key, s);
    }
    v.out
}

struct Validator<'a> {
    map: &'a SourceMap,
    out: Vec<Problem>,
}

impl Validator<'_> {
    fn at(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.out.push(self.map.problem(key, message));
    }

    fn at_value(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.out.push(self.map.value_problem(key, message));
    }

    /// Notes that the element at `key` has `id`, which must differ from
    /// the other ids in `seen`; reports `duplicate <what> ...` at `key.id`
    /// naming the element that had it first.
    fn unique<'c>(
        &mut self,
        seen: &mut HashMap<&'c str, String>,
        id: &'c str,
        key: &str,
        what: &str,
    ) {
        if let Some(first) = seen.insert(id, key.to_owned()) {
            self.at(
                format!("{key}.id"),
                format!("duplicate {what} {id:?} (also {first})"),
            );
        }
    }

    fn id(&mut self, key: &str, id: &str) {
        if let Err(e) = check_id(id) {
            self.at(key, format!("id {id:?} {e}"));
        }
    }

    fn score(&mut self, key: &str, s: f64) {
        if !(0.0..=1.0).contains(&s) {
            self.at(key, format!("{s} is outside 0..=1"));
        }
    }

    fn secs(&mut self, key: &str, s: f64, positive: bool) {
        let ok = s.is_finite() && if positive { s > 0.0 } else { s >= 0.0 };
        if !ok {
            let want = if positive { "> 0" } else { ">= 0" };
            self.at(key, format!("{s} is not a number of seconds {want}"));
        }
    }

    fn not_allowed(&mut self, key: String, what: &str) {
        if self.map.contains(&key) {
            self.at(key, format!("not allowed for {what}"));
        }
    }

    fn mqtt(&mut self, m: &MqttConfig) {
        if m.host.trim().is_empty() {
            self.at("mqtt.host", "must not be empty");
        }
        if m.port == 0 {
            self.at("mqtt.port", "must be 1..=65535");
        }
        if m.password.is_some() && m.password_file.is_some() {
            self.at(
                "mqtt.password_file",
                "give either password or password_file, not both",
            );
        }
        if (m.password.is_some() || m.password_file.is_some()) && m.username.is_none() {
            self.at("mqtt.username", "a password needs a username");
        }
        if let Err(e) = check_topic_prefix(&m.topic_prefix) {
            self.at("mqtt.topic_prefix", e);
        }
        if !(5..=65535).contains(&m.keepalive_secs) {
            self.at("mqtt.keepalive_secs", "must be 5..=65535 seconds");
        }
    }

    fn camera(&mut self, key: &str, cam: &CameraConfig) {
        self.id(&format!("{key}.id"), &cam.id);
        if let Err(e) = check_rtsp_url(&cam.url) {
            // Never echo the URL: it may carry a password.
            self.at(
                format!("{key}.url"),
                format!("{e} (URL {})", cam.redacted_url()),
            );
        }
        if !(cam.detect_fps.is_finite() && cam.detect_fps > 0.0 && cam.detect_fps <= 60.0) {
            self.at(
                format!("{key}.detect_fps"),
                format!("{} is outside (0, 60]", cam.detect_fps),
            );
        }
        self.secs(
            &format!("{key}.stale_after_secs"),
            cam.stale_after_secs,
            true,
        );
        self.secs(
            &format!("{key}.static_recheck_secs"),
            cam.static_recheck_secs,
            false,
        );
        if let Some(h) = cam.heading_deg
            && !(0.0..360.0).contains(&h)
        {
            self.at(
                format!("{key}.heading_deg"),
                format!("{h} is outside 0..360"),
            );
        }

        let mut shapes: HashMap<&str, String> = HashMap::new();
        for (zi, z) in cam.zones.iter().enumerate() {
            let zk = format!("{key}.zones[{zi}]");
            self.id(&format!("{zk}.id"), &z.id);
            self.unique(&mut shapes, &z.id, &zk, "zone/line id");
            self.zone(&zk, z);
        }
        for (li, l) in cam.lines.iter().enumerate() {
            let lk = format!("{key}.lines[{li}]");
            self.id(&format!("{lk}.id"), &l.id);
            self.unique(&mut shapes, &l.id, &lk, "zone/line id");
            for (pi, p) in l.points.iter().enumerate() {
                if !in_unit_square(*p) {
                    self.at_value(
                        format!("{lk}.points[{pi}]"),
                        format!("point [{}, {}] is outside the image (0..=1)", p[0], p[1]),
                    );
                }
            }
            if l.points[0] == l.points[1] {
                self.at(format!("{lk}.points"), "A and B are the same point");
            }
        }
        let mut rule_ids: HashMap<&str, usize> = HashMap::new();
        for (ri, r) in cam.rules.iter().enumerate() {
            let rk = format!("{key}.rules[{ri}]");
            self.id(&format!("{rk}.id"), &r.id);
            if let Some(first) = rule_ids.insert(&r.id, ri) {
                self.at(
                    format!("{rk}.id"),
                    format!("duplicate rule id {:?} (also {key}.rules[{first}])", r.id),
                );
            }
            self.rule(&rk, cam, r);
        }
    }

    fn zone(&mut self, zk: &str, z: &ZoneConfig) {
        let mut inside = true;
        for (pi, p) in z.polygon.iter().enumerate() {
            if !in_unit_square(*p) {
                inside = false;
                self.at_value(
                    format!("{zk}.polygon[{pi}]"),
                    format!("point [{}, {}] is outside the image (0..=1)", p[0], p[1]),
                );
            }
        }
        if inside && let Err(e) = check_simple(&z.polygon) {
            self.at(
                format!("{zk}.polygon"),
                format!("not a simple polygon: {e}"),
            );
        }
    }

    fn rule(&mut self, rk: &str, cam: &CameraConfig, r: &RuleConfig) {
        let kind = r.kind.as_str();
        let what = format!("{kind} rules");
        let zone_ids = || {
            cam.zones
                .iter()
                .map(|z| z.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let line_ids = || {
            cam.lines
                .iter()
                .map(|l| l.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match r.kind {
            RuleKind::Intrusion | RuleKind::Dwell | RuleKind::Crowd => {
                match &r.zone {
                    None => self.at(format!("{rk}.zone"), format!("{what} need a zone")),
                    Some(z) if cam.zone(z).is_none() => self.at(
                        format!("{rk}.zone"),
                        format!(
                            "camera {:?} has no zone {z:?} (zones: {})",
                            cam.id,
                            or_none(zone_ids())
                        ),
                    ),
                    Some(_) => {}
                }
                self.not_allowed(format!("{rk}.line"), &what);
                self.not_allowed(format!("{rk}.direction"), &what);
            }
            RuleKind::LineCrossing => {
                match &r.line {
                    None => self.at(format!("{rk}.line"), "line_crossing rules need a line"),
                    Some(l) if cam.line(l).is_none() => self.at(
                        format!("{rk}.line"),
                        format!(
                            "camera {:?} has no line {l:?} (lines: {})",
                            cam.id,
                            or_none(line_ids())
                        ),
                    ),
                    Some(_) => {}
                }
                self.not_allowed(format!("{rk}.zone"), &what);
                self.not_allowed(format!("{rk}.seconds"), &what);
            }
        }
        match (r.kind, r.min_count) {
            (RuleKind::Crowd, None) => self.at(
                format!("{rk}.min_count"),
                "crowd rules need min_count (>= 2)",
            ),
            (RuleKind::Crowd, Some(n)) if n < 2 => {
                self.at(format!("{rk}.min_count"), format!("{n} is less than 2"))
            }
            (RuleKind::Crowd, Some(_)) => {}
            _ => self.not_allowed(format!("{rk}.min_count"), &what),
        }
        match (r.kind, r.seconds) {
            (RuleKind::Dwell, None) => {
                self.at(format!("{rk}.seconds"), "dwell rules need seconds (> 0)")
            }
            (RuleKind::Dwell, Some(s)) => self.secs(&format!("{rk}.seconds"), s, true),
            (_, Some(s)) => self.secs(&format!("{rk}.seconds"), s, false),
            (_, None) => {}
        }
        if r.classes.is_empty() {
            self.at(
                format!("{rk}.classes"),
                "must name at least one class, e.g. [\"person\"]",
            );
        }
        for (i, c) in r.classes.iter().enumerate() {
            if coco_class_id(c).is_none() {
                self.at_value(
                    format!("{rk}.classes[{i}]"),
                    format!("{c:?} is not a COCO class name"),
                );
            }
        }
        if let Some(s) = r.min_score {
            self.score(&format!("{rk}.min_score"), s);
        }
        self.secs(&format!("{rk}.cooldown_secs"), r.cooldown_secs, false);
        if r.catalogue_item
            .as_ref()
            .is_some_and(|c| c.trim().is_empty())
        {
            self.at(format!("{rk}.catalogue_item"), "must not be empty");
        }
    }

    fn sensor(&mut self, key: &str, s: &SensorConfig) {
        self.id(&format!("{key}.id"), &s.id);
        if let Err(e) = check_host_port(&s.address) {
            self.at(format!("{key}.address"), e);
        }
        let last = u32::from(s.register) + u32::from(s.data_type.registers()) - 1;
        if last > u32::from(u16::MAX) {
            self.at(
                format!("{key}.register"),
                format!(
                    "a {:?} value at {} runs past register 65535",
                    s.data_type, s.register
                ),
            );
        }
        if self.map.contains(&format!("{key}.word_order")) && s.data_type.registers() == 1 {
            self.at(
                format!("{key}.word_order"),
                "only applies to 32-bit data types (u32, i32, f32)",
            );
        }
        if !(s.scale.is_finite() && s.scale != 0.0) {
            self.at(format!("{key}.scale"), "must be a finite, non-zero number");
        }
        if !s.offset.is_finite() {
            self.at(format!("{key}.offset"), "must be a finite number");
        }
        if s.kind == SensorKind::Other && s.unit.is_none() {
            self.at(
                format!("{key}.unit"),
                "sensors of kind \"other\" need a unit",
            );
        }
        self.secs(&format!("{key}.poll_secs"), s.poll_secs, true);
        self.secs(
            &format!("{key}.offline_after_secs"),
            s.offline_after_secs,
            true,
        );
        if s.offline_after_secs < s.poll_secs {
            self.at(
                format!("{key}.offline_after_secs"),
                format!(
                    "{} is shorter than poll_secs ({})",
                    s.offline_after_secs, s.poll_secs
                ),
            );
        }
        if let Some(t) = &s.threshold {
            let tk = format!("{key}.threshold");
            match (t.above, t.below) {
                (None, None) => self.at(&tk, "give above, below or both"),
                (Some(a), Some(b)) if b >= a => self.at(
                    format!("{tk}.below"),
                    format!("below ({b}) must be less than above ({a})"),
                ),
                _ => {}
            }
            for (k, x) in [("above", t.above), ("below", t.below)] {
                if x.is_some_and(|x| !x.is_finite()) {
                    self.at(format!("{tk}.{k}"), "must be a finite number");
                }
            }
            if !(t.hysteresis.is_finite() && t.hysteresis >= 0.0) {
                self.at(format!("{tk}.hysteresis"), "must be >= 0");
            } else if let (Some(a), Some(b)) = (t.above, t.below)
                && b < a
                && t.hysteresis * 2.0 >= a - b
            {
                self.at(
                    format!("{tk}.hysteresis"),
                    "with both above and below, 2 x hysteresis must be less than above - below",
                );
            }
            self.secs(&format!("{tk}.seconds"), t.seconds, false);
        }
        if s.catalogue_item
            .as_ref()
            .is_some_and(|c| c.trim().is_empty())
        {
            self.at(format!("{key}.catalogue_item"), "must not be empty");
        }
    }
}

fn or_none(s: String) -> String {
    if s.is_empty() { "none".into() } else { s }
}

fn in_unit_square(p: Point) -> bool {
    (0.0..=1.0).contains(&p[0]) && (0.0..=1.0).contains(&p[1])
}

/// Checks an MQTT topic prefix against the protocol's one prefix rule
/// ([`parkwatch_protocol::check_prefix`]): 1..=256 bytes, non-empty
/// levels, no wildcards or NUL, no leading `$`.
pub fn check_topic_prefix(p: &str) -> Result<(), String> {
    match check_prefix(p) {
        Ok(()) => Ok(()),
        Err(PrefixError::Empty) => Err("must not be empty".into()),
        Err(e) => Err(format!("{p:?} {e}")),
    }
}

/// Checks `host:port` (host a name, IPv4 or `[IPv6]`; port 1..=65535).
pub fn check_host_port(s: &str) -> Result<(), String> {
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!("{s:?} is not host:port"));
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty()
        || host.contains(['/', ' ', '@'])
        || (host.contains(':') && host.parse::<std::net::Ipv6Addr>().is_err())
    {
        return Err(format!("{s:?} has no valid host"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("{s:?} has no valid port (1..=65535)")),
    }
}

/// Checks a camera URL: `rtsp://` or `rtsps://`, a host, an optional numeric port.
pub fn check_rtsp_url(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("not a URL (expected rtsp://host[:port]/path)".into());
    };
    if !matches!(scheme.to_ascii_lowercase().as_str(), "rtsp" | "rtsps") {
        return Err(format!("scheme {scheme:?} is not rtsp or rtsps"));
    }
    let auth_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..auth_len];
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if hostport.is_empty() {
        return Err("no host".into());
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, rest)) => (h, rest.strip_prefix(':')),
            None => return Err("unclosed '[' in host".into()),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err("no valid host".into());
    }
    if let Some(p) = port
        && !matches!(p.parse::<u16>(), Ok(n) if n > 0)
    {
        return Err(format!("port {p:?} is not 1..=65535"));
    }
    Ok(())
}
