//! `parkwatch-ingest`: the command line.
//!
//! `parkwatch-ingest --config FILE` runs the service;
//! `parkwatch-ingest check-config FILE` validates a file and prints every
//! problem as `file:line: key: message` (exit 1), or `ok` (exit 0).
//! The first SIGINT/SIGTERM starts an orderly shutdown; a second one exits
//! at once with status 130.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmds;

/// Central ingest of parkwatch: embedded MQTT broker, consumer, time-series
/// writer, delivery acks, /healthz and /metrics.
#[derive(Debug, Parser)]
#[command(name = "parkwatch-ingest", version, subcommand_negates_reqs = true)]
struct Cli {
    /// The ingest configuration file (TOML). See docs/ingest.md.
    #[arg(long, value_name = "FILE", required = true)]
    config: Option<PathBuf>,

    /// Log filter, e.g. `info`, `debug` or `info,parkwatch_ingest=debug`.
    /// Overrides RUST_LOG; when neither is set: `info,rumqttd=warn`.
    #[arg(long, value_name = "FILTER", global = true)]
    log_level: Option<String>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate an ingest configuration file: print every problem as
    /// `file:line: key: message` and exit 1, or print `ok` and exit 0.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig { file }) => cmds::check_config::run(&file),
        None => cmds::run::run(cli.config, cli.log_level.as_deref()),
    }
}
