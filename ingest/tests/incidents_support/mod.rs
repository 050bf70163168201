//! Shared by the `incidents_*` tests: the service on a real database
//! (SQLite file or a throw-away PostgreSQL), the API served over real HTTP
//! on 127.0.0.1, tokens for every role, and helpers to drive it.

#![allow(dead_code, clippy::unwrap_used)]

pub mod pg;

use std::path::PathBuf;
use std::sync::Arc;

use parkwatch_incidents::{self as incidents, Incidents, ManualClock, Role, StoreSettings};
use parkwatch_ingest::api::auth::{ApiConfig, TokenConfig, Tokens, hash_token};
use parkwatch_ingest::api::{ApiState, app};
use parkwatch_protocol::{AlarmEvent, AlarmEventType, AlarmKind, Severity};
use serde_json::{Value, json};
use tokio::sync::watch;

/// Wednesday 2025-09-24 10:00 in the park (UTC+8), a working day.
pub const T0: i64 = 1_758_679_200_000;

/// The default site.
pub fn site_dir() -> PathBuf {
    // Found from the package's folder upwards: ingest/ and ingest/parkctl/
    // (whose tests share this module) both lie inside the workspace.
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .map(|d| d.join("firmware-config/sites/etdz"))
        .find(|p| p.is_dir())
        .unwrap_or_else(|| here.join("../firmware-config/sites/etdz"))
}

/// Which database.
pub enum Db<'a> {
    /// A SQLite file in the test's temp dir.
    Sqlite,
    /// A database on this server.
    Postgres(&'a pg::PgServer, &'a str),
}

/// Everything one test needs.
pub struct Harness {
    pub svc: Arc<Incidents>,
    pub clock: Arc<ManualClock>,
    pub base: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    closing: watch::Sender<bool>,
}

/// Token of each test principal (the token is its name).
pub const TOKENS: &[(&str, Role, Option<&str>, Option<&str>)] = &[
    ("sup", Role::Supervisor, None, None),
    ("disp", Role::Dispatcher, None, None),
    ("disp2", Role::Dispatcher, None, None),
    ("traffic", Role::Department, Some("traffic"), None),
    ("police", Role::Department, Some("police"), None),
    ("city", Role::Department, Some("city"), None),
    ("maint", Role::Department, Some("maintenance"), None),
    ("w002", Role::Worker, None, Some("W002")),
    ("viewer", Role::Viewer, None, None),
    ("hotline", Role::Reporter, None, None),
];

impl Harness {
    pub async fn start(db: Db<'_>) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let settings = match db {
            Db::Sqlite => StoreSettings::Sqlite {
                path: dir.path().join("incidents.sqlite"),
                readers: 8,
            },
            Db::Postgres(server, name) => StoreSettings::Postgres {
                url: server.database(name).await.unwrap(),
                max_connections: 16,
            },
        };
        let clock = Arc::new(ManualClock::new(T0));
        let svc = incidents::open(
            &site_dir(),
            &settings,
            &dir.path().join("blobs"),
            clock.clone(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let cfg = ApiConfig {
            tokens: TOKENS
                .iter()
                .map(|(name, role, department, worker)| TokenConfig {
                    name: (*name).to_owned(),
                    role: *role,
                    sha256: hash_token(name),
                    department: department.map(str::to_owned),
                    worker: worker.map(str::to_owned),
                })
                .collect(),
        };
        assert!(
            cfg.problems(Some(svc.site())).is_empty(),
            "{:?}",
            cfg.problems(Some(svc.site()))
        );
        let (closing, closing_rx) = watch::channel(false);
        let state = ApiState {
            incidents: svc.clone(),
            tokens: Tokens::new(&cfg),
            edges: None,
            closing: closing_rx,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut stop = closing.subscribe();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app(state))
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|c| *c).await;
                })
                .await;
        });
        Harness {
            svc,
            clock,
            base: format!("http://{addr}/api/v1"),
            http: reqwest::Client::new(),
            dir,
            closing,
        }
    }

    /// `GET path` as `token`; (status, JSON body).
    pub async fn get(&self, token: Option<&str>, path: &str) -> (u16, Value) {
        let mut r = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// `POST path` with JSON as `token`; (status, JSON body).
    pub async fn post(&self, token: Option<&str>, path: &str, body: &Value) -> (u16, Value) {
        let mut r = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// A workflow step that must succeed; returns the incident after it.
    pub async fn step(&self, token: &str, id: i64, body: Value) -> Value {
        let (s, v) = self
            .post(Some(token), &format!("/incidents/{id}/actions"), &body)
            .await;
        assert_eq!(s, 200, "{token} {body}: {v}");
        v
    }

    /// Uploads a small JPEG; returns its sha256.
    pub async fn upload_photo(&self, token: &str, salt: &str) -> String {
        let body = jpeg(salt);
        let resp = self
            .http
            .post(format!("{}/blobs", self.base))
            .bearer_auth(token)
            .header("content-type", "image/jpeg")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201);
        let v: Value = resp.json().await.unwrap();
        v["sha256"].as_str().unwrap().to_owned()
    }

    pub async fn stop(self) {
        let _ = self.closing.send(true);
    }
}

