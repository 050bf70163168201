//! The end-to-end test harness: real processes and real servers.
//!
//! The tests in `tests/e2e/` (one test binary, `e2e`) start the workspace's own binaries and
//! the servers they talk to (GStreamer's RTSP server playing real video,
//! VictoriaMetrics) as child processes, drive them over their real
//! protocols and check what a user would see. This library gives them:
//!
//! * paths: [`repo_root`], [`shared_dir`], [`media`], [`model_manifest`],
//!   [`bin`], each failing with a message that says how to fix it (usually:
//!   run `deploy/setup.sh`, or build the binaries);
//! * [`now_ms`], the wall clock in the unit of parkwatch's timestamps;
//! * [`free_port`] for servers that must listen on a known port;
//! * [`ChildGuard`]: a process with its output in a log file, killed with its
//!   whole process group when dropped, whose log tail is printed when the
//!   test fails;
//! * [`RtspServer`] (`deploy/rtsp-server.py`) and [`VictoriaMetrics`], with
//!   the lifecycle every [`Server`] shares (stop, kill, start again);
//! * [`run_ok`] / [`run_to_end`] for one-shot tools ([`ffmpeg`],
//!   [`ffprobe_rtsp`], openssl, the edge's subcommands);
//! * [`wait_until`] / [`wait_for`] / [`wait_until_async`] for polling.
//!
//! Everything here panics with a clear message instead of returning errors:
//! a failed set-up is a failed test. All functions are blocking. They may
//! be called from `#[tokio::test]` too: HTTP calls run on a private thread
//! with their own runtime, so they never nest runtimes. Inside an async test
//! use [`wait_until_async`] rather than [`wait_until`], which sleeps the
//! calling thread and would starve a current-thread runtime's other tasks.
//!
//! Prerequisites: `bash deploy/setup.sh` (packages, media, models) and the
//! workspace binaries built (`cargo nextest run --workspace` builds them).

mod process;
mod rtsp;
pub mod scene;
pub mod stack;
mod victoria;

use std::collections::HashSet;
use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use process::{
    ChildGuard, ChildSpec, Finished, STOP_GRACE, Server, describe_status, ffmpeg, ffprobe_rtsp,
    run_ok, run_to_end,
};
pub use rtsp::RtspServer;
pub use victoria::VictoriaMetrics;

/// The repository root (the workspace folder holding `Cargo.toml`).
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .map_or_else(|| here.to_path_buf(), Path::to_path_buf)
}

/// The `shared` folder beside the repository (real video and detector
/// weights), or `$PARKWATCH_SHARED` when set. It may not exist: setup falls
/// back to documented downloads.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("PARKWATCH_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => repo_root().join("..").join("shared"),
    }
}

/// A prepared media file in `.cache/media/` (made by `deploy/setup.sh`):
/// `vtest-h264.mp4`, `vtest-h265.mp4`, `vtest-360p-h264.mp4`,
/// `vtest-h264.h264`, `vtest-h265.h265`. Each is the 79.5 s OpenCV campus
/// clip, 10 fps, a keyframe every 10 frames, no B-frames, 768x576 (640x360
/// for the 360p one).
///
/// # Panics
/// When the file is missing, telling to run `deploy/setup.sh`.
#[track_caller]
pub fn media(name: &str) -> PathBuf {
    let path = repo_root().join(".cache").join("media").join(name);
    assert!(
        path.is_file(),
        "media file {} is missing: run `bash deploy/setup.sh` (it transcodes the test video)",
        path.display()
    );
    path
}

/// The model manifest `models/{name}.toml` (e.g. `nanodet-m-320`), after
/// checking that the weights it names (`models/{name}.onnx`) are there.
///
/// # Panics
/// When the manifest or the weights are missing, telling to run
/// `deploy/setup.sh`.
#[track_caller]
pub fn model_manifest(name: &str) -> PathBuf {
    let models = repo_root().join("models");
    let manifest = models.join(format!("{name}.toml"));
    assert!(
        manifest.is_file(),
        "model manifest {} is missing",
        manifest.display()
    );
    let weights = models.join(format!("{name}.onnx"));
    assert!(
        weights.is_file(),
        "detector weights {} are missing: run `bash deploy/setup.sh` (it copies them from \
         ../shared/models/ or says where to download them)",
        weights.display()
    );
    manifest
}

