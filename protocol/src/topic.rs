//! The MQTT topic tree.
//!
//! ```text
//! {prefix}/{site}/{edge}/status                 edge -> ingest, retained
//! {prefix}/{site}/{edge}/alarms                 edge -> ingest
//! {prefix}/{site}/{edge}/telemetry              edge -> ingest
//! {prefix}/{site}/{edge}/snapshots/{alarm_id}   edge -> ingest
//! {prefix}/{site}/{edge}/config                 ingest -> edge, retained
//! {prefix}/{site}/{edge}/config/ack             edge -> ingest
//! {prefix}/{site}/{edge}/ack                    ingest -> edge (delivery acks)
//! ```
//!
//! Guarantees: [`EdgeTopic`] values built by [`EdgeTopic::new`] or
//! [`EdgeTopic::parse`] hold well-formed ids (see [`crate::validate_id`]),
//! so [`EdgeTopic::render`] always yields a valid topic name with exactly
//! the segments above. [`EdgeTopic::parse`] is strict: wrong prefix,
//! wildcards, bad ids, unknown kinds and extra segments are all errors, and
//! it never panics. The prefix may hold several levels (`acme/parkwatch`)
//! but no wildcards, no empty levels and no leading `$`.

use std::fmt;

use crate::limits::{MAX_ALARM_ID_LEN, MAX_ID_LEN};
use crate::vocab::{IdError, check_prefix, validate_id};

/// What a topic carries; the part of the topic after `{site}/{edge}/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TopicKind {
    /// `status`: [`crate::EdgeStatus`], JSON, retained.
    Status,
    /// `alarms`: [`crate::AlarmEvent`], JSON.
    Alarms,
    /// `telemetry`: [`crate::TelemetryBatch`], postcard.
    Telemetry,
    /// `snapshots/{alarm_id}`: the JPEG evidence of an alarm.
    Snapshot {
        /// The alarm the snapshot belongs to.
        alarm_id: String,
    },
    /// `config`: [`crate::ConfigPush`], JSON, retained.
    Config,
    /// `config/ack`: [`crate::ConfigAck`], JSON.
    ConfigAck,
    /// `ack`: [`crate::DeliveryAck`], JSON.
    Ack,
}

/// Who publishes on a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The edge publishes, ingest subscribes.
    EdgeToIngest,
    /// Ingest publishes, the edge subscribes.
    IngestToEdge,
}

impl TopicKind {
    /// The kind's name as in documentation and metric labels: "status",
    /// "alarms", "telemetry", "snapshots", "config", "config_ack", "ack".
    pub fn name(&self) -> &'static str {
        match self {
            TopicKind::Status => "status",
            TopicKind::Alarms => "alarms",
            TopicKind::Telemetry => "telemetry",
            TopicKind::Snapshot { .. } => "snapshots",
            TopicKind::Config => "config",
            TopicKind::ConfigAck => "config_ack",
            TopicKind::Ack => "ack",
        }
    }

    /// Who publishes on this topic.
    pub fn direction(&self) -> Direction {
        match self {
            TopicKind::Config | TopicKind::Ack => Direction::IngestToEdge,
            _ => Direction::EdgeToIngest,
        }
    }

    /// The MQTT QoS to publish and subscribe with: 1 for every topic.
    /// Delivery guarantees come from [`crate::DeliveryAck`], not the broker.
    pub fn qos(&self) -> u8 {
        1
    }

    /// Whether messages on this topic are published with the retain flag:
    /// `status` (so a late subscriber sees the current state) and `config`
    /// (so an edge that connects later gets its configuration).
    pub fn retained(&self) -> bool {
        matches!(self, TopicKind::Status | TopicKind::Config)
    }
}

/// A topic about one edge: site, edge and what it carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EdgeTopic {
    /// Site id.
    pub site: String,
    /// Edge id.
    pub edge: String,
    /// What the topic carries.
    pub kind: TopicKind,
}

