//! Packed BGR24 frames, borrowed ([`BgrFrame`]) and owned ([`BgrImage`]).
//!
//! The detection stack works on packed 8-bit BGR (blue, green, red; three
//! bytes a pixel, FFmpeg's `bgr24`), the channel order NanoDet was trained
//! with, so a frame from swscale goes to the model without a channel swap.
//! A [`BgrFrame`] can only be built with a geometry its buffer really holds:
//! nothing downstream indexes out of bounds.

use super::error::FrameError;

/// A borrowed packed BGR24 frame: `height` rows of `width` pixels, each row
/// starting `stride` bytes after the previous one.
#[derive(Debug, Clone, Copy)]
pub struct BgrFrame<'a> {
    data: &'a [u8],
    width: u32,
    height: u32,
    stride: usize,
}

impl<'a> BgrFrame<'a> {
    /// Wraps a buffer with rows `stride` bytes apart (an FFmpeg frame's
    /// `data(0)` and `stride(0)`).
    ///
    /// Fails when the size is zero, the stride is shorter than `3 * width`,
    /// or the buffer is too short for the last row.
    pub fn new(data: &'a [u8], width: u32, height: u32, stride: usize) -> Result<Self, FrameError> {
        if width == 0 || height == 0 {
            return Err(FrameError::Empty { width, height });
        }
        let row = width as usize * 3;
        if stride < row {
            return Err(FrameError::Stride { width, stride });
        }
        let needed = stride * (height as usize - 1) + row;
        if data.len() < needed {
            return Err(FrameError::Short {
                width,
                height,
                stride,
                len: data.len(),
                needed,
            });
        }
        Ok(Self {
            data,
            width,
            height,
            stride,
        })
    }

    /// Wraps a tightly packed buffer (`stride == 3 * width`).
    pub fn packed(data: &'a [u8], width: u32, height: u32) -> Result<Self, FrameError> {
        Self::new(data, width, height, width as usize * 3)
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Bytes from the start of one row to the start of the next.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// The `3 * width` bytes of row `y`. Rows past the end are empty.
    pub fn row(&self, y: u32) -> &'a [u8] {
        let start = y as usize * self.stride;
        let end = start + self.width as usize * 3;
        self.data.get(start..end).unwrap_or(&[])
    }
}

/// An owned, tightly packed BGR24 image (`stride == 3 * width`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgrImage {
    data: Vec<u8>,
    width: u32,
    height: u32,
}

impl BgrImage {
    /// A black image. Fails when a side is zero.
    pub fn new(width: u32, height: u32) -> Result<Self, FrameError> {
        if width == 0 || height == 0 {
            return Err(FrameError::Empty { width, height });
        }
        Ok(Self {
            data: vec![0; width as usize * height as usize * 3],
            width,
            height,
        })
    }

    /// Takes ownership of a packed buffer of exactly `3 * width * height` bytes
    /// (a longer buffer is truncated, a shorter one refused).
    pub fn from_vec(mut data: Vec<u8>, width: u32, height: u32) -> Result<Self, FrameError> {
        BgrFrame::packed(&data, width, height)?;
        data.truncate(width as usize * height as usize * 3);
        Ok(Self {
            data,
            width,
            height,
        })
    }

    /// Copies a (possibly strided) frame into a new packed image.
    pub fn from_frame(frame: &BgrFrame<'_>) -> Self {
        let mut image = Self {
            data: Vec::new(),
            width: 0,
            height: 0,
        };
        image.copy_from(frame);
        image
    }

    /// Replaces this image's content with a copy of `frame`, reusing the
    /// allocation when it is large enough.
    pub fn copy_from(&mut self, frame: &BgrFrame<'_>) {
        self.width = frame.width();
        self.height = frame.height();
        self.data.clear();
        for y in 0..frame.height() {
            self.data.extend_from_slice(frame.row(y));
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The packed bytes, row after row.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The packed bytes, mutable (the geometry cannot change through this).
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// Gives the buffer back, e.g. to recycle it.
    pub fn into_vec(self) -> Vec<u8> {
        self.data
    }

    /// A borrowed view of this image.
    pub fn as_frame(&self) -> BgrFrame<'_> {
        BgrFrame {
            data: &self.data,
            width: self.width,
            height: self.height,
            stride: self.width as usize * 3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_checks_geometry() {
        let buf = vec![0u8; 10 * 3 * 2];
        assert!(BgrFrame::packed(&buf, 10, 2).is_ok());
        assert_eq!(
            BgrFrame::packed(&buf, 10, 3).unwrap_err(),
            FrameError::Short {
                width: 10,
                height: 3,
                stride: 30,
                len: 60,
                needed: 90
            }
        );
        assert!(matches!(
            BgrFrame::new(&buf, 10, 2, 20),
            Err(FrameError::Stride { .. })
        ));
        assert!(matches!(
            BgrFrame::packed(&buf, 0, 2),
            Err(FrameError::Empty { .. })
        ));
        // The last row does not need its padding.
        let strided = vec![0u8; 64 + 30];
        let f = BgrFrame::new(&strided, 10, 2, 64).unwrap();
        assert_eq!(f.row(1).len(), 30);
    }

    #[test]
    fn copy_from_strided_frame_packs_rows() {
        let mut buf = vec![0u8; 8 + 6];
        buf[..6].copy_from_slice(&[1, 2, 3, 4, 5, 6]);
        buf[8..14].copy_from_slice(&[7, 8, 9, 10, 11, 12]);
        let f = BgrFrame::new(&buf, 2, 2, 8).unwrap();
        let img = BgrImage::from_frame(&f);
        assert_eq!(img.data(), &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        assert_eq!(img.as_frame().stride(), 6);
    }
}