/// A binary of the workspace (`parkwatch-edge`, `parkwatch-ingest`,
/// `parkctl`), built next to the running test executable:
/// `target/<profile>/<name>`. `$PARKWATCH_BIN_DIR` overrides the folder.
///
/// # Panics
/// When the binary has not been built.
#[track_caller]
pub fn bin(name: &str) -> PathBuf {
    let dir = match std::env::var_os("PARKWATCH_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            // target/<profile>/deps/<test-exe> -> target/<profile>
            let exe = std::env::current_exe()
                .unwrap_or_else(|e| panic!("cannot locate the test executable: {e}"));
            let deps = exe.parent().unwrap_or(Path::new("."));
            let profile = if deps.ends_with("deps") {
                deps.parent()
            } else {
                Some(deps)
            };
            profile.unwrap_or(Path::new(".")).to_path_buf()
        }
    };
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "binary {} not found: build it first (`cargo build --workspace --bins`; \
         `cargo nextest run --workspace` builds every binary)",
        path.display()
    );
    path
}

/// A TCP port on 127.0.0.1 that was free a moment ago and that this process
/// has not handed out before.
///
/// Another process may still take it before the server binds it; prefer
/// letting a server pick its own port where it can report it (as
/// [`RtspServer`] does).
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    for _ in 0..100 {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .unwrap_or_else(|e| panic!("cannot bind a TCP port on 127.0.0.1: {e}"));
        let port = match listener.local_addr() {
            Ok(addr) => addr.port(),
            Err(e) => panic!("cannot read the bound address: {e}"),
        };
        let mut given = GIVEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if given.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
    panic!("no free TCP port found in 100 tries")
}

/// Milliseconds since the Unix epoch by the system clock (0 before 1970),
/// the unit of every timestamp in parkwatch's payloads and time series.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Calls `f` every `poll` until it returns `Some`, and returns the value.
///
/// # Panics
/// When `timeout` passes first, naming the caller's location.
#[track_caller]
pub fn wait_until<T>(timeout: Duration, poll: Duration, f: impl FnMut() -> Option<T>) -> T {
    wait_for("the condition", timeout, poll, f)
}

/// [`wait_until`] with a description of what is awaited, for the failure
/// message ("timed out after 10s waiting for {what}").
#[track_caller]
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    poll: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    let mut tries = 0u32;
    loop {
        tries += 1;
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() >= timeout {
            panic!("timed out after {timeout:?} waiting for {what} ({tries} tries)");
        }
        std::thread::sleep(poll.min(timeout.saturating_sub(start.elapsed())));
    }
}

/// The async form of [`wait_for`], for `#[tokio::test]`s: sleeps with
/// `tokio::time::sleep`, so other tasks keep running.
///
/// # Panics
/// When `timeout` passes first.
#[track_caller]
pub fn wait_until_async<'a, T, F, Fut>(
    what: &'a str,
    timeout: Duration,
    poll: Duration,
    mut f: F,
) -> impl Future<Output = T> + 'a
where
    F: FnMut() -> Fut + 'a,
    Fut: Future<Output = Option<T>> + 'a,
    T: 'a,
{
    let caller = std::panic::Location::caller();
    async move {
        let start = Instant::now();
        let mut tries = 0u32;
        loop {
            tries += 1;
            if let Some(v) = f().await {
                return v;
            }
            if start.elapsed() >= timeout {
                panic!("{caller}: timed out after {timeout:?} waiting for {what} ({tries} tries)");
            }
            tokio::time::sleep(poll.min(timeout.saturating_sub(start.elapsed()))).await;
        }
    }
}

/// Runs a future to completion on a private thread with its own
/// current-thread runtime, so it works from sync code and from inside
/// another runtime alike.
pub(crate) fn block_on<F>(fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        let handle = s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("cannot build a tokio runtime: {e}"));
            rt.block_on(fut)
        });
        match handle.join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}
