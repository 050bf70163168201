//! Box health for telemetry: CPU, memory, disk, uptime, temperature.
//!
//! Read from Linux's `/proc` and `/sys`; anything a box does not have (no
//! thermal zone, a container without `/proc/stat`) is simply left out of the
//! point rather than reported as zero.

use std::path::PathBuf;

use parkwatch_protocol::{FieldValue, Point};

use crate::outbox::OutboxStats;
use crate::telemetry::point;

/// Keeps the previous CPU counters so each sample reports use since the last.
pub struct HealthSampler {
    disk_path: PathBuf,
    last_cpu: Option<(u64, u64)>,
    started: std::time::Instant,
}

impl HealthSampler {
    /// `disk_path`: the filesystem whose free space matters (the outbox's).
    pub fn new(disk_path: PathBuf) -> Self {
        Self {
            disk_path,
            last_cpu: read_cpu(),
            started: std::time::Instant::now(),
        }
    }

    /// One `edge_health` point.
    pub fn sample(&mut self, ts_ms: i64) -> Option<Point> {
        let mut fields = vec![(
            "process_uptime_s",
            FieldValue::U64(self.started.elapsed().as_secs()),
        )];
        if let Some((busy, total)) = read_cpu() {
            if let Some((b0, t0)) = self.last_cpu {
                let dt = total.saturating_sub(t0);
                if dt > 0 {
                    let pct = busy.saturating_sub(b0) as f64 * 100.0 / dt as f64;
                    fields.push(("cpu_percent", FieldValue::F64(pct)));
                }
            }
            self.last_cpu = Some((busy, total));
        }
        if let Some((total_kb, avail_kb)) = read_meminfo() {
            fields.push(("mem_total_bytes", FieldValue::U64(total_kb * 1024)));
            fields.push((
                "mem_used_bytes",
                FieldValue::U64(total_kb.saturating_sub(avail_kb) * 1024),
            ));
        }
        if let Some(rss_kb) = read_rss_kb() {
            fields.push(("process_rss_bytes", FieldValue::U64(rss_kb * 1024)));
        }
        if let Some(up) = read_uptime() {
            fields.push(("uptime_s", FieldValue::F64(up)));
        }
        if let Some((free, total)) = disk_space(&self.disk_path) {
            fields.push(("disk_free_bytes", FieldValue::U64(free)));
            fields.push(("disk_total_bytes", FieldValue::U64(total)));
        }
        if let Some(t) = read_temperature() {
            fields.push(("temperature_c", FieldValue::F64(t)));
        }
        Some(point("edge_health", ts_ms, &[], fields))
    }
}

/// One `outbox` point from the outbox's own statistics.
pub fn outbox_point(stats: &OutboxStats, sensor_points_dropped: u64, ts_ms: i64) -> Point {
    point(
        "outbox",
        ts_ms,
        &[],
        vec![
            ("pending_records", FieldValue::U64(stats.pending_records)),
            ("pending_bytes", FieldValue::U64(stats.pending_bytes)),
            (
                "oldest_pending_age_ms",
                FieldValue::U64(stats.oldest_pending_age_ms),
            ),
            (
                "dropped_telemetry_records",
                FieldValue::U64(stats.dropped_telemetry_records),
            ),
            (
                "dropped_telemetry_bytes",
                FieldValue::U64(stats.dropped_telemetry_bytes),
            ),
            ("full_events", FieldValue::U64(stats.full_events)),
            (
                "sensor_points_dropped",
                FieldValue::U64(sensor_points_dropped),
            ),
        ],
    )
}

fn read_cpu() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let vals: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    if vals.len() < 4 {
        return None;
    }
    let total: u64 = vals.iter().sum();
    // idle + iowait
    let idle = vals[3] + vals.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

fn read_meminfo() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("MemTotal:")?, field("MemAvailable:")?))
}

/// Resident memory of this process, in KiB.
pub fn read_rss_kb() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn read_uptime() -> Option<f64> {
    std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn read_temperature() -> Option<f64> {
    let dir = std::fs::read_dir("/sys/class/thermal").ok()?;
    let mut hottest: Option<f64> = None;
    for entry in dir.flatten() {
        let p = entry.path().join("temp");
        if let Some(milli) = std::fs::read_to_string(&p)
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
        {
            let c = milli / 1000.0;
            hottest = Some(hottest.map_or(c, |h: f64| h.max(c)));
        }
    }
    hottest
}

fn disk_space(path: &std::path::Path) -> Option<(u64, u64)> {
    let mut p = path.to_path_buf();
    // The outbox directory may not exist yet: measure its nearest parent.
    while !p.exists() {
        p = p.parent()?.to_path_buf();
    }
    let st = rustix::fs::statvfs(&p).ok()?;
    Some((
        st.f_bavail.saturating_mul(st.f_frsize),
        st.f_blocks.saturating_mul(st.f_frsize),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_what_linux_offers() {
        let mut s = HealthSampler::new(std::env::temp_dir());
        let p = s.sample(7).unwrap();
        assert_eq!(p.measurement, "edge_health");
        let has = |k: &str| p.fields.iter().any(|(n, _)| n == k);
        assert!(has("process_uptime_s"));
        assert!(has("mem_total_bytes"), "{:?}", p.fields);
        assert!(has("disk_free_bytes"), "{:?}", p.fields);
        assert!(has("process_rss_bytes"));
    }
}
