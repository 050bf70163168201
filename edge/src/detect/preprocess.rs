//! Pre-processing of a packed BGR frame into the model's input tensor.
//!
//! [`Preprocessor`] writes the NCHW f32 tensor from a packed BGR frame that is
//! either already scaled to `(scaled_w, scaled_h)` (the video pipeline scales
//! with swscale straight from YUV) or of any other size (then it is resized
//! here, bilinear with pixel-centre alignment like OpenCV's `INTER_LINEAR`),
//! placed as a [`Letterbox`] says. Normalisation is `(x - mean) / std` per
//! channel in the manifest's channel order. Guarantees: the tensor buffer
//! and the resize tables are allocated once and reused; every element of the
//! tensor is written on every call (no stale padding); no index can go out
//! of bounds for any frame that passed [`BgrFrame`]'s checks.

use parkwatch_edge_logic::letterbox::Letterbox;
use parkwatch_edge_logic::manifest::ChannelOrder;

use super::frame::BgrFrame;

/// One output column (or row) of a bilinear resize: the two source indices
/// and the weight of the second.
#[derive(Debug, Clone, Copy)]
struct Tap {
    i0: usize,
    i1: usize,
    w1: f32,
}

fn fill_taps(taps: &mut Vec<Tap>, src: u32, dst: u32) {
    taps.clear();
    let ratio = src as f32 / dst as f32;
    let last = src.saturating_sub(1) as usize;
    for d in 0..dst {
        let s = ((d as f32 + 0.5) * ratio - 0.5).max(0.0);
        let i0 = (s.floor() as usize).min(last);
        let i1 = (i0 + 1).min(last);
        taps.push(Tap {
            i0,
            i1,
            w1: s - i0 as f32,
        });
    }
}

/// Writes model input tensors from BGR frames, reusing its buffers.
#[derive(Debug)]
pub struct Preprocessor {
    input_w: u32,
    input_h: u32,
    /// For tensor channel c: which byte of a BGR pixel feeds it.
    source_byte: [usize; 3],
    /// (x - mean) / std = x * gain + offset, per tensor channel.
    gain: [f32; 3],
    offset: [f32; 3],
    /// Normalised padding value per tensor channel.
    pad: [f32; 3],
    /// Normalised value of each byte value, per tensor channel.
    lut: Vec<[f32; 256]>,
    tensor: Vec<f32>,
    x_taps: Vec<Tap>,
    y_taps: Vec<Tap>,
    taps_for: Option<(u32, u32, u32, u32)>,
}

impl Preprocessor {
    /// A pre-processor for an `input_w` x `input_h` NCHW input with the given
    /// per-channel `mean` and `std` (in `order`), padding with `pad_value`.
    /// `std` values must be non-zero (the manifest guarantees it).
    pub fn new(
        input_w: u32,
        input_h: u32,
        order: ChannelOrder,
        mean: [f32; 3],
        std: [f32; 3],
        pad_value: f32,
    ) -> Self {
        let source_byte = match order {
            ChannelOrder::Bgr => [0, 1, 2],
            ChannelOrder::Rgb => [2, 1, 0],
        };
        let gain = std.map(|s| 1.0 / s);
        let offset = [0, 1, 2].map(|c| -mean[c] / std[c]);
        let pad = [0, 1, 2].map(|c| pad_value * gain[c] + offset[c]);
        let lut = (0..3)
            .map(|c| {
                let mut t = [0f32; 256];
                for (v, slot) in t.iter_mut().enumerate() {
                    *slot = v as f32 * gain[c] + offset[c];
                }
                t
            })
            .collect();
        let (w, h) = (input_w.max(1), input_h.max(1));
        Self {
            input_w: w,
            input_h: h,
            source_byte,
            gain,
            offset,
            pad,
            lut,
            tensor: vec![0.0; 3 * w as usize * h as usize],
            x_taps: Vec::new(),
            y_taps: Vec::new(),
            taps_for: None,
        }
    }

    /// The NCHW tensor (`3 * input_h * input_w` values) of the last [`fill`](Self::fill).
    pub fn tensor(&self) -> &[f32] {
        &self.tensor
    }

    /// The tensor shape `[1, 3, input_h, input_w]`.
    pub fn shape(&self) -> [usize; 4] {
        [1, 3, self.input_h as usize, self.input_w as usize]
    }

