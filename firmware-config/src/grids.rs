//! Management grids (`grids.geojson`): responsibility grids, community
//! grids inside them, and unit grids (万米单元网格) inside those.
//!
//! The file is a GeoJSON FeatureCollection (RFC 7946, WGS 84 lon/lat).
//! Each feature is a `Polygon` with one ring (holes are not supported) and
//! properties `{code, level, parent, name}`. Codes follow GB/T 30428.1: the
//! 6-digit county code, then 3 digits per responsibility grid (the street
//! level), 3 per community grid and 2 per unit grid, so a unit code has 14
//! digits and starts with its community's code.
//!
//! The site check (`check_site`) reports every fault with the feature's line (write one
//! feature per line for precise lines) and a key like
//! `features[12].properties.parent`. After it passes: codes are unique and
//! well-formed, each parent exists one level up, every polygon is simple
//! and every child polygon lies inside its parent (vertices and edge
//! midpoints inside or within [`BOUNDARY_EPS_DEG`] of the boundary, so
//! shared edges are fine).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::diag::Problem;
use crate::geometry::{Location, Point, check_simple, check_within, locate};

/// Tolerance for "on the boundary", in degrees (about 2 cm): coordinates
/// written with 7 decimals are rounded by up to 5e-8.
pub const BOUNDARY_EPS_DEG: f64 = 2e-7;

/// The level of a grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GridLevel {
    /// 责任网格: the top level; no parent.
    Responsibility,
    /// 社区网格: inside a responsibility grid.
    Community,
    /// 单元网格: inside a community grid.
    Unit,
}

impl GridLevel {
    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            GridLevel::Responsibility => "responsibility",
            GridLevel::Community => "community",
            GridLevel::Unit => "unit",
        }
    }

    /// Digits of a code at this level.
    pub fn code_len(&self) -> usize {
        match self {
            GridLevel::Responsibility => 9,
            GridLevel::Community => 12,
            GridLevel::Unit => 14,
        }
    }

    /// The level a parent must have.
    pub fn parent_level(&self) -> Option<GridLevel> {
        match self {
            GridLevel::Responsibility => None,
            GridLevel::Community => Some(GridLevel::Responsibility),
            GridLevel::Unit => Some(GridLevel::Community),
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "responsibility" => Some(GridLevel::Responsibility),
            "community" => Some(GridLevel::Community),
            "unit" => Some(GridLevel::Unit),
            _ => None,
        }
    }
}

/// One grid.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Grid {
    /// GB/T 30428.1-style code, unique.
    pub code: String,
    /// Level.
    pub level: GridLevel,
    /// Code of the enclosing grid; none for responsibility grids.
    pub parent: Option<String>,
    /// Name.
    pub name: String,
    /// Outer ring as `[lon, lat]`, without the closing repeat of the first point.
    pub polygon: Vec<Point>,
    /// Index of the feature in the file's `features` array.
    pub feature: usize,
    /// 1-based line of the feature in the file.
    pub line: usize,
}

impl Grid {
    /// Whether `[lon, lat]` is inside the grid or on its boundary.
    pub fn contains(&self, p: Point) -> bool {
        locate(p, &self.polygon, BOUNDARY_EPS_DEG) != Location::Outside
    }

    /// Bounding box `[min_lon, min_lat, max_lon, max_lat]`.
    pub fn bbox(&self) -> [f64; 4] {
        self.polygon.iter().fold(
            [
                f64::INFINITY,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::NEG_INFINITY,
            ],
            |b, p| {
                [
                    b[0].min(p[0]),
                    b[1].min(p[1]),
                    b[2].max(p[0]),
                    b[3].max(p[1]),
                ]
            },
        )
    }
}

/// Reads and checks `grids.geojson`. Returns the grids that could be read
/// (possibly with faults) and every problem found; `county_code` (from
/// `site.toml`), when known, must prefix every code.
pub(crate) fn check_grids(path: &Path, county_code: Option<&str>) -> (Vec<Grid>, Vec<Problem>) {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return (
                Vec::new(),
                vec![Problem::file(path, format!("cannot read: {e}"))],
            );
        }
    };
    let mut c = Checker {
        file: path.to_path_buf(),
        problems: Vec::new(),
    };
    let grids = c.parse(&text, county_code);
    c.relations(&grids);
    (grids, c.problems)
}

struct Checker {
    file: PathBuf,
    problems: Vec<Problem>,
}

