//! `parkctl config check DIR` and `parkctl check-config FILE`.
//!
//! `config check` validates a site directory with `parkwatch-config` and
//! prints what it holds and every problem. `check-config` validates an
//! ingest configuration file; the loader of that file belongs to
//! `parkwatch-ingest` (it knows every table of the service, down to the
//! broker and the writer), so parkctl does not link it: it runs
//! `parkwatch-ingest check-config FILE` (next to parkctl's own executable,
//! else on `PATH`) and passes its output and exit code through. Exit codes:
//! 0 clean, 1 problems found, 2 usage or output error (or no
//! `parkwatch-ingest` to run).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use parkwatch_config::SiteReport;

/// `parkctl config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a site directory: print what it holds and every problem
    /// (`file:line: key: message`); exit 1 if there is any problem.
    Check {
        /// The site directory (the one holding `site.toml`).
        dir: PathBuf,
        /// Print the report as one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs one `parkctl config` command.
pub fn run(cmd: ConfigCommand) -> ExitCode {
    let ConfigCommand::Check { dir, json } = cmd;
    let report = parkwatch_config::check_site(&dir);
    let text = if json {
        match serde_json::to_string(&report) {
            Ok(s) => s + "\n",
            Err(e) => {
                eprintln!("parkctl: cannot encode the report: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        human_report(&dir, &report)
    };
    if let Err(e) = std::io::stdout().write_all(text.as_bytes()) {
        eprintln!("parkctl: cannot write the report: {e}");
        return ExitCode::from(2);
    }
    if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The ingest binary: beside this executable if it is there, else `PATH`'s.
fn ingest_binary() -> PathBuf {
    let name = format!("parkwatch-ingest{}", std::env::consts::EXE_SUFFIX);
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(&name)))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// `parkctl check-config FILE`: `parkwatch-ingest check-config FILE`.
pub fn check_ingest_file(file: &Path) -> ExitCode {
    let bin = ingest_binary();
    match std::process::Command::new(&bin)
        .arg("check-config")
        .arg(file)
        .status()
    {
        Ok(status) => match status.code() {
            Some(0) => ExitCode::SUCCESS,
            Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(2)),
            None => {
                eprintln!("parkctl: {} check-config was killed", bin.display());
                ExitCode::from(2)
            }
        },
        Err(e) => {
            eprintln!(
                "parkctl: cannot run {} (check-config of an ingest file needs parkwatch-ingest beside parkctl or on PATH): {e}",
                bin.display()
            );
            ExitCode::from(2)
        }
    }
}

fn human_report(dir: &Path, r: &SiteReport) -> String {
    let mut s = format!("site {}\n", dir.display());
    for (label, n) in [
        ("points", r.points),
        ("edges", r.edges),
        ("fixed cameras", r.cameras),
        ("panoramic systems", r.panoramic),
        ("video sources", r.video_sources),
        ("unit grids", r.unit_grids),
        ("community grids", r.community_grids),
        ("responsibility grids", r.responsibility_grids),
        ("grid workers", r.workers),
        ("event types", r.event_types),
    ] {
        s.push_str(&format!("  {label:<22}{n}\n"));
    }
    if r.errors.is_empty() {
        s.push_str("ok\n");
    } else {
        s.push_str(&format!("{} problem(s):\n", r.errors.len()));
        for p in &r.errors {
            s.push_str(&format!("{p}\n"));
        }
    }
    s
}
