//! The real RTSP server of the tests: `deploy/rtsp-server.py` (GStreamer's
//! RTSP server, run with Debian's `/usr/bin/python3`), serving files like
//! cameras.
//!
//! Guarantees: [`RtspServer::start`] returns once the server printed its
//! `ready` line and accepts TCP connections; each mount loops its file
//! forever in real time with increasing timestamps; clients over TCP and UDP
//! work, several at once. The server picks its own free port at the first
//! start (no race with other tests) and keeps it across
//! [`RtspServer::start_again`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::process::{ChildGuard, ChildSpec, Server};
use crate::repo_root;

/// How long the server may take to print `ready` (it remuxes MP4 files to
/// elementary streams first, which takes well under a second each).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Interpreter with GStreamer's introspection bindings (`gi`).
const PYTHON: &str = "/usr/bin/python3";

/// A running `deploy/rtsp-server.py`. Killed when dropped.
#[derive(Debug)]
pub struct RtspServer {
    child: ChildGuard,
    port: u16,
    mounts: Vec<String>,
    credentials: Option<(String, String)>,
}

impl RtspServer {
    /// Serves each `(name, file)` at `rtsp://127.0.0.1:PORT/name`, looping.
    /// Files: `.mp4`/`.mkv`/`.ts` or Annex B `.h264`/`.h265` holding H.264
    /// or H.265 (see [`crate::media`]).
    ///
    /// # Panics
    /// When the server does not become ready (the log tail is shown).
    #[track_caller]
    pub fn start(mounts: &[(&str, &Path)]) -> Self {
        Self::start_with_args(mounts, &[], None)
    }

    /// Like [`Self::start`], but clients must authenticate with digest
    /// authentication as `user`/`password` (401 otherwise).
    #[track_caller]
    pub fn start_with_auth(mounts: &[(&str, &Path)], user: &str, password: &str) -> Self {
        let extra = ["--user", user, "--password", password];
        Self::start_with_args(mounts, &extra, Some((user.to_owned(), password.to_owned())))
    }

    /// Like [`Self::start`] with extra command-line options for the server
    /// (e.g. `["--no-loop"]`, `["--auth", "basic", "--user", "u", "--password", "p"]`).
    #[track_caller]
    pub fn start_with_args(
        mounts: &[(&str, &Path)],
        extra_args: &[&str],
        credentials: Option<(String, String)>,
    ) -> Self {
        assert!(
            !mounts.is_empty(),
            "RtspServer::start needs at least one mount"
        );
        let script = script();
        let mut spec = ChildSpec::new("rtsp-server", PYTHON)
            .arg(&script)
            .args(["--port", "0"]);
        for (name, file) in mounts {
            assert!(
                file.is_file(),
                "RTSP mount {name}: no such file {}",
                file.display()
            );
            spec = spec
                .arg("--mount")
                .arg(format!("{name}={}", file.display()));
        }
        spec = spec.args(extra_args);
        let mut child = spec.spawn();
        let ready = child.wait_for_log("ready rtsp://", READY_TIMEOUT);
        let port = parse_port(&ready)
            .unwrap_or_else(|| panic!("rtsp-server: cannot read the port from {ready:?}"));
        // Keep the port for start_again: replace "--port 0".
        let args: Vec<String> = child
            .spec_mut()
            .get_args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let mut fixed = Vec::with_capacity(args.len());
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            if a == "--port" {
                it.next();
                fixed.push(a);
                fixed.push(port.to_string());
            } else {
                fixed.push(a);
            }
        }
        child.spec_mut().set_args(fixed);
        child.wait_listening(port, Duration::from_secs(10));
        Self {
            child,
            port,
            mounts: mounts.iter().map(|(n, _)| (*n).to_owned()).collect(),
            credentials,
        }
    }

    /// `rtsp://127.0.0.1:PORT/name`.
    ///
    /// # Panics
    /// When `name` is not one of the mounts.
    #[track_caller]
    pub fn url(&self, name: &str) -> String {
        assert!(
            self.mounts.iter().any(|m| m == name),
            "RTSP server has no mount {name:?} (mounts: {:?})",
            self.mounts
        );
        format!("rtsp://127.0.0.1:{}/{name}", self.port)
    }

    /// `rtsp://USER:PASSWORD@127.0.0.1:PORT/name` when started with
    /// authentication (user and password percent-encoded), else [`Self::url`].
    #[track_caller]
    pub fn url_with_credentials(&self, name: &str) -> String {
        let plain = self.url(name);
        match &self.credentials {
            Some((user, password)) => plain.replacen(
                "rtsp://",
                &format!(
                    "rtsp://{}:{}@",
                    percent_encode(user),
                    percent_encode(password)
                ),
                1,
            ),
            None => plain,
        }
    }

    /// The TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Freezes every stream (SIGUSR1): no more media packets, while sessions
    /// and connections stay open and RTSP requests are answered, like a
    /// stuck camera.
    pub fn freeze(&mut self) {
        self.child.signal("USR1");
    }

    /// Resumes frozen streams (SIGUSR2); each resumes at its next keyframe.
    pub fn resume(&mut self) {
        self.child.signal("USR2");
    }

    /// The process, for signals and logs.
    pub fn child(&mut self) -> &mut ChildGuard {
        &mut self.child
    }

    /// The last `lines` lines of the server's log (client connections,
    /// pipeline errors).
    pub fn log_tail(&self, lines: usize) -> String {
        self.child.log_tail(lines)
    }
}

/// Stop: connected clients see their connection close. Start again: same
/// port, same mounts.
impl Server for RtspServer {
    fn process(&mut self) -> &mut ChildGuard {
        &mut self.child
    }

    #[track_caller]
    fn wait_ready(&mut self) {
        self.child.wait_for_log("ready rtsp://", READY_TIMEOUT);
        self.child
            .wait_listening(self.port, Duration::from_secs(10));
    }
}

/// `deploy/rtsp-server.py` in this checkout.
pub(crate) fn script() -> PathBuf {
    repo_root().join("deploy").join("rtsp-server.py")
}

/// The port of the first URL in `ready rtsp://127.0.0.1:PORT/name ...`.
fn parse_port(line: &str) -> Option<u16> {
    let rest = &line[line.find("rtsp://")? + "rtsp://".len()..];
    let authority = rest.split('/').next()?;
    authority.rsplit(':').next()?.parse().ok()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_is_read_from_the_ready_line() {
        assert_eq!(
            parse_port("ready rtsp://127.0.0.1:40123/cam1 rtsp://127.0.0.1:40123/cam2"),
            Some(40123)
        );
        assert_eq!(parse_port("ready rtsp://[::1]:554/a"), Some(554));
        assert_eq!(parse_port("ready"), None);
    }

    #[test]
    fn credentials_are_percent_encoded() {
        assert_eq!(percent_encode("s3cret!@:"), "s3cret%21%40%3A");
        assert_eq!(percent_encode("a-b_c.d~"), "a-b_c.d~");
    }
}
