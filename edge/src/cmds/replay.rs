//! `parkwatch-edge replay --config FILE --camera ID --input VIDEO`: the
//! command line of [`parkwatch_edge::replay`].
//!
//! Alarm events go to stdout, one JSON line each, as the replay prints
//! them; a closing summary line (frames, sampled, detected with the mean
//! inference time, alarm events) goes to stderr. Without `--config` it
//! exits 2 before reading anything.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use parkwatch_edge::replay::{ReplayArgs, run_replay};

// The arguments of `parkwatch-edge replay` (its description is on
// `Command::Replay`, whose doc comment clap shows).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The camera (from --config) whose zones and rules apply.
    #[arg(long, value_name = "ID")]
    camera: String,
    /// The video file (anything FFmpeg reads).
    #[arg(long, value_name = "VIDEO")]
    input: PathBuf,
    /// Pace the replay at the video's real time instead of as fast as possible.
    #[arg(long)]
    realtime: bool,
    /// Unix milliseconds of the video's first frame (for active hours and
    /// event times); default 0, the video's own time.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    start_ms: i64,
    /// Write each snapshot JPEG into this directory as <alarm_id>-<seq>.jpg.
    #[arg(long, value_name = "DIR")]
    snapshots: Option<PathBuf>,
    /// Model manifest; default: the configuration's detector.model.
    #[arg(long, value_name = "MANIFEST")]
    model: Option<PathBuf>,
}

/// Runs `parkwatch-edge replay` with its parsed arguments and the global
/// `--config`.
pub fn run(args: Args, config: Option<PathBuf>) -> ExitCode {
    let Some(config) = config else {
        eprintln!("parkwatch-edge replay: --config FILE is required (see --help)");
        return ExitCode::from(2);
    };
    super::report(replay_command(&ReplayArgs {
        config,
        camera: args.camera,
        input: args.input,
        realtime: args.realtime,
        start_ms: args.start_ms,
        snapshots: args.snapshots,
        model: args.model,
    }))
}

/// The `replay` subcommand: events on stdout, a summary on stderr.
fn replay_command(args: &ReplayArgs) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    let s = run_replay(args, &mut lock)?;
    let _ = lock.flush();
    let ms = if s.detected > 0 {
        s.inference.as_secs_f64() * 1000.0 / s.detected as f64
    } else {
        0.0
    };
    eprintln!(
        "replay: {} frames, {} sampled, {} detected ({ms:.1} ms each), {} alarm events",
        s.frames, s.sampled, s.detected, s.events
    );
    Ok(())
}
