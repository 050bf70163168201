//! Telemetry points: what the box measures about itself, its cameras and its
//! sensors, gathered into batches every `telemetry.interval_secs`.
//!
//! Measurements (the schema is documented in docs/timeseries.md; ingest adds
//! the `site` and `edge` tags):
//! - `camera_stream`, tag `camera`: cumulative frame counters, reconnects,
//!   watchdog events, inference time, and `online` (1 streaming, 0 not).
//! - `edge_health`: CPU and memory use, disk free, uptime, temperature where
//!   the box has a thermal sensor.
//! - `outbox`: pending records and bytes, oldest pending age, dropped.
//! - `sensor`, tags `sensor` and `kind`: Modbus readings (pushed by the poller).
//!
//! Tags carry only ids from configuration, never free text, so the series
//! count stays bounded by the configuration.

use std::sync::Arc;
use std::sync::Mutex;

use parkwatch_protocol::{CameraState, FieldValue, Point};

use crate::camera::CameraStats;

/// Points produced between batches by push-style sources (sensors).
/// Bounded: past `cap` points the oldest are dropped and counted.
#[derive(Debug)]
pub struct PointBuffer {
    inner: Mutex<(Vec<Point>, u64)>,
    cap: usize,
}

impl PointBuffer {
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new((Vec::new(), 0)),
            cap,
        })
    }

    pub fn push(&self, p: Point) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.0.len() >= self.cap {
            g.0.remove(0);
            g.1 += 1;
        }
        g.0.push(p);
    }

    /// Takes every buffered point and the count dropped since the last take.
    pub fn take(&self) -> (Vec<Point>, u64) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let dropped = std::mem::take(&mut g.1);
        (std::mem::take(&mut g.0), dropped)
    }
}

/// Builds a point from tag and field lists.
pub fn point(
    measurement: &str,
    ts_ms: i64,
    tags: &[(&str, &str)],
    fields: Vec<(&str, FieldValue)>,
) -> Point {
    Point {
        measurement: measurement.to_owned(),
        ts_ms,
        tags: tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    }
}

/// One `camera_stream` point per camera.
pub fn camera_points(cameras: &[Arc<CameraStats>], ts_ms: i64) -> Vec<Point> {
    cameras
        .iter()
        .map(|c| {
            let get = CameraStats::get;
            let detected = get(&c.frames_detected);
            let inference_ms = if detected == 0 {
                0.0
            } else {
                get(&c.inference_us_total) as f64 / detected as f64 / 1000.0
            };
            let (w, h) = c.resolution();
            point(
                "camera_stream",
                ts_ms,
                &[("camera", &c.id)],
                vec![
                    ("frames_received", FieldValue::U64(get(&c.frames_received))),
                    ("frames_decoded", FieldValue::U64(get(&c.frames_decoded))),
                    ("frames_dropped", FieldValue::U64(get(&c.frames_dropped))),
                    ("decode_errors", FieldValue::U64(get(&c.decode_errors))),
                    ("frames_sampled", FieldValue::U64(get(&c.frames_sampled))),
                    ("frames_detected", FieldValue::U64(detected)),
                    ("detect_skipped", FieldValue::U64(get(&c.detect_skipped))),
                    ("bytes_received", FieldValue::U64(get(&c.bytes_received))),
                    ("reconnects", FieldValue::U64(get(&c.reconnects))),
                    ("stale_events", FieldValue::U64(get(&c.stale_events))),
                    ("alarms_raised", FieldValue::U64(get(&c.alarms_raised))),
                    ("inference_ms", FieldValue::F64(inference_ms)),
                    (
                        "online",
                        FieldValue::I64(i64::from(c.state() == CameraState::Streaming)),
                    ),
                    ("width", FieldValue::U64(w)),
                    ("height", FieldValue::U64(h)),
                ],
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_points_carry_counters_and_tag() {
        let c = CameraStats::new("cam-1", 0);
        c.note_frame(1000, 5);
        c.note_frame(500, 6);
        CameraStats::bump(&c.frames_decoded);
        let pts = camera_points(&[c], 42);
        assert_eq!(pts.len(), 1);
        let p = &pts[0];
        assert_eq!(p.measurement, "camera_stream");
        assert_eq!(p.ts_ms, 42);
        assert_eq!(p.tags, vec![("camera".to_owned(), "cam-1".to_owned())]);
        let field = |k: &str| {
            p.fields
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(field("frames_received"), Some(FieldValue::U64(2)));
        assert_eq!(field("bytes_received"), Some(FieldValue::U64(1500)));
        assert_eq!(field("frames_decoded"), Some(FieldValue::U64(1)));
        assert_eq!(field("online"), Some(FieldValue::I64(0)));
    }

    #[test]
    fn point_buffer_is_bounded_and_counts_drops() {
        let b = PointBuffer::new(2);
        for i in 0..5 {
            b.push(point(
                "sensor",
                i,
                &[],
                vec![("value", FieldValue::F64(i as f64))],
            ));
        }
        let (pts, dropped) = b.take();
        assert_eq!(pts.len(), 2);
        assert_eq!(pts[0].ts_ms, 3);
        assert_eq!(dropped, 3);
        assert_eq!(b.take().0.len(), 0);
    }
}
