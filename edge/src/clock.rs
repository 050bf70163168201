//! Wall-clock time in Unix milliseconds, the unit of every timestamp on the
//! wire: `parkwatch_durable::clock`, shared with ingest, re-exported here.

pub use parkwatch_durable::clock::{Clock, ManualClock, SystemClock, now_ms};
