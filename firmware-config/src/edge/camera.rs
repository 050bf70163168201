//! `[[cameras]]`: video sources with their zones, lines and rules.
//!
//! These types only hold values; [`super::validate_edge`] checks them
//! (zones are simple polygons inside the image, rules name zones and lines
//! of their own camera, every rule kind's required keys are present).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{default_severity, secs};
use crate::geometry::Point;
use crate::time::TimeWindow;

/// What kind of video source a camera is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraKind {
    /// An ordinary fixed camera (the default).
    #[default]
    Fixed,
    /// A high-altitude "eagle-eye" panoramic system (stitched stream).
    Panoramic,
}

/// One camera (video source) pulled over RTSP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// Required. Id, `[A-Za-z0-9_.-]{1,64}`, unique in the file (and in a
    /// site directory, across the site).
    pub id: String,
    /// Optional human name, e.g. "North gate".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Required. `rtsp://` or `rtsps://` URL, credentials allowed
    /// (`rtsp://user:pass@host:554/path`); log it with [`Self::redacted_url`].
    pub url: String,
    /// `"fixed"` or `"panoramic"`; default `"fixed"`.
    #[serde(default)]
    pub kind: CameraKind,
    /// Whether the box pulls this camera; default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Frames per second run through the detector, > 0 and <= 60; default 5.
    #[serde(default = "default_detect_fps")]
    pub detect_fps: f64,
    /// Decode only keyframes (cheap, for slow scenes); default false.
    #[serde(default)]
    pub keyframes_only: bool,
    /// Frame watchdog: the stream counts as stale (reconnect, and a
    /// `camera_offline` alarm) after this many seconds without a frame,
    /// > 0; default 10.
    #[serde(default = "default_stale_after")]
    pub stale_after_secs: f64,
    /// Motion gating: while the scene is static the detector runs only
    /// every this many seconds, >= 0 (0 disables gating); default 2.
    #[serde(default = "default_static_recheck")]
    pub static_recheck_secs: f64,
    /// Optional compass heading of the view, 0..360 degrees (0 = north).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heading_deg: Option<f64>,
    /// Zones (`[[cameras.zones]]`); default none.
    #[serde(default)]
    pub zones: Vec<ZoneConfig>,
    /// Lines (`[[cameras.lines]]`); default none.
    #[serde(default)]
    pub lines: Vec<LineConfig>,
    /// Rules (`[[cameras.rules]]`); default none.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

impl CameraConfig {
    /// The URL with the password replaced by `***` (the user is kept), for
    /// logs and status messages. Never fails; an unparsable URL is redacted
    /// by the same rule (everything between the first `:` of the authority
    /// and its last `@`).
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// `stale_after_secs` as a duration.
    pub fn stale_after(&self) -> Duration {
        secs(self.stale_after_secs)
    }

    /// `static_recheck_secs` as a duration.
    pub fn static_recheck(&self) -> Duration {
        secs(self.static_recheck_secs)
    }

    /// The zone with this id.
    pub fn zone(&self, id: &str) -> Option<&ZoneConfig> {
        self.zones.iter().find(|z| z.id == id)
    }

    /// The line with this id.
    pub fn line(&self, id: &str) -> Option<&LineConfig> {
        self.lines.iter().find(|l| l.id == id)
    }
}

/// Replaces the password of a URL's userinfo with `***`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let auth_start = scheme_end + 3;
    let rest = &url[auth_start..];
    let auth_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..auth_len];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let user = match userinfo.find(':') {
        Some(colon) => format!("{}:***", &userinfo[..colon]),
        None => userinfo.to_owned(),
    };
    format!("{}{}{}", &url[..auth_start], user, &rest[at..])
}

/// A polygonal zone in normalised image coordinates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    /// Required. Id, unique among the camera's zones and lines.
    pub id: String,
    /// Required. Vertices `[x, y]`, each 0..=1, origin top-left, x right,
    /// y down; >= 3 points, a simple polygon (no self-intersection, non-zero
    /// area); implicitly closed (do not repeat the first point).
    pub polygon: Vec<Point>,
}

/// A directed segment A -> B in normalised image coordinates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineConfig {
    /// Required. Id, unique among the camera's zones and lines.
    pub id: String,
    /// Required. `[A, B]`, each point 0..=1, A != B.
    pub points: [Point; 2],
}

impl LineConfig {
    /// Which side of A -> B `p` is on: negative = left of A -> B as seen on
    /// the image (y down), positive = right, 0 = on the line.
    /// `(Bx-Ax)*(Py-Ay) - (By-Ay)*(Px-Ax)`.
    pub fn side(&self, p: Point) -> f64 {
        crate::geometry::cross(self.points[0], self.points[1], p)
    }
}

