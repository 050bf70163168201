//! Delivery acks: telling each edge which outbox records ingest has stored.
//!
//! The writer reports every stored telemetry batch as an [`AckEntry`]. The
//! acker collects them per edge in an [`AckBatcher`] and, every `interval`
//! (200 ms in production), publishes one [`DeliveryAck`] per edge that has
//! something new, as JSON with QoS 1 on `{prefix}/{site}/{edge}/ack`. The
//! sequence numbers come out as merged ranges, so a burst of thousands of
//! batches is a few bytes on the wire.
//!
//! Guarantees and limits: an ack is only ever built from entries the writer
//! reported after a successful (or definitively refused) write. Publishing
//! goes through [`AckPublisher`], which must not wait (the MQTT client's
//! request queue may be full, see [`crate::consumer`]); an ack that could
//! not be handed over goes back into the batcher and is offered again at
//! the next tick. When the input channel closes (shutdown), whatever is
//! pending is published before the task returns (a few attempts; an ack
//! lost then only makes the edge send the record again, which ingest
//! recognises as a duplicate).
//!
//! Ack lag: an entry may carry the time its record arrived at ingest; when
//! its ack is published the time since is added to the per-edge summary
//! `parkwatch_ingest_ack_lag_seconds{edge}` (see [`crate::metrics`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use parkwatch_protocol::{DeliveryAck, EdgeTopic, TopicKind, encode_json};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::metrics::Metrics;

/// One stored outbox record of one edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckEntry {
    /// Site id.
    pub site: String,
    /// Edge id.
    pub edge: String,
    /// The record's outbox sequence number.
    pub seq: u64,
    /// When the record's MQTT message reached ingest (`None`: not measured).
    pub received: Option<std::time::Instant>,
}

/// Acks waiting to be published, per `(site, edge)`.
#[derive(Debug, Default)]
pub struct AckBatcher {
    pending: BTreeMap<(String, String), (Vec<u64>, Vec<std::time::Instant>)>,
}

/// One ack ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingAck {
    /// Site id.
    pub site: String,
    /// Full topic name.
    pub topic: String,
    /// The ack.
    pub ack: DeliveryAck,
    /// Arrival times of the acknowledged records that carried one.
    pub received: Vec<std::time::Instant>,
}

impl AckBatcher {
    /// Records one stored sequence number.
    pub fn add(&mut self, e: AckEntry) {
        let (seqs, received) = self.pending.entry((e.site, e.edge)).or_default();
        seqs.push(e.seq);
        if let Some(t) = e.received {
            received.push(t);
        }
    }

    /// Puts an ack that could not be published back, to be sent again.
    pub fn put_back(&mut self, out: OutgoingAck) {
        let (seqs, received) = self
            .pending
            .entry((out.site, out.ack.edge.clone()))
            .or_default();
        seqs.extend(out.ack.seqs());
        received.extend(out.received);
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Takes everything pending as one ack per edge, topics under `prefix`.
    /// Entries whose site or edge cannot form a topic (impossible for ids
    /// that came through the protocol's topic parser) are logged and skipped.
    pub fn drain(&mut self, prefix: &str) -> Vec<OutgoingAck> {
        let pending = std::mem::take(&mut self.pending);
        let mut out = Vec::with_capacity(pending.len());
        for ((site, edge), (seqs, received)) in pending {
            match EdgeTopic::new(&site, &edge, TopicKind::Ack) {
                Ok(t) => out.push(OutgoingAck {
                    site: site.clone(),
                    topic: t.render(prefix),
                    ack: DeliveryAck::from_seqs(&edge, seqs),
                    received,
                }),
                Err(e) => warn!(%site, %edge, err = %e, "Cannot address an ack; skipped."),
            }
        }
        out
    }
}

/// Where acks are published: the MQTT client, or a test fake.
pub trait AckPublisher: Send + Sync + 'static {
    /// Publishes `payload` on `topic` with QoS 1, not retained.
    fn publish(
        &self,
        topic: String,
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// Runs the acker until `rx` closes, then publishes what is pending.
pub async fn run_acker<P: AckPublisher>(
    mut rx: mpsc::Receiver<AckEntry>,
    publisher: P,
    prefix: String,
    interval: Duration,
    metrics: Arc<Metrics>,
) {
    let mut batcher = AckBatcher::default();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            e = rx.recv() => match e {
                Some(e) => batcher.add(e),
                None => break,
            },
            _ = tick.tick() => {
                if !batcher.is_empty() {
                    publish_all(&mut batcher, &publisher, &prefix, &metrics).await;
                }
            }
        }
    }
    for _ in 0..20 {
        publish_all(&mut batcher, &publisher, &prefix, &metrics).await;
        if batcher.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !batcher.is_empty() {
        warn!("Delivery acks left unpublished at shutdown; those edges will resend.");
    }
    debug!("Acker finished.");
}

async fn publish_all<P: AckPublisher>(
    batcher: &mut AckBatcher,
    publisher: &P,
    prefix: &str,
    metrics: &Metrics,
) {
    let mut retry = Vec::new();
    for out in batcher.drain(prefix) {
        let ranges = out.ack.acked.len();
        match publisher
            .publish(out.topic.clone(), encode_json(&out.ack))
            .await
        {
            Ok(()) => {
                metrics.ack_published();
                let now = std::time::Instant::now();
                let lags: Vec<Duration> = out
                    .received
                    .iter()
                    .map(|t| now.saturating_duration_since(*t))
                    .collect();
                metrics.ack_lag(&out.ack.edge, &lags);
                debug!(topic = %out.topic, ranges, "Published delivery ack.");
            }
            Err(e) => {
                debug!(topic = %out.topic, err = %e, "Cannot hand a delivery ack over yet; retrying at the next tick.");
                retry.push(out);
            }
        }
    }
    for out in retry {
        batcher.put_back(out);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use parkwatch_protocol::{SeqRange, decode_ack};

    use super::*;

    fn entry(site: &str, edge: &str, seq: u64) -> AckEntry {
        AckEntry {
            site: site.into(),
            edge: edge.into(),
            seq,
            received: None,
        }
    }

    #[test]
    fn batcher_merges_ranges_per_edge() {
        let mut b = AckBatcher::default();
        for seq in [5, 3, 4, 9, 4] {
            b.add(entry("etdz", "edge-p01", seq));
        }
        b.add(entry("etdz", "edge-p02", 1));
        let out = b.drain("parkwatch");
        assert!(b.is_empty());
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].topic, "parkwatch/etdz/edge-p01/ack");
        assert_eq!(
            out[0].ack.acked,
            vec![
                SeqRange { first: 3, last: 5 },
                SeqRange { first: 9, last: 9 }
            ]
        );
        assert_eq!(out[1].topic, "parkwatch/etdz/edge-p02/ack");
        assert_eq!(out[1].ack.edge, "edge-p02");
    }

