//! Errors of the detection stack.
//!
//! Every variant carries what a person needs to act on it: the manifest or
//! model file, the TOML key and line, every place ONNX Runtime was looked
//! for, the shapes the model really produced.

use std::fmt;
use std::path::PathBuf;

/// One problem found while validating a model manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestProblem {
    /// Dotted TOML key, e.g. `input.width`.
    pub key: String,
    /// 1-based line of the value in the manifest, when known.
    pub line: Option<usize>,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for ManifestProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: `{}`: {}", self.key, self.message),
            None => write!(f, "`{}`: {}", self.key, self.message),
        }
    }
}

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
    /// A file (manifest, labels, weights) could not be read.
    #[error("{what} {}: {source}", path.display())]
    Read {
        /// What the file is: `model manifest`, `labels file`, `model file`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The manifest is not valid TOML or does not match the schema
    /// (unknown key, wrong type, missing key).
    #[error("model manifest {}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    ManifestParse {
        /// The manifest file.
        path: PathBuf,
        /// 1-based line, when the parser knows it.
        line: Option<usize>,
        /// The parser's message (it names the key).
        message: String,
    },
    /// The manifest parsed but some values are unusable; every problem is listed.
    #[error("model manifest {} is invalid:\n  {}", path.display(), problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    ManifestInvalid {
        /// The manifest file.
        path: PathBuf,
        /// Each problem with its key and line.
        problems: Vec<ManifestProblem>,
    },
    /// The labels file is unusable.
    #[error("labels file {}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Labels {
        /// The labels file.
        path: PathBuf,
        /// 1-based line, when the problem is on one line.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// The weights on disk are not the ones the manifest describes.
    #[error("model file {} has sha256 {actual}, the manifest expects {expected}", path.display())]
    Sha256Mismatch {
        /// The model file.
        path: PathBuf,
        /// Digest from the manifest.
        expected: String,
        /// Digest of the file.
        actual: String,
    },
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