/// What a rule watches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// An object of `classes` is inside `zone` (for `seconds`, default 0).
    Intrusion,
    /// An object stays inside `zone` for `seconds` (required, > 0).
    Dwell,
    /// An object's track crosses `line` in `direction`.
    LineCrossing,
    /// At least `min_count` objects are inside `zone` for `seconds` (default 0).
    Crowd,
}

impl RuleKind {
    /// The snake_case name, as in TOML and alarm payloads.
    pub fn as_str(&self) -> &'static str {
        match self {
            RuleKind::Intrusion => "intrusion",
            RuleKind::Dwell => "dwell",
            RuleKind::LineCrossing => "line_crossing",
            RuleKind::Crowd => "crowd",
        }
    }
}

/// How serious an alarm is: the wire type, defined once in
/// `parkwatch-protocol` (re-exported as `parkwatch_config::Severity`). A
/// rule that names none is `major` ([`RuleConfig::severity`]).
pub use parkwatch_protocol::Severity;

/// Which crossings of a line count.
///
/// Stand at A looking towards B on the image as displayed (y down). An
/// object crossing from your left to your right crosses `a_to_b`; from
/// right to left, `b_to_a`. With [`LineConfig::side`], `a_to_b` is a track
/// whose side goes from negative to positive. Example: A = (0.2, 0.6),
/// B = (0.8, 0.6) (left to right across the image): `a_to_b` is moving
/// down the image, `b_to_a` moving up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the left of A -> B to its right.
    AToB,
    /// From the right of A -> B to its left.
    BToA,
    /// Either way (the default).
    #[default]
    Both,
}

impl Direction {
    /// Whether a move from side `before` to side `after` (values of
    /// [`LineConfig::side`]) is a crossing this direction counts.
    pub fn counts(&self, before: f64, after: f64) -> bool {
        let a_to_b = before < 0.0 && after > 0.0;
        let b_to_a = before > 0.0 && after < 0.0;
        match self {
            Direction::AToB => a_to_b,
            Direction::BToA => b_to_a,
            Direction::Both => a_to_b || b_to_a,
        }
    }
}

/// One alarm rule of a camera.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Required. Id, unique within the camera.
    pub id: String,
    /// Required. `intrusion` | `dwell` | `line_crossing` | `crowd`.
    pub kind: RuleKind,
    /// Zone id of this camera; required for intrusion, dwell and crowd,
    /// not allowed for line_crossing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Line id of this camera; required for line_crossing, not allowed otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<String>,
    /// Required, non-empty: COCO class names (e.g. `"person"`, `"car"`).
    pub classes: Vec<String>,
    /// Optional score threshold 0..=1; default the detector's `min_score`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_score: Option<f64>,
    /// `info` | `minor` | `major` | `critical`; default `major`.
    #[serde(default = "default_severity")]
    pub severity: Severity,
    /// Seconds, >= 0. Dwell: time inside the zone (required, > 0).
    /// Crowd: time the count must hold (default 0). Intrusion: time inside
    /// before alarming (default 0). Not allowed for line_crossing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// Crowd only, required, >= 2: objects inside the zone at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_count: Option<u32>,
    /// line_crossing only: `a_to_b` | `b_to_a` | `both`; default `both`.
    #[serde(default)]
    pub direction: Direction,
    /// After an alarm of this rule ends, a new one is not raised for this
    /// many seconds, >= 0; default 0.
    #[serde(default)]
    pub cooldown_secs: f64,
    /// Local-time windows `"HH:MM-HH:MM"` (may wrap midnight) when the rule
    /// is active; default always.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active_hours: Vec<TimeWindow>,
    /// Optional event catalogue item code overriding the site's mapping of
    /// this alarm kind (in a site directory it must exist in the catalogue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalogue_item: Option<String>,
}

impl RuleConfig {
    /// `seconds`, or its default 0.
    pub fn hold_secs(&self) -> f64 {
        self.seconds.unwrap_or(0.0)
    }

    /// `seconds` (default 0) as a duration.
    pub fn hold(&self) -> Duration {
        secs(self.hold_secs())
    }

    /// `cooldown_secs` as a duration.
    pub fn cooldown(&self) -> Duration {
        secs(self.cooldown_secs)
    }

    /// The score threshold: the rule's, else `detector_min_score`.
    pub fn score_threshold(&self, detector_min_score: f64) -> f64 {
        self.min_score.unwrap_or(detector_min_score)
    }

    /// Whether the rule is active at `minute` (minutes after local midnight).
    pub fn active_at(&self, minute: u16) -> bool {
        self.active_hours.is_empty() || self.active_hours.iter().any(|w| w.contains(minute))
    }
}

fn default_true() -> bool {
    true
}
fn default_detect_fps() -> f64 {
    5.0
}
fn default_stale_after() -> f64 {
    10.0
}
fn default_static_recheck() -> f64 {
    2.0
}
