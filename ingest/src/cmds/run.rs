//! Running the service: logging, the async runtime, the signal watcher and
//! the one shutdown path of [`parkwatch_ingest::app::run`].

use std::path::PathBuf;
use std::process::ExitCode;

use parkwatch_ingest::{IngestConfig, format_problems};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Runs ingest with the configuration at `config` until a signal stops it.
pub fn run(config: Option<PathBuf>, log_level: Option<&str>) -> ExitCode {
    if let Err(e) = init_logging(log_level) {
        eprintln!("parkwatch-ingest: {e}");
        return ExitCode::from(2);
    }
    let Some(path) = config else {
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
