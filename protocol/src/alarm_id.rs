//! Alarm-id construction: sanitise, join, hash, fit.
//!
//! An alarm id is `{part}.{part}....{started_ms}` plus optional suffixes,
//! e.g. `{edge}.{camera}.{rule}.{started_ms}[.t{track}]` for camera rules
//! and `{edge}.{sensor}.{rule}.{started_ms}` for sensor rules. Each part is
//! sanitised to the wire id set ([`crate::vocab::is_id_char`]): every other
//! char becomes one `_`. An id longer than [`MAX_ALARM_ID_LEN`] keeps its
//! first 111 chars and gets `-` and the 16 hex digits of the 64-bit FNV-1a
//! hash of the whole id, so it stays stable and (practically) unique.
//!
//! Guarantees: [`alarm_id`] and [`fit`] (on the output of [`compose`], with
//! ASCII suffixes) return a valid wire id of at most [`MAX_ALARM_ID_LEN`]
//! chars ([`crate::validate_id`]); the same input always gives the same id,
//! across builds and platforms (the ids are stored by ingest, so this is
//! part of the contract). No allocation beyond the returned string.
//!
//! Depends only on [`crate::limits`] and [`crate::vocab`].

use crate::limits::MAX_ALARM_ID_LEN;
use crate::vocab::is_id_char;

/// Length of the hash suffix [`fit`] appends: `-` and 16 hex digits.
const HASH_SUFFIX_LEN: usize = 17;

/// Appends `s` to `out`, replacing every char outside `[A-Za-z0-9_.:-]`
/// with `_` (one `_` per char, not per byte).
pub fn sanitise_into(out: &mut String, s: &str) {
    out.extend(s.chars().map(|c| if is_id_char(c) { c } else { '_' }));
}

/// 64-bit FNV-1a of `s`'s bytes: the hash [`fit`] uses. Stable forever.
pub fn id_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The sanitised parts joined with `.`, then `.` and `started_ms`: the
/// unfitted id, to which a caller may append ASCII suffixes (`.t{track}`,
/// `.{n}`) before calling [`fit`].
pub fn compose(parts: &[&str], started_ms: i64) -> String {
    let cap = parts.iter().map(|p| p.len() + 1).sum::<usize>() + 20;
    let mut id = String::with_capacity(cap);
    for part in parts {
        sanitise_into(&mut id, part);
        id.push('.');
    }
    id.push_str(&started_ms.to_string());
    id
}

/// Shortens an over-long id stably: an id of at most [`MAX_ALARM_ID_LEN`]
/// bytes is returned as is; a longer one keeps its first 111 bytes and gets
/// `-` and the 16 hex digits of [`id_hash`] of the whole id.
///
/// Meant for ASCII ids (what [`compose`] makes); should `id` hold other
/// chars, the cut moves back to a char boundary rather than panic.
pub fn fit(id: &str) -> String {
    if id.len() <= MAX_ALARM_ID_LEN {
        return id.to_owned();
    }
    let mut keep = MAX_ALARM_ID_LEN - HASH_SUFFIX_LEN;
    while !id.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}-{:016x}", &id[..keep], id_hash(id))
}