/// Why a topic or prefix is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The configured prefix itself is unusable.
    #[error("topic prefix {prefix:?} is invalid: {reason}")]
    InvalidPrefix {
        /// The prefix (shortened if very long).
        prefix: String,
        /// Why.
        reason: &'static str,
    },
    /// The topic does not start with `{prefix}/`.
    #[error("topic {topic:?} does not start with prefix \"{prefix}/\"")]
    WrongPrefix {
        /// The topic (shortened if very long).
        topic: String,
        /// The expected prefix.
        prefix: String,
    },
    /// The topic holds `+` or `#`, which are only for subscription filters.
    #[error("topic {topic:?} contains a wildcard ('+' or '#')")]
    Wildcard {
        /// The topic (shortened if very long).
        topic: String,
    },
    /// The topic ends before a required segment.
    #[error("topic {topic:?} has no {segment} segment")]
    MissingSegment {
        /// The topic (shortened if very long).
        topic: String,
        /// Which segment: "site", "edge", "kind" or "alarm_id".
        segment: &'static str,
    },
    /// A site, edge or alarm id segment is malformed.
    #[error("{segment} {value:?} {reason}")]
    InvalidId {
        /// Which segment: "site", "edge" or "alarm_id".
        segment: &'static str,
        /// The segment's text (shortened if very long).
        value: String,
        /// What is wrong with it.
        reason: IdError,
    },
    /// The part after `{site}/{edge}/` is not a known kind.
    #[error(
        "topic {topic:?} has unknown kind {kind:?} (expected status, alarms, telemetry, snapshots/{{alarm_id}}, config, config/ack or ack)"
    )]
    UnknownKind {
        /// The topic (shortened if very long).
        topic: String,
        /// The unknown segment.
        kind: String,
    },
    /// Segments follow a complete topic.
    #[error("topic {topic:?} has extra segments after {kind}")]
    ExtraSegments {
        /// The topic (shortened if very long).
        topic: String,
        /// The kind that was complete: "status", "snapshots/{alarm_id}", ...
        kind: &'static str,
    },
}

