//! Unit tests of the rule engine: synthetic tracks, synthetic time.

use std::collections::HashMap;

use parkwatch_config::CameraConfig;
use parkwatch_protocol::{AlarmEventType, AlarmKind, Severity, Validate};
use serde_json::json;

use super::*;
use crate::track::Track;

/// 2025-06-01T08:30:00Z, 16:30 in UTC+8.
const T0: i64 = 1_748_766_600_000;

fn camera(rules: serde_json::Value) -> CameraConfig {
    serde_json::from_value(json!({
        "id": "cam-gate-n",
        "url": "rtsp://10.0.0.7/stream1",
        "zones": [
            // Square zone in the lower middle of the image.
            {"id": "yard", "polygon": [[0.4, 0.4], [0.8, 0.4], [0.8, 0.8], [0.4, 0.8]]},
        ],
        "lines": [
            // Horizontal line, A left, B right: a_to_b is moving down the image.
            {"id": "gate", "points": [[0.2, 0.5], [0.8, 0.5]]},
        ],
        "rules": rules,
    }))
    .unwrap()
}

fn engine(rules: serde_json::Value) -> RuleEngine {
    RuleEngine::new("edge-07", &camera(rules), RuleOptions::default()).unwrap()
}

/// A confirmed track whose foot (bottom-centre) is at `(x, y)`, seen at `ts`.
fn trk(id: u64, class: &str, score: f32, x: f32, y: f32, ts: i64) -> Track {
    Track {
        id,
        class: class.into(),
        score,
        bbox: [x - 0.02, y - 0.1, x + 0.02, y],
        first_seen_ms: T0,
        last_seen_ms: ts,
        hits: 5,
        stationary: false,
        stationary_since_ms: None,
        confirmed: true,
    }
}

fn person(id: u64, x: f32, y: f32, ts: i64) -> Track {
    trk(id, "person", 0.9, x, y, ts)
}

fn kinds(trs: &[AlarmTransition]) -> Vec<AlarmEventType> {
    trs.iter().map(|t| t.event).collect()
}

/// Feeds `frames` (time offset from T0, tracks) and collects every transition.
fn run(
    e: &mut RuleEngine,
    frames: impl IntoIterator<Item = (i64, Vec<Track>)>,
) -> Vec<AlarmTransition> {
    let mut all = Vec::new();
    for (dt, tracks) in frames {
        all.extend(e.on_frame(T0 + dt, &tracks));
    }
    all
}

fn intrusion_rule() -> serde_json::Value {
    json!([{"id": "yard-intrusion", "kind": "intrusion", "zone": "yard", "classes": ["person"],
            "severity": "critical", "catalogue_item": "020301"}])
}

#[test]
fn intrusion_fires_after_inertia_and_ends_after_clear_time() {
    let mut e = engine(intrusion_rule());
    // Frame 1 inside: inertia not reached yet.
    assert!(e.on_frame(T0, &[person(1, 0.6, 0.6, T0)]).is_empty());
    // Frame 2 inside: new.
    let tr = e.on_frame(T0 + 200, &[person(1, 0.6, 0.6, T0 + 200)]);
    assert_eq!(kinds(&tr), vec![AlarmEventType::New]);
    let new = &tr[0];
    assert_eq!(new.kind, AlarmKind::Intrusion);
    assert_eq!(new.severity, Severity::Critical);
    assert_eq!(new.zone.as_deref(), Some("yard"));
    assert_eq!(new.rule_id, "yard-intrusion");
    assert_eq!(new.catalogue_item.as_deref(), Some("020301"));
    assert_eq!(new.started_at_ms, T0 + 200);
    assert_eq!(new.objects.len(), 1);
    assert_eq!(new.objects[0].track_id, Some(1));
    assert!(new.best);
    assert_eq!(e.open_alarms(), 1);

    // The person leaves; the alarm stays open for clear_ms (3000).
    assert!(
        e.on_frame(T0 + 400, &[person(1, 0.1, 0.6, T0 + 400)])
            .is_empty()
    );
    assert!(e.on_frame(T0 + 3000, &[]).is_empty());
    let tr = e.on_frame(T0 + 3400, &[]);
    assert_eq!(kinds(&tr), vec![AlarmEventType::End]);
    assert_eq!(tr[0].ended_at_ms, Some(T0 + 3400));
    assert_eq!(tr[0].alarm_id, new.alarm_id);
    assert!(tr[0].objects.is_empty());
    assert_eq!(e.open_alarms(), 0);
}

