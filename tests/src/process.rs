//! Child processes for end-to-end tests: spawned in their own process
//! group with stdout and stderr in a log file, and never left behind.
//!
//! Guarantees:
//! * dropping a [`ChildGuard`] kills the child's whole process group with
//!   SIGKILL and reaps the child, so no server outlives its test;
//! * when the drop happens during a panic (a failing test), the last lines
//!   of the log are printed to stderr and the log folder is kept on disk
//!   (its path is printed);
//! * restarts append to the same log, each start preceded by a header line,
//!   and [`ChildGuard::log_since_start`] reads only the current run.
//!
//! Signals go to the process group through the system's `kill` command
//! (procps), which keeps this crate free of `unsafe`.

use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long [`ChildGuard::stop`] waits after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Lines of log printed when a test fails.
const TAIL_LINES: usize = 60;

/// What to run: program, arguments, environment and working folder. Kept by
/// the [`ChildGuard`] so that it can start the process again.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    name: String,
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, Option<OsString>)>,
    cwd: Option<PathBuf>,
}

impl ChildSpec {
    /// A process called `name` in messages and in its log file name.
    pub fn new(name: &str, program: impl AsRef<OsStr>) -> Self {
        Self {
            name: name.to_owned(),
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
            cwd: None,
        }
    }

    /// Appends one argument.
    #[must_use]
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends arguments.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable (the rest is inherited).
    #[must_use]
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Removes an inherited environment variable.
    #[must_use]
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.envs.push((key.as_ref().to_owned(), None));
        self
    }

    /// Sets the working folder (default: the test's).
    #[must_use]
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// Replaces all arguments (e.g. before [`ChildGuard::start_again`]).
    pub fn set_args<I, S>(&mut self, args: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    }

    /// The arguments.
    pub fn get_args(&self) -> &[OsString] {
        &self.args
    }

    /// Starts the process.
    ///
    /// # Panics
    /// When the program cannot be started.
    #[track_caller]
    pub fn spawn(self) -> ChildGuard {
        let log_dir = tempfile::Builder::new()
            .prefix(&format!("parkwatch-{}-", self.name))
            .tempdir()
            .unwrap_or_else(|e| panic!("{}: cannot create a log folder: {e}", self.name));
        let log_path = log_dir.path().join(format!("{}.log", self.name));
        let mut guard = ChildGuard {
            spec: self,
            child: None,
            log_dir,
            log_path,
            starts: 0,
            start_offset: 0,
        };
        guard.start_again();
        guard
    }

    fn command_line(&self) -> String {
        let mut s = self.program.to_string_lossy().into_owned();
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }
}

/// A running (or stopped) child process that is killed, with its process
/// group, when dropped. See the module documentation.
#[derive(Debug)]
pub struct ChildGuard {
    spec: ChildSpec,
    child: Option<Child>,
    log_dir: TempDir,
    log_path: PathBuf,
    starts: u32,
    start_offset: u64,
}

impl ChildGuard {
    /// Starts `program args...` as `name`; see [`ChildSpec`] for more options.
    #[track_caller]
    pub fn spawn<I, S>(name: &str, program: impl AsRef<OsStr>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        ChildSpec::new(name, program).args(args).spawn()
    }

    /// The name given at spawn.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// What is run; change it before [`Self::start_again`].
    pub fn spec_mut(&mut self) -> &mut ChildSpec {
        &mut self.spec
    }

