//! `[[sensors]]`: Modbus TCP sensors polled by the box, and the thresholds
//! that turn their readings into alarms.
//!
//! These types only hold values; [`super::validate_edge`] checks them
//! (registers fit, word order only for 32-bit types, thresholds consistent).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Severity, default_severity, secs};

/// What a sensor measures (and so its default unit and catalogue mapping).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorKind {
    /// PM2.5 particulate, ug/m3.
    Pm25,
    /// PM10 particulate, ug/m3.
    Pm10,
    /// Sound level, dB(A).
    Noise,
    /// Air temperature, degC.
    Temperature,
    /// Relative humidity, %RH.
    Humidity,
    /// Combustible gas, %LEL.
    GasLel,
    /// Water level, m.
    WaterLevel,
    /// Anything else; give `unit`.
    Other,
}

impl SensorKind {
    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            SensorKind::Pm25 => "pm25",
            SensorKind::Pm10 => "pm10",
            SensorKind::Noise => "noise",
            SensorKind::Temperature => "temperature",
            SensorKind::Humidity => "humidity",
            SensorKind::GasLel => "gas_lel",
            SensorKind::WaterLevel => "water_level",
            SensorKind::Other => "other",
        }
    }

    /// The unit used when the sensor gives none.
    pub fn default_unit(&self) -> &'static str {
        match self {
            SensorKind::Pm25 | SensorKind::Pm10 => "ug/m3",
            SensorKind::Noise => "dB(A)",
            SensorKind::Temperature => "degC",
            SensorKind::Humidity => "%RH",
            SensorKind::GasLel => "%LEL",
            SensorKind::WaterLevel => "m",
            SensorKind::Other => "",
        }
    }
}

/// Which Modbus register table is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterType {
    /// Holding registers, function code 3 (the default).
    #[default]
    Holding,
    /// Input registers, function code 4.
    Input,
}

/// How the raw register value is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    /// One register, unsigned (the default).
    #[default]
    U16,
    /// One register, two's complement.
    I16,
    /// Two registers, unsigned.
    U32,
    /// Two registers, two's complement.
    I32,
    /// Two registers, IEEE 754 single.
    F32,
}

impl DataType {
    /// Number of 16-bit registers read.
    pub fn registers(&self) -> u16 {
        match self {
            DataType::U16 | DataType::I16 => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
        }
    }
}

/// Order of the two registers of a 32-bit value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WordOrder {
    /// High word first, at `register` (the default).
    #[default]
    Big,
    /// Low word first.
    Little,
}

/// A Modbus TCP sensor polled by the box.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorConfig {
    /// Required. Id, `[A-Za-z0-9_.-]{1,64}`, unique (and distinct from camera ids).
    pub id: String,
    /// Optional human name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Required. What it measures.
    pub kind: SensorKind,
    /// Required. Modbus TCP `host:port`.
    pub address: String,
    /// Modbus unit (slave) id 0..=255; default 1.
    #[serde(default = "default_unit_id")]
    pub unit_id: u8,
    /// Required. Register address (0-based protocol address).
    pub register: u16,
    /// `holding` | `input`; default `holding`.
    #[serde(default)]
    pub register_type: RegisterType,
    /// `u16` | `i16` | `u32` | `i32` | `f32`; default `u16`. 32-bit types
    /// read `register` and `register + 1`.
    #[serde(default)]
    pub data_type: DataType,
    /// `big` | `little`: register order of 32-bit types; default `big`.
    #[serde(default)]
    pub word_order: WordOrder,
    /// value = raw * scale + offset; finite, non-zero; default 1.
    #[serde(default = "default_scale")]
    pub scale: f64,
    /// See `scale`; default 0.
    #[serde(default)]
    pub offset: f64,
    /// Unit of the scaled value; default by kind (see [`SensorKind::default_unit`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Seconds between polls, > 0; default 5.
    #[serde(default = "default_poll_secs")]
    pub poll_secs: f64,
    /// A `device_offline` alarm after this many seconds without an answer,
    /// >= `poll_secs`; default 30.
    #[serde(default = "default_offline_after")]
    pub offline_after_secs: f64,
    /// Optional alarm threshold (`[sensors.threshold]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<ThresholdConfig>,
    /// Optional catalogue item code overriding the site's mapping of this
    /// sensor kind's threshold alarm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalogue_item: Option<String>,
}

impl SensorConfig {
    /// The unit of the scaled value.
    pub fn unit(&self) -> &str {
        self.unit.as_deref().unwrap_or(self.kind.default_unit())
    }

    /// `poll_secs` as a duration.
    pub fn poll_interval(&self) -> Duration {
        secs(self.poll_secs)
    }

    /// `offline_after_secs` as a duration.
    pub fn offline_after(&self) -> Duration {
        secs(self.offline_after_secs)
    }
}

/// When a sensor value raises a `sensor_threshold` alarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdConfig {
    /// Alarm while value > `above`. At least one of `above` and `below`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
    /// Alarm while value < `below` (low alarm). With both, `below < above`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<f64>,
    /// The alarm ends when value <= above - hysteresis (or >= below +
    /// hysteresis), >= 0; default 0.
    #[serde(default)]
    pub hysteresis: f64,
    /// The condition must hold this many seconds, >= 0; default 0.
    #[serde(default)]
    pub seconds: f64,
    /// Alarm severity; default `major`.
    #[serde(default = "default_severity")]
    pub severity: Severity,
}

fn default_unit_id() -> u8 {
    1
}
fn default_scale() -> f64 {
    1.0
}
fn default_poll_secs() -> f64 {
    5.0
}
fn default_offline_after() -> f64 {
    30.0
}
