//! The clock seam, now in `parkwatch_durable::clock` (one `Clock` for the
//! edge and ingest); kept here as a re-export so `super::clock::*` paths
//! stay valid.

pub use parkwatch_durable::clock::*;
