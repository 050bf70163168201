//! Model manifests: the TOML file that describes an ONNX detector.
//!
//! A manifest names the weights file (relative to the manifest), their
//! sha256, licence and source, the labels file, the input tensor (name,
//! size, layout, channel order, letterbox, normalisation), the output
//! decoder and the post-processing thresholds. Example (the schema is exact:
//! unknown keys are refused):
//!
//! ```toml
//! name = "nanodet-m-320"
//! version = "coco-2017"
//! file = "nanodet-m-320.onnx"
//! sha256 = "c59b6c947ce475d27023327808aed655fa000981fe144c4fd2026828999e19f8"
//! licence = "Apache-2.0"
//! source = "https://github.com/RangiLyu/nanodet"
//! labels = "coco-80.names"
//! nms_iou = 0.5
//! score_threshold = 0.35
//!
//! [input]
//! name = "image"
//! width = 320
//! height = 320
//! layout = "nchw"
//! channel_order = "bgr"
//! letterbox = true
//! pad_value = 0
//! mean = [103.53, 116.28, 123.675]
//! std = [57.375, 57.12, 58.395]
//!
//! [output]
//! decoder = "nanodet"
//! strides = [8, 16, 32]
//! reg_max = 7
//! num_classes = 80
//! ```
//!
//! Guarantees: [`ModelManifest::load`] returns a manifest whose values are all
//! usable (positive sizes and strides, thresholds in range, three means and
//! three non-zero standard deviations, a 64-digit sha256) or an error that
//! lists every problem with its key and line. Paths in the result are resolved
//! against the manifest's folder.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};

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

/// Everything that can go wrong between a manifest on disk and the bytes
/// and labels of a model whose sha256 matches it. Each variant names the
/// file, and where it can the TOML key and line.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
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
}

/// Tensor layout of the model input. Only NCHW is supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Batch, channel, height, width (planar).
    Nchw,
}

/// Order of the three colour planes the model expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    /// Blue, green, red (OpenCV's order; NanoDet).
    Bgr,
    /// Red, green, blue.
    Rgb,
}

/// How the raw outputs are turned into boxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecoderKind {
    /// NanoDet / GFL heads: per stride a class-probability map and a box map
    /// of four `reg_max + 1`-bin distance distributions.
    Nanodet,
}

/// The `[input]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Name of the model's input tensor.
    pub name: String,
    /// Input width in pixels.
    pub width: u32,
    /// Input height in pixels.
    pub height: u32,
    /// Tensor layout; `"nchw"`.
    pub layout: Layout,
    /// Channel order the model expects: `"bgr"` or `"rgb"`.
    pub channel_order: ChannelOrder,
    /// Keep the aspect ratio and pad (the only mode supported: must be `true`).
    pub letterbox: bool,
    /// Pixel value (0 to 255, before normalisation) of the padding.
    pub pad_value: f32,
    /// Per-channel mean subtracted, in `channel_order`.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation divided by, in `channel_order`.
    pub std: Vec<f32>,
}

/// The `[output]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Which decoder reads the outputs: `"nanodet"`.
    pub decoder: DecoderKind,
    /// Feature-map strides of the heads, e.g. `[8, 16, 32]`.
    pub strides: Vec<u32>,
    /// Highest bin of the box distance distribution (bins = `reg_max + 1`).
    pub reg_max: u32,
    /// Number of classes; the labels file has exactly this many lines.
    pub num_classes: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: String,
    version: String,
    file: PathBuf,
    sha256: String,
    licence: String,
    source: String,
    labels: PathBuf,
    nms_iou: f32,
    score_threshold: f32,
    input: InputSpec,
    output: OutputSpec,
}

