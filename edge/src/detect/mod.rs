//! On-site object detection: ONNX models described by a manifest, run with
//! ONNX Runtime, shared by all cameras of a box.
//!
//! The parts, in the order a frame meets them:
//!
//! * [`ModelManifest`](parkwatch_edge_logic::manifest::ModelManifest): the TOML file describing
//!   a model (weights, sha256, labels, input tensor, decoder, thresholds),
//!   validated on load;
//! * [`runtime`]: finds `libonnxruntime.so` (explicit path, then
//!   `ORT_DYLIB_PATH`, then `/opt/parkwatch/lib/libonnxruntime.so`) and
//!   starts it once per process;
//! * [`Letterbox`] (in `parkwatch-edge-logic`): the geometry of a frame
//!   inside the square model input; [`preprocess`]: the pre-processing into
//!   a reused NCHW f32 tensor;
//! * [`decode`]: NanoDet head outputs to boxes (found by shape), per-class NMS;
//! * [`nanodet`]: [`OrtDetector`], the [`Detector`] that ties them together;
//! * [`pool`]: one detector pool per box, fair across cameras, keeping only
//!   the latest frame of each camera;
//!
//! The `parkwatch-edge detect IMAGE...` command is the binary's (its
//! `cmds::detect`): this module knows nothing of the command line.
//!
//! Frames are packed **BGR24** ([`BgrFrame`]): the channel order NanoDet was
//! trained with and one of swscale's outputs, so the pipeline converts
//! straight from YUV to what the model eats. Boxes come back as
//! `[x1, y1, x2, y2]` in source-frame pixels, clipped to the frame.
//!
//! [`Detector`] is the seam: the pipeline and its tests can use a fake.
//! The tests against the real model are `edge/tests/real_detector.rs`.

pub mod decode;
mod error;
pub mod frame;
pub mod nanodet;
pub mod pool;
pub mod preprocess;
pub mod runtime;

use std::sync::Arc;

use parkwatch_edge_logic::letterbox::Letterbox;

pub use error::{DetectError, FrameError, RuntimeCandidate};
pub use frame::{BgrFrame, BgrImage};
pub use nanodet::{OrtDetector, OrtDetectorOptions, Timings};
pub use pool::{
    CameraStats, DetectRequest, DetectResult, DetectorPool, FnSink, PoolConfig, PoolStats,
    ResultSink,
};

/// One detected object.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Class index in the model's labels.
    pub class_id: usize,
    /// Class name from the labels file (shared, cheap to clone).
    pub class: Arc<str>,
    /// Class probability, 0 to 1.
    pub score: f32,
    /// `[x1, y1, x2, y2]` in source-frame pixels, clipped to the frame.
    pub bbox: [f32; 4],
}

/// Something that finds objects in frames: the ONNX detector, or a fake in
/// tests.
pub trait Detector: Send {
    /// Model input `(width, height)`.
    fn input_size(&self) -> (u32, u32);

    /// Where a `width` x `height` source frame sits in the model input. The
    /// pipeline scales frames to `(scaled_w, scaled_h)` before [`detect`](Self::detect).
    fn letterbox(&self, width: u32, height: u32) -> Letterbox {
        let (w, h) = self.input_size();
        Letterbox::compute(width, height, w, h)
    }

    /// Detects objects in `frame`, which shows a source frame of size
    /// `source` = `(width, height)`: either already scaled to the
    /// letterbox's `(scaled_w, scaled_h)` (used as is) or of any other size,
    /// typically the source size itself (resized bilinear first). Boxes are
    /// in `source` pixels.
    fn detect(
        &mut self,
        frame: &BgrFrame<'_>,
        source: (u32, u32),
    ) -> Result<Vec<Detection>, DetectError>;

    /// The model's `(name, version)` from its manifest.
    fn model(&self) -> (&str, &str);
}
