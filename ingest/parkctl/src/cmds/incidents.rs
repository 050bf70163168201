//! `parkctl incidents list|show|report|act`: the closed loop from the terminal.

use std::path::PathBuf;

use clap::Subcommand;
use parkwatch_incidents::model::{Incident, IncidentDetail};
use parkwatch_incidents::wire::{ActionRequest, LocationInput, ReportRequest};

use super::{ApiArgs, list_page, pretty};
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

/// Sends `req` and prints the incident it answers with: with `--json` the
/// answer as it came, else as [`incident_detail`] renders it.
async fn print_detail(
    c: &ApiClient,
    path: &str,
    req: reqwest::RequestBuilder,
    json: bool,
    off: i32,
) -> Result<(), CliError> {
    print(&if json {
        pretty(&c.send_json(path, req).await?)
    } else {
        incident_detail(&c.send::<IncidentDetail>(path, req).await?, off)
    });
    Ok(())
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
            let filters = [
                ("status", status),
                ("source", source),
                ("grid", grid),
                ("class", class),
                ("overdue", overdue.then(|| "true".to_owned())),
            ];
            list_page(&c, "/incidents", limit, filters, json, |i: &Incident| {
                incident_line(i, off).trim_end().to_owned()
            })
            .await
        }
        IncidentsCommand::Show { api, id, json } => {
            let off = api.offset_minutes()?;
            let c = ApiClient::new(&api)?;
            let path = format!("/incidents/{id}");
            let req = c.request(reqwest::Method::GET, &path);
            print_detail(&c, &path, req, json, off).await
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
            let shas = c.upload_all(&photos).await?;
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
            print_detail(&c, "/incidents", req, json, off).await
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
            let shas = c.upload_all(&photos).await?;
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
            print_detail(&c, &path, req, json, off).await
        }
    }
}
