//! The wire vocabulary, defined once: schema version, alarm kinds,
//! severities, the id rules and the topic-prefix rule.
//!
//! Edge, ingest and `parkwatch-config` all take these from here, so a value
//! a configuration file accepts is a value the wire accepts, and the names
//! written in config files are the names on the wire.
//!
//! Guarantees:
//! - [`AlarmKind`] and [`Severity`] serialize as lowercase snake_case
//!   strings ([`AlarmKind::as_str`], [`Severity::as_str`]) and `FromStr`
//!   accepts exactly those strings.
//! - [`validate_id`] is the definition of a well-formed wire id:
//!   `[A-Za-z0-9_.:-]{1,max}`. [`validate_config_id`] is the stricter rule
//!   for ids people write in configuration files, `[A-Za-z0-9_.-]` and at
//!   most [`MAX_ID_LEN`] bytes; every config id is a wire id.
//! - [`check_prefix`] is the one topic-prefix rule; ingest's topic parsing
//!   and the config checks both use it.
//!
//! Depends only on [`crate::limits`].

use serde::{Deserialize, Serialize};

use crate::limits::{MAX_ID_LEN, MAX_PREFIX_LEN};

/// The schema version this build writes and the only one it accepts.
///
/// Within a version, changes are additive only (new optional fields);
/// receivers ignore fields they do not know. Anything else is a new version.
pub const SCHEMA_VERSION: u16 = 1;

/// The topic prefix used when the configuration names none.
pub const DEFAULT_PREFIX: &str = "parkwatch";

// ------------------------------------------------------------ enum names

/// The name of an enum value that [`FromStr`](std::str::FromStr) did not recognise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?} (expected one of: {expected})")]
pub struct ParseEnumError {
    /// Which enum was being parsed, e.g. "alarm kind".
    pub what: &'static str,
    /// The text that did not match.
    pub value: String,
    /// The accepted values, comma separated.
    pub expected: &'static str,
}

/// `Display` and `FromStr` from a type's `ALL` and `as_str`.
macro_rules! str_enum_traits {
    ($ty:ty, $what:literal, $expected:literal) => {
        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = $crate::vocab::ParseEnumError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|k| k.as_str() == s)
                    .ok_or_else(|| $crate::vocab::ParseEnumError {
                        what: $what,
                        value: s.to_owned(),
                        expected: $expected,
                    })
            }
        }
    };
}
pub(crate) use str_enum_traits;

// ------------------------------------------------------------ alarm kinds

/// What an alarm is about.
///
/// The same names key a site catalogue's `[alarm_kinds]` table
/// (`docs/configuration.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    /// An object of a watched class inside a forbidden zone.
    Intrusion,
    /// An object staying in a zone longer than allowed.
    Dwell,
    /// An object crossing a line in a watched direction.
    LineCrossing,
    /// More objects in a zone than allowed.
    Crowd,
    /// A camera has delivered no frames for too long.
    CameraOffline,
    /// A sensor reading beyond a threshold.
    SensorThreshold,
    /// A sensor or other device not answering.
    DeviceOffline,
}

impl AlarmKind {
    /// Every kind, in declaration order (also the order of the catalogue's
    /// `[alarm_kinds]` table).
    pub const ALL: &'static [AlarmKind] = &[
        Self::Intrusion,
        Self::Dwell,
        Self::LineCrossing,
        Self::Crowd,
        Self::CameraOffline,
        Self::SensorThreshold,
        Self::DeviceOffline,
    ];

    /// The wire name, e.g. "line_crossing".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Intrusion => "intrusion",
            Self::Dwell => "dwell",
            Self::LineCrossing => "line_crossing",
            Self::Crowd => "crowd",
            Self::CameraOffline => "camera_offline",
            Self::SensorThreshold => "sensor_threshold",
            Self::DeviceOffline => "device_offline",
        }
    }

    /// Whether alarms of this kind come from a camera (and name one).
    pub fn is_camera_kind(self) -> bool {
        matches!(
            self,
            Self::Intrusion | Self::Dwell | Self::LineCrossing | Self::Crowd | Self::CameraOffline
        )
    }
}

// ------------------------------------------------------------- severities

