//! `parkwatch-ingest`: the central service that receives what edge boxes
//! publish and stores it.
//!
//! Parts, each in its own module:
//! - [`config`]: the configuration file, validation and secrets.
//! - [`broker`]: the embedded MQTT broker (rumqttd) and its security model.
//! - [`consumer`]: the MQTT client that receives, checks and routes messages.
//! - [`points`]: telemetry points to InfluxDB line protocol.
//! - [`writer`]: batching, retrying time-series writer with backpressure.
//! - [`dedup`], [`spool`], [`deadletter`]: the writer's record of stored
//!   batches, its disk spool for database outages, and the bounded store
//!   of rejected messages.
//! - [`acks`]: delivery acks to edges for stored batches.
//! - [`edges`]: the latest status of each edge.
//! - [`metrics`] and [`http`]: `/metrics` and `/healthz`.
//! - [`app`]: wiring and the one shutdown path.
//! - [`api`]: the `/api/v1` HTTP layer over the incident service of
//!   `parkwatch-incidents` (re-exported as [`incidents`]).
//!
//! End-to-end guarantee: a telemetry batch is acknowledged to its edge
//! (delivery ack) only after the time-series database stored it (or
//! refused it for good, which is counted). Until then the edge keeps it in
//! its outbox and sends it again, so nothing accepted by an edge is lost
//! when ingest, the broker or the database restarts.

pub mod acks;
pub mod api;
pub mod app;
pub mod broker;
pub mod config;
pub mod consumer;
pub mod deadletter;
pub mod dedup;
pub mod edges;
pub mod http;
pub mod metrics;
pub mod points;
pub mod ratelimit;
pub mod secret;
pub mod spool;
pub mod writer;

pub use config::{IngestConfig, LoadedConfig};
/// The incident domain (its own crate, `lib/incidents`), under the path
/// ingest's modules have always used for it.
pub use parkwatch_incidents as incidents;

/// Formats problems one per line as `file:line: key: message`.
pub fn format_problems(problems: &parkwatch_config::Problems) -> String {
    problems.0.iter().map(|p| format!("{p}\n")).collect()
}
