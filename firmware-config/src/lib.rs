//! `parkwatch-config`: the parkwatch site configuration as typed, validated data.
//!
//! - [`edge`]: one edge box's file (`sites/<site>/edges/<edge-id>.toml`),
//!   loaded by [`load_edge_config`].
//! - [`site`]: a whole site directory (points, departments, work calendar,
//!   grids, workers, event catalogue and every edge), loaded by
//!   [`load_site`] and reported on by [`check_site`].
//! - [`diag`]: [`Problem`] / [`Problems`], the one report format every
//!   `check-config` prints (file, line, key, message), and [`load_toml`].
//!
//! The wire vocabulary (alarm kinds, severities, the id and topic-prefix
//! rules) comes from `parkwatch-protocol`; [`AlarmKind`] and [`Severity`]
//! are its types, re-exported here.
//!
//! Guarantee: a value returned by a `load_*` function passed every check;
//! otherwise the error lists every problem found, not just the first.
//! The reference for every key is `docs/configuration.md`.

pub mod calendar;
pub mod catalogue;
pub mod coco;
pub mod diag;
pub mod edge;
pub mod geometry;
pub mod grids;
pub mod site;
pub mod time;
pub mod workers;

pub use calendar::{Calendar, CivilDate, Weekday};
pub use catalogue::{AlarmKind, Catalogue, CatalogueItem, ClassKind, EventClass, TimeUnit};
pub use diag::{Problem, Problems, SourceMap, load_toml, parse_toml};
pub use edge::{
    CameraConfig, CameraKind, DataType, DetectorConfig, Direction, EdgeConfig, FsyncPolicy,
    LineConfig, MetricsConfig, MqttConfig, OutboxConfig, RegisterType, RuleConfig, RuleKind,
    SensorConfig, SensorKind, Severity, TelemetryConfig, ThresholdConfig, WordOrder, ZoneConfig,
    load_edge_config, parse_edge_config, validate_edge,
};
pub use grids::{Grid, GridLevel};
pub use site::{
    Department, LonLat, PointKind, Site, SiteInfo, SitePoint, SiteReport, check_site, load_site,
};
pub use time::TimeWindow;
pub use workers::{Worker, WorkerRole};