    type Published = Vec<(String, Vec<u8>)>;

    /// Starts an acker publishing through `publisher` every 200 ms; returns
    /// its input, its task and its metrics.
    fn spawn_acker<P: AckPublisher + Send + Sync + 'static>(
        publisher: P,
    ) -> (
        mpsc::Sender<AckEntry>,
        tokio::task::JoinHandle<()>,
        Arc<Metrics>,
    ) {
        let (tx, rx) = mpsc::channel(16);
        let metrics = Arc::new(Metrics::default());
        let task = tokio::spawn(run_acker(
            rx,
            publisher,
            "pw".into(),
            Duration::from_millis(200),
            metrics.clone(),
        ));
        (tx, task, metrics)
    }

    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Published>>);

    impl AckPublisher for Recorder {
        async fn publish(&self, topic: String, payload: Vec<u8>) -> Result<(), String> {
            if let Ok(mut v) = self.0.lock() {
                v.push((topic, payload));
            }
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn acker_publishes_at_most_once_per_interval_and_on_close() {
        let rec = Recorder::default();
        let (tx, task, metrics) = spawn_acker(rec.clone());
        // Let the first (immediate) tick pass.
        tokio::time::sleep(Duration::from_millis(1)).await;
        for seq in 1..=3 {
            let _ = tx.send(entry("s1", "e1", seq)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(rec.0.lock().map(|v| v.is_empty()).unwrap_or(false));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = tx.send(entry("s1", "e1", 4)).await;
        drop(tx);
        let _ = task.await;
        let got = rec.0.lock().map(|v| v.clone()).unwrap_or_default();
        assert_eq!(got.len(), 2, "one tick, one final flush");
        let first = decode_ack(&got[0].1).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got[0].0, "pw/s1/e1/ack");
        assert_eq!(first.seqs().collect::<Vec<_>>(), vec![1, 2, 3]);
        let second = decode_ack(&got[1].1).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(second.seqs().collect::<Vec<_>>(), vec![4]);
        assert_eq!(metrics.acks_published(), 2);
    }

    /// Refuses the first `fail` publishes, then records.
    #[derive(Clone, Default)]
    struct Flaky {
        fail: Arc<Mutex<u32>>,
        rec: Recorder,
    }

    impl AckPublisher for Flaky {
        async fn publish(&self, topic: String, payload: Vec<u8>) -> Result<(), String> {
            if let Ok(mut f) = self.fail.lock()
                && *f > 0
            {
                *f -= 1;
                return Err("queue full".into());
            }
            self.rec.publish(topic, payload).await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_ack_that_cannot_be_handed_over_is_offered_again() {
        let flaky = Flaky {
            fail: Arc::new(Mutex::new(2)),
            ..Flaky::default()
        };
        let (tx, task, metrics) = spawn_acker(flaky.clone());
        tokio::time::sleep(Duration::from_millis(1)).await;
        for seq in [1, 2, 5] {
            let _ = tx.send(entry("s1", "e1", seq)).await;
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let got = flaky.rec.0.lock().map(|v| v.clone()).unwrap_or_default();
        assert_eq!(got.len(), 1, "published once, after two refusals");
        let ack = decode_ack(&got[0].1).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ack.seqs().collect::<Vec<_>>(), vec![1, 2, 5]);
        drop(tx);
        let _ = task.await;
        assert_eq!(metrics.acks_published(), 1);
    }

    #[tokio::test]
    async fn ack_lag_is_measured_from_arrival_per_edge() {
        let rec = Recorder::default();
        let (tx, task, metrics) = spawn_acker(rec.clone());
        let arrived = std::time::Instant::now() - Duration::from_millis(250);
        for seq in 1..=2 {
            let mut e = entry("s1", "e1", seq);
            e.received = Some(arrived);
            let _ = tx.send(e).await;
        }
        let _ = tx.send(entry("s1", "e2", 1)).await;
        drop(tx);
        let _ = task.await;
        let (count, sum, max) = metrics.ack_lag_of("e1").unwrap_or_default();
        assert_eq!(count, 2);
        assert!(sum >= 0.5 && (0.25..5.0).contains(&max), "{sum} {max}");
        assert_eq!(metrics.ack_lag_of("e2"), None, "no arrival time, no sample");
    }
}
