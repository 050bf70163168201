//! The incident service: every operation on incidents, each one atomic.
//!
//! [`Incidents`] owns the store, the site, the blob store, the clock and
//! the feed notifier. Each operation that changes something runs in one
//! write transaction: read, check ([`super::workflow::check`]), write the
//! incident with its version check, append the timeline entry and the feed
//! row, commit; only then is the feed woken. A failure anywhere rolls all
//! of it back.

use std::sync::Arc;

use parkwatch_config::{Catalogue, CatalogueItem, Site, TimeUnit};
use serde_json::json;
use tokio::sync::watch;
use tracing::{info, warn};

use super::assign::{assign, supervisor_of};
use super::blobs::{BlobError, BlobStore, is_sha256};
use super::deadline::{DeadlineError, WorkCalendar};
use super::feed::{self, FeedFilter, FeedRow};
use super::model::{
    Action, AlarmDetail, AlarmRecord, AssigneeKind, EntryKind, Incident, IncidentDetail, LonLat,
    Page, Principal, Role, Source, Status, TimelineEntry,
};
use super::store::{self, DbContext, Store, StoreError, raw};
use super::workflow::{self, StepError, Subject};
use parkwatch_durable::clock::Clock;

pub use super::wire::FieldError;

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum IncidentError {
    /// No such incident, alarm or blob.
    #[error("{0} not found")]
    NotFound(String),
    /// The workflow refused the step (role, assignment or status).
    #[error(transparent)]
    Step(#[from] StepError),
    /// The role may not do this at all.
    #[error("{0}")]
    Forbidden(String),
    /// The incident changed since the caller read it.
    #[error("{0}")]
    Conflict(String),
    /// Input fields are invalid.
    #[error("invalid input: {}", .0.iter().map(|f| format!("{}: {}", f.field, f.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blob store.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The work calendar.
    #[error(transparent)]
    Deadline(#[from] DeadlineError),
}

impl IncidentError {
    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        IncidentError::Invalid(vec![FieldError::new(field, message)])
    }
}

/// A report from a channel (`POST /api/v1/incidents`), already parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReport {
    /// The channel.
    pub source: Source,
    /// Catalogue item code.
    pub item: String,
    /// Summary; default the item's name.
    pub title: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Where.
    pub location: LonLat,
    /// Address as told.
    pub address: Option<String>,
    /// sha256 of uploaded photos.
    pub photos: Vec<String>,
    /// Reporter's name.
    pub reporter: Option<String>,
    /// Reporter's contact.
    pub reporter_contact: Option<String>,
}

/// A workflow step request (`POST /api/v1/incidents/{id}/actions`), parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRequest {
    /// The step.
    pub action: Action,
    /// Free text (required for cancel and rework).
    pub note: Option<String>,
    /// sha256 of uploaded photos (handle needs at least one: the after-photo).
    pub attachments: Vec<String>,
    /// Dispatch: to this department.
    pub department: Option<String>,
    /// Dispatch: to this worker.
    pub worker: Option<String>,
    /// The version the caller saw; a different current version is a conflict.
    pub version: Option<i64>,
}

/// Filters of `GET /api/v1/incidents`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncidentFilter {
    /// Any of these statuses (empty: all).
    pub status: Vec<Status>,
    /// Any of these sources (empty: all).
    pub source: Vec<Source>,
    /// Catalogue class code.
    pub class: Option<String>,
    /// Catalogue item code.
    pub item: Option<String>,
    /// Responsible or assigned department.
    pub department: Option<String>,
    /// Grid code at any level.
    pub grid: Option<String>,
    /// Assigned worker or department id.
    pub assignee: Option<String>,
    /// Camera id.
    pub camera: Option<String>,
    /// Overdue or not.
    pub overdue: Option<bool>,
    /// Outside every grid or not.
    pub outside_grid: Option<bool>,
    /// Reported at or after.
    pub from_ms: Option<i64>,
    /// Reported before.
    pub to_ms: Option<i64>,
    /// Page size.
    pub limit: i64,
    /// Items to skip.
    pub offset: i64,
}

