//! The wire contract between parkwatch edge boxes and ingest.
//!
//! This crate is the one place that says what travels over MQTT between an
//! edge box and the centre:
//!
//! - [`limits`]: every size and count limit (`MAX_*`).
//! - [`vocab`]: the vocabulary both sides and the configuration share:
//!   [`SCHEMA_VERSION`], [`AlarmKind`], [`Severity`], the id rules
//!   ([`validate_id`], [`validate_config_id`]) and the topic-prefix rule
//!   ([`check_prefix`]).
//! - [`alarm_id`]: how an alarm id is built (sanitise, join, hash, fit).
//! - [`error`]: [`DecodeError`], why a received payload was rejected.
//! - [`payload`]: the serde types of every payload (status, alarm events,
//!   telemetry batches, delivery acks, configuration push and ack).
//! - [`validate`]: [`Validate`], the checks serde's types cannot express.
//! - [`topic`]: the topic tree (`{prefix}/{site}/{edge}/...`), rendering and
//!   strict parsing of topic names, and the subscription filters each side
//!   uses.
//! - [`codec`]: encoding and the only sanctioned way to decode untrusted
//!   bytes: size limit, then parse, then schema-version check, then field
//!   validation. Decoding never panics, whatever the input.
//! - [`examples`]: one valid sample of every payload, for tests and docs.
//!
//! Module order: each module imports only modules listed before it, so
//! the import graph is acyclic (`crate::` paths in doc links aside):
//!
//! ```text
//! limits    (nothing)
//! vocab     limits
//! alarm_id  limits, vocab
//! error     vocab
//! payload   vocab
//! validate  limits, vocab, error, payload
//! topic     limits, vocab
//! examples  vocab, payload, topic
//! codec     limits, vocab, error, payload, validate, topic
//! ```
//!
//! Guarantees: a value returned by a `decode_*` function has the current
//! [`SCHEMA_VERSION`], well-formed ids, finite floats and values inside the
//! documented ranges (see `docs/protocol.md` for the full rule list). The
//! crate does no I/O and has no async runtime, so both sides and their tests
//! can use it freely.

pub mod limits;
pub mod vocab;

pub mod alarm_id;
pub mod error;
pub mod payload;

pub mod validate;

pub mod topic;

pub mod examples;

pub mod codec;

pub use codec::*;
pub use error::*;
pub use limits::*;
pub use payload::*;
pub use topic::*;
pub use validate::*;
pub use vocab::*;
