//! `parkwatch-edge`: the software on an edge box at a camera point.
//!
//! It pulls RTSP streams ([`source`]), decodes them on dedicated threads
//! ([`decode`]), detects objects on site ([`detect`]), tracks them and turns
//! tracks into alarms ([`analytics`], on the pure tracker and rules of
//! `parkwatch-edge-logic`), measures itself
//! ([`telemetry`], [`health`], [`metrics`]) and delivers alarms and telemetry
//! to the centre through a durable on-disk [`outbox`] and an MQTT
//! [`uplink`] that forgets a record only when ingest confirms it stored it.
//!
//! The pure parts live in crates that cannot link FFmpeg, ONNX Runtime or
//! MQTT: tracking, rules, sensor rules, the motion gate, letterbox geometry
//! and model manifests in `parkwatch-edge-logic`; the segment log, atomic
//! file replacement, backoff and the clock in `parkwatch-durable`.

pub mod analytics;
pub mod app;
pub mod camera;
pub mod decode;
pub mod detect;
pub mod health;
pub mod image_io;
pub mod metrics;
pub mod outbox;
pub mod replay;
pub mod sensors;
pub mod source;
pub mod telemetry;
pub mod uplink;
