//! Human-readable lines for feed events and incidents.
//!
//! Pure functions of JSON values, so `parkctl tail` and `parkctl incidents`
//! print the same way and the tests need no server.

use parkwatch_config::CivilDate;
use serde_json::Value;

/// Parses `+HH:MM` / `-HH:MM` into minutes east of UTC.
pub fn parse_offset(s: &str) -> Option<i32> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    ((0..=14).contains(&h) && (0..60).contains(&m)).then_some(sign * (h * 60 + m))
}

/// `YYYY-MM-DD HH:MM:SS` of `ms` at `offset_min` east of UTC.
pub fn time(ms: i64, offset_min: i32) -> String {
    let local = ms + i64::from(offset_min) * 60_000;
    let day = local.div_euclid(86_400_000);
    let in_day = local.rem_euclid(86_400_000) / 1000;
    let date = CivilDate::from_days_since_epoch(day)
        .map(|d| d.to_string())
        .unwrap_or_else(|| format!("day {day}"));
    format!(
        "{date} {:02}:{:02}:{:02}",
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60
    )
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn opt<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// One line for a feed event (the `data:` JSON of the stream).
pub fn feed_line(ev: &Value, offset_min: i32) -> String {
    let at = ev.get("at_ms").and_then(Value::as_i64).unwrap_or(0);
    let t = time(at, offset_min);
    match s(ev, "kind") {
        "alarm" => {
            let a = ev.get("alarm").cloned().unwrap_or(Value::Null);
            let alarm = a.get("alarm").cloned().unwrap_or(Value::Null);
            let mut line = format!(
                "{t}  ALARM     {:<6} {:<16} {:<8} {}",
                s(&a, "event"),
                s(&alarm, "kind"),
                s(&alarm, "severity"),
                opt(&alarm, "camera")
                    .or(opt(&alarm, "sensor"))
                    .unwrap_or(s(&alarm, "edge")),
            );
            if let Some(z) = opt(&alarm, "zone") {
                line.push_str(&format!(" zone={z}"));
            }
            line.push_str(&format!(" rule={}", s(&alarm, "rule_id")));
            if let Some(id) = alarm.get("incident_id").and_then(Value::as_i64) {
                let how = if a.get("opened_incident").and_then(Value::as_bool) == Some(true) {
                    " (new)"
                } else {
                    ""
                };
                line.push_str(&format!("  -> incident #{id}{how}"));
            }
            if let Some(g) = opt(&alarm, "unit_grid") {
                line.push_str(&format!("  grid {g}"));
            }
            line
        }
        "incident" => {
            let f = ev.get("incident").cloned().unwrap_or(Value::Null);
            let e = f.get("entry").cloned().unwrap_or(Value::Null);
            let i = f.get("incident").cloned().unwrap_or(Value::Null);
            let id = i.get("id").and_then(Value::as_i64).unwrap_or(0);
            let kind = s(&e, "kind");
            let from = opt(&e, "from_status");
            let to = s(&e, "to_status");
            let status = match from {
                Some(f) if f != to => format!("{f} -> {to}"),
                _ => to.to_owned(),
            };
            let mut line = format!(
                "{t}  INCIDENT  #{id:<5} {kind:<12} {status:<24} {} {}",
                s(&i, "item"),
                s(&i, "title"),
            );
            line.push_str(&format!("  by {} ({})", s(&e, "actor"), s(&e, "role")));
            let data = e.get("data").cloned().unwrap_or(Value::Null);
            if let Some(a) = opt(&data, "assignee") {
                line.push_str(&format!("  to {} {a}", s(&data, "assignee_kind")));
            }
            if let Some(due) = data.get("due_at_ms").and_then(Value::as_i64)
                && matches!(kind, "dispatch" | "escalate")
            {
                line.push_str(&format!("  due {}", time(due, offset_min)));
            }
            if let Some(g) = opt(&i, "unit_grid").or(opt(&i, "responsibility_grid")) {
                line.push_str(&format!("  grid {g}"));
            }
            if let Some(n) = opt(&e, "note")
                && kind != "report"
            {
                let short: String = n.chars().take(60).collect();
                line.push_str(&format!("  \"{short}\""));
            }
            line
        }
        other => format!("{t}  {other}"),
    }
}

/// One line for an incident in a list.
pub fn incident_line(i: &Value, offset_min: i32) -> String {
    let id = i.get("id").and_then(Value::as_i64).unwrap_or(0);
    let created = i.get("created_at_ms").and_then(Value::as_i64).unwrap_or(0);
    let overdue = if i.get("overdue").and_then(Value::as_bool) == Some(true) {
        " OVERDUE"
    } else {
        ""
    };
    let assignee = opt(i, "assignee")
        .map(|a| format!(" -> {a}"))
        .unwrap_or_default();
    format!(
        "#{id:<5} {}  {:<10} {:<13} {} {}{assignee}{overdue}  grid {}",
        time(created, offset_min),
        s(i, "status"),
        s(i, "source"),
        s(i, "item"),
        s(i, "title"),
        opt(i, "unit_grid")
            .or(opt(i, "responsibility_grid"))
            .unwrap_or("-"),
    )
}

/// A multi-line view of an incident with its timeline.
pub fn incident_detail(d: &Value, offset_min: i32) -> String {
    let i = d.get("incident").cloned().unwrap_or(Value::Null);
    let mut out = incident_line(&i, offset_min);
    out.push('\n');
    let field = |k: &str| -> Option<String> {
        match i.get(k) {
            Some(Value::Null) | None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => Some(v.to_string()),
        }
    };
    for k in [
        "description",
        "severity",
        "department",
        "assignee_kind",
        "assignee",
        "grid_worker",
        "camera",
        "zone",
        "alarm_count",
        "time_limit",
        "time_unit",
        "version",
    ] {
        if let Some(v) = field(k) {
            out.push_str(&format!("  {k:<14}{v}\n"));
        }
    }
    for k in ["due_at_ms", "closed_at_ms"] {
        if let Some(ms) = i.get(k).and_then(Value::as_i64) {
            out.push_str(&format!(
                "  {:<14}{}\n",
                k.trim_end_matches("_ms"),
                time(ms, offset_min)
            ));
        }
    }
    out.push_str("  timeline:\n");
    for e in d
        .get("timeline")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let at = e.get("at_ms").and_then(Value::as_i64).unwrap_or(0);
        let n = e
            .get("attachments")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        out.push_str(&format!(
            "   {:>3} {}  {:<12} -> {:<11} {} ({}){}{}\n",
            e.get("seq").and_then(Value::as_i64).unwrap_or(0),
            time(at, offset_min),
            s(e, "kind"),
            s(e, "to_status"),
            s(e, "actor"),
            s(e, "role"),
            opt(e, "note")
                .map(|n| format!("  \"{n}\""))
                .unwrap_or_default(),
            if n > 0 {
                format!("  [{n} attachment(s)]")
            } else {
                String::new()
            },
        ));
    }
    out
}

