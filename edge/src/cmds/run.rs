//! `parkwatch-edge [run] --config FILE`: runs the box until a signal stops it.
//!
//! Loads and validates the configuration first (every problem on stderr,
//! exit 2), then starts the multi-threaded tokio runtime and hands over to
//! [`parkwatch_edge::app::run`]; an error from it is printed with its
//! causes and exits 1.

use std::path::PathBuf;
use std::process::ExitCode;

/// Runs the box with the configuration at `config` (the global `--config`).
pub fn run(config: Option<PathBuf>) -> ExitCode {
    let Some(path) = config else {
        eprintln!("parkwatch-edge: --config FILE is required to run (see --help)");
        return ExitCode::from(2);
    };
    let config = match parkwatch_config::load_edge_config(&path) {
        Ok(c) => c,
        Err(problems) => {
            eprintln!("{problems}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("edge-rt")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("parkwatch-edge: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(parkwatch_edge::app::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("parkwatch-edge: {e:#}");
            ExitCode::FAILURE
        }
    }
}
