//! Checks an edge file or a site directory without building the binaries:
//!
//! ```text
//! cargo run -p parkwatch-config --example check -- firmware-config/sites/etdz
//! cargo run -p parkwatch-config --example check -- firmware-config/examples/edge-local.toml
//! ```
//!
//! Prints every problem as `file:line: key: message` (a directory's report
//! as JSON) and exits non-zero when there is any.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: check FILE.toml | SITE_DIR");
        return ExitCode::from(2);
    };
    if path.is_dir() {
        let report = parkwatch_config::check_site(&path);
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("{e}"),
        }
        return if report.errors.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    match parkwatch_config::load_edge_config(&path) {
        Ok(c) => {
            println!("{}: ok ({})", path.display(), c.summary());
            ExitCode::SUCCESS
        }
        Err(problems) => {
            eprintln!("{problems}");
            ExitCode::FAILURE
        }
    }
}
