//! The incident data model as the API and the store see it: statuses,
//! sources, roles, actions, the incident record and its timeline entries,
//! alarms and their events, and the events of the live feed.
//!
//! Every enum here has a stable snake_case wire name (`as_str`, serde and
//! the database use the same one), so a value written by one version is
//! read back by the next. Timestamps are ms since the Unix epoch (UTC).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// Declares a string enum with its wire names, `ALL`, `as_str`, `Display`
/// and `FromStr`.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $wire)] $variant ),+
        }

        // By hand: the derive does not see renames made inside a macro.
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($wire),+]))
                    .description(Some(concat!("A ", $what, ": one of ", $($wire, " "),+)))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl ToSchema for $name {}

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            /// The accepted wire names, comma separated (for error messages).
            pub fn expected() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| format!("unknown {} {:?} (expected one of: {})", $what, s, Self::expected()))
            }
        }
    };
}

wire_enum! {
    /// Where an incident is in the GB/T 30428 closed loop.
    pub enum Status ("status") {
        /// 信息采集: reported, waiting for a supervisor to file or cancel it.
        Reported = "reported",
        /// 案卷建立: filed as a case, waiting for dispatch.
        Filed = "filed",
        /// Cancelled by a supervisor (not a case: duplicate, false alarm, out of scope). Terminal.
        Cancelled = "cancelled",
        /// 任务派遣: dispatched to a department or worker; the time limit runs.
        Dispatched = "dispatched",
        /// The department or worker accepted the task.
        Accepted = "accepted",
        /// 处理反馈: handled, feedback and after-photo given; waiting for verification.
        Handled = "handled",
        /// 核查结案: verified and closed. Terminal.
        Closed = "closed",
    }
}

impl Status {
    /// Whether no workflow step leads out of this status.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Closed | Status::Cancelled)
    }

    /// Whether the time limit is running (the task is with the handler).
    pub fn is_handling(self) -> bool {
        matches!(self, Status::Dispatched | Status::Accepted)
    }
}

wire_enum! {
    /// The channel an incident came in through.
    pub enum Source ("source") {
        /// The 12345 citizen service hotline.
        Hotline12345 = "hotline_12345",
        /// A grid worker's field report.
        GridWorker = "grid_worker",
        /// The WeChat official account.
        Wechat = "wechat",
        /// The web portal.
        WebPortal = "web_portal",
        /// SMS.
        Sms = "sms",
        /// Snap-and-report photo app.
        SnapReport = "snap_report",
        /// Video discovery (camera alarms).
        Video = "video",
        /// IoT sensors.
        Sensor = "sensor",
    }
}

wire_enum! {
    /// What a bearer token may do.
    pub enum Role ("role") {
        /// 监督员/值班长: files or cancels reports, verifies and closes or sends back for rework.
        Supervisor = "supervisor",
        /// 派遣员: dispatches filed cases to a department or worker.
        Dispatcher = "dispatcher",
        /// A department: accepts and handles the cases dispatched to it.
        Department = "department",
        /// A grid worker: reports from the field, accepts and handles cases dispatched to them.
        Worker = "worker",
        /// A channel integration (hotline, WeChat, portal ...): may only report.
        Reporter = "reporter",
        /// Reads everything, changes nothing.
        Viewer = "viewer",
        /// Ingest itself (alarm intake, overdue checks); never a token's role.
        System = "system",
    }
}

wire_enum! {
    /// A workflow step a person takes (`POST /incidents/{id}/actions`).
    pub enum Action ("action") {
        /// File a reported incident as a case (立案).
        File = "file",
        /// Cancel a reported or filed incident (不立案/作废).
        Cancel = "cancel",
        /// Dispatch a filed case to a department or worker (派遣); starts the time limit.
        Dispatch = "dispatch",
        /// The assignee accepts the task (签收).
        Accept = "accept",
        /// The assignee reports it handled, with an after-photo (处理反馈).
        Handle = "handle",
        /// The supervisor verifies and closes (核查结案).
        Close = "close",
        /// The supervisor sends it back for rework (返工).
        Rework = "rework",
    }
}

wire_enum! {
    /// What a timeline entry records: a workflow step, or something ingest noticed.
    pub enum EntryKind ("timeline entry kind") {
        /// Opened from a report or an alarm.
        Report = "report",
        /// See [`Action::File`].
        File = "file",
        /// See [`Action::Cancel`].
        Cancel = "cancel",
        /// See [`Action::Dispatch`].
        Dispatch = "dispatch",
        /// See [`Action::Accept`].
        Accept = "accept",
        /// See [`Action::Handle`].
        Handle = "handle",
        /// See [`Action::Close`].
        Close = "close",
        /// See [`Action::Rework`].
        Rework = "rework",
        /// Another alarm for the same camera, rule and zone joined as evidence.
        Evidence = "evidence",
        /// A correlated alarm's severity rose.
        AlarmUpdate = "alarm_update",
        /// A correlated alarm ended.
        AlarmEnd = "alarm_end",
        /// The time limit passed before the case was handled; escalated.
        Escalate = "escalate",
    }
}

