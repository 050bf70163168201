//! Evaluation (综合评价): per grid, department and worker over a period.
//!
//! The population is every incident *reported* in `[from_ms, to_ms)`.
//! For each group:
//!
//! | figure | definition |
//! | --- | --- |
//! | reported | incidents in the population |
//! | filed | of those, filed as cases (including any cancelled after filing) |
//! | closed | of those, closed |
//! | closure_rate | closed / filed |
//! | on_time_rate | closed without being overdue / closed |
//! | rework_rate | sent back for rework at least once / handled at least once |
//! | mean_handling_secs | mean of (closed - first dispatched) over closed cases |
//!
//! A rate whose denominator is 0 is `null`. Groups: the grid at the
//! requested level (`unit`, `community` or `responsibility`), the
//! department (the one dispatched to, else the catalogue's), and the
//! worker (the one dispatched to, else the grid worker on duty); incidents
//! without one count under `"none"`. Computed in Rust from one query, so
//! both backends give the same figures.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row;
#[cfg(feature = "openapi")]
use utoipa::ToSchema;

use super::model::{AssigneeKind, Status};
use super::service::{IncidentError, Incidents};
use super::store::DbContext;

/// The figures of one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct StatsRow {
    /// Grid code, department id or worker id (`"none"` for incidents without one).
    pub key: String,
    /// Its name, when known.
    pub name: Option<String>,
    /// Incidents reported in the period.
    pub reported: i64,
    /// Of those, filed.
    pub filed: i64,
    /// Of those, closed.
    pub closed: i64,
    /// Of those, closed and never overdue.
    pub closed_on_time: i64,
    /// Of those, handled at least once.
    pub handled: i64,
    /// Of those, sent back for rework at least once.
    pub reworked: i64,
    /// closed / filed.
    pub closure_rate: Option<f64>,
    /// closed_on_time / closed.
    pub on_time_rate: Option<f64>,
    /// reworked / handled.
    pub rework_rate: Option<f64>,
    /// Mean seconds from first dispatch to close, over closed cases.
    pub mean_handling_secs: Option<f64>,
}

/// `GET /api/v1/stats`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Stats {
    /// Period start (inclusive).
    pub from_ms: i64,
    /// Period end (exclusive).
    pub to_ms: i64,
    /// Grid level of `grids`.
    pub grid_level: String,
    /// All incidents of the period.
    pub total: StatsRow,
    /// Per grid.
    pub grids: Vec<StatsRow>,
    /// Per department.
    pub departments: Vec<StatsRow>,
    /// Per worker.
    pub workers: Vec<StatsRow>,
}

/// The facts of one incident that the figures need.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    /// Status.
    pub status: Status,
    /// Filed at all.
    pub filed: bool,
    /// Handled at least once.
    pub handled: bool,
    /// Overdue.
    pub overdue: bool,
    /// Times sent back.
    pub rework_count: i64,
    /// First dispatch.
    pub dispatched_at_ms: Option<i64>,
    /// Close.
    pub closed_at_ms: Option<i64>,
}

#[derive(Debug, Default, Clone)]
struct Acc {
    reported: i64,
    filed: i64,
    closed: i64,
    on_time: i64,
    handled: i64,
    reworked: i64,
    handling_ms: i128,
    handling_n: i64,
}

impl Acc {
    fn add(&mut self, f: &Fact) {
        self.reported += 1;
        self.filed += i64::from(f.filed);
        self.handled += i64::from(f.handled);
        self.reworked += i64::from(f.rework_count > 0);
        if f.status == Status::Closed {
            self.closed += 1;
            self.on_time += i64::from(!f.overdue);
            if let (Some(d), Some(c)) = (f.dispatched_at_ms, f.closed_at_ms) {
                self.handling_ms += i128::from(c - d);
                self.handling_n += 1;
            }
        }
    }

    fn row(&self, key: String, name: Option<String>) -> StatsRow {
        let rate = |a: i64, b: i64| (b > 0).then(|| a as f64 / b as f64);
        StatsRow {
            key,
            name,
            reported: self.reported,
            filed: self.filed,
            closed: self.closed,
            closed_on_time: self.on_time,
            handled: self.handled,
            reworked: self.reworked,
            closure_rate: rate(self.closed, self.filed),
            on_time_rate: rate(self.on_time, self.closed),
            rework_rate: rate(self.reworked, self.handled),
            mean_handling_secs: (self.handling_n > 0)
                .then(|| self.handling_ms as f64 / self.handling_n as f64 / 1000.0),
        }
    }
}

/// Grid level names accepted by [`Incidents::stats`].
pub const GRID_LEVELS: &[&str] = &["unit", "community", "responsibility"];

