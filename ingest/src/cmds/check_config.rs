//! `parkwatch-ingest check-config FILE`: every problem of an ingest file as
//! `file:line: key: message` (exit 1), or `ok` (exit 0).

use std::path::Path;
use std::process::ExitCode;

use parkwatch_ingest::{IngestConfig, format_problems};

/// Checks the file at `file` and prints the verdict.
pub fn run(file: &Path) -> ExitCode {
    match IngestConfig::load(file) {
        Ok(_) => {
            println!("ok");
            ExitCode::SUCCESS
        }
        Err(problems) => {
            print!("{}", format_problems(&problems));
            ExitCode::FAILURE
        }
    }
}