impl From<Action> for EntryKind {
    fn from(a: Action) -> Self {
        match a {
            Action::File => EntryKind::File,
            Action::Cancel => EntryKind::Cancel,
            Action::Dispatch => EntryKind::Dispatch,
            Action::Accept => EntryKind::Accept,
            Action::Handle => EntryKind::Handle,
            Action::Close => EntryKind::Close,
            Action::Rework => EntryKind::Rework,
        }
    }
}

wire_enum! {
    /// Who a case is dispatched to.
    pub enum AssigneeKind ("assignee kind") {
        /// A department of `site.toml`.
        Department = "department",
        /// A grid worker of `workers.toml`.
        Worker = "worker",
    }
}

/// Who is acting: a token's identity, or ingest itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Principal {
    /// The token's name (or `"ingest"` for the system).
    pub name: String,
    /// The token's role.
    pub role: Role,
    /// For `department` tokens: the department id they act for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// For `worker` tokens: the worker id they act as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
}

impl Principal {
    /// Ingest itself, the actor of intake and overdue entries.
    pub fn system() -> Self {
        Principal {
            name: "ingest".into(),
            role: Role::System,
            department: None,
            worker: None,
        }
    }
}

/// A WGS 84 position.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LonLat {
    /// Longitude, -180..=180.
    pub lon: f64,
    /// Latitude, -90..=90.
    pub lat: f64,
}

/// One incident (案卷) as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Incident {
    /// Id, increasing.
    pub id: i64,
    /// Where it is in the loop.
    pub status: Status,
    /// The channel it came in through.
    pub source: Source,
    /// Catalogue item code (小类), e.g. `"0105"`.
    pub item: String,
    /// Catalogue class code (大类), e.g. `"01"`.
    pub class: String,
    /// Title: the item's name, or the reporter's summary.
    pub title: String,
    /// Free text from the report.
    pub description: Option<String>,
    /// Highest severity of the alarms behind it (alarm incidents).
    pub severity: Option<String>,
    /// Where it is.
    pub location: Option<LonLat>,
    /// Address as reported, if any.
    pub address: Option<String>,
    /// Unit grid (万米单元网格) code, if the location lies in one.
    pub unit_grid: Option<String>,
    /// Community grid code.
    pub community_grid: Option<String>,
    /// Responsibility grid code (for locations outside every grid: the nearest one).
    pub responsibility_grid: Option<String>,
    /// The grid worker on duty for the location (or the responsibility grid's supervisor).
    pub grid_worker: Option<String>,
    /// Whether the location lies outside every unit grid.
    pub outside_grid: bool,
    /// The department responsible by the catalogue.
    pub department: String,
    /// Who it is dispatched to.
    pub assignee_kind: Option<AssigneeKind>,
    /// Department id or worker id it is dispatched to.
    pub assignee: Option<String>,
    /// Whether it is an equipment fault (camera or device offline).
    pub equipment_fault: bool,
    /// Camera id (video alarms).
    pub camera: Option<String>,
    /// Sensor id (sensor alarms).
    pub sensor: Option<String>,
    /// Edge id (alarms).
    pub edge: Option<String>,
    /// Rule id (alarms).
    pub rule_id: Option<String>,
    /// Zone id (zoned alarms).
    pub zone: Option<String>,
    /// Alarm kind (alarms).
    pub alarm_kind: Option<String>,
    /// Alarms correlated into it.
    pub alarm_count: i64,
    /// Reporter's name (channel reports).
    pub reporter: Option<String>,
    /// Reporter's contact (channel reports).
    pub reporter_contact: Option<String>,
    /// Time limit, in `time_unit`s.
    pub time_limit: i64,
    /// `emergency_hours` | `working_hours` | `working_days`.
    pub time_unit: String,
    /// Reported at.
    pub created_at_ms: i64,
    /// Last changed at.
    pub updated_at_ms: i64,
    /// Filed at.
    pub filed_at_ms: Option<i64>,
    /// First dispatched at (the time limit starts).
    pub dispatched_at_ms: Option<i64>,
    /// Due at: dispatch time plus the time limit on the work calendar.
    pub due_at_ms: Option<i64>,
    /// Last handled at.
    pub handled_at_ms: Option<i64>,
    /// Closed at.
    pub closed_at_ms: Option<i64>,
    /// Cancelled at.
    pub cancelled_at_ms: Option<i64>,
    /// Whether the time limit passed before it was handled.
    pub overdue: bool,
    /// When it was escalated for being overdue.
    pub escalated_at_ms: Option<i64>,
    /// How often it was sent back for rework.
    pub rework_count: i64,
    /// Optimistic-concurrency version; increases with every change.
    pub version: i64,
}

