//! Still images: decoding JPEG/PNG files to BGR, encoding BGR frames to
//! JPEG for alarm snapshots, and drawing boxes and zones on them.
//!
//! Decoding and encoding use FFmpeg (the `image2` demuxer and the `mjpeg`
//! encoder) through `ffmpeg-next`, which the edge already links for video,
//! so no second image library is needed. JPEG encoding converts BGR to
//! full-range BT.601 YUV 4:2:0 in Rust (the JPEG/JFIF definition) and hands
//! it to the encoder with a fixed quantiser, so the output size depends on
//! the picture and `quality` only.
//!
//! Drawing works on a packed [`BgrImage`] in place, clips everything to the
//! image and never panics on coordinates outside it (or NaN).

use std::path::{Path, PathBuf};

use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg::util::frame::Video as VideoFrame;
use ffmpeg_next as ffmpeg;

use crate::detect::{BgrFrame, BgrImage, FrameError};

/// An image could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file could not be opened or decoded.
    #[error("image {}: {message}", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// JPEG encoding failed.
    #[error("JPEG encoding: {0}")]
    Encode(String),
    /// The decoded picture does not make a valid frame.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// A colour for drawing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Color {
    /// Red.
    pub r: u8,
    /// Green.
    pub g: u8,
    /// Blue.
    pub b: u8,
}

impl Color {
    /// Red, for alarm boxes.
    pub const RED: Color = Color { r: 255, g: 0, b: 0 };
    /// Green.
    pub const GREEN: Color = Color { r: 0, g: 255, b: 0 };
    /// Yellow, for zones.
    pub const YELLOW: Color = Color {
        r: 255,
        g: 255,
        b: 0,
    };

    /// A colour from red, green and blue.
    pub const fn rgb(r: u8, g: u8, b: u8) -> Self {
        Color { r, g, b }
    }

    fn bgr(self) -> [u8; 3] {
        [self.b, self.g, self.r]
    }
}

fn init() -> Result<(), String> {
    ffmpeg::init().map_err(|e| format!("FFmpeg initialisation failed: {e}"))
}

/// Decodes the first picture of an image file (JPEG, PNG, BMP, ... anything
/// FFmpeg reads) into a packed BGR image.
pub fn decode_image(path: &Path) -> Result<BgrImage, ImageError> {
    let fail = |message: String| ImageError::Decode {
        path: path.to_path_buf(),
        message,
    };
    // ffmpeg-next panics on paths that are not UTF-8 or hold a NUL.
    match path.to_str() {
        Some(s) if !s.contains('\0') => {}
        _ => return Err(fail("path is not valid UTF-8".into())),
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(fail("not a regular file".into())),
        Err(e) => return Err(fail(e.to_string())),
    }
    init().map_err(fail)?;
    let mut input = ffmpeg::format::input(path).map_err(|e| fail(format!("cannot open: {e}")))?;
    let stream = input
        .streams()
        .best(ffmpeg::media::Type::Video)
        .ok_or_else(|| fail("holds no picture".into()))?;
    let index = stream.index();
    let mut decoder = ffmpeg::codec::context::Context::from_parameters(stream.parameters())
        .and_then(|c| c.decoder().video())
        .map_err(|e| fail(format!("no decoder: {e}")))?;
    let mut picture = VideoFrame::empty();
    let mut got = false;
    for (s, packet) in input.packets() {
        if s.index() != index {
            continue;
        }
        decoder
            .send_packet(&packet)
            .map_err(|e| fail(format!("cannot decode: {e}")))?;
        if decoder.receive_frame(&mut picture).is_ok() {
            got = true;
            break;
        }
    }
    if !got {
        decoder
            .send_eof()
            .map_err(|e| fail(format!("cannot decode: {e}")))?;
        decoder
            .receive_frame(&mut picture)
            .map_err(|e| fail(format!("no picture decoded: {e}")))?;
    }
    let (w, h) = (picture.width(), picture.height());
    if w == 0 || h == 0 {
        return Err(fail(format!("decoded an empty picture ({w}x{h})")));
    }
    let mut scaler = scaling::Context::get(
        picture.format(),
        w,
        h,
        Pixel::BGR24,
        w,
        h,
        scaling::Flags::BILINEAR,
    )
    .map_err(|e| fail(format!("cannot convert {:?} to BGR: {e}", picture.format())))?;
    let mut bgr = VideoFrame::empty();
    scaler
        .run(&picture, &mut bgr)
        .map_err(|e| fail(format!("cannot convert to BGR: {e}")))?;
    let frame = BgrFrame::new(bgr.data(0), w, h, bgr.stride(0))?;
    Ok(BgrImage::from_frame(&frame))
}

