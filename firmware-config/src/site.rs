//! A site directory, loaded and checked as a whole.
//!
//! ```text
//! sites/<site>/
//!   site.toml        identity, county code, map origin, work calendar, departments, points
//!   catalogue.toml   event classes and items, alarm kind -> item mapping
//!   workers.toml     grid workers and their grids
//!   grids.geojson    responsibility, community and unit grids
//!   edges/<edge-id>.toml   one file per edge box
//! ```
//!
//! [`check_site`] never fails: it reads everything it can and returns a
//! [`SiteReport`] with the counts and every problem (unreadable files
//! included), each with its file, line and key. [`load_site`] returns the
//! typed [`Site`] only when there are no problems, so a `Site` is
//! consistent: edge ids match their files and are unique, camera ids are
//! unique across the site, every reference (point, department, grid,
//! catalogue item) resolves, and every alarm kind maps to an item.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::calendar::Calendar;
use crate::catalogue::{AlarmKind, Catalogue, CatalogueItem};
use crate::diag::{Lenient, Problem, Problems, SourceMap, parse_lenient};
use crate::edge::{
    CameraConfig, CameraKind, EdgeConfig, SensorKind, check_edge_text, check_id, check_topic_prefix,
};
use crate::geometry::Point;
use crate::grids::{Grid, GridLevel, check_grids};
use crate::workers::{Worker, WorkerRole, WorkersFile, check_phone};

/// Files of a site directory.
pub const SITE_FILE: &str = "site.toml";
/// The event catalogue file.
pub const CATALOGUE_FILE: &str = "catalogue.toml";
/// The grid workers file.
pub const WORKERS_FILE: &str = "workers.toml";
/// The grids file.
pub const GRIDS_FILE: &str = "grids.geojson";
/// The directory of edge files.
pub const EDGES_DIR: &str = "edges";

/// A longitude/latitude pair (WGS 84 degrees).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LonLat {
    /// Longitude, -180..=180.
    pub lon: f64,
    /// Latitude, -90..=90.
    pub lat: f64,
}

/// The `[site]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteInfo {
    /// Required. Site id (MQTT topic level), `[A-Za-z0-9_.-]{1,64}`.
    pub id: String,
    /// Required. Name.
    pub name: String,
    /// Optional English name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_en: Option<String>,
    /// Required. 6-digit GB/T 2260 county code; prefixes every grid code.
    pub county_code: String,
    /// Local time offset from UTC, `"+HH:MM"`; default `"+08:00"`.
    #[serde(default = "default_utc_offset")]
    pub utc_offset: String,
    /// MQTT topic prefix every edge must use; default `"parkwatch"`.
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    /// Required. Map origin (e.g. the south-west corner), for the one-map view.
    pub origin: LonLat,
}

impl SiteInfo {
    /// `utc_offset` in minutes east of UTC, if well-formed.
    pub fn utc_offset_minutes(&self) -> Option<i32> {
        parse_utc_offset(&self.utc_offset)
    }
}

fn parse_utc_offset(s: &str) -> Option<i32> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let minutes = crate::time::parse_hhmm(rest, false)?;
    (minutes <= 14 * 60).then_some(sign * i32::from(minutes))
}

fn default_utc_offset() -> String {
    "+08:00".into()
}

fn default_topic_prefix() -> String {
    "parkwatch".into()
}

/// A department that handles incidents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Department {
    /// Required. Id, unique.
    pub id: String,
    /// Required. Name.
    pub name: String,
    /// Optional English name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_en: Option<String>,
}

/// What a point is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PointKind {
    /// A camera pole.
    Pole,
    /// A building's rooftop.
    Rooftop,
    /// A high tower (typical for eagle-eye systems).
    Tower,
    /// Anything else.
    Other,
}

/// A point where equipment is mounted (one edge box per point).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SitePoint {
    /// Required. Id, unique, e.g. `"P01"`.
    pub id: String,
    /// Required. Name.
    pub name: String,
    /// Optional English name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_en: Option<String>,
    /// `pole` | `rooftop` | `tower` | `other`; default `pole`.
    #[serde(default = "default_point_kind")]
    pub kind: PointKind,
    /// Required. Longitude (WGS 84); must lie in a unit grid.
    pub lon: f64,
    /// Required. Latitude (WGS 84).
    pub lat: f64,
    /// Mounting height above ground in metres, >= 0; default 0.
    #[serde(default)]
    pub height_m: f64,
}