/// The alarm id for `parts` (e.g. `[edge, sensor, rule]`) and the alarm's
/// start: [`fit`] of [`compose`].
pub fn alarm_id(parts: &[&str], started_ms: i64) -> String {
    fit(&compose(parts, started_ms))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::vocab::validate_id;

    /// Ids the edge's two former copies of this code (`edge/src/rules/alarm.rs`
    /// `IdIssuer::issue`, `edge/src/sensors/rules.rs` `alarm_id`) produced
    /// for these inputs, recorded before they were replaced by this module.
    #[test]
    fn same_ids_as_the_former_edge_code() {
        let x64 = "x".repeat(64);
        let e64 = "e".repeat(64);
        let s64 = "s".repeat(64);
        let with_track = |parts: &[&str], ms: i64, track: u64| {
            let mut base = compose(parts, ms);
            base.push_str(&format!(".t{track}"));
            fit(&base)
        };
        assert_eq!(
            with_track(&["edge-07", "cam gate/n", "r#1"], 1_700_000_000_000, 42),
            "edge-07.cam_gate_n.r_1.1700000000000.t42"
        );
        assert_eq!(
            alarm_id(&["edge-01", "cam-01", "intrusion-east"], 1_748_766_600_000),
            "edge-01.cam-01.intrusion-east.1748766600000"
        );
        assert_eq!(
            with_track(&["边缘", "cam:1", "r.1"], -5, 0),
            "__.cam:1.r.1.-5.t0"
        );
        let long = format!("{x64}.{}", "x".repeat(46));
        assert_eq!(
            alarm_id(&[&x64, &x64, &x64], 1),
            format!("{long}-fea23685de2796f8")
        );
        assert_eq!(
            with_track(&[&x64, &x64, &x64], 2, 7),
            format!("{long}-31cbb105ab8cd244")
        );
        // A repeat suffix is added before fitting.
        assert_eq!(
            fit(&format!("{}.2", compose(&[&x64, &x64, &x64], 1))),
            format!("{long}-95fa5dbcdcc2cbb0")
        );
        assert_eq!(
            fit(&format!("{}.2", compose(&["e", "c", "r"], 5))),
            "e.c.r.5.2"
        );

        assert_eq!(
            alarm_id(&["edge-01", "pm25-gate", "threshold"], 1_748_766_600_000),
            "edge-01.pm25-gate.threshold.1748766600000"
        );
        assert_eq!(
            alarm_id(&["edge 01/#", "s+1", "device_offline"], 5),
            "edge_01__.s_1.device_offline.5"
        );
        let es = format!("{e64}.{}", "s".repeat(46));
        assert_eq!(
            alarm_id(&[&e64, &s64, "device_offline"], 1_748_766_600_000),
            format!("{es}-ad46e068664351fe")
        );
        assert_eq!(
            alarm_id(&[&e64, &s64, "device_offline"], 1_748_766_600_001),
            format!("{es}-ad46e168664353b1")
        );
        assert_eq!(
            alarm_id(&["é", "", ""], i64::MIN),
            "_...-9223372036854775808"
        );
    }

    #[test]
    fn fit_keeps_short_ids_and_cuts_long_ones_to_the_limit() {
        let exact = "a".repeat(MAX_ALARM_ID_LEN);
        assert_eq!(fit(&exact), exact);
        let over = "a".repeat(MAX_ALARM_ID_LEN + 1);
        let f = fit(&over);
        assert_eq!(f.len(), MAX_ALARM_ID_LEN);
        assert!(f.starts_with(&"a".repeat(111)));
        assert_eq!(&f[111..], format!("-{:016x}", id_hash(&over)));
        // Non-ASCII input does not panic and stays within the limit.
        let odd = "é".repeat(100);
        assert!(fit(&odd).len() <= MAX_ALARM_ID_LEN);
    }

    #[test]
    fn id_hash_is_fnv1a_64() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(id_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(id_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(id_hash("foobar"), 0x8594_4171_f739_67e8);
    }

    proptest! {
        #[test]
        fn alarm_ids_are_valid_bounded_and_stable(
            parts in prop::collection::vec(".{0,80}", 0..5),
            ms in any::<i64>(),
        ) {
            let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
            let id = alarm_id(&refs, ms);
            prop_assert!(validate_id(&id, MAX_ALARM_ID_LEN).is_ok(), "{id:?}");
            prop_assert_eq!(&id, &alarm_id(&refs, ms));
            let unfitted = compose(&refs, ms);
            if unfitted.len() <= MAX_ALARM_ID_LEN {
                prop_assert_eq!(&id, &unfitted);
            } else {
                prop_assert_eq!(id.len(), MAX_ALARM_ID_LEN);
                prop_assert_eq!(&id[..111], &unfitted[..111]);
            }
        }

        #[test]
        fn sanitising_keeps_one_char_per_char(s in ".{0,64}") {
            let mut out = String::new();
            sanitise_into(&mut out, &s);
            prop_assert_eq!(out.chars().count(), s.chars().count());
            prop_assert!(out.chars().all(is_id_char));
            for (a, b) in s.chars().zip(out.chars()) {
                prop_assert!(a == b || (b == '_' && !is_id_char(a)));
            }
        }
    }
}
