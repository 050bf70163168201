//! The wire contract between parkwatch edge boxes and ingest.
//!
//! This crate is the one place that says what travels over MQTT between an
//! edge box and the centre:
//!
//! - [`topic`]: the topic tree (`{prefix}/{site}/{edge}/...`), rendering and
//!   strict parsing of topic names, and the subscription filters each side
//!   uses.
//! - [`payload`]: the serde types of every payload (status, alarm events,
//!   telemetry batches, delivery acks, configuration push and ack).
//! - [`codec`]: encoding and the only sanctioned way to decode untrusted
//!   bytes: size limit, then parse, then schema-version check, then field
//!   validation. Decoding never panics, whatever the input.
//!
//! Guarantees: a value returned by a `decode_*` function has the current
//! [`SCHEMA_VERSION`], well-formed ids, finite floats and values inside the
//! documented ranges (see `docs/protocol.md` for the full rule list). The
//! crate does no I/O and has no async runtime, so both sides and their tests
//! can use it freely.

pub mod codec;
pub mod examples;
pub mod payload;
pub mod topic;
pub mod validate;

pub use codec::*;
pub use payload::*;
pub use topic::*;
pub use validate::*;

/// The schema version this build writes and the only one it accepts.
///
/// Within a version, changes are additive only (new optional fields);
/// receivers ignore fields they do not know. Anything else is a new version.
pub const SCHEMA_VERSION: u16 = 1;

/// The topic prefix used when the configuration names none.
pub const DEFAULT_PREFIX: &str = "parkwatch";
