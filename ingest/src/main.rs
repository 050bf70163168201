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
use parkwatch_ingest::{IngestConfig, format_problems};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

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
    if let Some(Command::CheckConfig { file }) = &cli.command {
        return match IngestConfig::load(file) {
            Ok(_) => {
                println!("ok");
                ExitCode::SUCCESS
            }
            Err(problems) => {
                print!("{}", format_problems(&problems));
                ExitCode::FAILURE
            }
        };
    }
    if let Err(e) = init_logging(cli.log_level.as_deref()) {
        eprintln!("parkwatch-ingest: {e}");
        return ExitCode::from(2);
    }
    let Some(path) = cli.config else {
        eprintln!("parkwatch-ingest: --config FILE is required");
        return ExitCode::from(2);
    };
    let loaded = match IngestConfig::load(&path) {
        Ok(l) => l,
        Err(problems) => {
            eprint!("{}", format_problems(&problems));
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ingest")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("parkwatch-ingest: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(watch_signals(first_tx));
        parkwatch_ingest::app::run(loaded, async {
            let _ = first_rx.await;
        })
        .await
    });
    // The broker thread never returns; do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(err = %e, "parkwatch-ingest failed.");
            eprintln!("parkwatch-ingest: {e}");
            ExitCode::FAILURE
        }
    }
}

/// First SIGINT/SIGTERM: fires `first`. Second: exits the process at once.
async fn watch_signals(first: tokio::sync::oneshot::Sender<()>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (mut int, mut term) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(i), Ok(t)) => (i, t),
        _ => {
            tracing::error!("Cannot install signal handlers; stop with SIGKILL.");
            return;
        }
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    tracing::info!("Signal received; shutting down (send another to exit at once).");
    let _ = first.send(());
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    tracing::warn!("Second signal; exiting now.");
    std::process::exit(130);
}

fn init_logging(flag: Option<&str>) -> Result<(), String> {
    let filter = match flag {
        Some(f) => EnvFilter::try_new(f).map_err(|e| format!("bad --log-level {f:?}: {e}"))?,
        None => match std::env::var("RUST_LOG") {
            Ok(v) if !v.is_empty() => {
                EnvFilter::try_new(&v).map_err(|e| format!("bad RUST_LOG {v:?}: {e}"))?
            }
            _ => EnvFilter::new("info,rumqttd=warn"),
        },
    };
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .with_filter(parkwatch_ingest::broker::redact_filter());
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init()
        .map_err(|e| format!("cannot set up logging: {e}"))
}
