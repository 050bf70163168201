//! The event catalogue (`catalogue.toml`): GB/T 30428.2-style classes and
//! items, each item with its responsible department and time limit, and
//! the mapping from every alarm kind the edge raises to an item.
//!
//! After a site check passes, every code is unique, every item belongs to
//! an existing class and department, and [`Catalogue::item_for`] finds an
//! item for every alarm kind (and every sensor kind).

use serde::{Deserialize, Serialize};

/// Every alarm kind the edge raises; the wire type, defined once in
/// `parkwatch-protocol` (re-exported here and as `parkwatch_config::AlarmKind`).
pub use parkwatch_protocol::AlarmKind;

use crate::edge::{RuleKind, SensorKind};

/// Whether a class holds components (部件, things) or events (事件).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassKind {
    /// 部件: public facilities and their faults.
    Component,
    /// 事件: events and behaviour.
    Event,
}

/// A major class (大类).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventClass {
    /// Required. Two digits, unique, e.g. `"01"`.
    pub code: String,
    /// Required. `component` | `event`.
    pub kind: ClassKind,
    /// Required. Name, e.g. "城市管理".
    pub name: String,
    /// Optional English name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_en: Option<String>,
}

/// The unit of an item's time limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    /// Hours around the clock.
    EmergencyHours,
    /// Hours inside the work calendar's working hours.
    WorkingHours,
    /// Working days of the work calendar.
    WorkingDays,
}

/// An item (小类): one kind of problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueItem {
    /// Required. Class code + two digits, unique, e.g. `"0105"`.
    pub code: String,
    /// Required. The class code.
    pub class: String,
    /// Required. Name, e.g. "违章停车".
    pub name: String,
    /// Optional English name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_en: Option<String>,
    /// Required. Id of the responsible department (`site.toml`).
    pub department: String,
    /// Required. Time limit for handling, > 0, in `time_unit`s.
    pub time_limit: u32,
    /// Required. `emergency_hours` | `working_hours` | `working_days`.
    pub time_unit: TimeUnit,
    /// Required. true: an alarm of this item is filed as a case at once;
    /// false: it waits for a supervisor's verification.
    pub auto_file: bool,
}

impl From<RuleKind> for AlarmKind {
    fn from(k: RuleKind) -> Self {
        match k {
            RuleKind::Intrusion => AlarmKind::Intrusion,
            RuleKind::Dwell => AlarmKind::Dwell,
            RuleKind::LineCrossing => AlarmKind::LineCrossing,
            RuleKind::Crowd => AlarmKind::Crowd,
        }
    }
}

/// `[alarm_kinds]`: the item each alarm kind files as; every kind required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmKinds {
    /// Item for `intrusion`.
    pub intrusion: String,
    /// Item for `dwell`.
    pub dwell: String,
    /// Item for `line_crossing`.
    pub line_crossing: String,
    /// Item for `crowd`.
    pub crowd: String,
    /// Item for `camera_offline` (an equipment fault).
    pub camera_offline: String,
    /// Item for `sensor_threshold` when `[sensor_kinds]` has no entry.
    pub sensor_threshold: String,
    /// Item for `device_offline` (an equipment fault).
    pub device_offline: String,
}

impl AlarmKinds {
    /// The item code for `kind`.
    pub fn get(&self, kind: AlarmKind) -> &str {
        match kind {
            AlarmKind::Intrusion => &self.intrusion,
            AlarmKind::Dwell => &self.dwell,
            AlarmKind::LineCrossing => &self.line_crossing,
            AlarmKind::Crowd => &self.crowd,
            AlarmKind::CameraOffline => &self.camera_offline,
            AlarmKind::SensorThreshold => &self.sensor_threshold,
            AlarmKind::DeviceOffline => &self.device_offline,
        }
    }
}

/// `[sensor_kinds]`: the item a `sensor_threshold` alarm files as, by
/// sensor kind; each optional (default `alarm_kinds.sensor_threshold`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorKinds {
    /// PM2.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pm25: Option<String>,
    /// PM10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pm10: Option<String>,
    /// Noise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<String>,
    /// Temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<String>,
    /// Humidity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub humidity: Option<String>,
    /// Combustible gas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gas_lel: Option<String>,
    /// Water level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub water_level: Option<String>,
    /// Other sensors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other: Option<String>,
}

impl SensorKinds {
    /// The mapped item code for `kind`, if any.
    pub fn get(&self, kind: SensorKind) -> Option<&str> {
        match kind {
            SensorKind::Pm25 => self.pm25.as_deref(),
            SensorKind::Pm10 => self.pm10.as_deref(),
            SensorKind::Noise => self.noise.as_deref(),
            SensorKind::Temperature => self.temperature.as_deref(),
            SensorKind::Humidity => self.humidity.as_deref(),
            SensorKind::GasLel => self.gas_lel.as_deref(),
            SensorKind::WaterLevel => self.water_level.as_deref(),
            SensorKind::Other => self.other.as_deref(),
        }
    }
}

/// The whole `catalogue.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    /// `[[classes]]`.
    pub classes: Vec<EventClass>,
    /// `[[items]]`.
    pub items: Vec<CatalogueItem>,
    /// `[alarm_kinds]`, every kind required.
    pub alarm_kinds: AlarmKinds,
    /// `[sensor_kinds]`, optional.
    #[serde(default)]
    pub sensor_kinds: SensorKinds,
}

impl Catalogue {
    /// The item with this code.
    pub fn item(&self, code: &str) -> Option<&CatalogueItem> {
        self.items.iter().find(|i| i.code == code)
    }

    /// The class with this code.
    pub fn class(&self, code: &str) -> Option<&EventClass> {
        self.classes.iter().find(|c| c.code == code)
    }

    /// The item an alarm files as: `override_code` (a rule's or sensor's
    /// `catalogue_item`) if given, else for `sensor_threshold` the sensor
    /// kind's mapping, else the alarm kind's mapping.
    pub fn item_for(
        &self,
        kind: AlarmKind,
        override_code: Option<&str>,
        sensor: Option<SensorKind>,
    ) -> Option<&CatalogueItem> {
        if let Some(code) = override_code {
            return self.item(code);
        }
        let code = match (kind, sensor) {
            (AlarmKind::SensorThreshold, Some(s)) => self
                .sensor_kinds
                .get(s)
                .unwrap_or(&self.alarm_kinds.sensor_threshold),
            _ => self.alarm_kinds.get(kind),
        };
        self.item(code)
    }
}