    /// Fills the tensor from `frame` placed per `lb`. When the frame is
    /// `lb.scaled_w` x `lb.scaled_h` its pixels are copied as they are;
    /// otherwise it is resized to that size first.
    pub fn fill(&mut self, frame: &BgrFrame<'_>, lb: &Letterbox) {
        let lb = self.clamp(lb);
        self.fill_padding(&lb);
        if frame.width() == lb.scaled_w && frame.height() == lb.scaled_h {
            self.copy_scaled(frame, &lb);
        } else {
            self.resize_bilinear(frame, &lb);
        }
    }

    /// Guards against a letterbox computed for another input size.
    fn clamp(&self, lb: &Letterbox) -> Letterbox {
        let mut lb = *lb;
        lb.scaled_w = lb.scaled_w.clamp(1, self.input_w);
        lb.scaled_h = lb.scaled_h.clamp(1, self.input_h);
        lb.pad_x = lb.pad_x.min(self.input_w - lb.scaled_w);
        lb.pad_y = lb.pad_y.min(self.input_h - lb.scaled_h);
        lb
    }

    fn fill_padding(&mut self, lb: &Letterbox) {
        let (w, h) = (self.input_w as usize, self.input_h as usize);
        let (px, py) = (lb.pad_x as usize, lb.pad_y as usize);
        let (sw, sh) = (lb.scaled_w as usize, lb.scaled_h as usize);
        for (c, plane) in self.tensor.chunks_exact_mut(w * h).enumerate() {
            let pad = self.pad[c];
            plane[..py * w].fill(pad);
            plane[(py + sh) * w..].fill(pad);
            for row in plane[py * w..(py + sh) * w].chunks_exact_mut(w) {
                row[..px].fill(pad);
                row[px + sw..].fill(pad);
            }
        }
    }

    fn copy_scaled(&mut self, frame: &BgrFrame<'_>, lb: &Letterbox) {
        let (w, h) = (self.input_w as usize, self.input_h as usize);
        let plane = w * h;
        let (px, py, sw) = (lb.pad_x as usize, lb.pad_y as usize, lb.scaled_w as usize);
        let [b0, b1, b2] = self.source_byte;
        let (l0, rest) = self.lut.split_at(1);
        let (l1, l2) = rest.split_at(1);
        let (l0, l1, l2) = (&l0[0], &l1[0], &l2[0]);
        let (t0, rest) = self.tensor.split_at_mut(plane);
        let (t1, t2) = rest.split_at_mut(plane);
        for y in 0..lb.scaled_h {
            let src = frame.row(y);
            let at = (py + y as usize) * w + px;
            let (r0, r1, r2) = (
                &mut t0[at..at + sw],
                &mut t1[at..at + sw],
                &mut t2[at..at + sw],
            );
            for (x, px3) in src.chunks_exact(3).take(sw).enumerate() {
                r0[x] = l0[usize::from(px3[b0])];
                r1[x] = l1[usize::from(px3[b1])];
                r2[x] = l2[usize::from(px3[b2])];
            }
        }
    }