/// Filters of `GET /api/v1/alarms`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlarmFilter {
    /// Camera id.
    pub camera: Option<String>,
    /// Edge id.
    pub edge: Option<String>,
    /// Alarm kind.
    pub kind: Option<String>,
    /// `active` or `ended`.
    pub state: Option<String>,
    /// Incident id.
    pub incident_id: Option<i64>,
    /// Started at or after.
    pub from_ms: Option<i64>,
    /// Started before.
    pub to_ms: Option<i64>,
    /// Page size.
    pub limit: i64,
    /// Items to skip.
    pub offset: i64,
}

/// What the intake of one MQTT message did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntakeOutcome {
    /// Outbox sequence numbers of the sending edge that are now stored
    /// durably and may be acknowledged (the alarm event's own, and its
    /// snapshot's once the snapshot is stored).
    pub acks: Vec<u64>,
    /// The incident the alarm belongs to, if any.
    pub incident_id: Option<i64>,
    /// Whether this message opened a new incident.
    pub opened: bool,
    /// Whether the message was a re-send of one already stored.
    pub duplicate: bool,
}

/// Everything an operation needs, shared by the API and the consumer.
#[derive(Debug)]
pub struct Incidents {
    pub(crate) store: Store,
    pub(crate) site: Arc<Site>,
    pub(crate) calendar: WorkCalendar,
    pub(crate) blobs: BlobStore,
    pub(crate) clock: Arc<dyn Clock>,
    feed_tx: watch::Sender<i64>,
}

/// A state change to apply inside a write transaction.
pub(crate) struct Change {
    pub(crate) incident: Incident,
    pub(crate) expected_version: i64,
    pub(crate) entry: TimelineEntry,
    pub(crate) clear_correlation: bool,
}

/// The timeline entry of a change ingest itself makes (see
/// [`Incidents::apply_system`]).
pub(crate) struct SystemNote {
    pub(crate) kind: EntryKind,
    pub(crate) note: Option<String>,
    pub(crate) attachments: Vec<String>,
    pub(crate) data: serde_json::Value,
}

impl Incidents {
    /// The service over an opened store.
    pub async fn new(
        store: Store,
        site: Arc<Site>,
        blobs: BlobStore,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        let offset = site.info.utc_offset_minutes().unwrap_or(8 * 60);
        let calendar = WorkCalendar::new(site.calendar.clone(), offset);
        let mut conn = store
            .reader()
            .acquire()
            .await
            .ctx(store.backend(), "connecting")?;
        let latest = feed::latest_id(&mut conn, store.backend()).await?;
        let (feed_tx, _) = watch::channel(latest);
        Ok(Incidents {
            store,
            site,
            calendar,
            blobs,
            clock,
            feed_tx,
        })
    }

    /// The site.
    pub fn site(&self) -> &Site {
        &self.site
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The blob store.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// Now, by the service's clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// A receiver that changes whenever the feed grows (value: newest id).
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.feed_tx.subscribe()
    }

    pub(crate) fn notify(&self, id: i64) {
        self.feed_tx.send_if_modified(|cur| {
            if id > *cur {
                *cur = id;
                true
            } else {
                false
            }
        });
    }

    pub(crate) fn catalogue(&self) -> &Catalogue {
        &self.site.catalogue
    }

    /// Applies one change in `tx`: saves the incident (version-checked),
    /// appends its timeline entry and feed row. Returns the feed id.
    pub(crate) async fn apply(
        &self,
        tx: &mut store::WriteTx,
        change: Change,
    ) -> Result<i64, IncidentError> {
        let b = self.store.backend();
        let saved = raw::save_incident(
            &mut *tx,
            b,
            &change.incident,
            change.expected_version,
            change.clear_correlation,
        )
        .await?;
        if !saved {
            return Err(IncidentError::Conflict(format!(
                "incident {} changed while this step was applied; read it again and retry",
                change.incident.id
            )));
        }
        let mut entry = change.entry;
        entry.seq = raw::append_entry(&mut *tx, b, change.incident.id, &entry).await?;
        Ok(feed::push_incident(&mut *tx, b, &change.incident, &entry).await?)
    }

    /// Applies `inc`, a change ingest itself made to `cur` that keeps its
    /// status (evidence, an alarm update or end, an escalation): bumps the
    /// version, stamps `now` and records `note` as a system timeline entry.
    /// Returns the feed id.
    pub(crate) async fn apply_system(
        &self,
        tx: &mut store::WriteTx,
        cur: &Incident,
        mut inc: Incident,
        now: i64,
        note: SystemNote,
    ) -> Result<i64, IncidentError> {
        inc.version = cur.version + 1;
        inc.updated_at_ms = now;
        let entry = TimelineEntry {
            seq: 0,
            at_ms: now,
            kind: note.kind,
            actor: "ingest".into(),
            role: Role::System,
            from_status: Some(cur.status),
            to_status: cur.status,
            note: note.note,
            attachments: note.attachments,
            data: note.data,
        };
        self.apply(
            tx,
            Change {
                incident: inc,
                expected_version: cur.version,
                entry,
                clear_correlation: false,
            },
        )
        .await
    }

