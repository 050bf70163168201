//! The on-disk format of outbox segment files: the segment log of
//! `parkwatch_durable::segment` (all integers little-endian), with the
//! outbox's own header magic and record body.
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
//! The framing (header, crc, len) is the durable crate's; this module owns
//! only the body. Decoding never panics: every length is checked against
//! the bytes at hand and every failure is a reason string for the recovery
//! report.

use parkwatch_durable::segment::{self, SegmentFormat};

use super::RecordClass;

/// Header of every outbox segment file.
pub(crate) const OUTBOX_FORMAT: SegmentFormat = SegmentFormat {
    magic: *b"PWOUTBOX",
    version: 1,
};
/// Size of the segment header.
pub(crate) const SEGMENT_HEADER_LEN: u64 = segment::HEADER_LEN;
/// crc and len in front of each body.
pub(crate) const RECORD_PREFIX_LEN: usize = segment::PREFIX_LEN;
/// seq, appended_ms, class and topic_len.
pub(crate) const BODY_FIXED_LEN: usize = 19;

/// The 16-byte header of a new segment.
#[cfg(test)]
pub(crate) fn segment_header() -> [u8; SEGMENT_HEADER_LEN as usize] {
    OUTBOX_FORMAT.header()
}

/// Total on-disk size of a record with this topic and payload.
pub(crate) fn record_len(topic_len: usize, payload_len: usize) -> u64 {
    (RECORD_PREFIX_LEN + BODY_FIXED_LEN) as u64 + topic_len as u64 + payload_len as u64
}

/// Appends the fixed body fields and the topic of a record to `out`: the
/// head of the body, which the payload follows. The segment writer frames
/// head and payload together (one checksum over both).
pub(crate) fn encode_head(
    out: &mut Vec<u8>,
    seq: u64,
    appended_ms: u64,
    class: RecordClass,
    topic: &str,
) {
    // Callers check topic length (<= u16) before.
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&appended_ms.to_le_bytes());
    out.push(class.code());
    out.extend_from_slice(&(topic.len() as u16).to_le_bytes());
    out.extend_from_slice(topic.as_bytes());
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
    decode_body(segment::check_record(rec)?)
}

/// Decodes the body of a record whose frame was checked.
pub(crate) fn decode_body(body: &[u8]) -> Result<Decoded<'_>, String> {
    if body.len() < BODY_FIXED_LEN {
        return Err(format!(
            "record body of {} bytes is shorter than the {BODY_FIXED_LEN} fixed bytes",
            body.len()
        ));
    }
    let (fixed, tail) = body.split_at(BODY_FIXED_LEN);
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
        let mut head = Vec::new();
        encode_head(&mut head, seq, 1234, class, topic);
        let mut v = segment::frame_prefix(&[&head, payload]).to_vec();
        v.extend_from_slice(&head);
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