fn default_point_kind() -> PointKind {
    PointKind::Pole
}

/// The whole `site.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteFile {
    site: SiteInfo,
    #[serde(default)]
    calendar: Calendar,
    #[serde(default)]
    departments: Vec<Department>,
    #[serde(default)]
    points: Vec<SitePoint>,
}

/// A loaded, consistent site.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Site {
    /// The directory it was loaded from.
    pub dir: PathBuf,
    /// `[site]`.
    pub info: SiteInfo,
    /// `[calendar]`.
    pub calendar: Calendar,
    /// `[[departments]]`.
    pub departments: Vec<Department>,
    /// `[[points]]`.
    pub points: Vec<SitePoint>,
    /// `edges/*.toml`, in file name order.
    pub edges: Vec<EdgeConfig>,
    /// `grids.geojson`, in file order.
    pub grids: Vec<Grid>,
    /// `workers.toml`.
    pub workers: Vec<Worker>,
    /// `catalogue.toml`.
    pub catalogue: Catalogue,
}

impl Site {
    /// The grid with this code.
    pub fn grid(&self, code: &str) -> Option<&Grid> {
        self.grids.iter().find(|g| g.code == code)
    }

    /// The unit grid containing `[lon, lat]` (the first, if on a shared edge).
    pub fn unit_grid_at(&self, p: Point) -> Option<&Grid> {
        self.grids
            .iter()
            .filter(|g| g.level == GridLevel::Unit)
            .find(|g| {
                let b = g.bbox();
                p[0] >= b[0] - 1e-6
                    && p[0] <= b[2] + 1e-6
                    && p[1] >= b[1] - 1e-6
                    && p[1] <= b[3] + 1e-6
                    && g.contains(p)
            })
    }

    /// The grid and its ancestors: `[unit, community, responsibility]` for a unit code.
    pub fn grid_chain(&self, code: &str) -> Vec<&Grid> {
        let mut out = Vec::new();
        let mut next = self.grid(code);
        while let Some(g) = next {
            if out.len() > 3 {
                break;
            }
            out.push(g);
            next = g.parent.as_deref().and_then(|p| self.grid(p));
        }
        out
    }

    /// Workers responsible for a grid: those assigned to it directly, then
    /// those assigned to its ancestors (nearest first).
    pub fn workers_for_grid(&self, code: &str) -> Vec<&Worker> {
        let mut out: Vec<&Worker> = Vec::new();
        for g in self.grid_chain(code) {
            for w in self.workers.iter().filter(|w| w.grids.contains(&g.code)) {
                if !out.iter().any(|o| o.id == w.id) {
                    out.push(w);
                }
            }
        }
        out
    }

    /// The department with this id.
    pub fn department(&self, id: &str) -> Option<&Department> {
        self.departments.iter().find(|d| d.id == id)
    }

    /// The point with this id.
    pub fn point(&self, id: &str) -> Option<&SitePoint> {
        self.points.iter().find(|p| p.id == id)
    }

    /// The edge with this id.
    pub fn edge(&self, id: &str) -> Option<&EdgeConfig> {
        self.edges.iter().find(|e| e.edge_id == id)
    }

    /// Every camera with its edge.
    pub fn cameras(&self) -> impl Iterator<Item = (&EdgeConfig, &CameraConfig)> {
        self.edges
            .iter()
            .flat_map(|e| e.cameras.iter().map(move |c| (e, c)))
    }

    /// The camera with this id, with its edge.
    pub fn camera(&self, id: &str) -> Option<(&EdgeConfig, &CameraConfig)> {
        self.cameras().find(|(_, c)| c.id == id)
    }

    /// The catalogue item an alarm files as (see [`Catalogue::item_for`]).
    pub fn item_for(
        &self,
        kind: AlarmKind,
        override_code: Option<&str>,
        sensor: Option<SensorKind>,
    ) -> Option<&CatalogueItem> {
        self.catalogue.item_for(kind, override_code, sensor)
    }
}

/// Counts and problems of a site directory, as `parkctl config check` prints them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteReport {
    /// Fixed cameras.
    pub cameras: usize,
    /// Panoramic (eagle-eye) systems.
    pub panoramic: usize,
    /// All video sources (cameras + panoramic).
    pub video_sources: usize,
    /// Points in `site.toml`.
    pub points: usize,
    /// Edge files.
    pub edges: usize,
    /// Unit grids.
    pub unit_grids: usize,
    /// Community grids.
    pub community_grids: usize,
    /// Responsibility grids.
    pub responsibility_grids: usize,
    /// Grid workers.
    pub workers: usize,
    /// Catalogue items.
    pub event_types: usize,
    /// Every problem found; empty when the site is valid.
    pub errors: Vec<Problem>,
}

