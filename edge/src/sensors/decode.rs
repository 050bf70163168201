//! Register words to a reading: data type, word order, scale and offset.
//!
//! Pure and total: every input gives a [`Reading`] or a [`DecodeError`]
//! that says what was wrong; nothing here panics.
//!
//! `raw` is what the device sent, as one integer type for every sensor (the
//! telemetry field `raw` is i64 everywhere, so InfluxDB never sees a field
//! type conflict): the decoded integer for `u16`, `i16`, `u32` and `i32`;
//! for `f32`, the 32-bit IEEE 754 pattern of the two registers (high word
//! first after word order is applied), so a person can still check the
//! registers. `value` is `number * scale + offset`, where `number` is the
//! integer, or the float for `f32`.

use parkwatch_config::{DataType, WordOrder};

/// One decoded reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// The raw register value (see the module doc for `f32`).
    pub raw: i64,
    /// The scaled value, always finite.
    pub value: f64,
}

/// Why register words did not give a reading.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The device answered with the wrong number of registers.
    #[error("expected {expected} register(s) for {data_type:?}, got {got}")]
    WrongLength {
        /// The data type being decoded.
        data_type: DataType,
        /// Registers it needs.
        expected: usize,
        /// Registers that came.
        got: usize,
    },
    /// An `f32` register pair holds NaN or an infinity, or scaling overflowed.
    #[error("value is not a finite number (raw 0x{raw:08x})")]
    NotFinite {
        /// The raw value, as in [`Reading::raw`].
        raw: i64,
    },
}

/// Decodes `words` (as read, starting at the sensor's register) and scales.
pub fn decode(
    words: &[u16],
    data_type: DataType,
    word_order: WordOrder,
    scale: f64,
    offset: f64,
) -> Result<Reading, DecodeError> {
    let expected = usize::from(data_type.registers());
    if words.len() != expected {
        return Err(DecodeError::WrongLength {
            data_type,
            expected,
            got: words.len(),
        });
    }
    let word32 = || -> u32 {
        let (hi, lo) = match word_order {
            WordOrder::Big => (words[0], words[1]),
            WordOrder::Little => (words[1], words[0]),
        };
        (u32::from(hi) << 16) | u32::from(lo)
    };
    let (raw, number) = match data_type {
        DataType::U16 => {
            let v = i64::from(words[0]);
            (v, v as f64)
        }
        DataType::I16 => {
            let v = i64::from(words[0] as i16);
            (v, v as f64)
        }
        DataType::U32 => {
            let v = i64::from(word32());
            (v, v as f64)
        }
        DataType::I32 => {
            let v = i64::from(word32() as i32);
            (v, v as f64)
        }
        DataType::F32 => {
            let bits = word32();
            (i64::from(bits), f64::from(f32::from_bits(bits)))
        }
    };
    let value = scaled(number, scale) + offset;
    if !value.is_finite() {
        return Err(DecodeError::NotFinite { raw });
    }
    Ok(Reading { raw, value })
}

/// `number * scale`, computed as `number / k` when `scale` is exactly
/// `1 / k` for an integer `k` (0.1, 0.01, 0.001, ...), so raw 523 at scale
/// 0.1 gives the double nearest 52.3 rather than 52.300000000000004.
fn scaled(number: f64, scale: f64) -> f64 {
    let k = (1.0 / scale).round();
    if k.abs() >= 2.0 && k.is_finite() && 1.0 / k == scale {
        number / k
    } else {
        number * scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(words: &[u16], t: DataType, o: WordOrder, scale: f64, offset: f64) -> Reading {
        decode(words, t, o, scale, offset).unwrap()
    }

    #[test]
    fn sixteen_bit_types_and_scaling() {
        let r = d(&[523], DataType::U16, WordOrder::Big, 0.1, 0.0);
        assert_eq!(r.raw, 523);
        assert_eq!(r.value, 52.3);
        assert_eq!(
            d(&[1234], DataType::U16, WordOrder::Big, 0.01, 0.0).value,
            12.34
        );
        assert_eq!(d(&[7], DataType::U16, WordOrder::Big, 2.5, 1.0).value, 18.5);
        // 0xFFD6 is -42 as i16 and 65494 as u16.
        assert_eq!(
            d(&[0xFFD6], DataType::I16, WordOrder::Big, 1.0, 0.0).raw,
            -42
        );
        assert_eq!(
            d(&[0xFFD6], DataType::U16, WordOrder::Big, 1.0, 0.0).raw,
            65494
        );
        let r = d(&[0xFFD6], DataType::I16, WordOrder::Big, 0.01, 1.0);
        assert!((r.value - 0.58).abs() < 1e-9, "{r:?}");
    }

    #[test]
    fn thirty_two_bit_types_honour_word_order() {
        // 100_000 = 0x0001_86A0.
        let big = d(&[0x0001, 0x86A0], DataType::U32, WordOrder::Big, 1.0, 0.0);
        let little = d(
            &[0x86A0, 0x0001],
            DataType::U32,
            WordOrder::Little,
            1.0,
            0.0,
        );
        assert_eq!(big.raw, 100_000);
        assert_eq!(little.raw, 100_000);
        // -2 = 0xFFFF_FFFE.
        assert_eq!(
            d(&[0xFFFF, 0xFFFE], DataType::I32, WordOrder::Big, 1.0, 0.0).raw,
            -2
        );
        assert_eq!(
            d(&[0xFFFF, 0xFFFF], DataType::U32, WordOrder::Big, 1.0, 0.0).raw,
            i64::from(u32::MAX)
        );
        // 12.5f32 = 0x4148_0000.
        let f = d(&[0x4148, 0x0000], DataType::F32, WordOrder::Big, 1.0, 0.0);
        assert_eq!(f.value, 12.5);
        assert_eq!(f.raw, 0x4148_0000);
        let f = d(
            &[0x0000, 0x4148],
            DataType::F32,
            WordOrder::Little,
            2.0,
            -1.0,
        );
        assert_eq!(f.value, 24.0);
    }

    #[test]
    fn refuses_wrong_lengths_and_non_finite_values() {
        assert_eq!(
            decode(&[1], DataType::F32, WordOrder::Big, 1.0, 0.0),
            Err(DecodeError::WrongLength {
                data_type: DataType::F32,
                expected: 2,
                got: 1
            })
        );
        assert!(decode(&[], DataType::U16, WordOrder::Big, 1.0, 0.0).is_err());
        assert!(decode(&[1, 2], DataType::U16, WordOrder::Big, 1.0, 0.0).is_err());
        // 0x7FC0_0000 is a quiet NaN, 0x7F80_0000 is +inf.
        for words in [[0x7FC0, 0x0000], [0x7F80, 0x0000]] {
            assert!(matches!(
                decode(&words, DataType::F32, WordOrder::Big, 1.0, 0.0),
                Err(DecodeError::NotFinite { .. })
            ));
        }
        // f32::MAX scaled past f64::MAX.
        assert!(decode(&[0x7F7F, 0xFFFF], DataType::F32, WordOrder::Big, 1e300, 0.0).is_err());
    }
}