#[test]
fn intrusion_border_jitter_does_not_flap() {
    let mut e = engine(intrusion_rule());
    let mut all = Vec::new();
    for f in 0..40i64 {
        // The foot alternates just inside / just outside the zone's left edge.
        let x = if f % 2 == 0 || f < 2 { 0.41 } else { 0.39 };
        all.extend(e.on_frame(T0 + f * 200, &[person(1, x, 0.6, T0 + f * 200)]));
    }
    assert_eq!(kinds(&all), vec![AlarmEventType::New]);
    // Gone for good: one end.
    all.extend(run(&mut e, (0..20).map(|i| (8000 + i * 200, vec![]))));
    assert_eq!(kinds(&all), vec![AlarmEventType::New, AlarmEventType::End]);
}

#[test]
fn intrusion_ignores_wrong_class_low_score_and_unconfirmed() {
    let mut e = engine(intrusion_rule());
    let mut unconfirmed = person(3, 0.6, 0.6, T0);
    unconfirmed.confirmed = false;
    let all = run(
        &mut e,
        (0..20).map(|f| {
            let ts = T0 + f * 200;
            let mut u = unconfirmed.clone();
            u.last_seen_ms = ts;
            (
                f * 200,
                vec![
                    trk(1, "car", 0.95, 0.6, 0.6, ts),
                    // Default min_score 0.35.
                    trk(2, "person", 0.3, 0.6, 0.6, ts),
                    u,
                    // A person outside the zone.
                    person(4, 0.2, 0.2, ts),
                ],
            )
        }),
    );
    assert!(all.is_empty(), "{all:?}");
}

#[test]
fn rule_min_score_overrides_the_default() {
    let mut e = engine(json!([{"id": "r", "kind": "intrusion", "zone": "yard",
                               "classes": ["person"], "min_score": 0.8}]));
    let all = run(
        &mut e,
        (0..5).map(|f| (f * 200, vec![trk(1, "person", 0.7, 0.6, 0.6, T0 + f * 200)])),
    );
    assert!(all.is_empty());
    let all = run(
        &mut e,
        (5..8).map(|f| {
            (
                f * 200,
                vec![trk(1, "person", 0.85, 0.6, 0.6, T0 + f * 200)],
            )
        }),
    );
    assert_eq!(kinds(&all), vec![AlarmEventType::New]);
}

#[test]
fn intrusion_waits_for_seconds_when_set() {
    let mut e = engine(json!([{"id": "r", "kind": "intrusion", "zone": "yard",
                               "classes": ["person"], "seconds": 2.0}]));
    let mut opened_at = None;
    for f in 0..20i64 {
        let ts = T0 + f * 200;
        for t in e.on_frame(ts, &[person(1, 0.6, 0.6, ts)]) {
            opened_at.get_or_insert(t.started_at_ms);
        }
    }
    assert_eq!(opened_at, Some(T0 + 2000));
}

#[test]
fn updates_are_material_rate_limited_and_flag_best() {
    let mut e = engine(intrusion_rule());
    let mut all = Vec::new();
    // 0..2 s: one person (new at 200 ms).
    for f in 0..10i64 {
        let ts = T0 + f * 200;
        all.extend(e.on_frame(ts, &[person(1, 0.6, 0.6, ts)]));
    }
    // 2..20 s: a second person joins; objects change at once, but the update
    // waits for the 5 s interval after the new.
    for f in 10..100i64 {
        let ts = T0 + f * 200;
        all.extend(e.on_frame(ts, &[person(1, 0.6, 0.6, ts), person(2, 0.5, 0.7, ts)]));
    }
    assert_eq!(
        kinds(&all),
        vec![AlarmEventType::New, AlarmEventType::Update]
    );
    let up = &all[1];
    assert_eq!(up.event_at_ms, T0 + 200 + 5000);
    assert_eq!(up.objects.len(), 2);
    assert!(up.best, "more objects is better evidence");
    assert_eq!(up.alarm_id, all[0].alarm_id);
    assert_eq!(up.started_at_ms, all[0].started_at_ms);

    // Back to one person at a much better score: material, but fewer
    // objects is not better evidence.
    let mut more = Vec::new();
    for f in 100..140i64 {
        let ts = T0 + f * 200;
        more.extend(e.on_frame(ts, &[trk(1, "person", 0.99, 0.6, 0.6, ts)]));
    }
    assert_eq!(kinds(&more), vec![AlarmEventType::Update]);
    assert!(!more[0].best);
    // Unchanged evidence: no more updates, however long.
    let more = run(
        &mut e,
        (140..400).map(|f| {
            (
                f * 200,
                vec![trk(1, "person", 0.99, 0.6, 0.6, T0 + f * 200)],
            )
        }),
    );
    assert!(more.is_empty());
}