/// How serious an alarm is. Ordered: `Info < Minor < Major < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth recording, nobody needs to act.
    Info,
    /// Handle in working hours.
    Minor,
    /// Handle soon.
    Major,
    /// Handle now: life or property at risk.
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: &'static [Severity] = &[Self::Info, Self::Minor, Self::Major, Self::Critical];

    /// The wire name, e.g. "critical".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Minor => "minor",
            Self::Major => "major",
            Self::Critical => "critical",
        }
    }
}

str_enum_traits!(
    AlarmKind,
    "alarm kind",
    "intrusion, dwell, line_crossing, crowd, camera_offline, sensor_threshold, device_offline"
);
str_enum_traits!(Severity, "severity", "info, minor, major, critical");

// -------------------------------------------------------------------- ids

/// Why a string is not a well-formed id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The id is the empty string.
    #[error("is empty")]
    Empty,
    /// The id holds a character outside `[A-Za-z0-9_.:-]`.
    #[error("has {ch:?} at char {index}; allowed are A-Z a-z 0-9 _ . : -")]
    BadChar {
        /// The offending character.
        ch: char,
        /// Its position, counted in chars from 0.
        index: usize,
    },
    /// The id is longer than allowed.
    #[error("is {len} chars long, more than {max}")]
    TooLong {
        /// Its length in chars.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Whether `c` may appear in a wire id: `[A-Za-z0-9_.:-]`.
pub fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')
}

/// Whether `c` may appear in a configured id: `[A-Za-z0-9_.-]`, the wire
/// set without `:`.
pub fn is_config_id_char(c: char) -> bool {
    c != ':' && is_id_char(c)
}

/// Checks that `s` is 1..=`max` chars of `[A-Za-z0-9_.:-]`.
///
/// Such an id is safe as an MQTT topic level, a file name component, an
/// InfluxDB tag value and a URL path segment without escaping. Site, edge,
/// camera, sensor, zone, rule and catalogue ids use [`MAX_ID_LEN`]; alarm
/// ids [`crate::MAX_ALARM_ID_LEN`].
pub fn validate_id(s: &str, max: usize) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if let Some((index, ch)) = s.chars().enumerate().find(|&(_, c)| !is_id_char(c)) {
        return Err(IdError::BadChar { ch, index });
    }
    // Only ASCII is left, so bytes are chars.
    if s.len() > max {
        return Err(IdError::TooLong { len: s.len(), max });
    }
    Ok(())
}

/// Checks an id written in a configuration file (edge, site, point,
/// camera, zone, line, rule, sensor, worker, department):
/// `[A-Za-z0-9_.-]{1,64}`.
///
/// Checks in this order: empty, then longer than [`MAX_ID_LEN`] bytes
/// ([`IdError::TooLong`] with the length in bytes), then the first char
/// outside the set ([`IdError::BadChar`]). An id that passes also passes
/// [`validate_id`] with [`MAX_ID_LEN`].
pub fn validate_config_id(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong {
            len: s.len(),
            max: MAX_ID_LEN,
        });
    }
    if let Some((index, ch)) = s.chars().enumerate().find(|&(_, c)| !is_config_id_char(c)) {
        return Err(IdError::BadChar { ch, index });
    }
    Ok(())
}

// ------------------------------------------------------------ topic prefix

/// Why a topic prefix is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum PrefixError {
    /// The prefix is the empty string.
    #[error("is empty")]
    Empty,
    /// Longer than [`MAX_PREFIX_LEN`] bytes.
    #[error("is longer than 256 bytes")]
    TooLong,
    /// Holds `+` or `#`.
    #[error("contains a wildcard ('+' or '#')")]
    Wildcard,
    /// Holds a NUL character.
    #[error("contains a NUL character")]
    Nul,
    /// Starts with `$`, which brokers reserve (`$SYS`, `$share`).
    #[error("starts with '$', which brokers reserve")]
    Dollar,
    /// Has an empty level.
    #[error("has an empty level (leading, trailing or double '/')")]
    EmptyLevel,
}

impl PrefixError {
    /// The reason as a static string (the same text as `Display`).
    pub fn reason(self) -> &'static str {
        match self {
            Self::Empty => "is empty",
            Self::TooLong => "is longer than 256 bytes",
            Self::Wildcard => "contains a wildcard ('+' or '#')",
            Self::Nul => "contains a NUL character",
            Self::Dollar => "starts with '$', which brokers reserve",
            Self::EmptyLevel => "has an empty level (leading, trailing or double '/')",
        }
    }
}