/// Bytes that pass as a JPEG (magic) and differ by `salt`.
pub fn jpeg(salt: &str) -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0];
    b.extend_from_slice(format!("parkwatch test image {salt}").as_bytes());
    b.extend_from_slice(&[0xFF, 0xD9]);
    b
}

/// A `new` alarm event of a camera rule on the etdz site.
#[allow(clippy::too_many_arguments)]
pub fn alarm(
    alarm_id: &str,
    seq: u64,
    edge: &str,
    camera: &str,
    rule: &str,
    kind: AlarmKind,
    zone: Option<&str>,
    at_ms: i64,
) -> AlarmEvent {
    AlarmEvent {
        v: parkwatch_protocol::SCHEMA_VERSION,
        alarm_id: alarm_id.to_owned(),
        event: AlarmEventType::New,
        seq,
        site: "etdz".into(),
        edge: edge.into(),
        camera: Some(camera.into()),
        sensor: None,
        rule_id: rule.into(),
        kind,
        severity: Severity::Major,
        zone: zone.map(str::to_owned),
        objects: Vec::new(),
        started_at_ms: at_ms,
        event_at_ms: at_ms,
        ended_at_ms: None,
        snapshot: None,
        model: None,
        location: None,
        catalogue_item: None,
        value: None,
        unit: None,
        message: Some(format!("{kind} on {camera}")),
    }
}

/// The live-feed fixture (`live_stream` and `parkctl tail`): an alarm on
/// another camera, then `live-1` and `live-2` on cam-p03-1 (gate-apron),
/// all at T0, ingested in that order.
pub async fn ingest_live_alarms(h: &Harness) {
    let e1 = alarm(
        "live-1",
        500,
        "edge-p03",
        "cam-p03-1",
        "gate-no-parking",
        AlarmKind::Dwell,
        Some("gate-apron"),
        T0,
    );
    let other_cam = parking_alarm("live-other", 501, "barrier");
    h.svc.ingest_alarm(&other_cam).await.unwrap();
    h.svc.ingest_alarm(&e1).await.unwrap();
    let mut e2 = e1.clone();
    e2.alarm_id = "live-2".into();
    e2.seq = 502;
    h.svc.ingest_alarm(&e2).await.unwrap();
}

/// The dwell (no-parking) alarm of the north gate camera: item 0105, auto-filed, traffic.
pub fn parking_alarm(alarm_id: &str, seq: u64, zone: &str) -> AlarmEvent {
    alarm(
        alarm_id,
        seq,
        "edge-p01",
        "cam-p01-1",
        "gate-no-parking",
        AlarmKind::Dwell,
        Some(zone),
        T0,
    )
}

/// A hotline report body.
pub fn hotline_report(item: &str, lon: f64, lat: f64) -> Value {
    json!({
        "source": "hotline_12345",
        "item": item,
        "location": {"lon": lon, "lat": lat},
        "description": "caller reports rubbish piled at the corner",
        "reporter": "Ms Wang",
        "reporter_contact": "13900000000",
    })
}

/// The kinds of a timeline, in order.
pub fn timeline_kinds(detail: &Value) -> Vec<String> {
    detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}
