//! The latest status of every edge, in memory.
//!
//! Ordering rule: statuses are compared by the edge process run
//! (`started_at_ms`) and, within one run, by `seq`. A status from an older
//! run never replaces one from a newer run. Within a run, an `offline`
//! status always applies: it is usually the MQTT last will, which the broker
//! publishes with the `seq` the edge had when it connected, so it can carry
//! a lower `seq` than the online statuses sent since. An `online` status
//! applies when its `seq` is above every `seq` seen in the run.
//!
//! Lost on restart; the edges' statuses are retained on the broker, so a
//! reconnecting ingest gets them again (from the same broker instance).

use std::collections::BTreeMap;
use std::sync::Mutex;

use parkwatch_protocol::{EdgeState, EdgeStatus};

/// The status store. Shared as `Arc<EdgeRegistry>`.
#[derive(Debug, Default)]
pub struct EdgeRegistry {
    inner: Mutex<BTreeMap<(String, String), Entry>>,
}

/// One edge's latest status.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The status that applies.
    pub status: EdgeStatus,
    /// When ingest received it, ms since the Unix epoch.
    pub received_at_ms: i64,
    /// Highest `seq` seen in the current run.
    pub max_seq: u64,
}

impl EdgeRegistry {
    /// Applies `status` (received at `now_ms`) by the ordering rule;
    /// returns whether it became the current one.
    pub fn update(&self, status: EdgeStatus, now_ms: i64) -> bool {
        let Ok(mut map) = self.inner.lock() else {
            return false;
        };
        let key = (status.site.clone(), status.edge.clone());
        let apply = match map.get(&key) {
            None => true,
            Some(cur) => {
                let (new_run, cur_run) = (status.started_at_ms, cur.status.started_at_ms);
                if new_run != cur_run {
                    new_run > cur_run
                } else {
                    status.state == EdgeState::Offline || status.seq > cur.max_seq
                }
            }
        };
        if !apply {
            return false;
        }
        let max_seq = match map.get(&key) {
            Some(cur) if cur.status.started_at_ms == status.started_at_ms => {
                cur.max_seq.max(status.seq)
            }
            _ => status.seq,
        };
        map.insert(
            key,
            Entry {
                status,
                received_at_ms: now_ms,
                max_seq,
            },
        );
        true
    }

    /// The current status of one edge.
    pub fn get(&self, site: &str, edge: &str) -> Option<Entry> {
        self.inner
            .lock()
            .ok()
            .and_then(|m| m.get(&(site.to_owned(), edge.to_owned())).cloned())
    }

    /// Every edge's current status, ordered by site and edge.
    pub fn list(&self) -> Vec<Entry> {
        self.inner
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: EdgeState, started: i64, seq: u64) -> EdgeStatus {
        EdgeStatus {
            v: 1,
            site: "etdz".into(),
            edge: "edge-p01".into(),
            seq,
            state,
            version: "0.1.0".into(),
            started_at_ms: started,
            at_ms: started,
            cameras: vec![],
        }
    }

    fn state(r: &EdgeRegistry) -> Option<(EdgeState, u64)> {
        r.get("etdz", "edge-p01")
            .map(|e| (e.status.state, e.status.seq))
    }

    #[test]
    fn newer_runs_and_seqs_win_and_last_will_applies() {
        let r = EdgeRegistry::default();
        assert!(r.update(status(EdgeState::Online, 100, 1), 0));
        assert!(r.update(status(EdgeState::Online, 100, 5), 0));
        assert!(!r.update(status(EdgeState::Online, 100, 3), 0), "older seq");
        // Last will, registered at connect time with seq 1.
        assert!(r.update(status(EdgeState::Offline, 100, 1), 0));
        assert_eq!(state(&r), Some((EdgeState::Offline, 1)));
        assert!(
            !r.update(status(EdgeState::Online, 100, 4), 0),
            "stale online"
        );
        assert!(
            r.update(status(EdgeState::Online, 100, 6), 0),
            "reconnected"
        );
        assert!(!r.update(status(EdgeState::Online, 50, 99), 0), "older run");
        assert!(r.update(status(EdgeState::Online, 200, 0), 0), "new run");
        assert_eq!(state(&r), Some((EdgeState::Online, 0)));
        assert_eq!(r.list().len(), 1);
    }
}