    /// Builds an incident skeleton for a catalogue item.
    pub(crate) fn skeleton(
        &self,
        id: i64,
        source: Source,
        item: &CatalogueItem,
        location: Option<LonLat>,
        now: i64,
    ) -> Incident {
        let a = assign(&self.site, location);
        Incident {
            id,
            status: Status::Reported,
            source,
            item: item.code.clone(),
            class: item.class.clone(),
            title: item.name.clone(),
            description: None,
            severity: None,
            location,
            address: None,
            unit_grid: a.unit,
            community_grid: a.community,
            responsibility_grid: a.responsibility,
            grid_worker: a.worker,
            outside_grid: a.outside,
            department: item.department.clone(),
            assignee_kind: None,
            assignee: None,
            equipment_fault: false,
            camera: None,
            sensor: None,
            edge: None,
            rule_id: None,
            zone: None,
            alarm_kind: None,
            alarm_count: 0,
            reporter: None,
            reporter_contact: None,
            time_limit: i64::from(item.time_limit),
            time_unit: time_unit_str(item.time_unit).to_owned(),
            created_at_ms: now,
            updated_at_ms: now,
            filed_at_ms: None,
            dispatched_at_ms: None,
            due_at_ms: None,
            handled_at_ms: None,
            closed_at_ms: None,
            cancelled_at_ms: None,
            overdue: false,
            escalated_at_ms: None,
            rework_count: 0,
            version: 1,
        }
    }

    /// Checks that every sha256 in `list` is a stored blob.
    pub(crate) async fn check_attachments(
        &self,
        conn: &mut sqlx::AnyConnection,
        field: &str,
        list: &[String],
    ) -> Result<(), IncidentError> {
        let mut bad = Vec::new();
        for (i, sha) in list.iter().enumerate() {
            let f = format!("{field}[{i}]");
            if !is_sha256(sha) {
                bad.push(FieldError::new(f, "not a sha256 (64 lowercase hex digits)"));
            } else if !raw::blob_exists(&mut *conn, self.store.backend(), sha).await? {
                bad.push(FieldError::new(
                    f,
                    format!("no blob {sha}; upload it first with POST /api/v1/blobs"),
                ));
            }
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(IncidentError::Invalid(bad))
        }
    }

    // ------------------------------------------------------------ reports

