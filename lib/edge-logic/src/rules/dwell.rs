//! The `dwell` rule (illegal parking, loitering): one alarm per track that
//! stays inside the zone for the rule's `seconds`.
//!
//! Guarantees: a track's time in the zone starts at its first qualifying
//! frame inside and survives spells outside (or below `min_score`) shorter
//! than `clear_ms`, so a box jittering across the border neither restarts
//! the clock nor ends the alarm. The alarm ends when the track has been
//! outside for `clear_ms`, as soon as the tracker has dropped the track
//! (lost: the tracker already waited `max_age_ms`), when the active hours
//! end, or on reset. After an end that track gets no new alarm of this rule
//! within the cooldown; other tracks are not affected.

use std::collections::BTreeMap;

use super::alarm::{Materiality, OpenAlarm, RuleMeta, TrackCooldowns};
use super::zone::Zone;
use super::{AlarmTransition, Frame};

#[derive(Debug, Clone)]
struct DwellTrack {
    entered_ms: i64,
    last_inside_ms: i64,
    open: Option<OpenAlarm>,
}

#[derive(Debug, Clone)]
pub(crate) struct DwellRule {
    pub meta: RuleMeta,
    zone: Zone,
    tracks: BTreeMap<u64, DwellTrack>,
    cooldown: TrackCooldowns,
}

impl DwellRule {
    pub fn new(meta: RuleMeta, zone: Zone) -> Self {
        DwellRule {
            meta,
            zone,
            tracks: BTreeMap::new(),
            cooldown: TrackCooldowns::default(),
        }
    }

    pub fn open_count(&self) -> usize {
        self.tracks.values().filter(|t| t.open.is_some()).count()
    }

    pub fn on_frame(&mut self, f: &mut Frame<'_>, out: &mut Vec<AlarmTransition>) {
        let (ts, tracks) = (f.ts_ms, f.tracks);
        if !self.meta.active_at(f.minute) {
            self.reset(ts, out);
            return;
        }
        self.cooldown.begin_frame(ts, tracks);

        for t in tracks {
            let inside =
                self.meta.qualifies(t, f.opts.require_confirmed) && self.zone.contains(t.foot());
            if !inside {
                continue;
            }
            let st = self.tracks.entry(t.id).or_insert(DwellTrack {
                entered_ms: ts,
                last_inside_ms: ts,
                open: None,
            });
            st.last_inside_ms = ts;
            let obj = [t.to_object()];
            if let Some(open) = &mut st.open {
                out.extend(open.maybe_update(&self.meta, f.opts, ts, &obj, Materiality::Objects));
            } else if ts.saturating_sub(st.entered_ms) >= self.meta.hold_ms
                && self.cooldown.ready(t.id, ts)
            {
                let id = f.issue(&self.meta.id, ts, Some(t.id));
                let (alarm, tr) = OpenAlarm::open(&self.meta, id, ts, obj.to_vec());
                st.open = Some(alarm);
                out.push(tr);
            }
        }

        // Tracks that are gone, or outside for long enough.
        let clear_ms = f.opts.clear_ms;
        let meta = &self.meta;
        let cooldown = &mut self.cooldown;
        self.tracks.retain(|id, st| {
            let lost = !cooldown.is_present(*id);
            let left = ts.saturating_sub(st.last_inside_ms) >= clear_ms;
            if !(lost || left) {
                return true;
            }
            if let Some(open) = st.open.take() {
                let tr = open.end(meta, ts);
                cooldown.start(*id, &tr, meta.cooldown_ms);
                out.push(tr);
            }
            false
        });
    }

    /// Ends every open alarm (each starting its track's cooldown) and
    /// forgets all time in the zone.
    pub fn reset(&mut self, ts: i64, out: &mut Vec<AlarmTransition>) {
        for (id, st) in std::mem::take(&mut self.tracks) {
            if let Some(open) = st.open {
                let tr = open.end(&self.meta, ts);
                self.cooldown.start(id, &tr, self.meta.cooldown_ms);
                out.push(tr);
            }
        }
    }
}
