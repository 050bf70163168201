//! Tests of loading, validation and secrets.

use std::path::Path;

use super::*;

fn parse(text: &str) -> IngestConfig {
    match parkwatch_config::parse_toml::<IngestConfig>(Path::new("test.toml"), text) {
        Ok((c, _)) => c,
        Err(e) => panic!("test config does not parse: {e}"),
    }
}

fn keys(issues: &[Issue]) -> Vec<&str> {
    issues.iter().map(|i| i.key.as_str()).collect()
}

const EXAMPLE: &str = include_str!("../../examples/ingest-local.toml");

#[test]
fn example_config_is_valid() {
    let c = parse(EXAMPLE);
    assert_eq!(c.validate(), vec![]);
    assert!(c.broker.allow_anonymous);
    assert_eq!(c.broker.listen_addr().to_string(), "127.0.0.1:1883");
}

#[test]
fn defaults_apply() {
    let c = parse("[broker]\nallow_anonymous = true\n");
    assert_eq!(c.topic_prefix, "parkwatch");
    assert_eq!(c.timeseries.batch_points, 5000);
    assert_eq!(c.timeseries.flush_interval_ms, 1000);
    assert_eq!(c.timeseries.url, "http://127.0.0.1:8428");
    assert_eq!(c.http.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.shutdown_grace_ms, 10_000);
    assert_eq!(c.validate(), vec![]);
}

#[test]
fn unknown_keys_are_refused() {
    let err = |text: &str| match parkwatch_config::parse_toml::<IngestConfig>(
        Path::new("t.toml"),
        text,
    ) {
        Ok(_) => panic!("accepted {text:?}"),
        Err(p) => p.0.into_iter().map(|p| (p.line, p.key)).collect::<Vec<_>>(),
    };
    assert_eq!(err("sitee = \"x\""), vec![(1, "sitee".to_owned())]);
    assert_eq!(
        err("[timeseries]\nbatch = 1\nflush = 2"),
        vec![
            (2, "timeseries.batch".to_owned()),
            (3, "timeseries.flush".to_owned())
        ]
    );
}

#[test]
fn semantic_problems_carry_file_line_and_key() {
    let text = "site = \"etdz\"\n[broker]\nmode = \"external\"\nlisten = \"127.0.0.1:1883\"\n\
                [timeseries]\nbatch_points = 0\n";
    let problems = match IngestConfig::load_str(Path::new("/etc/pw/ingest.toml"), text, &|_| None) {
        Ok(_) => panic!("invalid config accepted"),
        Err(p) => p,
    };
    let lines: Vec<String> = problems.0.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        vec![
            "/etc/pw/ingest.toml:2: broker.host: missing: external mode needs the broker's host",
            "/etc/pw/ingest.toml:4: broker.listen: is only used with broker.mode = \"embedded\"",
            "/etc/pw/ingest.toml:6: timeseries.batch_points: 0 is out of range 1..=1000000",
        ]
    );
}

#[test]
fn unreadable_secret_files_are_reported_with_other_problems() {
    let text = "[[broker.edges]]\nedge = \"edge-p01\"\npassword_file = \"nope.pw\"\n\
                [timeseries]\nbatch_points = 0\n";
    let problems = match IngestConfig::load_str(Path::new("/nonexistent/i.toml"), text, &|_| None) {
        Ok(_) => panic!("invalid config accepted"),
        Err(p) => p,
    };
    let keys: Vec<&str> = problems.0.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        vec!["broker.edges[0].password_file", "timeseries.batch_points"]
    );
    assert!(problems.0[0].message.contains("/nonexistent/nope.pw"));
}

#[test]
fn every_problem_is_reported_at_once() {
    let c = parse(
        r#"
        site = "bad site"
        topic_prefix = "a/#"
        [broker]
        mode = "embedded"
        host = "mqtt.example"
        [[broker.edges]]
        edge = "edge-1"
        [[broker.edges]]
        edge = "edge-1"
        password = "x"
        password_file = "y"
        [timeseries]
        url = "not a url"
        batch_points = 0
        retry_min_ms = 500
        retry_max_ms = 100
        "#,
    );
    let issues = c.validate();
    let k = keys(&issues);
    for expected in [
        "site",
        "topic_prefix",
        "broker.host",
        "broker.edges[0].password",
        "broker.edges[1].edge",
        "broker.edges[1].password",
        "timeseries.url",
        "timeseries.batch_points",
        "timeseries.retry_max_ms",
    ] {
        assert!(k.contains(&expected), "missing {expected} in {k:?}");
    }
}

