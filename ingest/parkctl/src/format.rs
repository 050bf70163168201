//! Human-readable lines for feed events, incidents and alarms.
//!
//! Pure functions of the API's types (`parkwatch-incidents`), so `parkctl
//! tail`, `parkctl incidents` and `parkctl alarms` print the same way and
//! the tests need no server. Absent and empty text fields are shown alike
//! (left out).

use parkwatch_config::CivilDate;
use parkwatch_incidents::model::{
    AlarmDetail, AlarmRecord, FeedEvent, FeedKind, Incident, IncidentDetail, Status,
};
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

/// A text field as the lines show it: absent and empty are alike.
fn opt(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// A non-empty string, else `None`.
fn nonempty(s: &str) -> Option<&str> {
    Some(s).filter(|s| !s.is_empty())
}

/// A text field of a timeline entry's free-form `data`.
fn data_str<'a>(data: &'a Value, k: &str) -> Option<&'a str> {
    data.get(k)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// One line for a feed event (the `data:` JSON of the stream).
pub fn feed_line(ev: &FeedEvent, offset_min: i32) -> String {
    let t = time(ev.at_ms, offset_min);
    match (ev.kind, &ev.alarm, &ev.incident) {
        (FeedKind::Alarm, Some(a), _) => {
            let alarm = &a.alarm;
            let mut line = format!(
                "{t}  ALARM     {:<6} {:<16} {:<8} {}",
                a.event,
                alarm.kind,
                alarm.severity,
                opt(&alarm.camera)
                    .or(opt(&alarm.sensor))
                    .unwrap_or(&alarm.edge),
            );
            if let Some(z) = opt(&alarm.zone) {
                line.push_str(&format!(" zone={z}"));
            }
            line.push_str(&format!(" rule={}", alarm.rule_id));
            if let Some(id) = alarm.incident_id {
                let how = if a.opened_incident { " (new)" } else { "" };
                line.push_str(&format!("  -> incident #{id}{how}"));
            }
            if let Some(g) = opt(&alarm.unit_grid) {
                line.push_str(&format!("  grid {g}"));
            }
            line
        }
        (FeedKind::Incident, _, Some(f)) => {
            let e = &f.entry;
            let i = &f.incident;
            let id = i.id;
            let kind = e.kind.as_str();
            let to = e.to_status.as_str();
            let status = match e.from_status.map(Status::as_str) {
                Some(f) if f != to => format!("{f} -> {to}"),
                _ => to.to_owned(),
            };
            let mut line = format!(
                "{t}  INCIDENT  #{id:<5} {kind:<12} {status:<24} {} {}",
                i.item, i.title,
            );
            line.push_str(&format!("  by {} ({})", e.actor, e.role.as_str()));
            if let Some(a) = data_str(&e.data, "assignee") {
                line.push_str(&format!(
                    "  to {} {a}",
                    e.data
                        .get("assignee_kind")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                ));
            }
            if let Some(due) = e.data.get("due_at_ms").and_then(Value::as_i64)
                && matches!(kind, "dispatch" | "escalate")
            {
                line.push_str(&format!("  due {}", time(due, offset_min)));
            }
            if let Some(g) = opt(&i.unit_grid).or(opt(&i.responsibility_grid)) {
                line.push_str(&format!("  grid {g}"));
            }
            if let Some(n) = opt(&e.note)
                && kind != "report"
            {
                let short: String = n.chars().take(60).collect();
                line.push_str(&format!("  \"{short}\""));
            }
            line
        }
        (kind, _, _) => format!("{t}  {}", kind.as_str()),
    }
}

/// One line for an incident in a list.
pub fn incident_line(i: &Incident, offset_min: i32) -> String {
    let id = i.id;
    let overdue = if i.overdue { " OVERDUE" } else { "" };
    let assignee = opt(&i.assignee)
        .map(|a| format!(" -> {a}"))
        .unwrap_or_default();
    format!(
        "#{id:<5} {}  {:<10} {:<13} {} {}{assignee}{overdue}  grid {}",
        time(i.created_at_ms, offset_min),
        i.status.as_str(),
        i.source.as_str(),
        i.item,
        i.title,
        opt(&i.unit_grid)
            .or(opt(&i.responsibility_grid))
            .unwrap_or("-"),
    )
}

