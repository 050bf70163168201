//! [`DecodeError`]: why a received payload was rejected.
//!
//! A leaf of the module graph (it depends only on [`crate::vocab`] for the
//! schema version), so [`crate::validate`], which produces
//! [`DecodeError::Invalid`], and [`crate::codec`], which produces the rest,
//! share it without importing each other.

use crate::vocab::SCHEMA_VERSION;

/// Why a payload was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// Larger than the limit for its topic; nothing was parsed.
    #[error("payload is {size} bytes, more than the {max} allowed")]
    TooLarge {
        /// Payload size in bytes.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Not parseable as the expected format and type.
    #[error("malformed payload: {0}")]
    Malformed(String),
    /// Well-formed enough to read `v`, but `v` is not [`crate::SCHEMA_VERSION`].
    #[error("unsupported schema version {0} (this build speaks version {v})", v = SCHEMA_VERSION)]
    UnsupportedVersion(u16),
    /// Parsed, but a field breaks a validation rule.
    #[error("invalid field {field}: {reason}")]
    Invalid {
        /// Path of the field, e.g. `objects[2].box`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl DecodeError {
    /// A short, stable label for metrics and logs: "too_large",
    /// "malformed", "unsupported_version" or "invalid".
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::Malformed(_) => "malformed",
            DecodeError::UnsupportedVersion(_) => "unsupported_version",
            DecodeError::Invalid { .. } => "invalid",
        }
    }
}