/// Maps a JPEG quality 1 (smallest) to 100 (best) onto FFmpeg's MJPEG
/// quantiser 31 (coarsest) to 2 (finest), like `ffmpeg -q:v`.
pub fn jpeg_qscale(quality: u8) -> i32 {
    let q = i32::from(quality.clamp(1, 100));
    2 + ((100 - q) * 29 + 49) / 99
}

/// Encodes a frame as a baseline JPEG (4:2:0, full range). `quality` is 1
/// to 100 (see [`jpeg_qscale`]); 85 is a good default for snapshots.
pub fn encode_jpeg(frame: &BgrFrame<'_>, quality: u8) -> Result<Vec<u8>, ImageError> {
    let enc_err = |what: &str, e: ffmpeg::Error| ImageError::Encode(format!("{what}: {e}"));
    init().map_err(ImageError::Encode)?;
    let (w, h) = (frame.width(), frame.height());
    let codec = ffmpeg::encoder::find(ffmpeg::codec::Id::MJPEG)
        .ok_or_else(|| ImageError::Encode("this FFmpeg has no MJPEG encoder".into()))?;
    let mut ctx = ffmpeg::codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(|e| enc_err("encoder context", e))?;
    ctx.set_width(w);
    ctx.set_height(h);
    ctx.set_format(Pixel::YUV420P);
    ctx.set_color_range(ffmpeg::util::color::Range::JPEG);
    ctx.set_time_base((1, 25));
    let q = jpeg_qscale(quality);
    ctx.set_qmin(q);
    ctx.set_qmax(q);
    let mut encoder = ctx
        .open_as(codec)
        .map_err(|e| enc_err("opening the MJPEG encoder", e))?;

    let mut yuv = VideoFrame::new(Pixel::YUV420P, w, h);
    yuv.set_color_range(ffmpeg::util::color::Range::JPEG);
    bgr_to_yuv420_full(frame, &mut yuv);
    yuv.set_pts(Some(0));
    encoder
        .send_frame(&yuv)
        .map_err(|e| enc_err("encoding", e))?;
    encoder.send_eof().map_err(|e| enc_err("flushing", e))?;
    let mut out = Vec::new();
    let mut packet = ffmpeg::Packet::empty();
    while encoder.receive_packet(&mut packet).is_ok() {
        if let Some(data) = packet.data() {
            out.extend_from_slice(data);
        }
    }
    if out.is_empty() {
        return Err(ImageError::Encode("the encoder produced no data".into()));
    }
    Ok(out)
}

/// BGR to JFIF YCbCr (BT.601, full range), chroma averaged over 2x2 blocks.
fn bgr_to_yuv420_full(frame: &BgrFrame<'_>, yuv: &mut VideoFrame) {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let luma =
        |p: &[u8]| 0.114 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.299 * f32::from(p[2]);
    let to_u8 = |v: f32| v.round().clamp(0.0, 255.0) as u8;
    let y_stride = yuv.stride(0);
    {
        let y_plane = yuv.data_mut(0);
        for y in 0..h {
            let row = frame.row(y as u32);
            let Some(out) = y_plane.get_mut(y * y_stride..y * y_stride + w) else {
                break;
            };
            for (o, p) in out.iter_mut().zip(row.chunks_exact(3)) {
                *o = to_u8(luma(p));
            }
        }
    }
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let (u_stride, v_stride) = (yuv.stride(1), yuv.stride(2));
    let mut cb = vec![0u8; cw * ch];
    let mut cr = vec![0u8; cw * ch];
    for cy in 0..ch {
        for cx in 0..cw {
            let (mut sb, mut sg, mut sr, mut n) = (0f32, 0f32, 0f32, 0f32);
            for y in (2 * cy)..(2 * cy + 2).min(h) {
                let row = frame.row(y as u32);
                for x in (2 * cx)..(2 * cx + 2).min(w) {
                    if let Some(p) = row.get(3 * x..3 * x + 3) {
                        sb += f32::from(p[0]);
                        sg += f32::from(p[1]);
                        sr += f32::from(p[2]);
                        n += 1.0;
                    }
                }
            }
            let (b, g, r) = (sb / n.max(1.0), sg / n.max(1.0), sr / n.max(1.0));
            cb[cy * cw + cx] = to_u8(128.0 - 0.168_736 * r - 0.331_264 * g + 0.5 * b);
            cr[cy * cw + cx] = to_u8(128.0 + 0.5 * r - 0.418_688 * g - 0.081_312 * b);
        }
    }
    for (plane, stride, values) in [(1, u_stride, &cb), (2, v_stride, &cr)] {
        let data = yuv.data_mut(plane);
        for (row, src) in values.chunks_exact(cw).enumerate() {
            if let Some(dst) = data.get_mut(row * stride..row * stride + cw) {
                dst.copy_from_slice(src);
            }
        }
    }
}

