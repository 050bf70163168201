//! The on-disk format of segment files (all integers little-endian).
//!
//! ```text
//! segment = header record*
//! header  = "PWOUTBOX" (8 bytes) | version u32 (= 1) | reserved u32 (= 0)
//! record  = crc u32 | len u32 | body (len bytes)
//! body    = seq u64 | appended_unix_ms u64 | class u8 | topic_len u16
//!           | topic (topic_len bytes, UTF-8) | payload (the rest)
//! crc     = CRC-32 (IEEE) of the len field and the body
//! ```
//!
//! Decoding never panics: every length is checked against the bytes at hand
//! and every failure is a reason string for the recovery report.

use super::RecordClass;

/// First eight bytes of every segment file.
pub(crate) const SEGMENT_MAGIC: &[u8; 8] = b"PWOUTBOX";
/// Format version written in the segment header.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// Size of the segment header.
pub(crate) const SEGMENT_HEADER_LEN: u64 = 16;
/// crc and len in front of each body.
pub(crate) const RECORD_PREFIX_LEN: usize = 8;
/// seq, appended_ms, class and topic_len.
pub(crate) const BODY_FIXED_LEN: usize = 19;

/// The 16-byte header of a new segment.
pub(crate) fn segment_header() -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    h[..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

/// Checks a segment header; the error says what is wrong.
pub(crate) fn check_segment_header(h: &[u8]) -> Result<(), String> {
    if h.len() < SEGMENT_HEADER_LEN as usize {
        return Err(format!("segment header has {} of 16 bytes", h.len()));
    }
    if &h[..8] != SEGMENT_MAGIC {
        return Err("not an outbox segment (bad magic)".to_owned());
    }
    let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if version != FORMAT_VERSION {
        return Err(format!("unsupported segment format version {version}"));
    }
    Ok(())
}

/// Total on-disk size of a record with this topic and payload.
pub(crate) fn record_len(topic_len: usize, payload_len: usize) -> u64 {
    (RECORD_PREFIX_LEN + BODY_FIXED_LEN) as u64 + topic_len as u64 + payload_len as u64
}

/// Appends the prefix, the fixed body fields and the topic of a record to
/// `out`; the payload is to be written right after. The checksum covers the
/// payload too.
pub(crate) fn encode_head(
    out: &mut Vec<u8>,
    seq: u64,
    appended_ms: u64,
    class: RecordClass,
    topic: &str,
    payload: &[u8],
) {
    // Callers check topic length (<= u16) and payload size (<= 256 MiB)
    // before, so the body length fits u32.
    let body_len = (BODY_FIXED_LEN + topic.len() + payload.len()) as u32;
    let start = out.len();
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&appended_ms.to_le_bytes());
    out.push(class.code());
    out.extend_from_slice(&(topic.len() as u16).to_le_bytes());
    out.extend_from_slice(topic.as_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&out[start + 4..]);
    h.update(payload);
    out[start..start + 4].copy_from_slice(&h.finalize().to_le_bytes());
}

/// The crc and body length read from the 8 bytes in front of a body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Prefix {
    pub crc: u32,
    pub body_len: u32,
}

impl Prefix {
    pub(crate) fn parse(b: [u8; RECORD_PREFIX_LEN]) -> Prefix {
        Prefix {
            crc: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            body_len: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    /// Whole record size, prefix included.
    pub(crate) fn record_len(self) -> u64 {
        RECORD_PREFIX_LEN as u64 + u64::from(self.body_len)
    }
}

/// A decoded record, borrowing from the buffer it was read into.
#[derive(Debug)]
pub(crate) struct Decoded<'a> {
    pub seq: u64,
    pub appended_ms: u64,
    pub class: RecordClass,
    pub topic: &'a str,
    pub payload: &'a [u8],
}

/// Checks and decodes one whole record (prefix included). `rec` must be
/// exactly the record's bytes.
pub(crate) fn decode_record(rec: &[u8]) -> Result<Decoded<'_>, String> {
    let Some((prefix, rest)) = rec.split_first_chunk::<RECORD_PREFIX_LEN>() else {
        return Err(format!("record prefix has {} of 8 bytes", rec.len()));
    };
    let prefix = Prefix::parse(*prefix);
    if u64::from(prefix.body_len) != rest.len() as u64 {
        return Err(format!(
            "record length field says {} bytes, {} present",
            prefix.body_len,
            rest.len()
        ));
    }
    if rest.len() < BODY_FIXED_LEN {
        return Err(format!(
            "record body of {} bytes is shorter than the {BODY_FIXED_LEN} fixed bytes",
            rest.len()
        ));
    }
    let mut h = crc32fast::Hasher::new();
    h.update(&rec[4..]);
    let crc = h.finalize();
    if crc != prefix.crc {
        return Err(format!(
            "checksum mismatch (stored {:08x}, computed {crc:08x})",
            prefix.crc
        ));
    }
    let (fixed, tail) = rest.split_at(BODY_FIXED_LEN);
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&fixed[0..8]);
    let mut ms = [0u8; 8];
    ms.copy_from_slice(&fixed[8..16]);
    let class = RecordClass::from_code(fixed[16])
        .ok_or_else(|| format!("unknown class code {}", fixed[16]))?;
    let topic_len = usize::from(u16::from_le_bytes([fixed[17], fixed[18]]));
    if topic_len > tail.len() {
        return Err(format!(
            "topic length {topic_len} exceeds the {} bytes left in the record",
            tail.len()
        ));
    }
    let (topic, payload) = tail.split_at(topic_len);
    let topic = std::str::from_utf8(topic).map_err(|e| format!("topic is not UTF-8: {e}"))?;
    Ok(Decoded {
        seq: u64::from_le_bytes(seq),
        appended_ms: u64::from_le_bytes(ms),
        class,
        topic,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(seq: u64, class: RecordClass, topic: &str, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        encode_head(&mut v, seq, 1234, class, topic, payload);
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn round_trip() {
        let rec = encode(42, RecordClass::Snapshot, "snapshots/a-1", b"jpeg bytes");
        assert_eq!(rec.len() as u64, record_len("snapshots/a-1".len(), 10));
        let d = decode_record(&rec).unwrap();
        assert_eq!(d.seq, 42);
        assert_eq!(d.appended_ms, 1234);
        assert_eq!(d.class, RecordClass::Snapshot);
        assert_eq!(d.topic, "snapshots/a-1");
        assert_eq!(d.payload, b"jpeg bytes");
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let rec = encode(7, RecordClass::Alarm, "alarms", b"{\"seq\":7}");
        for byte in 0..rec.len() {
            for bit in 0..8 {
                let mut bad = rec.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    decode_record(&bad).is_err(),
                    "flip at {byte}:{bit} undetected"
                );
            }
        }
    }

    #[test]
    fn short_inputs_are_errors() {
        let rec = encode(7, RecordClass::Alarm, "alarms", b"x");
        for n in 0..rec.len() {
            assert!(decode_record(&rec[..n]).is_err());
        }
    }
}