#[test]
fn cooldown_suppresses_a_refire() {
    let mut e = engine(json!([{"id": "r", "kind": "intrusion", "zone": "yard",
                               "classes": ["person"], "cooldown_secs": 60.0}]));
    let inside = |f: i64| (f * 200, vec![person(1, 0.6, 0.6, T0 + f * 200)]);
    let mut all = run(&mut e, (0..5).map(inside));
    all.extend(run(&mut e, (5..30).map(|f| (f * 200, vec![]))));
    assert_eq!(kinds(&all), vec![AlarmEventType::New, AlarmEventType::End]);
    let ended = all[1].event_at_ms;
    // Back within the cooldown: nothing.
    let again = run(&mut e, (30..100).map(inside));
    assert!(again.is_empty());
    assert!(T0 + 99 * 200 < ended + 60_000);
    // After it: a new alarm with a new id.
    let mut later = Vec::new();
    for f in 0..5i64 {
        let ts = ended + 60_000 + f * 200;
        later.extend(e.on_frame(ts, &[person(1, 0.6, 0.6, ts)]));
    }
    assert_eq!(kinds(&later), vec![AlarmEventType::New]);
    assert_ne!(later[0].alarm_id, all[0].alarm_id);
}

#[test]
fn active_hours_use_local_time_and_suppress() {
    // T0 is 08:30 UTC = 16:30 at UTC+8.
    let rules = json!([{"id": "night", "kind": "intrusion", "zone": "yard",
                        "classes": ["person"], "active_hours": ["22:00-06:00"]},
                       {"id": "day", "kind": "intrusion", "zone": "yard",
                        "classes": ["person"], "active_hours": ["08:00-17:00"]}]);
    let mut e = engine(rules.clone());
    let inside = |f: i64| (f * 200, vec![person(1, 0.6, 0.6, T0 + f * 200)]);
    let all = run(&mut e, (0..5).map(inside));
    let ids: Vec<&str> = all.iter().map(|t| t.rule_id.as_str()).collect();
    assert_eq!(ids, vec!["day"], "16:30 local is day, not night");

    // Same instant, but the site at UTC+0: 08:30 is day too; at UTC-10 it is
    // 22:30 the day before: night.
    let mut opts = RuleOptions {
        utc_offset_minutes: -600,
        ..RuleOptions::default()
    };
    let mut e2 = RuleEngine::new("edge-07", &camera(rules.clone()), opts.clone()).unwrap();
    let all = run(&mut e2, (0..5).map(inside));
    let ids: Vec<&str> = all.iter().map(|t| t.rule_id.as_str()).collect();
    assert_eq!(ids, vec!["night"]);

    // The day window closes at 17:00 local: the open alarm ends at the first
    // frame after, and nothing new opens while the person stays.
    let close = T0 + 30 * 60_000;
    let tr = e.on_frame(close, &[person(1, 0.6, 0.6, close)]);
    assert_eq!(kinds(&tr), vec![AlarmEventType::End]);
    assert_eq!(tr[0].rule_id, "day");
    for f in 1..20 {
        let ts = close + f * 200;
        assert!(e.on_frame(ts, &[person(1, 0.6, 0.6, ts)]).is_empty());
    }
    opts.utc_offset_minutes = 2000;
    assert!(matches!(
        RuleEngine::new("e", &camera(rules), opts),
        Err(RuleError::Options {
            field: "utc_offset_minutes",
            ..
        })
    ));
}

fn dwell_rule() -> serde_json::Value {
    json!([{"id": "no-parking", "kind": "dwell", "zone": "yard", "classes": ["car"],
            "seconds": 60.0, "severity": "minor"}])
}

#[test]
fn dwell_fires_only_after_seconds_for_the_same_track() {
    let mut e = engine(dwell_rule());
    let mut all = Vec::new();
    // A car parks in the zone at 2 s intervals (motion-gated detection).
    for f in 0..=35i64 {
        let ts = T0 + f * 2000;
        all.extend(e.on_frame(ts, &[trk(7, "car", 0.8, 0.6, 0.7, ts)]));
    }
    assert_eq!(kinds(&all), vec![AlarmEventType::New]);
    assert_eq!(all[0].started_at_ms, T0 + 60_000);
    assert_eq!(all[0].kind, AlarmKind::Dwell);
    assert_eq!(all[0].severity, Severity::Minor);
    assert!(all[0].alarm_id.ends_with(".t7"), "{}", all[0].alarm_id);
    assert_eq!(all[0].objects[0].track_id, Some(7));
    // The tracker loses it (drove off and out of view): ends at once.
    let tr = e.on_frame(T0 + 72_000, &[]);
    assert_eq!(kinds(&tr), vec![AlarmEventType::End]);
    assert_eq!(tr[0].alarm_id, all[0].alarm_id);
}

