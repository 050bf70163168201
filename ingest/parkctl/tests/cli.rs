//! The real `parkctl` binary against ingest's real API (served by
//! `parkwatch-ingest` in this process, on SQLite and on a throw-away
//! PostgreSQL): what `parkctl alarms` and `parkctl tail` print of what the
//! incident service stored. These checks were part of ingest's
//! `incidents_api` loop before parkctl became its own package; an
//! integration test can run only its own package's binaries.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

#[path = "../../tests/incidents_support/mod.rs"]
mod incidents_support;

use std::time::Duration;

use incidents_support::*;
use parkwatch_protocol::SnapshotRef;

/// A video alarm with its snapshot, stored as in ingest's loop test; then
/// `parkctl alarms show|list` show it, and an unknown alarm is exit code 1.
async fn alarms_show_and_list(h: &Harness) {
    h.clock.set(T0);
    let snap = jpeg("snapshot of a-1");
    let sha = parkwatch_incidents::blobs::sha256_hex(&snap);
    let mut ev = parking_alarm("a-1", 10, "gate-apron");
    ev.snapshot = Some(SnapshotRef {
        seq: 9,
        sha256: sha.clone(),
        bytes: snap.len() as u32,
        width: 640,
        height: 360,
    });
    h.svc
        .ingest_snapshot("edge-p01", "a-1", snap.clone())
        .await
        .unwrap();
    let out = h.svc.ingest_alarm(&ev).await.unwrap();
    let id = out.incident_id.unwrap();
    // A re-send is stored once: parkctl shows one event.
    h.svc.ingest_alarm(&ev).await.unwrap();

    // parkctl shows the same, readably; an unknown alarm is exit code 1.
    let base = h.base.trim_end_matches("/api/v1").to_owned();
    let parkctl = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_parkctl"))
            .args(args)
            .args([
                "--url",
                &base,
                "--token",
                "viewer",
                "--utc-offset",
                "+00:00",
            ])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, text, err) = tokio::task::block_in_place(|| parkctl(&["alarms", "show", "a-1"]));
    assert_eq!(code, Some(0), "{text}{err}");
    assert!(
        text.contains("a-1") && text.contains(&format!("incident #{id}")),
        "{text}"
    );
    let events: Vec<&str> = text.lines().filter(|l| l.starts_with("   ")).collect();
    assert_eq!(events.len(), 1, "{text}");
    assert!(
        events[0].contains("10") && events[0].contains("new"),
        "{text}"
    );
    let (code, text, _) =
        tokio::task::block_in_place(|| parkctl(&["alarms", "list", "--camera", "cam-p01-1"]));
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("a-1") && text.contains("1 of 1 shown"),
        "{text}"
    );
    let (code, _, err) = tokio::task::block_in_place(|| parkctl(&["alarms", "show", "nope"]));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("404") || err.contains("not_found"), "{err}");
}

/// Alarms on two cameras; `parkctl tail --camera` prints the filtered
/// feed, one readable line per event, and ends after `--count`.
async fn tail_prints_the_feed(h: &Harness) {
    h.clock.set(T0);
    ingest_live_alarms(h).await;

    // parkctl tail prints them, one readable line each.
    let base = h.base.trim_end_matches("/api/v1").to_owned();
    let out = tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_parkctl"))
            .args([
                "tail",
                "--url",
                &base,
                "--token",
                "viewer",
                "--camera",
                "cam-p03-1",
                "--since",
                "0",
                "--count",
                "3",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("parkctl tail did not end after --count events");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("ALARM") && l.contains("cam-p03-1 zone=gate-apron")),
        "{text}"
    );
    assert!(lines.iter().any(|l| l.contains("INCIDENT")), "{text}");
}

async fn run_all(h: &Harness) {
    alarms_show_and_list(h).await;
    tail_prints_the_feed(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parkctl_against_ingest_on_sqlite() {
    let h = Harness::start(Db::Sqlite).await;
    run_all(&h).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parkctl_against_ingest_on_postgres() {
    let pg = pg::PgServer::start().unwrap_or_else(|e| panic!("cannot start PostgreSQL: {e}"));
    let h = Harness::start(Db::Postgres(&pg, "parkwatch_parkctl")).await;
    run_all(&h).await;
    h.stop().await;
}
