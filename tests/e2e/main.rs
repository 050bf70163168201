//! The end-to-end tests of parkwatch, as one test binary.
//!
//! Each module is one scenario run against real processes and real servers
//! (GStreamer's RTSP server, VictoriaMetrics, Mosquitto, pymodbus, the
//! workspace's own `parkwatch-edge`, `parkwatch-ingest` and `parkctl`); its
//! `//!` says what the scenario proves. The harness they share is the
//! `parkwatch-tests` library (`tests/src/`); [`ingest_support`] adds the
//! synthetic load edge used by the `ingest_*` scenarios.
//!
//! One binary instead of one per file: the shared code is compiled and
//! linked once, and the compiler sees every use of it, so an unused helper
//! is a warning rather than something to silence. The tests are named
//! `<module>::<test>` (`cargo nextest run -p parkwatch-tests edge_outage::`,
//! or `cargo test -p parkwatch-tests --test e2e edge_outage::`). They start
//! servers on ports of their own but are written to run one at a time
//! (`.config/nextest.toml` puts them in the `e2e` test group; with plain
//! `cargo test`, pass `-- --test-threads=1`).

mod ingest_support;

mod edge_credentials;
mod edge_detect;
mod edge_outage;
mod edge_replay;
mod edge_tls;
mod edge_watchdog;
mod harness;
mod ingest_external;
mod ingest_flood;
mod ingest_kill;
mod ingest_spool;
mod pipeline;
mod sensors;
mod video_alarms;
