//! Parses arbitrary strings as topics; whatever parses must render back to
//! the same topic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parkwatch_protocol::EdgeTopic;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (prefix, topic) = text.split_once('\n').unwrap_or(("parkwatch", text));
    if let Ok(t) = EdgeTopic::parse(prefix, topic) {
        assert_eq!(t.render(prefix), topic);
    }
});
