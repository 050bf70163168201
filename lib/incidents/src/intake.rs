//! Alarm intake: from decoded MQTT messages to stored alarms and incidents.
//!
//! # Guarantees
//!
//! - **Once.** Every alarm event is stored once per `(alarm_id, seq)`: the
//!   edge re-sends after reconnects, and a re-send changes nothing (it is
//!   acknowledged again, so the edge can forget it).
//! - **Durable before ack.** [`Incidents::ingest_alarm`] returns the
//!   sequence numbers to acknowledge only after the transaction holding the
//!   event (and whatever it opened or changed) committed. A snapshot's
//!   sequence number (named by the alarm event's `snapshot.seq`) is
//!   returned once the JPEG with that sha256 is on disk (fsynced) and
//!   registered, whichever of the two messages arrives last.
//! - **Correlation.** While an incident for the same camera, rule and zone
//!   (or sensor and rule) is open, a new alarm joins it as evidence instead
//!   of opening another; the key is held in a unique column that is cleared
//!   when the incident closes or is cancelled, so two open incidents for one
//!   key cannot exist. `update` events keep the alarm's state and raise the
//!   incident's severity; `end` events record the end in its timeline.
//! - **Intake by catalogue.** A new alarm files as the catalogue item the
//!   edge named (the rule's or sensor's `catalogue_item`), else its kind's
//!   mapping; the item's `auto_file` says whether the case is filed at once
//!   (confident video discovery) or waits for a supervisor. Camera-offline
//!   and device-offline alarms open equipment-fault incidents, which the
//!   catalogue sends to the maintenance department.
//! - **Location.** The camera's (or sensor's) point from `site.toml`, via
//!   the edge's `point`; else the alarm's own `location`.

use parkwatch_config::{AlarmKind as SiteAlarmKind, SensorKind};
use parkwatch_protocol::{AlarmEvent, AlarmEventType, AlarmKind, Severity};
use serde_json::json;
use tracing::{info, warn};

use super::feed::{self, AlarmFeed};
use super::model::{AlarmRecord, EntryKind, Incident, LonLat, Role, Source, Status, TimelineEntry};
use super::service::{IncidentError, Incidents, IntakeOutcome, SystemNote};
use super::store::{self, DbContext, raw};

/// The correlation key of an alarm: camera + rule + zone, or sensor + rule.
pub fn correlation_key(ev: &AlarmEvent) -> String {
    let zone = ev.zone.as_deref().unwrap_or("-");
    match (&ev.camera, &ev.sensor) {
        (Some(c), _) if ev.kind.is_camera_kind() => {
            format!("{}/camera:{c}/rule:{}/zone:{zone}", ev.site, ev.rule_id)
        }
        (_, Some(s)) => format!("{}/sensor:{s}/rule:{}", ev.site, ev.rule_id),
        _ => format!(
            "{}/edge:{}/rule:{}/zone:{zone}",
            ev.site, ev.edge, ev.rule_id
        ),
    }
}

/// The site catalogue's name for a protocol alarm kind: the same type
/// since the vocabulary is defined once in `parkwatch-protocol`.
pub fn site_kind(k: AlarmKind) -> SiteAlarmKind {
    k
}

/// Whether an alarm kind is an equipment fault.
pub fn is_equipment_fault(k: AlarmKind) -> bool {
    matches!(k, AlarmKind::CameraOffline | AlarmKind::DeviceOffline)
}

fn severity_rank(s: Option<&str>) -> Option<Severity> {
    s.and_then(|s| s.parse().ok())
}

impl Incidents {
    /// Where an alarm happened: its edge's point, else its own location.
    pub fn alarm_location(&self, ev: &AlarmEvent) -> Option<LonLat> {
        self.site
            .edge(&ev.edge)
            .and_then(|e| e.point.as_deref())
            .and_then(|p| self.site.point(p))
            .map(|p| LonLat {
                lon: p.lon,
                lat: p.lat,
            })
            .or(ev.location.map(|l| LonLat {
                lon: l.lon,
                lat: l.lat,
            }))
    }

    fn sensor_kind(&self, ev: &AlarmEvent) -> Option<SensorKind> {
        let id = ev.sensor.as_deref()?;
        self.site
            .edge(&ev.edge)
            .and_then(|e| e.sensors.iter().find(|s| s.id == id))
            .map(|s| s.kind)
    }