/// The topic-prefix rule: 1..=[`MAX_PREFIX_LEN`] bytes, levels separated by
/// `/`, no empty level, no `+`, `#` or NUL, not starting with `$`.
///
/// Problems are checked in the order of [`PrefixError`]'s variants and the
/// first one is returned.
pub fn check_prefix(prefix: &str) -> Result<(), PrefixError> {
    if prefix.is_empty() {
        return Err(PrefixError::Empty);
    }
    if prefix.len() > MAX_PREFIX_LEN {
        return Err(PrefixError::TooLong);
    }
    if prefix.contains(['+', '#']) {
        return Err(PrefixError::Wildcard);
    }
    if prefix.contains('\0') {
        return Err(PrefixError::Nul);
    }
    if prefix.starts_with('$') {
        return Err(PrefixError::Dollar);
    }
    if prefix.split('/').any(str::is_empty) {
        return Err(PrefixError::EmptyLevel);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_parse_their_wire_names() {
        for k in AlarmKind::ALL {
            assert_eq!(k.as_str().parse::<AlarmKind>(), Ok(*k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        for s in Severity::ALL {
            assert_eq!(s.as_str().parse::<Severity>(), Ok(*s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        let err = "LineCrossing".parse::<AlarmKind>().unwrap_err();
        assert!(err.to_string().contains("line_crossing"), "{err}");
        assert_eq!(AlarmKind::LineCrossing.to_string(), "line_crossing");
    }

    #[test]
    fn severity_orders_by_urgency() {
        assert!(Severity::Info < Severity::Minor);
        assert!(Severity::Minor < Severity::Major);
        assert!(Severity::Major < Severity::Critical);
        assert_eq!(Severity::ALL.iter().max(), Some(&Severity::Critical));
    }

    #[test]
    fn prefix_error_reason_matches_display() {
        for e in [
            PrefixError::Empty,
            PrefixError::TooLong,
            PrefixError::Wildcard,
            PrefixError::Nul,
            PrefixError::Dollar,
            PrefixError::EmptyLevel,
        ] {
            assert_eq!(e.reason(), e.to_string());
        }
        assert_eq!(
            PrefixError::TooLong.to_string(),
            format!("is longer than {MAX_PREFIX_LEN} bytes")
        );
    }

    #[test]
    fn prefix_rule() {
        assert_eq!(check_prefix("$park"), Err(PrefixError::Dollar));
        assert_eq!(check_prefix("$SYS/x"), Err(PrefixError::Dollar));
        assert_eq!(check_prefix(""), Err(PrefixError::Empty));
        assert_eq!(check_prefix("a/+"), Err(PrefixError::Wildcard));
        assert_eq!(check_prefix("a\0b"), Err(PrefixError::Nul));
        assert_eq!(check_prefix("a//b"), Err(PrefixError::EmptyLevel));
        assert_eq!(
            check_prefix(&"p".repeat(MAX_PREFIX_LEN + 1)),
            Err(PrefixError::TooLong)
        );
        assert!(check_prefix(&"p".repeat(MAX_PREFIX_LEN)).is_ok());
        assert!(check_prefix("acme/parkwatch").is_ok());
        assert!(check_prefix(DEFAULT_PREFIX).is_ok());
        assert!(check_prefix("pw$").is_ok());
    }

    #[test]
    fn config_ids_are_wire_ids_without_colon() {
        assert!(validate_config_id("edge-01_a.b").is_ok());
        assert_eq!(
            validate_config_id("a:b"),
            Err(IdError::BadChar { ch: ':', index: 1 })
        );
        assert!(validate_id("a:b", MAX_ID_LEN).is_ok());
        assert_eq!(validate_config_id(""), Err(IdError::Empty));
        // Length is checked before characters, in bytes.
        let long = "é".repeat(33);
        assert_eq!(
            validate_config_id(&long),
            Err(IdError::TooLong { len: 66, max: 64 })
        );
        for c in (0u8..=127).map(char::from) {
            if is_config_id_char(c) {
                assert!(is_id_char(c), "{c:?}");
            }
        }
    }
}
