//! A stand-in edge for trying ingest by hand: publishes a status and
//! telemetry batches (postcard, QoS 1) and waits for their delivery acks.
//!
//! ```text
//! cargo run -p parkwatch-ingest --example fake_edge -- --batches 20 --points 50
//! ```
//!
//! Exits 0 when every batch was acknowledged, 1 on timeout.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use clap::Parser;
use parkwatch_protocol::{
    CameraState, CameraStatus, EdgeState, EdgeStatus, EdgeTopic, FieldValue, Point, SCHEMA_VERSION,
    TelemetryBatch, TopicKind, decode_ack, encode_json, encode_telemetry,
};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

/// Publish fake edge traffic to a parkwatch MQTT broker.
#[derive(Debug, Parser)]
struct Args {
    /// Broker host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Broker port.
    #[arg(long, default_value_t = 1883)]
    port: u16,
    /// MQTT username (the edge id on a password-protected broker).
    #[arg(long)]
    username: Option<String>,
    /// MQTT password.
    #[arg(long)]
    password: Option<String>,
    /// Topic prefix.
    #[arg(long, default_value = "parkwatch")]
    prefix: String,
    /// Site id.
    #[arg(long, default_value = "etdz")]
    site: String,
    /// Edge id.
    #[arg(long, default_value = "edge-p01")]
    edge: String,
    /// Telemetry batches to send.
    #[arg(long, default_value_t = 5)]
    batches: u64,
    /// Points per batch (spread over cameras cam-01..cam-04).
    #[arg(long, default_value_t = 4)]
    points: u64,
    /// First sequence number.
    #[arg(long, default_value_t = 1)]
    first_seq: u64,
    /// Seconds to wait for acks.
    #[arg(long, default_value_t = 20)]
    timeout: u64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn topic(a: &Args, kind: TopicKind) -> anyhow::Result<String> {
    Ok(EdgeTopic::new(&a.site, &a.edge, kind)?.render(&a.prefix))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let mut o = MqttOptions::new(format!("fake-{}", a.edge), a.host.clone(), a.port);
    o.set_keep_alive(Duration::from_secs(10))
        .set_max_packet_size(2 << 20, 2 << 20);
    if let Some(u) = &a.username {
        o.set_credentials(u.clone(), a.password.clone().unwrap_or_default());
    }
    let (client, mut events) = AsyncClient::new(o, 1000);
    client
        .subscribe(topic(&a, TopicKind::Ack)?, QoS::AtLeastOnce)
        .await?;

    let started = now_ms();
    let status = EdgeStatus {
        v: SCHEMA_VERSION,
        site: a.site.clone(),
        edge: a.edge.clone(),
        seq: 1,
        state: EdgeState::Online,
        version: "fake".into(),
        started_at_ms: started,
        at_ms: started,
        cameras: vec![CameraStatus {
            id: "cam-01".into(),
            state: CameraState::Streaming,
            since_ms: started,
        }],
    };
    client
        .publish(
            topic(&a, TopicKind::Status)?,
            QoS::AtLeastOnce,
            true,
            encode_json(&status),
        )
        .await?;

    // Publish from a task: rumqttc's requests only move while the event
    // loop below is polled.
    let t0 = Instant::now();
    let want: BTreeSet<u64> = (a.first_seq..a.first_seq + a.batches).collect();
    let telemetry_topic = topic(&a, TopicKind::Telemetry)?;
    let (site, edge, n_batches, n_points, first_seq) = (
        a.site.clone(),
        a.edge.clone(),
        a.batches,
        a.points,
        a.first_seq,
    );
    let publisher = client.clone();
    let publishing = tokio::spawn(async move {
        for i in 0..n_batches {
            let seq = first_seq + i;
            let ts = now_ms();
            let points = (0..n_points)
                .map(|p| Point {
                    measurement: "camera_stream".into(),
                    ts_ms: ts - (n_points - p) as i64,
                    tags: vec![("camera".into(), format!("cam-{:02}", p % 4 + 1))],
                    fields: vec![
                        ("frames_received".into(), FieldValue::U64(seq * 25 + p)),
                        ("fps".into(), FieldValue::F64(24.5)),
                        ("stale".into(), FieldValue::Bool(false)),
                    ],
                })
                .collect();
            let batch = TelemetryBatch {
                v: SCHEMA_VERSION,
                site: site.clone(),
                edge: edge.clone(),
                seq,
                created_at_ms: ts,
                points,
            };
            publisher
                .publish(
                    telemetry_topic.clone(),
                    QoS::AtLeastOnce,
                    false,
                    encode_telemetry(&batch),
                )
                .await?;
        }
        println!("published {n_batches} batches of {n_points} points");
        Ok::<(), rumqttc::ClientError>(())
    });
    let mut want = want;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(a.timeout);
    while !want.is_empty() {
        let ev = tokio::time::timeout_at(deadline, events.poll()).await;
        match ev {
            Err(_) => {
                eprintln!("timeout: {} batches not acked: {:?}", want.len(), want);
                std::process::exit(1);
            }
            Ok(Err(e)) => {
                eprintln!("mqtt: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => match decode_ack(&p.payload) {
                Ok(ack) => {
                    println!("ack {:?} after {:?}", ack.acked, t0.elapsed());
                    for s in ack.seqs() {
                        want.remove(&s);
                    }
                }
                Err(e) => eprintln!("bad ack on {}: {e}", p.topic),
            },
            Ok(Ok(_)) => {}
        }
    }
    publishing.await??;
    println!("all {} batches acked in {:?}", a.batches, t0.elapsed());
    client.disconnect().await?;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while events.poll().await.is_ok() {}
    })
    .await;
    Ok(())
}
