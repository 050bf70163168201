//! One detector pool per box, shared fairly by all its cameras.
//!
//! # Design
//!
//! Inference is the scarce resource of an edge box: a 2-core box runs
//! NanoDet-m 320 in about 12 ms, so 28 cameras at 10 fps cannot all be
//! served. The pool therefore keeps, per camera, **one pending slot**:
//! a new frame replaces an older one still waiting (the older one is counted
//! as dropped and its buffer handed back for reuse). A camera never has
//! more than one frame waiting, so memory is bounded by the number of cameras.
//!
//! Cameras with a waiting frame sit in a FIFO ready queue, each at most
//! once; workers take the camera at its head. That is round-robin: after a
//! camera is served it goes to the back, so a camera that submits at 30 fps
//! gets no more turns than one at 2 fps while the pool is saturated, and
//! cannot starve it. A camera whose frame is being processed is not queued
//! again until that frame is done, so one camera never occupies two workers
//! and its results come out in order.
//!
//! Each worker is a plain thread owning one [`Detector`]. Default: one
//! worker whose session uses all cores as intra-op threads, which gives the
//! lowest latency per frame. Several workers with fewer threads each (for
//! example 2 x 1 thread on 2 cores) give more frames per second in total,
//! because small convolutions do not parallelise perfectly, at the cost of
//! higher latency per frame and one model copy per worker.
//!
//! Results go to a [`ResultSink`]: a tokio `mpsc::Sender` (bounded: a slow
//! consumer blocks the workers, and then the keep-latest slots drop frames
//! upstream, which is the wanted back-pressure), an unbounded one, a std
//! channel or a closure ([`FnSink`]). Each result carries the inference time
//! and the time the frame waited, and hands the frame buffer back.
//!
//! On [`DetectorPool::shutdown`] (or drop) workers finish the frame they
//! are on; frames still waiting are discarded (counted as dropped).

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parkwatch_edge_logic::letterbox::Letterbox;
use parkwatch_edge_logic::manifest::ModelManifest;

use super::error::DetectError;
use super::frame::BgrImage;
use super::nanodet::{OrtDetector, OrtDetectorOptions};
use super::runtime::Runtime;
use super::{Detection, Detector};

/// How many workers and how each detector is built.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// Worker threads, each with its own session. Default 1.
    pub workers: usize,
    /// Options of each worker's detector (`intra_threads` is per worker).
    pub detector: OrtDetectorOptions,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            detector: OrtDetectorOptions::default(),
        }
    }
}

/// A frame to run detection on.
#[derive(Debug)]
pub struct DetectRequest {
    /// Camera id; frames of one camera replace each other.
    pub camera: Arc<str>,
    /// The frame: scaled to the pool's letterbox `(scaled_w, scaled_h)` for
    /// `source`, or any other size (then resized by the detector).
    pub frame: BgrImage,
    /// Size of the source frame the boxes are reported in.
    pub source: (u32, u32),
    /// The caller's frame number or timestamp, returned in the result.
    pub seq: u64,
    /// When the frame was captured, returned in the result.
    pub captured_at: Instant,
}

/// The outcome of one [`DetectRequest`].
#[derive(Debug)]
pub struct DetectResult {
    /// Camera id of the request.
    pub camera: Arc<str>,
    /// `seq` of the request.
    pub seq: u64,
    /// `captured_at` of the request.
    pub captured_at: Instant,
    /// `source` of the request.
    pub source: (u32, u32),
    /// Detections, or why there are none.
    pub detections: Result<Vec<Detection>, DetectError>,
    /// Time spent in the detector (pre-processing, inference, decoding).
    pub inference: Duration,
    /// Time the frame waited in its slot before a worker took it.
    pub queued: Duration,
    /// Index of the worker that ran it.
    pub worker: usize,
    /// The request's frame, handed back (for a snapshot, or to reuse the buffer).
    pub frame: BgrImage,
}

/// Where workers deliver results. Called on the worker threads, never
/// inside an async runtime.
pub trait ResultSink: Send + Sync + 'static {
    /// Delivers one result; `false` means the receiver is gone (the result
    /// is dropped and counted).
    fn deliver(&self, result: DetectResult) -> bool;
}

impl ResultSink for tokio::sync::mpsc::Sender<DetectResult> {
    /// Blocks the worker while the channel is full.
    fn deliver(&self, result: DetectResult) -> bool {
        self.blocking_send(result).is_ok()
    }
}

