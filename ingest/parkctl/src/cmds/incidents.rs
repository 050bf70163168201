//! `parkctl incidents list|show|report|act`: the closed loop from the terminal.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{Map, Value, json};

use super::client::{ApiClient, CliError};
use super::format::{incident_detail, incident_line};
use super::{ApiArgs, pretty};

/// `parkctl incidents` subcommands.
#[derive(Debug, Subcommand)]
pub enum IncidentsCommand {
    /// List incidents, newest first.
    List {
        /// Connection and token.
        #[command(flatten)]
        api: ApiArgs,
        /// Comma-separated statuses (reported, filed, cancelled, dispatched,
        /// accepted, handled, closed).
        #[arg(long)]
        status: Option<String>,
        /// Comma-separated sources (hotline_12345, grid_worker, wechat,
        /// web_portal, sms, snap_report, video, sensor).
        #[arg(long)]
        source: Option<String>,
        /// Grid code at any level.
        #[arg(long)]
        grid: Option<String>,
        /// Catalogue class code, e.g. 01.
        #[arg(long)]
        class: Option<String>,
        /// Only overdue incidents.
        #[arg(long)]
        overdue: bool,
        /// Page size (1..=500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print the JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Show one incident with its timeline.
    Show {
        /// Connection and token.
        #[command(flatten)]
        api: ApiArgs,
        /// Incident id.
        id: i64,
        /// Print the JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Report an incident (as a channel would).
    Report {
        /// Connection and token.
        #[command(flatten)]
        api: ApiArgs,
        /// The channel, e.g. hotline_12345.
        #[arg(long)]
        source: String,
        /// Catalogue item code, e.g. 0101.
        #[arg(long)]
        item: String,
        /// Longitude (WGS 84).
        #[arg(long, allow_hyphen_values = true)]
        lon: f64,
        /// Latitude (WGS 84).
        #[arg(long, allow_hyphen_values = true)]
        lat: f64,
        /// What the reporter said.
        #[arg(long)]
        description: Option<String>,
        /// Address as told.
        #[arg(long)]
        address: Option<String>,
        /// Photo files (JPEG or PNG) to upload and attach.
        #[arg(long = "photo", value_name = "FILE")]
        photos: Vec<PathBuf>,
        /// Print the JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Take a workflow step: file, cancel, dispatch, accept, handle, close, rework.
    Act {
        /// Connection and token.
        #[command(flatten)]
        api: ApiArgs,
        /// Incident id.
        id: i64,
        /// The step.
        action: String,
        /// A note (required for cancel and rework).
        #[arg(long)]
        note: Option<String>,
        /// Dispatch to this department id.
        #[arg(long)]
        department: Option<String>,
        /// Dispatch to this worker id.
        #[arg(long)]
        worker: Option<String>,
        /// Photo files to upload and attach (handle needs an after-photo).
        #[arg(long = "photo", value_name = "FILE")]
        photos: Vec<PathBuf>,
        /// The version you last saw; refused with 409 if it changed since.
        #[arg(long)]
        version: Option<i64>,
        /// Print the JSON answer.
        #[arg(long)]
        json: bool,
    },
}

fn print(text: &str) {
    println!("{}", text.trim_end());
}

/// Runs one `parkctl incidents` command.
pub async fn run(cmd: IncidentsCommand) -> Result<(), CliError> {
    match cmd {
        IncidentsCommand::List {
            api,
            status,
            source,
            grid,
            class,
            overdue,
            limit,
            json,
        } => {
            let off = api.offset_minutes()?;
            let c = ApiClient::new(&api)?;
            let mut q: Vec<(&str, String)> = vec![("limit", limit.to_string())];
            for (k, v) in [
                ("status", status),
                ("source", source),
                ("grid", grid),
                ("class", class),
            ] {
                if let Some(v) = v {
                    q.push((k, v));
                }
            }
            if overdue {
                q.push(("overdue", "true".into()));
            }
            let v = c
                .send(
                    "/incidents",
                    c.request(reqwest::Method::GET, "/incidents").query(&q),
                )
                .await?;
            if json {
                print(&pretty(&v));
            } else {
                for i in v
                    .get("items")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    print(&incident_line(i, off));
                }
                print(&format!(
                    "{} of {} shown",
                    v.get("items").and_then(Value::as_array).map_or(0, Vec::len),
                    v.get("total").and_then(Value::as_i64).unwrap_or(0)
                ));
            }
            Ok(())
        }
        IncidentsCommand::Show { api, id, json } => {
            let off = api.offset_minutes()?;
            let c = ApiClient::new(&api)?;
            let v = c.get(&format!("/incidents/{id}")).await?;
            print(&if json {
                pretty(&v)
            } else {
                incident_detail(&v, off)
            });
            Ok(())
        }
        IncidentsCommand::Report {
            api,
            source,
            item,
            lon,
            lat,
            description,
            address,
            photos,
            json,
        } => {
            let off = api.offset_minutes()?;
            let c = ApiClient::new(&api)?;
            let mut shas = Vec::new();
            for p in &photos {
                shas.push(c.upload(p).await?);
            }
            let mut body = json!({
                "source": source,
                "item": item,
                "location": {"lon": lon, "lat": lat},
                "photos": shas,
            });
            if let Some(m) = body.as_object_mut() {
                put(m, "description", description);
                put(m, "address", address);
            }
            let v = c.post("/incidents", &body).await?;
            print(&if json {
                pretty(&v)
            } else {
                incident_detail(&v, off)
            });
            Ok(())
        }
        IncidentsCommand::Act {
            api,
            id,
            action,
            note,
            department,
            worker,
            photos,
            version,
            json,
        } => {
            let off = api.offset_minutes()?;
            let c = ApiClient::new(&api)?;
            let mut shas = Vec::new();
            for p in &photos {
                shas.push(c.upload(p).await?);
            }
            let mut body = json!({ "action": action, "attachments": shas });
            if let Some(m) = body.as_object_mut() {
                put(m, "note", note);
                put(m, "department", department);
                put(m, "worker", worker);
                if let Some(v) = version {
                    m.insert("version".into(), json!(v));
                }
            }
            let v = c.post(&format!("/incidents/{id}/actions"), &body).await?;
            print(&if json {
                pretty(&v)
            } else {
                incident_detail(&v, off)
            });
            Ok(())
        }
    }
}

fn put(m: &mut Map<String, Value>, k: &str, v: Option<String>) {
    if let Some(v) = v {
        m.insert(k.into(), Value::String(v));
    }
}
