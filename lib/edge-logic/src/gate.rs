//! Motion gating: decide cheaply which sampled frames the detector sees.
//!
//! The detector is the scarce resource of a box. A camera whose scene is
//! still (an empty car park at night) need not be checked five times a
//! second. The gate keeps a tiny grey thumbnail (block means of the luma
//! plane, about 64 x 36) of the last sampled frame and counts the blocks
//! whose mean changed by more than `block_threshold` grey levels. Block
//! means wash out sensor noise and compression flicker; a person or a car
//! moving covers whole blocks and changes them by far more.
//!
//! The [`Sampler`] turns that into a schedule: frames are sampled at the
//! detection rate; a sampled frame goes to the detector when the scene
//! moves, and otherwise only every `static_recheck_ms` (default 2 s), so a
//! parked vehicle is still seen (and stays tracked: the tracker keeps tracks
//! alive across that gap) while a quiet camera costs almost nothing.

/// Motion gate settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateConfig {
    /// Thumbnail width in blocks; the height follows the aspect ratio.
    /// Default 64.
    pub thumb_width: usize,
    /// A block counts as changed when its mean moved by more than this many
    /// grey levels (0..255). Default 10.
    pub block_threshold: u8,
    /// The scene moves when at least this fraction of blocks changed.
    /// Default 0.001 (about 2 blocks of a 64 x 36 thumbnail).
    pub min_changed_fraction: f32,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            thumb_width: 64,
            block_threshold: 10,
            min_changed_fraction: 0.001,
        }
    }
}

/// Keeps the previous thumbnail and measures change against it.
#[derive(Debug, Clone)]
pub struct MotionGate {
    cfg: GateConfig,
    prev: Vec<u8>,
    cur: Vec<u8>,
    dims: (usize, usize),
}

impl MotionGate {
    pub fn new(cfg: GateConfig) -> Self {
        Self {
            cfg,
            prev: Vec::new(),
            cur: Vec::new(),
            dims: (0, 0),
        }
    }

    /// Forgets the previous frame (the next measure reports motion).
    pub fn reset(&mut self) {
        self.prev.clear();
    }

    /// Measures the fraction of blocks that changed since the previous call,
    /// from a luma plane (`stride` bytes per row). The first frame after a
    /// reset, or after a resolution change, reports 1.0.
    pub fn measure(&mut self, luma: &[u8], stride: usize, width: usize, height: usize) -> f32 {
        if width == 0 || height == 0 || stride < width || luma.len() < stride * (height - 1) + width
        {
            return 1.0;
        }
        let tw = self.cfg.thumb_width.clamp(4, width.max(4)).min(width);
        let th = ((tw * height) / width).clamp(1, height);
        if self.dims != (tw, th) {
            self.dims = (tw, th);
            self.prev.clear();
        }
        self.cur.clear();
        self.cur.reserve(tw * th);
        for by in 0..th {
            let y0 = by * height / th;
            let y1 = ((by + 1) * height / th).max(y0 + 1);
            for bx in 0..tw {
                let x0 = bx * width / tw;
                let x1 = ((bx + 1) * width / tw).max(x0 + 1);
                // Every other row and column: plenty for a block mean.
                let mut sum = 0u32;
                let mut n = 0u32;
                for y in (y0..y1).step_by(2) {
                    let row = &luma[y * stride..y * stride + width];
                    for &v in row[x0..x1].iter().step_by(2) {
                        sum += u32::from(v);
                        n += 1;
                    }
                }
                self.cur.push((sum / n.max(1)) as u8);
            }
        }
        let fraction = if self.prev.len() == self.cur.len() {
            let changed = self
                .prev
                .iter()
                .zip(&self.cur)
                .filter(|(a, b)| a.abs_diff(**b) > self.cfg.block_threshold)
                .count();
            changed as f32 / self.cur.len() as f32
        } else {
            1.0
        };
        std::mem::swap(&mut self.prev, &mut self.cur);
        fraction
    }

    /// Whether a measured fraction counts as motion.
    pub fn is_motion(&self, fraction: f32) -> bool {
        fraction >= self.cfg.min_changed_fraction
    }
}

/// When to sample and when to detect, on the stream's own clock.
#[derive(Debug, Clone)]
pub struct Sampler {
    interval_ms: i64,
    recheck_ms: i64,
    last_sample: Option<i64>,
    last_detect: Option<i64>,
}

