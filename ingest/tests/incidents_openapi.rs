//! The OpenAPI document validates, and schemathesis (PyPI) run against the
//! live API finds no server error, no undocumented status, no response
//! that breaks the schema, and no endpoint that ignores authentication.
//!
//! Needs `st` and `openapi-spec-validator` from PyPI: set
//! `PARKWATCH_SCHEMATHESIS` to the `st` binary, or install both into
//! `.cache/schemathesis-venv` (see docs/api.md, "Testing").

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod incidents_support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use incidents_support::*;

fn venv_bin(name: &str) -> PathBuf {
    if name == "st"
        && let Ok(p) = std::env::var("PARKWATCH_SCHEMATHESIS")
    {
        return PathBuf::from(p);
    }
    let candidates = [
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/schemathesis-venv/bin"),
        PathBuf::from("/opt/parkwatch/schemathesis/bin"),
    ];
    for dir in &candidates {
        if dir.join(name).is_file() {
            return dir.join(name);
        }
    }
    panic!(
        "{name} not found in {candidates:?}; install it: python3 -m venv .cache/schemathesis-venv && .cache/schemathesis-venv/bin/pip install schemathesis openapi-spec-validator"
    );
}

/// Runs a command in a blocking thread with a time limit; (exit ok, output).
async fn run(mut cmd: Command, limit: Duration) -> (bool, String) {
    tokio::task::spawn_blocking(move || {
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + limit;
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_validates_and_schemathesis_finds_no_server_error() {
    let h = Harness::start(Db::Sqlite).await;
    // Some data, so reads and steps have something to work on.
    for i in 0..3 {
        h.svc
            .ingest_alarm(&parking_alarm(&format!("st-{i}"), i, &format!("zone-{i}")))
            .await
            .unwrap();
        let (s, _) = h
            .post(
                Some("hotline"),
                "/incidents",
                &hotline_report("0101", 120.612_974, 31.271_081_7),
            )
            .await;
        assert_eq!(s, 201);
    }

    let (s, doc) = h.get(None, "/openapi.json").await;
    assert_eq!(s, 200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    for p in [
        "/api/v1/incidents",
        "/api/v1/incidents/{id}",
        "/api/v1/incidents/{id}/actions",
        "/api/v1/alarms",
        "/api/v1/alarms/stream",
        "/api/v1/cameras",
        "/api/v1/edges",
        "/api/v1/grids",
        "/api/v1/stats",
    ] {
        assert!(doc["paths"][p].is_object(), "{p} missing from the document");
    }
    let file = h.dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let mut validate = Command::new(venv_bin("openapi-spec-validator"));
    validate.arg(&file);
    let (ok, out) = run(validate, Duration::from_secs(60)).await;
    assert!(ok, "openapi-spec-validator: {out}");

    let origin = h.base.trim_end_matches("/api/v1").to_owned();
    let mut st = Command::new(venv_bin("st"));
    st.current_dir(h.dir.path())
        .env("SCHEMATHESIS_HOOKS", "")
        .args([
            "run",
            &format!("{origin}/api/v1/openapi.json"),
            "--url",
            &origin,
            "--header",
            "Authorization: Bearer sup",
            "--checks",
            "all",
            // Schema-valid is not always acceptable: a catalogue item or an
            // incident id must also exist, which no schema can say.
            "--exclude-checks",
            "positive_data_acceptance",
            "--exclude-path",
            "/api/v1/alarms/stream",
            "--max-examples",
            "40",
            "--workers",
            "2",
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            "1",
            "--no-color",
        ]);
    let (ok, out) = run(st, Duration::from_secs(600)).await;
    assert!(ok, "schemathesis found problems:\n{out}");
    assert!(!out.contains("Server error"), "{out}");
    h.stop().await;
}
