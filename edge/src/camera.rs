//! Per-camera shared state: the stream's health as the rest of the box sees it.
//!
//! A camera is worked on by several threads at once (the RTSP task, its decode
//! thread, the detector pool, the analytics task). They meet here: counters are
//! plain atomics (cheap to bump on the hot path, read without locks by the
//! telemetry batcher and `/metrics`), and the stream state is a small enum
//! packed into an atomic so the status publisher never waits on a camera.
//!
//! Counters are cumulative since the process started, like Prometheus counters;
//! the time-series side derives rates.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering};

use parkwatch_protocol::CameraState;

/// Which compressed video format a stream carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoCodec {
    H264,
    H265,
}

impl VideoCodec {
    /// Maps an RTP encoding name (as in the SDP) to a codec we can decode.
    pub fn from_encoding_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "h264" => Some(Self::H264),
            "h265" | "hevc" => Some(Self::H265),
            _ => None,
        }
    }

    /// Short lowercase name for logs and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::H264 => "h264",
            Self::H265 => "h265",
        }
    }
}

/// One compressed access unit as received from the camera (Annex B framing,
/// with parameter sets before every keyframe).
#[derive(Debug)]
pub struct EncodedFrame {
    pub codec: VideoCodec,
    pub data: Vec<u8>,
    /// Presentation time in milliseconds on the camera's clock (monotonic
    /// within one session).
    pub pts_ms: i64,
    /// Wall-clock time in Unix milliseconds that stands for this frame in
    /// alarms: session start plus stream time, so it advances smoothly.
    pub ts_ms: i64,
    pub keyframe: bool,
}

/// Live counters and state of one camera. Shared behind an `Arc`.
#[derive(Debug)]
pub struct CameraStats {
    pub id: String,
    pub frames_received: AtomicU64,
    pub bytes_received: AtomicU64,
    pub frames_decoded: AtomicU64,
    /// Compressed frames dropped before decode because the decoder lagged
    /// (dropped up to the next keyframe, never a growing queue).
    pub frames_dropped: AtomicU64,
    pub decode_errors: AtomicU64,
    /// Frames the motion gate sampled.
    pub frames_sampled: AtomicU64,
    /// Frames the detector ran on.
    pub frames_detected: AtomicU64,
    /// Frames offered to the detector but replaced by a newer one before it
    /// got to them (keep-latest).
    pub detect_skipped: AtomicU64,
    pub inference_us_total: AtomicU64,
    pub reconnects: AtomicU64,
    /// Times the frame watchdog fired.
    pub stale_events: AtomicU64,
    pub alarms_raised: AtomicU64,
    state: AtomicU8,
    state_since_ms: AtomicI64,
    last_frame_ms: AtomicI64,
    width: AtomicU64,
    height: AtomicU64,
}

impl CameraStats {
    pub fn new(id: &str, now_ms: i64) -> Arc<Self> {
        Arc::new(Self {
            id: id.to_owned(),
            frames_received: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            frames_decoded: AtomicU64::new(0),
            frames_dropped: AtomicU64::new(0),
            decode_errors: AtomicU64::new(0),
            frames_sampled: AtomicU64::new(0),
            frames_detected: AtomicU64::new(0),
            detect_skipped: AtomicU64::new(0),
            inference_us_total: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            stale_events: AtomicU64::new(0),
            alarms_raised: AtomicU64::new(0),
            state: AtomicU8::new(state_to_u8(CameraState::Connecting)),
            state_since_ms: AtomicI64::new(now_ms),
            last_frame_ms: AtomicI64::new(0),
            width: AtomicU64::new(0),
            height: AtomicU64::new(0),
        })
    }

    /// Sets the state; returns true when it changed.
    pub fn set_state(&self, state: CameraState, now_ms: i64) -> bool {
        let new = state_to_u8(state);
        let old = self.state.swap(new, Ordering::AcqRel);
        if old != new {
            self.state_since_ms.store(now_ms, Ordering::Release);
            true
        } else {
            false
        }
    }

    pub fn state(&self) -> CameraState {
        state_from_u8(self.state.load(Ordering::Acquire))
    }

    pub fn state_since_ms(&self) -> i64 {
        self.state_since_ms.load(Ordering::Acquire)
    }

    pub fn note_frame(&self, bytes: usize, now_ms: i64) {
        self.frames_received.fetch_add(1, Ordering::Relaxed);
        self.bytes_received
            .fetch_add(bytes as u64, Ordering::Relaxed);
        self.last_frame_ms.store(now_ms, Ordering::Relaxed);
    }

    pub fn last_frame_ms(&self) -> i64 {
        self.last_frame_ms.load(Ordering::Relaxed)
    }

    pub fn set_resolution(&self, width: u32, height: u32) {
        self.width.store(u64::from(width), Ordering::Relaxed);
        self.height.store(u64::from(height), Ordering::Relaxed);
    }

    pub fn resolution(&self) -> (u64, u64) {
        (
            self.width.load(Ordering::Relaxed),
            self.height.load(Ordering::Relaxed),
        )
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

fn state_to_u8(s: CameraState) -> u8 {
    match s {
        CameraState::Connecting => 0,
        CameraState::Streaming => 1,
        CameraState::Stale => 2,
        CameraState::Offline => 3,
    }
}

fn state_from_u8(v: u8) -> CameraState {
    match v {
        1 => CameraState::Streaming,
        2 => CameraState::Stale,
        3 => CameraState::Offline,
        _ => CameraState::Connecting,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_reports_changes() {
        let s = CameraStats::new("cam", 5);
        assert_eq!(s.state(), CameraState::Connecting);
        assert!(s.set_state(CameraState::Streaming, 10));
        assert!(!s.set_state(CameraState::Streaming, 20));
        assert_eq!(s.state_since_ms(), 10);
        assert!(s.set_state(CameraState::Stale, 30));
        assert_eq!(s.state(), CameraState::Stale);
    }

    #[test]
    fn codec_names() {
        assert_eq!(
            VideoCodec::from_encoding_name("H264"),
            Some(VideoCodec::H264)
        );
        assert_eq!(
            VideoCodec::from_encoding_name("h265"),
            Some(VideoCodec::H265)
        );
        assert_eq!(VideoCodec::from_encoding_name("jpeg"), None);
    }
}
