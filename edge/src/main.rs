//! `parkwatch-edge`: the command line of an edge box.
//!
//! This file only parses the command line, sets up logging and dispatches
//! to the subcommand's module in [`cmds`], one file per subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

mod cmds;

/// parkwatch edge box: pulls RTSP cameras, detects objects on site, raises
/// alarms and publishes alarms and telemetry over MQTT without losing any
/// when the link is down.
#[derive(Parser, Debug)]
#[command(name = "parkwatch-edge", version, about, long_about = None)]
struct Cli {
    /// The edge box's configuration file (TOML; see docs/configuration.md).
    /// Runs the box when no subcommand is given.
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    config: Option<PathBuf>,

    /// Log filter in RUST_LOG syntax, e.g. `info` or `parkwatch_edge=debug`.
    /// The RUST_LOG environment variable, when set, wins.
    #[arg(long, value_name = "FILTER", default_value = "info", global = true)]
    log_level: String,

    #[command(subcommand)]
    command: Option<cmds::Command>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log_level);
    cli.command.unwrap_or(cmds::Command::Run).run(cli.config)
}

fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(default))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
