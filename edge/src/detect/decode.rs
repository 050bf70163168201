//! Decoding NanoDet (GFL) head outputs into boxes, and per-class NMS.
//!
//! NanoDet has, per stride s, a class map of `num_classes` probabilities
//! (sigmoid already applied) and a box map of four distance distributions
//! (left, top, right, bottom) of `reg_max + 1` bins each, one row per anchor
//! point of a `ceil(S_w / s)` x `ceil(S_h / s)` grid. Exports differ in how
//! those maps are packed and in their output names (the 320 file's names do
//! not match their contents), so [`resolve_heads`] finds them by shape only:
//!
//! * separate outputs per stride: `[1, rows_s, num_classes]` and
//!   `[1, rows_s, 4 * (reg_max + 1)]`;
//! * or one class and one box output over all strides, rows concatenated in
//!   stride order;
//! * or a single output with `num_classes + 4 * (reg_max + 1)` columns
//!   (classes first), rows concatenated in stride order.
//!
//! Row k of stride s has its anchor at `((k mod g_w) * s + (s - 1) / 2,
//! (k div g_w) * s + (s - 1) / 2)`; a distance is the expected bin index under
//! a softmax over the bins, times s. Boxes are mapped back through the
//! [`Letterbox`] and clipped to the frame; then [`nms`] keeps, per class, the
//! best-scoring box among any that overlap with IoU above the threshold.
//! Guarantees: decoding never indexes out of bounds; shapes that match no
//! layout give an error naming every output's shape.

use parkwatch_edge_logic::letterbox::Letterbox;

/// What the decoder needs to know about the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadSpec {
    /// Model input width.
    pub input_w: u32,
    /// Model input height.
    pub input_h: u32,
    /// Strides of the heads, in the order their rows are concatenated.
    pub strides: Vec<u32>,
    /// Highest distribution bin.
    pub reg_max: u32,
    /// Number of classes.
    pub num_classes: usize,
}

impl HeadSpec {
    fn bins(&self) -> usize {
        self.reg_max as usize + 1
    }

    fn grid(&self, stride: u32) -> (usize, usize) {
        let s = stride.max(1);
        (
            self.input_w.div_ceil(s) as usize,
            self.input_h.div_ceil(s) as usize,
        )
    }
}

/// Where one map's rows live: output `output`, row `row_base + k` starts
/// at `(row_base + k) * row_len + col`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapSlot {
    /// Index of the output tensor.
    pub output: usize,
    /// First row of this stride in that tensor.
    pub row_base: usize,
    /// Values per row of that tensor.
    pub row_len: usize,
    /// First column of this map within a row.
    pub col: usize,
}

/// The class and box maps of one stride.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The stride.
    pub stride: u32,
    /// Grid width (anchor columns).
    pub grid_w: usize,
    /// Grid height (anchor rows).
    pub grid_h: usize,
    /// Class probabilities.
    pub cls: MapSlot,
    /// Box distributions.
    pub reg: MapSlot,
}

/// A box before NMS, in source-frame pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Class index.
    pub class_id: usize,
    /// Class probability.
    pub score: f32,
    /// `[x1, y1, x2, y2]`.
    pub bbox: [f32; 4],
}

/// Reads `[1, rows, cols]` or `[rows, cols]` as `(rows, cols)`.
fn rows_cols(shape: &[i64]) -> Option<(usize, usize)> {
    let dims: Vec<usize> = shape
        .iter()
        .map(|d| usize::try_from(*d).ok())
        .collect::<Option<_>>()?;
    match dims.as_slice() {
        [1, r, c] | [r, c] => Some((*r, *c)),
        _ => None,
    }
}