    /// Opens an incident from a channel report.
    pub async fn report(
        &self,
        who: &Principal,
        r: NewReport,
    ) -> Result<IncidentDetail, IncidentError> {
        if !workflow::may_report(who.role) {
            return Err(IncidentError::Forbidden(format!(
                "role {} may not report incidents (allowed: {})",
                who.role,
                workflow::REPORT_ROLES
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let Some(item) = self.catalogue().item(&r.item).cloned() else {
            return Err(IncidentError::invalid(
                "item",
                format!("no catalogue item {:?}", r.item),
            ));
        };
        let b = self.store.backend();
        let now = self.now_ms();
        let mut tx = self.store.begin().await?;
        self.check_attachments(&mut tx, "photos", &r.photos).await?;
        let id = raw::next_id(&mut tx, b, "incidents").await?;
        let mut inc = self.skeleton(id, r.source, &item, Some(r.location), now);
        if let Some(t) = r.title {
            inc.title = t;
        }
        inc.description = r.description;
        inc.address = r.address;
        inc.reporter = r.reporter;
        inc.reporter_contact = r.reporter_contact;
        raw::insert_incident(&mut tx, b, &inc, None).await?;
        let mut entry = TimelineEntry {
            seq: 0,
            at_ms: now,
            kind: EntryKind::Report,
            actor: who.name.clone(),
            role: who.role,
            from_status: None,
            to_status: Status::Reported,
            note: inc.description.clone(),
            attachments: r.photos,
            data: json!({
                "source": inc.source,
                "item": inc.item,
                "unit_grid": inc.unit_grid,
                "grid_worker": inc.grid_worker,
                "outside_grid": inc.outside_grid,
            }),
        };
        entry.seq = raw::append_entry(&mut tx, b, id, &entry).await?;
        let feed_id = feed::push_incident(&mut tx, b, &inc, &entry).await?;
        self.store.commit(tx).await?;
        self.notify(feed_id);
        info!(incident = id, source = %inc.source, item = %inc.item, actor = %who.name, "Incident reported.");
        self.detail(id).await
    }

    // ------------------------------------------------------------ workflow

    /// Takes one workflow step.
    pub async fn act(
        &self,
        who: &Principal,
        id: i64,
        req: StepRequest,
    ) -> Result<IncidentDetail, IncidentError> {
        workflow::role_may(who.role, req.action)?;
        let mut bad = Vec::new();
        let needs_note = matches!(req.action, Action::Cancel | Action::Rework);
        if needs_note && req.note.as_deref().is_none_or(|n| n.trim().is_empty()) {
            bad.push(FieldError::new(
                "note",
                format!("{} needs a note saying why", req.action),
            ));
        }
        if req.action == Action::Handle && req.attachments.is_empty() {
            bad.push(FieldError::new(
                "attachments",
                "handling needs at least one after-photo (upload with POST /api/v1/blobs)",
            ));
        }
        let target = if req.action == Action::Dispatch {
            match (&req.department, &req.worker) {
                (Some(_), Some(_)) => {
                    bad.push(FieldError::new(
                        "worker",
                        "give either department or worker, not both",
                    ));
                    None
                }
                (Some(d), None) if self.site.department(d).is_none() => {
                    bad.push(FieldError::new(
                        "department",
                        format!("no department {d:?}"),
                    ));
                    None
                }
                (None, Some(w)) if !self.site.workers.iter().any(|x| &x.id == w) => {
                    bad.push(FieldError::new("worker", format!("no worker {w:?}")));
                    None
                }
                (Some(d), None) => Some((AssigneeKind::Department, d.clone())),
                (None, Some(w)) => Some((AssigneeKind::Worker, w.clone())),
                (None, None) => None,
            }
        } else {
            for (f, v) in [("department", &req.department), ("worker", &req.worker)] {
                if v.is_some() {
                    bad.push(FieldError::new(f, "only dispatch takes a target"));
                }
            }
            None
        };
        if !bad.is_empty() {
            return Err(IncidentError::Invalid(bad));
        }

        let b = self.store.backend();
        let now = self.now_ms();
        let mut tx = self.store.begin().await?;
        let Some(cur) = raw::load_incident(&mut tx, b, id).await? else {
            return Err(IncidentError::NotFound(format!("incident {id}")));
        };
        if let Some(v) = req.version
            && v != cur.version
        {
            return Err(IncidentError::Conflict(format!(
                "incident {id} changed since you read it: it is now version {} ({}), you sent version {v}; read it again",
                cur.version, cur.status
            )));
        }
        let to = workflow::check(
            who,
            req.action,
            Subject {
                id,
                status: cur.status,
                assignee: cur.assignee_kind.zip(cur.assignee.as_deref()),
            },
        )?;
        self.check_attachments(&mut tx, "attachments", &req.attachments)
            .await?;

        let mut inc = cur.clone();
        inc.status = to;
        inc.updated_at_ms = now;
        inc.version = cur.version + 1;
        let mut data = json!({});
        let mut clear = false;
        match req.action {
            Action::File => inc.filed_at_ms = Some(now),
            Action::Cancel => {
                inc.cancelled_at_ms = Some(now);
                clear = true;
            }
            Action::Dispatch => {
                let (kind, who_to) =
                    target.unwrap_or((AssigneeKind::Department, cur.department.clone()));
                let unit = parse_time_unit(&cur.time_unit);
                let limit = u32::try_from(cur.time_limit).unwrap_or(u32::MAX);
                let due = self.calendar.due_at(now, limit, unit)?;
                inc.assignee_kind = Some(kind);
                inc.assignee = Some(who_to.clone());
                inc.dispatched_at_ms = Some(now);
                inc.due_at_ms = Some(due);
                data = json!({
                    "assignee_kind": kind,
                    "assignee": who_to,
                    "due_at_ms": due,
                    "time_limit": cur.time_limit,
                    "time_unit": cur.time_unit,
                });
            }
            Action::Accept => {}
            Action::Handle => {
                inc.handled_at_ms = Some(now);
                if let Some(due) = cur.due_at_ms
                    && now > due
                    && !cur.overdue
                {
                    inc.overdue = true;
                    data = json!({ "overdue": true, "due_at_ms": due });
                }
            }
            Action::Close => {
                inc.closed_at_ms = Some(now);
                clear = true;
                data = json!({ "on_time": !inc.overdue });
            }
            Action::Rework => {
                inc.rework_count = cur.rework_count + 1;
                data = json!({
                    "rework_count": inc.rework_count,
                    "assignee_kind": cur.assignee_kind,
                    "assignee": cur.assignee,
                    "due_at_ms": cur.due_at_ms,
                });
            }
        }
        let entry = TimelineEntry {
            seq: 0,
            at_ms: now,
            kind: req.action.into(),
            actor: who.name.clone(),
            role: who.role,
            from_status: Some(cur.status),
            to_status: to,
            note: req.note,
            attachments: req.attachments,
            data,
        };
        let feed_id = self
            .apply(
                &mut tx,
                Change {
                    incident: inc,
                    expected_version: cur.version,
                    entry,
                    clear_correlation: clear,
                },
            )
            .await?;
        self.store.commit(tx).await?;
        self.notify(feed_id);
        info!(incident = id, action = %req.action, from = %cur.status, to = %to, actor = %who.name, role = %who.role, "Workflow step.");
        self.detail(id).await
    }

    // ------------------------------------------------------------ overdue

    /// Marks every case whose time limit passed while it was still with
    /// its handler as overdue, and escalates it (timeline + feed). Returns
    /// how many were escalated.
    pub async fn check_overdue(&self) -> Result<usize, IncidentError> {
        let b = self.store.backend();
        let now = self.now_ms();
        let mut tx = self.store.begin().await?;
        let due = raw::overdue_incidents(&mut tx, b, now).await?;
        let mut last_feed = 0;
        for cur in &due {
            let mut inc = cur.clone();
            inc.overdue = true;
            inc.escalated_at_ms = Some(now);
            let to = inc
                .responsibility_grid
                .as_deref()
                .and_then(|g| supervisor_of(&self.site, g));
            let note = SystemNote {
                kind: EntryKind::Escalate,
                note: Some(format!(
                    "time limit ({} {}) passed; escalated",
                    cur.time_limit,
                    cur.time_unit.replace('_', " ")
                )),
                attachments: Vec::new(),
                data: json!({
                    "due_at_ms": cur.due_at_ms,
                    "assignee_kind": cur.assignee_kind,
                    "assignee": cur.assignee,
                    "escalated_to": to,
                    "department": cur.department,
                }),
            };
            last_feed = self.apply_system(&mut tx, cur, inc, now, note).await?;
        }
        self.store.commit(tx).await?;
        self.notify(last_feed);
        for i in &due {
            warn!(incident = i.id, due_at_ms = ?i.due_at_ms, assignee = ?i.assignee, "Incident overdue; escalated.");
        }
        Ok(due.len())
    }

    /// Runs [`Incidents::check_overdue`] every `every` until `stop` turns true.
    pub async fn run_overdue_checker(
        self: Arc<Self>,
        every: std::time::Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if let Err(e) = self.check_overdue().await {
                warn!(err = %e, "Overdue check failed; will retry.");
            }
        }
    }

    // ------------------------------------------------------------ reads

    /// One incident with its timeline and alarms.
    pub async fn detail(&self, id: i64) -> Result<IncidentDetail, IncidentError> {
        let b = self.store.backend();
        let mut conn = self.store.reader().acquire().await.ctx(b, "connecting")?;
        let Some(incident) = raw::load_incident(&mut conn, b, id).await? else {
            return Err(IncidentError::NotFound(format!("incident {id}")));
        };
        let timeline = raw::load_timeline(&mut conn, b, id).await?;
        let alarms = raw::alarms_of(&mut conn, b, id).await?;
        Ok(IncidentDetail {
            incident,
            timeline,
            alarms,
        })
    }

    /// A page of incidents, newest first.
    pub async fn list(&self, f: &IncidentFilter) -> Result<Page<Incident>, IncidentError> {
        let b = self.store.backend();
        let mut conn = self.store.reader().acquire().await.ctx(b, "connecting")?;
        Ok(raw::list_incidents(&mut conn, b, f).await?)
    }

    /// One alarm with every event stored for it.
    pub async fn alarm_detail(&self, alarm_id: &str) -> Result<AlarmDetail, IncidentError> {
        let b = self.store.backend();
        let mut conn = self.store.reader().acquire().await.ctx(b, "connecting")?;
        let Some(alarm) = raw::load_alarm(&mut conn, b, alarm_id).await? else {
            return Err(IncidentError::NotFound(format!("alarm {alarm_id:?}")));
        };
        let events = raw::alarm_events(&mut conn, b, alarm_id).await?;
        Ok(AlarmDetail { alarm, events })
    }

    /// A page of alarms, newest first.
    pub async fn alarms(&self, f: &AlarmFilter) -> Result<Page<AlarmRecord>, IncidentError> {
        let b = self.store.backend();
        let mut conn = self.store.reader().acquire().await.ctx(b, "connecting")?;
        Ok(raw::list_alarms(&mut conn, b, f).await?)
    }

    /// Feed rows after `after_id` matching `f` (at most `limit`), and the
    /// id up to which the feed was scanned: the next call continues from
    /// there, so rows that do not match are not scanned again.
    pub async fn feed_after(
        &self,
        after_id: i64,
        f: &FeedFilter,
        limit: i64,
    ) -> Result<(Vec<FeedRow>, i64), IncidentError> {
        let b = self.store.backend();
        let mut conn = self.store.reader().acquire().await.ctx(b, "connecting")?;
        let upto = feed::latest_id(&mut conn, b).await?;
        if upto <= after_id {
            return Ok((Vec::new(), after_id));
        }
        let rows = feed::read_after(&mut conn, b, after_id, upto, f, limit).await?;
        let scanned = match rows.last() {
            Some(last) if i64::try_from(rows.len()).unwrap_or(i64::MAX) >= limit => last.id,
            _ => upto,
        };
        Ok((rows, scanned))
    }

    /// The newest feed id (0 when empty).
    pub async fn latest_feed_id(&self) -> Result<i64, IncidentError> {
        let b = self.store.backend();
        let mut conn = self.store.reader().acquire().await.ctx(b, "connecting")?;
        Ok(feed::latest_id(&mut conn, b).await?)
    }

    // ------------------------------------------------------------ blobs

    /// Stores an uploaded photo; returns `(sha256, mime type)`.
    pub async fn put_blob(&self, bytes: Vec<u8>) -> Result<(String, &'static str), IncidentError> {
        let len = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
        let (sha, mime) = self.blobs.put(bytes).await?;
        let mut tx = self.store.begin().await?;
        raw::register_blob(
            &mut tx,
            self.store.backend(),
            &sha,
            len,
            mime,
            self.now_ms(),
        )
        .await?;
        self.store.commit(tx).await?;
        Ok((sha, mime))
    }

    /// A stored blob with its mime type.
    pub async fn get_blob(&self, sha: &str) -> Result<(Vec<u8>, String), IncidentError> {
        if !is_sha256(sha) {
            return Err(IncidentError::invalid(
                "sha256",
                "not a sha256 (64 lowercase hex digits)",
            ));
        }
        let b = self.store.backend();
        let mut conn = self.store.reader().acquire().await.ctx(b, "connecting")?;
        let Some(mime) = raw::blob_type(&mut conn, b, sha).await? else {
            return Err(IncidentError::NotFound(format!("blob {sha}")));
        };
        drop(conn);
        match self.blobs.get(sha).await? {
            Some(bytes) => Ok((bytes, mime)),
            None => Err(IncidentError::NotFound(format!(
                "blob {sha} (file missing)"
            ))),
        }
    }
}

/// The wire name of a time unit.
pub fn time_unit_str(u: TimeUnit) -> &'static str {
    match u {
        TimeUnit::EmergencyHours => "emergency_hours",
        TimeUnit::WorkingHours => "working_hours",
        TimeUnit::WorkingDays => "working_days",
    }
}

/// Parses a stored time unit (unknown text counts as emergency hours, the
/// strictest reading).
pub fn parse_time_unit(s: &str) -> TimeUnit {
    match s {
        "working_hours" => TimeUnit::WorkingHours,
        "working_days" => TimeUnit::WorkingDays,
        _ => TimeUnit::EmergencyHours,
    }
}
