//! `parkwatch-edge check-config FILE`: loads and validates an edge
//! configuration without starting anything.
//!
//! Prints one summary line on stdout and exits 0 when the file is valid;
//! otherwise prints every problem (`file:line: key: message`, as
//! `parkwatch_config` reports them) on stderr and exits 1.

use std::path::PathBuf;
use std::process::ExitCode;

// The arguments of `parkwatch-edge check-config` (its description is on
// `Command::CheckConfig`, whose doc comment clap shows).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The configuration file to check.
    file: PathBuf,
}

/// Runs `parkwatch-edge check-config` with its parsed arguments.
pub fn run(args: &Args) -> ExitCode {
    let file = &args.file;
    match parkwatch_config::load_edge_config(file) {
        Ok(c) => {
            println!("{}: ok ({})", file.display(), c.summary());
            ExitCode::SUCCESS
        }
        Err(problems) => {
            eprintln!("{problems}");
            ExitCode::FAILURE
        }
    }
}