/// A validated model manifest with paths resolved against its folder.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelManifest {
    /// The manifest file itself.
    pub path: PathBuf,
    /// Model name, e.g. `nanodet-m-320`.
    pub name: String,
    /// Model version (free text).
    pub version: String,
    /// The ONNX weights, resolved.
    pub file: PathBuf,
    /// Expected sha256 of the weights, lower-case hex.
    pub sha256: String,
    /// Licence of the weights.
    pub licence: String,
    /// Where the weights come from.
    pub source: String,
    /// Class names, one a line, resolved.
    pub labels: PathBuf,
    /// IoU above which a box of the same class is suppressed.
    pub nms_iou: f32,
    /// Detections below this score are dropped.
    pub score_threshold: f32,
    /// The input tensor.
    pub input: InputSpec,
    /// The output decoder.
    pub output: OutputSpec,
}

impl ModelManifest {
    /// Reads, parses and validates a manifest.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            what: "model manifest",
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates manifest text; `path` is used for messages and
    /// to resolve the relative `file` and `labels`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ManifestError> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| ManifestError::ManifestParse {
            path: path.to_path_buf(),
            line: e.span().map(|s| line_of_offset(text, s.start)),
            message: e.message().trim().to_string(),
        })?;
        let dir = path.parent().unwrap_or(Path::new(""));
        let manifest = ModelManifest {
            path: path.to_path_buf(),
            name: raw.name,
            version: raw.version,
            file: dir.join(&raw.file),
            sha256: raw.sha256.to_ascii_lowercase(),
            licence: raw.licence,
            source: raw.source,
            labels: dir.join(&raw.labels),
            nms_iou: raw.nms_iou,
            score_threshold: raw.score_threshold,
            input: raw.input,
            output: raw.output,
        };
        let problems = manifest.problems(&|key| line_of_key(text, key));
        if problems.is_empty() {
            Ok(manifest)
        } else {
            Err(ManifestError::ManifestInvalid {
                path: path.to_path_buf(),
                problems,
            })
        }
    }

    /// Re-checks the values (a caller may have changed the public fields
    /// after loading); an error lists every problem.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let problems = self.problems(&|_| None);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ManifestError::ManifestInvalid {
                path: self.path.clone(),
                problems,
            })
        }
    }

    fn problems(&self, line_of: &dyn Fn(&str) -> Option<usize>) -> Vec<ManifestProblem> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, key: &str, message: String| {
            if !ok {
                problems.push(ManifestProblem {
                    key: key.to_string(),
                    line: line_of(key),
                    message,
                });
            }
        };
        check(
            !self.name.trim().is_empty(),
            "name",
            "must not be empty".into(),
        );
        check(
            self.file.file_name().is_some(),
            "file",
            "must name the ONNX file, relative to the manifest".into(),
        );
        check(
            self.sha256.len() == 64 && self.sha256.bytes().all(|b| b.is_ascii_hexdigit()),
            "sha256",
            format!("must be 64 hex digits, got {:?}", self.sha256),
        );
        check(
            self.labels.file_name().is_some(),
            "labels",
            "must name the labels file".into(),
        );
        check(
            self.nms_iou > 0.0 && self.nms_iou <= 1.0,
            "nms_iou",
            format!("must be in (0, 1], got {}", self.nms_iou),
        );
        check(
            (0.0..=1.0).contains(&self.score_threshold),
            "score_threshold",
            format!("must be in [0, 1], got {}", self.score_threshold),
        );
        let input = &self.input;
        check(
            !input.name.is_empty(),
            "input.name",
            "must not be empty".into(),
        );
        check(
            (1..=8192).contains(&input.width),
            "input.width",
            format!("must be 1 to 8192, got {}", input.width),
        );
        check(
            (1..=8192).contains(&input.height),
            "input.height",
            format!("must be 1 to 8192, got {}", input.height),
        );
        check(
            input.letterbox,
            "input.letterbox",
            "only `true` (keep aspect ratio, pad) is supported".into(),
        );
        check(
            (0.0..=255.0).contains(&input.pad_value),
            "input.pad_value",
            format!("must be 0 to 255, got {}", input.pad_value),
        );
        check(
            input.mean.len() == 3 && input.mean.iter().all(|m| m.is_finite()),
            "input.mean",
            format!("must be three finite numbers, got {:?}", input.mean),
        );
        check(
            input.std.len() == 3 && input.std.iter().all(|s| s.is_finite() && *s > 0.0),
            "input.std",
            format!("must be three numbers above 0, got {:?}", input.std),
        );
        let output = &self.output;
        check(
            !output.strides.is_empty() && output.strides.iter().all(|s| (1..=1024).contains(s)),
            "output.strides",
            format!(
                "must be a non-empty list of strides 1 to 1024, got {:?}",
                output.strides
            ),
        );
        let mut sorted = output.strides.clone();
        sorted.sort_unstable();
        sorted.dedup();
        check(
            sorted.len() == output.strides.len(),
            "output.strides",
            format!("must not repeat a stride, got {:?}", output.strides),
        );
        check(
            (1..=64).contains(&output.reg_max),
            "output.reg_max",
            format!("must be 1 to 64, got {}", output.reg_max),
        );
        check(
            (1..=10_000).contains(&output.num_classes),
            "output.num_classes",
            format!("must be 1 to 10000, got {}", output.num_classes),
        );
        problems
    }

    /// Mean per tensor channel.
    pub fn mean(&self) -> [f32; 3] {
        triple(&self.input.mean, 0.0)
    }

    /// Standard deviation per tensor channel.
    pub fn std(&self) -> [f32; 3] {
        triple(&self.input.std, 1.0)
    }

    /// Reads the labels file: one class name a line, line `n` (0-based) is
    /// class `n`. Trailing whitespace is trimmed; the count must equal
    /// `output.num_classes` and no name may be empty.
    pub fn load_labels(&self) -> Result<Vec<Arc<str>>, ManifestError> {
        let text = std::fs::read_to_string(&self.labels).map_err(|source| ManifestError::Read {
            what: "labels file",
            path: self.labels.clone(),
            source,
        })?;
        let labels = parse_labels(&text).map_err(|(line, message)| ManifestError::Labels {
            path: self.labels.clone(),
            line,
            message,
        })?;
        if labels.len() != self.output.num_classes {
            return Err(ManifestError::Labels {
                path: self.labels.clone(),
                line: None,
                message: format!(
                    "has {} names, the manifest {} says output.num_classes = {}",
                    labels.len(),
                    self.path.display(),
                    self.output.num_classes
                ),
            });
        }
        Ok(labels)
    }

    /// Checks the weights file against the manifest's sha256.
    pub fn verify_sha256(&self) -> Result<(), ManifestError> {
        self.read_verified_model().map(drop)
    }

    /// Reads the weights and checks their sha256; the bytes returned are
    /// exactly the ones that were checked.
    pub fn read_verified_model(&self) -> Result<Vec<u8>, ManifestError> {
        let bytes = std::fs::read(&self.file).map_err(|source| ManifestError::Read {
            what: "model file",
            path: self.file.clone(),
            source,
        })?;
        let actual = sha256_hex(&bytes);
        if actual != self.sha256 {
            return Err(ManifestError::Sha256Mismatch {
                path: self.file.clone(),
                expected: self.sha256.clone(),
                actual,
            });
        }
        Ok(bytes)
    }
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    hex
}