#[test]
fn dwell_ignores_a_passing_vehicle_and_restarts_for_a_new_track() {
    let mut e = engine(dwell_rule());
    // A car drives through the zone over 20 s.
    let all = run(
        &mut e,
        (0..=20).map(|f| {
            (
                f * 1000,
                vec![trk(
                    1,
                    "car",
                    0.8,
                    0.3 + f as f32 * 0.03,
                    0.7,
                    T0 + f * 1000,
                )],
            )
        }),
    );
    assert!(all.is_empty());
    // Another track parks for 50 s, is re-identified as a new track (new id):
    // its clock starts again, so nothing before 60 s of its own.
    let all = run(
        &mut e,
        (30..=80).map(|f| (f * 1000, vec![trk(2, "car", 0.8, 0.6, 0.7, T0 + f * 1000)])),
    );
    assert!(all.is_empty());
    let all = run(
        &mut e,
        (81..=150).map(|f| (f * 1000, vec![trk(3, "car", 0.8, 0.6, 0.7, T0 + f * 1000)])),
    );
    assert_eq!(kinds(&all), vec![AlarmEventType::New]);
    assert_eq!(all[0].started_at_ms, T0 + 141_000);
}

#[test]
fn dwell_ends_when_the_track_leaves_and_cools_down_per_track() {
    let mut e = engine(
        json!([{"id": "p", "kind": "dwell", "zone": "yard", "classes": ["car"],
                               "seconds": 10.0, "cooldown_secs": 120.0}]),
    );
    let at = |id: u64, x: f32, s: i64| trk(id, "car", 0.8, x, 0.7, T0 + s * 1000);
    let mut all = run(
        &mut e,
        (0..=12).map(|s| (s * 1000, vec![at(1, 0.6, s), at(2, 0.5, s)])),
    );
    assert_eq!(kinds(&all), vec![AlarmEventType::New, AlarmEventType::New]);
    // Car 1 leaves the zone (still tracked); car 2 stays.
    all = run(
        &mut e,
        (13..=20).map(|s| (s * 1000, vec![at(1, 0.2, s), at(2, 0.5, s)])),
    );
    assert_eq!(kinds(&all), vec![AlarmEventType::End]);
    assert_eq!(all[0].objects.len(), 0);
    assert!(all[0].alarm_id.ends_with(".t1"));
    assert_eq!(
        all[0].event_at_ms,
        T0 + 15_000,
        "clear_ms after it was last inside, at 12 s"
    );
    // Car 1 comes back and stays: in cooldown, no alarm for it.
    all = run(
        &mut e,
        (21..=60).map(|s| (s * 1000, vec![at(1, 0.6, s), at(2, 0.5, s)])),
    );
    assert!(all.is_empty(), "{all:?}");
    // After the cooldown, it fires again.
    all = run(
        &mut e,
        (130..=150).map(|s| (s * 1000, vec![at(1, 0.6, s), at(2, 0.5, s)])),
    );
    assert_eq!(kinds(&all), vec![AlarmEventType::New]);
    assert!(all[0].alarm_id.ends_with(".t1"));
}

#[test]
fn dwell_border_jitter_keeps_the_clock() {
    let mut e = engine(dwell_rule());
    let all = run(
        &mut e,
        (0..=70).map(|s| {
            let x = if s % 3 == 0 { 0.39 } else { 0.41 };
            (s * 1000, vec![trk(1, "car", 0.8, x, 0.7, T0 + s * 1000)])
        }),
    );
    assert_eq!(kinds(&all), vec![AlarmEventType::New]);
    assert_eq!(
        all[0].started_at_ms,
        T0 + 61_000,
        "first inside frame at 60 s"
    );
}

fn line_rule(direction: &str) -> serde_json::Value {
    json!([{"id": "gate-cross", "kind": "line_crossing", "line": "gate",
            "classes": ["person"], "direction": direction}])
}

/// A person walking vertically at x through the gate line (y = 0.5).
fn walk(e: &mut RuleEngine, id: u64, x: f32, down: bool, t_start: i64) -> Vec<AlarmTransition> {
    let mut all = Vec::new();
    for f in 0..10i64 {
        let y = 0.3 + f as f32 * 0.04;
        let y = if down { y } else { 1.0 - y };
        let ts = t_start + f * 500;
        all.extend(e.on_frame(ts, &[person(id, x, y, ts)]));
    }
    all
}

#[test]
fn line_crossing_respects_direction() {
    for (dir, down_fires, up_fires) in [
        ("a_to_b", true, false),
        ("b_to_a", false, true),
        ("both", true, true),
    ] {
        let mut e = engine(line_rule(dir));
        let down = walk(&mut e, 1, 0.5, true, T0);
        let up = walk(&mut e, 2, 0.5, false, T0 + 10_000);
        let expect = |fires| {
            if fires {
                vec![AlarmEventType::New, AlarmEventType::End]
            } else {
                vec![]
            }
        };
        assert_eq!(kinds(&down), expect(down_fires), "{dir} down");
        assert_eq!(kinds(&up), expect(up_fires), "{dir} up");
        for tr in down.iter().chain(&up) {
            assert_eq!(tr.kind, AlarmKind::LineCrossing);
            assert_eq!(tr.zone.as_deref(), Some("gate"));
        }
    }
}

