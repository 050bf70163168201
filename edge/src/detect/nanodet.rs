//! The ONNX Runtime detector: a session for a manifest-described model,
//! its pre-processing buffers and its output decoder.
//!
//! [`OrtDetector::load`] checks the weights' sha256, creates the session
//! (intra-op threads configurable, spinning off by default so idle inference
//! threads do not burn the cores the video decoders need), checks that the
//! model has the input the manifest names with a compatible shape, and finds
//! the head outputs by shape. [`Detector::detect`] then runs letterbox +
//! normalisation into a reused NCHW buffer, the session, decoding, per-class
//! NMS and the score threshold, and records how long each step took
//! ([`OrtDetector::last_timings`]).
//!
//! Guarantees: no per-frame allocation in pre-processing or decoding (ONNX
//! Runtime allocates its outputs, and the returned `Vec<Detection>` is the
//! result); an output whose shape no longer fits is an error, never an
//! out-of-bounds read.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorRef;
use parkwatch_edge_logic::letterbox::Letterbox;
use parkwatch_edge_logic::manifest::{DecoderKind, ModelManifest};

use super::decode::{self, Candidate, Head, HeadSpec};
use super::error::DetectError;
use super::frame::BgrFrame;
use super::preprocess::Preprocessor;
use super::runtime::Runtime;
use super::{Detection, Detector};

/// Most outputs a model may have (NanoDet has six).
const MAX_OUTPUTS: usize = 16;

/// How to build an [`OrtDetector`].
#[derive(Debug, Clone, PartialEq)]
pub struct OrtDetectorOptions {
    /// ONNX Runtime intra-op threads for this session. Default: the number
    /// of cores. More threads lower the latency of one frame; several pool
    /// workers with fewer threads each raise throughput instead.
    pub intra_threads: usize,
    /// Let idle intra-op threads spin-wait for work. Default `false`:
    /// spinning shaves a little latency but keeps cores busy between frames,
    /// which starves video decoding on a small box.
    pub intra_op_spinning: bool,
    /// Score threshold; `None` takes the manifest's `score_threshold`.
    pub score_threshold: Option<f32>,
    /// NMS IoU threshold; `None` takes the manifest's `nms_iou`.
    pub nms_iou: Option<f32>,
    /// Most detections returned per frame (highest scores first). Default 100.
    pub max_detections: usize,
}

impl Default for OrtDetectorOptions {
    fn default() -> Self {
        Self {
            intra_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            intra_op_spinning: false,
            score_threshold: None,
            nms_iou: None,
            max_detections: 100,
        }
    }
}

/// Time spent in each step of the last [`Detector::detect`] call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    /// Letterbox, resize and normalisation.
    pub preprocess: Duration,
    /// `Session::run` alone.
    pub inference: Duration,
    /// Decoding, NMS and building the result.
    pub postprocess: Duration,
}

impl Timings {
    /// Sum of the three steps.
    pub fn total(&self) -> Duration {
        self.preprocess + self.inference + self.postprocess
    }
}

/// A NanoDet-style detector running on ONNX Runtime.
#[derive(Debug)]
pub struct OrtDetector {
    session: Session,
    model_path: PathBuf,
    name: String,
    version: String,
    input_name: String,
    input_w: u32,
    input_h: u32,
    labels: Vec<Arc<str>>,
    spec: HeadSpec,
    heads: Option<Vec<Head>>,
    pre: Preprocessor,
    candidates: Vec<Candidate>,
    candidates_before_nms: usize,
    score_threshold: f32,
    nms_iou: f32,
    max_detections: usize,
    timings: Timings,
}

