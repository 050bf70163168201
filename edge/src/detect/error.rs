//! Errors of the detection stack.
//!
//! Every variant carries what a person needs to act on it: the manifest or
//! model file, the TOML key and line, every place ONNX Runtime was looked
//! for, the shapes the model really produced.

use std::path::PathBuf;

use parkwatch_edge_logic::manifest::ManifestError;

/// A place where ONNX Runtime was looked for, and why it was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeCandidate {
    /// Where the path came from: `explicit`, `ORT_DYLIB_PATH` or `default`.
    pub origin: &'static str,
    /// The library path that was tried.
    pub path: PathBuf,
    /// Why it did not work.
    pub reason: String,
}

/// A frame given to the detector or to an image helper is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Width or height is zero.
    #[error("frame is empty ({width}x{height})")]
    Empty {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// The row stride is shorter than a row of packed 3-byte pixels.
    #[error("frame stride {stride} is shorter than a row of {width} BGR pixels ({} bytes)", *width as usize * 3)]
    Stride {
        /// Width in pixels.
        width: u32,
        /// Stride in bytes.
        stride: usize,
    },
    /// The buffer is shorter than the geometry needs.
    #[error("frame buffer holds {len} bytes, {width}x{height} with stride {stride} needs {needed}")]
    Short {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Stride in bytes.
        stride: usize,
        /// Bytes present.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
}

/// Everything that can go wrong between a manifest on disk and a list of
/// detections.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The model manifest, its labels or its weights are unusable.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// No ONNX Runtime shared library could be loaded.
    #[error("ONNX Runtime could not be loaded; tried:\n  {}\n(set the edge config key `onnxruntime`, or ORT_DYLIB_PATH, to libonnxruntime.so from PyPI's onnxruntime 1.31 or newer)",
        tried.iter().map(|c| format!("{} ({}): {}", c.path.display(), c.origin, c.reason)).collect::<Vec<_>>().join("\n  "))]
    RuntimeNotFound {
        /// Every candidate with the reason it failed.
        tried: Vec<RuntimeCandidate>,
    },
    /// ONNX Runtime loaded but its environment could not be created.
    #[error("ONNX Runtime at {}: {message}", library.display())]
    Runtime {
        /// The library that was loaded.
        library: PathBuf,
        /// ONNX Runtime's message.
        message: String,
    },
    /// ONNX Runtime refused the model.
    #[error("model {}: creating the session failed: {message}", model.display())]
    Session {
        /// The model file.
        model: PathBuf,
        /// ONNX Runtime's message.
        message: String,
    },
    /// The model's inputs or outputs do not match the manifest.
    #[error("model {}: {message}", model.display())]
    ModelInterface {
        /// The model file.
        model: PathBuf,
        /// What does not match, with what the model really has.
        message: String,
    },
    /// Running the model failed.
    #[error("model {model}: inference failed: {message}")]
    Inference {
        /// Model name from the manifest.
        model: String,
        /// ONNX Runtime's message.
        message: String,
    },
    /// The frame handed to the detector is malformed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The detector pool could not start.
    #[error("detector pool: {message}")]
    PoolStart {
        /// Why.
        message: String,
    },
    /// The detector pool has been shut down.
    #[error("the detector pool is shut down")]
    PoolClosed,
}