#[test]
fn line_crossing_new_and_end_together_at_the_crossing() {
    let mut e = engine(line_rule("both"));
    let all = walk(&mut e, 5, 0.5, true, T0);
    assert_eq!(all.len(), 2);
    let (new, end) = (&all[0], &all[1]);
    // y goes 0.3, 0.34, ... : first below the line at frame 5 (y = 0.5 is in
    // the band, 0.54 at frame 6).
    assert_eq!(new.started_at_ms, T0 + 6 * 500);
    assert_eq!(end.ended_at_ms, Some(new.started_at_ms));
    assert_eq!(new.alarm_id, end.alarm_id);
    assert!(new.best);
    assert_eq!(new.objects[0].track_id, Some(5));
}

#[test]
fn line_crossing_beside_the_segment_or_jitter_on_it_does_not_count() {
    let mut e = engine(line_rule("both"));
    // x = 0.9 is beyond B (0.8): passing beside the line's end.
    assert!(walk(&mut e, 1, 0.9, true, T0).is_empty());
    // A foot jittering within the hysteresis band.
    let all = run(
        &mut e,
        (0..30).map(|f| {
            let y = if f % 2 == 0 { 0.498 } else { 0.502 };
            (
                20_000 + f * 200,
                vec![person(2, 0.5, y, T0 + 20_000 + f * 200)],
            )
        }),
    );
    assert!(all.is_empty());
}

#[test]
fn line_crossing_cooldown_is_per_track() {
    let mut e = engine(json!([{"id": "g", "kind": "line_crossing", "line": "gate",
                               "classes": ["person"], "cooldown_secs": 30.0}]));
    let a = walk(&mut e, 1, 0.5, true, T0);
    let b = walk(&mut e, 1, 0.5, false, T0 + 6000);
    let c = walk(&mut e, 2, 0.4, true, T0 + 12_000);
    assert_eq!(a.len(), 2);
    assert!(b.is_empty(), "same track back within the cooldown");
    assert_eq!(c.len(), 2, "another track is not affected");
}

fn crowd_rule() -> serde_json::Value {
    json!([{"id": "crowd", "kind": "crowd", "zone": "yard", "classes": ["person"],
            "min_count": 3, "seconds": 2.0}])
}

fn people(n: u64, ts: i64) -> Vec<Track> {
    (0..n)
        .map(|i| person(i + 1, 0.42 + i as f32 * 0.03, 0.6, ts))
        .collect()
}

#[test]
fn crowd_new_update_end_as_counts_go_up_and_down() {
    let mut e = engine(crowd_rule());
    let mut all = Vec::new();
    let mut t = 0i64;
    let mut step = |e: &mut RuleEngine, n: u64, secs: i64, all: &mut Vec<AlarmTransition>| {
        for _ in 0..secs * 2 {
            all.extend(e.on_frame(T0 + t, &people(n, T0 + t)));
            t += 500;
        }
    };
    step(&mut e, 2, 5, &mut all); // under min_count
    assert!(all.is_empty());
    step(&mut e, 3, 10, &mut all); // 3 for 10 s: new after 2 s
    assert_eq!(kinds(&all), vec![AlarmEventType::New]);
    assert_eq!(all[0].started_at_ms, T0 + 7000);
    assert_eq!(all[0].objects.len(), 3);
    step(&mut e, 8, 10, &mut all); // up to 8: update
    step(&mut e, 4, 10, &mut all); // down to 4: update
    step(&mut e, 1, 10, &mut all); // under min_count: end after clear_ms
    assert_eq!(
        kinds(&all),
        vec![
            AlarmEventType::New,
            AlarmEventType::Update,
            AlarmEventType::Update,
            AlarmEventType::End
        ]
    );
    assert_eq!(all[1].objects.len(), 8);
    assert!(all[1].best);
    assert_eq!(all[2].objects.len(), 4);
    assert!(!all[2].best);
    // Last frame with 4 people at 34.5 s, then clear_ms.
    assert_eq!(all[3].event_at_ms, T0 + 34_500 + 3000);
    assert!(all.iter().all(|t| t.alarm_id == all[0].alarm_id));
    assert!(all.iter().all(|t| t.kind == AlarmKind::Crowd));
}

