//! Jittered exponential backoff for reconnect loops (RTSP sessions, the
//! MQTT link, Modbus devices): the one implementation lives in
//! `parkwatch_durable::backoff`, shared with ingest; re-exported here so
//! `crate::backoff::Backoff` keeps working.

pub use parkwatch_durable::backoff::{Backoff, BackoffError};
