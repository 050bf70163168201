//! `parkctl`'s subcommands, one file each: [`config`] (`config check`,
//! `check-config`), [`deadletters`], [`tail`] (the live alarm stream),
//! [`incidents`] (`list|show|report|act`, the closed loop from the
//! terminal), [`alarms`] (`list|show`, alarms and their stored events) and
//! [`token`] (`new|hash`, API tokens).
//!
//! Every command that talks to ingest's API takes `--url` (env
//! `PARKWATCH_URL`, default `http://127.0.0.1:8080`) and a token from
//! `--token` (env `PARKWATCH_TOKEN`) or `--token-file`. Exit codes: 0
//! done, 1 the server refused (the error body is printed), 2 usage,
//! connection or output error.

pub mod alarms;
pub mod config;
pub mod deadletters;
pub mod incidents;
pub mod tail;
pub mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use parkwatch_incidents::model::Page;
use serde::de::DeserializeOwned;

use crate::client::{ApiClient, CliError};
use crate::format;

/// Where ingest is and how to authenticate.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// Base URL of ingest's HTTP server.
    #[arg(long, env = "PARKWATCH_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API token (see `parkctl token new`).
    #[arg(long, env = "PARKWATCH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the API token (trailing newline removed).
    #[arg(long, value_name = "FILE", conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// UTC offset for printed times, `+HH:MM`.
    #[arg(long, default_value = "+08:00", value_name = "OFFSET")]
    pub utc_offset: String,
}

impl ApiArgs {
    /// `--utc-offset` in minutes east of UTC.
    pub fn offset_minutes(&self) -> Result<i32, CliError> {
        format::parse_offset(&self.utc_offset).ok_or_else(|| {
            CliError::Usage(format!("--utc-offset {:?} is not +HH:MM", self.utc_offset))
        })
    }
}

/// A JSON answer as printed with `--json`.
pub fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// Prints one page of `GET path` (`limit` and the given `filters`, in
/// order): with `--json` the answer as it came, else one `line` per item
/// and `N of M shown`.
pub async fn list_page<T: DeserializeOwned>(
    c: &ApiClient,
    path: &str,
    limit: u32,
    filters: impl IntoIterator<Item = (&'static str, Option<String>)>,
    json: bool,
    line: impl Fn(&T) -> String,
) -> Result<(), CliError> {
    let mut q: Vec<(&str, String)> = vec![("limit", limit.to_string())];
    q.extend(filters.into_iter().filter_map(|(k, v)| Some((k, v?))));
    let req = c.request(reqwest::Method::GET, path).query(&q);
    if json {
        println!("{}", pretty(&c.send_json(path, req).await?));
        return Ok(());
    }
    let page: Page<T> = c.send(path, req).await?;
    for item in &page.items {
        println!("{}", line(item));
    }
    println!("{} of {} shown", page.items.len(), page.total);
    Ok(())
}

/// The single-threaded runtime the commands that talk to ingest run on;
/// `None` (after saying why) if it cannot start.
pub fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("parkctl: cannot start the async runtime: {e}");
            None
        }
    }
}

/// Every `parkctl` subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Site configuration commands.
    Config {
        #[command(subcommand)]
        command: config::ConfigCommand,
    },
    /// Validate an ingest configuration file: print every problem as
    /// `file:line: key: message` and exit 1, or print `ok` and exit 0.
    CheckConfig {
        /// The ingest configuration file (TOML).
        file: PathBuf,
    },
    /// List what ingest rejected, newest first: time, reason, topic, error
    /// and the start of the payload (from `GET /deadletters`).
    Deadletters(deadletters::DeadlettersArgs),
    /// Follow alarms and incident changes live, one line per event;
    /// reconnects and resumes automatically.
    Tail(tail::TailArgs),
    /// Work the incident loop: list, show, report, act.
    Incidents {
        /// What to do.
        #[command(subcommand)]
        command: incidents::IncidentsCommand,
    },
    /// Look up alarms and what ingest stored of each.
    Alarms {
        /// What to do.
        #[command(subcommand)]
        command: alarms::AlarmsCommand,
    },
    /// Make API tokens and their configuration entries.
    Token {
        /// What to do.
        #[command(subcommand)]
        command: token::TokenCommand,
    },
}

/// Runs one command to completion.
pub fn run(cmd: Command) -> ExitCode {
    let api_cmd = match cmd {
        Command::Config { command } => return config::run(command),
        Command::CheckConfig { file } => return config::check_ingest_file(&file),
        Command::Deadletters(args) => return deadletters::run(args),
        Command::Token { command } => return token::run(command),
        other => other,
    };
    let Some(runtime) = runtime() else {
        return ExitCode::from(2);
    };
    let result = runtime.block_on(async move {
        match api_cmd {
            Command::Tail(args) => tail::run(args).await,
            Command::Incidents { command } => incidents::run(command).await,
            Command::Alarms { command } => alarms::run(command).await,
            Command::Config { .. }
            | Command::CheckConfig { .. }
            | Command::Deadletters(_)
            | Command::Token { .. } => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("parkctl: {e}");
            e.exit_code()
        }
    }
}