/// Keeps error messages bounded: topics can be 64 KiB long.
fn shorten(s: &str) -> String {
    const KEEP: usize = 200;
    if s.len() <= KEEP {
        return s.to_owned();
    }
    let mut end = KEEP;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// Checks a topic prefix against the one prefix rule,
/// [`crate::vocab::check_prefix`]: 1..=[`crate::MAX_PREFIX_LEN`] bytes,
/// levels separated by `/`, no empty level, no `+`, `#` or NUL, not
/// starting with `$`.
pub fn validate_prefix(prefix: &str) -> Result<(), TopicError> {
    check_prefix(prefix).map_err(|e| TopicError::InvalidPrefix {
        prefix: shorten(prefix),
        reason: e.reason(),
    })
}

fn check_id(segment: &'static str, value: &str, max: usize) -> Result<(), TopicError> {
    validate_id(value, max).map_err(|reason| TopicError::InvalidId {
        segment,
        value: shorten(value),
        reason,
    })
}

impl EdgeTopic {
    /// Builds a topic, checking the site, edge and (for snapshots) alarm ids.
    pub fn new(site: &str, edge: &str, kind: TopicKind) -> Result<Self, TopicError> {
        check_id("site", site, MAX_ID_LEN)?;
        check_id("edge", edge, MAX_ID_LEN)?;
        if let TopicKind::Snapshot { alarm_id } = &kind {
            check_id("alarm_id", alarm_id, MAX_ALARM_ID_LEN)?;
        }
        Ok(EdgeTopic {
            site: site.to_owned(),
            edge: edge.to_owned(),
            kind,
        })
    }

    /// The topic name under `prefix`, e.g. `parkwatch/p1/e1/alarms`.
    ///
    /// `prefix` is used as given; check configured prefixes once with
    /// [`validate_prefix`].
    pub fn render(&self, prefix: &str) -> String {
        let (site, edge) = (&self.site, &self.edge);
        match &self.kind {
            TopicKind::Status => format!("{prefix}/{site}/{edge}/status"),
            TopicKind::Alarms => format!("{prefix}/{site}/{edge}/alarms"),
            TopicKind::Telemetry => format!("{prefix}/{site}/{edge}/telemetry"),
            TopicKind::Snapshot { alarm_id } => {
                format!("{prefix}/{site}/{edge}/snapshots/{alarm_id}")
            }
            TopicKind::Config => format!("{prefix}/{site}/{edge}/config"),
            TopicKind::ConfigAck => format!("{prefix}/{site}/{edge}/config/ack"),
            TopicKind::Ack => format!("{prefix}/{site}/{edge}/ack"),
        }
    }

    /// Parses a topic name received under `prefix`.
    pub fn parse(prefix: &str, topic: &str) -> Result<Self, TopicError> {
        validate_prefix(prefix)?;
        if topic.contains(['+', '#']) {
            return Err(TopicError::Wildcard {
                topic: shorten(topic),
            });
        }
        let rest = topic
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| TopicError::WrongPrefix {
                topic: shorten(topic),
                prefix: shorten(prefix),
            })?;
        let mut segs = rest.split('/');
        let missing = |segment| TopicError::MissingSegment {
            topic: shorten(topic),
            segment,
        };
        // `split` always yields at least one item; an empty one means the
        // segment is missing rather than malformed.
        let site = segs
            .next()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing("site"))?;
        check_id("site", site, MAX_ID_LEN)?;
        let edge = segs
            .next()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing("edge"))?;
        check_id("edge", edge, MAX_ID_LEN)?;
        let kind_seg = segs
            .next()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing("kind"))?;
        let (kind, kind_name) = match kind_seg {
            "status" => (TopicKind::Status, "status"),
            "alarms" => (TopicKind::Alarms, "alarms"),
            "telemetry" => (TopicKind::Telemetry, "telemetry"),
            "ack" => (TopicKind::Ack, "ack"),
            "snapshots" => {
                let alarm_id = segs
                    .next()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| missing("alarm_id"))?;
                check_id("alarm_id", alarm_id, MAX_ALARM_ID_LEN)?;
                (
                    TopicKind::Snapshot {
                        alarm_id: alarm_id.to_owned(),
                    },
                    "snapshots/{alarm_id}",
                )
            }
            "config" => match segs.next() {
                None => (TopicKind::Config, "config"),
                Some("ack") => (TopicKind::ConfigAck, "config/ack"),
                Some(sub) => {
                    return Err(TopicError::UnknownKind {
                        topic: shorten(topic),
                        kind: shorten(&format!("config/{sub}")),
                    });
                }
            },
            other => {
                return Err(TopicError::UnknownKind {
                    topic: shorten(topic),
                    kind: shorten(other),
                });
            }
        };
        if segs.next().is_some() {
            return Err(TopicError::ExtraSegments {
                topic: shorten(topic),
                kind: kind_name,
            });
        }
        Ok(EdgeTopic {
            site: site.to_owned(),
            edge: edge.to_owned(),
            kind,
        })
    }
}

impl fmt::Display for EdgeTopic {
    /// Shows the topic relative to its prefix: `{site}/{edge}/{kind...}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (site, edge) = (&self.site, &self.edge);
        match &self.kind {
            TopicKind::Snapshot { alarm_id } => write!(f, "{site}/{edge}/snapshots/{alarm_id}"),
            TopicKind::ConfigAck => write!(f, "{site}/{edge}/config/ack"),
            other => write!(f, "{site}/{edge}/{}", other.name()),
        }
    }
}

/// The subscription filters ingest uses: every edge-to-ingest topic of
/// every site and edge (`+` for site and edge).
pub fn ingest_subscriptions(prefix: &str) -> Vec<String> {
    ["status", "alarms", "telemetry", "snapshots/+", "config/ack"]
        .iter()
        .map(|k| format!("{prefix}/+/+/{k}"))
        .collect()
}