fn triple(values: &[f32], default: f32) -> [f32; 3] {
    let mut out = [default; 3];
    for (o, v) in out.iter_mut().zip(values) {
        *o = *v;
    }
    out
}

/// Parses labels text; an error is `(line, message)`.
fn parse_labels(text: &str) -> Result<Vec<Arc<str>>, (Option<usize>, String)> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    if body.trim().is_empty() {
        return Err((None, "is empty".into()));
    }
    body.split('\n')
        .enumerate()
        .map(|(i, line)| {
            let name = line.trim_end();
            if name.is_empty() {
                Err((
                    Some(i + 1),
                    "empty class name (line n is class n - 1, so no blank lines)".into(),
                ))
            } else {
                Ok(Arc::from(name))
            }
        })
        .collect()
}

fn line_of_offset(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset)
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Finds the line of a dotted key (`input.width`) in a plainly laid out TOML
/// file: a `[table]` header followed by `key = value` lines.
fn line_of_key(text: &str, dotted: &str) -> Option<usize> {
    let (table, key) = match dotted.rsplit_once('.') {
        Some((t, k)) => (t, k),
        None => ("", dotted),
    };
    let mut current = "";
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            current = header.trim();
            continue;
        }
        if current == table
            && let Some((k, _)) = line.split_once('=')
            && k.trim().trim_matches('"') == key
        {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "nanodet-m-320"
version = "coco-2017"
file = "nanodet-m-320.onnx"
sha256 = "C59B6C947CE475D27023327808AED655FA000981FE144C4FD2026828999E19F8"
licence = "Apache-2.0"
source = "https://github.com/RangiLyu/nanodet"
labels = "coco-80.names"
nms_iou = 0.5
score_threshold = 0.35

[input]
name = "image"
width = 320
height = 320
layout = "nchw"
channel_order = "bgr"
letterbox = true
pad_value = 0
mean = [103.53, 116.28, 123.675]
std = [57.375, 57.12, 58.395]

[output]
decoder = "nanodet"
strides = [8, 16, 32]
reg_max = 7
num_classes = 80
"#;

    #[test]
    fn parses_and_resolves_paths() {
        let m = ModelManifest::parse(GOOD, Path::new("/srv/models/m.toml")).unwrap();
        assert_eq!(m.file, Path::new("/srv/models/nanodet-m-320.onnx"));
        assert_eq!(m.labels, Path::new("/srv/models/coco-80.names"));
        assert_eq!(
            m.sha256,
            "c59b6c947ce475d27023327808aed655fa000981fe144c4fd2026828999e19f8"
        );
        assert_eq!(m.input.pad_value, 0.0);
        assert_eq!(m.std(), [57.375, 57.12, 58.395]);
        assert_eq!(m.output.strides, vec![8, 16, 32]);
    }

    #[test]
    fn unknown_key_is_refused_with_its_name_and_line() {
        let text = GOOD.replace("reg_max = 7", "reg_max = 7\nregmax = 7");
        let err = ModelManifest::parse(&text, Path::new("m.toml")).unwrap_err();
        let ManifestError::ManifestParse { line, message, .. } = &err else {
            panic!("{err}")
        };
        assert!(message.contains("regmax"), "{message}");
        assert_eq!(*line, Some(27));
        assert!(
            err.to_string().starts_with("model manifest m.toml:27:"),
            "{err}"
        );
    }

    #[test]
    fn every_invalid_value_is_reported_with_key_and_line() {
        let text = GOOD
            .replace("width = 320", "width = 0")
            .replace(
                "std = [57.375, 57.12, 58.395]",
                "std = [57.375, 0.0, 58.395]",
            )
            .replace("strides = [8, 16, 32]", "strides = []")
            .replace("nms_iou = 0.5", "nms_iou = 1.5");
        let err = ModelManifest::parse(&text, Path::new("m.toml")).unwrap_err();
        let ManifestError::ManifestInvalid { problems, .. } = &err else {
            panic!("{err}")
        };
        let keys: Vec<_> = problems.iter().map(|p| (p.key.as_str(), p.line)).collect();
        assert_eq!(
            keys,
            vec![
                ("nms_iou", Some(9)),
                ("input.width", Some(14)),
                ("input.std", Some(21)),
                ("output.strides", Some(25))
            ]
        );
    }

    #[test]
    fn wrong_enum_value_names_the_key() {
        let text = GOOD.replace(r#"decoder = "nanodet""#, r#"decoder = "yolo""#);
        let err = ModelManifest::parse(&text, Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("yolo") && err.contains(":24"), "{err}");
    }

    #[test]
    fn labels_need_one_name_per_line() {
        assert_eq!(parse_labels("person\nbicycle\n").unwrap().len(), 2);
        assert_eq!(
            parse_labels("person\r\nbicycle").unwrap()[0].as_ref(),
            "person"
        );
        assert_eq!(parse_labels("person\n\nbicycle\n").unwrap_err().0, Some(2));
        assert!(parse_labels("\n").is_err());
    }

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
