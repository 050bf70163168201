//! External broker mode with Debian's Mosquitto and parkwatch's ACL
//! (`deploy/mosquitto/acl`):
//! * an edge that publishes under another edge's branch never reaches
//!   ingest, while its own traffic does (the part of the branch rule that
//!   the embedded broker cannot enforce);
//! * two ingest instances sharing one subscription (`$share/...`) split
//!   the traffic and store every message exactly once.

use std::time::Duration;

use parkwatch_protocol::{
    EdgeState, EdgeStatus, FieldValue, Point, SCHEMA_VERSION, TelemetryBatch, encode_json,
    encode_telemetry,
};
use parkwatch_tests::stack::{ExternalBroker, Ingest, IngestOptions, Mosquitto, SITE};
use parkwatch_tests::{VictoriaMetrics, wait_for};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::ingest_support::{
    LoadEdge, LoadSpec, check_exactly_once, check_loads, metric, metric_in, start_loads, t0,
};

const INGEST: (&str, &str) = ("parkwatch-ingest", "pw-ingest");

fn external<'a>(m: &Mosquitto, client_id: &'a str) -> ExternalBroker<'a> {
    ExternalBroker {
        port: m.port(),
        username: INGEST.0,
        password: INGEST.1,
        client_id,
        shared_group: "parkwatch-ingest",
    }
}

/// `edge-a` forges `edge-b`'s telemetry and status on `edge-b`'s topics;
/// returns how many publishes the broker acknowledged.
async fn forge(port: u16, n: u64) -> u64 {
    let mut o = MqttOptions::new("edge-a-forger", "127.0.0.1", port);
    o.set_credentials("edge-a", "pw-a")
        .set_keep_alive(Duration::from_secs(10));
    let (client, mut el) = AsyncClient::new(o, 1000);
    let t = t0();
    for seq in 1..=n {
        let batch = TelemetryBatch {
            v: SCHEMA_VERSION,
            site: SITE.to_owned(),
            edge: "edge-b".to_owned(),
            seq,
            created_at_ms: t + seq as i64,
            points: vec![Point {
                measurement: "forged".to_owned(),
                ts_ms: t + seq as i64,
                tags: vec![],
                fields: vec![("v".to_owned(), FieldValue::F64(1.0))],
            }],
        };
        client
            .publish(
                format!("parkwatch/{SITE}/edge-b/telemetry"),
                QoS::AtLeastOnce,
                false,
                encode_telemetry(&batch),
            )
            .await
            .expect("queue");
    }
    let status = EdgeStatus {
        v: SCHEMA_VERSION,
        site: SITE.to_owned(),
        edge: "edge-b".to_owned(),
        seq: 1,
        state: EdgeState::Offline,
        version: "forged".to_owned(),
        started_at_ms: t,
        at_ms: t,
        cameras: vec![],
    };
    client
        .publish(
            format!("parkwatch/{SITE}/edge-b/status"),
            QoS::AtLeastOnce,
            false,
            encode_json(&status),
        )
        .await
        .expect("queue");
    let mut acked = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while acked < n + 1 && tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(1), el.poll()).await {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(e)) => panic!("forger connection failed: {e}"),
        }
    }
    acked
}

#[test]
fn mosquitto_acl_keeps_each_edge_in_its_own_branch() {
    let mosq = Mosquitto::start(&[INGEST, ("edge-a", "pw-a"), ("edge-b", "pw-b")]);
    let vm = VictoriaMetrics::start();
    let ingest = Ingest::start_custom(
        &vm,
        &IngestOptions {
            external: Some(external(&mosq, "ingest-acl")),
            ..IngestOptions::default()
        },
    );
    wait_for(
        "ingest connected to Mosquitto",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || (metric(&ingest, "parkwatch_ingest_consumer_connected") == 1.0).then_some(()),
    );
    let own = LoadEdge::start(LoadSpec {
        batches: 200,
        ..LoadSpec::new("edge-a", "pw-a", mosq.port())
    });
    let port = mosq.port();
    let acked = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(forge(port, 200))
    })
    .join()
    .expect("forger");
    // MQTT 3.1.1: the broker acknowledges a denied publish and drops it.
    assert_eq!(
        acked, 201,
        "the forger's publishes were all taken by the broker"
    );

    own.wait_all_acked(Duration::from_secs(60));
    check_exactly_once(&vm, &own.spec, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        vm.export(r#"{__name__=~"forged_.*"}"#).is_empty(),
        "a forged point reached the database"
    );
    assert!(vm.export(r#"{edge="edge-b"}"#).is_empty());
    let text = ingest.metrics();
    assert!(
        !text.contains("parkwatch_ingest_rejected_total{"),
        "nothing of the forger even reached ingest:\n{text}"
    );
    assert_eq!(
        metric_in(&text, "parkwatch_ingest_messages_total{kind=\"status\"}"),
        0.0,
        "the forged status never reached ingest"
    );
}

#[test]
fn two_ingest_instances_share_one_subscription_exactly_once() {
    let edges = [
        ("edge-s1", "pw-s1"),
        ("edge-s2", "pw-s2"),
        ("edge-s3", "pw-s3"),
    ];
    let mut users = vec![INGEST];
    users.extend(edges);
    let mosq = Mosquitto::start(&users);
    let vm = VictoriaMetrics::start();
    let ingests: Vec<Ingest> = ["ingest-1", "ingest-2"]
        .iter()
        .map(|id| {
            Ingest::start_custom(
                &vm,
                &IngestOptions {
                    external: Some(external(&mosq, id)),
                    ..IngestOptions::default()
                },
            )
        })
        .collect();
    for i in &ingests {
        wait_for(
            "ingest connected to Mosquitto",
            Duration::from_secs(20),
            Duration::from_millis(200),
            || (metric(i, "parkwatch_ingest_consumer_connected") == 1.0).then_some(()),
        );
    }
    let loads = start_loads(&edges, mosq.port(), 600);
    for l in &loads {
        l.wait_all_acked(Duration::from_secs(90));
    }
    check_loads(&vm, &loads, Duration::from_secs(30));
    let per_instance: Vec<f64> = ingests
        .iter()
        .map(|i| metric(i, "parkwatch_ingest_messages_total{kind=\"telemetry\"}"))
        .collect();
    println!("telemetry messages per instance: {per_instance:?}");
    let total_sends: u64 = loads.iter().map(LoadEdge::sends).sum();
    assert!(
        per_instance.iter().all(|n| *n > 100.0),
        "both instances take a share: {per_instance:?}"
    );
    assert_eq!(
        per_instance.iter().sum::<f64>(),
        total_sends as f64,
        "each publish went to exactly one instance"
    );
}