/// Formats output shapes for error messages.
pub fn describe_shapes(shapes: &[&[i64]]) -> String {
    shapes
        .iter()
        .enumerate()
        .map(|(i, s)| format!("#{i} {s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Finds the class and box maps of every stride among the outputs, by shape.
pub fn resolve_heads(spec: &HeadSpec, shapes: &[&[i64]]) -> Result<Vec<Head>, String> {
    let nc = spec.num_classes;
    let nb = 4 * spec.bins();
    let dims: Vec<Option<(usize, usize)>> = shapes.iter().map(|s| rows_cols(s)).collect();
    let grids: Vec<(u32, usize, usize)> = spec
        .strides
        .iter()
        .map(|&s| {
            let (gw, gh) = spec.grid(s);
            (s, gw, gh)
        })
        .collect();
    let total: usize = grids.iter().map(|(_, gw, gh)| gw * gh).sum();
    let find = |rows: usize, cols: usize| dims.iter().position(|d| *d == Some((rows, cols)));
    let fail = |why: &str| {
        format!(
            "{why}; expected per stride {:?} maps of {} (classes) and {} (boxes) columns with rows {:?}, or the same concatenated over {} rows; the model has {}",
            spec.strides,
            nc,
            nb,
            grids.iter().map(|(_, gw, gh)| gw * gh).collect::<Vec<_>>(),
            total,
            describe_shapes(shapes)
        )
    };
    if nc == nb {
        return Err(fail(
            "class and box maps have the same width, so they cannot be told apart by shape",
        ));
    }
    // Layout 1: separate outputs per stride.
    let per_stride: Option<Vec<Head>> = grids
        .iter()
        .map(|&(stride, gw, gh)| {
            let rows = gw * gh;
            let cls = find(rows, nc)?;
            let reg = find(rows, nb)?;
            Some(Head {
                stride,
                grid_w: gw,
                grid_h: gh,
                cls: MapSlot {
                    output: cls,
                    row_base: 0,
                    row_len: nc,
                    col: 0,
                },
                reg: MapSlot {
                    output: reg,
                    row_base: 0,
                    row_len: nb,
                    col: 0,
                },
            })
        })
        .collect();
    if let Some(heads) = per_stride {
        let mut used: Vec<usize> = heads
            .iter()
            .flat_map(|h| [h.cls.output, h.reg.output])
            .collect();
        used.sort_unstable();
        used.dedup();
        if used.len() == heads.len() * 2 {
            return Ok(heads);
        }
    }
    // Layouts 2 and 3: concatenated rows.
    let (cls_slot, reg_slot) = if let (Some(c), Some(r)) = (find(total, nc), find(total, nb)) {
        (
            MapSlot {
                output: c,
                row_base: 0,
                row_len: nc,
                col: 0,
            },
            MapSlot {
                output: r,
                row_base: 0,
                row_len: nb,
                col: 0,
            },
        )
    } else if let Some(o) = find(total, nc + nb) {
        (
            MapSlot {
                output: o,
                row_base: 0,
                row_len: nc + nb,
                col: 0,
            },
            MapSlot {
                output: o,
                row_base: 0,
                row_len: nc + nb,
                col: nc,
            },
        )
    } else {
        return Err(fail("no output layout matches"));
    };
    let mut base = 0;
    Ok(grids
        .iter()
        .map(|&(stride, gw, gh)| {
            let head = Head {
                stride,
                grid_w: gw,
                grid_h: gh,
                cls: MapSlot {
                    row_base: base,
                    ..cls_slot
                },
                reg: MapSlot {
                    row_base: base,
                    ..reg_slot
                },
            };
            base += gw * gh;
            head
        })
        .collect())
}

/// Checks that the outputs really have the shapes `heads` were resolved
/// for (the model may have dynamic dimensions).
pub fn heads_fit(spec: &HeadSpec, heads: &[Head], outputs: &[&[f32]]) -> bool {
    heads.iter().all(|h| {
        let rows = h.grid_w * h.grid_h;
        [(h.cls, spec.num_classes), (h.reg, 4 * spec.bins())]
            .iter()
            .all(|(slot, width)| {
                outputs.get(slot.output).is_some_and(|data| {
                    slot.col + width <= slot.row_len
                        && (slot.row_base + rows) * slot.row_len <= data.len()
                })
            })
    })
}

/// Expected value of a softmax over `logits` (bin indices 0, 1, ...).
fn distribution_mean(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (mut sum, mut weighted) = (0.0f32, 0.0f32);
    for (i, l) in logits.iter().enumerate() {
        let e = (l - max).exp();
        sum += e;
        weighted += e * i as f32;
    }
    if sum > 0.0 { weighted / sum } else { 0.0 }
}

/// Appends to `out` every anchor whose best class score is at least
/// `score_threshold`, as a box in source pixels. `heads` must fit `outputs`
/// (see [`heads_fit`]); rows that do not fit are skipped, not read.
pub fn decode(
    spec: &HeadSpec,
    heads: &[Head],
    outputs: &[&[f32]],
    lb: &Letterbox,
    score_threshold: f32,
    out: &mut Vec<Candidate>,
) {
    let nc = spec.num_classes;
    let bins = spec.bins();
    for h in heads {
        let (Some(cls_data), Some(reg_data)) =
            (outputs.get(h.cls.output), outputs.get(h.reg.output))
        else {
            continue;
        };
        let s = h.stride as f32;
        let half = (s - 1.0) / 2.0;
        for k in 0..h.grid_w * h.grid_h {
            let c0 = (h.cls.row_base + k) * h.cls.row_len + h.cls.col;
            let Some(scores) = cls_data.get(c0..c0 + nc) else {
                break;
            };
            let (mut best, mut class_id) = (f32::NEG_INFINITY, 0);
            for (i, &p) in scores.iter().enumerate() {
                if p > best {
                    best = p;
                    class_id = i;
                }
            }
            if best.is_nan() || best < score_threshold {
                continue;
            }
            let r0 = (h.reg.row_base + k) * h.reg.row_len + h.reg.col;
            let Some(dist) = reg_data.get(r0..r0 + 4 * bins) else {
                break;
            };
            let mut d = [0f32; 4];
            for (side, v) in d.iter_mut().enumerate() {
                *v = distribution_mean(&dist[side * bins..(side + 1) * bins]) * s;
            }
            let cx = (k % h.grid_w) as f32 * s + half;
            let cy = (k / h.grid_w) as f32 * s + half;
            let bbox = lb.box_to_source([cx - d[0], cy - d[1], cx + d[2], cy + d[3]]);
            if bbox[2] > bbox[0] && bbox[3] > bbox[1] {
                out.push(Candidate {
                    class_id,
                    score: best,
                    bbox,
                });
            }
        }
    }
}

/// Intersection over union of two `[x1, y1, x2, y2]` boxes (0 when either is empty).
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// Per-class non-maximum suppression, in place: sorts by score (highest
/// first), then drops every box whose IoU with a kept box of the same class
/// is above `iou_threshold`; keeps at most `max_keep`.
pub fn nms(candidates: &mut Vec<Candidate>, iou_threshold: f32, max_keep: usize) {
    candidates.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.class_id.cmp(&b.class_id))
    });
    let mut kept = 0;
    for i in 0..candidates.len() {
        if kept == max_keep {
            break;
        }
        let c = candidates[i];
        let suppressed = candidates[..kept]
            .iter()
            .any(|k| k.class_id == c.class_id && iou(&k.bbox, &c.bbox) > iou_threshold);
        if !suppressed {
            candidates[kept] = c;
            kept += 1;
        }
    }
    candidates.truncate(kept);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> HeadSpec {
        // A 16x16 input, strides 8 and 16 (grids 2x2 and 1x1), 3 classes, 2 bins.
        HeadSpec {
            input_w: 16,
            input_h: 16,
            strides: vec![8, 16],
            reg_max: 1,
            num_classes: 3,
        }
    }

    #[test]
    fn resolves_separate_outputs_by_shape_in_any_order() {
        let shapes: [&[i64]; 4] = [&[1, 1, 8], &[1, 4, 3], &[1, 1, 3], &[1, 4, 8]];
        let heads = resolve_heads(&spec(), &shapes).unwrap();
        assert_eq!(heads.len(), 2);
        assert_eq!(
            (heads[0].stride, heads[0].cls.output, heads[0].reg.output),
            (8, 1, 3)
        );
        assert_eq!(
            (heads[1].stride, heads[1].cls.output, heads[1].reg.output),
            (16, 2, 0)
        );
    }

    #[test]
    fn resolves_concatenated_output() {
        let shapes: [&[i64]; 1] = [&[1, 5, 11]];
        let heads = resolve_heads(&spec(), &shapes).unwrap();
        assert_eq!(
            heads[1].cls,
            MapSlot {
                output: 0,
                row_base: 4,
                row_len: 11,
                col: 0
            }
        );
        assert_eq!(
            heads[1].reg,
            MapSlot {
                output: 0,
                row_base: 4,
                row_len: 11,
                col: 3
            }
        );
    }

    #[test]
    fn unmatched_shapes_are_named_in_the_error() {
        let shapes: [&[i64]; 2] = [&[1, 4, 3], &[1, 4, 9]];
        let err = resolve_heads(&spec(), &shapes).unwrap_err();
        assert!(
            err.contains("#1 [1, 4, 9]") && err.contains("rows [4, 1]"),
            "{err}"
        );
    }

    #[test]
    fn decodes_a_tiny_synthetic_output() {
        let spec = spec();
        // Stride 8: anchor 3 (col 1, row 1, centre 11.5, 11.5) has class 2 at 0.9.
        let mut cls8 = vec![0.0f32; 4 * 3];
        cls8[3 * 3 + 2] = 0.9;
        cls8[3] = 0.2; // anchor 1, below threshold
        // Distances: bins [0, 1] -> logits [0, 0] gives mean 0.5 -> 4 px; a
        // large logit on bin 1 gives ~1 -> 8 px.
        let mut reg8 = vec![0.0f32; 4 * 8];
        reg8[3 * 8..3 * 8 + 8].copy_from_slice(&[0.0, 0.0, 0.0, 0.0, -50.0, 50.0, -50.0, 50.0]);
        let cls16 = vec![0.5f32, 0.0, 0.0];
        let reg16 = vec![50.0f32, -50.0, 50.0, -50.0, 50.0, -50.0, 50.0, -50.0]; // all zero distances: degenerate box
        let shapes: [&[i64]; 4] = [&[1, 4, 3], &[1, 4, 8], &[1, 1, 3], &[1, 1, 8]];
        let heads = resolve_heads(&spec, &shapes).unwrap();
        let outputs: [&[f32]; 4] = [&cls8, &reg8, &cls16, &reg16];
        assert!(heads_fit(&spec, &heads, &outputs));
        // The 16x16 input holds a 32x16 frame letterboxed: scale 0.5, pad_y 4.
        let lb = Letterbox::compute(32, 16, 16, 16);
        let mut out = Vec::new();
        decode(&spec, &heads, &outputs, &lb, 0.35, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        let c = out[0];
        assert_eq!((c.class_id, c.score), (2, 0.9));
        // Model box (7.5, 7.5, 19.5, 19.5) -> frame: x*2, (y-4)*2, clipped to 32x16.
        let want = [15.0, 7.0, 32.0, 16.0];
        for (g, w) in c.bbox.iter().zip(want) {
            assert!((g - w).abs() < 1e-3, "{:?} vs {want:?}", c.bbox);
        }
    }

    #[test]
    fn decode_skips_rows_that_do_not_fit() {
        let spec = spec();
        let heads =
            resolve_heads(&spec, &[&[1, 4, 3], &[1, 4, 8], &[1, 1, 3], &[1, 1, 8]]).unwrap();
        let short = [1.0f32; 2];
        let outputs: [&[f32]; 4] = [&short, &short, &short, &short];
        assert!(!heads_fit(&spec, &heads, &outputs));
        let mut out = Vec::new();
        decode(
            &spec,
            &heads,
            &outputs,
            &Letterbox::compute(16, 16, 16, 16),
            0.0,
            &mut out,
        );
        assert!(out.is_empty());
    }

    #[test]
    fn nms_is_per_class() {
        let c = |class_id, score, x: f32| Candidate {
            class_id,
            score,
            bbox: [x, 0.0, x + 10.0, 10.0],
        };
        let mut v = vec![
            c(0, 0.6, 1.0),
            c(0, 0.9, 0.0),
            c(1, 0.5, 0.0),
            c(0, 0.4, 50.0),
            c(0, 0.7, 4.0),
        ];
        nms(&mut v, 0.5, 100);
        // 0.6 at x=1 overlaps 0.9 at x=0 (IoU 0.82); 0.7 at x=4 has IoU 0.43: kept.
        let got: Vec<(usize, f32)> = v.iter().map(|c| (c.class_id, c.score)).collect();
        assert_eq!(got, vec![(0, 0.9), (0, 0.7), (1, 0.5), (0, 0.4)]);
        nms(&mut v, 0.5, 2);
        assert_eq!(v.len(), 2);
    }

    #[test]
    fn iou_of_known_boxes() {
        assert_eq!(
            iou(&[0.0, 0.0, 10.0, 10.0], &[5.0, 0.0, 15.0, 10.0]),
            50.0 / 150.0
        );
        assert_eq!(iou(&[0.0, 0.0, 0.0, 0.0], &[0.0, 0.0, 0.0, 0.0]), 0.0);
    }
}