/// A multi-line view of an incident with its timeline.
pub fn incident_detail(d: &IncidentDetail, offset_min: i32) -> String {
    let i = &d.incident;
    let mut out = incident_line(i, offset_min);
    out.push('\n');
    let fields: [(&str, Option<String>); 12] = [
        ("description", i.description.clone()),
        ("severity", i.severity.clone()),
        ("department", Some(i.department.clone())),
        (
            "assignee_kind",
            i.assignee_kind.map(|k| k.as_str().to_owned()),
        ),
        ("assignee", i.assignee.clone()),
        ("grid_worker", i.grid_worker.clone()),
        ("camera", i.camera.clone()),
        ("zone", i.zone.clone()),
        ("alarm_count", Some(i.alarm_count.to_string())),
        ("time_limit", Some(i.time_limit.to_string())),
        ("time_unit", Some(i.time_unit.clone())),
        ("version", Some(i.version.to_string())),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            out.push_str(&format!("  {k:<14}{v}\n"));
        }
    }
    for (k, ms) in [("due_at_ms", i.due_at_ms), ("closed_at_ms", i.closed_at_ms)] {
        if let Some(ms) = ms {
            out.push_str(&format!(
                "  {:<14}{}\n",
                k.trim_end_matches("_ms"),
                time(ms, offset_min)
            ));
        }
    }
    out.push_str("  timeline:\n");
    for e in &d.timeline {
        let n = e.attachments.len();
        out.push_str(&format!(
            "   {:>3} {}  {:<12} -> {:<11} {} ({}){}{}\n",
            e.seq,
            time(e.at_ms, offset_min),
            e.kind.as_str(),
            e.to_status.as_str(),
            e.actor,
            e.role.as_str(),
            opt(&e.note)
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
pub fn alarm_line(a: &AlarmRecord, offset_min: i32) -> String {
    let incident = a
        .incident_id
        .map(|i| format!("  incident #{i}"))
        .unwrap_or_default();
    format!(
        "{}  {:<6} {:<16} {:<8} {}{}  {}{incident}",
        time(a.started_at_ms, offset_min),
        a.state,
        a.kind,
        a.severity,
        opt(&a.camera).or(opt(&a.sensor)).unwrap_or(&a.edge),
        opt(&a.zone)
            .map(|z| format!(" zone={z}"))
            .unwrap_or_default(),
        a.alarm_id,
    )
}

/// A multi-line view of an alarm with its stored events.
pub fn alarm_detail(d: &AlarmDetail, offset_min: i32) -> String {
    let a = &d.alarm;
    let mut out = alarm_line(a, offset_min);
    out.push('\n');
    for (k, v) in [
        ("edge", nonempty(&a.edge)),
        ("rule_id", nonempty(&a.rule_id)),
        ("unit_grid", opt(&a.unit_grid)),
        ("snapshot", opt(&a.snapshot)),
        ("message", opt(&a.message)),
    ] {
        if let Some(v) = v {
            out.push_str(&format!("  {k:<14}{v}\n"));
        }
    }
    if let Some(ms) = a.ended_at_ms {
        out.push_str(&format!("  {:<14}{}\n", "ended", time(ms, offset_min)));
    }
    out.push_str("  events (seq, at, event, received):\n");
    for e in &d.events {
        out.push_str(&format!(
            "   {:>8} {}  {:<6} received {}{}\n",
            e.seq,
            time(e.event_at_ms, offset_min),
            e.event,
            time(e.received_at_ms, offset_min),
            opt(&e.snapshot_sha256)
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
                "edge": "edge-p01", "incident_id": 3, "unit_grid": "99010100100101",
                "site": "etdz", "state": "active", "started_at_ms": 0,
                "last_event_at_ms": 0, "received_at_ms": 0}}
        });
        let ev: FeedEvent = serde_json::from_value(ev).expect("a feed event");
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
                "started_at_ms": 0, "ended_at_ms": 5000,
                "site": "etdz", "last_event_at_ms": 5000, "received_at_ms": 60_000},
            "events": [
                {"seq": 41, "event": "new", "event_at_ms": 0, "received_at_ms": 60_000,
                 "snapshot_sha256": "ab12cd34ef56ab12cd34ef56"},
                {"seq": 44, "event": "end", "event_at_ms": 5000, "received_at_ms": 61_000,
                 "snapshot_sha256": null}
            ]
        });
        let d: AlarmDetail = serde_json::from_value(d).expect("an alarm detail");
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