#[test]
fn crowd_small_count_changes_are_not_material() {
    let opts = RuleOptions {
        inertia_frames: 1,
        ..RuleOptions::default()
    };
    let mut e = RuleEngine::new(
        "edge-07",
        &camera(json!([{"id": "crowd", "kind": "crowd", "zone": "yard",
                        "classes": ["person"], "min_count": 10}])),
        opts,
    )
    .unwrap();
    let mut all = Vec::new();
    for f in 0..60i64 {
        // 10 or 11 people, alternating every second.
        let n = 10 + (f / 2) as u64 % 2;
        let ts = T0 + f * 500;
        let tracks: Vec<Track> = (0..n)
            .map(|i| {
                person(
                    i + 1,
                    0.41 + i as f32 * 0.03,
                    0.6 + (i % 2) as f32 * 0.1,
                    ts,
                )
            })
            .collect();
        all.extend(e.on_frame(ts, &tracks));
    }
    assert_eq!(
        kinds(&all),
        vec![AlarmEventType::New],
        "±1 of 10 is under 20 %"
    );
}

#[test]
fn camera_offline_new_end_and_it_ends_other_alarms() {
    let mut e = engine(intrusion_rule());
    let open = run(
        &mut e,
        (0..3).map(|f| (f * 200, vec![person(1, 0.6, 0.6, T0 + f * 200)])),
    );
    assert_eq!(kinds(&open), vec![AlarmEventType::New]);

    let tr = e.on_stream_state(T0 + 10_000, false);
    assert_eq!(kinds(&tr), vec![AlarmEventType::New, AlarmEventType::End]);
    let off = &tr[0];
    assert_eq!(off.kind, AlarmKind::CameraOffline);
    assert_eq!(off.rule_id, CAMERA_OFFLINE_RULE_ID);
    assert_eq!(off.severity, Severity::Major);
    assert_eq!(off.zone, None);
    assert!(!off.best);
    assert_eq!(tr[1].alarm_id, open[0].alarm_id);
    // Repeated reports change nothing.
    assert!(e.on_stream_state(T0 + 12_000, false).is_empty());
    assert_eq!(e.open_alarms(), 1);
    let tr = e.on_stream_state(T0 + 20_000, true);
    assert_eq!(kinds(&tr), vec![AlarmEventType::End]);
    assert_eq!(tr[0].alarm_id, off.alarm_id);
    assert_eq!(tr[0].ended_at_ms, Some(T0 + 20_000));
    assert!(e.on_stream_state(T0 + 21_000, true).is_empty());

    // A camera without rules has it too, and a frame ends it.
    let mut bare = engine(json!([]));
    assert_eq!(
        kinds(&bare.on_stream_state(T0, false)),
        vec![AlarmEventType::New]
    );
    let tr = bare.on_frame(T0 + 5000, &[]);
    assert_eq!(kinds(&tr), vec![AlarmEventType::End]);
    assert_eq!(tr[0].kind, AlarmKind::CameraOffline);
}

#[test]
fn alarm_ids_are_stable_within_and_unique_across_alarms() {
    let mut e = engine(intrusion_rule());
    let mut all = Vec::new();
    for round in 0..2i64 {
        let base = round * 60_000;
        for f in 0..40i64 {
            let ts = T0 + base + f * 200;
            let n = if f < 20 { 1 } else { 2 };
            let tracks: Vec<Track> = (0..n)
                .map(|i| person(i + 1, 0.5 + i as f32 * 0.1, 0.6, ts))
                .collect();
            all.extend(e.on_frame(ts, &tracks));
        }
        for f in 0..20i64 {
            all.extend(e.on_frame(T0 + base + 8000 + f * 200, &[]));
        }
    }
    let mut by_id: HashMap<&str, Vec<AlarmEventType>> = HashMap::new();
    for t in &all {
        by_id.entry(&t.alarm_id).or_default().push(t.event);
    }
    assert_eq!(by_id.len(), 2);
    for events in by_id.values() {
        assert_eq!(
            events,
            &vec![
                AlarmEventType::New,
                AlarmEventType::Update,
                AlarmEventType::End
            ]
        );
    }
    let first = &all[0].alarm_id;
    assert_eq!(
        first,
        &format!("edge-07.cam-gate-n.yard-intrusion.{}", T0 + 200)
    );
}

#[test]
fn flush_ends_everything_and_events_validate() {
    let rules = json!([
        {"id": "i", "kind": "intrusion", "zone": "yard", "classes": ["person"]},
        {"id": "d", "kind": "dwell", "zone": "yard", "classes": ["person"], "seconds": 1.0},
        {"id": "c", "kind": "crowd", "zone": "yard", "classes": ["person"], "min_count": 2},
    ]);
    let mut e = engine(rules);
    let mut all = run(&mut e, (0..10).map(|f| (f * 200, people(2, T0 + f * 200))));
    all.extend(e.on_stream_state(T0 + 2100, false));
    all.extend(e.on_frame(T0 + 2200, &people(2, T0 + 2200)));
    all.extend(e.on_frame(T0 + 2400, &people(2, T0 + 2400)));
    assert!(e.open_alarms() > 0);
    let flushed = e.flush(T0 + 3000);
    assert!(flushed.iter().all(|t| t.event == AlarmEventType::End));
    all.extend(flushed);
    assert_eq!(e.open_alarms(), 0);
    assert!(e.flush(T0 + 4000).is_empty());

    let mut open: HashMap<String, usize> = HashMap::new();
    for (seq, t) in all.iter().enumerate() {
        t.to_event("hx-park", "edge-07", e.camera_id(), seq as u64)
            .validate()
            .unwrap();
        match t.event {
            AlarmEventType::New => assert!(open.insert(t.alarm_id.clone(), seq).is_none()),
            AlarmEventType::Update => assert!(open.contains_key(&t.alarm_id)),
            AlarmEventType::End => assert!(open.remove(&t.alarm_id).is_some()),
        }
    }
    assert!(open.is_empty());
}

