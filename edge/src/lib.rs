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
//! The pure parts (tracking, rules, outbox) hold no FFmpeg, ONNX Runtime or
//! MQTT types, so they are tested without any of them. Tracking, rules,
//! sensor rules, the motion gate, letterbox geometry and model manifests
//! live in the `parkwatch-edge-logic` crate, which cannot link them.

pub mod analytics;
pub mod app;
pub mod backoff;
pub mod camera;
pub mod clock;
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
