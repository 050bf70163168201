//! The client side of the live stream (`GET /api/v1/alarms/stream`):
//! an incremental parser of `text/event-stream`.
//!
//! Bytes go in as they arrive, in chunks of any size; complete messages
//! come out in order, each with its `id:`, `event:` and `data:` (several
//! `data:` lines joined by `\n`). Comment lines (`: keep-alive`) and
//! unknown fields are skipped; `\r\n` line ends are accepted. The `data:`
//! of each message is a [`crate::model::FeedEvent`] as JSON.

/// One parsed SSE message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseMessage {
    /// `id:`.
    pub id: Option<String>,
    /// `event:`.
    pub event: Option<String>,
    /// `data:` lines joined by `\n`.
    pub data: String,
}

/// An incremental `text/event-stream` parser.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    cur: SseMessage,
    has_data: bool,
}

impl SseParser {
    /// Feeds bytes; returns the messages they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseMessage> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            if line.is_empty() {
                if self.has_data {
                    out.push(std::mem::take(&mut self.cur));
                } else {
                    self.cur = SseMessage::default();
                }
                self.has_data = false;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f.to_owned(), v.strip_prefix(' ').unwrap_or(v).to_owned()),
                None => (line.clone(), String::new()),
            };
            match field.as_str() {
                "id" => self.cur.id = Some(value),
                "event" => self.cur.event = Some(value),
                "data" => {
                    if self.has_data {
                        self.cur.data.push('\n');
                    }
                    self.cur.data.push_str(&value);
                    self.has_data = true;
                }
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_messages_split_across_chunks() {
        let mut p = SseParser::default();
        assert!(p.push(b": keep-alive\n\nid: 4\nevent: al").is_empty());
        let got = p.push(b"arm\ndata: {\"a\":1}\n\nid: 5\r\ndata: x\r\ndata: y\r\n\r\n");
        assert_eq!(
            got,
            vec![
                SseMessage {
                    id: Some("4".into()),
                    event: Some("alarm".into()),
                    data: "{\"a\":1}".into()
                },
                SseMessage {
                    id: Some("5".into()),
                    event: None,
                    data: "x\ny".into()
                },
            ]
        );
    }
}