#[test]
fn rejects_inconsistent_rules() {
    let cases = [
        (
            json!([{"id": "r", "kind": "intrusion", "zone": "nope", "classes": ["person"]}]),
            "zone",
        ),
        (
            json!([{"id": "r", "kind": "intrusion", "classes": ["person"]}]),
            "zone",
        ),
        (
            json!([{"id": "r", "kind": "line_crossing", "line": "nope", "classes": ["person"]}]),
            "line",
        ),
        (
            json!([{"id": "camera_offline", "kind": "intrusion", "zone": "yard", "classes": ["person"]}]),
            "id",
        ),
        (
            json!([{"id": "r", "kind": "intrusion", "zone": "yard", "classes": []}]),
            "classes",
        ),
        (
            json!([{"id": "r", "kind": "crowd", "zone": "yard", "classes": ["person"]}]),
            "min_count",
        ),
        (
            json!([{"id": "r", "kind": "intrusion", "zone": "yard", "classes": ["person"], "min_score": 1.5}]),
            "min_score",
        ),
        (
            json!([{"id": "r", "kind": "intrusion", "zone": "yard", "classes": ["person"]},
                   {"id": "r", "kind": "dwell", "zone": "yard", "classes": ["car"], "seconds": 5.0}]),
            "id",
        ),
    ];
    for (rules, want) in cases {
        match RuleEngine::new("e", &camera(rules.clone()), RuleOptions::default()) {
            Err(RuleError::Rule {
                field,
                camera,
                rule,
                ..
            }) => {
                assert_eq!(field, want, "{rules}");
                assert_eq!(camera, "cam-gate-n");
                assert!(!rule.is_empty());
            }
            other => panic!("{rules}: {other:?}"),
        }
    }
}

