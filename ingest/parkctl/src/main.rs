//! `parkctl`: the operator's command line.
//!
//! - `parkctl config check DIR [--json]`: validates a site directory
//!   (`site.toml`, edges, grids, workers, catalogue) and prints the counts
//!   and every problem as `file:line: key: message`; `--json` prints the
//!   report as one JSON object. Exit 1 if there is any problem.
//! - `parkctl check-config FILE`: validates an ingest configuration file,
//!   like `parkwatch-ingest check-config FILE` (which it runs).
//! - `parkctl deadletters [--url URL] [--limit N] [--json]`: what ingest
//!   rejected (bad payloads, topics outside the sender's branch, batches
//!   the database refused), newest first, from `GET /deadletters`.
//! - `parkctl tail`, `parkctl incidents list|show|report|act`,
//!   `parkctl alarms list|show`, `parkctl token new|hash`: the live alarm
//!   stream, the incident loop, alarms and API tokens (see `docs/api.md`).
//!
//! One file per subcommand in [`cmds`]; [`client`] is the typed HTTP
//! client (every known answer is decoded into `parkwatch-incidents`'
//! types) and [`format`] prints those types for people.
//!
//! Exit codes: 0 clean, 1 problems found (or the server refused), 2 usage,
//! connection or output error.

mod client;
mod cmds;
mod format;

use std::process::ExitCode;

use clap::Parser;

/// The parkwatch operator's tool.
#[derive(Debug, Parser)]
#[command(name = "parkctl", version)]
struct Cli {
    #[command(subcommand)]
    command: cmds::Command,
}

fn main() -> ExitCode {
    cmds::run(Cli::parse().command)
}
