//! MQTT over TLS (`mqtt.ca_file`), against Debian's Mosquitto with a TLS
//! listener and certificates made with the `openssl` CLI for this test: the
//! edge connects, verifies the broker against the configured CA and
//! publishes its retained status, which `mosquitto_sub --cafile` reads. An
//! edge given another CA refuses the broker, says so clearly in its log and
//! never gets a status through; a CA file that is not there stops the edge
//! at start-up with a message naming it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use parkwatch_tests::stack::{
    EdgeSpec, camera_state, edge_command, edge_config_with_mqtt, mqtt_read_one, start_edge,
    status_topic,
};
use parkwatch_tests::{ChildGuard, ChildSpec, free_port, run_ok, run_to_end, wait_for};
use serde_json::Value;

#[track_caller]
fn openssl(dir: &Path, args: &[&str]) {
    run_ok(
        Command::new("openssl").current_dir(dir).args(args),
        &format!("{args:?}"),
    );
}

/// The configuration of an edge that trusts `ca`, in `parent/name`.
fn tls_edge_config(parent: &Path, name: &str, spec: &EdgeSpec<'_>, ca: &Path) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    edge_config_with_mqtt(&dir, spec, &format!("ca_file = \"{}\"", ca.display()))
}

/// `openssl req` options for a new P-256 key, unencrypted.
const NEW_EC_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// A self-signed CA `{name}.pem` / `{name}.key` in `dir`.
fn make_ca(dir: &Path, name: &str) -> PathBuf {
    let (key, pem, subject) = (
        format!("{name}.key"),
        format!("{name}.pem"),
        format!("/CN=parkwatch test {name}"),
    );
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &NEW_EC_KEY,
            &[
                "-keyout",
                &key,
                "-out",
                &pem,
                "-days",
                "2",
                "-subj",
                &subject,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat(),
    );
    dir.join(format!("{name}.pem"))
}

/// A server certificate for 127.0.0.1 signed by CA `ca`: (cert, key).
fn make_server_cert(dir: &Path, ca: &str) -> (PathBuf, PathBuf) {
    openssl(
        dir,
        &[
            &["req"][..],
            &NEW_EC_KEY,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap_or_else(|e| panic!("writing server.ext: {e}"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
    (dir.join("server.pem"), dir.join("server.key"))
}

/// Debian's Mosquitto with one TLS listener on 127.0.0.1.
fn start_mosquitto(dir: &Path, ca: &Path, cert: &Path, key: &Path) -> (ChildGuard, u16) {
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "user root\npersistence false\nlog_dest stdout\nlog_type all\n\
             per_listener_settings true\n\
             listener {port} 127.0.0.1\nallow_anonymous true\n\
             cafile {}\ncertfile {}\nkeyfile {}\n",
            ca.display(),
            cert.display(),
            key.display()
        ),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", conf.display()));
    // Line-buffered: the test reads Mosquitto's log while it runs.
    let mut broker = ChildSpec::new("mosquitto", "stdbuf")
        .args(["-oL", "/usr/sbin/mosquitto", "-c"])
        .arg(&conf)
        .spawn();
    broker.wait_listening(port, Duration::from_secs(10));
    (broker, port)
}

#[test]
fn edge_talks_tls_to_mosquitto_and_refuses_an_unknown_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca(dir.path(), "ca");
    let other_ca = make_ca(dir.path(), "other-ca");
    let (cert, key) = make_server_cert(dir.path(), "ca");
    let (broker, port) = start_mosquitto(dir.path(), &ca, &cert, &key);
    let cafile_args = ["--cafile", ca.to_str().unwrap()];

    // Plain MQTT is not spoken on this port: a client without TLS gets nothing.
    assert!(
        mqtt_read_one(port, &[], "#", Duration::from_secs(1)).is_none(),
        "a plain-TCP client read from the TLS listener"
    );

    // The edge with the right CA: connected over TLS, status retained.
    let good = tls_edge_config(
        dir.path(),
        "good",
        &EdgeSpec {
            cameras: vec![(
                "cam1".into(),
                "rtsp://127.0.0.1:9/nothing-here".into(),
                String::new(),
            )],
            ..EdgeSpec::new("tls-edge", "unused-by-anonymous-broker", port)
        },
        &ca,
    );
    let mut edge = start_edge(&good);
    edge.wait_for_log("MQTT connected", Duration::from_secs(20));
    let status: Value = wait_for(
        "tls-edge's retained status over TLS",
        Duration::from_secs(10),
        Duration::from_millis(250),
        || {
            mqtt_read_one(
                port,
                &cafile_args,
                &status_topic("tls-edge"),
                Duration::from_secs(2),
            )
        },
    );
    assert_eq!(status["state"], "online", "{status}");
    assert_eq!(status["edge"], "tls-edge", "{status}");
    assert!(camera_state(&status, "cam1").is_some(), "{status}");
    // Telemetry batches flow over the same TLS session (Mosquitto logs
    // every PUBLISH it receives).
    let telemetry = format!(
        "'{}'",
        status_topic("tls-edge").replace("/status", "/telemetry")
    );
    wait_for(
        "a telemetry batch from tls-edge at the broker",
        Duration::from_secs(10),
        Duration::from_millis(250),
        || {
            broker
                .log()
                .lines()
                .any(|l| l.contains("Received PUBLISH from tls-edge") && l.contains(&telemetry))
                .then_some(())
        },
    );

    // The edge with another CA: a TLS error naming the broker and the CA
    // file, and no connection.
    let bad = tls_edge_config(
        dir.path(),
        "bad",
        &EdgeSpec::new("tls-edge-wrong-ca", "unused", port),
        &other_ca,
    );
    let mut wrong = start_edge(&bad);
    let line = wrong.wait_for_log(
        "TLS handshake with the MQTT broker failed",
        Duration::from_secs(20),
    );
    assert!(
        line.contains("ERROR")
            && line.contains(&format!("port={port}"))
            && line.contains("other-ca.pem")
            && line.contains("UnknownIssuer"),
        "the TLS error line should name the port, the CA file and the reason: {line}"
    );
    eprintln!("wrong CA: {line}");
    // It keeps retrying with backoff, never connects, and nothing of it
    // reaches the broker's subscribers.
    std::thread::sleep(Duration::from_secs(3));
    wrong.assert_running();
    let log = wrong.log();
    assert!(!log.contains("MQTT connected"), "{log}");
    assert!(
        log.matches("TLS handshake with the MQTT broker failed")
            .count()
            >= 2,
        "no retry: {log}"
    );
    assert!(
        mqtt_read_one(
            port,
            &cafile_args,
            &status_topic("tls-edge-wrong-ca"),
            Duration::from_secs(1)
        )
        .is_none(),
        "the edge with the wrong CA got a status through"
    );
    edge.assert_running();

    // A CA file that is not there: the edge does not start, and says which file.
    let missing = dir.path().join("bad/no-such-ca.pem");
    let cfg = std::fs::read_to_string(&bad).unwrap().replace(
        &other_ca.display().to_string(),
        &missing.display().to_string(),
    );
    std::fs::write(&bad, cfg).unwrap();
    let out = run_to_end(edge_command("--config").arg(&bad));
    let stderr = &out.stderr;
    assert!(
        !out.status.success() && stderr.contains("no-such-ca.pem") && stderr.contains("ca_file"),
        "a missing CA file must stop the edge with a message naming it: {} {stderr}",
        out.status
    );
}
