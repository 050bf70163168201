//! `parkwatch-incidents`: alarms and reports from every channel handled in
//! the GB/T 30428 closed loop (report -> file or cancel -> dispatch ->
//! accept -> handle with feedback -> verify: close or rework), with grid
//! assignment, time limits on the work calendar, escalation and evaluation.
//!
//! Always built (no database, no web framework; what `parkctl` links):
//! - [`model`]: statuses, sources, roles, actions, the incident and its
//!   timeline, alarms, the live feed's events.
//! - [`wire`]: the other request and response bodies of the HTTP API (and
//!   of `GET /deadletters`).
//! - [`sse`]: the client side of the live stream's `text/event-stream`.
//! - [`token`]: API tokens and the hash ingest keeps of them.
//! - [`hash`]: lowercase hex and SHA-256 names.
//! - [`workflow`]: the pure transition and role table (the only gate).
//! - [`deadline`]: time limits in emergency hours, working hours or working
//!   days on the site's work calendar.
//! - [`assign`]: location -> unit, community and responsibility grid, worker.
//! - [`clock`]: the time seam.
//!
//! With the default feature `store` (sqlx, tokio):
//! - [`store`]: SQLite or PostgreSQL through one set of migrations;
//!   serialised, atomic writes; [`store::raw`] holds every SQL statement.
//! - [`blobs`]: content-addressed snapshots and photos on disk.
//! - [`service`]: [`Incidents`], every operation as one transaction.
//! - [`intake`]: alarms and snapshots from MQTT, deduplicated and correlated.
//! - [`feed`]: the commit-ordered feed behind the live SSE stream.
//! - [`stats`]: closure, on-time and rework rates per grid, department, worker.
//! - [`config`]: the `[store]` and `[incidents]` configuration tables.
//!
//! With the feature `openapi`, the types of the HTTP contract derive
//! utoipa's `ToSchema`, from which ingest builds its OpenAPI document.
//!
//! Guarantees (each detailed in its module): every change is atomic and
//! recorded in the append-only timeline and the feed in the same
//! transaction; two concurrent steps on one incident cannot both win; an
//! alarm event is stored once however often the edge re-sends it, and is
//! acknowledged only after it is durably stored.

pub mod assign;
#[cfg(feature = "store")]
pub mod blobs;
#[cfg(feature = "store")]
pub mod config;
pub mod deadline;
#[cfg(feature = "store")]
pub mod feed;
pub mod hash;
#[cfg(feature = "store")]
pub mod intake;
pub mod model;
#[cfg(feature = "store")]
pub mod service;
pub mod sse;
#[cfg(feature = "store")]
pub mod stats;
#[cfg(feature = "store")]
pub mod store;
pub mod token;
pub mod wire;
pub mod workflow;

#[cfg(feature = "store")]
use std::path::{Path, PathBuf};
#[cfg(feature = "store")]
use std::sync::Arc;

pub use model::{Action, Incident, IncidentDetail, Principal, Role, Source, Status};
pub use parkwatch_durable::clock::{Clock, ManualClock, SystemClock};
#[cfg(feature = "store")]
pub use service::{IncidentError, Incidents, IntakeOutcome};
#[cfg(feature = "store")]
pub use store::{Store, StoreSettings};

/// Why the incident service could not start.
#[cfg(feature = "store")]
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The site directory is invalid.
    #[error("site directory {dir}:\n{problems}")]
    Site {
        /// The folder.
        dir: PathBuf,
        /// Every problem, one per line.
        problems: String,
    },
    /// The store.
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// Opens the store (applying migrations) and builds the service for a
/// loaded site.
#[cfg(feature = "store")]
pub async fn open_site(
    site: Arc<parkwatch_config::Site>,
    settings: &StoreSettings,
    blob_dir: &Path,
    clock: Arc<dyn Clock>,
) -> Result<Arc<Incidents>, OpenError> {
    let store = Store::open(settings).await?;
    let svc = Incidents::new(store, site, blobs::BlobStore::new(blob_dir), clock).await?;
    Ok(Arc::new(svc))
}

/// Loads the site at `site_dir`, opens the store (applying migrations) and
/// builds the service.
#[cfg(feature = "store")]
pub async fn open(
    site_dir: &Path,
    settings: &StoreSettings,
    blob_dir: &Path,
    clock: Arc<dyn Clock>,
) -> Result<Arc<Incidents>, OpenError> {
    let site = parkwatch_config::load_site(site_dir).map_err(|p| OpenError::Site {
        dir: site_dir.to_path_buf(),
        problems: p.0.iter().map(|p| format!("{p}\n")).collect(),
    })?;
    open_site(Arc::new(site), settings, blob_dir, clock).await
}