/// The subscription filters an edge uses: its delivery acks and its
/// configuration.
pub fn edge_subscriptions(prefix: &str, site: &str, edge: &str) -> Vec<String> {
    vec![
        format!("{prefix}/{site}/{edge}/ack"),
        format!("{prefix}/{site}/{edge}/config"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::examples;

    #[test]
    fn render_gives_the_documented_names() {
        let t = |kind| {
            EdgeTopic::new("p1", "e1", kind)
                .unwrap()
                .render("parkwatch")
        };
        assert_eq!(t(TopicKind::Status), "parkwatch/p1/e1/status");
        assert_eq!(t(TopicKind::Alarms), "parkwatch/p1/e1/alarms");
        assert_eq!(t(TopicKind::Telemetry), "parkwatch/p1/e1/telemetry");
        assert_eq!(
            t(TopicKind::Snapshot {
                alarm_id: "a-1".to_owned()
            }),
            "parkwatch/p1/e1/snapshots/a-1"
        );
        assert_eq!(t(TopicKind::Config), "parkwatch/p1/e1/config");
        assert_eq!(t(TopicKind::ConfigAck), "parkwatch/p1/e1/config/ack");
        assert_eq!(t(TopicKind::Ack), "parkwatch/p1/e1/ack");
    }

    #[test]
    fn parse_inverts_render_for_every_kind_and_prefix() {
        for prefix in ["parkwatch", "acme/parkwatch", "a/b/c"] {
            for kind in examples::topic_kinds() {
                let topic = EdgeTopic::new("hx-park", "edge_07.a:b", kind).unwrap();
                let name = topic.render(prefix);
                assert_eq!(EdgeTopic::parse(prefix, &name), Ok(topic), "{name}");
            }
        }
    }

    #[test]
    fn parse_rejects_wrong_prefix() {
        for topic in [
            "other/p1/e1/status",
            "parkwatchx/p1/e1/status",
            "parkwatch",
            "parkwatch/",
            "/parkwatch/p1/e1/status",
            "acme/p1/e1/status",
        ] {
            let err = EdgeTopic::parse("parkwatch", topic).unwrap_err();
            assert!(
                matches!(
                    err,
                    TopicError::WrongPrefix { .. } | TopicError::MissingSegment { .. }
                ),
                "{topic}: {err}"
            );
        }
        assert!(matches!(
            EdgeTopic::parse("acme/parkwatch", "parkwatch/p1/e1/status"),
            Err(TopicError::WrongPrefix { .. })
        ));
    }

    #[test]
    fn parse_rejects_wildcards() {
        for topic in [
            "parkwatch/+/e1/status",
            "parkwatch/p1/#",
            "parkwatch/p1/e1/snapshots/+",
        ] {
            assert!(
                matches!(
                    EdgeTopic::parse("parkwatch", topic),
                    Err(TopicError::Wildcard { .. })
                ),
                "{topic}"
            );
        }
    }

    #[test]
    fn parse_rejects_bad_ids_and_names_the_segment() {
        let long64 = "a".repeat(64);
        let long65 = "a".repeat(65);
        assert!(EdgeTopic::parse("pw", &format!("pw/{long64}/e/status")).is_ok());
        let cases = [
            (format!("pw/{long65}/e/status"), "site"),
            (format!("pw/p/{long65}/status"), "edge"),
            ("pw/p q/e/status".to_owned(), "site"),
            ("pw/p/é/status".to_owned(), "edge"),
            (format!("pw/p/e/snapshots/{}", "x".repeat(129)), "alarm_id"),
            ("pw/p/e/snapshots/a$b".to_owned(), "alarm_id"),
        ];
        for (topic, want) in cases {
            match EdgeTopic::parse("pw", &topic) {
                Err(TopicError::InvalidId { segment, .. }) => assert_eq!(segment, want, "{topic}"),
                other => panic!("{topic}: {other:?}"),
            }
        }
        assert!(EdgeTopic::parse("pw", &format!("pw/p/e/snapshots/{}", "x".repeat(128))).is_ok());
    }

    #[test]
    fn parse_rejects_missing_and_empty_segments() {
        let cases = [
            ("pw/p1", "edge"),
            ("pw//e1/status", "site"),
            ("pw/p1//status", "edge"),
            ("pw/p1/e1", "kind"),
            ("pw/p1/e1/", "kind"),
            ("pw/p1/e1/snapshots", "alarm_id"),
            ("pw/p1/e1/snapshots/", "alarm_id"),
        ];
        for (topic, want) in cases {
            match EdgeTopic::parse("pw", topic) {
                Err(TopicError::MissingSegment { segment, .. }) => {
                    assert_eq!(segment, want, "{topic}")
                }
                other => panic!("{topic}: {other:?}"),
            }
        }
    }

    #[test]
    fn parse_rejects_unknown_kinds() {
        for (topic, kind) in [
            ("pw/p1/e1/alarm", "alarm"),
            ("pw/p1/e1/Status", "Status"),
            ("pw/p1/e1/config/nack", "config/nack"),
        ] {
            match EdgeTopic::parse("pw", topic) {
                Err(TopicError::UnknownKind { kind: k, .. }) => assert_eq!(k, kind),
                other => panic!("{topic}: {other:?}"),
            }
        }
    }

    #[test]
    fn parse_rejects_extra_segments() {
        for topic in [
            "pw/p1/e1/status/x",
            "pw/p1/e1/alarms/",
            "pw/p1/e1/snapshots/a1/b",
            "pw/p1/e1/config/ack/x",
            "pw/p1/e1/ack/ack",
        ] {
            assert!(
                matches!(
                    EdgeTopic::parse("pw", topic),
                    Err(TopicError::ExtraSegments { .. })
                ),
                "{topic}"
            );
        }
    }

    #[test]
    fn invalid_prefixes_are_rejected() {
        for prefix in ["", "a/+", "#", "$SYS", "a//b", "/a", "a/", "a\0b"] {
            assert!(
                matches!(
                    validate_prefix(prefix),
                    Err(TopicError::InvalidPrefix { .. })
                ),
                "{prefix:?}"
            );
            assert!(EdgeTopic::parse(prefix, "a/p/e/status").is_err());
        }
        assert!(validate_prefix("acme/parkwatch").is_ok());
    }

    #[test]
    fn new_validates_ids() {
        assert!(matches!(
            EdgeTopic::new("", "e", TopicKind::Status),
            Err(TopicError::InvalidId {
                segment: "site",
                reason: IdError::Empty,
                ..
            })
        ));
        assert!(matches!(
            EdgeTopic::new("p", "e/x", TopicKind::Status),
            Err(TopicError::InvalidId {
                segment: "edge",
                reason: IdError::BadChar { ch: '/', index: 1 },
                ..
            })
        ));
        assert!(matches!(
            EdgeTopic::new(
                "p",
                "e",
                TopicKind::Snapshot {
                    alarm_id: "+".to_owned()
                }
            ),
            Err(TopicError::InvalidId {
                segment: "alarm_id",
                ..
            })
        ));
    }

    #[test]
    fn errors_say_which_segment_and_why() {
        let err = EdgeTopic::parse("pw", "pw/p1/bad edge/status").unwrap_err();
        assert_eq!(
            err.to_string(),
            "edge \"bad edge\" has ' ' at char 3; allowed are A-Z a-z 0-9 _ . : -"
        );
        let long = format!("pw/{}", "x/".repeat(10_000));
        let msg = EdgeTopic::parse("other", &long).unwrap_err().to_string();
        assert!(
            msg.len() < 400,
            "error message not bounded: {} bytes",
            msg.len()
        );
    }

    #[test]
    fn subscriptions_match_what_each_side_receives() {
        assert_eq!(
            ingest_subscriptions("acme/pw"),
            [
                "acme/pw/+/+/status",
                "acme/pw/+/+/alarms",
                "acme/pw/+/+/telemetry",
                "acme/pw/+/+/snapshots/+",
                "acme/pw/+/+/config/ack",
            ]
        );
        assert_eq!(
            edge_subscriptions("pw", "p1", "e1"),
            ["pw/p1/e1/ack", "pw/p1/e1/config"]
        );
        // Every kind is covered by exactly one side's subscriptions.
        for kind in examples::topic_kinds() {
            let to_ingest = kind.direction() == Direction::EdgeToIngest;
            let filter_kind = match &kind {
                TopicKind::Snapshot { .. } => "snapshots/+".to_owned(),
                TopicKind::ConfigAck => "config/ack".to_owned(),
                k => k.name().to_owned(),
            };
            let in_ingest = ingest_subscriptions("pw").contains(&format!("pw/+/+/{filter_kind}"));
            let in_edge =
                edge_subscriptions("pw", "p", "e").contains(&format!("pw/p/e/{filter_kind}"));
            assert_eq!((in_ingest, in_edge), (to_ingest, !to_ingest), "{kind:?}");
        }
    }

    #[test]
    fn only_status_and_config_are_retained() {
        let retained: Vec<_> = examples::topic_kinds()
            .into_iter()
            .filter(TopicKind::retained)
            .map(|k| k.name())
            .collect();
        assert_eq!(retained, ["status", "config"]);
    }
}
