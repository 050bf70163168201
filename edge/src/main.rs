//! `parkwatch-edge`: the command line of an edge box.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// parkwatch edge box: pulls RTSP cameras, detects objects on site, raises
/// alarms and publishes alarms and telemetry over MQTT without losing any
/// when the link is down.
#[derive(Parser, Debug)]
#[command(name = "parkwatch-edge", version, about, long_about = None)]
struct Cli {
    /// The edge box's configuration file (TOML; see docs/configuration.md).
    /// Runs the box when no subcommand is given.
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    config: Option<PathBuf>,

    /// Log filter in RUST_LOG syntax, e.g. `info` or `parkwatch_edge=debug`.
    /// The RUST_LOG environment variable, when set, wins.
    #[arg(long, value_name = "FILTER", default_value = "info", global = true)]
    log_level: String,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the box (the default when no subcommand is given).
    Run,
    /// Check a configuration file: prints every problem as
    /// `file:line: key: message` and exits non-zero if there is any.
    CheckConfig {
        /// The configuration file to check.
        file: PathBuf,
    },
    /// Run the detector on still images (JPEG, PNG) and print what it finds.
    Detect {
        /// Model manifest (TOML). Default: models/nanodet-m-320.toml in the
        /// current directory, else beside the executable's ../../models/.
        #[arg(long, value_name = "MANIFEST")]
        model: Option<PathBuf>,
        /// Print one JSON object per image: {"image", "detections": [{"class",
        /// "score", "box": [x1, y1, x2, y2]}]} with boxes in image pixels.
        #[arg(long)]
        json: bool,
        /// Path of libonnxruntime.so (default: env ORT_DYLIB_PATH, then
        /// /opt/parkwatch/lib/libonnxruntime.so).
        #[arg(long, value_name = "FILE")]
        onnxruntime: Option<PathBuf>,
        /// Images to run on.
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<PathBuf>,
    },
    /// Run one camera's whole pipeline (decode, motion gating, detection,
    /// tracking, rules) over a video file and print each alarm event as one
    /// JSON line, exactly as it would be published. Rule timing follows the
    /// video's own timestamps, so any speed raises the same alarms.
    Replay {
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
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log_level);
    match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig { file } => check_config(&file),
        Command::Detect {
            model,
            json,
            onnxruntime,
            images,
        } => {
            let model = model.unwrap_or_else(parkwatch_edge::detect::command::default_model_path);
            report(parkwatch_edge::detect::command::run_detect_command(
                &model,
                &images,
                json,
                onnxruntime.as_deref(),
            ))
        }
        Command::Replay {
            camera,
            input,
            realtime,
            start_ms,
            snapshots,
            model,
        } => {
            let Some(config) = cli.config else {
                eprintln!("parkwatch-edge replay: --config FILE is required (see --help)");
                return ExitCode::from(2);
            };
            report(parkwatch_edge::replay::replay_command(
                &parkwatch_edge::replay::ReplayArgs {
                    config,
                    camera,
                    input,
                    realtime,
                    start_ms,
                    snapshots,
                    model,
                },
            ))
        }
        Command::Run => {
            let Some(path) = cli.config else {
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
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match parkwatch_config::load_edge_config(file) {
        Ok(c) => {
            println!(
                "{}: ok (edge {}, site {}, {} cameras, {} sensors)",
                file.display(),
                c.edge_id,
                c.site,
                c.cameras.len(),
                c.sensors.len()
            );
            ExitCode::SUCCESS
        }
        Err(problems) => {
            eprintln!("{problems}");
            ExitCode::FAILURE
        }
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("parkwatch-edge: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(default))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