/// One append-only timeline entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TimelineEntry {
    /// 1, 2, ... within the incident.
    pub seq: i64,
    /// When.
    pub at_ms: i64,
    /// What happened.
    pub kind: EntryKind,
    /// Who: token name, or `ingest`.
    pub actor: String,
    /// In which role.
    pub role: Role,
    /// Status before (none for the first entry).
    pub from_status: Option<Status>,
    /// Status after.
    pub to_status: Status,
    /// Free text.
    pub note: Option<String>,
    /// sha256 of attached blobs (photos, snapshots); fetch with `GET /api/v1/blobs/{sha256}`.
    pub attachments: Vec<String>,
    /// Details: dispatch target, due time, alarm id, ...
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: serde_json::Value,
}

/// An alarm as ingest keeps it (the latest state of one alarm id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AlarmRecord {
    /// The edge's stable alarm id.
    pub alarm_id: String,
    /// Site id.
    pub site: String,
    /// Edge id.
    pub edge: String,
    /// Camera id (camera alarms).
    pub camera: Option<String>,
    /// Sensor id (sensor alarms).
    pub sensor: Option<String>,
    /// Rule id.
    pub rule_id: String,
    /// Alarm kind, e.g. `intrusion`.
    pub kind: String,
    /// Current severity.
    pub severity: String,
    /// Zone id.
    pub zone: Option<String>,
    /// `active` or `ended`.
    pub state: String,
    /// Started at.
    pub started_at_ms: i64,
    /// Latest event at.
    pub last_event_at_ms: i64,
    /// Ended at.
    pub ended_at_ms: Option<i64>,
    /// The incident it belongs to.
    pub incident_id: Option<i64>,
    /// sha256 of its latest snapshot, once stored.
    pub snapshot: Option<String>,
    /// Where it happened.
    pub location: Option<LonLat>,
    /// Unit grid of the location.
    pub unit_grid: Option<String>,
    /// Free text.
    pub message: Option<String>,
    /// First received by ingest at.
    pub received_at_ms: i64,
}

/// One event of an alarm as the edge sent it and ingest stored it, once
/// per `(alarm_id, seq)`: re-sends after reconnects are not stored again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AlarmEventRecord {
    /// The edge's per-edge sequence number of the event.
    pub seq: i64,
    /// `new`, `update` or `end`.
    pub event: String,
    /// When the edge saw it (ms since the epoch).
    pub event_at_ms: i64,
    /// When ingest stored it (ms since the epoch).
    pub received_at_ms: i64,
    /// sha256 of the snapshot that came with it, once stored.
    pub snapshot_sha256: Option<String>,
}

/// An alarm with every event stored for it, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AlarmDetail {
    /// The alarm's latest state.
    pub alarm: AlarmRecord,
    /// Its events in sequence order.
    pub events: Vec<AlarmEventRecord>,
}

/// An incident with its whole timeline and its alarms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct IncidentDetail {
    /// The incident.
    pub incident: Incident,
    /// Every entry, oldest first.
    pub timeline: Vec<TimelineEntry>,
    /// Alarms correlated into it, oldest first.
    pub alarms: Vec<AlarmRecord>,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Items matching the filter, over all pages.
    pub total: i64,
    /// `offset` of the next page, if there is one.
    pub next_offset: Option<i64>,
}

// ---------------------------------------------------------------- live feed

/// What a feed event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FeedKind {
    /// An alarm event arrived (new, update or end).
    Alarm,
    /// An incident changed (opened, a workflow step, evidence, escalation).
    Incident,
}

impl FeedKind {
    /// The wire name (also the SSE `event:` field).
    pub fn as_str(self) -> &'static str {
        match self {
            FeedKind::Alarm => "alarm",
            FeedKind::Incident => "incident",
        }
    }
}

/// An alarm event as the feed carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AlarmFeed {
    /// `new`, `update` or `end`.
    pub event: String,
    /// The alarm after this event.
    pub alarm: AlarmRecord,
    /// Whether this event opened a new incident (else it joined one, or none).
    pub opened_incident: bool,
}

/// An incident change as the feed carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct IncidentFeed {
    /// The timeline entry that records the change.
    pub entry: TimelineEntry,
    /// The incident after the change.
    pub incident: Incident,
}

/// One feed event: the `data:` of an SSE message (its `id:` is `id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct FeedEvent {
    /// Feed id, increasing in commit order; resume with `Last-Event-ID`.
    pub id: i64,
    /// When the change was stored.
    pub at_ms: i64,
    /// `alarm` or `incident`.
    pub kind: FeedKind,
    /// The incident concerned, if any.
    pub incident_id: Option<i64>,
    /// For `alarm` events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm: Option<AlarmFeed>,
    /// For `incident` events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident: Option<IncidentFeed>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip_through_serde_and_from_str() {
        for s in Source::ALL {
            let json = serde_json::to_value(s).unwrap();
            assert_eq!(json, s.as_str());
            assert_eq!(s.as_str().parse::<Source>(), Ok(*s));
        }
        assert_eq!(Source::Hotline12345.as_str(), "hotline_12345");
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>(), Ok(*s));
        }
        let err = "closed!".parse::<Status>().unwrap_err();
        assert!(err.contains("reported, filed"), "{err}");
    }
}