    /// Stores one alarm event and correlates it (see the module doc).
    pub async fn ingest_alarm(&self, ev: &AlarmEvent) -> Result<IntakeOutcome, IncidentError> {
        let b = self.store.backend();
        let now = self.now_ms();
        let mut tx = self.store.begin().await?;

        let snapshot_stored = match &ev.snapshot {
            Some(s) => raw::blob_exists(&mut tx, b, &s.sha256).await?,
            None => false,
        };
        let mut acks = vec![ev.seq];
        if let Some(s) = ev.snapshot.as_ref().filter(|_| snapshot_stored) {
            acks.push(s.seq);
        }

        if raw::alarm_event_stored(&mut tx, b, &ev.alarm_id, ev.seq).await? {
            drop(tx);
            let existing = {
                let mut conn = self.store.reader().acquire().await.ctx(b, "connecting")?;
                raw::load_alarm(&mut conn, b, &ev.alarm_id).await?
            };
            return Ok(IntakeOutcome {
                acks,
                incident_id: existing.and_then(|a| a.incident_id),
                opened: false,
                duplicate: true,
            });
        }
        raw::insert_alarm_event(&mut tx, b, ev, now).await?;

        let snapshot_sha = ev
            .snapshot
            .as_ref()
            .filter(|_| snapshot_stored)
            .map(|s| s.sha256.clone());
        if let Some(sha) = &snapshot_sha {
            raw::link_snapshot(&mut tx, b, &ev.alarm_id, sha, &ev.edge, now).await?;
        }

        let existing = raw::load_alarm(&mut tx, b, &ev.alarm_id).await?;
        let location = self.alarm_location(ev);
        let unit_grid = location
            .and_then(|l| self.site.unit_grid_at([l.lon, l.lat]))
            .map(|g| g.code.clone());
        let ended = ev.event == AlarmEventType::End;
        let mut alarm = AlarmRecord {
            alarm_id: ev.alarm_id.clone(),
            site: ev.site.clone(),
            edge: ev.edge.clone(),
            camera: ev.camera.clone(),
            sensor: ev.sensor.clone(),
            rule_id: ev.rule_id.clone(),
            kind: ev.kind.as_str().to_owned(),
            severity: ev.severity.as_str().to_owned(),
            zone: ev.zone.clone(),
            state: if ended { "ended" } else { "active" }.to_owned(),
            started_at_ms: ev.started_at_ms,
            last_event_at_ms: ev.event_at_ms,
            ended_at_ms: ev.ended_at_ms,
            incident_id: existing.as_ref().and_then(|a| a.incident_id),
            snapshot: snapshot_sha
                .clone()
                .or_else(|| existing.as_ref().and_then(|a| a.snapshot.clone())),
            location,
            unit_grid,
            message: ev.message.clone(),
            received_at_ms: existing.as_ref().map_or(now, |a| a.received_at_ms),
        };
        if let Some(prev) = &existing {
            // Events can arrive out of order after a reconnect: keep the latest.
            if prev.last_event_at_ms > ev.event_at_ms {
                alarm.last_event_at_ms = prev.last_event_at_ms;
                alarm.severity = prev.severity.clone();
                alarm.message = prev.message.clone();
            }
            if prev.state == "ended" {
                alarm.state = "ended".into();
                alarm.ended_at_ms = prev.ended_at_ms.or(alarm.ended_at_ms);
            }
        }

        let mut last_feed = 0;
        let mut opened = false;
        if existing.is_none() {
            let key = correlation_key(ev);
            match raw::open_incident_for(&mut tx, b, &key).await? {
                Some(open) => {
                    alarm.incident_id = Some(open.id);
                    let attachments = raw::snapshots_of(&mut tx, b, &ev.alarm_id).await?;
                    last_feed = self
                        .join_as_evidence(&mut tx, &open, ev, attachments, now)
                        .await?;
                }
                None => {
                    let (id, feed_id) = self
                        .open_from_alarm(&mut tx, ev, location, &key, now)
                        .await?;
                    alarm.incident_id = Some(id);
                    last_feed = feed_id;
                    opened = true;
                }
            }
        } else if let Some(iid) = alarm.incident_id
            && let Some(cur) = raw::load_incident(&mut tx, b, iid).await?
            && !cur.status.is_terminal()
        {
            let rose =
                severity_rank(Some(ev.severity.as_str())) > severity_rank(cur.severity.as_deref());
            if ended || rose {
                let mut inc = cur.clone();
                if rose {
                    inc.severity = Some(ev.severity.as_str().to_owned());
                }
                let note = SystemNote {
                    kind: if ended {
                        EntryKind::AlarmEnd
                    } else {
                        EntryKind::AlarmUpdate
                    },
                    note: ev.message.clone(),
                    attachments: snapshot_sha.iter().cloned().collect(),
                    data: json!({
                        "alarm_id": ev.alarm_id,
                        "seq": ev.seq,
                        "event": ev.event,
                        "severity": ev.severity,
                        "ended_at_ms": ev.ended_at_ms,
                    }),
                };
                last_feed = self.apply_system(&mut tx, &cur, inc, now, note).await?;
            }
        }
        raw::upsert_alarm(&mut tx, b, &alarm, existing.is_some()).await?;
        let incident_id = alarm.incident_id;
        let alarm_feed = feed::push_alarm(
            &mut tx,
            b,
            now,
            AlarmFeed {
                event: ev.event.as_str().to_owned(),
                alarm,
                opened_incident: opened,
            },
        )
        .await?;
        self.store.commit(tx).await?;
        self.notify(alarm_feed.max(last_feed));
        Ok(IntakeOutcome {
            acks,
            incident_id,
            opened,
            duplicate: false,
        })
    }