/// Loads a site directory; fails with every problem if there is any.
pub fn load_site(dir: &Path) -> Result<Site, Problems> {
    let (site, problems) = check(dir);
    match site {
        Some(s) if problems.is_empty() => Ok(s),
        _ if problems.is_empty() => Err(Problem::file(dir, "not a site directory").into()),
        _ => Err(Problems(problems)),
    }
}

/// Checks a site directory and counts what it holds. Never fails.
pub fn check_site(dir: &Path) -> SiteReport {
    let (site, errors) = check(dir);
    let mut r = SiteReport {
        cameras: 0,
        panoramic: 0,
        video_sources: 0,
        points: 0,
        edges: 0,
        unit_grids: 0,
        community_grids: 0,
        responsibility_grids: 0,
        workers: 0,
        event_types: 0,
        errors,
    };
    if let Some(s) = site {
        r.cameras = s
            .cameras()
            .filter(|(_, c)| c.kind == CameraKind::Fixed)
            .count();
        r.panoramic = s
            .cameras()
            .filter(|(_, c)| c.kind == CameraKind::Panoramic)
            .count();
        r.video_sources = r.cameras + r.panoramic;
        r.points = s.points.len();
        r.edges = s.edges.len();
        let level = |l| s.grids.iter().filter(|g| g.level == l).count();
        r.unit_grids = level(GridLevel::Unit);
        r.community_grids = level(GridLevel::Community);
        r.responsibility_grids = level(GridLevel::Responsibility);
        r.workers = s.workers.len();
        r.event_types = s.catalogue.items.len();
    }
    r
}

/// One TOML file of the site, parsed leniently.
fn read_toml<T: serde::de::DeserializeOwned>(
    path: &Path,
    problems: &mut Vec<Problem>,
) -> Option<(T, SourceMap)> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            problems.push(Problem::file(path, format!("cannot read: {e}")));
            return None;
        }
    };
    let Lenient {
        value,
        map,
        problems: p,
        ..
    } = parse_lenient::<T>(path, &text);
    problems.extend(p);
    value.map(|v| (v, map))
}

/// Reads everything it can; the site is `None` only when `site.toml` or
/// the catalogue could not be read at all.
fn check(dir: &Path) -> (Option<Site>, Vec<Problem>) {
    let mut problems = Vec::new();
    if !dir.is_dir() {
        problems.push(Problem::file(dir, "not a directory"));
        return (None, problems);
    }
    let site_path = dir.join(SITE_FILE);
    let site_file = read_toml::<SiteFile>(&site_path, &mut problems);
    if let Some((s, map)) = &site_file {
        check_site_file(s, map, &mut problems);
    }
    let county = site_file.as_ref().map(|(s, _)| s.site.county_code.clone());

    let (grids, grid_problems) = check_grids(&dir.join(GRIDS_FILE), county.as_deref());
    problems.extend(grid_problems);

    let catalogue = read_toml::<Catalogue>(&dir.join(CATALOGUE_FILE), &mut problems);
    if let Some((c, map)) = &catalogue {
        let departments = site_file.as_ref().map(|(s, _)| s.departments.as_slice());
        check_catalogue(c, map, departments, &mut problems);
    }

    let workers = read_toml::<WorkersFile>(&dir.join(WORKERS_FILE), &mut problems);
    if let Some((w, map)) = &workers {
        check_workers(&w.workers, map, &grids, &mut problems);
    }

    let edges = check_edges(
        dir,
        site_file.as_ref().map(|(s, _)| s),
        catalogue.as_ref().map(|(c, _)| c),
        &mut problems,
    );

    if let Some((s, map)) = &site_file
        && grids.iter().any(|g| g.level == GridLevel::Unit)
    {
        for (i, p) in s.points.iter().enumerate() {
            let inside = grids.iter().any(|g| {
                g.level == GridLevel::Unit && !g.polygon.is_empty() && g.contains([p.lon, p.lat])
            });
            if !inside {
                problems.push(map.problem(
                    format!("points[{i}].lon"),
                    format!(
                        "point {} ({}, {}) is not inside any unit grid",
                        p.id, p.lon, p.lat
                    ),
                ));
            }
        }
    }

    problems.sort_by(|a, b| (&a.file, a.line, &a.key).cmp(&(&b.file, b.line, &b.key)));
    let site = match (site_file, catalogue) {
        (Some((s, _)), Some((c, _))) => Some(Site {
            dir: dir.to_path_buf(),
            info: s.site,
            calendar: s.calendar,
            departments: s.departments,
            points: s.points,
            edges,
            grids,
            workers: workers.map(|(w, _)| w.workers).unwrap_or_default(),
            catalogue: c,
        }),
        _ => None,
    };
    (site, problems)
}