    /// The process id (also its process group id) while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// How many times the process was started.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// Whether the process is still running (reaps it if it exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Starts the process again after it stopped, appending to the same log.
    ///
    /// # Panics
    /// When it is still running or cannot be started.
    #[track_caller]
    pub fn start_again(&mut self) {
        assert!(
            !self.is_running(),
            "{}: start_again while it is still running",
            self.spec.name
        );
        self.child = None;
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap_or_else(|e| {
                panic!(
                    "{}: cannot open {}: {e}",
                    self.spec.name,
                    self.log_path.display()
                )
            });
        self.start_offset = log.metadata().map(|m| m.len()).unwrap_or(0);
        let header = format!(
            "==== parkwatch-tests: start #{} of {}: {}\n",
            self.starts,
            self.spec.name,
            self.spec.command_line()
        );
        // Best effort: the header only helps a person reading the log.
        let _ = log.write_all(header.as_bytes());
        self.start_offset += header.len() as u64;
        let stderr = clone_file(&log, &self.spec.name);
        let mut cmd = Command::new(&self.spec.program);
        cmd.args(&self.spec.args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr))
            .process_group(0);
        for (k, v) in &self.spec.envs {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        if let Some(dir) = &self.spec.cwd {
            cmd.current_dir(dir);
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "{}: cannot start `{}`: {e}",
                self.spec.name,
                self.spec.command_line()
            )
        });
        self.child = Some(child);
    }

    /// Sends `signal` (a name such as `TERM`, `KILL`, `USR1`, `STOP`,
    /// `CONT`) to the whole process group. Does nothing when not running.
    pub fn signal(&mut self, signal: &str) {
        if !self.is_running() {
            return;
        }
        if let Some(pid) = self.pid() {
            signal_group(pid, signal);
        }
    }

    /// Freezes the process (SIGSTOP), e.g. to make a server stop answering
    /// while its sockets stay open. [`Self::resume`] undoes it.
    pub fn pause(&mut self) {
        self.signal("STOP");
    }

    /// Resumes a process frozen by [`Self::pause`] (SIGCONT).
    pub fn resume(&mut self) {
        self.signal("CONT");
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let start = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if start.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => return None,
                Err(e) => panic!("{}: cannot wait for the process: {e}", self.spec.name),
            }
        }
    }

    /// Kills the process group at once (SIGKILL, as in a crash or power
    /// loss) and returns the exit status (signal 9 unless it had exited).
    ///
    /// # Panics
    /// When it was never running.
    #[track_caller]
    pub fn kill9(&mut self) -> ExitStatus {
        let pid = self
            .pid()
            .unwrap_or_else(|| panic!("{}: kill9 but never started", self.spec.name));
        if self.is_running() {
            signal_group(pid, "KILL");
        }
        let status = self.wait_exit(Duration::from_secs(30));
        // Stragglers in the group (children of the child) go too.
        signal_group(pid, "KILL");
        status.unwrap_or_else(|| panic!("{}: still running 30 s after SIGKILL", self.spec.name))
    }

    /// Graceful stop: SIGTERM to the process group, then SIGKILL after
    /// [`STOP_GRACE`]. Returns the exit status (`status.success()` for a
    /// clean shutdown; `signal() == Some(9)` when it had to be killed).
    #[track_caller]
    pub fn stop(&mut self) -> ExitStatus {
        self.stop_timeout(STOP_GRACE)
    }

    /// [`Self::stop`] with another grace period.
    ///
    /// # Panics
    /// When it was never started.
    #[track_caller]
    pub fn stop_timeout(&mut self, grace: Duration) -> ExitStatus {
        let pid = self
            .pid()
            .unwrap_or_else(|| panic!("{}: stop but never started", self.spec.name));
        if self.is_running() {
            signal_group(pid, "TERM");
            if let Some(status) = self.wait_exit(grace) {
                signal_group(pid, "KILL");
                return status;
            }
            eprintln!(
                "{}: still running {grace:?} after SIGTERM; sending SIGKILL",
                self.spec.name
            );
        }
        self.kill9()
    }

    /// Stops gracefully ([`Self::stop`]) and starts again with the same spec.
    #[track_caller]
    pub fn restart(&mut self) -> ExitStatus {
        let status = self.stop();
        self.start_again();
        status
    }

    /// The log file (stdout and stderr of every run).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The whole log, all runs.
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The log of the current run only.
    pub fn log_since_start(&self) -> String {
        let bytes = std::fs::read(&self.log_path).unwrap_or_default();
        let from = usize::try_from(self.start_offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        String::from_utf8_lossy(&bytes[from..]).into_owned()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Waits until a line of the current run contains `needle` and returns
    /// that line.
    ///
    /// # Panics
    /// When `timeout` passes or the process exits first; the message
    /// includes the log tail.
    #[track_caller]
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self.log_since_start().lines().find(|l| l.contains(needle)) {
                return line.to_owned();
            }
            if !self.is_running() {
                // One last look: the line may have been written just before exit.
                if let Some(line) = self.log_since_start().lines().find(|l| l.contains(needle)) {
                    return line.to_owned();
                }
                panic!(
                    "{} exited before logging {needle:?}; log tail:\n{}",
                    self.spec.name,
                    self.log_tail(TAIL_LINES)
                );
            }
            if start.elapsed() > timeout {
                panic!(
                    "{} did not log {needle:?} within {timeout:?}; log tail:\n{}",
                    self.spec.name,
                    self.log_tail(TAIL_LINES)
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Panics with the log tail when the process is not running.
    #[track_caller]
    pub fn assert_running(&mut self) {
        if !self.is_running() {
            let status = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            panic!(
                "{} is not running (exit status {status:?}); log tail:\n{}",
                self.spec.name,
                self.log_tail(TAIL_LINES)
            );
        }
    }
}

/// A server the tests run as a child process: stopped, killed and started
/// again through its [`ChildGuard`], and after a start waited for until it
/// serves. Implementors say how to reach the process and when it is ready;
/// the lifecycle is the same for all of them.
pub trait Server {
    /// The server's process.
    fn process(&mut self) -> &mut ChildGuard;

    /// Waits until the (re)started process serves.
    ///
    /// # Panics
    /// When it does not (the log tail is shown).
    fn wait_ready(&mut self);

    /// Graceful stop (SIGTERM, SIGKILL after [`STOP_GRACE`]); returns the
    /// exit status. What the server keeps on disk stays for
    /// [`Self::start_again`].
    #[track_caller]
    fn stop(&mut self) -> ExitStatus {
        self.process().stop()
    }

    /// Kills the server at once (SIGKILL); returns the exit status.
    #[track_caller]
    fn kill9(&mut self) -> ExitStatus {
        self.process().kill9()
    }

    /// Starts the server again (same port, configuration and data) and
    /// waits until it serves.
    #[track_caller]
    fn start_again(&mut self) {
        self.process().start_again();
        self.wait_ready();
    }
}

impl ChildGuard {
    /// Waits until something listens on 127.0.0.1:`port`.
    ///
    /// # Panics
    /// When the process exits or `timeout` passes first (the log tail is
    /// shown).
    #[track_caller]
    pub fn wait_listening(&mut self, port: u16, timeout: Duration) {
        let what = format!("{} to listen on port {port}", self.spec.name);
        crate::wait_for(&what, timeout, Duration::from_millis(50), || {
            self.assert_running();
            crate::port_open(port).then_some(())
        });
    }
}

/// What a command run to its end printed, and how it ended.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` (a one-shot tool: ffmpeg, openssl, `parkwatch-edge detect`)
/// to its end and collects its output.
///
/// # Panics
/// When it cannot be started, naming the program.
#[track_caller]
pub fn run_to_end(cmd: &mut Command) -> Finished {
    let output = cmd.output().unwrap_or_else(|e| {
        panic!(
            "cannot run {} (deploy/setup.sh installs the tools): {e}",
            cmd.get_program().to_string_lossy()
        )
    });
    Finished {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// [`run_to_end`] for a command that must succeed.
///
/// # Panics
/// When it fails, with `what` and its stderr.
#[track_caller]
pub fn run_ok(cmd: &mut Command, what: &str) -> Finished {
    let done = run_to_end(cmd);
    assert!(
        done.status.success(),
        "{what}: {} ({}): {}",
        cmd.get_program().to_string_lossy(),
        describe_status(&done.status),
        done.stderr
    );
    done
}

/// `ffmpeg -nostdin -loglevel error -y`, for more arguments.
pub fn ffmpeg() -> Command {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-loglevel", "error", "-y"]);
    cmd
}

/// `ffprobe` of the first video stream of an RTSP URL (given last) over
/// TCP, for more arguments.
pub fn ffprobe_rtsp() -> Command {
    let mut cmd = Command::new("ffprobe");
    cmd.args([
        "-v",
        "error",
        "-rtsp_transport",
        "tcp",
        "-select_streams",
        "v:0",
    ]);
    cmd
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            signal_group(pid, "KILL");
            if let Some(child) = self.child.as_mut() {
                let _ = child.wait();
            }
        }
        if std::thread::panicking() {
            self.log_dir.disable_cleanup(true);
            eprintln!(
                "---- {} log (last {TAIL_LINES} lines; whole log kept at {}) ----\n{}\n---- end of {} log ----",
                self.spec.name,
                self.log_path.display(),
                self.log_tail(TAIL_LINES),
                self.spec.name
            );
        }
    }
}

fn clone_file(file: &File, name: &str) -> File {
    file.try_clone()
        .unwrap_or_else(|e| panic!("{name}: cannot duplicate the log file handle: {e}"))
}

/// Sends a signal to process group `pgid` with the `kill` command. Errors
/// (no such group: everything already exited) are ignored.
fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Describes an exit status for messages: `exit code 3` or `signal 9`.
pub fn describe_status(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("signal {sig}"),
        _ => status.to_string(),
    }
}