impl ResultSink for tokio::sync::mpsc::UnboundedSender<DetectResult> {
    fn deliver(&self, result: DetectResult) -> bool {
        self.send(result).is_ok()
    }
}

impl ResultSink for std::sync::mpsc::Sender<DetectResult> {
    fn deliver(&self, result: DetectResult) -> bool {
        self.send(result).is_ok()
    }
}

/// A closure as a [`ResultSink`] (always reports delivered).
pub struct FnSink<F>(pub F);

impl<F: Fn(DetectResult) + Send + Sync + 'static> ResultSink for FnSink<F> {
    fn deliver(&self, result: DetectResult) -> bool {
        (self.0)(result);
        true
    }
}

/// Counters of one camera.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraStats {
    /// Camera id.
    pub camera: Arc<str>,
    /// Frames submitted.
    pub submitted: u64,
    /// Frames replaced by a newer one (or discarded at shutdown) before a worker took them.
    pub dropped: u64,
    /// Frames a detector ran on (successfully or not).
    pub processed: u64,
    /// Frames whose detection failed.
    pub failed: u64,
    /// Inference time of the last processed frame.
    pub last_inference: Option<Duration>,
}

/// Counters of the whole pool.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Per camera, sorted by camera id.
    pub cameras: Vec<CameraStats>,
    /// Results the sink refused (receiver gone).
    pub undelivered: u64,
}

struct Pending {
    request: DetectRequest,
    since: Instant,
}

struct Slot {
    pending: Option<Pending>,
    in_flight: bool,
    queued: bool,
    stats: CameraStats,
}

#[derive(Default)]
struct State {
    cameras: HashMap<Arc<str>, Slot>,
    ready: VecDeque<Arc<str>>,
    closed: bool,
    undelivered: u64,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated
        // in a way that matters (counters and a queue); keep going.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The box's detector pool. See the module documentation.
pub struct DetectorPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    input_size: (u32, u32),
}

impl std::fmt::Debug for DetectorPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetectorPool")
            .field("workers", &self.workers.len())
            .field("input_size", &self.input_size)
            .finish()
    }
}

