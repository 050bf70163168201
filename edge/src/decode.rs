//! Video decode on dedicated threads (never on the async workers).
//!
//! One OS thread per camera owns an FFmpeg decoder and a [`FrameSink`]. It
//! takes compressed frames from the camera's source over a small bounded
//! channel (see [`crate::source`] for what happens when it is full), decodes
//! every one of them (H.26x frames reference each other, so skipping is only
//! possible up to the next keyframe) and shows each decoded picture to the
//! sink while it is still in the decoder's own YUV buffer. The sink decides
//! what is worth more work: it samples at the detection rate and converts or
//! scales only the frames that go to the detector.
//!
//! A decode error costs that frame only; the decoder is rebuilt at the start
//! of every session (the codec or resolution may change on reconnect).

use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;

use ffmpeg_next as ffmpeg;
use tracing::{debug, warn};

use crate::camera::{CameraStats, VideoCodec};
use crate::source::DecodeMsg;

/// Receives decoded pictures on the decode thread. Must be quick: anything
/// slow belongs on another thread behind a keep-latest hand-off. A sink is
/// built on the decode thread itself (see [`spawn_decoder`]), so it may hold
/// FFmpeg state that cannot move between threads (scalers).
pub trait FrameSink {
    /// `ts_ms` is the frame's wall-clock time (live) or its presentation
    /// time (replay), in milliseconds.
    fn on_frame(&mut self, frame: &ffmpeg::frame::Video, ts_ms: i64);

    /// The stream restarted; forget any state tied to the old one.
    fn on_reset(&mut self) {}
}

/// A sink that only counts (the decoder already counts decoded frames).
pub struct NullSink;

impl FrameSink for NullSink {
    fn on_frame(&mut self, _frame: &ffmpeg::frame::Video, _ts_ms: i64) {}
}

/// Why a decoder could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("FFmpeg has no decoder for {0}")]
    NoDecoder(&'static str),
    #[error("opening the {codec} decoder: {source}")]
    Open {
        codec: &'static str,
        source: ffmpeg::Error,
    },
    #[error("initialising FFmpeg: {0}")]
    Init(ffmpeg::Error),
}

/// Initialises FFmpeg once per process and keeps its own logging quiet
/// (errors only); safe to call repeatedly.
pub fn init_ffmpeg() -> Result<(), DecodeError> {
    static INIT: std::sync::OnceLock<Result<(), ffmpeg::Error>> = std::sync::OnceLock::new();
    INIT.get_or_init(|| {
        ffmpeg::init()?;
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Error);
        Ok(())
    })
    .map_err(DecodeError::Init)
}

/// Opens a software decoder for `codec` with `threads` decoder threads
/// (1 is best when one box decodes many cameras).
pub fn open_decoder(
    codec: VideoCodec,
    threads: usize,
) -> Result<ffmpeg::decoder::Video, DecodeError> {
    init_ffmpeg()?;
    let id = match codec {
        VideoCodec::H264 => ffmpeg::codec::Id::H264,
        VideoCodec::H265 => ffmpeg::codec::Id::HEVC,
    };
    let found = ffmpeg::decoder::find(id).ok_or(DecodeError::NoDecoder(codec.as_str()))?;
    let mut ctx = ffmpeg::codec::Context::new_with_codec(found);
    if threads > 1 {
        ctx.set_threading(ffmpeg::codec::threading::Config {
            kind: ffmpeg::codec::threading::Type::Frame,
            count: threads,
            ..Default::default()
        });
    }
    ctx.decoder().video().map_err(|source| DecodeError::Open {
        codec: codec.as_str(),
        source,
    })
}

/// Starts the decode thread of one camera; `make_sink` builds its sink on
/// that thread. It runs until the source drops its sender.
pub fn spawn_decoder(
    camera: &str,
    stats: Arc<CameraStats>,
    rx: Receiver<DecodeMsg>,
    make_sink: impl FnOnce() -> Box<dyn FrameSink> + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    let camera = camera.to_owned();
    std::thread::Builder::new()
        .name(format!("decode-{camera}"))
        .spawn(move || {
            let mut sink = make_sink();
            let mut decoder: Option<ffmpeg::decoder::Video> = None;
            let mut frame = ffmpeg::frame::Video::empty();
            let mut errors_logged = 0u32;
            for msg in rx {
                match msg {
                    DecodeMsg::NewSession(codec) => {
                        sink.on_reset();
                        decoder = match open_decoder(codec, 1) {
                            Ok(d) => Some(d),
                            Err(e) => {
                                warn!(camera = %camera, err = %e, "Cannot open decoder.");
                                None
                            }
                        };
                    }
                    DecodeMsg::Frame(encoded) => {
                        let Some(dec) = decoder.as_mut() else {
                            continue;
                        };
                        // Wall-clock minus stream time, constant within a session.
                        let offset_ms = encoded.ts_ms - encoded.pts_ms;
                        let mut packet = ffmpeg::Packet::copy(&encoded.data);
                        packet.set_pts(Some(encoded.pts_ms));
                        if let Err(e) = dec.send_packet(&packet) {
                            CameraStats::bump(&stats.decode_errors);
                            if errors_logged < 10 {
                                errors_logged += 1;
                                debug!(camera = %camera, err = %e, "Decoder refused a frame.");
                            }
                            continue;
                        }
                        while dec.receive_frame(&mut frame).is_ok() {
                            CameraStats::bump(&stats.frames_decoded);
                            stats.set_resolution(frame.width(), frame.height());
                            let pts = frame.pts().unwrap_or(encoded.pts_ms);
                            sink.on_frame(&frame, pts + offset_ms);
                        }
                    }
                }
            }
            debug!(camera = %camera, "Decode thread exits.");
        })
}