impl Incidents {
    /// The figures for incidents reported in `[from_ms, to_ms)`, with grids
    /// at `grid_level` (one of [`GRID_LEVELS`]).
    pub async fn stats(
        &self,
        from_ms: i64,
        to_ms: i64,
        grid_level: &str,
    ) -> Result<Stats, IncidentError> {
        let b = self.store.backend();
        let grid_col = match grid_level {
            "unit" => "unit_grid",
            "responsibility" => "responsibility_grid",
            _ => "community_grid",
        };
        let sql = format!(
            "SELECT status, filed_at_ms, handled_at_ms, overdue, rework_count, dispatched_at_ms, closed_at_ms, department, assignee_kind, assignee, grid_worker, {grid_col} AS grid FROM incidents WHERE created_at_ms >= $1 AND created_at_ms < $2"
        );
        let mut conn = self.store.reader().acquire().await.ctx(b, "connecting")?;
        let rows = sqlx::query(&sql)
            .bind(from_ms)
            .bind(to_ms)
            .fetch_all(&mut *conn)
            .await
            .ctx(b, "reading incidents for stats")?;
        let mut total = Acc::default();
        let mut grids: BTreeMap<String, Acc> = BTreeMap::new();
        let mut depts: BTreeMap<String, Acc> = BTreeMap::new();
        let mut workers: BTreeMap<String, Acc> = BTreeMap::new();
        for r in &rows {
            let s = |c: &str| -> Result<Option<String>, IncidentError> {
                Ok(r.try_get::<Option<String>, _>(c)
                    .ctx(b, format!("stats column {c}"))?)
            };
            let i = |c: &str| -> Result<Option<i64>, IncidentError> {
                Ok(r.try_get::<Option<i64>, _>(c)
                    .ctx(b, format!("stats column {c}"))?)
            };
            let status: Status = s("status")?
                .unwrap_or_default()
                .parse()
                .map_err(|m: String| IncidentError::Conflict(format!("corrupt status: {m}")))?;
            let fact = Fact {
                status,
                filed: i("filed_at_ms")?.is_some(),
                handled: i("handled_at_ms")?.is_some(),
                overdue: i("overdue")?.unwrap_or(0) != 0,
                rework_count: i("rework_count")?.unwrap_or(0),
                dispatched_at_ms: i("dispatched_at_ms")?,
                closed_at_ms: i("closed_at_ms")?,
            };
            let assignee_kind: Option<AssigneeKind> =
                s("assignee_kind")?.and_then(|k| k.parse().ok());
            let assignee = s("assignee")?;
            let dept = match (assignee_kind, &assignee) {
                (Some(AssigneeKind::Department), Some(a)) => a.clone(),
                _ => s("department")?.unwrap_or_else(|| "none".into()),
            };
            let worker = match (assignee_kind, &assignee) {
                (Some(AssigneeKind::Worker), Some(a)) => a.clone(),
                _ => s("grid_worker")?.unwrap_or_else(|| "none".into()),
            };
            let grid = s("grid")?.unwrap_or_else(|| "none".into());
            total.add(&fact);
            grids.entry(grid).or_default().add(&fact);
            depts.entry(dept).or_default().add(&fact);
            workers.entry(worker).or_default().add(&fact);
        }
        let site = &self.site;
        Ok(Stats {
            from_ms,
            to_ms,
            grid_level: grid_col.trim_end_matches("_grid").to_owned(),
            total: total.row("total".into(), None),
            grids: grids
                .into_iter()
                .map(|(k, a)| {
                    let name = site.grid(&k).map(|g| g.name.clone());
                    a.row(k, name)
                })
                .collect(),
            departments: depts
                .into_iter()
                .map(|(k, a)| {
                    let name = site.department(&k).map(|d| d.name.clone());
                    a.row(k, name)
                })
                .collect(),
            workers: workers
                .into_iter()
                .map(|(k, a)| {
                    let name = site
                        .workers
                        .iter()
                        .find(|w| w.id == k)
                        .map(|w| w.name.clone());
                    a.row(k, name)
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(status: Status, overdue: bool, rework: i64, handling_ms: Option<i64>) -> Fact {
        Fact {
            status,
            filed: status != Status::Reported,
            handled: matches!(status, Status::Handled | Status::Closed),
            overdue,
            rework_count: rework,
            dispatched_at_ms: handling_ms.map(|_| 1_000),
            closed_at_ms: handling_ms.map(|h| 1_000 + h),
        }
    }

    #[test]
    fn rates_follow_their_definitions() {
        let mut a = Acc::default();
        a.add(&fact(Status::Closed, false, 0, Some(60_000)));
        a.add(&fact(Status::Closed, true, 1, Some(180_000)));
        a.add(&fact(Status::Dispatched, false, 0, None));
        a.add(&fact(Status::Reported, false, 0, None));
        let r = a.row("g".into(), None);
        assert_eq!(
            (r.reported, r.filed, r.closed, r.closed_on_time),
            (4, 3, 2, 1)
        );
        assert_eq!(r.closure_rate, Some(2.0 / 3.0));
        assert_eq!(r.on_time_rate, Some(0.5));
        assert_eq!(r.rework_rate, Some(0.5));
        assert_eq!(r.mean_handling_secs, Some(120.0));
        let empty = Acc::default().row("e".into(), None);
        assert_eq!(empty.closure_rate, None);
    }
}