impl DetectorPool {
    /// Builds `config.workers` ONNX detectors for `manifest` and starts them.
    pub fn from_manifest(
        runtime: &Runtime,
        manifest: &ModelManifest,
        config: &PoolConfig,
        sink: impl ResultSink,
    ) -> Result<Self, DetectError> {
        let detectors = (0..config.workers.max(1))
            .map(|_| {
                OrtDetector::load(runtime, manifest, &config.detector)
                    .map(|d| Box::new(d) as Box<dyn Detector>)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::start(detectors, sink)
    }

    /// Starts one worker thread per detector. All detectors must have the
    /// same input size; at least one is needed.
    pub fn start(
        detectors: Vec<Box<dyn Detector>>,
        sink: impl ResultSink,
    ) -> Result<Self, DetectError> {
        let input_size =
            detectors
                .first()
                .map(|d| d.input_size())
                .ok_or_else(|| DetectError::PoolStart {
                    message: "no detector given".into(),
                })?;
        if let Some(d) = detectors.iter().find(|d| d.input_size() != input_size) {
            let (name, _) = d.model();
            return Err(DetectError::ModelInterface {
                model: name.into(),
                message: format!(
                    "input size {:?} differs from the pool's {input_size:?}",
                    d.input_size()
                ),
            });
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let sink: Arc<dyn ResultSink> = Arc::new(sink);
        let mut workers = Vec::with_capacity(detectors.len());
        for (index, detector) in detectors.into_iter().enumerate() {
            let (shared, sink) = (Arc::clone(&shared), Arc::clone(&sink));
            let spawned = std::thread::Builder::new()
                .name(format!("detect-{index}"))
                .spawn(move || worker(index, detector, &shared, &*sink));
            match spawned {
                Ok(handle) => workers.push(handle),
                Err(e) => {
                    tracing::error!(worker = index, err = %e, "Could not start a detector worker.")
                }
            }
        }
        if workers.is_empty() {
            return Err(DetectError::PoolStart {
                message: "no worker thread could be started".into(),
            });
        }
        Ok(Self {
            shared,
            workers,
            input_size,
        })
    }

    /// The model input size of the pool's detectors.
    pub fn input_size(&self) -> (u32, u32) {
        self.input_size
    }

    /// Where a `width` x `height` frame sits in the model input: scale
    /// frames to `(scaled_w, scaled_h)` before submitting them.
    pub fn letterbox(&self, width: u32, height: u32) -> Letterbox {
        Letterbox::compute(width, height, self.input_size.0, self.input_size.1)
    }

    /// Number of worker threads running.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Puts a frame in its camera's slot. Returns the older frame it replaced
    /// (counted as dropped), so the caller can reuse its buffer.
    pub fn submit(&self, request: DetectRequest) -> Result<Option<BgrImage>, DetectError> {
        let mut state = self.shared.lock();
        if state.closed {
            return Err(DetectError::PoolClosed);
        }
        let camera = Arc::clone(&request.camera);
        let slot = state
            .cameras
            .entry(Arc::clone(&camera))
            .or_insert_with(|| Slot {
                pending: None,
                in_flight: false,
                queued: false,
                stats: CameraStats {
                    camera: Arc::clone(&camera),
                    submitted: 0,
                    dropped: 0,
                    processed: 0,
                    failed: 0,
                    last_inference: None,
                },
            });
        slot.stats.submitted += 1;
        let replaced = slot.pending.replace(Pending {
            request,
            since: Instant::now(),
        });
        if replaced.is_some() {
            slot.stats.dropped += 1;
        }
        let enqueue = !slot.in_flight && !slot.queued;
        if enqueue {
            slot.queued = true;
            state.ready.push_back(camera);
            drop(state);
            self.shared.wake.notify_one();
        }
        Ok(replaced.map(|p| p.request.frame))
    }

    /// Forgets a camera: its waiting frame (if any) is discarded and
    /// returned; its counters go away unless a frame of it is being processed.
    pub fn remove_camera(&self, camera: &str) -> Option<BgrImage> {
        let mut state = self.shared.lock();
        let slot = state.cameras.get_mut(camera)?;
        let pending = slot.pending.take();
        if !slot.in_flight {
            state.cameras.remove(camera);
            state.ready.retain(|c| &**c != camera);
        }
        pending.map(|p| p.request.frame)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> PoolStats {
        let state = self.shared.lock();
        let mut cameras: Vec<CameraStats> =
            state.cameras.values().map(|s| s.stats.clone()).collect();
        cameras.sort_by(|a, b| a.camera.cmp(&b.camera));
        PoolStats {
            cameras,
            undelivered: state.undelivered,
        }
    }

    /// Stops the pool: workers finish their current frame and exit; waiting
    /// frames are discarded. Returns when every worker has exited.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        {
            let mut state = self.shared.lock();
            state.closed = true;
            state.ready.clear();
            for slot in state.cameras.values_mut() {
                if slot.pending.take().is_some() {
                    slot.stats.dropped += 1;
                }
                slot.queued = false;
            }
        }
        self.shared.wake.notify_all();
        for handle in self.workers.drain(..) {
            if handle.join().is_err() {
                tracing::error!("A detector worker panicked.");
            }
        }
    }
}

impl Drop for DetectorPool {
    fn drop(&mut self) {
        self.stop();
    }
}

fn worker(index: usize, mut detector: Box<dyn Detector>, shared: &Shared, sink: &dyn ResultSink) {
    loop {
        let (pending, waited) = {
            let mut state = shared.lock();
            loop {
                if state.closed {
                    return;
                }
                if let Some(camera) = state.ready.pop_front() {
                    if let Some(slot) = state.cameras.get_mut(&camera) {
                        slot.queued = false;
                        if let Some(p) = slot.pending.take() {
                            slot.in_flight = true;
                            let waited = p.since.elapsed();
                            break (p, waited);
                        }
                    }
                    continue;
                }
                state = shared
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        let request = pending.request;
        let started = Instant::now();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            detector.detect(&request.frame.as_frame(), request.source)
        }));
        let inference = started.elapsed();
        let detections = outcome.unwrap_or_else(|_| {
            Err(DetectError::Inference {
                model: detector.model().0.to_string(),
                message: "the detector panicked".into(),
            })
        });
        let failed = detections.is_err();
        if let Err(e) = &detections {
            tracing::warn!(camera = %request.camera, worker = index, err = %e, "Detection failed.");
        }
        let camera = Arc::clone(&request.camera);
        let result = DetectResult {
            camera: request.camera,
            seq: request.seq,
            captured_at: request.captured_at,
            source: request.source,
            detections,
            inference,
            queued: waited,
            worker: index,
            frame: request.frame,
        };
        {
            // Count before delivering, so a consumer that sees the result
            // also sees it in the stats.
            let mut state = shared.lock();
            if let Some(slot) = state.cameras.get_mut(&camera) {
                slot.stats.processed += 1;
                slot.stats.failed += u64::from(failed);
                slot.stats.last_inference = Some(inference);
            }
        }
        // The camera stays in flight until its result is delivered, so no
        // other worker can deliver a newer frame of it first.
        let delivered = sink.deliver(result);
        let requeue = {
            let mut state = shared.lock();
            if !delivered {
                state.undelivered += 1;
            }
            let closed = state.closed;
            match state.cameras.get_mut(&camera) {
                Some(slot) => {
                    slot.in_flight = false;
                    let again = !closed && slot.pending.is_some() && !slot.queued;
                    if again {
                        slot.queued = true;
                        state.ready.push_back(camera);
                    }
                    again
                }
                None => false,
            }
        };
        if requeue {
            shared.wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::frame::BgrFrame;
    use std::sync::mpsc;

    /// Holds a [`Fake`] detector until opened ([`open`]).
    type Gate = Arc<(Mutex<bool>, Condvar)>;

    /// Reports one detection whose score is the frame's first byte / 255
    /// and takes `delay` per frame.
    struct Fake {
        delay: Duration,
        gate: Option<Gate>,
    }

    impl Detector for Fake {
        fn input_size(&self) -> (u32, u32) {
            (32, 32)
        }
        fn detect(
            &mut self,
            frame: &BgrFrame<'_>,
            source: (u32, u32),
        ) -> Result<Vec<Detection>, DetectError> {
            if let Some(gate) = &self.gate {
                let (open, cv) = &**gate;
                let mut o = open.lock().unwrap();
                while !*o {
                    o = cv.wait(o).unwrap();
                }
            }
            std::thread::sleep(self.delay);
            if frame.row(0)[0] == 255 {
                panic!("fake detector told to panic");
            }
            Ok(vec![Detection {
                class_id: 0,
                class: Arc::from("person"),
                score: f32::from(frame.row(0)[0]) / 255.0,
                bbox: [0.0, 0.0, source.0 as f32, source.1 as f32],
            }])
        }
        fn model(&self) -> (&str, &str) {
            ("fake", "1")
        }
    }

    fn request(camera: &str, seq: u64) -> DetectRequest {
        let mut frame = BgrImage::new(4, 4).unwrap();
        frame.data_mut()[0] = seq as u8;
        DetectRequest {
            camera: Arc::from(camera),
            frame,
            source: (640, 480),
            seq,
            captured_at: Instant::now(),
        }
    }

    /// A pool of one [`Fake`] detector sending its results to `sink`.
    fn one_fake(delay: Duration, gate: Option<Gate>, sink: impl ResultSink) -> DetectorPool {
        DetectorPool::start(vec![Box::new(Fake { delay, gate })], sink).unwrap()
    }

    /// A one-fake pool whose worker has taken frame 1 of `camera` and waits
    /// at the returned gate until [`open`]; its results and the gate.
    fn blocked_pool(camera: &str) -> (DetectorPool, mpsc::Receiver<DetectResult>, Gate) {
        let g = gate();
        let (tx, rx) = mpsc::channel();
        let pool = one_fake(Duration::ZERO, Some(g.clone()), tx);
        pool.submit(request(camera, 1)).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        (pool, rx, g)
    }

    fn gate() -> Gate {
        Arc::new((Mutex::new(false), Condvar::new()))
    }

    fn open(gate: &Gate) {
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
    }

    #[test]
    fn keeps_only_the_latest_frame_per_camera() {
        // Frame 1 is taken by the (blocked) worker; 2 and 3 wait in the slot, 3 replaces 2.
        let (pool, rx, g) = blocked_pool("cam-a");
        assert!(pool.submit(request("cam-a", 2)).unwrap().is_none());
        let replaced = pool.submit(request("cam-a", 3)).unwrap();
        assert_eq!(replaced.map(|f| f.data()[0]), Some(2));
        open(&g);
        let seqs: Vec<u64> = (0..2)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap().seq)
            .collect();
        assert_eq!(seqs, vec![1, 3]);
        let stats = pool.stats();
        assert_eq!(
            (
                stats.cameras[0].submitted,
                stats.cameras[0].dropped,
                stats.cameras[0].processed
            ),
            (3, 1, 2)
        );
    }

    #[test]
    fn busy_camera_cannot_starve_the_others() {
        let g = gate();
        let (tx, rx) = mpsc::channel();
        let pool = one_fake(Duration::from_millis(2), Some(g.clone()), tx);
        pool.submit(request("busy", 0)).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        // While the worker is blocked: the busy camera floods, two quiet ones submit once.
        for seq in 1..=20 {
            pool.submit(request("busy", seq)).unwrap();
        }
        pool.submit(request("quiet-1", 100)).unwrap();
        pool.submit(request("quiet-2", 101)).unwrap();
        for seq in 21..=40 {
            pool.submit(request("busy", seq)).unwrap();
        }
        open(&g);
        let order: Vec<(String, u64)> = (0..4)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
            .map(|r| (r.camera.to_string(), r.seq))
            .collect();
        assert_eq!(
            order,
            vec![
                ("busy".into(), 0),
                ("quiet-1".into(), 100),
                ("quiet-2".into(), 101),
                ("busy".into(), 40)
            ]
        );
        let busy = pool
            .stats()
            .cameras
            .into_iter()
            .find(|c| &*c.camera == "busy")
            .unwrap();
        assert_eq!(busy.dropped, 39);
    }

    #[test]
    fn one_camera_never_runs_on_two_workers_at_once() {
        let (tx, rx) = mpsc::channel();
        let detectors: Vec<Box<dyn Detector>> = (0..3)
            .map(|_| {
                Box::new(Fake {
                    delay: Duration::from_millis(20),
                    gate: None,
                }) as _
            })
            .collect();
        let pool = DetectorPool::start(detectors, tx).unwrap();
        let mut expected = 0;
        for seq in 1..=10 {
            if pool.submit(request("cam", seq)).unwrap().is_none() {
                expected += 1;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let seqs: Vec<u64> = (0..expected)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap().seq)
            .collect();
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        assert_eq!(seqs, sorted, "results of one camera come out in order");
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
    }

    #[test]
    fn results_reach_a_tokio_channel_with_timing() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let pool = one_fake(Duration::from_millis(10), None, tx);
        pool.submit(request("cam", 128)).unwrap();
        let result = rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(5), rx.recv()).await })
            .unwrap()
            .unwrap();
        let dets = result.detections.unwrap();
        assert_eq!(dets[0].bbox, [0.0, 0.0, 640.0, 480.0]);
        assert!((dets[0].score - 128.0 / 255.0).abs() < 1e-6);
        assert!(result.inference >= Duration::from_millis(10));
        assert_eq!(result.frame.width(), 4, "the frame is handed back");
    }

    #[test]
    fn a_panicking_detector_gives_an_error_and_the_worker_survives() {
        let (tx, rx) = mpsc::channel();
        let pool = one_fake(Duration::ZERO, None, tx);
        pool.submit(request("cam", 255)).unwrap();
        let r = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(r.detections.unwrap_err().to_string().contains("panicked"));
        pool.submit(request("cam", 7)).unwrap();
        assert!(
            rx.recv_timeout(Duration::from_secs(5))
                .unwrap()
                .detections
                .is_ok()
        );
        assert_eq!(pool.stats().cameras[0].failed, 1);
    }

    #[test]
    fn shutdown_finishes_the_current_frame_and_discards_waiting_ones() {
        let (pool, rx, g) = blocked_pool("cam");
        pool.submit(request("cam", 2)).unwrap();
        let shared = Arc::clone(&pool.shared);
        let opener = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            open(&g);
        });
        pool.shutdown();
        opener.join().unwrap();
        assert_eq!(rx.try_iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1]);
        let state = shared.lock();
        let slot = &state.cameras["cam"];
        assert_eq!((slot.stats.processed, slot.stats.dropped), (1, 1));
        assert!(state.closed);
    }

    #[test]
    fn a_pool_needs_a_detector() {
        let err = DetectorPool::start(Vec::new(), FnSink(|_| {})).unwrap_err();
        assert!(err.to_string().contains("no detector"), "{err}");
    }
}
