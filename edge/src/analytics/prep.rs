//! Converting decoded frames for the detector and for snapshots.
//!
//! Only frames that go to the detector are converted, straight from the
//! decoder's YUV into packed BGR at the size the model wants (swscale does
//! the scaling and the colour conversion in one pass). Scalers are cached
//! per geometry; a resolution change builds a new one.

use ffmpeg::format::Pixel;
use ffmpeg::software::scaling::{Context, Flags};
use ffmpeg_next as ffmpeg;

use crate::detect::{BgrFrame, BgrImage};

/// Why a frame could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum PrepError {
    #[error("building a {src_w}x{src_h} -> {dst_w}x{dst_h} scaler: {source}")]
    Scaler {
        src_w: u32,
        src_h: u32,
        dst_w: u32,
        dst_h: u32,
        source: ffmpeg::Error,
    },
    #[error("scaling a frame: {0}")]
    Run(ffmpeg::Error),
    #[error("unusable frame geometry: {0}")]
    Geometry(String),
}

type Key = (Pixel, u32, u32, u32, u32);

/// Converts decoded frames to packed BGR at a requested size.
#[derive(Default)]
pub struct FrameScaler {
    /// One scaler and its output frame per geometry (an output frame cannot
    /// change size between runs).
    scalers: Vec<(Key, Context, ffmpeg::frame::Video)>,
}

impl FrameScaler {
    pub fn new() -> Self {
        Self::default()
    }

    /// `frame` scaled to `dst_w` x `dst_h`, as a packed BGR image.
    pub fn to_bgr(
        &mut self,
        frame: &ffmpeg::frame::Video,
        dst_w: u32,
        dst_h: u32,
    ) -> Result<BgrImage, PrepError> {
        let (w, h, fmt) = (frame.width(), frame.height(), frame.format());
        if w == 0 || h == 0 || dst_w == 0 || dst_h == 0 {
            return Err(PrepError::Geometry(format!("{w}x{h} -> {dst_w}x{dst_h}")));
        }
        let key = (fmt, w, h, dst_w, dst_h);
        let pos = match self.scalers.iter().position(|(k, _, _)| *k == key) {
            Some(p) => p,
            None => {
                let ctx = Context::get(fmt, w, h, Pixel::BGR24, dst_w, dst_h, Flags::BILINEAR)
                    .map_err(|source| PrepError::Scaler {
                        src_w: w,
                        src_h: h,
                        dst_w,
                        dst_h,
                        source,
                    })?;
                // A camera rarely changes geometry; keep a handful.
                if self.scalers.len() >= 4 {
                    self.scalers.remove(0);
                }
                self.scalers.push((key, ctx, ffmpeg::frame::Video::empty()));
                self.scalers.len() - 1
            }
        };
        let (_, scaler, out) = &mut self.scalers[pos];
        scaler.run(frame, out).map_err(PrepError::Run)?;
        let stride = out.stride(0);
        let view = BgrFrame::new(out.data(0), dst_w, dst_h, stride)
            .map_err(|e| PrepError::Geometry(e.to_string()))?;
        Ok(BgrImage::from_frame(&view))
    }
}

/// The size a snapshot is rendered at: the frame itself, scaled down so
/// the longer side is at most `max_side` (even dimensions, aspect kept).
pub fn snapshot_size(w: u32, h: u32, max_side: u32) -> (u32, u32) {
    let long = w.max(h).max(1);
    if long <= max_side {
        return (w, h);
    }
    let scale = f64::from(max_side) / f64::from(long);
    let even = |v: f64| ((v.round() as u32) / 2 * 2).max(2);
    (even(f64::from(w) * scale), even(f64::from(h) * scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_size_keeps_small_frames_and_shrinks_big_ones() {
        assert_eq!(snapshot_size(768, 576, 960), (768, 576));
        assert_eq!(snapshot_size(3840, 2160, 960), (960, 540));
        assert_eq!(snapshot_size(1080, 1920, 960), (540, 960));
    }

    #[test]
    fn scales_a_yuv_frame_to_bgr() {
        crate::decode::init_ffmpeg().unwrap();
        let mut yuv = ffmpeg::frame::Video::new(Pixel::YUV420P, 64, 48);
        // Mid grey: Y=128, U=V=128.
        for plane in 0..3 {
            yuv.data_mut(plane).fill(128);
        }
        let mut s = FrameScaler::new();
        let img = s.to_bgr(&yuv, 32, 24).unwrap();
        // A second size from the same source, then the first again.
        assert_eq!(s.to_bgr(&yuv, 16, 12).unwrap().width(), 16);
        assert_eq!(s.to_bgr(&yuv, 32, 24).unwrap().width(), 32);
        assert_eq!((img.width(), img.height()), (32, 24));
        assert_eq!(img.data().len(), 32 * 24 * 3);
        let px = img.data()[3 * (12 * 32 + 16)];
        assert!((120..=140).contains(&px), "grey came out as {px}");
        assert!(s.to_bgr(&yuv, 0, 10).is_err());
    }
}