fn check_site_file(s: &SiteFile, map: &SourceMap, out: &mut Vec<Problem>) {
    if let Err(e) = check_id(&s.site.id) {
        out.push(map.problem("site.id", format!("id {:?} {e}", s.site.id)));
    }
    if s.site.county_code.len() != 6 || !s.site.county_code.bytes().all(|b| b.is_ascii_digit()) {
        out.push(map.problem("site.county_code", "must be 6 digits (GB/T 2260)"));
    }
    if s.site.utc_offset_minutes().is_none() {
        out.push(map.problem(
            "site.utc_offset",
            format!("{:?} is not like \"+08:00\"", s.site.utc_offset),
        ));
    }
    if let Err(e) = check_topic_prefix(&s.site.topic_prefix) {
        out.push(map.problem("site.topic_prefix", e));
    }
    check_lonlat(
        map,
        "site.origin.lon",
        "site.origin.lat",
        s.site.origin.lon,
        s.site.origin.lat,
        out,
    );
    for (key, message) in s.calendar.problems() {
        out.push(map.value_problem(format!("calendar.{key}"), message));
    }
    let mut seen = Unique::new("departments", "id");
    for (i, d) in s.departments.iter().enumerate() {
        if let Err(e) = check_id(&d.id) {
            out.push(map.problem(format!("departments[{i}].id"), format!("id {:?} {e}", d.id)));
        }
        seen.check(map, i, &d.id, out);
    }
    let mut seen = Unique::new("points", "id");
    for (i, p) in s.points.iter().enumerate() {
        if let Err(e) = check_id(&p.id) {
            out.push(map.problem(format!("points[{i}].id"), format!("id {:?} {e}", p.id)));
        }
        seen.check(map, i, &p.id, out);
        check_lonlat(
            map,
            &format!("points[{i}].lon"),
            &format!("points[{i}].lat"),
            p.lon,
            p.lat,
            out,
        );
        if !(p.height_m.is_finite() && p.height_m >= 0.0) {
            out.push(map.problem(format!("points[{i}].height_m"), "must be >= 0"));
        }
    }
}

fn check_lonlat(
    map: &SourceMap,
    lon_key: &str,
    lat_key: &str,
    lon: f64,
    lat: f64,
    out: &mut Vec<Problem>,
) {
    if !(-180.0..=180.0).contains(&lon) {
        out.push(map.problem(lon_key, format!("{lon} is outside -180..=180")));
    }
    if !(-90.0..=90.0).contains(&lat) {
        out.push(map.problem(lat_key, format!("{lat} is outside -90..=90")));
    }
}

fn check_catalogue(
    c: &Catalogue,
    map: &SourceMap,
    departments: Option<&[Department]>,
    out: &mut Vec<Problem>,
) {
    let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    let mut seen = Unique::new("classes", "code");
    for (i, class) in c.classes.iter().enumerate() {
        if !two_digits(&class.code) {
            out.push(map.problem(
                format!("classes[{i}].code"),
                format!("{:?} is not two digits", class.code),
            ));
        }
        seen.check(map, i, &class.code, out);
    }
    let mut seen = Unique::new("items", "code");
    for (i, item) in c.items.iter().enumerate() {
        let key = format!("items[{i}]");
        seen.check(map, i, &item.code, out);
        if c.class(&item.class).is_none() {
            out.push(map.problem(
                format!("{key}.class"),
                format!("no class has code {:?}", item.class),
            ));
        } else if item.code.len() != 4
            || !item.code.bytes().all(|b| b.is_ascii_digit())
            || !item.code.starts_with(&item.class)
        {
            out.push(map.problem(
                format!("{key}.code"),
                format!(
                    "{:?} should be its class code {:?} followed by two digits",
                    item.code, item.class
                ),
            ));
        }
        if let Some(depts) = departments
            && !depts.iter().any(|d| d.id == item.department)
        {
            out.push(map.problem(
                format!("{key}.department"),
                format!("no department {:?} in {SITE_FILE}", item.department),
            ));
        }
        if item.time_limit == 0 {
            out.push(map.problem(format!("{key}.time_limit"), "must be > 0"));
        }
    }
    for &kind in AlarmKind::ALL {
        let code = c.alarm_kinds.get(kind);
        if c.item(code).is_none() {
            out.push(map.value_problem(
                format!("alarm_kinds.{}", kind.as_str()),
                format!("no item has code {code:?}"),
            ));
        }
    }
    for kind in [
        SensorKind::Pm25,
        SensorKind::Pm10,
        SensorKind::Noise,
        SensorKind::Temperature,
        SensorKind::Humidity,
        SensorKind::GasLel,
        SensorKind::WaterLevel,
        SensorKind::Other,
    ] {
        if let Some(code) = c.sensor_kinds.get(kind)
            && c.item(code).is_none()
        {
            out.push(map.value_problem(
                format!("sensor_kinds.{}", kind.as_str()),
                format!("no item has code {code:?}"),
            ));
        }
    }
}

