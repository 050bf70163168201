//! `parkctl incidents list|show|report|act`: the closed loop from the terminal.

use std::path::PathBuf;

use clap::Subcommand;
use parkwatch_incidents::model::{Incident, IncidentDetail, Page};
use parkwatch_incidents::wire::{ActionRequest, LocationInput, ReportRequest};

use super::{ApiArgs, pretty};
use crate::client::{ApiClient, CliError};
use crate::format::{incident_detail, incident_line};

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
            let req = c.request(reqwest::Method::GET, "/incidents").query(&q);
            if json {
                print(&pretty(&c.send_json("/incidents", req).await?));
            } else {
                let page: Page<Incident> = c.send("/incidents", req).await?;
                for i in &page.items {
                    print(&incident_line(i, off));
                }
                print(&format!("{} of {} shown", page.items.len(), page.total));
            }
            Ok(())
        }
        IncidentsCommand::Show { api, id, json } => {
            let off = api.offset_minutes()?;
            let c = ApiClient::new(&api)?;
            let path = format!("/incidents/{id}");
            print(&if json {
                pretty(&c.get_json(&path).await?)
            } else {
                incident_detail(&c.get::<IncidentDetail>(&path).await?, off)
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
            let body = ReportRequest {
                source,
                item,
                location: LocationInput { lon, lat },
                title: None,
                description,
                address,
                photos: Some(shas),
                reporter: None,
                reporter_contact: None,
            };
            let req = c.request(reqwest::Method::POST, "/incidents").json(&body);
            print(&if json {
                pretty(&c.send_json("/incidents", req).await?)
            } else {
                incident_detail(&c.send::<IncidentDetail>("/incidents", req).await?, off)
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
            let body = ActionRequest {
                action,
                note,
                attachments: Some(shas),
                department,
                worker,
                version,
            };
            let path = format!("/incidents/{id}/actions");
            let req = c.request(reqwest::Method::POST, &path).json(&body);
            print(&if json {
                pretty(&c.send_json(&path, req).await?)
            } else {
                incident_detail(&c.send::<IncidentDetail>(&path, req).await?, off)
            });
            Ok(())
        }
    }
}
