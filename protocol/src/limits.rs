//! Every size and count limit of the wire protocol, in one place.
//!
//! A leaf module: it imports nothing else of the crate, so every other
//! module (and `parkwatch-config`, edge and ingest) can use it without
//! creating an import cycle. The values are part of the contract: changing
//! one is a protocol change (see `docs/protocol.md`, "Limits").

/// Longest site, edge, camera, sensor, zone, rule or catalogue id, in chars.
pub const MAX_ID_LEN: usize = 64;
/// Longest alarm id, in chars.
pub const MAX_ALARM_ID_LEN: usize = 128;
/// Longest accepted topic prefix, in bytes.
pub const MAX_PREFIX_LEN: usize = 256;
/// Latest accepted timestamp: 9999-12-31T23:59:59.999Z in ms since the epoch.
pub const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_999;
/// Longest label (edge software version, object class, model name and
/// version, unit, measurement, tag key and value, field key), in bytes.
pub const MAX_LABEL_LEN: usize = 256;
/// Most tags on one telemetry point.
pub const MAX_TAGS_PER_POINT: usize = 64;
/// Most fields on one telemetry point.
pub const MAX_FIELDS_PER_POINT: usize = 256;

/// Largest JSON payload accepted, in bytes.
pub const MAX_JSON_BYTES: usize = 256 * 1024;
/// Largest encoded telemetry batch accepted, in bytes.
pub const MAX_TELEMETRY_BYTES: usize = 1024 * 1024;
/// Largest snapshot JPEG accepted, in bytes.
pub const MAX_SNAPSHOT_BYTES: usize = 4 * 1024 * 1024;
/// Most points in one telemetry batch.
pub const MAX_POINTS_PER_BATCH: usize = 20_000;
