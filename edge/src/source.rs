//! RTSP camera sources: one long-lived task per camera, built on retina.
//!
//! # What it guarantees
//! - **Independence.** Each camera runs its own task and hands frames to its
//!   own decode thread, so a camera that hangs, refuses or floods never stalls
//!   another.
//! - **No growing queue.** Frames go to the decoder through a small bounded
//!   channel with `try_send`. When it is full the frame is dropped and so is
//!   every following frame up to the next keyframe (an H.26x decoder cannot
//!   skip a reference frame and stay correct). Drops are counted.
//! - **Reconnect, forever.** A session that fails to start, errors, ends
//!   (the server went away: retina ends the stream without an error) or goes
//!   quiet is torn down and retried after jittered exponential backoff
//!   (0.5 s doubling to 30 s, reset once frames flow again).
//! - **Frame watchdog.** When the server keeps the connection open but stops
//!   sending, retina notices only through RTSP keepalives 30 to 60 s later.
//!   The source gives up on a session after `stale_after` without a frame
//!   (default 10 s), marks the camera stale and reconnects.
//! - **Stale sessions are waited out** (retina's `SessionGroup`) before a new
//!   session is set up, as cheap cameras refuse a second session while the
//!   old one lingers.
//! - **Credentials never reach a log.** The URL handed to retina carries no
//!   user info; credentials travel separately and logs show the redacted URL.
//!
//! The decoder side is in [`crate::decode`].

use std::sync::Arc;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::Duration;

use futures::StreamExt;
use parkwatch_protocol::CameraState;
use retina::client::{
    Credentials, InitialTimestampPolicy, PlayOptions, Session, SessionGroup, SessionOptions,
    SetupOptions, TcpTransportOptions, Transport,
};
use retina::codec::{CodecItem, FrameFormat};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};
use url::Url;

use crate::camera::{CameraStats, EncodedFrame, VideoCodec};
use parkwatch_durable::backoff::Backoff;
use parkwatch_durable::clock::now_ms;

/// What a source tells its decode thread.
#[derive(Debug)]
pub enum DecodeMsg {
    /// A new session started: drop decoder state (the codec may differ).
    NewSession(VideoCodec),
    Frame(EncodedFrame),
}

/// Stream state changes, for the camera-offline rule and the status topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamEvent {
    pub online: bool,
    pub ts_ms: i64,
}

/// Why a camera URL was refused.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("camera {camera}: url is not valid: {reason}")]
    Invalid { camera: String, reason: String },
    #[error("camera {camera}: url scheme must be rtsp or rtsps, not {scheme}")]
    Scheme { camera: String, scheme: String },
}

/// A camera as its source task needs it.
#[derive(Clone)]
pub struct SourceSpec {
    pub camera: String,
    /// The URL without user info.
    pub url: Url,
    pub credentials: Option<Credentials>,
    pub stale_after: Duration,
    pub keyframes_only: bool,
}

impl std::fmt::Debug for SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceSpec")
            .field("camera", &self.camera)
            .field("url", &self.url.as_str())
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .field("stale_after", &self.stale_after)
            .field("keyframes_only", &self.keyframes_only)
            .finish()
    }
}

impl SourceSpec {
    /// Splits credentials out of `raw_url` (percent-decoded) so that the URL
    /// itself can be logged.
    pub fn new(
        camera: &str,
        raw_url: &str,
        stale_after: Duration,
        keyframes_only: bool,
    ) -> Result<Self, UrlError> {
        let mut url = Url::parse(raw_url).map_err(|e| UrlError::Invalid {
            camera: camera.to_owned(),
            reason: e.to_string(),
        })?;
        if url.scheme() != "rtsp" && url.scheme() != "rtsps" {
            return Err(UrlError::Scheme {
                camera: camera.to_owned(),
                scheme: url.scheme().to_owned(),
            });
        }
        let credentials = if url.username().is_empty() && url.password().is_none() {
            None
        } else {
            let decode = |s: &str| {
                percent_decode(s).map_err(|reason| UrlError::Invalid {
                    camera: camera.to_owned(),
                    reason,
                })
            };
            Some(Credentials {
                username: decode(url.username())?,
                password: decode(url.password().unwrap_or(""))?,
            })
        };
        // Setting empty user info cannot fail for a URL with a host, which
        // every rtsp URL that parsed has.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Ok(Self {
            camera: camera.to_owned(),
            url,
            credentials,
            stale_after,
            keyframes_only,
        })
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "bad percent-escape in user info".to_owned())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "user info is not UTF-8".to_owned())
}