/// Paints a filled square of side `thickness` centred on `(x, y)`, clipped.
fn stamp(image: &mut BgrImage, x: i64, y: i64, thickness: u32, color: [u8; 3]) {
    let (w, h) = (i64::from(image.width()), i64::from(image.height()));
    let t = i64::from(thickness.max(1));
    let (x0, y0) = (x - (t - 1) / 2, y - (t - 1) / 2);
    let (xa, xb) = (x0.max(0), (x0 + t).min(w));
    let (ya, yb) = (y0.max(0), (y0 + t).min(h));
    if xa >= xb || ya >= yb {
        return;
    }
    let data = image.data_mut();
    for yy in ya..yb {
        for xx in xa..xb {
            let i = ((yy * w + xx) * 3) as usize;
            if let Some(px) = data.get_mut(i..i + 3) {
                px.copy_from_slice(&color);
            }
        }
    }
}

/// Converts a coordinate to an integer pixel, keeping far-away and NaN
/// values harmless (they are clipped by the drawing).
fn pixel(v: f32) -> i64 {
    if v.is_nan() {
        -1_000_000
    } else {
        v.round().clamp(-1_000_000.0, 1_000_000.0) as i64
    }
}

/// Draws a straight line from `a` to `b` (Bresenham), `thickness` pixels wide.
pub fn draw_line(image: &mut BgrImage, a: (f32, f32), b: (f32, f32), color: Color, thickness: u32) {
    let c = color.bgr();
    let (mut x0, mut y0, x1, y1) = (pixel(a.0), pixel(a.1), pixel(b.0), pixel(b.1));
    // Clip the walk to a margin around the image so huge coordinates stay cheap.
    let margin = i64::from(thickness) + 2;
    let (w, h) = (i64::from(image.width()), i64::from(image.height()));
    if (x0.max(x1) < -margin)
        || (x0.min(x1) > w + margin)
        || (y0.max(y1) < -margin)
        || (y0.min(y1) > h + margin)
    {
        return;
    }
    let dx = (x1 - x0).abs();
    let dy = -(y1 - y0).abs();
    let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
    let mut err = dx + dy;
    let mut steps = 0i64;
    let max_steps = 4 * (w + h + 2 * margin) + dx - dy;
    loop {
        if (-margin..=w + margin).contains(&x0) && (-margin..=h + margin).contains(&y0) {
            stamp(image, x0, y0, thickness, c);
        }
        if (x0 == x1 && y0 == y1) || steps > max_steps {
            break;
        }
        steps += 1;
        let e2 = 2 * err;
        if e2 >= dy {
            err += dy;
            x0 += sx;
        }
        if e2 <= dx {
            err += dx;
            y0 += sy;
        }
    }
}

/// Draws the outline of the box `[x1, y1, x2, y2]` (image pixels).
pub fn draw_rect(image: &mut BgrImage, bbox: [f32; 4], color: Color, thickness: u32) {
    let [x1, y1, x2, y2] = bbox;
    draw_polyline(
        image,
        &[(x1, y1), (x2, y1), (x2, y2), (x1, y2)],
        true,
        color,
        thickness,
    );
}