impl Checker {
    fn at(&mut self, line: usize, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.clone(),
            line,
            key: key.into(),
            message: message.into(),
        });
    }

    fn parse(&mut self, text: &str, county_code: Option<&str>) -> Vec<Grid> {
        let root: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                self.at(e.line(), "", format!("JSON syntax: {e}"));
                return Vec::new();
            }
        };
        if root.get("type").and_then(Value::as_str) != Some("FeatureCollection") {
            self.at(1, "type", "must be \"FeatureCollection\"");
        }
        let Some(features) = root.get("features").and_then(Value::as_array) else {
            self.at(1, "features", "must be an array of features");
            return Vec::new();
        };
        let lines = feature_lines(text);
        let mut grids = Vec::with_capacity(features.len());
        for (i, f) in features.iter().enumerate() {
            let line = lines.get(i).copied().unwrap_or(0);
            if let Some(g) = self.feature(i, line, f, county_code) {
                grids.push(g);
            }
        }
        grids
    }

    fn feature(&mut self, i: usize, line: usize, f: &Value, county: Option<&str>) -> Option<Grid> {
        let key = format!("features[{i}]");
        let Some(obj) = f.as_object() else {
            self.at(line, key, "must be a Feature object");
            return None;
        };
        if obj.get("type").and_then(Value::as_str) != Some("Feature") {
            self.at(line, format!("{key}.type"), "must be \"Feature\"");
        }
        let props = self.properties(&key, line, obj.get("properties"), county);
        let polygon = self.geometry(&key, line, obj.get("geometry"));
        let (code, level, parent, name) = props?;
        Some(Grid {
            code,
            level,
            parent,
            name,
            polygon: polygon.unwrap_or_default(),
            feature: i,
            line,
        })
    }

    fn properties(
        &mut self,
        key: &str,
        line: usize,
        props: Option<&Value>,
        county: Option<&str>,
    ) -> Option<(String, GridLevel, Option<String>, String)> {
        let pk = format!("{key}.properties");
        let Some(props) = props.and_then(Value::as_object) else {
            self.at(
                line,
                pk,
                "must be an object with code, level, parent and name",
            );
            return None;
        };
        for k in props.keys() {
            if !matches!(k.as_str(), "code" | "level" | "parent" | "name") {
                self.at(
                    line,
                    format!("{pk}.{k}"),
                    format!("unknown property `{k}`, expected `code`, `level`, `parent` or `name`"),
                );
            }
        }
        let string = |c: &mut Self, field: &str| -> Option<String> {
            match props.get(field) {
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => {
                    c.at(
                        line,
                        format!("{pk}.{field}"),
                        format!("must be a string, found {other}"),
                    );
                    None
                }
                None => {
                    c.at(
                        line,
                        format!("{pk}.{field}"),
                        format!("missing property `{field}`"),
                    );
                    None
                }
            }
        };
        let code = string(self, "code");
        let name = string(self, "name");
        let level = match string(self, "level") {
            Some(l) => match GridLevel::parse(&l) {
                Some(l) => Some(l),
                None => {
                    self.at(
                        line,
                        format!("{pk}.level"),
                        format!("unknown level {l:?}, expected responsibility, community or unit"),
                    );
                    None
                }
            },
            None => None,
        };
        let parent = match props.get("parent") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.at(
                    line,
                    format!("{pk}.parent"),
                    format!("must be a grid code or null, found {other}"),
                );
                None
            }
        };
        let (code, level, name) = (code?, level?, name?);
        if code.len() != level.code_len() || !code.bytes().all(|b| b.is_ascii_digit()) {
            self.at(
                line,
                format!("{pk}.code"),
                format!(
                    "{code:?}: a {} grid code has {} digits",
                    level.as_str(),
                    level.code_len()
                ),
            );
        } else if let Some(c) = county
            && !code.starts_with(c)
        {
            self.at(
                line,
                format!("{pk}.code"),
                format!("{code:?} does not start with the site's county code {c:?}"),
            );
        }
        Some((code, level, parent, name))
    }

    fn geometry(&mut self, key: &str, line: usize, geom: Option<&Value>) -> Option<Vec<Point>> {
        let gk = format!("{key}.geometry");
        let Some(geom) = geom.and_then(Value::as_object) else {
            self.at(line, gk, "must be a Polygon geometry");
            return None;
        };
        if geom.get("type").and_then(Value::as_str) != Some("Polygon") {
            self.at(line, format!("{gk}.type"), "must be \"Polygon\"");
            return None;
        }
        let ck = format!("{gk}.coordinates");
        let Some(rings) = geom.get("coordinates").and_then(Value::as_array) else {
            self.at(line, ck, "must be an array of linear rings");
            return None;
        };
        if rings.len() != 1 {
            self.at(
                line,
                ck.clone(),
                format!(
                    "has {} rings; exactly one (no holes) is supported",
                    rings.len()
                ),
            );
        }
        let rk = format!("{ck}[0]");
        let Some(ring) = rings.first().and_then(Value::as_array) else {
            self.at(line, rk, "must be an array of [lon, lat] positions");
            return None;
        };
        let mut pts = Vec::with_capacity(ring.len());
        for (j, p) in ring.iter().enumerate() {
            let xy = p.as_array().and_then(|a| {
                let lon = a.first()?.as_f64()?;
                let lat = a.get(1)?.as_f64()?;
                (a.len() <= 3).then_some([lon, lat])
            });
            match xy {
                Some([lon, lat])
                    if (-180.0..=180.0).contains(&lon) && (-90.0..=90.0).contains(&lat) =>
                {
                    pts.push([lon, lat]);
                }
                Some([lon, lat]) => {
                    self.at(
                        line,
                        format!("{rk}[{j}]"),
                        format!("[{lon}, {lat}] is not a lon/lat position"),
                    );
                    return None;
                }
                None => {
                    self.at(line, format!("{rk}[{j}]"), "must be a [lon, lat] position");
                    return None;
                }
            }
        }
        if pts.len() < 4 || pts.first() != pts.last() {
            self.at(
                line,
                rk,
                "a linear ring needs at least 4 positions and must end where it starts",
            );
            return None;
        }
        pts.pop();
        if let Err(e) = check_simple(&pts) {
            self.at(line, rk, format!("not a simple polygon: {e}"));
            return None;
        }
        Some(pts)
    }

    fn relations(&mut self, grids: &[Grid]) {
        let mut by_code: HashMap<&str, &Grid> = HashMap::new();
        for g in grids {
            if let Some(first) = by_code.get(g.code.as_str()) {
                self.at(
                    g.line,
                    format!("features[{}].properties.code", g.feature),
                    format!("duplicate code {:?} (also on line {})", g.code, first.line),
                );
            } else {
                by_code.insert(&g.code, g);
            }
        }
        for g in grids {
            let key = format!("features[{}].properties.parent", g.feature);
            match (g.level.parent_level(), &g.parent) {
                (None, None) => {}
                (None, Some(p)) => self.at(
                    g.line,
                    key,
                    format!("a responsibility grid has no parent, found {p:?}"),
                ),
                (Some(want), None) => self.at(
                    g.line,
                    key,
                    format!(
                        "a {} grid needs a {} parent",
                        g.level.as_str(),
                        want.as_str()
                    ),
                ),
                (Some(want), Some(p)) => match by_code.get(p.as_str()) {
                    None => self.at(g.line, key, format!("no grid has code {p:?}")),
                    Some(parent) if parent.level != want => self.at(
                        g.line,
                        key,
                        format!(
                            "{p:?} is a {} grid; a {} grid's parent must be a {} grid",
                            parent.level.as_str(),
                            g.level.as_str(),
                            want.as_str()
                        ),
                    ),
                    Some(parent) => {
                        if !g.code.starts_with(p.as_str()) {
                            self.at(
                                g.line,
                                format!("features[{}].properties.code", g.feature),
                                format!("{:?} does not start with its parent's code {p:?}", g.code),
                            );
                        }
                        if !g.polygon.is_empty()
                            && !parent.polygon.is_empty()
                            && let Err(v) =
                                check_within(&g.polygon, &parent.polygon, BOUNDARY_EPS_DEG)
                        {
                            let q = g.polygon[v];
                            self.at(
                                g.line,
                                format!("features[{}].geometry.coordinates[0][{v}]", g.feature),
                                format!(
                                    "the polygon leaves its parent {p:?} (line {}) near [{:.7}, {:.7}]",
                                    parent.line, q[0], q[1]
                                ),
                            );
                        }
                    }
                },
            }
        }
    }
}

/// 1-based lines where each element of the root's `features` array starts.
fn feature_lines(text: &str) -> Vec<usize> {
    let mut lines = Vec::new();
    let mut line = 1;
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut last_key_at_root = String::new();
    let mut current = String::new();
    let mut in_features = false;
    let mut after_string = false;
    for ch in text.chars() {
        if ch == '\n' {
            line += 1;
        }
        if in_string {
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_string = false;
                after_string = true;
                continue;
            }
            if depth == 1 {
                current.push(ch);
            }
            continue;
        }
        match ch {
            '"' => {
                in_string = true;
                current.clear();
            }
            ':' if after_string && depth == 1 => last_key_at_root = std::mem::take(&mut current),
            '{' | '[' => {
                if depth == 1 && ch == '[' && last_key_at_root == "features" {
                    in_features = true;
                } else if depth == 2 && in_features && ch == '{' {
                    lines.push(line);
                }
                depth += 1;
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                if depth == 1 {
                    in_features = false;
                }
            }
            _ => {}
        }
        if !ch.is_whitespace() {
            after_string = false;
        }
    }
    lines
}