impl OrtDetector {
    /// Verifies the weights and creates a session for `manifest` in `runtime`.
    pub fn load(
        runtime: &Runtime,
        manifest: &ModelManifest,
        options: &OrtDetectorOptions,
    ) -> Result<Self, DetectError> {
        manifest.validate()?;
        let DecoderKind::Nanodet = manifest.output.decoder;
        let labels = manifest.load_labels()?;
        let bytes = manifest.read_verified_model()?;
        let model_path = manifest.file.clone();
        let session_err = |e: ort::Error| DetectError::Session {
            model: model_path.clone(),
            message: e.to_string(),
        };
        let session = Session::builder(runtime.environment())
            .map_err(session_err)?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| session_err(e.into()))?
            .with_intra_threads(options.intra_threads.max(1))
            .map_err(|e| session_err(e.into()))?
            .with_intra_op_spinning(options.intra_op_spinning)
            .map_err(|e| session_err(e.into()))?
            .commit_from_memory(&bytes)
            .map_err(session_err)?;

        let (w, h) = (manifest.input.width, manifest.input.height);
        let interface_err = |message: String| DetectError::ModelInterface {
            model: model_path.clone(),
            message,
        };
        let input = session
            .inputs()
            .iter()
            .find(|i| i.name() == manifest.input.name)
            .ok_or_else(|| {
                interface_err(format!(
                    "has no input named {:?} (manifest {} `input.name`); its inputs are {:?}",
                    manifest.input.name,
                    manifest.path.display(),
                    session
                        .inputs()
                        .iter()
                        .map(|i| i.name())
                        .collect::<Vec<_>>()
                ))
            })?;
        if let Some(shape) = input.dtype().tensor_shape() {
            let want = [1, 3, i64::from(h), i64::from(w)];
            let fits = shape.len() == 4
                && shape
                    .iter()
                    .zip(want)
                    .all(|(got, want)| *got < 0 || *got == want);
            if !fits {
                return Err(interface_err(format!(
                    "input {:?} has shape {:?}, the manifest {} describes {want:?} (NCHW)",
                    manifest.input.name,
                    &shape[..],
                    manifest.path.display()
                )));
            }
        }
        if session.outputs().len() > MAX_OUTPUTS {
            return Err(interface_err(format!(
                "has {} outputs, at most {MAX_OUTPUTS} are supported",
                session.outputs().len()
            )));
        }
        let spec = HeadSpec {
            input_w: w,
            input_h: h,
            strides: manifest.output.strides.clone(),
            reg_max: manifest.output.reg_max,
            num_classes: manifest.output.num_classes,
        };
        // Resolve now when every output shape is static, so a wrong model
        // fails at start-up; otherwise on the first frame.
        let static_shapes: Option<Vec<Vec<i64>>> = session
            .outputs()
            .iter()
            .map(|o| {
                o.dtype()
                    .tensor_shape()
                    .filter(|s| s.iter().all(|d| *d >= 0))
                    .map(|s| s.to_vec())
            })
            .collect();
        let heads = match static_shapes {
            Some(shapes) => {
                let refs: Vec<&[i64]> = shapes.iter().map(Vec::as_slice).collect();
                Some(decode::resolve_heads(&spec, &refs).map_err(interface_err)?)
            }
            None => None,
        };
        let pre = Preprocessor::new(
            w,
            h,
            manifest.input.channel_order,
            manifest.mean(),
            manifest.std(),
            manifest.input.pad_value,
        );
        Ok(Self {
            session,
            model_path,
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            input_name: manifest.input.name.clone(),
            input_w: w,
            input_h: h,
            labels,
            spec,
            heads,
            pre,
            candidates: Vec::with_capacity(1024),
            candidates_before_nms: 0,
            score_threshold: options.score_threshold.unwrap_or(manifest.score_threshold),
            nms_iou: options.nms_iou.unwrap_or(manifest.nms_iou),
            max_detections: options.max_detections,
            timings: Timings::default(),
        })
    }

    /// How long each step of the last `detect` took.
    pub fn last_timings(&self) -> Timings {
        self.timings
    }

    /// Boxes at or above the score threshold before NMS in the last
    /// `detect` (a cross-check against another runtime's raw outputs).
    pub fn last_candidates_before_nms(&self) -> usize {
        self.candidates_before_nms
    }

    /// The class names, index = class id.
    pub fn labels(&self) -> &[Arc<str>] {
        &self.labels
    }

    /// The score threshold in use.
    pub fn score_threshold(&self) -> f32 {
        self.score_threshold
    }

    /// The pre-processed input tensor of the last `detect` (NCHW,
    /// `[1, 3, height, width]`), e.g. to feed another runtime the same input.
    pub fn input_tensor(&self) -> &[f32] {
        self.pre.tensor()
    }

    /// Runs the session on the tensor already in the pre-processing buffer
    /// and decodes with `lb`, recording the inference and post-processing time.
    fn infer(&mut self, lb: &Letterbox) -> Result<Vec<Detection>, DetectError> {
        let infer_err = |name: &str, message: String| DetectError::Inference {
            model: name.to_string(),
            message,
        };
        let started = Instant::now();
        let input = TensorRef::from_array_view((self.pre.shape(), self.pre.tensor()))
            .map_err(|e| infer_err(&self.name, e.to_string()))?;
        let outputs = self
            .session
            .run(ort::inputs![self.input_name.as_str() => input])
            .map_err(|e| infer_err(&self.name, e.to_string()))?;
        let ran = Instant::now();

        let count = outputs.len().min(MAX_OUTPUTS);
        let mut shapes: [&[i64]; MAX_OUTPUTS] = [&[]; MAX_OUTPUTS];
        let mut data: [&[f32]; MAX_OUTPUTS] = [&[]; MAX_OUTPUTS];
        for i in 0..count {
            // Outputs that are not f32 tensors stay empty and match no map.
            if let Ok((shape, values)) = outputs[i].try_extract_tensor::<f32>() {
                shapes[i] = shape;
                data[i] = values;
            }
        }
        let (shapes, data) = (&shapes[..count], &data[..count]);
        let fits = self
            .heads
            .as_ref()
            .is_some_and(|h| decode::heads_fit(&self.spec, h, data));
        if !fits {
            let heads = decode::resolve_heads(&self.spec, shapes).map_err(|message| {
                DetectError::ModelInterface {
                    model: self.model_path.clone(),
                    message,
                }
            })?;
            if !decode::heads_fit(&self.spec, &heads, data) {
                return Err(infer_err(
                    &self.name,
                    format!(
                        "outputs do not hold their shapes: {}",
                        decode::describe_shapes(shapes)
                    ),
                ));
            }
            self.heads = Some(heads);
        }
        let heads = self.heads.as_deref().unwrap_or(&[]);
        self.candidates.clear();
        decode::decode(
            &self.spec,
            heads,
            data,
            lb,
            self.score_threshold,
            &mut self.candidates,
        );
        self.candidates_before_nms = self.candidates.len();
        decode::nms(&mut self.candidates, self.nms_iou, self.max_detections);
        let detections = self
            .candidates
            .iter()
            .map(|c| Detection {
                class_id: c.class_id,
                class: self
                    .labels
                    .get(c.class_id)
                    .cloned()
                    .unwrap_or_else(|| Arc::from("?")),
                score: c.score,
                bbox: c.bbox,
            })
            .collect();
        self.timings.inference = ran - started;
        self.timings.postprocess = ran.elapsed();
        Ok(detections)
    }
}

impl Detector for OrtDetector {
    fn input_size(&self) -> (u32, u32) {
        (self.input_w, self.input_h)
    }

    fn detect(
        &mut self,
        frame: &BgrFrame<'_>,
        source: (u32, u32),
    ) -> Result<Vec<Detection>, DetectError> {
        let started = Instant::now();
        let lb = self.letterbox(source.0, source.1);
        self.pre.fill(frame, &lb);
        self.timings.preprocess = started.elapsed();
        self.infer(&lb)
    }

    fn model(&self) -> (&str, &str) {
        (&self.name, &self.version)
    }
}
