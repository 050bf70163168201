//! `parkwatch-edge-logic`: the pure logic of an edge box, apart from the
//! I/O side (`parkwatch-edge`) that links FFmpeg, ONNX Runtime, RTSP and MQTT.
//!
//! - [`track`]: multi-object tracking, detections to tracks with stable ids;
//! - [`rules`]: a camera's alarm rules, tracks to alarm transitions;
//! - [`sensor_rules`]: the sensor alarm rules (threshold, device offline);
//! - [`gate`]: motion gating, which sampled frames the detector sees;
//! - [`letterbox`]: where a frame sits in a model's input, and back;
//! - [`manifest`]: model manifests (TOML), parsed and validated.
//!
//! Guarantees: nothing here reads a clock, sleeps, spawns or does network
//! I/O (the manifest reads its own files, nothing else); time is always the
//! caller's. The crate depends on `parkwatch-protocol`, `parkwatch-config`
//! and small pure crates only, which its `Cargo.toml` makes a compile-time
//! fact: no FFmpeg, ONNX Runtime or tokio type can reach these modules.

pub mod gate;
pub mod letterbox;
pub mod manifest;
pub mod rules;
pub mod sensor_rules;
pub mod track;
