//! The subcommands of `parkwatch-edge`, one module each with its clap
//! arguments beside its code: [`run`] (the default), [`check_config`],
//! [`detect`] and [`replay`].
//!
//! Guarantees: each command returns the process's exit code (0 on success,
//! 1 on failure, 2 when a required `--config` is missing or, for `run`, the
//! configuration is invalid) and prints its errors on stderr prefixed with
//! `parkwatch-edge`. The library modules know nothing of the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

pub mod check_config;
pub mod detect;
pub mod replay;
pub mod run;

/// The subcommands; their doc comments are the descriptions `--help` shows.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the box (the default when no subcommand is given).
    Run,
    /// Check a configuration file: prints every problem as
    /// `file:line: key: message` and exits non-zero if there is any.
    CheckConfig(check_config::Args),
    /// Run the detector on still images (JPEG, PNG) and print what it finds.
    Detect(detect::Args),
    /// Run one camera's whole pipeline (decode, motion gating, detection,
    /// tracking, rules) over a video file and print each alarm event as one
    /// JSON line, exactly as it would be published. Rule timing follows the
    /// video's own timestamps, so any speed raises the same alarms.
    Replay(replay::Args),
}

impl Command {
    /// Runs the command; `config` is the global `--config FILE`.
    pub fn run(self, config: Option<PathBuf>) -> ExitCode {
        match self {
            Command::Run => run::run(config),
            Command::CheckConfig(args) => check_config::run(&args),
            Command::Detect(args) => report(detect::run(args)),
            Command::Replay(args) => replay::run(args, config),
        }
    }
}

/// The exit code of a command's result, printing its error chain.
fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("parkwatch-edge: {e:#}");
            ExitCode::FAILURE
        }
    }
}
