//! Park sensors end to end: a Modbus TCP server from PyPI's pymodbus plays
//! the devices; a real `parkwatch-edge` polls them; readings reach
//! VictoriaMetrics through `parkwatch-ingest` with the right scale and
//! unit; a reading over its threshold raises a `sensor_threshold` alarm that
//! ends below the hysteresis; a device that stops answering is reported in
//! telemetry and raises `device_offline`, while the others keep reporting.

use std::time::Duration;

use parkwatch_tests::stack::{AlarmTap, EdgeSpec, Ingest, ModbusSim, edge_config, start_edge};
use parkwatch_tests::{VictoriaMetrics, wait_for};

fn latest(vm: &VictoriaMetrics, selector: &str) -> Option<f64> {
    let series = vm.export(selector);
    series.first()?["values"].as_array()?.last()?.as_f64()
}

#[test]
fn modbus_readings_thresholds_and_offline_devices() {
    // Unit 1: PM2.5 as a u16 in tenths (523 -> 52.3 ug/m3).
    // Unit 2: combustible gas %LEL as an f32 over two input registers.
    // Unit 3: water level in cm as a signed i16 (-35 -> -0.35 m).
    let sim = ModbusSim::start(&[
        "--unit",
        "1",
        "--unit",
        "2",
        "--unit",
        "3",
        "--set",
        "1:h:0:u16:523",
        "--set",
        "2:i:10:f32:12.5",
        "--set",
        "3:h:4:i16:-35",
    ]);
    let vm = VictoriaMetrics::start();
    let ingest = Ingest::start(&vm, &[("sensor-edge", "pw-sensor"), ("observer", "pw-obs")]);
    let tap = AlarmTap::start(ingest.mqtt_port(), "observer", "pw-obs");
    let addr = format!("127.0.0.1:{}", sim.port());
    let sensors = format!(
        r#"
[[sensors]]
id = "pm25-gate"
kind = "pm25"
address = "{addr}"
unit_id = 1
register = 0
data_type = "u16"
scale = 0.1
unit = "ug/m3"
poll_secs = 0.5
offline_after_secs = 3
  [sensors.threshold]
  above = 75.0
  hysteresis = 5.0

[[sensors]]
id = "gas-boiler"
kind = "gas_lel"
address = "{addr}"
unit_id = 2
register = 10
register_type = "input"
data_type = "f32"
unit = "%LEL"
poll_secs = 0.5
offline_after_secs = 3

[[sensors]]
id = "river-level"
kind = "water_level"
address = "{addr}"
unit_id = 3
register = 4
data_type = "i16"
scale = 0.01
unit = "m"
poll_secs = 0.5
offline_after_secs = 3
"#
    );
    let dir = tempfile::tempdir().unwrap();
    let config = edge_config(
        dir.path(),
        &EdgeSpec {
            extra: sensors,
            ..EdgeSpec::new("sensor-edge", "pw-sensor", ingest.mqtt_port())
        },
    );
    let mut edge = start_edge(&config);
    let read = |sensor: &str, unit: &str| {
        latest(
            &vm,
            &format!(
                r#"{{__name__="sensor_value",sensor="{sensor}",unit="{unit}",edge="sensor-edge"}}"#
            ),
        )
    };

    // Waits for the first reading of `sensor` in `unit`.
    let reading = |what: &str, timeout_s: u64, sensor: &str, unit: &str| {
        wait_for(
            what,
            Duration::from_secs(timeout_s),
            Duration::from_millis(500),
            || read(sensor, unit),
        )
    };

    // Readings, scaled, with their units, in the time-series server.
    let pm = reading("PM2.5 reading", 60, "pm25-gate", "ug/m3");
    assert!((pm - 52.3).abs() < 1e-6, "PM2.5 {pm}");
    let gas = reading("gas reading", 30, "gas-boiler", "%LEL");
    assert!((gas - 12.5).abs() < 1e-6, "gas {gas}");
    let level = reading("water level", 30, "river-level", "m");
    assert!((level + 0.35).abs() < 1e-6, "level {level}");

    // Over the threshold: an alarm carrying the reading; back under the
    // hysteresis band (75 - 5): it ends.
    sim.control("set 1 h 0 u16 912");
    let new = tap.wait_event(
        "PM2.5 threshold alarm",
        Duration::from_secs(30),
        ("pm25-gate", "threshold", "new"),
    );
    assert_eq!(new["kind"], "sensor_threshold");
    assert!(
        (new["value"].as_f64().unwrap() - 91.2).abs() < 1e-6,
        "{new}"
    );
    assert_eq!(new["unit"], "ug/m3");
    sim.control("set 1 h 0 u16 720"); // 72.0: under 75, but inside the band
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        tap.find("pm25-gate", "threshold", "end").is_none(),
        "ended inside the hysteresis band"
    );
    sim.control("set 1 h 0 u16 640"); // 64.0: under 70
    let end = tap.wait_event(
        "PM2.5 alarm end",
        Duration::from_secs(30),
        ("pm25-gate", "threshold", "end"),
    );
    assert_eq!(end["alarm_id"], new["alarm_id"]);

    // A device stops answering: reported offline, alarm after 3 s, the
    // others keep reporting; it answers again: the alarm ends.
    sim.control("mute 2");
    let offline = tap.wait_event(
        "device_offline alarm",
        Duration::from_secs(30),
        ("gas-boiler", "device_offline", "new"),
    );
    assert_eq!(offline["kind"], "device_offline");
    let online = wait_for(
        "gas sensor reported offline",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || latest(&vm, r#"{__name__="sensor_online",sensor="gas-boiler"}"#).filter(|v| *v == 0.0),
    );
    assert_eq!(online, 0.0);
    sim.control("set 3 h 4 i16 120");
    let level = wait_for(
        "river level still read",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || read("river-level", "m").filter(|v| (v - 1.2).abs() < 1e-6),
    );
    assert!((level - 1.2).abs() < 1e-6);
    sim.control("unmute 2");
    tap.wait_event(
        "device_offline end",
        Duration::from_secs(30),
        ("gas-boiler", "device_offline", "end"),
    );
    assert!(edge.is_running(), "edge exited: {}", edge.log_tail(30));
    let _ = sim.log_tail(5);
}