/// One line for an alarm in a list.
pub fn alarm_line(a: &Value, offset_min: i32) -> String {
    let started = a.get("started_at_ms").and_then(Value::as_i64).unwrap_or(0);
    let incident = a
        .get("incident_id")
        .and_then(Value::as_i64)
        .map(|i| format!("  incident #{i}"))
        .unwrap_or_default();
    format!(
        "{}  {:<6} {:<16} {:<8} {}{}  {}{incident}",
        time(started, offset_min),
        s(a, "state"),
        s(a, "kind"),
        s(a, "severity"),
        opt(a, "camera")
            .or(opt(a, "sensor"))
            .unwrap_or(s(a, "edge")),
        opt(a, "zone")
            .map(|z| format!(" zone={z}"))
            .unwrap_or_default(),
        s(a, "alarm_id"),
    )
}

/// A multi-line view of an alarm with its stored events.
pub fn alarm_detail(d: &Value, offset_min: i32) -> String {
    let a = d.get("alarm").cloned().unwrap_or(Value::Null);
    let mut out = alarm_line(&a, offset_min);
    out.push('\n');
    for k in ["edge", "rule_id", "unit_grid", "snapshot", "message"] {
        if let Some(v) = opt(&a, k) {
            out.push_str(&format!("  {k:<14}{v}\n"));
        }
    }
    if let Some(ms) = a.get("ended_at_ms").and_then(Value::as_i64) {
        out.push_str(&format!("  {:<14}{}\n", "ended", time(ms, offset_min)));
    }
    out.push_str("  events (seq, at, event, received):\n");
    for e in d
        .get("events")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let at = e.get("event_at_ms").and_then(Value::as_i64).unwrap_or(0);
        let got = e.get("received_at_ms").and_then(Value::as_i64).unwrap_or(0);
        out.push_str(&format!(
            "   {:>8} {}  {:<6} received {}{}\n",
            e.get("seq").and_then(Value::as_i64).unwrap_or(0),
            time(at, offset_min),
            s(e, "event"),
            time(got, offset_min),
            opt(e, "snapshot_sha256")
                .map(|h| format!("  snapshot {}", &h[..h.len().min(12)]))
                .unwrap_or_default(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_local() {
        assert_eq!(parse_offset("+08:00"), Some(480));
        assert_eq!(parse_offset("-05:30"), Some(-330));
        assert_eq!(parse_offset("08:00"), None);
        assert_eq!(time(0, 480), "1970-01-01 08:00:00");
        assert_eq!(time(1_748_766_600_000, 480), "2025-06-01 16:30:00");
    }

    #[test]
    fn alarm_lines_name_camera_zone_and_incident() {
        let ev = serde_json::json!({
            "id": 7, "at_ms": 0, "kind": "alarm", "incident_id": 3,
            "alarm": {"event": "new", "opened_incident": true, "alarm": {
                "alarm_id": "a", "kind": "intrusion", "severity": "major",
                "camera": "cam-p01-1", "zone": "gate", "rule_id": "r1",
                "edge": "edge-p01", "incident_id": 3, "unit_grid": "99010100100101"}}
        });
        let line = feed_line(&ev, 0);
        assert!(line.contains("ALARM"), "{line}");
        assert!(line.contains("intrusion"), "{line}");
        assert!(line.contains("cam-p01-1 zone=gate"), "{line}");
        assert!(line.contains("incident #3 (new)"), "{line}");
    }

    #[test]
    fn alarm_detail_lists_events_by_seq_with_their_snapshot() {
        let d = serde_json::json!({
            "alarm": {"alarm_id": "edge-p01.cam-1.gate.1", "kind": "intrusion",
                "severity": "major", "state": "ended", "camera": "cam-1", "zone": "gate",
                "edge": "edge-p01", "rule_id": "gate-intrusion", "incident_id": 9,
                "started_at_ms": 0, "ended_at_ms": 5000},
            "events": [
                {"seq": 41, "event": "new", "event_at_ms": 0, "received_at_ms": 60_000,
                 "snapshot_sha256": "ab12cd34ef56ab12cd34ef56"},
                {"seq": 44, "event": "end", "event_at_ms": 5000, "received_at_ms": 61_000,
                 "snapshot_sha256": null}
            ]
        });
        let text = alarm_detail(&d, 0);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("1970-01-01 00:00:00  ended  intrusion"),
            "{text}"
        );
        assert!(lines[0].contains("cam-1 zone=gate"), "{text}");
        assert!(lines[0].contains("incident #9"), "{text}");
        assert!(
            text.contains("  ended         1970-01-01 00:00:05"),
            "{text}"
        );
        let events: Vec<&&str> = lines.iter().filter(|l| l.starts_with("   ")).collect();
        assert_eq!(events.len(), 2, "{text}");
        assert!(
            events[0].contains("41") && events[0].contains("new"),
            "{text}"
        );
        assert!(events[0].contains("received 1970-01-01 00:01:00"), "{text}");
        assert!(events[0].contains("snapshot ab12cd34ef56"), "{text}");
        assert!(
            events[1].contains("44") && events[1].contains("end"),
            "{text}"
        );
    }
}