impl Sampler {
    /// `detect_fps` > 0 (validated with the configuration); `recheck_ms`:
    /// the static-scene re-check interval.
    pub fn new(detect_fps: f64, recheck_ms: i64) -> Self {
        let interval_ms = if detect_fps > 0.0 {
            (1000.0 / detect_fps).round() as i64
        } else {
            1000
        };
        Self {
            interval_ms: interval_ms.max(1),
            recheck_ms: recheck_ms.max(0),
            last_sample: None,
            last_detect: None,
        }
    }

    pub fn reset(&mut self) {
        self.last_sample = None;
        self.last_detect = None;
    }

    /// Whether the frame at `ts_ms` is due for sampling. A frame up to a
    /// quarter interval early counts, so camera jitter does not halve the
    /// rate; a jump backwards (a new session) restarts the schedule.
    pub fn due(&mut self, ts_ms: i64) -> bool {
        let due = match self.last_sample {
            None => true,
            Some(last) if ts_ms < last => true,
            Some(last) => ts_ms - last >= self.interval_ms - self.interval_ms / 4,
        };
        if due {
            self.last_sample = Some(ts_ms);
        }
        due
    }

    /// Whether a sampled frame goes to the detector.
    pub fn should_detect(&mut self, ts_ms: i64, moving: bool) -> bool {
        let go = moving
            || match self.last_detect {
                None => true,
                Some(last) if ts_ms < last => true,
                Some(last) => ts_ms - last >= self.recheck_ms,
            };
        if go {
            self.last_detect = Some(ts_ms);
        }
        go
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane(w: usize, h: usize, f: impl Fn(usize, usize) -> u8) -> Vec<u8> {
        let mut v = vec![0; w * h];
        for y in 0..h {
            for x in 0..w {
                v[y * w + x] = f(x, y);
            }
        }
        v
    }

    #[test]
    fn still_scene_with_noise_is_not_motion_and_a_moving_object_is() {
        let (w, h) = (640, 360);
        let mut gate = MotionGate::new(GateConfig::default());
        let base = plane(w, h, |x, y| ((x / 7 + y / 5) % 200) as u8);
        assert_eq!(gate.measure(&base, w, w, h), 1.0, "first frame is motion");
        // Pixel noise of +-3 levels: block means barely move.
        let noisy = plane(w, h, |x, y| {
            let v = ((x / 7 + y / 5) % 200) as i32 + ((x * 31 + y * 17) % 7) as i32 - 3;
            v.clamp(0, 255) as u8
        });
        let f = gate.measure(&noisy, w, w, h);
        assert!(!gate.is_motion(f), "noise measured as motion: {f}");
        // A 40 x 80 bright object appears.
        let moved = plane(w, h, |x, y| {
            if (300..340).contains(&x) && (100..180).contains(&y) {
                250
            } else {
                ((x / 7 + y / 5) % 200) as u8
            }
        });
        let f = gate.measure(&moved, w, w, h);
        assert!(gate.is_motion(f), "object not seen: {f}");
    }

    #[test]
    fn bad_geometry_is_treated_as_motion_not_a_panic() {
        let mut gate = MotionGate::new(GateConfig::default());
        assert_eq!(gate.measure(&[0; 10], 100, 100, 100), 1.0);
        assert_eq!(gate.measure(&[], 0, 0, 0), 1.0);
    }

    #[test]
    fn sampler_keeps_the_rate_and_rechecks_a_static_scene() {
        let mut s = Sampler::new(5.0, 2000);
        // A 10 fps stream with a little jitter: every other frame is due.
        let due: Vec<i64> = (0..20)
            .map(|i| i * 100 + if i % 3 == 0 { 7 } else { 0 })
            .filter(|&t| s.due(t))
            .collect();
        assert_eq!(due.len(), 10, "{due:?}");
        let mut s = Sampler::new(5.0, 2000);
        // Static scene: detect at 0, then only at 2000, 4000.
        let detected: Vec<i64> = (0..25)
            .map(|i| i * 200)
            .filter(|&t| s.should_detect(t, false))
            .collect();
        assert_eq!(detected, vec![0, 2000, 4000]);
        // Motion: every sampled frame.
        assert!(s.should_detect(4200, true));
        assert!(s.should_detect(4400, true));
    }
}
