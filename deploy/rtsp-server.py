#!/usr/bin/python3
"""A real RTSP server that plays video files like cameras, for tests and the demo.

Run it with Debian's own interpreter (`/usr/bin/python3`, which has `gi`);
it uses GStreamer's RTSP server (Debian `gir1.2-gst-rtsp-server-1.0`).

    /usr/bin/python3 deploy/rtsp-server.py --port 8554 \
        --mount cam1=.cache/media/vtest-h264.mp4 --mount cam2=.cache/media/vtest-h265.mp4

What it guarantees:
- Each `--mount NAME=FILE` is served at rtsp://ADDRESS:PORT/NAME, over TCP
  (interleaved) and UDP, to any number of clients at once. All clients of a
  mount share one pipeline, like a camera: a client that joins late gets the
  stream from where it is now and decodes from the next keyframe.
- FILE may be an H.264 or H.265 elementary stream (Annex B: .h264, .264,
  .h265, .265, .hevc) or any container FFmpeg reads (.mp4, .mkv, .ts, ...)
  holding H.264/H.265; a container is remuxed once (stream copy, no
  re-encode) into a private temporary directory at start-up.
- With `--loop` (the default) the file plays forever in real time and the
  timestamps keep increasing across the loop point; `--no-loop` plays it once
  and ends the stream.
- `--user U --password P` requires RTSP authentication (`--auth digest`, the
  default, or `--auth basic`); a wrong or missing password gets 401.
- SIGUSR1 freezes every stream: no more media packets, but sessions and TCP
  connections stay open and RTSP requests are still answered (a stuck
  camera). SIGUSR2 resumes; each stream resumes at its next keyframe.
- SIGTERM or SIGINT stop the server cleanly and remove the temporary files.
- Once listening it prints one line `ready URL...` (flushed) to stdout; with
  `--port 0` the port is chosen by the system and the URLs show it.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

ELEMENTARY_EXT = {
    ".h264": "h264",
    ".264": "h264",
    ".avc": "h264",
    ".h265": "h265",
    ".265": "h265",
    ".hevc": "h265",
}
FFPROBE_CODEC = {"h264": "h264", "hevc": "h265"}
ROLE = "user"


def log(msg):
    print(f"rtsp-server: {msg}", file=sys.stderr, flush=True)


def fail(msg):
    log(f"error: {msg}")
    sys.exit(2)


def probe(path):
    """Return (codec, fps) of the first video stream of `path`, via ffprobe."""
    try:
        out = subprocess.run(
            [
                "ffprobe", "-v", "error", "-select_streams", "v:0",
                "-show_entries", "stream=codec_name,r_frame_rate,avg_frame_rate",
                "-of", "json", path,
            ],
            check=True, capture_output=True, text=True, timeout=60,
        ).stdout
        streams = json.loads(out).get("streams", [])
    except FileNotFoundError:
        fail("ffprobe not found: run deploy/setup.sh (Debian package ffmpeg)")
    except (subprocess.SubprocessError, ValueError) as e:
        fail(f"{path}: ffprobe could not read it: {e}")
    if not streams:
        fail(f"{path}: no video stream")
    s = streams[0]
    codec = FFPROBE_CODEC.get(s.get("codec_name", ""))
    fps = None
    for key in ("avg_frame_rate", "r_frame_rate"):
        num, _, den = s.get(key, "0/0").partition("/")
        try:
            n, d = int(num), int(den or "1")
        except ValueError:
            continue
        if n > 0 and d > 0 and n / d <= 240:
            fps = (n, d)
            break
    return codec, fps


class Mount:
    """One served file: its elementary stream on disk, codec and frame rate."""

    def __init__(self, name, source, codec_arg, fps_arg, workdir):
        self.name = name.strip("/")
        if not re.fullmatch(r"[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*", self.name):
            fail(f"bad mount name {name!r}: use letters, digits, '._~-' and '/'")
        self.source = os.path.abspath(source)
        if not os.path.isfile(self.source):
            fail(f"mount {self.name}: no such file {self.source}")
        ext = os.path.splitext(self.source)[1].lower()
        probed_codec, probed_fps = probe(self.source)
        codec = codec_arg or ELEMENTARY_EXT.get(ext) or probed_codec
        if codec not in ("h264", "h265"):
            fail(f"mount {self.name}: {self.source} is not H.264/H.265 (give --codec?)")
        self.codec = codec
        self.fps = fps_arg or probed_fps or (10, 1)
        if ext in ELEMENTARY_EXT:
            self.path = self.source
        else:
            self.path = os.path.join(workdir, f"{len(os.listdir(workdir))}.{codec}")
            bsf = "h264_mp4toannexb" if codec == "h264" else "hevc_mp4toannexb"
            fmt = "h264" if codec == "h264" else "hevc"
            try:
                subprocess.run(
                    [
                        "ffmpeg", "-nostdin", "-v", "error", "-y", "-i", self.source,
                        "-map", "0:v:0", "-c:v", "copy", "-bsf:v", bsf, "-f", fmt, self.path,
                    ],
                    check=True, capture_output=True, text=True, timeout=300,
                )
            except FileNotFoundError:
                fail("ffmpeg not found: run deploy/setup.sh (Debian package ffmpeg)")
            except subprocess.CalledProcessError as e:
                fail(f"mount {self.name}: remuxing {self.source} failed: {e.stderr.strip()}")
            except subprocess.SubprocessError as e:
                fail(f"mount {self.name}: remuxing {self.source} failed: {e}")

    def launch(self, loop):
        parse = "h264parse" if self.codec == "h264" else "h265parse"
        pay = "rtph264pay" if self.codec == "h264" else "rtph265pay"
        caps = "video/x-h264" if self.codec == "h264" else "video/x-h265"
        n, d = self.fps
        src = "multifilesrc loop=true" if loop else "filesrc"
        # The elementary stream carries no timestamps: the parser interpolates
        # them from the frame rate, continuously across the loop point, and
        # `identity sync=true` paces the stream to real time. The probe on
        # `gate` implements freeze/resume and copies DTS to PTS.
        return (
            f"( {src} name=src ! {caps},stream-format=byte-stream,framerate={n}/{d} "
            f"! {parse} config-interval=-1 ! {caps},alignment=au "
            f"! identity name=gate sync=true "
            f"! {pay} name=pay0 pt=96 config-interval=-1 )"
        )


class Gate:
    """Freeze/resume switch shared by every media pipeline."""

    def __init__(self):
        self.frozen = False

    def probe_for(self):
        """A pad probe with its own state, for one pipeline."""
        waiting_keyframe = False

        def probe(_pad, info):
            nonlocal waiting_keyframe
            buf = info.get_buffer()
            if buf is None:
                return Gst.PadProbeReturn.OK
            if self.frozen:
                waiting_keyframe = True
                return Gst.PadProbeReturn.DROP
            if waiting_keyframe:
                if buf.has_flags(Gst.BufferFlags.DELTA_UNIT):
                    return Gst.PadProbeReturn.DROP
                waiting_keyframe = False
            if buf.pts == Gst.CLOCK_TIME_NONE and buf.dts != Gst.CLOCK_TIME_NONE:
                # No B-frames: presentation order is decode order.
                buf.pts = buf.dts
            return Gst.PadProbeReturn.OK

        return probe


def main():
    p = argparse.ArgumentParser(
        description="Serve video files over RTSP like cameras (GStreamer RTSP server)."
    )
    p.add_argument("--port", type=int, default=8554,
                   help="TCP port to listen on; 0 lets the system choose (default 8554)")
    p.add_argument("--address", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1)")
    p.add_argument("--mount", action="append", default=[], metavar="NAME=FILE",
                   help="serve FILE at rtsp://ADDRESS:PORT/NAME (repeatable)")
    p.add_argument("--codec", choices=["h264", "h265"],
                   help="codec of every mounted file (default: detected)")
    p.add_argument("--fps", type=int,
                   help="frame rate of every mounted file (default: detected, else 10)")
    p.add_argument("--loop", dest="loop", action="store_true", default=True,
                   help="play each file forever like a camera (default)")
    p.add_argument("--no-loop", dest="loop", action="store_false",
                   help="play each file once, then end the stream")
    p.add_argument("--user", help="require this user name (with --password)")
    p.add_argument("--password", help="password for --user")
    p.add_argument("--auth", choices=["digest", "basic"], default="digest",
                   help="authentication method required with --user (default digest)")
    args = p.parse_args()

    if not args.mount:
        p.error("give at least one --mount NAME=FILE")
    if (args.user is None) != (args.password is None):
        p.error("--user and --password go together")
    if not 0 <= args.port <= 65535:
        p.error("--port must be 0..65535")

    Gst.init(None)
    workdir = tempfile.mkdtemp(prefix="parkwatch-rtsp-")
    try:
        run(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(args, workdir):
    mounts = []
    for spec in args.mount:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            fail(f"--mount {spec!r}: expected NAME=FILE")
        if any(m.name == name.strip("/") for m in mounts):
            fail(f"--mount {name!r} given twice")
        mounts.append(Mount(name, path, args.codec, (args.fps, 1) if args.fps else None, workdir))

    gate = Gate()
    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))

    if args.user is not None:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", ROLE)
        # GObject introspection types the method set as an enum, so only one
        # method can be offered at a time.
        auth.set_supported_methods(
            GstRtsp.RTSPAuthMethod.DIGEST if args.auth == "digest" else GstRtsp.RTSPAuthMethod.BASIC
        )
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        auth.add_digest(args.user, args.password, token)
        server.set_auth(auth)

    mapping = server.get_mount_points()
    for m in mounts:
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(m.launch(args.loop))
        factory.set_shared(True)
        factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP)
        if args.user is not None:
            factory.add_role_from_structure(Gst.Structure.new_from_string(
                f"{ROLE}, media.factory.access=(boolean)true, "
                "media.factory.construct=(boolean)true"
            ))
        factory.connect("media-configure", on_media_configure, m, gate)
        mapping.add_factory("/" + m.name, factory)

    server.connect("client-connected", on_client_connected)
    if server.attach(None) == 0:
        fail(f"cannot listen on {args.address}:{args.port} (port in use?)")
    port = server.get_bound_port()

    loop = GLib.MainLoop()

    def freeze(value):
        gate.frozen = value
        log("streams frozen (SIGUSR1)" if value else "streams resumed (SIGUSR2)")
        return GLib.SOURCE_CONTINUE

    def stop():
        log("stopping")
        loop.quit()
        return GLib.SOURCE_REMOVE

    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGUSR1, freeze, True)
    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGUSR2, freeze, False)
    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, stop)
    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGINT, stop)
    # Remove idle sessions (clients that vanished without TEARDOWN).
    pool = server.get_session_pool()
    GLib.timeout_add_seconds(2, lambda: (pool.cleanup(), GLib.SOURCE_CONTINUE)[1])

    host = args.address if args.address not in ("0.0.0.0", "::") else "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    for m in mounts:
        n, d = m.fps
        log(f"mount /{m.name}: {m.source} ({m.codec}, {n}/{d} fps, "
            f"{'loop' if args.loop else 'once'})")
    urls = " ".join(f"rtsp://{host}:{port}/{m.name}" for m in mounts)
    print(f"ready {urls}", flush=True)
    loop.run()


def on_client_connected(_server, client):
    conn = client.get_connection()
    ip = conn.get_ip() if conn is not None else "?"
    log(f"client connected from {ip}")
    client.connect("closed", lambda _c: log(f"client from {ip} closed"))


def on_media_configure(_factory, media, mount, gate):
    element = media.get_element()
    src = element.get_by_name("src") if element is not None else None
    pace = element.get_by_name("gate") if element is not None else None
    if src is None or pace is None:
        log(f"mount /{mount.name}: pipeline lacks its src or gate element")
        return
    # Set here rather than in the launch string: no quoting of odd paths.
    src.set_property("location", mount.path)
    pad = pace.get_static_pad("src")
    pad.add_probe(Gst.PadProbeType.BUFFER, gate.probe_for())
    log(f"mount /{mount.name}: pipeline created")


if __name__ == "__main__":
    main()