/// Draws segments through `points` (image pixels); `closed` joins the last
/// point back to the first, e.g. for a zone polygon.
pub fn draw_polyline(
    image: &mut BgrImage,
    points: &[(f32, f32)],
    closed: bool,
    color: Color,
    thickness: u32,
) {
    for pair in points.windows(2) {
        draw_line(image, pair[0], pair[1], color, thickness);
    }
    if closed
        && points.len() > 2
        && let (Some(first), Some(last)) = (points.first(), points.last())
    {
        draw_line(image, *last, *first, color, thickness);
    }
    if points.len() == 1 {
        draw_line(image, points[0], points[0], color, thickness);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn px(img: &BgrImage, x: u32, y: u32) -> [u8; 3] {
        let i = ((y * img.width() + x) * 3) as usize;
        [img.data()[i], img.data()[i + 1], img.data()[i + 2]]
    }

    #[test]
    fn rect_outline_is_drawn_in_bgr_order_and_clipped() {
        let mut img = BgrImage::new(20, 10).unwrap();
        draw_rect(&mut img, [2.0, 2.0, 8.0, 6.0], Color::RED, 1);
        assert_eq!(px(&img, 2, 2), [0, 0, 255]);
        assert_eq!(px(&img, 8, 4), [0, 0, 255]);
        assert_eq!(px(&img, 5, 6), [0, 0, 255]);
        assert_eq!(px(&img, 5, 4), [0, 0, 0], "inside stays untouched");
        // Far outside, partly outside, NaN: no panic, only visible parts drawn.
        draw_rect(&mut img, [-1e9, -5.0, 1e9, 3.0], Color::GREEN, 3);
        assert_eq!(px(&img, 19, 3), [0, 255, 0]);
        draw_rect(
            &mut img,
            [f32::NAN, 0.0, 5.0, f32::INFINITY],
            Color::GREEN,
            2,
        );
    }

    #[test]
    fn closed_polyline_joins_last_point_to_first() {
        let mut img = BgrImage::new(10, 10).unwrap();
        draw_polyline(
            &mut img,
            &[(1.0, 1.0), (8.0, 1.0), (8.0, 8.0)],
            true,
            Color::YELLOW,
            1,
        );
        assert_eq!(
            px(&img, 5, 5),
            [0, 255, 255],
            "the diagonal back to the start is drawn"
        );
        let mut open = BgrImage::new(10, 10).unwrap();
        draw_polyline(
            &mut open,
            &[(1.0, 1.0), (8.0, 1.0), (8.0, 8.0)],
            false,
            Color::YELLOW,
            1,
        );
        assert_eq!(px(&open, 5, 5), [0, 0, 0]);
    }

    #[test]
    fn qscale_mapping_covers_ffmpeg_range() {
        assert_eq!(jpeg_qscale(100), 2);
        assert_eq!(jpeg_qscale(1), 31);
        assert_eq!(jpeg_qscale(0), 31);
        assert!(jpeg_qscale(85) < jpeg_qscale(50));
    }

    #[test]
    fn jpeg_round_trip_keeps_size_and_colours() {
        // Left half red, right half blue, odd size to exercise 4:2:0 edges.
        let (w, h) = (33u32, 17u32);
        let mut img = BgrImage::new(w, h).unwrap();
        for y in 0..h {
            for x in 0..w {
                let i = ((y * w + x) * 3) as usize;
                let c = if x < 16 { [0, 0, 220] } else { [220, 0, 0] };
                img.data_mut()[i..i + 3].copy_from_slice(&c);
            }
        }
        let jpeg = encode_jpeg(&img.as_frame(), 90).unwrap();
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "JPEG SOI marker");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap.jpg");
        std::fs::write(&path, &jpeg).unwrap();
        let back = decode_image(&path).unwrap();
        assert_eq!((back.width(), back.height()), (w, h));
        let [b, _, r] = px(&back, 4, 8);
        assert!(r > 180 && b < 60, "left stays red: {:?}", px(&back, 4, 8));
        let [b, _, r] = px(&back, 28, 8);
        assert!(
            b > 180 && r < 60,
            "right stays blue: {:?}",
            px(&back, 28, 8)
        );
        // Quality matters on a textured picture.
        let mut texture = BgrImage::new(64, 64).unwrap();
        let mut seed = 7u32;
        for v in texture.data_mut() {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            *v = (seed >> 16) as u8;
        }
        let fine = encode_jpeg(&texture.as_frame(), 95).unwrap();
        let coarse = encode_jpeg(&texture.as_frame(), 20).unwrap();
        assert!(
            coarse.len() * 2 < fine.len(),
            "quality 20: {} bytes, 95: {} bytes",
            coarse.len(),
            fine.len()
        );
    }

    #[test]
    fn bad_files_give_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.jpg");
        std::fs::write(&junk, b"this is not a jpeg").unwrap();
        let err = decode_image(&junk).unwrap_err().to_string();
        assert!(err.contains("junk.jpg"), "{err}");
        let missing = dir.path().join("missing.png");
        let err = decode_image(&missing).unwrap_err().to_string();
        assert!(err.contains("missing.png"), "{err}");
    }
}