    /// Adds a new alarm to an open incident as evidence.
    async fn join_as_evidence(
        &self,
        tx: &mut store::WriteTx,
        open: &Incident,
        ev: &AlarmEvent,
        attachments: Vec<String>,
        now: i64,
    ) -> Result<i64, IncidentError> {
        let mut inc = open.clone();
        inc.alarm_count = open.alarm_count + 1;
        if severity_rank(Some(ev.severity.as_str())) > severity_rank(open.severity.as_deref()) {
            inc.severity = Some(ev.severity.as_str().to_owned());
        }
        let note = SystemNote {
            kind: EntryKind::Evidence,
            note: ev.message.clone(),
            attachments,
            data: json!({
                "alarm_id": ev.alarm_id,
                "seq": ev.seq,
                "severity": ev.severity,
                "started_at_ms": ev.started_at_ms,
            }),
        };
        self.apply_system(tx, open, inc, now, note).await
    }

    /// Opens an incident for a new alarm; returns (incident id, last feed id).
    async fn open_from_alarm(
        &self,
        tx: &mut store::WriteTx,
        ev: &AlarmEvent,
        location: Option<LonLat>,
        key: &str,
        now: i64,
    ) -> Result<(i64, i64), IncidentError> {
        let b = self.store.backend();
        let kind = site_kind(ev.kind);
        let sensor_kind = self.sensor_kind(ev);
        let item = match self
            .site
            .item_for(kind, ev.catalogue_item.as_deref(), sensor_kind)
        {
            Some(i) => i,
            None => {
                warn!(alarm_id = %ev.alarm_id, item = ?ev.catalogue_item, "Alarm names an unknown catalogue item; using its kind's mapping.");
                self.site.item_for(kind, None, sensor_kind).ok_or_else(|| {
                    IncidentError::invalid(
                        "catalogue_item",
                        format!("no catalogue item for alarm kind {}", ev.kind),
                    )
                })?
            }
        };
        let item = item.clone();
        let id = raw::next_id(&mut *tx, b, "incidents").await?;
        let source = if ev.kind.is_camera_kind() {
            Source::Video
        } else {
            Source::Sensor
        };
        let mut inc = self.skeleton(id, source, &item, location, now);
        inc.description = ev.message.clone();
        inc.severity = Some(ev.severity.as_str().to_owned());
        inc.camera = ev.camera.clone();
        inc.sensor = ev.sensor.clone();
        inc.edge = Some(ev.edge.clone());
        inc.rule_id = Some(ev.rule_id.clone());
        inc.zone = ev.zone.clone();
        inc.alarm_kind = Some(ev.kind.as_str().to_owned());
        inc.alarm_count = 1;
        inc.equipment_fault = is_equipment_fault(ev.kind);
        if item.auto_file {
            inc.status = Status::Filed;
            inc.filed_at_ms = Some(now);
        }
        raw::insert_incident(&mut *tx, b, &inc, Some(key)).await?;
        let attachments = raw::snapshots_of(&mut *tx, b, &ev.alarm_id).await?;
        let mut entries = vec![TimelineEntry {
            seq: 0,
            at_ms: now,
            kind: EntryKind::Report,
            actor: "ingest".into(),
            role: Role::System,
            from_status: None,
            to_status: Status::Reported,
            note: ev.message.clone(),
            attachments,
            data: json!({
                "alarm_id": ev.alarm_id,
                "seq": ev.seq,
                "kind": ev.kind,
                "severity": ev.severity,
                "camera": ev.camera,
                "sensor": ev.sensor,
                "zone": ev.zone,
                "started_at_ms": ev.started_at_ms,
                "unit_grid": inc.unit_grid,
                "grid_worker": inc.grid_worker,
                "outside_grid": inc.outside_grid,
            }),
        }];
        if item.auto_file {
            entries.push(TimelineEntry {
                seq: 0,
                at_ms: now,
                kind: EntryKind::File,
                actor: "ingest".into(),
                role: Role::System,
                from_status: Some(Status::Reported),
                to_status: Status::Filed,
                note: Some(format!(
                    "filed at once: catalogue item {} is auto_file",
                    item.code
                )),
                attachments: Vec::new(),
                data: json!({}),
            });
        }
        let mut last_feed = 0;
        for mut e in entries {
            e.seq = raw::append_entry(&mut *tx, b, id, &e).await?;
            // The feed shows the incident as it is after the whole intake.
            last_feed = feed::push_incident(&mut *tx, b, &inc, &e).await?;
        }
        info!(incident = id, alarm_id = %ev.alarm_id, item = %inc.item, status = %inc.status, grid = ?inc.unit_grid, "Incident opened from an alarm.");
        Ok((id, last_feed))
    }

