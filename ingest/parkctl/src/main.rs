//! `parkctl`: the operator's command line.
//!
//! - `parkctl config check DIR [--json]`: validates a site directory
//!   (`site.toml`, edges, grids, workers, catalogue) and prints the counts
//!   and every problem as `file:line: key: message`; `--json` prints the
//!   report as one JSON object. Exit 1 if there is any problem.
//! - `parkctl check-config FILE`: validates an ingest configuration file,
//!   like `parkwatch-ingest check-config FILE`.
//! - `parkctl deadletters [--url URL] [--limit N] [--json]`: what ingest
//!   rejected (bad payloads, topics outside the sender's branch, batches
//!   the database refused), newest first, from `GET /deadletters`.
//! - `parkctl tail`, `parkctl incidents list|show|report|act`,
//!   `parkctl token new|hash`: the live alarm stream, the incident loop and
//!   API tokens (see `docs/api.md`).
//!
//! Exit codes: 0 clean, 1 problems found, 2 usage or output error.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use parkwatch_config::SiteReport;
use parkwatch_ingest::{IngestConfig, format_problems};

/// The parkwatch operator's tool.
#[derive(Debug, Parser)]
#[command(name = "parkctl", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Site configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Validate an ingest configuration file: print every problem as
    /// `file:line: key: message` and exit 1, or print `ok` and exit 0.
    CheckConfig {
        /// The ingest configuration file (TOML).
        file: PathBuf,
    },
    /// List what ingest rejected, newest first: time, reason, topic, error
    /// and the start of the payload (from `GET /deadletters`).
    Deadletters(parkwatch_ingest::cli::deadletters::DeadlettersArgs),
    /// `tail`, `incidents`, `token`: see `parkwatch_ingest::cli`.
    #[command(flatten)]
    Ops(Box<parkwatch_ingest::cli::Command>),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a site directory: print what it holds and every problem
    /// (`file:line: key: message`); exit 1 if there is any problem.
    Check {
        /// The site directory (the one holding `site.toml`).
        dir: PathBuf,
        /// Print the report as one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Config {
            command: ConfigCommand::Check { dir, json },
        } => {
            let report = parkwatch_config::check_site(&dir);
            let text = if json {
                match serde_json::to_string(&report) {
                    Ok(s) => s + "\n",
                    Err(e) => {
                        eprintln!("parkctl: cannot encode the report: {e}");
                        return ExitCode::from(2);
                    }
                }
            } else {
                human_report(&dir, &report)
            };
            if let Err(e) = std::io::stdout().write_all(text.as_bytes()) {
                eprintln!("parkctl: cannot write the report: {e}");
                return ExitCode::from(2);
            }
            if report.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Ops(cmd) => parkwatch_ingest::cli::run(*cmd),
        Command::Deadletters(args) => parkwatch_ingest::cli::deadletters::run(args),
        Command::CheckConfig { file } => match IngestConfig::load(&file) {
            Ok(_) => {
                println!("ok");
                ExitCode::SUCCESS
            }
            Err(problems) => {
                print!("{}", format_problems(&problems));
                ExitCode::FAILURE
            }
        },
    }
}

fn human_report(dir: &std::path::Path, r: &SiteReport) -> String {
    let mut s = format!("site {}\n", dir.display());
    for (label, n) in [
        ("points", r.points),
        ("edges", r.edges),
        ("fixed cameras", r.cameras),
        ("panoramic systems", r.panoramic),
        ("video sources", r.video_sources),
        ("unit grids", r.unit_grids),
        ("community grids", r.community_grids),
        ("responsibility grids", r.responsibility_grids),
        ("grid workers", r.workers),
        ("event types", r.event_types),
    ] {
        s.push_str(&format!("  {label:<22}{n}\n"));
    }
    if r.errors.is_empty() {
        s.push_str("ok\n");
    } else {
        s.push_str(&format!("{} problem(s):\n", r.errors.len()));
        for p in &r.errors {
            s.push_str(&format!("{p}\n"));
        }
    }
    s
}
