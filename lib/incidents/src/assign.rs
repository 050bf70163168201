//! Grid assignment: from a location to the unit grid (point in polygon),
//! its community and responsibility grids, and the grid worker on duty.
//!
//! Rules, in order:
//! 1. A location inside a unit grid gets that grid, its ancestors, and the
//!    first worker with the `grid_worker` role responsible for it (assigned
//!    to the unit grid itself before those assigned to its community); a
//!    grid without one falls back to any responsible worker.
//! 2. A location outside every unit grid is not dropped: it goes to the
//!    nearest responsibility grid (distance to its boundary) and to that
//!    grid's supervisor, the first worker with the `inspector` role (else
//!    `community_lead`) assigned inside it; `outside_grid` is set.
//! 3. No location at all: no grid, no worker, `outside_grid` set; a
//!    supervisor sees it with the `outside_grid` filter.
//!
//! The site has no duty rota, so "on duty" means the first responsible
//! worker in `workers.toml` order; that keeps assignment deterministic.

use parkwatch_config::{Grid, GridLevel, Site, WorkerRole};

use super::model::LonLat;

/// Where an incident belongs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    /// Unit grid code.
    pub unit: Option<String>,
    /// Community grid code.
    pub community: Option<String>,
    /// Responsibility grid code.
    pub responsibility: Option<String>,
    /// Worker id: on duty for the unit grid, or the responsibility grid's supervisor.
    pub worker: Option<String>,
    /// The location lies outside every unit grid (or is unknown).
    pub outside: bool,
}

/// Assigns a location (see the module rules).
pub fn assign(site: &Site, loc: Option<LonLat>) -> Assignment {
    let Some(loc) = loc.filter(|l| l.lon.is_finite() && l.lat.is_finite()) else {
        return Assignment {
            outside: true,
            ..Assignment::default()
        };
    };
    if let Some(unit) = site.unit_grid_at([loc.lon, loc.lat]) {
        let chain = site.grid_chain(&unit.code);
        let level = |l: GridLevel| chain.iter().find(|g| g.level == l).map(|g| g.code.clone());
        let workers = site.workers_for_grid(&unit.code);
        let worker = workers
            .iter()
            .find(|w| w.has_role(WorkerRole::GridWorker))
            .or_else(|| workers.first())
            .map(|w| w.id.clone());
        return Assignment {
            unit: Some(unit.code.clone()),
            community: level(GridLevel::Community),
            responsibility: level(GridLevel::Responsibility),
            worker,
            outside: false,
        };
    }
    let nearest = site
        .grids
        .iter()
        .filter(|g| g.level == GridLevel::Responsibility)
        .map(|g| (distance_to_boundary(g, loc), g))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, g)| g);
    let Some(resp) = nearest else {
        return Assignment {
            outside: true,
            ..Assignment::default()
        };
    };
    Assignment {
        unit: None,
        community: None,
        responsibility: Some(resp.code.clone()),
        worker: supervisor_of(site, &resp.code),
        outside: true,
    }
}

/// The supervisor of a responsibility grid: the first inspector (else
/// community lead) assigned to a grid inside it.
pub fn supervisor_of(site: &Site, responsibility: &str) -> Option<String> {
    let inside = |code: &str| {
        site.grid_chain(code)
            .iter()
            .any(|g| g.code == responsibility)
    };
    let in_grid: Vec<_> = site
        .workers
        .iter()
        .filter(|w| w.grids.iter().any(|g| inside(g)))
        .collect();
    in_grid
        .iter()
        .find(|w| w.has_role(WorkerRole::Inspector))
        .or_else(|| {
            in_grid
                .iter()
                .find(|w| w.has_role(WorkerRole::CommunityLead))
        })
        .map(|w| w.id.clone())
}

/// Distance from `p` to the polygon's boundary, in metres (equirectangular
/// approximation, good to well under 1 % at park scale).
fn distance_to_boundary(g: &Grid, p: LonLat) -> f64 {
    let k = p.lat.to_radians().cos();
    let m_per_deg = 111_320.0;
    let xy = |q: [f64; 2]| ((q[0] - p.lon) * k * m_per_deg, (q[1] - p.lat) * m_per_deg);
    let n = g.polygon.len();
    (0..n)
        .map(|i| {
            let a = xy(g.polygon[i]);
            let b = xy(g.polygon[(i + 1) % n]);
            segment_distance(a, b)
        })
        .fold(f64::INFINITY, f64::min)
}

/// Distance from the origin to segment a-b.
fn segment_distance(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (-(a.0 * dx + a.1 * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (x, y) = (a.0 + t * dx, a.1 + t * dy);
    (x * x + y * y).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_distance_is_euclidean() {
        assert!((segment_distance((-1.0, 1.0), (1.0, 1.0)) - 1.0).abs() < 1e-12);
        assert!((segment_distance((3.0, 4.0), (3.0, 4.0)) - 5.0).abs() < 1e-12);
        assert!((segment_distance((1.0, 0.0), (2.0, 0.0)) - 1.0).abs() < 1e-12);
    }
}