    fn resize_bilinear(&mut self, frame: &BgrFrame<'_>, lb: &Letterbox) {
        let key = (frame.width(), frame.height(), lb.scaled_w, lb.scaled_h);
        if self.taps_for != Some(key) {
            fill_taps(&mut self.x_taps, frame.width(), lb.scaled_w);
            fill_taps(&mut self.y_taps, frame.height(), lb.scaled_h);
            self.taps_for = Some(key);
        }
        let (w, h) = (self.input_w as usize, self.input_h as usize);
        let plane = w * h;
        let (px, py) = (lb.pad_x as usize, lb.pad_y as usize);
        let (gain, offset, bytes) = (self.gain, self.offset, self.source_byte);
        let (t0, rest) = self.tensor.split_at_mut(plane);
        let (t1, t2) = rest.split_at_mut(plane);
        for (dy, ty) in self.y_taps.iter().enumerate() {
            let (top, bottom) = (frame.row(ty.i0 as u32), frame.row(ty.i1 as u32));
            let at = (py + dy) * w + px;
            for (dx, tx) in self.x_taps.iter().enumerate() {
                let (a, b) = (tx.i0 * 3, tx.i1 * 3);
                let mut out = [0f32; 3];
                for (c, o) in out.iter_mut().enumerate() {
                    let k = bytes[c];
                    let p = |row: &[u8], i: usize| row.get(i + k).copied().map_or(0.0, f32::from);
                    let t = p(top, a) + (p(top, b) - p(top, a)) * tx.w1;
                    let u = p(bottom, a) + (p(bottom, b) - p(bottom, a)) * tx.w1;
                    *o = (t + (u - t) * ty.w1) * gain[c] + offset[c];
                }
                t0[at + dx] = out[0];
                t1[at + dx] = out[1];
                t2[at + dx] = out[2];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pre() -> Preprocessor {
        Preprocessor::new(
            8,
            8,
            ChannelOrder::Bgr,
            [10.0, 20.0, 30.0],
            [2.0, 4.0, 5.0],
            0.0,
        )
    }

    #[test]
    fn prescaled_frame_is_normalised_and_padded() {
        // A 16x8 frame into 8x8: scaled 8x4, padded 2 rows above and below.
        let lb = Letterbox::compute(16, 8, 8, 8);
        assert_eq!((lb.scaled_w, lb.scaled_h, lb.pad_y), (8, 4, 2));
        let pixels: Vec<u8> = (0..8 * 4).flat_map(|_| [12u8, 28, 40]).collect();
        let frame = BgrFrame::packed(&pixels, 8, 4).unwrap();
        let mut p = pre();
        p.fill(&frame, &lb);
        let t = p.tensor();
        // Inside: (12-10)/2 = 1, (28-20)/4 = 2, (40-30)/5 = 2.
        assert_eq!(
            (t[2 * 8 + 3], t[64 + 2 * 8 + 3], t[128 + 5 * 8]),
            (1.0, 2.0, 2.0)
        );
        // Padding: (0 - mean) / std.
        assert_eq!((t[0], t[64 + 8], t[128 + 6 * 8 + 7]), (-5.0, -5.0, -6.0));
    }

    #[test]
    fn rgb_order_swaps_planes() {
        let mut p = Preprocessor::new(2, 2, ChannelOrder::Rgb, [0.0; 3], [1.0; 3], 0.0);
        let pixels: Vec<u8> = (0..4).flat_map(|_| [1u8, 2, 3]).collect();
        p.fill(
            &BgrFrame::packed(&pixels, 2, 2).unwrap(),
            &Letterbox::compute(2, 2, 2, 2),
        );
        assert_eq!(
            (p.tensor()[0], p.tensor()[4], p.tensor()[8]),
            (3.0, 2.0, 1.0)
        );
    }

    #[test]
    fn full_size_frame_is_resized_bilinear() {
        // A 16x16 horizontal ramp 0..=150 (step 10) into 8x8: each output pixel
        // averages two neighbours, so values are 5, 25, ..., 145.
        let pixels: Vec<u8> = (0..16)
            .flat_map(|_| (0..16u8).flat_map(|x| [x * 10, x * 10, x * 10]))
            .collect();
        let frame = BgrFrame::packed(&pixels, 16, 16).unwrap();
        let mut p = Preprocessor::new(8, 8, ChannelOrder::Bgr, [0.0; 3], [1.0; 3], 0.0);
        p.fill(&frame, &Letterbox::compute(16, 16, 8, 8));
        let row: Vec<f32> = p.tensor()[8 * 3..8 * 4].to_vec();
        assert_eq!(row, vec![5.0, 25.0, 45.0, 65.0, 85.0, 105.0, 125.0, 145.0]);
        // Upscaling a uniform frame keeps it uniform, edges included.
        let flat = vec![100u8; 3 * 3 * 2];
        p.fill(
            &BgrFrame::packed(&flat, 3, 2).unwrap(),
            &Letterbox::compute(3, 2, 8, 8),
        );
        let lb = Letterbox::compute(3, 2, 8, 8);
        let inside = p.tensor()[(lb.pad_y as usize) * 8..(lb.pad_y + lb.scaled_h) as usize * 8]
            .iter()
            .all(|v| *v == 100.0);
        assert!(inside);
    }

    #[test]
    fn padding_is_rewritten_when_geometry_changes() {
        let mut p = pre();
        let white = vec![255u8; 8 * 8 * 3];
        p.fill(
            &BgrFrame::packed(&white, 8, 8).unwrap(),
            &Letterbox::compute(8, 8, 8, 8),
        );
        let wide = vec![255u8; 8 * 4 * 3];
        p.fill(
            &BgrFrame::packed(&wide, 8, 4).unwrap(),
            &Letterbox::compute(16, 8, 8, 8),
        );
        assert_eq!(
            p.tensor()[0],
            -5.0,
            "top padding must not keep the old frame"
        );
    }
}
