//! Letterbox geometry: where a frame sits in a model's input.
//!
//! A frame of W x H goes into a model input of S_w x S_h by scaling it with
//! r = min(S_w / W, S_h / H) (aspect ratio kept), centring the scaled image
//! and padding the rest. [`Letterbox`] holds that geometry and maps model
//! coordinates back to frame pixels.
//!
//! Only sizes come in, never pixels: the pre-processing that writes a frame
//! into the model's tensor lives with the detector in `parkwatch-edge`.
//! Guarantees: any sizes, zero included, give a scaled image of at least
//! 1 x 1 that lies inside the model input.

/// How a source frame sits in the model input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    /// Scale factor r = min(S_w / W, S_h / H).
    pub scale: f32,
    /// Columns of padding left of the image, in model pixels.
    pub pad_x: u32,
    /// Rows of padding above the image, in model pixels.
    pub pad_y: u32,
    /// Width of the scaled image, round(W * r), at least 1.
    pub scaled_w: u32,
    /// Height of the scaled image, round(H * r), at least 1.
    pub scaled_h: u32,
    /// Source frame width W.
    pub source_w: u32,
    /// Source frame height H.
    pub source_h: u32,
    /// Model input width S_w.
    pub input_w: u32,
    /// Model input height S_h.
    pub input_h: u32,
}

impl Letterbox {
    /// The geometry of a `source_w` x `source_h` frame in an `input_w` x
    /// `input_h` model input. Zero sizes are treated as 1.
    pub fn compute(source_w: u32, source_h: u32, input_w: u32, input_h: u32) -> Self {
        let (sw, sh) = (source_w.max(1), source_h.max(1));
        let (iw, ih) = (input_w.max(1), input_h.max(1));
        let scale = (iw as f32 / sw as f32).min(ih as f32 / sh as f32);
        let scaled_w = ((sw as f32 * scale).round() as u32).clamp(1, iw);
        let scaled_h = ((sh as f32 * scale).round() as u32).clamp(1, ih);
        Letterbox {
            scale,
            pad_x: (iw - scaled_w) / 2,
            pad_y: (ih - scaled_h) / 2,
            scaled_w,
            scaled_h,
            source_w: sw,
            source_h: sh,
            input_w: iw,
            input_h: ih,
        }
    }

    /// Maps a point in model-input pixels to source-frame pixels (not
    /// clipped). Uses the exact per-axis factor `scaled / source`, so the
    /// rounding of the scaled size does not skew boxes.
    pub fn to_source(&self, x: f32, y: f32) -> (f32, f32) {
        let fx = self.source_w as f32 / self.scaled_w as f32;
        let fy = self.source_h as f32 / self.scaled_h as f32;
        ((x - self.pad_x as f32) * fx, (y - self.pad_y as f32) * fy)
    }

    /// Maps a box `[x1, y1, x2, y2]` in model pixels to source pixels,
    /// clipped to the frame.
    pub fn box_to_source(&self, b: [f32; 4]) -> [f32; 4] {
        let (x1, y1) = self.to_source(b[0], b[1]);
        let (x2, y2) = self.to_source(b[2], b[3]);
        let (w, h) = (self.source_w as f32, self.source_h as f32);
        [
            x1.clamp(0.0, w),
            y1.clamp(0.0, h),
            x2.clamp(0.0, w),
            y2.clamp(0.0, h),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letterbox_of_vtest_at_320() {
        let lb = Letterbox::compute(768, 576, 320, 320);
        assert_eq!(
            (lb.scaled_w, lb.scaled_h, lb.pad_x, lb.pad_y),
            (320, 240, 0, 40)
        );
        assert!((lb.scale - 320.0 / 768.0).abs() < 1e-6);
        // The centre of the model input is the centre of the frame.
        assert_eq!(lb.to_source(160.0, 160.0), (384.0, 288.0));
        // Padding maps outside the frame and is clipped back.
        assert_eq!(
            lb.box_to_source([-5.0, 0.0, 330.0, 320.0]),
            [0.0, 0.0, 768.0, 576.0]
        );
    }

    #[test]
    fn letterbox_of_portrait_frame_pads_columns() {
        let lb = Letterbox::compute(480, 640, 416, 416);
        assert_eq!(
            (lb.scaled_w, lb.scaled_h, lb.pad_x, lb.pad_y),
            (312, 416, 52, 0)
        );
        let (x, y) = lb.to_source(52.0 + 312.0, 416.0);
        assert!((x - 480.0).abs() < 1e-3 && (y - 640.0).abs() < 1e-3);
    }

    #[test]
    fn letterbox_of_odd_sizes_stays_inside_input() {
        for (w, h) in [(1, 1), (1, 10_000), (10_000, 1), (321, 319), (0, 0)] {
            let lb = Letterbox::compute(w, h, 320, 320);
            assert!(
                lb.pad_x + lb.scaled_w <= 320 && lb.pad_y + lb.scaled_h <= 320,
                "{w}x{h}: {lb:?}"
            );
            assert!(lb.scaled_w >= 1 && lb.scaled_h >= 1);
        }
    }
}