#[test]
fn embedded_without_credentials_needs_allow_anonymous() {
    let c = parse("[broker]\nmode = \"embedded\"\n");
    assert_eq!(keys(&c.validate()), vec!["broker.edges"]);
}

#[test]
fn external_mode_checks_its_own_options() {
    let c = parse(
        r#"
        [broker]
        mode = "external"
        listen = "127.0.0.1:1883"
        password = "p"
        shared_group = "a/b"
        "#,
    );
    let issues = c.validate();
    let k = keys(&issues);
    assert!(k.contains(&"broker.listen"), "{k:?}");
    assert!(k.contains(&"broker.host"), "{k:?}");
    assert!(k.contains(&"broker.username"), "{k:?}");
    assert!(k.contains(&"broker.shared_group"), "{k:?}");

    let ok = parse("[broker]\nmode = \"external\"\nhost = \"127.0.0.1\"\nshared_group = \"\"\n");
    assert_eq!(ok.validate(), vec![]);
    assert_eq!(ok.broker.shared_group(), None);
    assert_eq!(ok.broker.port(), 1883);
    let dflt = parse("[broker]\nmode = \"external\"\nhost = \"h\"\n");
    assert_eq!(dflt.broker.shared_group(), Some("parkwatch-ingest"));
}

#[test]
fn url_with_credentials_is_refused() {
    let c = parse("[broker]\nallow_anonymous = true\n[timeseries]\nurl = \"http://u:p@h:8086\"\n");
    assert_eq!(keys(&c.validate()), vec!["timeseries.url"]);
    let c = parse("[broker]\nallow_anonymous = true\n[timeseries]\nurl = \"ftp://h\"\n");
    assert_eq!(keys(&c.validate()), vec!["timeseries.url"]);
}

#[test]
fn secrets_come_from_inline_file_or_env() {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("tempdir: {e}"),
    };
    let pw = dir.path().join("p01.pw");
    if let Err(e) = std::fs::write(&pw, "s3cret\n") {
        panic!("write: {e}");
    }
    let mut c = parse(
        r#"
        [[broker.edges]]
        edge = "edge-p01"
        password_file = "p01.pw"
        [[broker.edges]]
        edge = "edge-p02"
        password = "inline"
        [[broker.edges]]
        edge = "edge-p03"
        password_file = "missing.pw"
        "#,
    );
    c.make_paths_absolute(dir.path());
    assert_eq!(c.validate(), vec![]);
    let env = |name: &str| (name == TOKEN_ENV).then(|| "from-env".to_owned());
    let issues = match c.resolve_secrets(&env) {
        Ok(_) => panic!("missing file must be reported"),
        Err(i) => i,
    };
    assert_eq!(keys(&issues), vec!["broker.edges[2].password_file"]);

    c.broker.edges.pop();
    let s = match c.resolve_secrets(&env) {
        Ok(s) => s,
        Err(i) => panic!("{i:?}"),
    };
    assert_eq!(
        s.edge_passwords.get("edge-p01").map(Secret::expose),
        Some("s3cret")
    );
    assert_eq!(
        s.edge_passwords.get("edge-p02").map(Secret::expose),
        Some("inline")
    );
    assert_eq!(s.tsdb_token.expose(), "from-env");
    let dump = format!("{s:?} {c:?}");
    assert!(!dump.contains("s3cret") && !dump.contains("inline") && !dump.contains("from-env"));

    c.timeseries.token = Some(Secret::new("file-wins"));
    let s = c.resolve_secrets(&env).unwrap_or_default();
    assert_eq!(s.tsdb_token.expose(), "file-wins");
}

#[test]
fn http_listener_must_not_collide_with_mqtt() {
    let c = parse("[broker]\nallow_anonymous = true\nlisten = \"127.0.0.1:8080\"\n");
    assert_eq!(keys(&c.validate()), vec!["http.listen"]);
}