fn check_workers(workers: &[Worker], map: &SourceMap, grids: &[Grid], out: &mut Vec<Problem>) {
    let by_code: HashMap<&str, &Grid> = grids.iter().map(|g| (g.code.as_str(), g)).collect();
    let mut seen = Unique::new("workers", "id");
    let mut covered: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for (i, w) in workers.iter().enumerate() {
        let key = format!("workers[{i}]");
        if let Err(e) = check_id(&w.id) {
            out.push(map.problem(format!("{key}.id"), format!("id {:?} {e}", w.id)));
        }
        seen.check(map, i, &w.id, out);
        if let Err(e) = check_phone(&w.phone) {
            out.push(map.problem(format!("{key}.phone"), e));
        }
        if w.grids.is_empty() {
            out.push(map.problem(format!("{key}.grids"), "must name at least one grid"));
        }
        if w.roles.is_empty() {
            out.push(map.problem(format!("{key}.roles"), "must name at least one role"));
        }
        for (j, code) in w.grids.iter().enumerate() {
            match by_code.get(code.as_str()) {
                None if !grids.is_empty() => {
                    out.push(map.value_problem(
                        format!("{key}.grids[{j}]"),
                        format!("no grid has code {code:?}"),
                    ));
                }
                None => {}
                Some(g) if g.level == GridLevel::Responsibility => {
                    out.push(map.value_problem(
                        format!("{key}.grids[{j}]"),
                        format!(
                            "{code:?} is a responsibility grid; assign unit or community grids"
                        ),
                    ));
                }
                Some(g) => {
                    covered.insert(&g.code);
                }
            }
        }
        if w.has_role(WorkerRole::CommunityLead)
            && !w.grids.iter().any(|c| {
                by_code
                    .get(c.as_str())
                    .is_some_and(|g| g.level == GridLevel::Community)
            })
            && !grids.is_empty()
        {
            out.push(map.problem(
                format!("{key}.roles"),
                "a community_lead needs a community grid",
            ));
        }
    }
    if workers.is_empty() {
        return;
    }
    for g in grids.iter().filter(|g| g.level == GridLevel::Unit) {
        let by_parent = g.parent.as_deref().is_some_and(|p| covered.contains(p));
        if !covered.contains(g.code.as_str()) && !by_parent {
            out.push(map.problem(
                "workers",
                format!(
                    "no worker covers unit grid {} ({}), directly or through its community",
                    g.code, g.name
                ),
            ));
        }
    }
}

