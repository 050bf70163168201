//! `parkctl alarms list|show`: the alarms behind the incidents, and what
//! ingest stored of each.

use clap::Subcommand;
use parkwatch_incidents::model::{AlarmDetail, AlarmRecord};

use super::{ApiArgs, list_page, pretty};
use crate::client::{ApiClient, CliError};
use crate::format::{alarm_detail, alarm_line};

/// `parkctl alarms` subcommands.
#[derive(Debug, Subcommand)]
pub enum AlarmsCommand {
    /// List alarms (latest state of each), newest first.
    List {
        /// Connection and token.
        #[command(flatten)]
        api: ApiArgs,
        /// Camera id.
        #[arg(long)]
        camera: Option<String>,
        /// Edge id.
        #[arg(long)]
        edge: Option<String>,
        /// Alarm kind, e.g. intrusion, dwell, sensor_threshold.
        #[arg(long)]
        kind: Option<String>,
        /// active or ended.
        #[arg(long)]
        state: Option<String>,
        /// Page size (1..=500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print the JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Show one alarm with every event ingest stored for it.
    Show {
        /// Connection and token.
        #[command(flatten)]
        api: ApiArgs,
        /// The edge's alarm id.
        id: String,
        /// Print the JSON answer.
        #[arg(long)]
        json: bool,
    },
}

/// Runs one `parkctl alarms` command.
pub async fn run(cmd: AlarmsCommand) -> Result<(), CliError> {
    match cmd {
        AlarmsCommand::List {
            api,
            camera,
            edge,
            kind,
            state,
            limit,
            json,
        } => {
            let off = api.offset_minutes()?;
            let c = ApiClient::new(&api)?;
            let filters = [
                ("camera", camera),
                ("edge", edge),
                ("kind", kind),
                ("state", state),
            ];
            list_page(&c, "/alarms", limit, filters, json, |a: &AlarmRecord| {
                alarm_line(a, off)
            })
            .await
        }
        AlarmsCommand::Show { api, id, json } => {
            let off = api.offset_minutes()?;
            let c = ApiClient::new(&api)?;
            // The id goes into the path: refuse what could change the URL.
            if id.is_empty()
                || !id
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '.' | ':' | '-'))
            {
                return Err(CliError::Usage(format!(
                    "{id:?} is not an alarm id (letters, digits, _ . : -)"
                )));
            }
            let path = format!("/alarms/{id}");
            let text = if json {
                pretty(&c.get_json(&path).await?)
            } else {
                alarm_detail(&c.get::<AlarmDetail>(&path).await?, off)
            };
            println!("{}", text.trim_end());
            Ok(())
        }
    }
}
