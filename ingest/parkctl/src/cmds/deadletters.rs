//! `parkctl deadletters`: what ingest rejected, newest first.
//!
//! Reads `GET {url}/deadletters?limit=N` (ingest's own route beside
//! `/metrics`, no token) and prints one block per entry: time, reason,
//! topic, payload size, the error, and the kept start of the payload as hex
//! with a printable-ASCII column. `--json` prints the server's answer as
//! is. Exit codes: 0 done, 1 ingest answered with an error, 2 usage or
//! connection error.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use parkwatch_incidents::hash::unhex;
use parkwatch_incidents::wire::{DeadLetter, ListResponse};

/// `parkctl deadletters [--url URL] [--limit N] [--json]`.
#[derive(Debug, Clone, Args)]
pub struct DeadlettersArgs {
    /// Base URL of ingest's HTTP server.
    #[arg(long, env = "PARKWATCH_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// How many entries to show, newest first (at most 1000).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub limit: u16,
    /// Print the server's JSON answer instead of text.
    #[arg(long)]
    pub json: bool,
    /// UTC offset for printed times, `+HH:MM`.
    #[arg(long, default_value = "+08:00", value_name = "OFFSET")]
    pub utc_offset: String,
}

/// Hex bytes shown per entry in the text output.
const SHOWN_BYTES: usize = 64;

/// Runs the command.
pub fn run(args: DeadlettersArgs) -> ExitCode {
    let Some(offset) = crate::format::parse_offset(&args.utc_offset) else {
        eprintln!(
            "parkctl: --utc-offset {:?} is not +HH:MM or -HH:MM",
            args.utc_offset
        );
        return ExitCode::from(2);
    };
    let url = format!(
        "{}/deadletters?limit={}",
        args.url.trim_end_matches('/'),
        args.limit
    );
    let Some(runtime) = super::runtime() else {
        return ExitCode::from(2);
    };
    let fetched = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        let resp = client.get(&url).send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((status, body))
    });
    let (status, body) = match fetched {
        Ok(x) => x,
        Err(e) => {
            eprintln!("parkctl: cannot reach {url}: {e}");
            return ExitCode::from(2);
        }
    };
    if !status.is_success() {
        eprintln!("parkctl: {url}: {status}: {}", body.trim());
        return ExitCode::FAILURE;
    }
    if args.json {
        println!("{}", body.trim_end());
        return ExitCode::SUCCESS;
    }
    match serde_json::from_str::<ListResponse>(&body) {
        Ok(list) => {
            print!("{}", render(&list.items, offset));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("parkctl: {url}: unexpected answer ({e})");
            ExitCode::from(2)
        }
    }
}

/// The text output for `items`.
pub fn render(items: &[DeadLetter], offset_min: i32) -> String {
    let mut out = String::new();
    if items.is_empty() {
        out.push_str("no dead letters\n");
        return out;
    }
    for d in items {
        let _ = writeln!(
            out,
            "{}  {:<20} {}  ({} bytes{})",
            crate::format::time(d.at_ms, offset_min),
            d.reason,
            d.topic,
            d.size,
            if d.truncated { ", payload cut" } else { "" }
        );
        let _ = writeln!(out, "    {}", d.error);
        let bytes = unhex(&d.payload_hex).unwrap_or_default();
        for chunk in bytes[..bytes.len().min(SHOWN_BYTES)].chunks(16) {
            let hex: String = chunk.iter().map(|b| format!("{b:02x} ")).collect();
            let text: String = chunk
                .iter()
                .map(|&b| {
                    if b.is_ascii_graphic() || b == b' ' {
                        char::from(b)
                    } else {
                        '.'
                    }
                })
                .collect();
            let _ = writeln!(out, "    {hex:<48} {text}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_shows_reason_topic_error_and_payload() {
        let d = DeadLetter {
            at_ms: 0,
            topic: "parkwatch/etdz/edge-p01/telemetry".into(),
            reason: "malformed".into(),
            error: "malformed payload: no schema version varint".into(),
            size: 100,
            payload_hex: parkwatch_incidents::hash::hex(b"\xffhello"),
            truncated: true,
        };
        let text = render(&[d], 0);
        assert!(
            text.starts_with(
                "1970-01-01 00:00:00  malformed            parkwatch/etdz/edge-p01/telemetry  (100 bytes, payload cut)\n"
            ),
            "{text}"
        );
        assert!(text.contains("    malformed payload: no schema version varint\n"));
        assert!(text.contains("ff 68 65 6c 6c 6f"), "{text}");
        assert!(text.trim_end().ends_with(".hello"), "{text}");
        assert_eq!(render(&[], 0), "no dead letters\n");
    }
}