    /// Stores a snapshot JPEG and links it to its alarm (see the module doc).
    pub async fn ingest_snapshot(
        &self,
        edge: &str,
        alarm_id: &str,
        jpeg: Vec<u8>,
    ) -> Result<IntakeOutcome, IncidentError> {
        let b = self.store.backend();
        let len = i64::try_from(jpeg.len()).unwrap_or(i64::MAX);
        let (sha, mime) = self.blobs.put(jpeg).await?;
        let now = self.now_ms();
        let mut tx = self.store.begin().await?;
        raw::register_blob(&mut tx, b, &sha, len, mime, now).await?;
        let new_link = raw::link_snapshot(&mut tx, b, alarm_id, &sha, edge, now).await?;
        let mut acks = raw::snapshot_seqs(&mut tx, b, alarm_id, &sha).await?;
        let mut incident_id = None;
        let mut last_feed = 0;
        if let Some(mut alarm) = raw::load_alarm(&mut tx, b, alarm_id).await? {
            incident_id = alarm.incident_id;
            alarm.snapshot = Some(sha.clone());
            raw::upsert_alarm(&mut tx, b, &alarm, true).await?;
            if new_link
                && let Some(iid) = alarm.incident_id
                && let Some(cur) = raw::load_incident(&mut tx, b, iid).await?
                && !cur.status.is_terminal()
            {
                let note = SystemNote {
                    kind: EntryKind::Evidence,
                    note: Some(format!("snapshot of alarm {alarm_id}")),
                    attachments: vec![sha.clone()],
                    data: json!({ "alarm_id": alarm_id, "snapshot": sha }),
                };
                last_feed = self
                    .apply_system(&mut tx, &cur, cur.clone(), now, note)
                    .await?;
            }
        }
        self.store.commit(tx).await?;
        self.notify(last_feed);
        acks.sort_unstable();
        acks.dedup();
        Ok(IntakeOutcome {
            acks,
            incident_id,
            opened: false,
            duplicate: !new_link,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlation_keys_separate_cameras_rules_and_zones() {
        let a = parkwatch_protocol::examples::alarm_new();
        let mut other_zone = a.clone();
        other_zone.zone = Some("south".into());
        let mut other_alarm_same_place = a.clone();
        other_alarm_same_place.alarm_id = "another".into();
        assert_eq!(
            correlation_key(&a),
            correlation_key(&other_alarm_same_place)
        );
        assert_ne!(correlation_key(&a), correlation_key(&other_zone));
        let s = parkwatch_protocol::examples::alarm_sensor();
        assert!(
            correlation_key(&s).contains("/sensor:"),
            "{}",
            correlation_key(&s)
        );
        assert!(is_equipment_fault(AlarmKind::CameraOffline));
        assert!(!is_equipment_fault(AlarmKind::Intrusion));
    }
}