/// Checks every `edges/*.toml` and the links between them and the site.
fn check_edges(
    dir: &Path,
    site: Option<&SiteFile>,
    catalogue: Option<&Catalogue>,
    out: &mut Vec<Problem>,
) -> Vec<EdgeConfig> {
    let edges_dir = dir.join(EDGES_DIR);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&edges_dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect(),
        Err(e) => {
            out.push(Problem::file(
                &edges_dir,
                format!("cannot read the edges directory: {e}"),
            ));
            return Vec::new();
        }
    };
    files.sort();
    let mut edges = Vec::new();
    let mut edge_ids: HashMap<String, PathBuf> = HashMap::new();
    let mut camera_ids: HashMap<String, PathBuf> = HashMap::new();
    let mut sensor_ids: HashMap<String, PathBuf> = HashMap::new();
    for path in files {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                out.push(Problem::file(&path, format!("cannot read: {e}")));
                continue;
            }
        };
        let checked = check_edge_text(&text, &path);
        out.extend(checked.problems);
        let Some((cfg, map)) = checked.config else {
            continue;
        };
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if cfg.edge_id != stem {
            out.push(map.problem(
                "edge_id",
                format!(
                    "{:?} does not match the file name {stem:?}.toml",
                    cfg.edge_id
                ),
            ));
        }
        if let Some(first) = edge_ids.insert(cfg.edge_id.clone(), path.clone()) {
            out.push(map.problem(
                "edge_id",
                format!(
                    "edge id {:?} is also used in {}",
                    cfg.edge_id,
                    first.display()
                ),
            ));
        }
        if let Some(s) = site {
            if cfg.site != s.site.id {
                out.push(map.problem(
                    "site",
                    format!("{:?} is not this site ({:?})", cfg.site, s.site.id),
                ));
            }
            if let Some(p) = &cfg.point
                && !s.points.iter().any(|x| &x.id == p)
            {
                out.push(map.problem("point", format!("no point {p:?} in {SITE_FILE}")));
            }
            if cfg.mqtt.topic_prefix != s.site.topic_prefix {
                out.push(map.problem(
                    "mqtt.topic_prefix",
                    format!(
                        "{:?} differs from the site's {:?}",
                        cfg.mqtt.topic_prefix, s.site.topic_prefix
                    ),
                ));
            }
        }
        for (ci, cam) in cfg.cameras.iter().enumerate() {
            if let Some(first) = declared_before(&mut camera_ids, &cam.id, &path) {
                out.push(map.problem(
                    format!("cameras[{ci}].id"),
                    format!("camera id {:?} is also used in {}", cam.id, first.display()),
                ));
            }
            if let Some(c) = catalogue {
                for (ri, r) in cam.rules.iter().enumerate() {
                    if let Some(code) = &r.catalogue_item
                        && c.item(code).is_none()
                    {
                        out.push(map.problem(
                            format!("cameras[{ci}].rules[{ri}].catalogue_item"),
                            format!("no item {code:?} in {CATALOGUE_FILE}"),
                        ));
                    }
                }
            }
        }
        for (si, s) in cfg.sensors.iter().enumerate() {
            if let Some(first) = declared_before(&mut sensor_ids, &s.id, &path) {
                out.push(map.problem(
                    format!("sensors[{si}].id"),
                    format!("sensor id {:?} is also used in {}", s.id, first.display()),
                ));
            }
            if let (Some(c), Some(code)) = (catalogue, &s.catalogue_item)
                && c.item(code).is_none()
            {
                out.push(map.problem(
                    format!("sensors[{si}].catalogue_item"),
                    format!("no item {code:?} in {CATALOGUE_FILE}"),
                ));
            }
        }
        edges.push(cfg);
    }
    edges
}

/// The values of one field that must differ between the elements of a list
/// (`departments[].id`, `items[].code`, ...), seen so far.
struct Unique<'a> {
    list: &'static str,
    field: &'static str,
    seen: HashMap<&'a str, usize>,
}

impl<'a> Unique<'a> {
    fn new(list: &'static str, field: &'static str) -> Self {
        Unique {
            list,
            field,
            seen: HashMap::new(),
        }
    }

    /// Notes element `i`'s `value`; reports it at `list[i].field` when an
    /// earlier element had it.
    fn check(&mut self, map: &SourceMap, i: usize, value: &'a str, out: &mut Vec<Problem>) {
        let (list, field) = (self.list, self.field);
        if let Some(first) = self.seen.insert(value, i) {
            out.push(map.problem(
                format!("{list}[{i}].{field}"),
                format!("duplicate {field} {value:?} (also {list}[{first}])"),
            ));
        }
    }
}

/// Notes that the edge file `path` declares `id` (a camera or sensor id,
/// unique across the site) and returns the other file that declared it
/// first, if any; the first file keeps the id.
fn declared_before(ids: &mut HashMap<String, PathBuf>, id: &str, path: &Path) -> Option<PathBuf> {
    match ids.get(id) {
        Some(first) if first != path => Some(first.clone()),
        _ => {
            ids.insert(id.to_owned(), path.to_owned());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_offsets() {
        assert_eq!(parse_utc_offset("+08:00"), Some(480));
        assert_eq!(parse_utc_offset("-03:30"), Some(-210));
        assert_eq!(parse_utc_offset("08:00"), None);
        assert_eq!(parse_utc_offset("+15:00"), None);
    }
}
