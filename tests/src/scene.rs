//! Zones and rules drawn on the scene of the test video (`vtest`, an
//! elevated view of campus paths), as `[[cameras.zones]]` and
//! `[[cameras.rules]]` TOML to append under a `[[cameras]]` table: the paved
//! walkway people cross, the bay where a white van stands all along, and a
//! corner of lawn nobody walks on. Coordinates are fractions of the frame,
//! so they hold for every transcode of the clip.

/// The paved walkway people cross.
pub const WALKWAY: &str = r#"
  [[cameras.zones]]
  id = "walkway"
  polygon = [[0.0, 0.33], [0.40, 0.33], [0.62, 0.22], [0.95, 0.15], [1.0, 0.35], [1.0, 0.86], [0.70, 0.72], [0.45, 0.55], [0.20, 0.44], [0.0, 0.42]]
"#;

/// The bay where the van is parked.
pub const VAN_BAY: &str = r#"
  [[cameras.zones]]
  id = "van-bay"
  polygon = [[0.82, 0.10], [0.97, 0.10], [0.97, 0.22], [0.82, 0.22]]
"#;

/// A corner of lawn nobody walks on.
pub const FAR_LAWN: &str = r#"
  [[cameras.zones]]
  id = "far-lawn"
  polygon = [[0.60, 0.86], [0.98, 0.93], [0.98, 0.99], [0.60, 0.99]]
"#;

/// People on the walkway (rule `walkway-intrusion`).
pub const WALKWAY_INTRUSION: &str = r#"
  [[cameras.rules]]
  id = "walkway-intrusion"
  kind = "intrusion"
  zone = "walkway"
  classes = ["person"]
"#;

/// People on the far lawn (rule `far-lawn-intrusion`): never raised.
pub const FAR_LAWN_INTRUSION: &str = r#"
  [[cameras.rules]]
  id = "far-lawn-intrusion"
  kind = "intrusion"
  zone = "far-lawn"
  classes = ["person"]
"#;

/// A vehicle standing in the van bay for `seconds` (rule `van-dwell`).
pub fn van_dwell(seconds: u32) -> String {
    format!(
        r#"
  [[cameras.rules]]
  id = "van-dwell"
  kind = "dwell"
  zone = "van-bay"
  classes = ["car", "truck", "bus"]
  seconds = {seconds}
"#
    )
}

/// The walkway with its intrusion rule: the scene's busiest alarm.
pub fn walkway_intrusion() -> String {
    format!("{WALKWAY}{WALKWAY_INTRUSION}")
}