/// A small deterministic generator (splitmix64) for the randomised test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Property: random track streams, stream-state flips and clock jumps never
/// panic; every alarm begins with `new`, has at most one `end`, which is
/// its last event; event times never precede the start; every event is a
/// valid protocol payload; after `flush` every alarm has ended.
#[test]
fn random_streams_keep_the_lifecycle() {
    let rules = json!([
        {"id": "i", "kind": "intrusion", "zone": "yard", "classes": ["person"], "cooldown_secs": 1.0},
        {"id": "d", "kind": "dwell", "zone": "yard", "classes": ["person", "car"], "seconds": 1.5},
        {"id": "c", "kind": "crowd", "zone": "yard", "classes": ["person"], "min_count": 2, "seconds": 0.5},
        {"id": "l", "kind": "line_crossing", "line": "gate", "classes": ["person", "car"]},
        {"id": "h", "kind": "intrusion", "zone": "yard", "classes": ["car"], "active_hours": ["16:31-16:33"]},
    ]);
    let classes = ["person", "car", "dog"];
    let mut seen: HashMap<(AlarmKind, AlarmEventType), usize> = HashMap::new();
    for seed in 0..300u64 {
        let mut rng = Rng(seed);
        let opts = RuleOptions {
            inertia_frames: 1 + rng.below(3) as u32,
            update_interval_ms: rng.below(3000) as i64,
            require_confirmed: rng.below(2) == 0,
            ..RuleOptions::default()
        };
        let mut e = RuleEngine::new("edge-07", &camera(rules.clone()), opts).unwrap();
        let mut ts = T0;
        let mut all = Vec::new();
        let mut tracks: Vec<Track> = Vec::new();
        let mut next_id = 1;
        for _ in 0..rng.below(400) {
            ts += match rng.below(20) {
                0 => -(rng.below(5000) as i64),
                1 => rng.below(200_000) as i64,
                _ => rng.below(1000) as i64,
            };
            match rng.below(30) {
                0 => all.extend(e.on_stream_state(ts, rng.below(2) == 0)),
                1 => all.extend(e.flush(ts)),
                _ => {
                    // Move, add and drop tracks.
                    for t in &mut tracks {
                        t.bbox = t
                            .bbox
                            .map(|v| (v + (rng.unit() - 0.5) * 0.1).clamp(0.0, 1.0));
                        t.bbox = [
                            t.bbox[0].min(t.bbox[2]),
                            t.bbox[1].min(t.bbox[3]),
                            t.bbox[0].max(t.bbox[2]),
                            t.bbox[1].max(t.bbox[3]),
                        ];
                        t.score = rng.unit();
                        t.last_seen_ms = if rng.below(4) == 0 {
                            t.last_seen_ms
                        } else {
                            ts
                        };
                        t.confirmed |= rng.below(2) == 0;
                    }
                    tracks.retain(|_| rng.below(15) != 0);
                    if rng.below(3) == 0 && tracks.len() < 12 {
                        let (x, y) = (rng.unit(), rng.unit());
                        let class = classes[rng.below(3) as usize];
                        let mut t = trk(next_id, class, rng.unit(), x, y, ts);
                        t.bbox = t.bbox.map(|v| v.clamp(0.0, 1.0));
                        t.confirmed = false;
                        tracks.push(t);
                        next_id += 1;
                    }
                    all.extend(e.on_frame(ts, &tracks));
                }
            }
        }
        all.extend(e.flush(ts));
        assert_eq!(e.open_alarms(), 0, "seed {seed}");

        let mut state: HashMap<&str, AlarmEventType> = HashMap::new();
        for (seq, t) in all.iter().enumerate() {
            let prev = state.get(t.alarm_id.as_str()).copied();
            match (prev, t.event) {
                (None, AlarmEventType::New)
                | (Some(AlarmEventType::New | AlarmEventType::Update), AlarmEventType::Update)
                | (Some(AlarmEventType::New | AlarmEventType::Update), AlarmEventType::End) => {}
                other => panic!("seed {seed}: bad sequence {other:?} for {}", t.alarm_id),
            }
            state.insert(&t.alarm_id, t.event);
            *seen.entry((t.kind, t.event)).or_default() += 1;
            assert!(t.event_at_ms >= t.started_at_ms, "seed {seed}");
            assert!(!(t.best && t.event == AlarmEventType::End), "seed {seed}");
            t.to_event("hx-park", "edge-07", "cam-gate-n", seq as u64)
                .validate()
                .unwrap_or_else(|err| panic!("seed {seed}: {err}: {t:?}"));
        }
        assert!(
            state.values().all(|ev| *ev == AlarmEventType::End),
            "seed {seed}: an alarm was left open"
        );
    }
    // The streams exercise every kind and every event, so the checks above
    // are not vacuous.
    for kind in [
        AlarmKind::Intrusion,
        AlarmKind::Dwell,
        AlarmKind::Crowd,
        AlarmKind::CameraOffline,
    ] {
        for ev in AlarmEventType::ALL {
            if kind == AlarmKind::CameraOffline && *ev == AlarmEventType::Update {
                continue;
            }
            assert!(
                seen.contains_key(&(kind, *ev)),
                "no {kind} {ev} in any stream: {seen:?}"
            );
        }
    }
    assert!(
        seen.contains_key(&(AlarmKind::LineCrossing, AlarmEventType::New)),
        "{seen:?}"
    );
}

/// The pure pipeline end to end: detections -> tracker -> rules, for a car
/// parking in a no-parking zone under motion-gated detection (every 2.04 s,
/// with a missed detection and detector jitter), next to a passing car.
#[test]
fn tracker_and_rules_together_raise_one_dwell_alarm() {
    use crate::track::{Det, Tracker, TrackerConfig};

    let mut tracker = Tracker::new(TrackerConfig::default()).unwrap();
    let mut e = engine(dwell_rule());
    let mut all = Vec::new();
    let car = |cx: f32, cy: f32, score: f32| Det {
        class: "car".into(),
        score,
        bbox: [cx - 0.06, cy - 0.08, cx + 0.06, cy + 0.04],
    };
    for f in 0..60i64 {
        let ts = T0 + f * 2040;
        let jitter = if f % 2 == 0 { 0.003 } else { -0.003 };
        let mut dets = Vec::new();
        if f != 20 {
            dets.push(car(0.6 + jitter, 0.62, 0.7 + jitter));
        }
        // A car driving through the zone for a few frames.
        if (10..16).contains(&f) {
            dets.push(car(0.3 + (f - 10) as f32 * 0.08, 0.5, 0.8));
        }
        let tracks = tracker.update(ts, &dets).to_vec();
        all.extend(e.on_frame(ts, &tracks));
    }
    all.extend(e.flush(T0 + 60 * 2040));
    assert_eq!(kinds(&all), vec![AlarmEventType::New, AlarmEventType::End]);
    let new = &all[0];
    // Confirmed at the second detection (2.04 s), inside from then on.
    assert_eq!(new.started_at_ms, T0 + 2040 + 30 * 2040);
    assert_eq!(new.objects.len(), 1);
    assert_eq!(new.objects[0].track_id, Some(1));
}