/// How one session ended.
enum SessionEnd {
    Shutdown,
    /// The server ended the stream (retina reports a dead server this way).
    Ended,
    /// No frame within `stale_after`.
    Stale,
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("{0}")]
    Rtsp(#[from] retina::Error),
    #[error("no H.264 or H.265 video stream in the presentation")]
    NoVideo,
    #[error("the decoder thread has stopped")]
    DecoderGone,
}

/// Runs one camera until `shutdown` turns true.
pub async fn run_source(
    spec: SourceSpec,
    stats: Arc<CameraStats>,
    decoder: SyncSender<DecodeMsg>,
    events: mpsc::Sender<StreamEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    let group = Arc::new(SessionGroup::default().named(spec.camera.clone()));
    let mut backoff = Backoff::network();
    let mut online = false;
    loop {
        if *shutdown.borrow() {
            return;
        }
        wait_out_stale_sessions(&spec, &group, &mut shutdown).await;
        stats.set_state(CameraState::Connecting, now_ms());
        let result = tokio::select! {
            r = run_session(&spec, &stats, &decoder, &events, &group, &mut backoff, &mut online) => r,
            _ = shutdown.changed() => Ok(SessionEnd::Shutdown),
        };
        let state = match result {
            Ok(SessionEnd::Shutdown) => return,
            Ok(SessionEnd::Ended) => {
                warn!(camera = %spec.camera, url = %spec.url, "Stream ended; reconnecting.");
                CameraState::Offline
            }
            Ok(SessionEnd::Stale) => {
                CameraStats::bump(&stats.stale_events);
                warn!(
                    camera = %spec.camera, url = %spec.url,
                    secs = spec.stale_after.as_secs_f32(),
                    "No frame within the watchdog time; stream is stale, reconnecting."
                );
                CameraState::Stale
            }
            Err(SessionError::DecoderGone) => {
                warn!(camera = %spec.camera, "Decoder thread stopped; source stops.");
                return;
            }
            Err(e) => {
                warn!(camera = %spec.camera, url = %spec.url, err = %e, "RTSP session failed; reconnecting.");
                CameraState::Offline
            }
        };
        let now = now_ms();
        stats.set_state(state, now);
        if online {
            online = false;
            // A full channel only delays the event; the analytics task
            // drains it continuously.
            let _ = events
                .send(StreamEvent {
                    online: false,
                    ts_ms: now,
                })
                .await;
        }
        CameraStats::bump(&stats.reconnects);
        let delay = backoff.next_delay();
        debug!(camera = %spec.camera, delay_ms = delay.as_millis() as u64, "Waiting before reconnect.");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn wait_out_stale_sessions(
    spec: &SourceSpec,
    group: &SessionGroup,
    shutdown: &mut watch::Receiver<bool>,
) {
    let status = group.stale_sessions();
    if status.num_sessions == 0 {
        return;
    }
    let wait = status
        .max_expires
        .map(|t| t.saturating_duration_since(tokio::time::Instant::now()))
        .unwrap_or(Duration::ZERO)
        .min(Duration::from_secs(90));
    info!(camera = %spec.camera, sessions = status.num_sessions, wait_s = wait.as_secs(), "Waiting out stale RTSP sessions.");
    tokio::select! {
        _ = group.await_stale_sessions(&status) => {}
        _ = tokio::time::sleep(wait) => {}
        _ = shutdown.changed() => {}
    }
}

async fn run_session(
    spec: &SourceSpec,
    stats: &CameraStats,
    decoder: &SyncSender<DecodeMsg>,
    events: &mpsc::Sender<StreamEvent>,
    group: &Arc<SessionGroup>,
    backoff: &mut Backoff,
    online: &mut bool,
) -> Result<SessionEnd, SessionError> {
    let options = SessionOptions::default()
        .creds(spec.credentials.clone())
        .session_group(group.clone())
        .user_agent(format!("parkwatch-edge/{}", env!("CARGO_PKG_VERSION")));
    let mut session = Session::describe(spec.url.clone(), options).await?;
    let (index, codec) = session
        .streams()
        .iter()
        .enumerate()
        .find_map(|(i, s)| {
            (s.media() == "video")
                .then(|| VideoCodec::from_encoding_name(s.encoding_name()))
                .flatten()
                .map(|c| (i, c))
        })
        .ok_or(SessionError::NoVideo)?;
    session
        .setup(
            index,
            SetupOptions::default()
                .transport(Transport::Tcp(TcpTransportOptions::default()))
                .frame_format(FrameFormat::SIMPLE),
        )
        .await?;
    let mut demuxed = session
        .play(PlayOptions::default().initial_timestamp(InitialTimestampPolicy::Permissive))
        .await?
        .demuxed()?;
    info!(camera = %spec.camera, url = %spec.url, codec = codec.as_str(), "RTSP session playing.");
    decoder
        .send(DecodeMsg::NewSession(codec))
        .map_err(|_| SessionError::DecoderGone)?;

    let session_start_ms = now_ms();
    let mut waiting_for_keyframe = true;
    // The watchdog counts from the last video frame: RTCP sender reports and
    // other items keep coming from a server that has stopped sending video.
    let mut deadline = tokio::time::Instant::now() + spec.stale_after;
    loop {
        let item = match tokio::time::timeout_at(deadline, demuxed.next()).await {
            Err(_) => return Ok(SessionEnd::Stale),
            Ok(None) => return Ok(SessionEnd::Ended),
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(Some(Ok(item))) => item,
        };
        let CodecItem::VideoFrame(frame) = item else {
            continue;
        };
        deadline = tokio::time::Instant::now() + spec.stale_after;
        let now = now_ms();
        stats.note_frame(frame.data().len(), now);
        if !*online {
            *online = true;
            backoff.reset();
            stats.set_state(CameraState::Streaming, now);
            info!(camera = %spec.camera, "Frames flowing.");
            let _ = events
                .send(StreamEvent {
                    online: true,
                    ts_ms: now,
                })
                .await;
        }
        let keyframe = frame.is_random_access_point();
        if (spec.keyframes_only || waiting_for_keyframe) && !keyframe {
            if waiting_for_keyframe && !spec.keyframes_only {
                CameraStats::bump(&stats.frames_dropped);
            }
            continue;
        }
        let ts = frame.timestamp();
        let pts_ms = ts.elapsed().saturating_mul(1000) / i64::from(ts.clock_rate().get());
        let encoded = EncodedFrame {
            codec,
            data: frame.into_data(),
            pts_ms,
            ts_ms: session_start_ms.saturating_add(pts_ms),
            keyframe,
        };
        match decoder.try_send(DecodeMsg::Frame(encoded)) {
            Ok(()) => waiting_for_keyframe = false,
            Err(TrySendError::Full(_)) => {
                CameraStats::bump(&stats.frames_dropped);
                waiting_for_keyframe = true;
            }
            Err(TrySendError::Disconnected(_)) => return Err(SessionError::DecoderGone),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_split_out_of_the_url() {
        let s = SourceSpec::new(
            "cam-1",
            "rtsp://admin:p%40ss@10.0.0.5:554/Streaming/101",
            Duration::from_secs(10),
            false,
        )
        .unwrap();
        assert_eq!(s.url.as_str(), "rtsp://10.0.0.5:554/Streaming/101");
        let c = s.credentials.as_ref().unwrap();
        assert_eq!(c.username, "admin");
        assert_eq!(c.password, "p@ss");
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("p@ss") && !dbg.contains("p%40ss"), "{dbg}");
    }

    #[test]
    fn refuses_other_schemes_and_garbage() {
        assert!(matches!(
            SourceSpec::new("c", "http://x/y", Duration::from_secs(1), false),
            Err(UrlError::Scheme { .. })
        ));
        assert!(matches!(
            SourceSpec::new("c", "not a url", Duration::from_secs(1), false),
            Err(UrlError::Invalid { .. })
        ));
    }
}
