//! Durable storage shared by the edge and ingest: the pieces that decide
//! whether data survives a crash, written once.
//!
//! - [`segment`]: the CRC-framed segment log (format, append, recovery with
//!   corrupt-tail detection, rotation and deletion). The edge outbox and
//!   ingest's disk spool are built on it.
//! - [`atomic`]: replace a small file atomically (temporary file, fsync,
//!   rename, fsync of the directory): the outbox ledger, the dedup snapshot,
//!   the spool cursor and the incident blob store.
//! - [`backoff`]: jittered exponential backoff with validated bounds.
//! - [`clock`]: the `Clock` seam and Unix-millisecond time.
//!
//! Pure std file I/O, no async runtime: callers on tokio run it on the
//! blocking pool. Every error carries the file and the operation
//! ([`IoError`]); no function here panics on file content.

pub mod atomic;
pub mod backoff;
pub mod clock;
mod error;
pub mod segment;

pub use atomic::{Durability, replace, sync_dir};
pub use backoff::{Backoff, BackoffError};
pub use clock::{Clock, ManualClock, SystemClock, now_ms};
pub use error::IoError;
